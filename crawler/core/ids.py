"""Spotify IDs, URIs and open.spotify.com URLs: every accepted seed form reduces to a bare ID."""

from __future__ import annotations

from urllib.parse import urlsplit

SEED_KINDS = ("artists", "albums", "tracks", "playlists")
_SINGULAR = {"artists": "artist", "albums": "album", "tracks": "track", "playlists": "playlist"}


def is_spotify_id(value: object) -> bool:
    """22 ASCII letters or digits; written without a regex because it runs once per credit."""
    return type(value) is str and len(value) == 22 and value.isascii() and value.isalnum()


def parse_seed(kind: str, seed: str) -> str:
    """Return the bare ID of ``seed`` (an ID, ``spotify:KIND:ID`` or an open.spotify.com URL).

    A seed of the wrong kind (an album URL among artist seeds) is an error, not a guess.
    """
    singular = _SINGULAR[kind]
    text = seed.strip()
    if is_spotify_id(text):
        return text
    if text.startswith("spotify:"):
        parts = text.split(":")
        if len(parts) == 3 and parts[1] == singular and is_spotify_id(parts[2]):
            return parts[2]
        raise ValueError(f"{seed!r} is not a spotify:{singular}:<id> URI")
    url = urlsplit(text)
    if url.scheme in ("http", "https") and url.hostname == "open.spotify.com":
        # Paths look like /artist/ID, /intl-de/artist/ID or /embed/artist/ID.
        segments = [s for s in url.path.split("/") if s]
        for index, segment in enumerate(segments[:-1]):
            if segment == singular and is_spotify_id(segments[index + 1]):
                return segments[index + 1]
        raise ValueError(f"{seed!r} is not an open.spotify.com/{singular}/<id> URL")
    raise ValueError(
        f"{seed!r} is not a Spotify {singular} ID (22 characters 0-9A-Za-z), "
        f"spotify:{singular}:<id> URI or open.spotify.com URL"
    )
