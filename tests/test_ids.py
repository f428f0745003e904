"""Seeds in every accepted form reduce to the bare ID; anything else is refused with the reason."""

from __future__ import annotations

import pytest

from crawler.core.ids import parse_seed

ID = "0OdUWJ0sBjDrqHygGUXeCF"


@pytest.mark.parametrize(
    ("kind", "seed"),
    [
        ("artists", ID),
        ("artists", f"  {ID} "),
        ("artists", f"spotify:artist:{ID}"),
        ("artists", f"https://open.spotify.com/artist/{ID}"),
        ("artists", f"https://open.spotify.com/artist/{ID}?si=abc123"),
        ("artists", f"https://open.spotify.com/intl-de/artist/{ID}"),
        ("albums", f"http://open.spotify.com/album/{ID}/"),
        ("tracks", f"spotify:track:{ID}"),
        ("playlists", f"https://open.spotify.com/playlist/{ID}?si=x&pt=y"),
    ],
)
def test_accepted_forms(kind: str, seed: str) -> None:
    assert parse_seed(kind, seed) == ID


@pytest.mark.parametrize(
    ("kind", "seed", "message"),
    [
        ("artists", ID[:-1], "is not a Spotify artist ID"),
        ("artists", ID + "!", "is not a Spotify artist ID"),
        ("artists", f"spotify:track:{ID}", "is not a spotify:artist:<id> URI"),
        ("albums", f"https://open.spotify.com/artist/{ID}", "open.spotify.com/album/<id> URL"),
        ("artists", f"https://example.com/artist/{ID}", "is not a Spotify artist ID"),
        ("tracks", "", "is not a Spotify track ID"),
    ],
)
def test_refused_forms(kind: str, seed: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_seed(kind, seed)
