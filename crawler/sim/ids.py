"""Spotify-style base62 IDs that carry their own catalog coordinates.

Every simulated entity is addressed by indices (kind, artist, album ordinal, track number), so
an ID only has to encode those indices for the catalog to need no storage at all.  An ID is
two 64-bit halves written as 11 base62 characters each (62^11 > 2^64): a MAC of the indices
keyed by the catalog seed, then the indices hidden behind a mask derived from that MAC.  IDs
thus look random, decode in O(1), and any ID not minted by this catalog (random, foreign
seed, tampered) fails the MAC and is reported unknown.  The MAC is a keyed splitmix64 round,
not a cryptographic hash: it only has to make accidental matches negligible (2^-64), and
ground truth mints millions of IDs.
"""

from __future__ import annotations

import hashlib
import re
from enum import IntEnum
from typing import NamedTuple

from crawler.sim.hashing import M64, splitmix

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 22
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_PAIRS = tuple(a + b for a in ALPHABET for b in ALPHABET)
_PAIR_VALUE = {pair: i for i, pair in enumerate(_PAIRS)}
_ID = f"[0-9A-Za-z]{{{ID_LENGTH}}}"
_WELL_FORMED = re.compile(_ID)
_WELL_FORMED_LIST = re.compile(f"{_ID}(?:,{_ID})*")

# Field widths of the payload; ordinals above 255 would need wider fields.
_TRACK_BITS = 8
_ALBUM_BITS = 8
_MAIN_BITS = 32
_KIND_BITS = 3  # widened from 2 for episodes and shows: the IDs of other kinds are unchanged
_PAYLOAD_LIMIT = 1 << (_TRACK_BITS + _ALBUM_BITS + _MAIN_BITS + _KIND_BITS)


class Kind(IntEnum):
    """What an ID names; `main` is the artist index, the playlist index for playlists, the show
    index for shows and episodes (an episode's number is in `track`)."""

    ARTIST = 0
    ALBUM = 1
    TRACK = 2
    PLAYLIST = 3
    EPISODE = 4
    SHOW = 5


_KINDS = tuple(Kind)


class Ref(NamedTuple):
    """Decoded coordinates of an entity (unused fields are 0)."""

    kind: Kind
    main: int
    album: int = 0
    track: int = 0


def is_well_formed(spotify_id: str) -> bool:
    """The API answers 400 "invalid id" for anything that fails this check."""
    return len(spotify_id) == ID_LENGTH and _WELL_FORMED.fullmatch(spotify_id) is not None


def are_well_formed(ids: str) -> bool:
    """`is_well_formed` of every ID of a comma-separated list, in one match: a batch names
    up to 100."""
    return _WELL_FORMED_LIST.fullmatch(ids) is not None


class IdCodec:
    """Mints and decodes the IDs of one catalog seed."""

    def __init__(self, seed: int) -> None:
        key = hashlib.blake2b(f"spotify-sim-ids:{seed}".encode(), digest_size=16).digest()
        self._k1 = int.from_bytes(key[:8], "little")
        self._k2 = int.from_bytes(key[8:], "little")

    def _mac(self, payload: int) -> int:
        return splitmix(self._k1 ^ payload)

    def _mask(self, mac: int) -> int:
        return ((mac * 0xD6E8FEB86659FD93) & M64) ^ self._k2

    def encode(self, ref: Ref) -> str:
        return self._encode(_payload(ref.kind, ref.main, ref.album) | ref.track)

    def encode_tracks(self, i: int, a: int, count: int) -> list[str]:
        """IDs of tracks 1..count of album (i, a): the bulk path of ground truth."""
        base = _payload(Kind.TRACK, i, a)
        return [self._encode(base | t) for t in range(1, count + 1)]

    def _encode(self, payload: int) -> str:
        mac = self._mac(payload)
        return _eleven(mac) + _eleven(payload ^ self._mask(mac))

    def decode(self, spotify_id: str) -> Ref | None:
        """Coordinates of an ID minted by this codec, or None; assumes `is_well_formed`."""
        mac, masked = _value(spotify_id[:11]), _value(spotify_id[11:])
        if mac > M64 or masked > M64:
            return None
        payload = masked ^ self._mask(mac)
        if payload >= _PAYLOAD_LIMIT or self._mac(payload) != mac:
            return None
        track = payload & ((1 << _TRACK_BITS) - 1)
        payload >>= _TRACK_BITS
        album = payload & ((1 << _ALBUM_BITS) - 1)
        payload >>= _ALBUM_BITS
        main = payload & ((1 << _MAIN_BITS) - 1)
        kind = payload >> _MAIN_BITS
        return Ref(_KINDS[kind], main, album, track) if kind < len(_KINDS) else None


def _payload(kind: Kind, main: int, album: int) -> int:
    return (((kind << _MAIN_BITS) | main) << _ALBUM_BITS | album) << _TRACK_BITS


def _eleven(x: int) -> str:
    """11 base62 digits of x < 62^11, unrolled in pairs because ground truth mints millions."""
    x, a = divmod(x, 3844)
    x, b = divmod(x, 3844)
    x, c = divmod(x, 3844)
    x, d = divmod(x, 3844)
    x, e = divmod(x, 3844)
    p = _PAIRS
    return ALPHABET[x] + p[e] + p[d] + p[c] + p[b] + p[a]


def _value(digits: str) -> int:
    """Inverse of `_eleven`, by pairs too: every request decodes up to 100 IDs."""
    p = _PAIR_VALUE
    value = _VALUE[digits[0]] * 3844 + p[digits[1:3]]
    value = value * 3844 + p[digits[3:5]]
    value = value * 3844 + p[digits[5:7]]
    value = value * 3844 + p[digits[7:9]]
    return value * 3844 + p[digits[9:11]]
