"""Threefry-2x32 in compiled code, the same function as :mod:`plasticore.golden.prng`, and
the saturating clamp the kernels share.

Every word is held in an int64 in ``[0, 2**32)`` and masked after each addition, so no
signed/unsigned mixing reaches Numba's integer typing. The loops run over a vector of
counters with one round at a time, the shape LLVM turns into SIMD code.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MASK = 0xFFFFFFFF
PARITY = 0x1BD11BDA
ROTATIONS = np.array([13, 15, 26, 6, 17, 29, 16, 24], dtype=np.int64)


@njit(cache=True, nogil=True)
def threefry_words(key0, key1, counter0, counters1, count, rounds, word0, word1):
    """Fill ``word0[:count]``, ``word1[:count]`` with Threefry-2x32 of key ``(key0, key1)``
    and counters ``(counter0, counters1[k])``."""
    k0 = key0 & MASK
    k1 = key1 & MASK
    keys = (k0, k1, k0 ^ k1 ^ PARITY)
    start = (counter0 + k0) & MASK
    for k in range(count):
        word0[k] = start
        word1[k] = ((counters1[k] & MASK) + k1) & MASK
    for round_index in range(rounds):
        left = ROTATIONS[round_index & 7]
        right = 32 - left
        for k in range(count):
            x0 = (word0[k] + word1[k]) & MASK
            x1 = word1[k]
            word1[k] = (((x1 << left) & MASK) | (x1 >> right)) ^ x0
            word0[k] = x0
        if round_index & 3 == 3:
            injection = round_index // 4 + 1
            add0 = keys[injection % 3]
            add1 = (keys[(injection + 1) % 3] + injection) & MASK
            for k in range(count):
                word0[k] = (word0[k] + add0) & MASK
                word1[k] = (word1[k] + add1) & MASK


@njit(cache=True, nogil=True, inline="always")
def clamp_flag(value, low, high, flags, flag):
    """Clamp ``value`` to ``[low, high]``; return it and ``flags``, with ``flag`` set if it
    was clamped (the kernels' saturating arithmetic)."""
    if value < low:
        return low, flags | flag
    if value > high:
        return high, flags | flag
    return value, flags
