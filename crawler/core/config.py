"""``crawl.toml``: parsed once, validated strictly, so that a typo fails before anything runs.

msgspec decodes the file into frozen Structs whose types carry the rules (unknown keys
forbidden, bounds, literals); what a type cannot say (environment references, seed forms,
paths relative to the file, the DSN a backend needs) is resolved after decoding. Every error
is one line naming the file and the dotted key, because users script against this file and a
silently ignored key (``concurency = 64``) is worse than a refusal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct
from msgspec import inspect as mi

from crawler.core.errors import ConfigError
from crawler.core.ids import SEED_KINDS, parse_seed
from crawler.sim.config import DEFAULT_CLIENT

ApiMode = Literal["auto", "extended", "development"]
TracksMode = bool | Literal["auto"]
AlbumGroup = Annotated[
    Literal["album", "single", "appears_on", "compilation"], Meta(description="album group")
]
SearchType = Literal["artist", "album", "track", "playlist"]
DEFAULT_API_ORIGIN = "https://api.spotify.com"
DEFAULT_TOKEN_URL = "https://accounts.spotify.com/api/token"
ENV_CREDENTIALS = (
    ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"),
    ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET"),
)

Count = Annotated[int, Meta(ge=0)]
Positive = Annotated[int, Meta(ge=1)]
Amount = Annotated[float, Meta(ge=0)]
Timeout = Annotated[float, Meta(ge=0.001)]


class _Table(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A table of the file: a key it does not declare is an error, not a silent no-op."""


class _Masked(Struct, frozen=True):
    """A value holding a secret: ``repr`` (and rich's pretty-printer) show ``__rich_repr__``,
    which subclasses write without the secret, so no log line or traceback can carry it."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.__rich_repr__())
        return f"{type(self).__name__}({shown})"


class Credential(_Masked, frozen=True, forbid_unknown_fields=True):
    """One app's client credentials; ``account`` groups apps that share one quota.

    Also the shape of a ``[[credentials]]`` table, where the strings may hold ``${NAME}``
    references and an empty account means "the client id"; `load_config` resolves both.
    """

    client_id: str = ""
    client_secret: str = ""
    account: str = ""
    rate: Count = 0
    window_s: Timeout = 30.0

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        yield from ((k, getattr(self, k)) for k in ("client_id", "account", "rate", "window_s"))

    @property
    def label(self) -> str:
        """How logs and errors name this credential: the client id, never the secret."""
        return f"{self.client_id[:8]}… (account {self.account})"


class ApiConfig(_Table, frozen=True):
    base_url: str = DEFAULT_API_ORIGIN  # resolved to the origin: the client appends /v1/...
    token_url: str = DEFAULT_TOKEN_URL
    mode: ApiMode = "auto"
    max_retry_after_s: Amount = 900.0
    max_retries: Count = 6
    connect_timeout_s: Timeout = 10.0
    read_timeout_s: Timeout = 30.0


class SearchSeed(Struct, frozen=True, forbid_unknown_fields=True):
    """A search whose results become seeds: the first ``limit`` results of type ``type``."""

    q: str
    type: SearchType = "artist"
    limit: Annotated[int, Meta(ge=1, le=1000)] = 10

    def as_toml(self) -> str | SearchSeed:
        """How crawl.toml spells it: a first-page artist query as the plain string it was
        before typed queries existed (so a checkpoint's fingerprint of it is unchanged)."""
        return self.q if (self.type, self.limit) == ("artist", 10) else self


class _SeedsFile(_Table, frozen=True):
    artists: tuple[str, ...] = ()
    albums: tuple[str, ...] = ()
    tracks: tuple[str, ...] = ()
    playlists: tuple[str, ...] = ()
    search: tuple[str | SearchSeed, ...] = ()


class SeedsConfig(_SeedsFile, frozen=True):
    """The seeds as bare IDs, and every search as a `SearchSeed`."""

    search: tuple[SearchSeed, ...] = ()

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__struct_fields__)


class ExpandConfig(_Table, frozen=True):
    related_artists: bool = True
    artist_albums: tuple[AlbumGroup, ...] = ("album", "single", "compilation")
    album_tracks: bool = True
    tracks: TracksMode = "auto"
    audio_features: bool = True
    track_artists: bool = True
    max_artists: Count = 0


class OutputConfig(_Table, frozen=True):
    """Which relationship streams are written (each only where its edge is crawled)."""

    playlists: bool = True
    related_artists: bool = True
    artist_albums: bool = True
    playlist_items: bool = True


class CrawlConfig(_Table, frozen=True):
    out_dir: Path = Path("out")
    checkpoint: Path | None = None
    concurrency: Positive = 32
    linger_ms: Amount = 1000.0
    commit_interval_ms: Annotated[float, Meta(ge=1)] = 500.0
    progress: Literal["auto", "bar", "log", "off"] = "auto"
    metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 0  # 0 = no /metrics endpoint
    metrics_host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint or self.out_dir / "checkpoint.db"


class SimSection(_Table, frozen=True):
    """Options of the built-in simulator used by ``crawl --sim``."""

    artists: Positive = 150
    seed: int = 1
    playlists: Count = 20
    mode: Literal["extended", "development"] = "extended"
    latency_ms: Amount = 0.0
    rate: Count = 0  # the simulator's hidden budget per account and window; 0 = unlimited


class StoreConfig(_Table, _Masked, frozen=True):
    """Where the checkpoint lives. ``dsn`` holds a password: shown only as `redacted_dsn`."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    dsn: str = ""
    name: Annotated[
        str,
        Meta(pattern=r"^[A-Za-z0-9_-]{1,63}$", description="1 to 63 characters of A-Z a-z 0-9 _ -"),
    ] = "default"

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        yield from (("backend", self.backend), ("dsn", self.redacted_dsn), ("name", self.name))

    @property
    def redacted_dsn(self) -> str:
        """``postgresql://user:***@host:port/db``: the DSN as logs, errors and status show it.

        Written without URL parsing, which can raise with the password in its message; the
        last ``@`` ends the user info, so a stray ``@`` over-redacts rather than leaks.
        """
        scheme, sep, rest = self.dsn.partition("://")
        if not sep:
            return "***" if self.dsn else ""
        userinfo, at, host = rest.rpartition("@")
        if at and ":" in userinfo:
            rest = f"{userinfo.partition(':')[0]}:***@{host}"
        return scheme + "://" + _QUERY_PASSWORD.sub(r"\1***", rest)


_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&]*")


class _File(_Table, frozen=True):
    """The whole file as written; `load_config` resolves it into a `Config`."""

    credentials: tuple[Credential, ...] = ()
    api: ApiConfig = ApiConfig()
    seeds: _SeedsFile = _SeedsFile()
    expand: ExpandConfig = ExpandConfig()
    crawl: CrawlConfig = CrawlConfig()
    sim: SimSection = SimSection()
    output: OutputConfig = OutputConfig()
    store: StoreConfig = StoreConfig()


class Config(_File, frozen=True, kw_only=True):
    """The file resolved: credentials expanded, seeds parsed, paths absolute, URLs normal."""

    path: Path
    seeds: SeedsConfig = SeedsConfig()

    def with_api(self, **changes: Any) -> Config:
        return msgspec.structs.replace(self, api=msgspec.structs.replace(self.api, **changes))


# --------------------------------------------------------------------------------------------
# msgspec's validation errors, said as this file's users read them.

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>.*)`")
_MISSING = re.compile(r"Object missing required field `(?P<key>.*)`")
_TYPE = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")
_BOUND = re.compile(r"Expected `(?:int|float)` (?P<op>[<>]=?) (?P<bound>\S+)")
_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "a boolean",
    "array": "an array",
    "object": "a table",
}
_GOT = {"bool": "a boolean", "array": "an array", "list": "an array", "object": "a table"}
_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


def _dotted(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _type_at(parts: list[str | int]) -> tuple[mi.Type, str | None]:
    """The declared type of the value at ``parts`` of the file, and its description."""
    node: mi.Type = mi.type_info(_File)
    for part in parts:
        if isinstance(part, str):
            table = _unwrap(node, mi.StructType)[0]
            assert isinstance(table, mi.StructType)
            node = next(f.type for f in table.fields if f.encode_name == part)
        else:
            array = _unwrap(node, mi.VarTupleType)[0]
            assert isinstance(array, mi.VarTupleType)
            node = array.item_type
    return _unwrap(node, None)


def _unwrap(node: mi.Type, container: type[mi.Type] | None) -> tuple[mi.Type, str | None]:
    """``Annotated`` metadata stripped (its description kept), and of a union the member of
    type ``container``: the table or array that msgspec's path descends into."""
    description = None
    if isinstance(node, mi.Metadata):
        description = (node.extra_json_schema or {}).get("description")
        node = node.type
    if container is not None and isinstance(node, mi.UnionType):
        node = next(t for t in node.types if isinstance(t, container))
    return node, description


def _choices(node: mi.Type) -> list[Any]:
    members = node.types if isinstance(node, mi.UnionType) else (node,)
    values = [v for t in members if isinstance(t, mi.LiteralType) for v in t.values]
    if values and any(isinstance(t, mi.BoolType) for t in members):
        values += [True, False]
    return values


def _value_at(text: bytes, parts: list[str | int]) -> Any:
    value: Any = msgspec.toml.decode(text)
    for part in parts:
        value = value[part]
    return value


def _explain(error: msgspec.ValidationError, text: bytes) -> tuple[str, str]:
    """(dotted key, what is wrong) for one of msgspec's messages; the value is looked up in
    the file for bounds and choices only, so no unconstrained string (a DSN) is ever shown."""
    match = _AT.match(str(error))
    assert match is not None  # the pattern matches any text
    what, path = match["what"], match["path"] or ""
    parts: list[str | int] = [int(m[2]) if m[2] is not None else m[1] for m in _PART.finditer(path)]
    if found := _UNKNOWN.fullmatch(what):
        top = "" if parts else f" (expected one of {', '.join(_File.__struct_fields__)})"
        return _dotted([*parts, found["key"]]), f"unknown key{top}"
    if found := _MISSING.fullmatch(what):
        return _dotted([*parts, found["key"]]), "is missing"
    node, description = _type_at(parts)
    if choices := _choices(node):
        value = _value_at(text, parts)
        if description and parts and isinstance(parts[-1], int):
            listed = ", ".join(map(str, choices))
            return _dotted(parts[:-1]), f"unknown {description} {value!r} (use {listed})"
        listed = ", ".join(map(repr, choices))
        return _dotted(parts), f"must be one of {listed}, got {value!r}"
    if found := _TYPE.fullmatch(what):
        want = " or ".join(_NAMES.get(n, n) for n in found["want"].split(" | "))
        return _dotted(parts), f"expected {want}, got {_GOT.get(found['got'], found['got'])}"
    if found := _BOUND.fullmatch(what):
        value = _value_at(text, parts)
        bound = float(found["bound"])
        return _dotted(parts), f"must be {_OPS[found['op']]} {bound:g}, got {value}"
    if what == "Expected `str` of length >= 1":
        return _dotted(parts), "must not be empty"
    if description:  # a pattern: the description says it in words
        return _dotted(parts), f"must be {description}, got {_value_at(text, parts)!r}"
    return _dotted(parts), what


def _path_hook(kind: type, value: Any) -> Any:
    """Paths are strings in the file; an empty one would silently mean the file's folder."""
    if kind is Path:
        if not isinstance(value, str):
            raise TypeError(f"Expected `str`, got `{type(value).__name__}`")
        if not value:
            raise ValueError("must not be empty")
        return Path(value)
    raise NotImplementedError(kind)


# --------------------------------------------------------------------------------------------
# ${NAME} references.

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Unset(Exception):
    """No value for a reference: the variables that were tried, outermost first."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__(*names)
        self.names = names

    def message(self) -> str:
        if len(self.names) == 1:
            return f"environment variable {self.names[0]} is not set"
        return f"environment variables {' and '.join(self.names)} are not set"


def _expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}`` as a POSIX shell does, so secrets can stay
    out of the file: the default (which may itself be a reference, for a fallback chain such
    as ``${SPOTIFY_CLIENT_ID:-${SPOTIPY_CLIENT_ID}}``) replaces an unset or empty variable and
    is only expanded when it is used. `_Unset` or ValueError (malformed) otherwise."""
    out: list[str] = []
    pos = 0
    while (start := text.find("${", pos)) >= 0:
        name = _NAME.match(text, start + 2)
        if name is None:
            raise ValueError("a ${ is not followed by a variable name")
        end, default = name.end(), None
        if text.startswith(":-", end):
            close = _closing_brace(text, end + 2, name[0])
            end, default = close, text[end + 2 : close]
        elif not text.startswith("}", end):
            raise ValueError(f"the reference to {name[0]} has no closing }}")
        out += [text[pos:start], _lookup(name[0], default, environ)]
        pos = end + 1
    return "".join(out) + text[pos:]


def _closing_brace(text: str, begin: int, name: str) -> int:
    depth = 1
    for index in range(begin, len(text)):
        if text.startswith("${", index):
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"the reference to {name} has no closing }}")


def _lookup(name: str, default: str | None, environ: Mapping[str, str]) -> str:
    value = environ.get(name)
    if value or default is None:
        if value is None:
            raise _Unset((name,))
        return value
    try:
        return _expand_env(default, environ)
    except _Unset as exc:
        raise _Unset((name, *exc.names)) from None


# --------------------------------------------------------------------------------------------
# Resolution: what the types cannot say.


class _Resolver:
    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}")

    def expand(self, key: str, text: str, hint: str = "") -> str:
        try:
            return _expand_env(text, self.environ).strip()
        except _Unset as exc:
            raise self.fail(key, exc.message() + hint) from None
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def credentials(self, tables: tuple[Credential, ...]) -> tuple[Credential, ...]:
        result = []
        for index, table in enumerate(tables):
            key = f"credentials[{index}]"
            hint = "; crawl the built-in simulator with --sim, which needs none"
            values = {
                name: self.expand(f"{key}.{name}", getattr(table, name), hint)
                for name in ("client_id", "client_secret", "account")
            }
            for name in ("client_id", "client_secret"):
                if not values[name]:
                    raise self.fail(f"{key}.{name}", "is missing or empty")
            values["account"] = values["account"] or values["client_id"]
            result.append(msgspec.structs.replace(table, **values))
        if not result:
            result = list(credentials_from_env(self.environ))
        if not result:
            raise self.fail(
                "credentials",
                "none configured; add [[credentials]] or set SPOTIFY_CLIENT_ID and "
                "SPOTIFY_CLIENT_SECRET (or SPOTIPY_*)",
            )
        return tuple(result)

    def seeds(self, seeds: _SeedsFile) -> SeedsConfig:
        values: dict[str, tuple[str, ...]] = {}
        for kind in SEED_KINDS:
            try:
                values[kind] = tuple(parse_seed(kind, s) for s in getattr(seeds, kind))
            except ValueError as exc:
                raise self.fail(f"seeds.{kind}", str(exc)) from None
        search = tuple(SearchSeed(s) if isinstance(s, str) else s for s in seeds.search)
        if any(not s.q.strip() for s in search):
            raise self.fail("seeds.search", "a search query must not be empty")
        return SeedsConfig(**values, search=search)

    def api(self, api: ApiConfig) -> ApiConfig:
        origin = _api_origin(api.base_url)
        if origin is None:
            raise self.fail(
                "api.base_url",
                f"expected the API's base URL ({DEFAULT_API_ORIGIN}/v1) or its origin, "
                f"got {api.base_url!r}",
            )
        return msgspec.structs.replace(api, base_url=origin)

    def crawl(self, crawl: CrawlConfig) -> CrawlConfig:
        base = self.path.resolve().parent
        checkpoint = crawl.checkpoint and base / crawl.checkpoint
        return msgspec.structs.replace(crawl, out_dir=base / crawl.out_dir, checkpoint=checkpoint)

    def store(self, store: StoreConfig) -> StoreConfig:
        if store.backend != "postgres":
            if store.dsn:
                raise self.fail("store.dsn", 'is only used with store.backend = "postgres"')
            return store
        dsn = self.expand("store.dsn", store.dsn)
        if not dsn:
            raise self.fail("store.dsn", 'is missing or empty; store.backend = "postgres" needs it')
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise self.fail("store.dsn", "expected a postgresql://user:password@host:port/db URL")
        return msgspec.structs.replace(store, dsn=dsn)


def _api_origin(url: str) -> str | None:
    """``https://api.spotify.com`` for that origin and for the ``/v1`` base Spotify documents
    (the client appends ``/v1/...`` itself); None for any other path."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        return None
    if parts.path.rstrip("/") not in ("", "/v1"):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def credentials_from_env(environ: Mapping[str, str]) -> tuple[Credential, ...]:
    """The spotipy-compatible fallback when crawl.toml configures no credentials."""
    for id_var, secret_var in ENV_CREDENTIALS:
        client_id, secret = environ.get(id_var, "").strip(), environ.get(secret_var, "").strip()
        if client_id and secret:
            return (Credential(client_id, secret, client_id),)
    return ()


SIM_CREDENTIAL = Credential(
    DEFAULT_CLIENT.client_id, DEFAULT_CLIENT.client_secret, DEFAULT_CLIENT.account
)


def _simulator_credentials(tables: tuple[Credential, ...]) -> tuple[Credential, ...]:
    """The credentials ``--sim`` serves and uses: one per ``[[credentials]]`` table (or one),
    keeping its account, rate and window, so the simulated crawl is paced like the real one.

    Nothing is expanded: the simulator needs no secret, and an account spelled as a
    reference still groups the same tables.
    """
    apps = [SIM_CREDENTIAL]
    if len(tables) > 1:
        apps = [Credential(f"sim-client-{n}", f"sim-secret-{n}") for n in range(1, len(tables) + 1)]
    return tuple(
        msgspec.structs.replace(
            app,
            account=table.account or app.account or app.client_id,
            rate=table.rate,
            window_s=table.window_s,
        )
        for app, table in zip(apps, tables or apps, strict=True)
    )


def load_config(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    *,
    sim: bool = False,
    credentials: bool = True,
) -> Config:
    """Parse and validate ``path``; relative paths inside it are relative to the file.

    ``sim``: the simulator's credentials replace the file's (`_simulator_credentials`).
    ``credentials=False`` (commands that call no API): credentials are checked for shape
    only, never expanded, and the result has none.
    """
    path = Path(path)
    resolve = _Resolver(path, os.environ if environ is None else environ)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    try:
        file = msgspec.toml.decode(text, type=_File, dec_hook=_path_hook)
    except msgspec.ValidationError as exc:
        raise resolve.fail(*_explain(exc, text)) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    if not credentials:
        creds: tuple[Credential, ...] = ()
    elif sim:
        creds = _simulator_credentials(file.credentials)
    else:
        creds = resolve.credentials(file.credentials)
    return Config(
        path=path,
        credentials=creds,
        api=resolve.api(file.api),
        seeds=resolve.seeds(file.seeds),
        expand=msgspec.structs.replace(
            file.expand, artist_albums=tuple(dict.fromkeys(file.expand.artist_albums))
        ),
        crawl=resolve.crawl(file.crawl),
        sim=file.sim,
        output=file.output,
        store=resolve.store(file.store),
    )
