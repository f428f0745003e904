"""crawl.toml: every bad input is one clear line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from crawler.core.config import (
    Credential,
    OutputConfig,
    SearchSeed,
    StoreConfig,
    load_config,
)
from crawler.core.errors import ConfigError
from crawler.core.kinds import EDGE_STREAMS
from tests.crawlkit import FULL

ROOT = Path(__file__).resolve().parents[1]
CREDS = '[[credentials]]\nclient_id = "id-1"\nclient_secret = "s3cret"\n'
SEED = '[seeds]\nartists = ["0OdUWJ0sBjDrqHygGUXeCF"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crawl.toml"
    path.write_text(text)
    return path


def test_example_config_loads_with_defaults_for_the_simulator() -> None:
    config = load_config(ROOT / "crawl.toml", environ={}, sim=True)
    assert config.credentials == (Credential("sim-client", "sim-secret", "main", 0, 30.0),)
    assert config.seeds.artists == ("AYgiN36O862DJmXTDzbjTn",)
    assert config.crawl.out_dir == ROOT / "out"
    assert config.crawl.checkpoint_path == ROOT / "out" / "checkpoint.db"
    assert config.api.base_url == "https://api.spotify.com"
    assert config.output == OutputConfig(
        playlists=True, related_artists=True, artist_albums=True, playlist_items=True
    )
    assert config.store == StoreConfig(backend="sqlite", dsn="", name="default")
    assert (config.crawl.metrics_port, config.crawl.metrics_host) == (0, "127.0.0.1")


@pytest.mark.parametrize("prefix", ["SPOTIFY", "SPOTIPY"])
def test_example_config_reads_spotify_then_spotipy_variables(prefix: str) -> None:
    environ = {f"{prefix}_CLIENT_ID": "my-app", f"{prefix}_CLIENT_SECRET": "my-s3cret"}
    config = load_config(ROOT / "crawl.toml", environ=environ)
    assert config.credentials == (Credential("my-app", "my-s3cret", "main", 0, 30.0),)


def test_example_config_prefers_spotify_variables_over_spotipy() -> None:
    environ = {
        "SPOTIFY_CLIENT_ID": "a",
        "SPOTIFY_CLIENT_SECRET": "",  # empty counts as unset, as in a shell's ${X:-default}
        "SPOTIPY_CLIENT_ID": "b",
        "SPOTIPY_CLIENT_SECRET": "y",
    }
    config = load_config(ROOT / "crawl.toml", environ=environ)
    assert [(c.client_id, c.client_secret) for c in config.credentials] == [("a", "y")]


def test_example_config_without_variables_refuses_the_real_api() -> None:
    """Never a made-up client id sent to Spotify: one line naming both variables instead."""
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "crawl.toml", environ={})
    assert str(info.value) == (
        f"{ROOT / 'crawl.toml'}: credentials[0].client_id: environment variables "
        "SPOTIFY_CLIENT_ID and SPOTIPY_CLIENT_ID are not set; crawl the built-in simulator "
        "with --sim, which needs none"
    )


def test_crawl_of_the_real_api_without_credentials_exits_2_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from crawler.cli import main

    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIPY_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "crawl.toml"
    path.write_text((ROOT / "crawl.toml").read_text())
    assert main(["crawl", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: credentials[0].client_id: environment variables ")
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crawl.toml"]


def test_sim_serves_its_own_credentials_one_per_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[credentials]]\nclient_id = "${UNSET}"\nclient_secret = "${UNSET}"\naccount = "a"\n'
        "rate = 7\nwindow_s = 2\n"
        '[[credentials]]\nclient_id = "x"\nclient_secret = "y"\naccount = "a"\n'
        '[[credentials]]\nclient_id = "z"\nclient_secret = "w"\n',
    )
    config = load_config(path, environ={}, sim=True)
    assert config.credentials == (
        Credential("sim-client-1", "sim-secret-1", "a", 7, 2.0),
        Credential("sim-client-2", "sim-secret-2", "a", 0, 30.0),
        Credential("sim-client-3", "sim-secret-3", "sim-client-3", 0, 30.0),
    )


def test_sim_without_credential_tables_uses_the_simulators_default_client(tmp_path: Path) -> None:
    from crawler.sim.config import DEFAULT_CLIENT

    config = load_config(write(tmp_path, SEED), environ={"SPOTIFY_CLIENT_ID": "x"}, sim=True)
    assert [(c.client_id, c.client_secret, c.account) for c in config.credentials] == [
        (DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret, DEFAULT_CLIENT.account)
    ]


def test_commands_without_api_calls_neither_need_nor_expand_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, '[[credentials]]\nclient_id = "${UNSET}"\n' + SEED)
    assert load_config(path, environ={}, credentials=False).credentials == ()
    assert load_config(write(tmp_path, SEED), environ={}, credentials=False).credentials == ()
    bad = write(tmp_path, "[[credentials]]\nrate = -1\n")
    with pytest.raises(ConfigError, match=r"credentials\[0\]\.rate: must be ≥ 0, got -1"):
        load_config(bad, environ={}, credentials=False)


def test_nested_defaults_expand_only_when_used(tmp_path: Path) -> None:
    text = '[[credentials]]\nclient_id = "<${A:-${B:-b}}>"\nclient_secret = "${C:-}x${D}"\n'
    path = write(tmp_path, text)
    config = load_config(path, environ={"A": "a", "D": "d"})
    assert (config.credentials[0].client_id, config.credentials[0].client_secret) == ("<a>", "xd")
    config = load_config(path, environ={"D": ""})
    assert (config.credentials[0].client_id, config.credentials[0].client_secret) == ("<b>", "x")


def test_env_references_expand_and_secret_is_not_in_repr(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[credentials]]\nclient_id = "${CID}"\nclient_secret = "${CSECRET}"\naccount = "a"\n',
    )
    config = load_config(path, environ={"CID": "abc", "CSECRET": "hunter2"})
    assert config.credentials[0].client_id == "abc"
    assert config.credentials[0].client_secret == "hunter2"
    assert "hunter2" not in repr(config)


def test_credentials_fall_back_to_spotipy_environment(tmp_path: Path) -> None:
    path = write(tmp_path, SEED)
    config = load_config(path, environ={"SPOTIPY_CLIENT_ID": "x", "SPOTIPY_CLIENT_SECRET": "y"})
    assert [(c.client_id, c.client_secret) for c in config.credentials] == [("x", "y")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CREDS + "[crawl]\nconcurency = 4\n", "crawl.concurency: unknown key"),
        (CREDS + "[crawl]\nconcurrency = 'many'\n", "crawl.concurrency: expected an integer"),
        (CREDS + "[crawl]\nconcurrency = 0\n", "crawl.concurrency: must be ≥ 1"),
        (CREDS + "[expand]\ntracks = 1\n", "expand.tracks: must be one of"),
        (CREDS + "[expand]\nrelated_artists = 1\n", "expand.related_artists: expected a boolean"),
        (CREDS + "[expand]\nartist_albums = ['lp']\n", "expand.artist_albums: unknown album"),
        (CREDS + "[api]\nmode = 'fast'\n", "api.mode: must be one of"),
        (
            CREDS + "[[credentials]]\nrate = true\nclient_id='a'\nclient_secret='b'\n",
            "credentials[1].rate: expected an integer, got a boolean",
        ),
        ('[[credentials]]\nclient_id = "a"\n', "credentials[0].client_secret: is missing or empty"),
        ('[[credentials]]\nclient_id = ""\nclient_secret="x"\n', "credentials[0].client_id"),
        (
            '[[credentials]]\nclient_id = "${NOPE}"\nclient_secret="x"\n',
            "environment variable NOPE is not set",
        ),
        (SEED, "credentials: none configured"),
        (CREDS + "[seeds]\nartists = ['nope']\n", "seeds.artists: 'nope' is not a Spotify artist"),
        (
            CREDS + "[seeds]\nartists = ['spotify:album:0OdUWJ0sBjDrqHygGUXeCF']\n",
            "seeds.artists: 'spotify:album:0OdUWJ0sBjDrqHygGUXeCF' is not a spotify:artist",
        ),
        (CREDS + "[seeds]\nsearch = ['  ']\n", "seeds.search: a search query must not be empty"),
        (CREDS + "[seedz]\n", "seedz: unknown key"),
        (CREDS + "[crawl\n", "TOML syntax error"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value).rstrip("\n").split(": ", 1)[0]


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, CREDS + "[crawl]\nout_dir = \n")
    with pytest.raises(ConfigError, match=r"line 5"):
        load_config(path, environ={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml", environ={})


def test_example_config_seeds_exist_in_its_simulated_catalog() -> None:
    """The quick start crawls these: a seed the simulator does not know would crawl nothing."""
    from crawler.sim.catalog import Catalog
    from crawler.sim.ids import Kind

    config = load_config(ROOT / "crawl.toml", environ={}, sim=True)
    catalog = Catalog(config.sim.artists, seed=config.sim.seed, playlists=config.sim.playlists)
    for artist in config.seeds.artists:
        assert catalog.lookup(artist, Kind.ARTIST) is not None


def test_new_keys_resolve(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        CREDS + '[seeds]\nsearch = ["plain", { q = "genre:shoegaze", type = "track", limit = 200 },'
        ' { q = "x", type = "playlist" }, { q = "y", limit = 1000 }]\n'
        "[output]\nplaylists = false\nplaylist_items = false\n"
        '[store]\nbackend = "postgres"\ndsn = "${PGDSN:-postgresql://localhost/crawl}"\n'
        'name = "lab_1-B"\n'
        '[crawl]\nmetrics_port = 9100\nmetrics_host = "0.0.0.0"\ncheckpoint = "state/ck.db"\n',
    )
    config = load_config(path, environ={})
    assert config.seeds.search == (
        SearchSeed("plain", "artist", 10),
        SearchSeed("genre:shoegaze", "track", 200),
        SearchSeed("x", "playlist", 10),
        SearchSeed("y", "artist", 1000),
    )
    assert not config.seeds.is_empty()
    assert config.output == OutputConfig(
        playlists=False, related_artists=True, artist_albums=True, playlist_items=False
    )
    assert config.store == StoreConfig(
        backend="postgres", dsn="postgresql://localhost/crawl", name="lab_1-B"
    )
    assert (config.crawl.metrics_port, config.crawl.metrics_host) == (9100, "0.0.0.0")
    assert config.crawl.checkpoint_path == tmp_path / "state" / "ck.db"
    assert config.crawl.out_dir == tmp_path / "out"


def test_resolved_config_encodes_as_json(tmp_path: Path) -> None:
    """What a fingerprint or a dataset card builds on: plain JSON values (paths are Paths)."""
    config = load_config(write(tmp_path, CREDS + SEED), environ={})

    def plain(value: object) -> object:
        return msgspec.json.decode(msgspec.json.encode(value))

    assert plain(config.seeds) == {
        "artists": ["0OdUWJ0sBjDrqHygGUXeCF"],
        "albums": [],
        "tracks": [],
        "playlists": [],
        "search": [],
    }
    assert plain(config.expand) == {**FULL, "max_artists": 0}


def test_fingerprint_of_a_plain_search_is_what_older_checkpoints_stored(tmp_path: Path) -> None:
    from crawler.store import crawl_fingerprint

    text = CREDS + '[seeds]\nsearch = ["a", { q = "b" }, { q = "c", type = "album" }]\n'
    config = load_config(write(tmp_path, text), environ={})
    assert crawl_fingerprint(config) == {
        "seeds": {
            "artists": [],
            "albums": [],
            "tracks": [],
            "playlists": [],
            "search": ["a", "b", {"q": "c", "type": "album", "limit": 10}],
        },
        "expand": FULL,
        "output": dict.fromkeys(EDGE_STREAMS, True),
    }


@pytest.mark.parametrize(
    "url",
    [
        "https://api.spotify.com",
        "https://api.spotify.com/",
        "https://api.spotify.com/v1",
        "https://api.spotify.com/v1/",
    ],
)
def test_base_url_as_spotify_documents_it_is_the_origin(tmp_path: Path, url: str) -> None:
    config = load_config(write(tmp_path, CREDS + f'[api]\nbase_url = "{url}"\n'), environ={})
    assert config.api.base_url == "https://api.spotify.com"


@pytest.mark.parametrize(
    "url",
    [
        "https://api.spotify.com/v2",
        "https://api.spotify.com/v1/artists",
        "https://api.spotify.com/v1?market=SE",
        "api.spotify.com",
        "ftp://api.spotify.com",
    ],
)
def test_base_url_with_another_path_is_refused(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, CREDS + f'[api]\nbase_url = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == (
        f"{path}: api.base_url: expected the API's base URL (https://api.spotify.com/v1) or its "
        f"origin, got {url!r}"
    )


async def test_a_crawl_with_the_v1_base_url_finds_its_seed(tmp_path: Path) -> None:
    """Copied from Spotify's reference, ``…/v1`` must crawl, not 404 into "missing" seeds."""
    from crawler.cli.crawl import run_crawl
    from crawler.sim.catalog import Catalog
    from crawler.sim.config import SimConfig
    from crawler.sim.server import start_sim
    from tests.crawlkit import assert_ground_truth, config_for, expected

    catalog = Catalog(10, seed=3)
    seed = next(catalog.artist_id(i) for i in range(10) if catalog.model.artist_exists(i))
    expand = {"related_artists": False, "track_artists": False}
    async with await start_sim(SimConfig(), catalog) as sim:
        config = config_for(
            tmp_path,
            sim.url,
            seeds={"artists": [seed]},
            expand=expand,
            api={"base_url": sim.url + "/v1/"},
        )
        assert config.api.base_url == sim.url
        result = await run_crawl(config)
    assert result.exit_code == 0, result.message
    output = assert_ground_truth(config.crawl.out_dir, expected(catalog, config))
    assert output.ids["artists"] == [seed]


DSN = "postgresql://crawler:hunter2@db.example:5432/crawl"


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (DSN, "postgresql://crawler:***@db.example:5432/crawl"),
        ("postgres://crawler@db/crawl", "postgres://crawler@db/crawl"),
        (
            "postgresql://db/crawl?user=u&password=hunter2&x=1",
            "postgresql://db/crawl?user=u&password=***&x=1",
        ),
        ("postgresql://u:hun@ter2@db/crawl", "postgresql://u:***@db/crawl"),
        ("postgresql://u:hunter2@db/crawl?a=b@c", "postgresql://u:***@c"),
    ],
)
def test_dsn_password_is_never_shown(tmp_path: Path, dsn: str, shown: str) -> None:
    text = CREDS + '[store]\nbackend = "postgres"\ndsn = "${PGDSN}"\n'
    config = load_config(write(tmp_path, text), environ={"PGDSN": dsn})
    assert config.store.dsn == dsn
    assert config.store.redacted_dsn == shown
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)
    assert "hunter2" not in str(list(config.store.__rich_repr__()))
    assert f"dsn={shown!r}" in repr(config.store)


@pytest.mark.parametrize(
    "store",
    [
        f'backend = "sqlite"\ndsn = "{DSN}"',
        f'dsn = "{DSN}"',
        'backend = "postgres"\ndsn = "mysql://crawler:hunter2@db/crawl"',
        f'backend = "postgres"\ndsn = "{DSN}"\nname = "a b"',
        f'backend = "postgres"\ndsn = "{DSN}"\nbackend = "postgres"',
    ],
)
def test_a_dsn_error_never_shows_the_password(tmp_path: Path, store: str) -> None:
    path = write(tmp_path, CREDS + "[store]\n" + store + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}: ")
    assert "hunter2" not in str(info.value)


def test_credential_secret_is_not_in_any_repr() -> None:
    credential = Credential("id-1", "s3cret", "acct", 5, 2.0)
    assert repr(credential) == "Credential(client_id='id-1', account='acct', rate=5, window_s=2.0)"
    assert "s3cret" not in str(list(credential.__rich_repr__()))
    assert credential.label == "id-1… (account acct)"


# Each: the file's text after CREDS, and the whole message after "<file>: ".
EXACT = [
    ("[crawl]\nconcurrency = 'many'", "crawl.concurrency: expected an integer, got str"),
    ("[crawl]\nconcurrency = 0", "crawl.concurrency: must be ≥ 1, got 0"),
    ("[crawl]\nlinger_ms = -5", "crawl.linger_ms: must be ≥ 0, got -5"),
    ("[crawl]\nmetrics_port = 65536", "crawl.metrics_port: must be ≤ 65535, got 65536"),
    ("[crawl]\nmetrics_port = -1", "crawl.metrics_port: must be ≥ 0, got -1"),
    ("[crawl]\nmetrics_port = '9100'", "crawl.metrics_port: expected an integer, got str"),
    ("[crawl]\nmetrics_host = ''", "crawl.metrics_host: must not be empty"),
    ("[crawl]\nout_dir = ''", "crawl.out_dir: must not be empty"),
    ("[crawl]\ncheckpoint = 3", "crawl.checkpoint: expected a string, got int"),
    (
        "[crawl]\nprogress = 'fancy'",
        "crawl.progress: must be one of 'auto', 'bar', 'log', 'off', got 'fancy'",
    ),
    ("[api]\nconnect_timeout_s = 0", "api.connect_timeout_s: must be ≥ 0.001, got 0"),
    (
        "[api]\nmode = 'fast'",
        "api.mode: must be one of 'auto', 'development', 'extended', got 'fast'",
    ),
    ("[expand]\ntracks = 1", "expand.tracks: must be one of 'auto', True, False, got 1"),
    (
        "[expand]\nartist_albums = ['album', 'lp']",
        "expand.artist_albums: unknown album group 'lp' "
        "(use album, appears_on, compilation, single)",
    ),
    ("[expand]\nmax_artists = 1.5", "expand.max_artists: expected an integer, got float"),
    ("[seeds]\nartists = [1]", "seeds.artists[0]: expected a string, got int"),
    ("[seeds]\nartists = 'x'", "seeds.artists: expected an array, got str"),
    ("[seeds]\nsearch = [1]", "seeds.search[0]: expected a string or a table, got int"),
    ("[seeds]\nsearch = [{ type = 'track' }]", "seeds.search[0].q: is missing"),
    ("[seeds]\nsearch = [{ q = '' }]", "seeds.search: a search query must not be empty"),
    ("[seeds]\nsearch = [{ q = 'a', kind = 'track' }]", "seeds.search[0].kind: unknown key"),
    (
        "[seeds]\nsearch = ['a', { q = 'a', type = 'show' }]",
        "seeds.search[1].type: must be one of 'album', 'artist', 'playlist', 'track', got 'show'",
    ),
    ("[seeds]\nsearch = [{ q = 'a', limit = 0 }]", "seeds.search[0].limit: must be ≥ 1, got 0"),
    (
        "[seeds]\nsearch = [{ q = 'a', limit = 1001 }]",
        "seeds.search[0].limit: must be ≤ 1000, got 1001",
    ),
    ("[output]\nplaylists = 'yes'", "output.playlists: expected a boolean, got str"),
    ("[output]\nplaylist = true", "output.playlist: unknown key"),
    (
        "[store]\nbackend = 'mysql'",
        "store.backend: must be one of 'postgres', 'sqlite', got 'mysql'",
    ),
    (
        "[store]\nbackend = 'postgres'",
        'store.dsn: is missing or empty; store.backend = "postgres" needs it',
    ),
    (
        "[store]\nbackend = 'postgres'\ndsn = '${PGDSN}'",
        "store.dsn: environment variable PGDSN is not set",
    ),
    (
        "[store]\ndsn = 'postgresql://db/x'",
        'store.dsn: is only used with store.backend = "postgres"',
    ),
    (
        "[store]\nbackend = 'postgres'\ndsn = 'db.example'",
        "store.dsn: expected a postgresql://user:password@host:port/db URL",
    ),
    (
        "[store]\nname = 'a b'",
        "store.name: must be 1 to 63 characters of A-Z a-z 0-9 _ -, got 'a b'",
    ),
    ("[store]\nname = ''", "store.name: must be 1 to 63 characters of A-Z a-z 0-9 _ -, got ''"),
    (
        "[store]\nname = '" + "n" * 64 + "'",
        f"store.name: must be 1 to 63 characters of A-Z a-z 0-9 _ -, got '{'n' * 64}'",
    ),
    ("[store]\nname = 5", "store.name: expected a string, got int"),
    ("[sim]\nartists = 0", "sim.artists: must be ≥ 1, got 0"),
    ("[sim]\nmode = 'auto'", "sim.mode: must be one of 'development', 'extended', got 'auto'"),
    ("[crawl]\nlinger_ms = 2026-01-01", "crawl.linger_ms: expected a number, got date"),
    ("api = 1", "credentials[0].api: unknown key"),
    (
        "[[credentials]]\nclient_id = '${A'\nclient_secret = 'x'",
        "credentials[1].client_id: the reference to A has no closing }",
    ),
    (
        "[[credentials]]\nclient_id = 'a${'\nclient_secret = 'x'",
        "credentials[1].client_id: a ${ is not followed by a variable name",
    ),
    (
        "[[credentials]]\nclient_id = 'a'\nclient_secret = 'x'\nwindow_s = 0",
        "credentials[1].window_s: must be ≥ 0.001, got 0",
    ),
    ("[[credentials]]\nclient_id = 'a'\nsecret = 'x'", "credentials[1].secret: unknown key"),
]


@pytest.mark.parametrize(("text", "message"), EXACT)
def test_bad_value_message_is_exact(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, CREDS + text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[seedz]\n",
            "seedz: unknown key "
            "(expected one of credentials, api, seeds, expand, crawl, sim, output, store)",
        ),
        ("crawl = 1\n", "crawl: expected a table, got int"),
        ("credentials = 'x'\n", "credentials: expected an array, got str"),
        (
            "[[credentials]]\nclient_id = 'a'\nclient_secret = 'b'\n"
            "[[credentials]]\nclient_id = 'c'\n",
            "credentials[1].client_secret: is missing or empty",
        ),
    ],
)
def test_top_level_message_is_exact(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: {message}"


def test_a_file_that_is_not_utf8_is_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "crawl.toml"
    path.write_bytes(b'[crawl]\nout_dir = "\xff"\n')
    with pytest.raises(ConfigError, match=r"TOML syntax error: .*utf-8"):
        load_config(path, environ={})
