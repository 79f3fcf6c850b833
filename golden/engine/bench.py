"""Ticks per second of the golden model on each engine, measured on the same work.

The work is what the core runs most: for a learning core, training samples (learning on
after the burn-in, a label train for eRBP) and, for DECOLLE, also a batch of test samples
with learning off; for the inference core, a stream of random input events. Inputs spike
independently with probability ``activity`` per tick; for a learning core the default is
the fraction of active inputs per tick that the 8x8 digits give with the rule's
``input_rate`` (``input_rate`` times their mean intensity), so that an MNIST-size
configuration is measured at a realistic input rate.
"""

from __future__ import annotations

import math
import time

import numpy as np

from plasticore.config import CoreConfig

from . import ENGINES, core_model, decolle_model, resolve_engine

__all__ = ["DIGITS_MEAN_INTENSITY", "default_activity", "measure", "compare"]

#: Mean pixel intensity of the 8x8 digits as the trainers present them (``x / 16``):
#: 0.305 on the training split.
DIGITS_MEAN_INTENSITY = 0.305


def default_activity(config: CoreConfig) -> float:
    """Inputs spiking per tick: the digits' fraction for a learning core, else 0.2."""
    if config.rule in ("erbp", "decolle"):
        return config.learning.input_rate * DIGITS_MEAN_INTENSITY
    return 0.2


def _timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def _workloads(config: CoreConfig, engine: str, ticks: int, activity: float, seed: int):
    """Yield ``(mode, ticks, run)``: a named piece of work of ``ticks`` ticks on a fresh model."""
    rng = np.random.default_rng(seed)
    n_in, n_out = config.n_inputs, config.layers[-1]
    if config.rule == "erbp":
        from plasticore.datasets import label_spike_train
        params = config.learning
        length = params.ticks_per_sample
        samples = [(rng.random((length, n_in)) < activity,
                    label_spike_train(k % n_out, n_out, length, params.label_period))
                   for k in range(max(1, math.ceil(ticks / length)))]
        model = core_model(config, engine=engine)

        def train():
            for raster, labels in samples:
                model.run_sample(raster, labels, learn=True)
        yield "learning", len(samples) * length, train
    elif config.rule == "decolle":
        params = config.learning
        length = params.ticks_per_sample
        count = max(1, math.ceil(ticks / length))
        rasters = rng.random((count, length, n_in)) < activity
        model = decolle_model(config, engine=engine)

        def train():
            for k, raster in enumerate(rasters):
                model.run_sample(raster, k % n_out, learn=True)
        yield "learning", count * length, train

        def test():
            model.run_sample(rasters)
        yield "inference (batch)", count * length, test
    else:
        events = [np.flatnonzero(row) for row in rng.random((ticks, n_in)) < activity]
        model = core_model(config, engine=engine)
        yield "inference", ticks, lambda: model.run(events)


def measure(config: CoreConfig, engine: str, *, ticks: int, activity: float | None = None,
            seed: int = 0) -> list[dict]:
    """Measure one engine; return one row per workload (wall and CPU ticks per second).

    The fast engine first runs a short warm-up (compiling its kernels, or loading them from
    the cache); its time is reported as ``warmup_seconds`` and not counted.
    """
    activity = default_activity(config) if activity is None else activity
    warmup = 0.0
    if engine == "fast":
        for _, _, run in _workloads(config, engine, 1, activity, seed + 1):
            warmup += _timed(run)[0]
    rows = []
    for mode, n_ticks, run in _workloads(config, engine, ticks, activity, seed):
        wall, cpu = _timed(run)
        rows.append({"engine": engine, "mode": mode, "ticks": n_ticks, "seconds": wall,
                     "cpu_seconds": cpu, "ticks_per_second": n_ticks / wall,
                     "cpu_ticks_per_second": n_ticks / cpu if cpu else math.inf,
                     "activity": activity, "warmup_seconds": warmup})
    return rows


def compare(config: CoreConfig, *, ticks: int = 20_000, numpy_ticks: int = 1_000,
            activity: float | None = None, seed: int = 0) -> list[dict]:
    """Measure both engines in the same run (the NumPy specification on fewer ticks).

    The fast engine is left out where it cannot run ``config`` (a field its kernels do not
    implement yet, or no Numba): the specification alone is measured then.
    """
    try:
        engines = ENGINES if resolve_engine("fast", config) else ("numpy",)
    except ValueError:
        engines = ("numpy",)
    rows = []
    for engine in engines:
        rows += measure(config, engine, ticks=ticks if engine == "fast" else numpy_ticks,
                        activity=activity, seed=seed)
    return rows


def format_rows(rows: list[dict]) -> list[str]:
    """One line per measurement, with the speed-up of the fast engine over NumPy."""
    spec = {row["mode"]: row for row in rows if row["engine"] == "numpy"}
    lines = []
    for row in rows:
        name = "numpy (the specification)" if row["engine"] == "numpy" else "fast engine"
        line = (f"golden {name:>25}, {row['mode']}: {row['ticks_per_second']:,.0f} ticks/s "
                f"wall, {row['cpu_ticks_per_second']:,.0f} ticks/s of CPU time "
                f"({row['ticks']} ticks, activity {row['activity']:.3f})")
        if row["engine"] == "fast":
            base = spec.get(row["mode"])
            if base:
                line += f", {row['ticks_per_second'] / base['ticks_per_second']:.0f}x numpy"
            line += f"; warm-up {row['warmup_seconds']:.1f} s"
        lines.append(line)
    return lines
