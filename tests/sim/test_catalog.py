"""The synthetic catalog: deterministic, varied like the real one, relations consistent."""

from __future__ import annotations

from collections import Counter

from crawler.sim.catalog import Catalog
from crawler.sim.ids import Kind
from crawler.sim.model import MAX_RELATED, NEIGHBOURHOOD, Model

N = 400
CATALOG = Catalog(N)
MODEL = CATALOG.model


def all_albums(model: Model) -> list[tuple[int, int]]:
    return [(i, a) for i in range(model.artists) for a in range(model.artist(i).albums)]


def test_same_seed_gives_the_same_objects_and_ids() -> None:
    again = Catalog(N)
    for i in (0, 17, N - 1):
        assert again.artist_id(i) == CATALOG.artist_id(i)
        assert again.view().artist(i) == CATALOG.view().artist(i)
    key = all_albums(MODEL)[5]
    assert again.view().album(*key) == CATALOG.view().album(*key)
    assert again.view().playlist(3) == CATALOG.view().playlist(3)


def test_another_seed_gives_other_ids_and_old_ids_are_unknown() -> None:
    other = Catalog(N, seed=2)
    assert {other.artist_id(i) for i in range(N)}.isdisjoint(CATALOG.artist_id(i) for i in range(N))
    assert other.lookup(CATALOG.artist_id(0), Kind.ARTIST) is None
    assert other.lookup(CATALOG.playlist_id(0), Kind.PLAYLIST) is None


def test_lookup_checks_kind_range_and_existence() -> None:
    i = next(i for i in range(N) if MODEL.artist(i).albums)
    album = CATALOG.album_id(i, 0)
    assert CATALOG.lookup(album, Kind.ALBUM) is not None
    assert CATALOG.lookup(album, Kind.ARTIST) is None
    assert CATALOG.lookup(CATALOG.album_id(i, MODEL.artist(i).albums), Kind.ALBUM) is None
    tracks = MODEL.album(i, 0).tracks
    assert CATALOG.lookup(CATALOG.track_id(i, 0, tracks), Kind.TRACK) is not None
    assert CATALOG.lookup(CATALOG.track_id(i, 0, tracks + 1), Kind.TRACK) is None
    assert CATALOG.lookup(CATALOG.track_id(i, 0, 0), Kind.TRACK) is None
    assert CATALOG.lookup(CATALOG.artist_id(N), Kind.ARTIST) is None
    assert CATALOG.lookup(CATALOG.playlist_id(CATALOG.playlists), Kind.PLAYLIST) is None
    deleted = next(i for i in range(N) if not MODEL.artist(i).exists)
    assert CATALOG.lookup(CATALOG.artist_id(deleted), Kind.ARTIST) is None
    assert CATALOG.decode(CATALOG.artist_id(deleted)) is not None


def test_first_artist_ids_skip_deleted_artists() -> None:
    deleted = next(i for i in range(1, N) if not MODEL.artist(i).exists)
    existing = [CATALOG.artist_id(i) for i in range(deleted - 1, N) if MODEL.artist(i).exists]
    assert CATALOG.first_artist_ids(3, start=deleted - 1) == existing[:3]
    assert CATALOG.artist_id(deleted) not in CATALOG.first_artist_ids(N)
    last_two = [CATALOG.artist_id(i) for i in (N - 2, N - 1) if MODEL.artist(i).exists]
    assert CATALOG.first_artist_ids(5, start=N - 2) == last_two  # the catalog ends first
    assert CATALOG.first_artist_ids(start=N) == []


def test_variety_like_the_real_catalog() -> None:
    artists = [MODEL.artist(i) for i in range(N)]
    deleted = sum(not a.exists for a in artists)
    assert 0.01 * N <= deleted <= 0.07 * N
    assert all(a.albums == 0 for a in artists if not a.exists)
    assert 0.02 * N <= sum(a.exists and a.albums == 0 for a in artists) <= 0.10 * N
    big = [a.albums for a in artists if a.albums > 50]
    assert big and all(51 <= n <= 120 for n in big)
    albums = [MODEL.album(*key) for key in all_albums(MODEL)]
    groups = Counter(rec.group for rec in albums)
    assert set(groups) == {"album", "single", "compilation"}
    assert any(rec.tracks == 1 for rec in albums)
    long = [rec.tracks for rec in albums if rec.tracks > 50]
    assert 0.005 * len(albums) <= len(long) <= 0.05 * len(albums)
    assert all(51 <= n <= 130 for n in long)
    tracks = [
        MODEL.track(rec.artist, rec.ordinal, t) for rec in albums for t in range(1, rec.tracks + 1)
    ]
    credited = sum(len(t.credits) > 1 for t in tracks) / len(tracks)
    assert 0.12 <= credited <= 0.28
    featureless = sum(not t.has_features for t in tracks) / len(tracks)
    assert 0.02 <= featureless <= 0.08
    deleted_ids = {i for i, a in enumerate(artists) if not a.exists}
    assert any(deleted_ids.intersection(t.credits) for t in tracks)


def test_appears_on_is_exactly_the_albums_crediting_the_artist() -> None:
    credited: dict[int, set[tuple[int, int]]] = {}
    for i, a in all_albums(MODEL):
        for t in range(1, MODEL.album(i, a).tracks + 1):
            for j in MODEL.track(i, a, t).credits[1:]:
                credited.setdefault(j, set()).add((i, a))
    for j in range(N):
        assert set(MODEL.appears_on(j)) == credited.get(j, set())
        assert all(0 < (j - i) % N <= NEIGHBOURHOOD for i, _ in MODEL.appears_on(j))


def test_discography_groups_and_order() -> None:
    j = max(range(N), key=lambda k: len(MODEL.appears_on(k)) if MODEL.artist(k).exists else -1)
    everything = MODEL.discography(j, ("album", "single", "compilation", "appears_on"))
    order = ["album", "single", "compilation", "appears_on"]
    assert [g for _, _, g in everything] == sorted((g for _, _, g in everything), key=order.index)
    owned = [(i, a) for i, a, g in everything if g != "appears_on"]
    assert sorted(owned) == [(j, a) for a in range(MODEL.artist(j).albums)]
    assert all(MODEL.album(i, a).group == g for i, a, g in everything if g != "appears_on")
    only = MODEL.discography(j, ("appears_on",))
    assert [(i, a) for i, a, _ in only] == list(MODEL.appears_on(j))


def test_related_artists_exist_and_span_the_catalog() -> None:
    existing = {i for i in range(N) if MODEL.artist(i).exists}
    sizes = [len(MODEL.related(i)) for i in existing]
    assert min(sizes) == 0 and max(sizes) <= MAX_RELATED
    assert all(set(MODEL.related(i)) <= existing - {i} for i in existing)
    start = min(existing)
    seen, stack = {start}, [start]
    while stack:
        for j in MODEL.related(stack.pop()):
            if j not in seen:
                seen.add(j)
                stack.append(j)
    assert len(seen) >= 0.95 * len(existing)


def test_search_matches_case_insensitive_substrings_of_existing_names() -> None:
    name = MODEL.artist(next(i for i in range(N) if MODEL.artist(i).exists)).name
    word = name.split()[0]
    hits = MODEL.search_artists(word.upper())
    expected = [i for i in range(N) if MODEL.artist(i).exists and word in MODEL.artist(i).name]
    assert list(hits) == expected
    assert list(MODEL.search_artists(name.lower())) == [
        i for i in expected if MODEL.artist(i).name == name
    ]
    assert MODEL.search_artists("no such name") == ()


def test_playlists_hold_every_kind_of_item_in_plausible_shares() -> None:
    sizes = [MODEL.playlist(q).items for q in range(CATALOG.playlists)]
    assert max(sizes) > 100
    items = [MODEL.playlist_item(q, k) for q, size in enumerate(sizes) for k in range(size)]
    n = len(items)
    kinds = Counter(item.kind for item in items)
    assert kinds["track"] >= 0.85 * n
    assert 0.02 * n <= kinds["episode"] <= 0.09 * n
    assert 0.01 * n <= kinds["local"] <= 0.06 * n
    assert 0.005 * n <= kinds["removed"] <= 0.04 * n
    assert 0.01 * n <= sum(not item.added_by_owner for item in items) <= 0.08 * n
    for item in items:
        assert (item.track is not None) == (item.kind == "track")
        assert (item.episode is not None) == (item.kind == "episode")
        assert item.track is None or MODEL.track_exists(*item.track)
        assert item.episode is None or MODEL.episode_exists(*item.episode)
    assert MODEL.playlist_item(3, 7) == Catalog(N).model.playlist_item(3, 7)
