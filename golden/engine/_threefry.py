"""Threefry-2x32 in compiled code, the same function as :mod:`plasticore.threefry`, and
the saturating clamp the kernels share.

The words are uint32 with 32-bit additions, XORs and rotations; the loops run over a vector
of counters one round at a time, the shape LLVM turns into SIMD code. Inputs and outputs
are int64, the outputs uint32.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

MASK = 0xFFFFFFFF
PARITY = 0x1BD11BDA
ROTATIONS = np.array([13, 15, 26, 6, 17, 29, 16, 24], dtype=np.uint32)


# Numba widens uint32 arithmetic to 64 bits; these three emit the 32-bit LLVM operations
# (a rotation is one funnel shift), so that the rounds vectorize over 32-bit lanes.
@intrinsic
def _add32(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.add(args[0], args[1])
    return types.uint32(types.uint32, types.uint32), codegen


@intrinsic
def _xor32(typingctx, a, b):
    def codegen(context, builder, signature, args):
        return builder.xor(args[0], args[1])
    return types.uint32(types.uint32, types.uint32), codegen


@intrinsic
def _rotl32(typingctx, x, r):
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        funnel = builder.module.declare_intrinsic("llvm.fshl", [i32],
                                                  ir.FunctionType(i32, [i32, i32, i32]))
        return builder.call(funnel, [args[0], args[0], args[1]])
    return types.uint32(types.uint32, types.uint32), codegen


@njit(cache=True, nogil=True)
def threefry_words(key0, key1, counter0, counters1, count, rounds, word0, word1):
    """Fill the uint32 arrays ``word0[:count]``, ``word1[:count]`` with Threefry-2x32 of
    key ``(key0, key1)`` and counters ``(counter0, counters1[k])``, all reduced modulo
    ``2**32``."""
    k1 = np.uint32(key1 & MASK)
    for k in range(count):
        word1[k] = _add32(np.uint32(counters1[k] & MASK), k1)
    _rounds(key0, key1, counter0, count, rounds, word0, word1)


@njit(cache=True, nogil=True)
def threefry_row(key0, key1, counter0, first, count, rounds, word0, word1):
    """:func:`threefry_words` of the consecutive counters ``first, first + 1, ...``: the
    draws of a row of synapses."""
    start = np.uint32((first + key1) & MASK)
    for k in range(count):
        word1[k] = _add32(start, np.uint32(k))
    _rounds(key0, key1, counter0, count, rounds, word0, word1)


@njit(cache=True, nogil=True, inline="always")
def _rounds(key0, key1, counter0, count, rounds, x0, x1):
    """The rounds, on ``x1`` already holding counter 1 plus key 1; counter 0 is common."""
    k0 = key0 & MASK
    k1 = key1 & MASK
    keys = (k0, k1, k0 ^ k1 ^ PARITY)
    start = np.uint32((counter0 + k0) & MASK)
    for k in range(count):
        x0[k] = start
    # Four rounds and their key injection per pass over the lanes, so that the words stay
    # in registers for four rounds (the rotations are loop-invariant, so the loop is SIMD).
    round_index = 0
    while round_index + 4 <= rounds:
        ra = ROTATIONS[round_index & 7]
        rb = ROTATIONS[(round_index + 1) & 7]
        rc = ROTATIONS[(round_index + 2) & 7]
        rd = ROTATIONS[(round_index + 3) & 7]
        injection = round_index // 4 + 1
        add0 = np.uint32(keys[injection % 3])
        add1 = np.uint32((keys[(injection + 1) % 3] + injection) & MASK)
        for k in range(count):
            a = x0[k]
            b = x1[k]
            a = _add32(a, b)
            b = _xor32(_rotl32(b, ra), a)
            a = _add32(a, b)
            b = _xor32(_rotl32(b, rb), a)
            a = _add32(a, b)
            b = _xor32(_rotl32(b, rc), a)
            a = _add32(a, b)
            b = _xor32(_rotl32(b, rd), a)
            x0[k] = _add32(a, add0)
            x1[k] = _add32(b, add1)
        round_index += 4
    while round_index < rounds:      # fewer than four rounds left: no injection among them
        rotation = ROTATIONS[round_index & 7]
        for k in range(count):
            mixed = _add32(x0[k], x1[k])
            x1[k] = _xor32(_rotl32(x1[k], rotation), mixed)
            x0[k] = mixed
        round_index += 1


@njit(cache=True, nogil=True, inline="always")
def clamp_flag(value, low, high, flags, flag):
    """Clamp ``value`` to ``[low, high]``; return it and ``flags``, with ``flag`` set if it
    was clamped (the kernels' saturating arithmetic)."""
    if value < low:
        return low, flags | flag
    if value > high:
        return high, flags | flag
    return value, flags
