"""Compiled engine of DECOLLE: :class:`plasticore.golden.decolle.GoldenDecolle`, bit for bit.

:class:`FastDecolle` offers the NumPy model's API and attributes. :meth:`FastDecolle.run_sample`
runs all the ticks of a sample in one compiled call; with learning off, the samples of a
batch run in parallel on every CPU core (they are independent: each starts from a fresh
state). Learning stays online, one sample at a time.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from plasticore.config import CoreConfig
from plasticore.golden.decolle import ROUNDING_STREAM, GoldenDecolle, _params, synapse_offsets

from . import _decolle_kernel as kernel

__all__ = ["FastDecolle"]


def worker_count() -> int:
    """CPU cores this process may use (the threads of a parallel evaluation)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def parallel_ranges(run, count: int) -> list:
    """Call ``run(first, stop)`` on one contiguous range of ``range(count)`` per CPU core,
    in threads (``run`` must release the GIL); return the results in range order."""
    workers = min(worker_count(), count)
    bounds = [count * k // workers for k in range(workers + 1)]
    if workers == 1:
        return [run(0, count)]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, bounds[:-1], bounds[1:]))


def _split_columns(flat: np.ndarray, sizes) -> list[np.ndarray]:
    """Views ``flat[:, a:b]`` of each block of columns."""
    views, start = [], 0
    for size in sizes:
        views.append(flat[:, start:start + size])
        start += size
    return views


class FastDecolle:
    """Compiled DECOLLE network with the API of :class:`~plasticore.golden.decolle.GoldenDecolle`.

    Parameters
    ----------
    config : CoreConfig
        With ``rule = "decolle"``.
    weights, biases : list of array_like, optional
        Defaults to :func:`plasticore.golden.decolle.initial_parameters`.
    """

    def __init__(self, config: CoreConfig, weights=None, biases=None):
        # The NumPy model checks the shapes, ranges and accumulator width and regenerates
        # the readouts; the engine copies what it built.
        spec = GoldenDecolle(config, weights, biases)
        self.config = config
        self.params = params = _params(config)
        self.readouts = spec.readouts
        self.offsets = synapse_offsets(config)
        self.lr_shifts = spec.lr_shifts
        self._layers = np.array(config.layers, dtype=np.int64)
        self._load(spec.weights, spec.biases)
        n_out = config.layers[-1]
        below_top = [r for r in self.readouts if r is not None]
        self._G = (np.concatenate([G.reshape(-1) for G, _ in below_top]) if below_top
                   else np.zeros(0, dtype=np.int64))
        self._g = np.zeros(len(config.neuron_layers) * n_out, dtype=np.int64)
        for layer, (_, g) in enumerate(below_top):
            self._g[layer * n_out:(layer + 1) * n_out] = g
        m_low, m_high = config.membrane_range
        w_low, w_high = config.weight_range
        constants = np.zeros(kernel.C_SIZE, dtype=np.int64)
        for index, value in ((kernel.C_TRACE_BITS, params.trace_bits),
                             (kernel.C_UNIT_BITS, params.unit_bits),
                             (kernel.C_REFRACTORY_WEIGHT, params.refractory_weight),
                             (kernel.C_WINDOW, params.surrogate_window),
                             (kernel.C_ERROR_LIMIT, (1 << (params.error_bits - 1)) - 1),
                             (kernel.C_LEARN_BIAS, params.learn_bias),
                             (kernel.C_STOCHASTIC, params.stochastic_rounding),
                             (kernel.C_ROUNDS, params.prng_rounds),
                             (kernel.C_SEED, config.seed), (kernel.C_STREAM, ROUNDING_STREAM),
                             (kernel.C_M_LOW, m_low), (kernel.C_M_HIGH, m_high),
                             (kernel.C_W_LOW, w_low), (kernel.C_W_HIGH, w_high)):
            constants[index] = int(value)
        self._constants = constants
        self._shifts = [np.array(s, dtype=np.int64) for s in
                        (params.q_shifts, params.p_shifts, params.r_shifts, params.error_shifts)]
        self.tick_count = 0
        self.flags = 0
        self.learning = False
        self.burn_in = params.burn_in
        self.sample_tick = 0
        self.dropped_events = 0
        self.reset_state(1)

    def _load(self, weights, biases) -> None:
        config = self.config
        self._W = np.concatenate([np.asarray(w, dtype=np.int64).reshape(-1) for w in weights])
        self._W_float = self._W.astype(np.float64)    # the dot products' operand (exact)
        self._B = np.concatenate([np.asarray(b, dtype=np.int64).reshape(-1) for b in biases])
        self.weights, self.biases, start, b_start = [], [], 0, 0
        for n_pre, n_post in zip(config.layers, config.layers[1:]):
            self.weights.append(self._W[start:start + n_pre * n_post].reshape(n_pre, n_post))
            self.biases.append(self._B[b_start:b_start + n_post])
            start += n_pre * n_post
            b_start += n_post

    # The specification's register and host methods work unchanged on the views.
    set_lr_shifts = GoldenDecolle.set_lr_shifts
    read_weights = GoldenDecolle.read_weights

    def load_weights(self, weights, biases) -> None:
        """Replace every layer's weights and biases (checked as in the constructor)."""
        checked = GoldenDecolle(self.config, weights, biases)
        self._load(checked.weights, checked.biases)

    def reset_state(self, batch: int = 1) -> None:
        """Zero every trace, refractory state and spike (a new sample; weights are kept)."""
        config = self.config
        n_traces, n_neurons = sum(config.layers[:-1]), sum(config.neuron_layers)
        self._Q = np.zeros((batch, n_traces), dtype=np.int64)
        self._P = np.zeros((batch, n_traces), dtype=np.int64)
        self._R = np.zeros((batch, n_neurons), dtype=np.int64)
        self._S = np.zeros((batch, n_neurons), dtype=bool)
        self._U = np.zeros((batch, n_neurons), dtype=np.int64)
        self.Q = _split_columns(self._Q, config.layers[:-1])
        self.P = _split_columns(self._P, config.layers[:-1])
        self.R = _split_columns(self._R, config.neuron_layers)
        self.S = _split_columns(self._S, config.neuron_layers)
        self.U = _split_columns(self._U, config.neuron_layers)

    def start_sample(self) -> None:
        """Begin a new sample: zero the state (batch of one) and ``sample_tick``."""
        self.reset_state(1)
        self.sample_tick = 0

    def _run(self, rasters, targets, learn, count_from: int):
        """Run ``rasters`` (``(batch, ticks, n_inputs)``) from the current state."""
        batch, ticks, n_inputs = rasters.shape
        if n_inputs != self.config.n_inputs:
            raise ValueError(f"spikes: {n_inputs} inputs per tick, the network has "
                             f"{self.config.n_inputs}")
        if batch != self._Q.shape[0]:
            raise ValueError(f"batch = {batch}: the state holds {self._Q.shape[0]} samples "
                             "(reset_state sets the batch)")
        if learn.any() and batch != 1:
            raise ValueError(f"batch = {batch}: learning is online, one sample at a time")
        n_out = self.config.layers[-1]
        counts = np.zeros((batch, n_out), dtype=np.int64)
        sums = np.zeros((batch, n_out), dtype=np.int64)
        rasters = np.ascontiguousarray(rasters, dtype=bool)
        # The weights are in range unless written out of range through the views; the
        # kernel then skips silent rows (see C_WEIGHTS_IN_RANGE).
        w_low, w_high = self.config.weight_range
        self._constants[kernel.C_WEIGHTS_IN_RANGE] = int(
            self._W.size == 0 or (int(self._W.min()) >= w_low and int(self._W.max()) <= w_high))
        common = (self._constants, self._layers, *self._shifts,
                  np.array(self.lr_shifts, dtype=np.int64), self._W, self._W_float, self._B,
                  self._G, self._g)
        if batch == 1:
            # One sample: no thread pool to wake (it costs more than a short sample).
            flags = kernel.run_sample(*common, self._Q[0], self._P[0], self._R[0], self._S[0],
                                      self._U[0], rasters[0], targets, learn, self.tick_count,
                                      count_from, counts[0], sums[0])
        else:
            def run(first, stop):
                return kernel.run_batch(*common, self._Q, self._P, self._R, self._S, self._U,
                                        rasters, targets, learn, self.tick_count, count_from,
                                        counts, sums, first, stop)
            flags = 0
            for result in parallel_ranges(run, batch):
                flags |= result
        self.flags |= int(flags)
        self.tick_count += ticks
        return counts, sums

    def tick(self, spikes, target=None, learn: bool = False, draws=None):
        """Run one tick (steps 1 to 5), as :meth:`GoldenDecolle.tick`.

        ``draws`` is accepted for the same signature and not needed: the engine draws
        exactly the numbers :func:`plasticore.golden.decolle.rounding_draws` gives.
        """
        s = np.atleast_2d(np.asarray(spikes, dtype=bool))
        if learn:
            if s.shape[0] != 1:
                raise ValueError(f"batch = {s.shape[0]}: learning is online, one sample at a time")
            if target is None:
                raise ValueError("target: learning needs the one-hot label")
        targets = (np.zeros((1, self.config.layers[-1]), dtype=np.int64) if target is None
                   else np.atleast_2d(np.asarray(target, dtype=np.int64)))
        self._run(s[:, None, :], targets, np.array([bool(learn)]), count_from=1)
        return [(u.copy(), s_out.copy()) for u, s_out in zip(self.U, self.S)]

    # The core's input stream is decoded as in the specification, then runs self.tick.
    tick_events = GoldenDecolle.tick_events

    def run_sample(self, raster, label=None, learn: bool = False):
        """Present samples from a fresh state, as :meth:`GoldenDecolle.run_sample`: all
        ticks in one compiled call, the samples of a batch in parallel (learning off).

        Returns the top layer's counts and membrane sums over the ticks from ``burn_in`` on.
        """
        burn_in = self.params.burn_in
        raster = np.asarray(raster, dtype=bool)
        if raster.ndim == 2:
            raster = raster[None]
        batch, ticks, _ = raster.shape
        self.reset_state(batch)
        targets = np.zeros((1, self.config.layers[-1]), dtype=np.int64)
        if learn:
            targets[0, label] = 1
        learn_mask = np.zeros(ticks, dtype=bool)
        learn_mask[burn_in:] = bool(learn)
        return self._run(raster, targets, learn_mask, count_from=burn_in)
