"""What this app may call: batch endpoints, page sizes, optional edges.

Spotify gives development-mode apps (2026) a reduced API: no batch GETs of artists, albums or
tracks, artist-album and search pages of at most 10, no related artists and no audio
features; playlist items come in pages of 50 "or less where the app is restricted". In mode
"auto" the client learns these from the first refusal; the engine persists the result in its
checkpoint so a resumed crawl starts with it instead of probing again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from crawler.core.config import ApiMode
from crawler.core.kinds import ENTITIES, Flag, Op

PageLimit = Literal["artist_albums_limit", "search_limit", "playlist_items_limit"]
Learnable = Flag | PageLimit

FULL_PAGE_LIMIT = 50
# Development mode's page size (February 2026), also where a restricted app's 50 was refused.
DEVELOPMENT_PAGE_LIMIT = 10


@dataclass
class Capabilities:
    """None means "not known yet": the client tries the full API and learns from a refusal.

    ``changed`` is set whenever something is learned; the engine clears it once persisted.
    """

    batch_artists: bool | None = None
    batch_albums: bool | None = None
    batch_tracks: bool | None = None
    artist_albums_limit: int = FULL_PAGE_LIMIT
    related_artists: bool | None = None
    audio_features: bool | None = None
    search_limit: int = FULL_PAGE_LIMIT
    playlist_items_limit: int = FULL_PAGE_LIMIT
    # Requests per window measured for each account with an unknown rate (rate = 0), so a
    # resumed crawl paces to them from its first request instead of slow-starting into them.
    budgets: dict[str, int] = field(default_factory=dict)
    changed: bool = field(default=False, compare=False)

    @classmethod
    def for_mode(cls, mode: ApiMode) -> Capabilities:
        if mode == "extended":
            return cls(
                batch_artists=True,
                batch_albums=True,
                batch_tracks=True,
                related_artists=True,
                audio_features=True,
            )
        if mode == "development":
            # Playlist pages keep 50 until refused: not every restricted app is refused it.
            return cls(
                batch_artists=False,
                batch_albums=False,
                batch_tracks=False,
                artist_albums_limit=DEVELOPMENT_PAGE_LIMIT,
                related_artists=False,
                audio_features=False,
                search_limit=DEVELOPMENT_PAGE_LIMIT,
            )
        return cls()

    def batch_size(self, op: Op) -> int:
        """How many tasks of ``op`` the engine should group into one call."""
        kind = ENTITIES.get(op)
        if kind is None:
            return 1
        return 1 if getattr(self, kind.flag) is False else kind.batch_size

    def learn(self, name: Learnable, value: bool | int) -> bool:
        """Record a learned value; True if it is news (the caller then logs it, once)."""
        if getattr(self, name) == value:
            return False
        setattr(self, name, value)
        self.changed = True
        return True

    def measured(self, account: str, requests: int) -> None:
        """Record an account's measured budget (requests per window)."""
        if self.budgets.get(account) != requests:
            self.budgets[account] = requests
            self.changed = True

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "changed"}
        data["budgets"] = dict(self.budgets)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capabilities:
        """Inverse of to_dict; keys it does not know (from another version) are ignored, and
        keys it misses (an older checkpoint) keep their "not known yet" default."""
        known = {f.name for f in fields(cls)} - {"changed"}
        return cls(**{k: v for k, v in data.items() if k in known})

    def merge(self, stored: dict[str, Any]) -> bool:
        """Take what other processes sharing the crawl learned (``stored``, from the store):
        a flag this one does not know yet, a smaller page limit, an account's budget it has
        not measured. True if this one knows something ``stored`` lacks, so it should be
        stored again (two processes that learned different things at once both write; the
        one written second lacks the other's, and the next commit of the other puts it back)."""
        theirs = Capabilities.from_dict(stored)
        lacking = False
        for f in fields(self):
            name = f.name
            if name in ("budgets", "changed"):
                continue
            mine, other = getattr(self, name), getattr(theirs, name)
            if isinstance(mine, int) and not isinstance(mine, bool):  # a page limit
                setattr(self, name, min(mine, other))
                lacking |= mine < other
            elif mine is None:
                setattr(self, name, other)
            else:
                lacking |= other is None
        for account, requests in theirs.budgets.items():
            self.budgets.setdefault(account, requests)
        return lacking or not self.budgets.keys() <= theirs.budgets.keys()
