"""What each operation fetches and which new tasks its response leads to (the "spider").

Handlers never touch the disk: they turn one unit of tasks into an ``Outcome`` that the
checkpoint applies atomically. Responses are checked for shape here, so a malformed object is
a recorded failure of its task and can never become a line of output.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec
import orjson
from msgspec import Raw

from crawler.api.client import SpotifyClient
from crawler.api.schema import (
    NULL,
    Page,
    Track,
    decode_album,
    decode_entity,
    decode_item_ref,
    decode_playlist_item,
    decode_track,
)
from crawler.core.config import ExpandConfig, OutputConfig
from crawler.core.ids import is_spotify_id
from crawler.core.kinds import ENTITIES, Op, State
from crawler.core.tasks import (
    Outcome,
    PlaylistPage,
    SearchPageKey,
    Task,
    paged_key,
    split_paged_key,
)

ALBUM_TRACKS_PAGE = 50
PLAYLIST_ITEMS_PAGE = 50
BadShape = msgspec.ValidationError  # an object that parsed but is not what the API documents


# The ops a unit of each op may add tasks to. Every new track brings its audio-features task
# (the checkpoint adds it), so whatever finds tracks also finds features. Tracks lead on to
# artists only when they are seeds (see ``_follow_track``).
LEADS_TO: dict[Op, frozenset[Op]] = {
    Op.ARTIST: frozenset({Op.RELATED, Op.ARTIST_ALBUMS}),
    Op.RELATED: frozenset({Op.ARTIST}),
    # Searches find artists, albums, playlists or tracks (whose credits they follow).
    Op.SEARCH: frozenset({Op.ARTIST, Op.ALBUM, Op.PLAYLIST, Op.TRACK, Op.FEATURES}),
    Op.ARTIST_ALBUMS: frozenset({Op.ALBUM, Op.ARTIST_ALBUMS}),
    Op.ALBUM: frozenset({Op.TRACK, Op.FEATURES, Op.ALBUM_TRACKS, Op.ARTIST}),
    Op.ALBUM_TRACKS: frozenset({Op.TRACK, Op.FEATURES, Op.ARTIST}),
    Op.PLAYLIST: frozenset({Op.PLAYLIST_ITEMS, Op.TRACK, Op.FEATURES, Op.ARTIST}),
    Op.PLAYLIST_ITEMS: frozenset({Op.PLAYLIST_ITEMS, Op.TRACK, Op.FEATURES, Op.ARTIST}),
    Op.TRACK: frozenset(),
    Op.FEATURES: frozenset(),
}


def feeders(seed_tracks: bool) -> dict[Op, frozenset[Op]]:
    """For each op, every op whose units may lead to it, directly or through others."""
    leads = {**LEADS_TO, Op.TRACK: frozenset({Op.ARTIST}) if seed_tracks else frozenset()}
    reach = {op: set(leads[op]) for op in Op}
    changed = True
    while changed:  # transitive closure of a ten-node graph
        changed = False
        for targets in reach.values():
            for via in list(targets):
                if not reach[via] <= targets:
                    targets |= reach[via]
                    changed = True
    return {op: frozenset(src for src in Op if op in reach[src]) for op in Op}


def _further_offsets(page: Page, step: int) -> range:
    """Offsets of the pages after ``page``, whose items start at offset 0."""
    return range(len(page.items), page.total, step)


class Expander:
    def __init__(
        self,
        client: SpotifyClient,
        expand: ExpandConfig,
        output: OutputConfig,
        seed_tracks: frozenset[str] = frozenset(),
    ) -> None:
        self.client = client
        self.expand = expand
        self.output = output
        self._seed_tracks = seed_tracks
        self.feeders = feeders(bool(seed_tracks))
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
        fetch: Callable[[Sequence[str]], Awaitable[list[Raw | None]]],
        follow: Callable[[Task, Raw, Outcome], None] | None = None,
    ) -> None:
        objects = await fetch([t.key for t in tasks])
        for task, raw in zip(tasks, objects, strict=True):
            if raw is None:
                outcome.states.append((task, State.MISSING))
                continue
            marks = len(outcome.discovered), len(outcome.new_lines)
            try:
                if follow is None:
                    decode_entity(raw)
                else:
                    follow(task, raw, outcome)
            except BadShape as exc:
                # A bad object adds nothing at all: take back what it had added.
                del outcome.discovered[marks[0] :], outcome.new_lines[marks[1] :]
                outcome.states.append((task, State.FAILED))
                outcome.failures.append((task, f"unexpected response: {exc}"))
                continue
            outcome.records.append((ENTITIES[task.op].stream, raw))
            outcome.states.append((task, State.DONE))

    async def _artists(self, tasks: list[Task], outcome: Outcome) -> None:
        await self._batch(tasks, outcome, self.client.artists, self._follow_artist)

    def _follow_artist(self, task: Task, raw: Raw, outcome: Outcome) -> None:
        decode_entity(raw)
        if self.edge_enabled(Op.RELATED):
            outcome.discovered.append((Op.RELATED, task.key))
        if self.expand.artist_albums:
            outcome.discovered.append((Op.ARTIST_ALBUMS, paged_key(task.key, 0)))

    async def _albums(self, tasks: list[Task], outcome: Outcome) -> None:
        await self._batch(tasks, outcome, self.client.albums, self._follow_album)

    def _follow_album(self, task: Task, raw: Raw, outcome: Outcome) -> None:
        album = decode_album(raw)
        if not self.expand.album_tracks:
            return
        page = album.tracks
        self._take_tracks(page.items, outcome, album_id=task.key)
        for offset in _further_offsets(page, ALBUM_TRACKS_PAGE):
            outcome.discovered.append((Op.ALBUM_TRACKS, paged_key(task.key, offset)))

    async def _tracks(self, tasks: list[Task], outcome: Outcome) -> None:
        await self._batch(tasks, outcome, self.client.tracks, self._follow_track)

    def _follow_track(self, task: Task, raw: Raw, outcome: Outcome) -> None:
        # Other tracks were seen, with their credits, on an album page or in a playlist
        # before they were fetched: only seed tracks have edges still to follow.
        if task.key in self._seed_tracks:
            self._track_edges(decode_track(raw), outcome)
        else:
            decode_entity(raw)

    async def _features(self, tasks: list[Task], outcome: Outcome) -> None:
        await self._batch(tasks, outcome, self.client.audio_features)

    # ------------------------------------------------------------ one task per call

    async def _related(self, task: Task, outcome: Outcome) -> State:
        related = await self.client.related_artists(task.key)
        self._take_artists(related, outcome)
        if self.output.related_artists:
            outcome.records.extend(
                ("related_artists", _edge(artist_id=task.key, related_artist_id=b, rank=k))
                for k, b in enumerate(related)
            )
        return State.DONE

    async def _search(self, task: Task, outcome: Outcome) -> State:
        """One page of a search seed: its results become seeds of their kind."""
        seed = SearchPageKey.of(task.key)
        page = await self.client.search(seed.type, seed.q, seed.offset, seed.limit - seed.offset)
        found = _SEARCH_FINDS[seed.type]
        outcome.discovered.extend((found, i) for i in page.ids[: seed.limit - seed.offset])
        if self.expand.track_artists:  # found tracks lead on as seed tracks do
            self._take_artists(page.credits, outcome)
        if seed.offset == 0:
            if page.limit < 1:
                raise BadShape("search page without a positive limit")
            for more in range(page.limit, min(seed.limit, page.total), page.limit):
                key = seed._replace(offset=more).key
                outcome.discovered.append((Op.SEARCH, key))
        return State.DONE if page.total else State.MISSING

    async def _artist_albums(self, task: Task, outcome: Outcome) -> State:
        artist_id, offset = split_paged_key(task.key)
        page = await self.client.artist_albums(artist_id, self.expand.artist_albums, offset)
        outcome.discovered.extend((Op.ALBUM, album.id) for album in page.items)
        if self.output.artist_albums:
            outcome.records.extend(
                (
                    "artist_albums",
                    _edge(
                        artist_id=artist_id,
                        album_id=album.id,
                        album_group=album.album_group,
                        position=offset + i,
                    ),
                )
                for i, album in enumerate(page.items)
            )
        if offset == 0:
            if page.limit < 1:
                raise BadShape("artist albums page without a positive limit")
            for more in range(page.limit, page.total, page.limit):
                outcome.discovered.append((Op.ARTIST_ALBUMS, paged_key(artist_id, more)))
        return State.DONE

    async def _album_tracks(self, task: Task, outcome: Outcome) -> State:
        album_id, offset = split_paged_key(task.key)
        page = await self.client.album_tracks(album_id, offset)
        self._take_tracks(page.items, outcome, album_id=album_id)
        return State.DONE

    async def _playlist(self, task: Task, outcome: Outcome) -> State:
        fetched = await self.client.playlist(task.key)
        if fetched is None:
            return State.MISSING
        raw, playlist = fetched
        if self.output.playlists:
            outcome.records.append(("playlists", raw))
        page = playlist.page
        first = PlaylistPage(task.key, 0, len(page.items), playlist.snapshot_id)
        self._take_playlist_items(first, page.items, outcome)
        step = self.client.capabilities.playlist_items_limit
        for offset in _further_offsets(page, step):
            later = first._replace(offset=offset, end=min(offset + step, page.total))
            outcome.discovered.append((Op.PLAYLIST_ITEMS, later.key))
        return State.DONE

    async def _playlist_items(self, task: Task, outcome: Outcome) -> State:
        planned = PlaylistPage.of(task.key, PLAYLIST_ITEMS_PAGE)
        page = await self.client.playlist_items(planned.playlist_id, planned.offset)
        items = page.items[: planned.end - planned.offset]
        self._take_playlist_items(planned, items, outcome)
        reached = planned.offset + len(items)
        if items and reached < min(planned.end, page.total):
            # Served a shorter page than planned (the app was refused the larger limit since):
            # the rest of the range is a page of its own.
            outcome.discovered.append((Op.PLAYLIST_ITEMS, planned._replace(offset=reached).key))
        return State.DONE

    # ------------------------------------------------------------ shared expansion

    def _take_artists(self, artist_ids: list[str], outcome: Outcome) -> None:
        outcome.discovered.extend((Op.ARTIST, i) for i in artist_ids)

    def _take_playlist_items(self, page: PlaylistPage, items: list[Raw], outcome: Outcome) -> None:
        """Every entry is a record (tracks, episodes, local files, removed tracks); only
        catalog tracks are followed."""
        for position, raw_item in enumerate(items, start=page.offset):
            item = decode_playlist_item(raw_item)
            held = item.content
            ref = None if held == NULL else decode_item_ref(held)
            if self.output.playlist_items:
                record = _edge(
                    playlist_id=page.playlist_id,
                    snapshot_id=page.snapshot,
                    position=position,
                    item_type=None if ref is None else ref.type,
                    item_id=None if ref is None else ref.id,
                    added_at=item.added_at,
                    added_by=None if item.added_by is None else item.added_by.id,
                    is_local=item.is_local,
                )
                outcome.records.append(("playlist_items", record))
            # Local files and podcast episodes are not catalog tracks.
            if ref is not None and ref.type == "track" and is_spotify_id(ref.id):
                self._take_track(decode_track(held), held, outcome, album_id=None)

    def _take_tracks(self, items: list[Raw], outcome: Outcome, album_id: str) -> None:
        for raw in items:
            self._take_track(decode_track(raw), raw, outcome, album_id=album_id)

    def _take_track(self, track: Track, raw: Raw, outcome: Outcome, album_id: str | None) -> None:
        """A track seen on an album page or in a playlist: fetch it, or keep it as it is."""
        if self.full_tracks():
            outcome.discovered.append((Op.TRACK, track.id))
        else:
            outcome.new_lines.append((Op.TRACK, track.id, _with_album(raw, album_id)))
        self._track_edges(track, outcome)

    def _track_edges(self, track: Track, outcome: Outcome) -> None:
        # A track's audio features need no edge here: the checkpoint adds that task beside
        # every new track task (see ``Checkpoint.commit``).
        if self.expand.track_artists:
            # Local files credit artists without an id: nothing to crawl there.
            outcome.discovered.extend(
                (Op.ARTIST, artist.id) for artist in track.artists if is_spotify_id(artist.id)
            )


# What the results of each kind of search are: seeds of that kind.
_SEARCH_FINDS: dict[str, Op] = {
    "artist": Op.ARTIST,
    "album": Op.ALBUM,
    "track": Op.TRACK,
    "playlist": Op.PLAYLIST,
}


def _edge(**fields: object) -> bytes:
    """An edge record: compact JSON, its fields in the order given (the public format)."""
    return orjson.dumps(fields)


def _with_album(raw: Raw, album_id: str | None) -> bytes:
    """A simplified track from an album page, with the album's id added (full tracks have it)."""
    data = bytes(raw)
    if album_id is None:
        return data
    return b"".join((data[:-1], b',"album":{"id":"', album_id.encode(), b'"}}'))
