"""``crawl.toml``: parsed once, validated strictly, so that a typo fails before anything runs.

Every error names the file and the dotted key, because users script against this file and a
silently ignored key (``concurency = 64``) is worse than a refusal.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from crawler.core.errors import ConfigError
from crawler.core.ids import SEED_KINDS, parse_seed

ApiMode = Literal["auto", "extended", "development"]
TracksMode = Literal["auto", True, False]
ALBUM_GROUPS = ("album", "single", "appears_on", "compilation")
DEFAULT_API_ORIGIN = "https://api.spotify.com"
DEFAULT_TOKEN_URL = "https://accounts.spotify.com/api/token"
ENV_CREDENTIALS = (
    ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"),
    ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET"),
)


@dataclass(frozen=True)
class Credential:
    """One app's client credentials; ``account`` groups apps that share one quota."""

    client_id: str
    client_secret: str = field(repr=False)
    account: str
    rate: int = 0
    window_s: float = 30.0

    @property
    def label(self) -> str:
        """How logs and errors name this credential: the client id, never the secret."""
        return f"{self.client_id[:8]}… (account {self.account})"


@dataclass(frozen=True)
class ApiConfig:
    base_url: str = DEFAULT_API_ORIGIN
    token_url: str = DEFAULT_TOKEN_URL
    mode: ApiMode = "auto"
    max_retry_after_s: float = 900.0
    max_retries: int = 6
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0


@dataclass(frozen=True)
class SeedsConfig:
    artists: tuple[str, ...] = ()
    albums: tuple[str, ...] = ()
    tracks: tuple[str, ...] = ()
    playlists: tuple[str, ...] = ()
    search: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class ExpandConfig:
    related_artists: bool = True
    artist_albums: tuple[str, ...] = ("album", "single", "compilation")
    album_tracks: bool = True
    tracks: TracksMode = "auto"
    audio_features: bool = True
    track_artists: bool = True
    max_artists: int = 0


@dataclass(frozen=True)
class CrawlConfig:
    out_dir: Path = Path("out")
    checkpoint: Path | None = None
    concurrency: int = 32
    linger_ms: float = 1000.0
    commit_interval_ms: float = 500.0
    progress: Literal["auto", "bar", "log", "off"] = "auto"

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint or self.out_dir / "checkpoint.db"


@dataclass(frozen=True)
class SimSection:
    """Options of the built-in simulator used by ``crawl --sim``."""

    artists: int = 150
    seed: int = 1
    playlists: int = 20
    mode: Literal["extended", "development"] = "extended"
    latency_ms: float = 0.0
    rate: int = 0  # the simulator's hidden budget per account and window; 0 = unlimited


@dataclass(frozen=True)
class Config:
    path: Path
    credentials: tuple[Credential, ...]
    api: ApiConfig = ApiConfig()
    seeds: SeedsConfig = SeedsConfig()
    expand: ExpandConfig = ExpandConfig()
    crawl: CrawlConfig = CrawlConfig()
    sim: SimSection = SimSection()

    def with_api(self, **changes: Any) -> Config:
        return replace(self, api=replace(self.api, **changes))


# --------------------------------------------------------------------------------------------
# Validation helpers: each checks one value and names it in the error.

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Reader:
    """Reads one table of the TOML document, rejecting unknown keys and wrong types."""

    def __init__(self, path: Path, prefix: str, table: Any) -> None:
        self.path = path
        self.prefix = prefix
        if not isinstance(table, dict):
            self.fail("", "must be a table")
        self.table: dict[str, Any] = table
        self.used: set[str] = set()

    def fail(self, key: str, message: str) -> None:
        name = ".".join(p for p in (self.prefix, key) if p)
        raise ConfigError(f"{self.path}: {name or 'document'}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.used.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        # TOML has no bool/int confusion, but Python's bool is an int: refuse `rate = true`.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.fail(key, f"expected {_type_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            self.fail(key, f"expected {_type_name(kind)}, got {type(value).__name__}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0, integer: bool = False) -> Any:
        value = self.get(key, int if integer else (int, float), default)
        if value < minimum:
            self.fail(key, f"must be ≥ {minimum}, got {value}")
        return value

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(key, list, list(default))
        for item in value:
            if not isinstance(item, str):
                self.fail(key, f"expected a list of strings, got an item {item!r}")
        return tuple(value)

    def choice(self, key: str, options: tuple[Any, ...], default: Any) -> Any:
        self.used.add(key)
        value = self.table.get(key, default)
        # Compare types too: in Python `1 == True`, in TOML they are different values.
        if not any(value == o and type(value) is type(o) for o in options):
            self.fail(key, f"must be one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            self.fail(unknown[0], "unknown key")


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "a boolean",
        "list": "a list",
        "dict": "a table",
    }
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def _expand_env(reader: _Reader, key: str, value: str, environ: Mapping[str, str]) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}`` so secrets can stay out of the file."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        reader.fail(key, f"environment variable {name} is not set")
        raise AssertionError("unreachable")

    return _ENV_REF.sub(substitute, value)


def _section(
    doc: dict[str, Any], path: Path, name: str, build: Callable[[_Reader], Any], default: Any
) -> Any:
    if name not in doc:
        return default
    reader = _Reader(path, name, doc[name])
    value = build(reader)
    reader.done()
    return value


def _read_api(r: _Reader) -> ApiConfig:
    d = ApiConfig()
    return ApiConfig(
        base_url=r.get("base_url", str, d.base_url).rstrip("/"),
        token_url=r.get("token_url", str, d.token_url),
        mode=r.choice("mode", ("auto", "extended", "development"), d.mode),
        max_retry_after_s=r.number("max_retry_after_s", d.max_retry_after_s),
        max_retries=r.number("max_retries", d.max_retries, integer=True),
        connect_timeout_s=r.number("connect_timeout_s", d.connect_timeout_s, minimum=0.001),
        read_timeout_s=r.number("read_timeout_s", d.read_timeout_s, minimum=0.001),
    )


def _read_seeds(r: _Reader) -> SeedsConfig:
    values: dict[str, tuple[str, ...]] = {}
    for kind in SEED_KINDS:
        raw = r.strings(kind, ())
        try:
            values[kind] = tuple(parse_seed(kind, s) for s in raw)
        except ValueError as exc:
            r.fail(kind, str(exc))
    search = r.strings("search", ())
    if any(not q.strip() for q in search):
        r.fail("search", "a search query must not be empty")
    return SeedsConfig(**values, search=search)


def _read_expand(r: _Reader) -> ExpandConfig:
    d = ExpandConfig()
    groups = r.strings("artist_albums", d.artist_albums)
    for group in groups:
        if group not in ALBUM_GROUPS:
            r.fail(
                "artist_albums", f"unknown album group {group!r} (use {', '.join(ALBUM_GROUPS)})"
            )
    return ExpandConfig(
        related_artists=r.get("related_artists", bool, d.related_artists),
        artist_albums=tuple(dict.fromkeys(groups)),
        album_tracks=r.get("album_tracks", bool, d.album_tracks),
        tracks=r.choice("tracks", ("auto", True, False), d.tracks),
        audio_features=r.get("audio_features", bool, d.audio_features),
        track_artists=r.get("track_artists", bool, d.track_artists),
        max_artists=r.number("max_artists", d.max_artists, integer=True),
    )


def _read_crawl(r: _Reader, base: Path) -> CrawlConfig:
    d = CrawlConfig()
    checkpoint = r.get("checkpoint", str, "")
    return CrawlConfig(
        out_dir=base / r.get("out_dir", str, str(d.out_dir)),
        checkpoint=base / checkpoint if checkpoint else None,
        concurrency=r.number("concurrency", d.concurrency, minimum=1, integer=True),
        linger_ms=r.number("linger_ms", d.linger_ms),
        commit_interval_ms=r.number("commit_interval_ms", d.commit_interval_ms, minimum=1),
        progress=r.choice("progress", ("auto", "bar", "log", "off"), d.progress),
    )


def _read_sim(r: _Reader) -> SimSection:
    d = SimSection()
    return SimSection(
        artists=r.number("artists", d.artists, minimum=1, integer=True),
        seed=r.get("seed", int, d.seed),
        playlists=r.number("playlists", d.playlists, integer=True),
        mode=r.choice("mode", ("extended", "development"), d.mode),
        latency_ms=r.number("latency_ms", d.latency_ms),
        rate=r.number("rate", d.rate, integer=True),
    )


def _read_credentials(
    doc: dict[str, Any], path: Path, environ: Mapping[str, str]
) -> tuple[Credential, ...]:
    raw = doc.get("credentials", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: credentials: expected an array of tables [[credentials]]")
    result = []
    for index, table in enumerate(raw):
        r = _Reader(path, f"credentials[{index}]", table)
        values = {}
        for key in ("client_id", "client_secret"):
            values[key] = _expand_env(r, key, r.get(key, str, ""), environ).strip()
            if not values[key]:
                r.fail(key, "is missing or empty")
        account = _expand_env(r, "account", r.get("account", str, ""), environ).strip()
        result.append(
            Credential(
                client_id=values["client_id"],
                client_secret=values["client_secret"],
                account=account or values["client_id"],
                rate=r.number("rate", 0, integer=True),
                window_s=r.number("window_s", 30.0, minimum=0.001),
            )
        )
        r.done()
    return tuple(result)


def credentials_from_env(environ: Mapping[str, str]) -> tuple[Credential, ...]:
    """The spotipy-compatible fallback when crawl.toml configures no credentials."""
    for id_var, secret_var in ENV_CREDENTIALS:
        client_id, secret = environ.get(id_var, "").strip(), environ.get(secret_var, "").strip()
        if client_id and secret:
            return (Credential(client_id=client_id, client_secret=secret, account=client_id),)
    return ()


_TOP_LEVEL = ("api", "credentials", "seeds", "expand", "crawl", "sim")


def load_config(
    path: str | Path, environ: Mapping[str, str] | None = None, *, need_credentials: bool = True
) -> Config:
    """Parse and validate ``path``; relative paths inside it are relative to the file."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    for key in doc:
        if key not in _TOP_LEVEL:
            raise ConfigError(
                f"{path}: {key}: unknown key (expected one of {', '.join(_TOP_LEVEL)})"
            )
    base = path.resolve().parent
    credentials = _read_credentials(doc, path, environ) or credentials_from_env(environ)
    if need_credentials and not credentials:
        raise ConfigError(
            f"{path}: credentials: none configured; add [[credentials]] or set "
            "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET"
        )
    config = Config(
        path=path,
        credentials=credentials,
        api=_section(doc, path, "api", _read_api, ApiConfig()),
        seeds=_section(doc, path, "seeds", _read_seeds, SeedsConfig()),
        expand=_section(doc, path, "expand", _read_expand, ExpandConfig()),
        crawl=_section(doc, path, "crawl", lambda r: _read_crawl(r, base), None)
        or CrawlConfig(out_dir=base / "out"),
        sim=_section(doc, path, "sim", _read_sim, SimSection()),
    )
    return config
