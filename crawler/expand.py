"""What each operation fetches and which new tasks its response leads to (the "spider").

Handlers never touch the disk: they turn one unit of tasks into an ``Outcome`` that the
checkpoint applies atomically. Responses are checked for shape here, so a malformed object is
a recorded failure of its task and can never become a line of output.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from crawler.client import SpotifyClient
from crawler.config import ExpandConfig
from crawler.ids import is_spotify_id
from crawler.tasks import Op, Outcome, State, Task, paged_key, split_paged_key

ALBUM_TRACKS_PAGE = 50
PLAYLIST_ITEMS_PAGE = 50


class BadShape(Exception):
    """A response that parsed as JSON but is not the object the API documents."""


def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def _entity(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise BadShape(f"expected an object with an id, got {type(obj).__name__}")
    return obj


def _items(page: Any) -> list[Any]:
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise BadShape("expected a paging object with items")
    return page["items"]


def _further_offsets(page: dict[str, Any], first: int, step: int) -> range:
    total = page.get("total")
    if not isinstance(total, int) or isinstance(total, bool):
        raise BadShape("paging object without an integer total")
    return range(first, total, step)


class Expander:
    def __init__(
        self, client: SpotifyClient, expand: ExpandConfig, seed_tracks: frozenset[str] = frozenset()
    ) -> None:
        self.client = client
        self.expand = expand
        # Other tracks were seen (with their credits) on an album page or in a playlist
        # before they were fetched: only seed tracks have edges still to follow.
        self._seed_tracks = seed_tracks
        self._batch_handlers: dict[Op, Callable[[list[Task], Outcome], Awaitable[None]]] = {
            Op.ARTIST: self._artists,
            Op.ALBUM: self._albums,
            Op.TRACK: self._tracks,
            Op.FEATURES: self._features,
        }
        self._single_handlers: dict[Op, Callable[[Task, Outcome], Awaitable[State]]] = {
            Op.RELATED: self._related,
            Op.ARTIST_ALBUMS: self._artist_albums,
            Op.ALBUM_TRACKS: self._album_tracks,
            Op.PLAYLIST: self._playlist,
            Op.PLAYLIST_ITEMS: self._playlist_items,
            Op.SEARCH: self._search,
        }

    # Which edges are live; the client's capabilities turn some off as it learns.

    def full_tracks(self) -> bool:
        """Fetch full track objects, or keep the simplified ones from album pages?"""
        if self.expand.tracks == "auto":
            return self.client.capabilities.batch_tracks is True
        return bool(self.expand.tracks)

    def edge_enabled(self, op: Op) -> bool:
        caps = self.client.capabilities
        if op is Op.RELATED:
            return self.expand.related_artists and caps.related_artists is not False
        if op is Op.FEATURES:
            return self.expand.audio_features and caps.audio_features is not False
        return True

    async def run(self, op: Op, tasks: list[Task]) -> Outcome:
        outcome = Outcome()
        if not self.edge_enabled(op):
            outcome.states = [(t, State.SKIPPED) for t in tasks]
            return outcome
        if op in self._batch_handlers:
            await self._batch_handlers[op](tasks, outcome)
        else:
            (task,) = tasks  # one call per task: the scheduler never groups these
            outcome.states.append((task, await self._single_handlers[op](task, outcome)))
        return outcome

    # ------------------------------------------------------------ batchable entities

    async def _batch(
        self,
        tasks: list[Task],
        outcome: Outcome,
        fetch: Callable[[Sequence[str]], Awaitable[list[dict[str, Any] | None]]],
        follow: Callable[[dict[str, Any], Outcome], None] | None = None,
    ) -> None:
        objects = await fetch([t.key for t in tasks])
        if len(objects) != len(tasks):
            raise BadShape(f"asked for {len(tasks)} objects, got {len(objects)}")
        for task, obj in zip(tasks, objects, strict=True):
            if obj is None:
                outcome.states.append((task, State.MISSING))
                continue
            marks = len(outcome.discovered), len(outcome.new_lines)
            try:
                entity = _entity(obj)
                if follow is not None:
                    follow(entity, outcome)
            except BadShape as exc:
                # A bad object adds nothing at all: take back what it had added.
                del outcome.discovered[marks[0] :], outcome.new_lines[marks[1] :]
                outcome.states.append((task, State.FAILED))
                outcome.failures.append((task, f"unexpected response: {exc}"))
                continue
            outcome.lines.append((task.op, _line(entity)))
            outcome.states.append((task, State.DONE))

    async def _artists(self, tasks: list[Task], outcome: Outcome) -> None:
        await self._batch(tasks, outcome, self.client.artists, self._follow_artist)

    def _follow_artist(self, artist: dict[str, Any], outcome: Outcome) -> None:
        if self.edge_enabled(Op.RELATED):
            outcome.discovered.append((Op.RELATED, artist["id"]))
        if self.expand.artist_albums:
            outcome.discovered.append((Op.ARTIST_ALBUMS, paged_key(artist["id"], 0)))

    async def _albums(self, tasks: list[Task], outcome: Outcome) -> None:
        await self._batch(tasks, outcome, self.client.albums, self._follow_album)

    def _follow_album(self, album: dict[str, Any], outcome: Outcome) -> None:
        if not self.expand.album_tracks:
            return
        page = album.get("tracks")
        items = _items(page)
        self._take_tracks(items, outcome, album_id=album["id"])
        for offset in _further_offsets(page, len(items), ALBUM_TRACKS_PAGE):
            outcome.discovered.append((Op.ALBUM_TRACKS, paged_key(album["id"], offset)))

    async def _tracks(self, tasks: list[Task], outcome: Outcome) -> None:
        await self._batch(tasks, outcome, self.client.tracks, self._seed_track_edges)

    def _seed_track_edges(self, track: dict[str, Any], outcome: Outcome) -> None:
        if track["id"] in self._seed_tracks:
            self._track_edges(track, outcome)

    async def _features(self, tasks: list[Task], outcome: Outcome) -> None:
        await self._batch(tasks, outcome, self.client.audio_features)

    # ------------------------------------------------------------ one task per call

    async def _related(self, task: Task, outcome: Outcome) -> State:
        self._take_artists(await self.client.related_artists(task.key), outcome)
        return State.DONE

    async def _search(self, task: Task, outcome: Outcome) -> State:
        self._take_artists(await self.client.search_artists(task.key), outcome)
        return State.DONE

    async def _artist_albums(self, task: Task, outcome: Outcome) -> State:
        artist_id, offset = split_paged_key(task.key)
        page = await self.client.artist_albums(artist_id, self.expand.artist_albums, offset)
        for album in _items(page):
            outcome.discovered.append((Op.ALBUM, _entity(album)["id"]))
        if offset == 0:
            limit = page.get("limit")
            if not isinstance(limit, int) or limit < 1:
                raise BadShape("artist albums page without a positive limit")
            for more in _further_offsets(page, limit, limit):
                outcome.discovered.append((Op.ARTIST_ALBUMS, paged_key(artist_id, more)))
        return State.DONE

    async def _album_tracks(self, task: Task, outcome: Outcome) -> State:
        album_id, offset = split_paged_key(task.key)
        page = await self.client.album_tracks(album_id, offset)
        self._take_tracks(_items(page), outcome, album_id=album_id)
        return State.DONE

    async def _playlist(self, task: Task, outcome: Outcome) -> State:
        playlist = await self.client.playlist(task.key)
        if playlist is None:
            return State.MISSING
        page = playlist.get("items", playlist.get("tracks"))
        items = _items(page)
        self._take_playlist_items(items, outcome)
        for offset in _further_offsets(page, len(items), PLAYLIST_ITEMS_PAGE):
            outcome.discovered.append((Op.PLAYLIST_ITEMS, paged_key(task.key, offset)))
        return State.DONE

    async def _playlist_items(self, task: Task, outcome: Outcome) -> State:
        playlist_id, offset = split_paged_key(task.key)
        page = await self.client.playlist_items(playlist_id, offset)
        self._take_playlist_items(_items(page), outcome)
        return State.DONE

    # ------------------------------------------------------------ shared expansion

    def _take_artists(self, artists: Any, outcome: Outcome) -> None:
        if not isinstance(artists, list):
            raise BadShape("expected a list of artists")
        for artist in artists:
            outcome.discovered.append((Op.ARTIST, _entity(artist)["id"]))

    def _take_playlist_items(self, items: list[Any], outcome: Outcome) -> None:
        for item in items:
            if not isinstance(item, dict):
                raise BadShape("playlist item is not an object")
            track = item.get("track", item.get("item"))
            # Removed tracks, local files and podcast episodes are not catalog tracks.
            if (
                isinstance(track, dict)
                and track.get("type", "track") == "track"
                and is_spotify_id(track.get("id"))
            ):
                self._take_track(track, outcome, album_id=None)

    def _take_tracks(self, tracks: list[Any], outcome: Outcome, album_id: str) -> None:
        for track in tracks:
            self._take_track(_entity(track), outcome, album_id=album_id)

    def _take_track(self, track: dict[str, Any], outcome: Outcome, album_id: str | None) -> None:
        """A track seen on an album page or in a playlist: fetch it, or keep it as it is."""
        if self.full_tracks():
            outcome.discovered.append((Op.TRACK, track["id"]))
        else:
            kept = track if album_id is None else {**track, "album": {"id": album_id}}
            outcome.new_lines.append((Op.TRACK, track["id"], _line(kept)))
        self._track_edges(track, outcome)

    def _track_edges(self, track: dict[str, Any], outcome: Outcome) -> None:
        if self.expand.track_artists:
            artists = track.get("artists")
            if not isinstance(artists, list):
                raise BadShape("track without an artists list")
            # Local files credit artists without an id: nothing to crawl there.
            outcome.discovered.extend(
                (Op.ARTIST, artist["id"])
                for artist in artists
                if isinstance(artist, dict) and is_spotify_id(artist.get("id"))
            )
        if self.edge_enabled(Op.FEATURES):
            outcome.discovered.append((Op.FEATURES, track["id"]))
