"""Counter-based random numbers that hardware reproduces bit for bit.

Threefry-2x32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) maps
a 64-bit key and a 64-bit counter to 64 random bits with additions, rotations and XORs
only: no multiplier, no state, so NumPy evaluates it for every synapse at once and hardware
pipelines one round per stage. Learning rules draw with a counter built from what
identifies the draw (for example tick and synapse), so a draw never depends on the order
in which others were made.

``rounds`` trades quality for logic: 20 is the published default, 13 is the fewest that
pass the BigCrush battery in the paper; the hardware instantiates exactly the number of
rounds the configuration asks for.
"""

from __future__ import annotations

import numpy as np

__all__ = ["threefry2x32", "uniform_bits"]

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = np.uint32(0x1BD11BDA)
_MASK = 0xFFFFFFFF


def _rotl(x, r):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(key0, key1, counter0, counter1, rounds: int = 13):
    """Return the two 32-bit output words of Threefry-2x32 as uint32 arrays.

    All inputs broadcast against each other and are reduced modulo ``2**32``.

    Parameters
    ----------
    key0, key1, counter0, counter1 : int or array_like
    rounds : int
        Number of mixing rounds, 1 to 32. A key injection follows every fourth round.
    """
    if not 1 <= rounds <= 32:
        raise ValueError(f"rounds = {rounds}: must be between 1 and 32")
    with np.errstate(over="ignore"):
        k0 = np.asarray(np.asarray(key0, dtype=np.int64) & _MASK, dtype=np.uint32)
        k1 = np.asarray(np.asarray(key1, dtype=np.int64) & _MASK, dtype=np.uint32)
        keys = (k0, k1, k0 ^ k1 ^ _PARITY)
        x0 = np.asarray(np.asarray(counter0, dtype=np.int64) & _MASK, dtype=np.uint32) + keys[0]
        x1 = np.asarray(np.asarray(counter1, dtype=np.int64) & _MASK, dtype=np.uint32) + keys[1]
        for round_index in range(rounds):
            x0 = x0 + x1
            x1 = _rotl(x1, _ROTATIONS[round_index % 8]) ^ x0
            if round_index % 4 == 3:
                injection = round_index // 4 + 1
                x0 = x0 + keys[injection % 3]
                x1 = x1 + keys[(injection + 1) % 3] + np.uint32(injection)
    return x0, x1


def uniform_bits(bits: int, key0, key1, counter0, counter1, rounds: int = 13):
    """Return ``bits`` (1 to 32) uniform random bits per draw, as int64 (the low bits of word 0)."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits = {bits}: must be between 1 and 32")
    word, _ = threefry2x32(key0, key1, counter0, counter1, rounds)
    return (word.astype(np.int64)) & ((1 << bits) - 1)
