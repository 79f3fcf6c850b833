"""Compiled engines of the inference core and the eRBP core.

:class:`FastCore` and :class:`FastErbpCore` offer the run API, attributes and results of
:class:`plasticore.golden.lif.GoldenCore` and :class:`plasticore.golden.erbp.GoldenErbpCore`
and compute the same integers, bit for bit; whole runs and whole samples execute inside one
compiled call. The NumPy models stay the specification (see ``docs/engine.md``).
"""

from __future__ import annotations

import copy

import numpy as np

from plasticore.config import CoreConfig
from plasticore.golden.lif import GoldenCore, check_weights, random_weights

from . import _lif_kernel as kernel

__all__ = ["FastCore", "FastErbpCore", "pack_events", "unpack_spikes"]


def pack_events(event_ticks) -> tuple[np.ndarray, np.ndarray]:
    """Pack per-tick event lists into one int64 array and tick offsets (CSR form)."""
    arrays = [np.asarray(e, dtype=np.int64).reshape(-1) for e in event_ticks]
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    if arrays:
        np.cumsum([a.size for a in arrays], out=offsets[1:])
        return (np.concatenate(arrays) if offsets[-1] else np.zeros(0, dtype=np.int64)), offsets
    return np.zeros(0, dtype=np.int64), offsets


def unpack_spikes(spikes: np.ndarray, offsets: np.ndarray, n_ticks: int,
                  n_layers: int) -> list[list[np.ndarray]]:
    """Split recorded spikes back into ``[tick][layer] -> neuron indices``."""
    bounds = offsets.tolist()
    return [[spikes[bounds[k]:bounds[k + 1]] for k in range(t * n_layers, (t + 1) * n_layers)]
            for t in range(n_ticks)]


def _pack_raster(raster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A boolean ``(ticks, addresses)`` raster as packed events (:func:`pack_events`)."""
    tick_of, events = raster.nonzero()
    offsets = np.searchsorted(tick_of, np.arange(raster.shape[0] + 1)).astype(np.int64)
    return events.astype(np.int64), offsets


class _FlatState:
    """Per-layer views of flat arrays, as the NumPy models' lists of arrays."""

    def __init__(self, flat: np.ndarray, offsets, shapes):
        self.flat = flat
        self.offsets, self.shapes = offsets, shapes
        self.views = [flat[start:start + int(np.prod(shape))].reshape(shape)
                      for start, shape in zip(offsets, shapes)]

    def copy(self) -> "_FlatState":
        return _FlatState(self.flat.copy(), self.offsets, self.shapes)

    def assign(self, arrays, what: str) -> None:
        if len(arrays) != len(self.views):
            raise ValueError(f"{what}: got {len(arrays)} arrays, the core has {len(self.views)}")
        for index, (view, array) in enumerate(zip(self.views, arrays)):
            array = np.asarray(array, dtype=np.int64)
            if array.shape != view.shape:
                raise ValueError(f"{what}[{index}]: shape {array.shape}, expected {view.shape}")
            view[...] = array


def _register(index: int) -> property:
    """A register of the kernel's register vector, as an int attribute."""
    return property(lambda self: int(self._regs[index]),
                    lambda self, value: self._regs.__setitem__(index, int(value)))


def _offsets(sizes) -> np.ndarray:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


class FastCore:
    """Compiled engine of the inference core: :class:`plasticore.golden.lif.GoldenCore`'s
    API and results.

    Parameters
    ----------
    config : CoreConfig
    weights : list of array_like, optional
        As for :class:`~plasticore.golden.lif.GoldenCore`.
    """

    _ERBP = False

    def __init__(self, config: CoreConfig, weights=None):
        self.config = config
        if weights is None:
            weights = random_weights(config)
        self._setup(check_weights(config, weights), feedback=None, error_weight=0,
                    error_threshold=0, dendrite_shift=0, gain=0, gate=(0, 0), seed=0, rounds=1)

    def _setup(self, weights, *, feedback, error_weight, error_threshold, dendrite_shift,
               gain, gate, seed, rounds) -> None:
        config = self.config
        self._layers = np.array(config.layers, dtype=np.int64)
        shapes = [(n_pre, n_post) for n_pre, n_post in zip(config.layers, config.layers[1:])]
        w_off = _offsets([a * b for a, b in shapes])
        self._weights = _FlatState(np.zeros(w_off[-1], dtype=np.int64), w_off, shapes)
        self._weights.assign(weights, "weights")
        n_off = _offsets(config.neuron_layers)
        self._n_off = n_off
        neuron_shapes = [(n,) for n in config.neuron_layers]
        self._membrane = _FlatState(np.zeros(n_off[-1], dtype=np.int64), n_off, neuron_shapes)
        self._refractory = _FlatState(np.zeros(n_off[-1], dtype=np.int64), n_off, neuron_shapes)
        self._dendrite = _FlatState(np.zeros(n_off[-1], dtype=np.int64), n_off, neuron_shapes)
        n_out = config.layers[-1]
        f_shapes = [(n_out, n) for n in config.neuron_layers]
        f_off = _offsets([n_out * n for n in config.neuron_layers])
        self._f_off = f_off
        self._feedback = _FlatState(np.zeros(f_off[-1], dtype=np.int64), f_off, f_shapes)
        if feedback is not None:
            self._feedback.assign(feedback, "feedback")
        self._error_state = np.zeros((2, n_out), dtype=np.int64)
        self._error_spikes = np.zeros((2, n_out), dtype=bool)
        m_low, m_high = config.membrane_range
        w_low, w_high = config.weight_range
        constants = np.zeros(kernel.C_SIZE, dtype=np.int64)
        for index, value in ((kernel.C_ERBP, self._ERBP), (kernel.C_GAIN, gain),
                             (kernel.C_LEAK, config.leak_shift),
                             (kernel.C_THRESHOLD, config.threshold),
                             (kernel.C_RESET_ZERO, config.reset == "zero"),
                             (kernel.C_REFRACTORY, config.refractory_ticks),
                             (kernel.C_M_LOW, m_low), (kernel.C_M_HIGH, m_high),
                             (kernel.C_W_LOW, w_low), (kernel.C_W_HIGH, w_high),
                             (kernel.C_GATE_LOW, gate[0]), (kernel.C_GATE_HIGH, gate[1]),
                             (kernel.C_SEED, seed), (kernel.C_ROUNDS, rounds),
                             (kernel.C_ERROR_THRESHOLD, error_threshold),
                             (kernel.C_ERROR_WEIGHT, error_weight),
                             (kernel.C_DENDRITE_SHIFT, dendrite_shift),
                             (kernel.C_COUNTERS_SATURATE, self._ERBP)):
            constants[index] = int(value)
        self._constants = constants
        self._regs = np.zeros(kernel.R_SIZE, dtype=np.int64)

    # --- state, as the NumPy model's attributes ---------------------------------------

    weights = property(lambda self: self._weights.views,
                       lambda self, value: self._weights.assign(value, "weights"))
    membrane = property(lambda self: self._membrane.views,
                        lambda self, value: self._membrane.assign(value, "membrane"))
    refractory = property(lambda self: self._refractory.views,
                          lambda self, value: self._refractory.assign(value, "refractory"))

    tick_count = _register(kernel.R_TICK)
    dropped_events = _register(kernel.R_DROPPED)
    flags = _register(kernel.R_FLAGS)

    # --- the run API ---------------------------------------------------------------------

    # The specification's host methods work unchanged on the views above.
    load_weights = GoldenCore.load_weights
    read_weights = GoldenCore.read_weights
    read_membrane = GoldenCore.read_membrane
    read_refractory = GoldenCore.read_refractory

    def _run(self, events, offsets, *, count_from=None, record=True):
        """Run the packed ticks in one compiled call; return ``(counts, spikes, spike_offsets)``."""
        n_ticks = offsets.size - 1
        n_layers = len(self.config.neuron_layers)
        counts = np.zeros(self.config.layers[-1], dtype=np.int64)
        capacity = n_ticks * self._n_off[-1] if record else 0
        spikes = np.empty(capacity, dtype=np.int64)
        spike_offsets = np.zeros(n_ticks * n_layers + 1 if record else 1, dtype=np.int64)
        kernel.run_ticks(self._constants, self._layers, self._n_off, self._f_off,
                         self._weights.flat, self._membrane.flat, self._refractory.flat,
                         self._dendrite.flat, self._error_state, self._feedback.flat,
                         self._regs, events, offsets, n_ticks if count_from is None else count_from,
                         counts, record, spikes, spike_offsets, self._error_spikes)
        return counts, spikes, spike_offsets

    def tick(self, events) -> list[np.ndarray]:
        """Run one tick on the input ``events``; return each neuron layer's spikes."""
        return self.run([events])[0]

    def run(self, event_ticks) -> list[list[np.ndarray]]:
        """Run one tick per entry of ``event_ticks`` (in one compiled call); return each
        tick's spikes per neuron layer."""
        events, offsets = pack_events(event_ticks)
        _, spikes, spike_offsets = self._run(events, offsets)
        return unpack_spikes(spikes, spike_offsets, offsets.size - 1,
                             len(self.config.neuron_layers))

    def run_packed(self, events: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Run packed ticks (:func:`pack_events`) without recording spikes; return the
        prediction layer's spike counts. The fastest way to run a long stream."""
        counts, _, _ = self._run(np.ascontiguousarray(events, dtype=np.int64),
                                 np.ascontiguousarray(offsets, dtype=np.int64),
                                 count_from=0, record=False)
        return counts


class FastErbpCore(FastCore):
    """Compiled engine of the eRBP core: :class:`plasticore.golden.erbp.GoldenErbpCore`'s
    API, attributes and results, bit for bit.

    Parameters
    ----------
    config : CoreConfig
        With ``rule = "erbp"``.
    weights : list of array_like, optional
        Initial plastic weights; default :func:`plasticore.golden.erbp.initial_weights`.
    """

    _ERBP = True

    def __init__(self, config: CoreConfig, weights=None):
        from plasticore.golden.erbp import (_params, feedback_matrices, initial_weights,
                                            synapse_offsets)
        self.config = config
        self.params = params = _params(config)
        weights = check_weights(config, initial_weights(config) if weights is None else weights)
        self._setup(weights, feedback=feedback_matrices(config),
                    error_weight=params.error_input_weight,
                    error_threshold=params.error_threshold,
                    dendrite_shift=params.dendrite_leak_shift, gain=params.soma_gain_shift,
                    gate=(params.gate_low, params.gate_high), seed=params.rounding_seed,
                    rounds=params.prng_rounds)
        self.offsets = synapse_offsets(config)
        self.learning_rate_shift = params.learning_rate_shift
        self.burn_in_ticks = params.burn_in_ticks

    dendrite = property(lambda self: self._dendrite.views,
                        lambda self, value: self._dendrite.assign(value, "dendrite"))
    feedback = property(lambda self: self._feedback.views)

    @property
    def error_state(self) -> np.ndarray:
        return self._error_state

    @error_state.setter
    def error_state(self, value) -> None:
        self._error_state[...] = np.asarray(value, dtype=np.int64)

    @property
    def last_error_spikes(self) -> np.ndarray:
        return self._error_spikes

    sample_tick = _register(kernel.R_SAMPLE_TICK)
    burn_in_ticks = _register(kernel.R_BURN_IN)
    learning_rate_shift = _register(kernel.R_SHIFT)
    learning_enabled = property(lambda self: bool(self._regs[kernel.R_LEARNING]),
                                lambda self, value: self._regs.__setitem__(kernel.R_LEARNING,
                                                                           int(bool(value))))

    def start_sample(self) -> None:
        """Mark the start of a sample: the burn-in window restarts."""
        self.sample_tick = 0

    def run_sample(self, raster, label_raster=None, *, learn: bool,
                   count_from: int | None = None):
        """Present one sample (all its ticks in one compiled call); return the prediction
        layer's spike counts, as :meth:`plasticore.golden.erbp.GoldenErbpCore.run_sample`."""
        counts, _ = self.run_sample_recorded(raster, label_raster, learn=learn,
                                             count_from=count_from, record=False)
        return counts

    def run_sample_recorded(self, raster, label_raster=None, *, learn: bool,
                            count_from: int | None = None, record: bool = True):
        """:meth:`run_sample` that also returns every tick's input events and spikes.

        Returns
        -------
        counts : numpy.ndarray
        ticks : list of (numpy.ndarray, list of numpy.ndarray) or None
            Per tick, its input events and each neuron layer's spikes (with ``record``).
        """
        raster = np.asarray(raster, dtype=bool)
        n_out = self.config.layers[-1]
        if label_raster is not None:
            label_raster = np.asarray(label_raster, dtype=bool)
            if label_raster.shape != (raster.shape[0], n_out):
                raise ValueError(f"label_raster: shape {label_raster.shape}, expected "
                                 f"{(raster.shape[0], n_out)}")
            raster = np.concatenate([raster, label_raster], axis=1)
        events, offsets = _pack_raster(raster)
        self.start_sample()
        self.learning_enabled = learn
        try:
            counts, spikes, spike_offsets = self._run(
                events, offsets, record=record,
                count_from=self.params.burn_in_ticks if count_from is None else count_from)
        finally:
            self.learning_enabled = False
        if not record:
            return counts, None
        n_ticks = raster.shape[0]
        per_tick = unpack_spikes(spikes, spike_offsets, n_ticks, len(self.config.neuron_layers))
        return counts, [(events[offsets[t]:offsets[t + 1]], per_tick[t]) for t in range(n_ticks)]

    # --- parallel evaluation -------------------------------------------------------------

    def _network_state(self) -> tuple:
        """The state that, with learning off, decides a sample's spikes and counts (the
        error and dendrite states do not act on the membranes then)."""
        return self._membrane.flat, self._refractory.flat

    def _clone(self) -> "FastErbpCore":
        """A copy with its own neuron state and registers, sharing the weights (read only
        while learning is off)."""
        clone = copy.copy(self)
        for name in ("_membrane", "_refractory", "_dendrite"):
            setattr(clone, name, getattr(self, name).copy())
        clone._error_state = self._error_state.copy()
        clone._error_spikes = self._error_spikes.copy()
        clone._regs = self._regs.copy()
        return clone

    def _speculate(self, rasters, count_from):
        """Run ``rasters`` with learning off on this clone; per sample, record the network
        state it started from, its counts, the flags it raised and its recorded spikes."""
        runs = []
        count_from = self.params.burn_in_ticks if count_from is None else count_from
        for raster in rasters:
            start = tuple(array.copy() for array in self._network_state())
            events, offsets = _pack_raster(np.asarray(raster, dtype=bool))
            self.start_sample()
            self.flags = 0
            self.dropped_events = 0
            counts, spikes, spike_offsets = self._run(events, offsets, count_from=count_from)
            runs.append((start, counts, self.flags, self.dropped_events, spikes,
                         spike_offsets, offsets.size - 1))
        return runs

    def run_samples(self, rasters, *, count_from: int | None = None,
                    workers: int | None = None) -> np.ndarray:
        """Present ``rasters`` one after the other with learning off, exactly as a loop of
        :meth:`run_sample` calls would (the same counts, final state and registers), with
        the work spread over the CPU cores.

        The neurons are not reset between samples, so a sample's start state is known only
        once the samples before it have run. The samples are cut into one range per core;
        the first range runs on this model, the others speculatively, each on a copy that
        starts from this model's current state. Then, in order, the true membranes and
        refractory counters at the start of each speculative sample are compared with the
        copy's: from the first sample where they are equal, the copy computed the true
        spikes and counts (with learning off nothing else acts on them), and the error and
        dendrite states are brought along by replaying steps 4 and 5 of the tick on the
        recorded prediction spikes; before it, the samples are run again. On the trained
        digits network the copies agree from their second sample on.

        Returns
        -------
        numpy.ndarray
            ``(len(rasters), n_out)`` spike counts, each as :meth:`run_sample` returns it.
        """
        from .decolle import worker_count
        rasters = list(rasters)
        n = len(rasters)
        workers = min(worker_count() if workers is None else workers, n)
        results: list = [None] * n
        self._taken = 0       # samples whose speculative results were taken (for the tests)
        if workers <= 1:
            for k, raster in enumerate(rasters):
                results[k] = self.run_sample(raster, None, learn=False, count_from=count_from)
            return np.array(results, dtype=np.int64).reshape(n, -1)
        bounds = [n * k // workers for k in range(workers + 1)]
        clones = [self._clone() for _ in range(workers - 1)]
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(workers - 1) as pool:
            futures = [pool.submit(clone._speculate, rasters[bounds[k + 1]:bounds[k + 2]],
                                   count_from) for k, clone in enumerate(clones)]
            for k in range(bounds[0], bounds[1]):
                results[k] = self.run_sample(rasters[k], None, learn=False,
                                             count_from=count_from)
            speculations = [future.result() for future in futures]
        # the flags that steps 4 and 5 raise: from the replay, not from the copy
        network_flags = ~(kernel.F_DENDRITE | kernel.F_ERROR)
        for clone, runs, first, stop in zip(clones, speculations, bounds[1:-1], bounds[2:]):
            for k in range(first, stop):
                if all(np.array_equal(a, b)
                       for a, b in zip(self._network_state(), runs[k - first][0])):
                    self._take(clone, runs[k - first:], results, k, network_flags)
                    break
                results[k] = self.run_sample(rasters[k], None, learn=False,
                                             count_from=count_from)
        return np.array(results, dtype=np.int64).reshape(n, -1)

    def _take(self, clone, runs, results, first, network_flags) -> None:
        """Take the copy's runs from sample ``first`` on: its counts, membranes and
        refractory counters; replay the error and dendrite steps on this model's state."""
        flags = self.flags
        ticks = 0
        dropped = self.dropped_events
        for k, (_, counts, run_flags, run_dropped, spikes, spike_offsets,
                n_ticks) in enumerate(runs):
            results[first + k] = counts
            flags |= run_flags & network_flags
            dropped = min(kernel.COUNTER_MAX, dropped + run_dropped)
            flags |= kernel.replay_error_and_dendrites(
                self._constants, self._layers, self._n_off, self._f_off, self._dendrite.flat,
                self._error_state, self._feedback.flat, spikes, spike_offsets, n_ticks,
                self._error_spikes)
            ticks += n_ticks
        self.flags = flags
        self.dropped_events = dropped
        self._membrane.flat[...] = clone._membrane.flat
        self._refractory.flat[...] = clone._refractory.flat
        # registers as the samples leave them (learning off: the tick counter draws nothing)
        self.tick_count = min(kernel.COUNTER_MAX, self.tick_count + ticks)
        self.sample_tick = clone.sample_tick
        self._taken += len(runs)
