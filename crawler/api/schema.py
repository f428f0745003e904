"""The few fields of Spotify's objects that the crawl relies on, as msgspec views.

Responses are decoded once, straight from bytes, into these views: an object the crawl only
writes out stays a ``Raw`` slice of the response (its output line is the API's own bytes, and
no Python dict is ever built for it), and an object it follows is decoded into the handful of
fields it needs. A response missing one of them fails validation, which the transport treats
like a truncated body (retry) and the expander like a malformed object (recorded failure).
"""

from __future__ import annotations

import msgspec
from msgspec import Raw, Struct

NULL = Raw(b"null")


class Ref(Struct):
    """An artist credited on a track: local files credit artists without an id."""

    id: str | None = None


class Entity(Struct):
    """Any catalog object: all the crawl needs to write it is that it has an id."""

    id: str


class Track(Struct):
    """A full or simplified track: its id and credits, which lead to more artists."""

    id: str
    artists: list[Ref]
    type: str = "track"


class Page(Struct):
    """A paging object whose items are kept as raw bytes."""

    items: list[Raw]
    total: int
    limit: int = 0


class ArtistAlbum(Struct):
    """An item of an artist's albums: which album, and as what (None where the API omits it,
    as development mode does)."""

    id: str
    album_group: str | None = None


class ArtistAlbumsPage(Struct):
    items: list[ArtistAlbum]
    total: int
    limit: int


class SearchHit(Struct):
    """A search result: its id, and (a track's) credited artists, which a search of tracks
    leads to as a seed track does."""

    id: str
    artists: list[Ref] = []


class SearchItems(Struct):
    """One result type's page of a search; playlist results hold nulls for hidden playlists."""

    items: list[SearchHit | None]
    total: int
    limit: int
    offset: int = 0


class SearchResults(Struct):
    artists: SearchItems | None = None
    albums: SearchItems | None = None
    tracks: SearchItems | None = None
    playlists: SearchItems | None = None


class Album(Struct):
    """A full album: its id and the first page of its tracks, embedded."""

    id: str
    tracks: Page


class Playlist(Struct):
    """A playlist embeds its first page of items (the 2026 API calls it ``items``)."""

    id: str
    snapshot_id: str | None = None  # names the version its items were read from
    items: Page | None = None
    tracks: Page | None = None

    @property
    def page(self) -> Page:
        page = self.items or self.tracks
        if page is None:
            raise msgspec.ValidationError("playlist without items")
        return page


class User(Struct):
    id: str | None = None


class PlaylistItem(Struct):
    """An entry of a playlist: a track, an episode, a local file (``is_local``, its id null),
    or null for a track that is gone; ``item`` in the 2026 API, ``track`` before.

    Every field may be null or missing, as they are in old playlists: decoding never fails.
    """

    track: Raw = NULL  # a Raw field holds null too: compare with NULL
    item: Raw = NULL
    added_at: str | None = None
    added_by: User | None = None
    is_local: bool = False

    @property
    def content(self) -> Raw:
        """The raw track or episode, NULL if it is gone."""
        return self.item if self.track == NULL else self.track


class ItemRef(Struct):
    """What a playlist entry holds: ``type`` "track" or "episode"; ``id`` None if local."""

    id: str | None = None
    type: str = "track"


class RelatedArtists(Struct):
    artists: list[Entity]


# Batch envelopes: one list of raw objects (``null`` for unknown IDs) under the kind's key.
class ArtistsBatch(Struct):
    artists: list[Raw]


class AlbumsBatch(Struct):
    albums: list[Raw]


class TracksBatch(Struct):
    tracks: list[Raw]


class FeaturesBatch(Struct):
    audio_features: list[Raw]


def decoder(kind: type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(kind)


decode_entity = decoder(Entity).decode
decode_track = decoder(Track).decode
decode_album = decoder(Album).decode
decode_page = decoder(Page).decode
decode_playlist = decoder(Playlist).decode
decode_playlist_item = decoder(PlaylistItem).decode
decode_item_ref = decoder(ItemRef).decode
