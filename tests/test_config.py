"""crawl.toml: every bad input is one clear line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.core.config import load_config
from crawler.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CREDS = '[[credentials]]\nclient_id = "id-1"\nclient_secret = "s3cret"\n'
SEED = '[seeds]\nartists = ["0OdUWJ0sBjDrqHygGUXeCF"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crawl.toml"
    path.write_text(text)
    return path


def test_example_config_loads_with_defaults_for_the_simulator() -> None:
    config = load_config(ROOT / "crawl.toml", environ={})
    assert config.credentials[0].client_id == "sim-client"
    assert config.credentials[0].account == "main"
    assert config.seeds.artists == ("AYgiN36O862DJmXTDzbjTn",)
    assert config.crawl.out_dir == ROOT / "out"
    assert config.crawl.checkpoint_path == ROOT / "out" / "checkpoint.db"


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

    config = load_config(ROOT / "crawl.toml", environ={})
    catalog = Catalog(config.sim.artists, seed=config.sim.seed, playlists=config.sim.playlists)
    for artist in config.seeds.artists:
        assert catalog.lookup(artist, Kind.ARTIST) is not None
