"""IDs decode back to their coordinates; anything this catalog did not mint is unknown."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crawler.sim.ids import ALPHABET, IdCodec, Kind, Ref, are_well_formed, is_well_formed

CODEC = IdCodec(seed=1)
refs = st.builds(
    Ref,
    st.sampled_from(list(Kind)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(0, 255),
)


@given(refs)
def test_ids_are_22_base62_chars_and_round_trip(ref: Ref) -> None:
    spotify_id = CODEC.encode(ref)
    assert is_well_formed(spotify_id)
    assert CODEC.decode(spotify_id) == ref


@given(refs)
def test_ids_of_another_seed_are_unknown(ref: Ref) -> None:
    assert IdCodec(seed=2).decode(CODEC.encode(ref)) is None


@given(st.text(alphabet=ALPHABET, min_size=22, max_size=22))
def test_random_well_formed_ids_are_unknown(spotify_id: str) -> None:
    assert CODEC.decode(spotify_id) is None


def test_a_changed_character_makes_an_id_unknown() -> None:
    spotify_id = CODEC.encode(Ref(Kind.TRACK, 7, 3, 2))
    for pos in range(22):
        swapped = "A" if spotify_id[pos] != "A" else "B"
        assert CODEC.decode(spotify_id[:pos] + swapped + spotify_id[pos + 1 :]) is None


def test_malformed_ids_are_not_well_formed() -> None:
    good = CODEC.encode(Ref(Kind.ARTIST, 1))
    for bad in ("", good[:21], good + "x", good[:21] + "-", good[:21] + "é", " " + good[1:]):
        assert not is_well_formed(bad), bad


# IDs that are well formed or one character away from it, joined by commas or worse.
near_ids = st.text(alphabet=ALPHABET + ",-_ é\n", min_size=20, max_size=24)


@given(st.lists(near_ids | st.text(alphabet=ALPHABET, min_size=22, max_size=22), max_size=4))
def test_a_list_is_well_formed_exactly_when_each_of_its_ids_is(ids: list[str]) -> None:
    raw = ",".join(ids)
    assert are_well_formed(raw) == all(is_well_formed(i) for i in raw.split(","))
