"""The one integer hash everything synthetic is derived from (IDs, attributes, relations)."""

from __future__ import annotations

M64 = (1 << 64) - 1


def splitmix(x: int) -> int:
    """splitmix64's finalizer: a fast bijective 64-bit mix, plenty for synthetic data."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def mix(*parts: int) -> int:
    """A 64-bit hash of small non-negative integers."""
    h = 0x243F6A8885A308D3
    for part in parts:
        h = splitmix(h ^ part)
    return h
