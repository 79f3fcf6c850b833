"""How well Threefry-2x32 with few rounds rounds: the statistics of the rounding draws.

A learning rule rounds each weight change stochastically with a draw keyed by
``(tick, synapse)``. Rounding is unbiased only if, for each synapse, the draws of
successive ticks are independent, and the synapses of one neuron in one tick do not
share their errors. This module measures exactly that on the draws the golden models
make (the low ``bits`` bits of output word 0, or the high ones, or word 1), for a layer
of ``n_pre x n_post`` synapses over ``ticks`` ticks:

``tick``
    correlation of a synapse's draw with its draw in the next tick;
``adjacent``
    correlation of the draws of synapses ``k`` and ``k + 1`` (same row, next neuron);
``column``
    spread of the mean draw over a neuron's ``n_pre`` synapses in one tick, relative to
    independent draws (1.0 is ideal, much less means errors cancel systematically, more
    means they add up);
``time``
    spread of a synapse's mean draw over 64 ticks relative to independent draws: above 1
    a synapse keeps rounding the same way for many ticks, a bias that learning
    integrates.

``python -m plasticore.rounding_study`` prints the table for several round counts.
"""

from __future__ import annotations

import argparse

import numpy as np

from plasticore.threefry import threefry2x32

__all__ = ["draw_statistics", "main"]

WINDOW = 64


def draw_statistics(rounds: int, *, field: str = "low0", bits: int = 8, ticks: int = 256,
                    n_pre: int = 64, n_post: int = 100, key: int = 7) -> dict:
    """Return the statistics (see the module docstring) of one kind of draw.

    Parameters
    ----------
    rounds : int
        Threefry rounds.
    field : {"low0", "high0", "low1"}
        Which bits are the draw: the low ``bits`` of word 0 (what eRBP uses), the high
        ``bits`` of word 0, or the low ``bits`` of word 1.
    """
    if ticks < 3 * WINDOW:
        raise ValueError(f"ticks = {ticks}: must be at least {3 * WINDOW}")
    tick = np.arange(ticks)[:, None]
    synapse = np.arange(n_pre * n_post)[None, :]
    word0, word1 = threefry2x32(key, 0, tick, synapse, rounds)
    word0, word1 = word0.astype(np.int64), word1.astype(np.int64)
    mask = (1 << bits) - 1
    raw = {"low0": word0 & mask, "high0": word0 >> (32 - bits), "low1": word1 & mask}[field]
    draws = raw / (1 << bits)
    centred = draws - draws.mean()
    variance = centred.var()
    uniform_sd = np.sqrt(1 / 12)

    def correlation(a, b):
        return float(np.mean(a * b) / variance) if variance else float("nan")

    column = draws.reshape(ticks, n_pre, n_post).mean(axis=1)
    windows = draws[:3 * WINDOW].reshape(3, WINDOW, -1).mean(axis=1)
    return {
        "rounds": rounds, "field": field, "bits": bits,
        "tick": correlation(centred[1:], centred[:-1]),
        "adjacent": correlation(centred[:, 1:], centred[:, :-1]),
        "column": float(column.std() / (uniform_sd / np.sqrt(n_pre))),
        "time": float(windows.std() / (uniform_sd / np.sqrt(WINDOW))),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticore.rounding_study",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8, 13])
    parser.add_argument("--fields", nargs="+", default=["low0", "high0", "low1"],
                        choices=["low0", "high0", "low1"])
    parser.add_argument("--bits", type=int, default=8)
    args = parser.parse_args(argv)
    print(f"{'rounds':>6} {'draw':>6} {'tick':>7} {'adjacent':>9} {'column':>7} {'time':>6}")
    for rounds in args.rounds:
        for field in args.fields:
            row = draw_statistics(rounds, field=field, bits=args.bits)
            print(f"{rounds:>6} {field:>6} {row['tick']:>+7.2f} {row['adjacent']:>+9.2f} "
                  f"{row['column']:>7.2f} {row['time']:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
