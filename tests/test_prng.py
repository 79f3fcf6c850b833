"""Threefry-2x32 against the published known-answer vectors (Random123, kat_vectors)."""

import numpy as np
import pytest

from plasticore.golden.prng import threefry2x32, uniform_bits


@pytest.mark.parametrize("key, counter, expected", [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_known_answers_20_rounds(key, counter, expected):
    out = threefry2x32(*key, *counter, rounds=20)
    assert (int(out[0]), int(out[1])) == expected


def test_vectorized_equals_scalar():
    counters = np.arange(50)
    vector = threefry2x32(7, 9, counters, 3)
    for index, counter in enumerate(counters):
        scalar = threefry2x32(7, 9, int(counter), 3)
        assert int(vector[0][index]) == int(scalar[0])
        assert int(vector[1][index]) == int(scalar[1])


def test_uniform_bits_are_roughly_uniform():
    draws = uniform_bits(4, 1, 2, np.arange(16000), 0)
    counts = np.bincount(draws, minlength=16)
    assert draws.min() >= 0 and draws.max() < 16
    # 1000 expected per bin; a 5-sigma band is about +-160.
    assert np.all(np.abs(counts - 1000) < 160)


def test_rounds_are_checked():
    with pytest.raises(ValueError, match="rounds = 0"):
        threefry2x32(0, 0, 0, 0, rounds=0)
