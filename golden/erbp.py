"""The integer model of the eRBP learning core: the specification the hardware follows.

Populations and projections
---------------------------
For a core with ``layers = (N_in, N_1, ..., N_L)`` and ``rule = "erbp"``:

- ``N_in`` data inputs and ``N_L`` label inputs. Both arrive on the one input event
  stream: address ``j < N_in`` is data input ``j``; address ``N_in + k`` (``k < N_L``) is
  the label of class ``k``. Other addresses are dropped and counted.
- Neuron layers ``1 .. L`` (hidden layers, then the prediction layer) of two-compartment
  neurons: the soma is the LIF neuron of :mod:`plasticore.golden.lif` (membrane ``v``,
  refractory counter ``ref``; the core's ``leak_shift``, ``threshold``, ``reset``,
  ``refractory_ticks``), the dendrite ``u`` integrates error spikes only.
- ``2 * N_L`` error neurons, E+ (row 0 of :attr:`GoldenErbpCore.error_state`) and E- (row 1).
- Plastic projections ``W[l]`` (``layers[l] x layers[l+1]``, ``weight_bits`` wide) onto the
  somata. Fixed projections: label -> error and prediction -> error (``+-error_input_weight``,
  one to one), error -> dendrite ``F[l]`` (``N_L x N_l``): one to one
  ``+-feedback_output_weight`` for the prediction layer, :func:`feedback_matrices` for hidden
  layers. E+ spikes add ``F[l][k]`` to the dendrites, E- spikes subtract it.

Every state is a signed ``membrane_bits`` integer and every addition into a state or an
accumulator saturates to ``[-2**(membrane_bits-1), 2**(membrane_bits-1) - 1]``; ``>>`` is an
arithmetic (floor) shift. ``s`` is the learning-rate shift register
(:attr:`GoldenErbpCore.learning_rate_shift`, loaded from ``learning_rate_shift``).

A tick
------
One call of :meth:`GoldenErbpCore.tick` with the input events of that tick does exactly
this, and the hardware does the same, bit for bit:

1. **Input events.** Addresses outside ``[0, N_in + N_L)`` are dropped and counted in
   ``dropped_events`` (sticks at ``2**32 - 1``). Data events keep their arrival order; label
   events keep theirs.
2. **Learning signals**, once per neuron, from the state at the *start* of the tick (the
   end of the previous one). Learning is *active* in this tick iff ``learning_enabled`` and
   ``sample_tick >= burn_in_ticks``. For every neuron ``i`` of every neuron layer::

       gate[i] = active and gate_low < v[i] < gate_high       # two comparisons
       step[i] = (u[i] >> s)                if gate[i] else 0  # integer part of u * 2**-s
       frac[i] = (u[i] & (2**s - 1))        if gate[i] else 0  # the remaining s bits

3. For each neuron layer ``l = 1 .. L`` in order:

   a. **Delivery and learning.** Every presynaptic event ``j`` of this tick (data events
      for ``l = 1``, otherwise the spikes of layer ``l-1`` from 3c of this same tick in
      ascending order), in order, reads its row of weights. For every target ``i``::

          acc[i] = sat(acc[i] + (W[j, i] << soma_gain_shift))  # the weight as read
          r      = threefry2x32(key = (rounding_seed, 0),
                                counter = (tick_count, synapse), rounds)[0] & (2**s - 1)
          W[j, i] = clamp(W[j, i] + step[i] + (r < frac[i]), weight_range)

      where ``synapse = offset[l] + j * N_l + i`` numbers every plastic synapse of the
      core (``offset[l]`` is the number of synapses of the projections before ``l``). The
      rounding bit makes the expected change exactly ``u[i] * 2**-s`` (stochastic
      rounding) and depends only on (tick, synapse), never on the order of events. The
      accumulators start the tick at zero; their saturation sets ``accumulator_saturated``,
      a clamped weight sets ``weight_saturated`` (sticky flags). A presynaptic address
      that occurs twice in one tick is processed twice, re-reading the row it wrote, with
      the same draw.
   b. **Somatic update**: :func:`plasticore.golden.lif.lif_update` (step 2b of
      :mod:`plasticore.golden.lif`) on ``v, ref, acc``; clamping sets
      ``membrane_saturated``.
   c. **Spikes** of the layer, ascending, feed layer ``l+1`` in this same tick.

4. **Error neurons.** For each class ``k`` the accumulator of E+ starts at zero and, with
   saturating additions, receives ``+error_input_weight`` for each label event ``k`` (in
   arrival order), then ``-error_input_weight`` for a prediction spike of neuron ``k``;
   E- receives the opposite. Then, for each of the ``2 N_L`` error neurons::

       e = max(0, sat(e + acc))                 # floor at zero
       if e >= error_threshold: spike, e -= error_threshold   # subtractive reset

5. **Dendrites**, every neuron layer: the feedback accumulator starts at zero and adds
   ``F[l][k]`` for each E+ spike ``k`` (ascending), then ``-F[l][k]`` for each E- spike
   ``k`` (ascending), saturating. Then::

       leak = u >> dendrite_leak_shift
       if u > 0 and leak == 0: leak = 1        # a positive dendrite still decays to zero
       u = sat(u - leak + fb)

   Saturation in steps 4 and 5 sets ``error_saturated`` / ``dendrite_saturated``.
6. ``tick_count`` and ``sample_tick`` advance by one (both saturate at ``2**32 - 1``).

The host starts a sample with :meth:`GoldenErbpCore.start_sample` (``sample_tick = 0``)
and switches learning with ``learning_enabled``. Neuron states are not reset between
samples; the burn-in window covers the transient.

Why this order: every per-synapse operation is one read, one addition (with the rounding
bit as carry-in), one saturation and one write, done while the row is read for delivery;
the gate and ``u * 2**-s`` are per-neuron values computed once per tick before delivery
starts, so delivery never waits on a neuron update. The delivered value is the weight as
read, so the adder of the update is not in series with the accumulator.
"""

from __future__ import annotations

import numpy as np

from plasticore.config import CoreConfig
from plasticore.golden.lif import GoldenCore, check_weights
from plasticore.golden.prng import threefry2x32
from plasticore.rules import rule_params
from plasticore.rules.erbp import feedback_matrices, synapse_offsets
from plasticore.layout import (FLAG_ACCUMULATOR_SATURATED, FLAG_DENDRITE_SATURATED,
                               FLAG_ERROR_SATURATED, FLAG_MEMBRANE_SATURATED,
                               FLAG_WEIGHT_SATURATED)

__all__ = ["GoldenErbpCore", "sample_events", "sample_session", "feedback_matrices", "initial_weights", "synapse_offsets",
           "stochastic_round_step", "threefry_word0", "weight_step", "error_neuron_update",
           "dendrite_update", "FLAG_WEIGHT_SATURATED", "FLAG_DENDRITE_SATURATED",
           "FLAG_ERROR_SATURATED"]

COUNTER_MAX = (1 << 32) - 1
# Draw for all later synapses in one Threefry call when there are at most this many.
PREFETCH_LIMIT = 4096
_PLUS_MINUS = np.array([[1], [-1]], dtype=np.int64)


def _params(config: CoreConfig):
    return rule_params(config, "erbp", "the eRBP golden model")


def initial_weights(config: CoreConfig) -> list[np.ndarray]:
    """Return initial plastic weights: uniform integers in ``+-initial_weight_range[l]``.

    Drawn with ``numpy.random.default_rng(config.seed)`` on the host and loaded into the
    core (they are not part of the hardware's specification).
    """
    params = _params(config)
    rng = np.random.default_rng(config.seed)
    return [rng.integers(-r, r + 1, size=(n_pre, n_post), dtype=np.int64)
            for r, n_pre, n_post in zip(params.initial_weight_range, config.layers,
                                        config.layers[1:])]


def stochastic_round_step(u, shift: int):
    """Split ``u * 2**-shift`` into the per-neuron integer step and fraction (step 2)."""
    u = np.asarray(u, dtype=np.int64)
    return u >> shift, u & ((1 << shift) - 1)


def weight_step(v, u, random_word, shift: int, gate_low: int, gate_high: int):
    """Return the change of one weight (step 3a): ``step[i] + (r < frac[i])``, gated.

    ``random_word`` is word 0 of the synapse's draw (``r`` is its low ``shift`` bits);
    ``v`` and ``u`` are the postsynaptic soma and dendrite at the start of the tick.
    Arrays broadcast.
    """
    v, u = np.asarray(v, dtype=np.int64), np.asarray(u, dtype=np.int64)
    step, frac = stochastic_round_step(u, shift)
    r = np.asarray(random_word, dtype=np.int64) & ((1 << shift) - 1)
    gate = (v > gate_low) & (v < gate_high)
    return np.where(gate, step + (r < frac), 0)


def error_neuron_update(state, acc, threshold: int, membrane_bits: int):
    """Step 4 for error neurons with input sum ``acc``: return ``(state, spike, saturated)``.

    ``e = max(0, sat(e + acc))``; a spike when ``e >= threshold``, then ``e -= threshold``.
    """
    high = (1 << (membrane_bits - 1)) - 1
    low = -high - 1
    raw = np.asarray(state, dtype=np.int64) + np.asarray(acc, dtype=np.int64)
    saturated = (raw > high) | (raw < low)
    raw = np.maximum(np.clip(raw, low, high), 0)
    spike = raw >= threshold
    return raw - spike * threshold, spike, saturated


def dendrite_update(u, fb, leak_shift: int, membrane_bits: int):
    """Step 5 for dendrites with feedback sum ``fb``: return ``(u, saturated)``."""
    high = (1 << (membrane_bits - 1)) - 1
    low = -high - 1
    u = np.asarray(u, dtype=np.int64)
    leak = u >> leak_shift
    leak = np.where((u > 0) & (leak == 0), 1, leak)
    raw = u - leak + np.asarray(fb, dtype=np.int64)
    return np.clip(raw, low, high), (raw > high) | (raw < low)


_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_LEFT = tuple(np.uint32(r) for r in _ROTATIONS)
_RIGHT = tuple(np.uint32(32 - r) for r in _ROTATIONS)


def threefry_word0(key0: int, key1: int, counter0: int, counter1: np.ndarray,
                   rounds: int) -> np.ndarray:
    """Word 0 of :func:`plasticore.threefry.threefry2x32` for a scalar key and ``counter0``.

    The same function, computed in place on uint32 arrays: the tick loop calls it once per
    tick, so its fixed cost matters. Tests check it against the reference implementation.
    """
    mask = 0xFFFFFFFF
    k0, k1 = key0 & mask, key1 & mask
    keys = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x1 = (np.asarray(counter1, dtype=np.int64) & mask).astype(np.uint32)
    x1 += np.uint32(keys[1])
    x0 = np.full(x1.shape, (counter0 + k0) & mask, dtype=np.uint32)
    scratch = np.empty_like(x1)
    for round_index in range(rounds):
        x0 += x1
        rotation = round_index % 8
        np.left_shift(x1, _LEFT[rotation], out=scratch)
        x1 >>= _RIGHT[rotation]
        x1 |= scratch
        x1 ^= x0
        if round_index % 4 == 3:
            injection = round_index // 4 + 1
            x0 += np.uint32(keys[injection % 3])
            x1 += np.uint32((keys[(injection + 1) % 3] + injection) & mask)
    return x0


def _saturating_sum(rows: np.ndarray, n: int, low: int, high: int):
    """Sum ``rows`` (in order) into a zero accumulator with a saturating add per row."""
    if rows.shape[0] == 0:
        return np.zeros(n, dtype=np.int64), False
    largest = int(np.abs(rows).max())
    if rows.shape[0] * largest <= high:
        # No partial sum can leave the range: the order does not matter.
        return rows.sum(axis=0), False
    acc = np.zeros(n, dtype=np.int64)
    saturated = False
    for row in rows:
        raw = acc + row
        if ((raw < low) | (raw > high)).any():
            saturated = True
        acc = np.clip(raw, low, high)
    return acc, saturated


def sample_events(n_inputs: int, raster, label_raster=None) -> list[np.ndarray]:
    """Return each tick's input events of a sample: data addresses ascending, then labels
    as addresses ``n_inputs + k``."""
    raster = np.asarray(raster, dtype=bool)
    if label_raster is not None:
        label_raster = np.asarray(label_raster, dtype=bool)
        if label_raster.shape[0] != raster.shape[0]:
            raise ValueError(f"label_raster: {label_raster.shape[0]} ticks, the raster "
                             f"{raster.shape[0]}")
        raster = np.concatenate([raster, label_raster], axis=1)
    tick_of, address = raster.nonzero()
    bounds = np.searchsorted(tick_of, np.arange(raster.shape[0] + 1))
    return [address[bounds[t]:bounds[t + 1]] for t in range(raster.shape[0])]


def sample_session(n_inputs: int, raster, label_raster=None, *, learn: bool):
    """What the host does to present one sample to the core, tick by tick.

    Returns
    -------
    list of (list of (str, int), numpy.ndarray)
        Per tick, the register writes made before it (the first tick starts the sample
        and sets ``learning_enabled``) and its input events; :func:`present_sample` does
        the same to a model.
    """
    events = sample_events(n_inputs, raster, label_raster)
    return [([("sample_tick", 0), ("learning_enabled", int(learn))] if t == 0 else [], e)
            for t, e in enumerate(events)]


def present_sample(model, raster, label_raster=None, *, learn: bool,
                   count_from: int | None = None):
    """Present one sample to an eRBP model (integer or float); return the prediction
    layer's spike counts from tick ``count_from`` (default: the burn-in) on.

    Labels follow the data events of their tick as addresses ``N_in + k``.
    """
    params = model.params
    raster = np.asarray(raster, dtype=bool)
    if count_from is None:
        count_from = params.burn_in_ticks
    counts = np.zeros(model.config.layers[-1], dtype=np.int64)
    model.start_sample()
    model.learning_enabled = learn
    if label_raster is not None:
        label_raster = np.asarray(label_raster, dtype=bool)
        if label_raster.shape != (raster.shape[0], model.config.layers[-1]):
            raise ValueError(f"label_raster: shape {label_raster.shape}, expected "
                             f"{(raster.shape[0], model.config.layers[-1])}")
    for t, events in enumerate(sample_events(model.config.n_inputs, raster, label_raster)):
        spikes = model.tick(events)
        if t >= count_from:
            counts[spikes[-1]] += 1
    model.learning_enabled = False
    return counts


class GoldenErbpCore(GoldenCore):
    """Bit-exact integer model of the eRBP learning core, run tick by tick.

    Parameters
    ----------
    config : CoreConfig
        With ``rule = "erbp"``; its ``learning`` holds :class:`plasticore.rules.erbp.Params`.
    weights : list of array_like, optional
        Initial plastic weights; default :func:`initial_weights`.

    Attributes
    ----------
    weights : list of numpy.ndarray
        ``weights[l]`` has shape ``(layers[l], layers[l+1])``.
    membrane, refractory, dendrite : list of numpy.ndarray
        Per neuron layer.
    error_state : numpy.ndarray
        Shape ``(2, N_L)``: E+ then E-.
    feedback : list of numpy.ndarray
        The fixed error -> dendrite matrices.
    learning_enabled : bool
    learning_rate_shift : int
        The register ``s`` (1 to 32); the host may change it between samples.
    burn_in_ticks : int
        The register holding the burn-in window (from ``burn_in_ticks``).
    tick_count, sample_tick, dropped_events, flags : int
    last_error_spikes : numpy.ndarray
        Boolean ``(2, N_L)``: the error spikes of the last tick.
    """

    # The run API (load_weights, read_weights, read_membrane, read_refractory, run) is
    # GoldenCore's; the state, the constructor and the tick are the eRBP core's own.

    def __init__(self, config: CoreConfig, weights=None):
        self.config = config
        self.params = _params(config)
        self.weights = check_weights(self.config, initial_weights(config) if weights is None
                                             else weights)
        self.feedback = feedback_matrices(config)
        self.offsets = synapse_offsets(config)
        self._later_synapses = sum(m.size for m in self.weights[1:])
        self._feedback_largest = [int(np.abs(m).max()) if m.size else 0 for m in self.feedback]
        self.membrane = [np.zeros(n, dtype=np.int64) for n in config.neuron_layers]
        self.refractory = [np.zeros(n, dtype=np.int64) for n in config.neuron_layers]
        self.dendrite = [np.zeros(n, dtype=np.int64) for n in config.neuron_layers]
        self.error_state = np.zeros((2, config.layers[-1]), dtype=np.int64)
        self.last_error_spikes = np.zeros((2, config.layers[-1]), dtype=bool)
        self.learning_enabled = False
        self.learning_rate_shift = self.params.learning_rate_shift
        self.burn_in_ticks = self.params.burn_in_ticks
        self.tick_count = 0
        self.sample_tick = 0
        self.dropped_events = 0
        self.flags = 0

    def start_sample(self) -> None:
        """Mark the start of a sample: the burn-in window restarts."""
        self.sample_tick = 0

    def learning_signals(self):
        """Return per neuron layer ``(step, frac, nonzero)`` for this tick (step 2), or None.

        None when learning is not active in this tick; ``nonzero`` says whether any neuron
        of the layer can change a weight (otherwise the row update is skipped: it would
        write back what it read).
        """
        params = self.params
        if not self.learning_enabled or self.sample_tick < self.burn_in_ticks:
            return None
        signals = []
        for v, u in zip(self.membrane, self.dendrite):
            gate = (v > params.gate_low) & (v < params.gate_high)
            step, frac = stochastic_round_step(u, self.learning_rate_shift)
            step, frac = np.where(gate, step, 0), np.where(gate, frac, 0)
            signals.append((step, frac, bool(step.any() or frac.any())))
        return signals

    def _draw_rows(self, layer: int, events: np.ndarray) -> np.ndarray:
        """Rounding draws (``s`` bits) for the rows ``events`` of projection ``layer``."""
        params = self.params
        n_post = self.weights[layer].shape[1]
        synapse = (self.offsets[layer] + events[:, None] * n_post
                   + np.arange(n_post, dtype=np.int64)[None, :])
        words = threefry_word0(params.rounding_seed, 0, self.tick_count, synapse.reshape(-1),
                               params.prng_rounds)
        return self._low_bits(words).reshape(events.size, n_post)

    def _low_bits(self, words: np.ndarray) -> np.ndarray:
        shift = self.learning_rate_shift
        words = words.astype(np.int64)
        return words if shift >= 32 else words & ((1 << shift) - 1)

    def _prefetch_draws(self, data_events: np.ndarray):
        """Draw, in one Threefry call, for the data rows of this tick and every later synapse.

        Only a speed-up of the model (one call per tick instead of one per layer): the
        draws depend on (tick, synapse) alone, so which ones are computed early is
        invisible. Used when the later projections are small.
        """
        params = self.params
        n_post = self.weights[0].shape[1]
        later_start = self.offsets[1] if len(self.offsets) > 1 else None
        total = sum(m.size for m in self.weights)
        first = (self.offsets[0] + data_events[:, None] * n_post
                 + np.arange(n_post, dtype=np.int64)[None, :]).reshape(-1)
        counters = np.concatenate([first, np.arange(later_start, total, dtype=np.int64)])
        words = self._low_bits(threefry_word0(params.rounding_seed, 0, self.tick_count,
                                              counters, params.prng_rounds))
        prefetched = [words[:first.size].reshape(data_events.size, n_post)]
        position = first.size
        for matrix in self.weights[1:]:
            prefetched.append(words[position:position + matrix.size].reshape(matrix.shape))
            position += matrix.size
        return prefetched

    def _deliver_and_learn(self, layer: int, events: np.ndarray, signal, prefetched):
        """Step 3a for one layer; returns the accumulators."""
        config, params = self.config, self.params
        low, high = config.membrane_range
        matrix = self.weights[layer]
        n_post = matrix.shape[1]
        gain = params.soma_gain_shift
        if events.size == 0:
            return np.zeros(n_post, dtype=np.int64)
        learn = signal is not None and signal[2]
        unique = events.size == 1 or np.unique(events).size == events.size
        if learn:
            if prefetched is None:
                draws = self._draw_rows(layer, events)
            elif layer == 0:
                draws = prefetched[0]
            else:
                draws = prefetched[layer][events]
        if unique:
            rows = matrix[events]
            acc, saturated = _saturating_sum(rows << gain, n_post, low, high)
            if learn:
                matrix[events] = self._updated_rows(rows, signal, draws)
        else:
            acc = np.zeros(n_post, dtype=np.int64)
            saturated = False
            for position, j in enumerate(events):
                row = matrix[j].copy()
                raw = acc + (row << gain)
                saturated |= bool(((raw < low) | (raw > high)).any())
                acc = np.clip(raw, low, high)
                if learn:
                    matrix[j] = self._updated_rows(row[None, :], signal,
                                                   draws[position:position + 1])[0]
        if saturated:
            self.flags |= FLAG_ACCUMULATOR_SATURATED
        return acc

    def _updated_rows(self, rows, signal, draws):
        step, frac, _ = signal
        raw = rows + step + (draws < frac)
        w_low, w_high = self.config.weight_range
        if raw.min() < w_low or raw.max() > w_high:
            self.flags |= FLAG_WEIGHT_SATURATED
            raw = np.minimum(np.maximum(raw, w_low), w_high)
        return raw

    def _soma_update(self, layer: int, acc: np.ndarray):
        """Step 3b: the same arithmetic as :func:`plasticore.golden.lif.lif_update`, inlined."""
        config = self.config
        low, high = config.membrane_range
        v, ref = self.membrane[layer], self.refractory[layer]
        active = ref == 0
        raw = v - (v >> config.leak_shift) + acc if config.leak_shift else v + acc
        if raw.min() < low or raw.max() > high:
            if (active & ((raw < low) | (raw > high))).any():
                self.flags |= FLAG_MEMBRANE_SATURATED
            raw = np.minimum(np.maximum(raw, low), high)
        spikes = active & (raw >= config.threshold)
        if config.reset == "zero":
            after = np.where(spikes, 0, raw)
        else:
            after = raw - spikes * config.threshold
        self.membrane[layer] = np.where(active, after, v)
        if config.refractory_ticks or ref.any():
            self.refractory[layer] = np.where(active, spikes * config.refractory_ticks, ref - 1)
        return spikes

    def tick(self, events) -> list[np.ndarray]:
        """Run one tick on the input ``events`` (data and label addresses, arrival order).

        Returns
        -------
        list of numpy.ndarray
            For each neuron layer, the indices of the neurons that spiked, ascending. The
            error spikes are left in :attr:`last_error_spikes`.
        """
        config = self.config
        n_in, n_out = config.n_inputs, config.layers[-1]
        events = np.asarray(events, dtype=np.int64).reshape(-1)
        if events.size and (events.min() < 0 or events.max() >= n_in):
            is_data = (events >= 0) & (events < n_in)
            is_label = (events >= n_in) & (events < n_in + n_out)
            dropped = int((~(is_data | is_label)).sum())
            if dropped:
                self.dropped_events = min(COUNTER_MAX, self.dropped_events + dropped)
            labels = events[is_label] - n_in
            presynaptic = events[is_data]
        else:
            labels = events[:0]
            presynaptic = events

        signals = self.learning_signals()
        prefetched = None
        if signals is not None and self._later_synapses <= PREFETCH_LIMIT:
            prefetched = self._prefetch_draws(presynaptic)
        spikes_per_layer = []
        for layer in range(len(config.neuron_layers)):
            acc = self._deliver_and_learn(layer, presynaptic,
                                          None if signals is None else signals[layer],
                                          prefetched)
            spikes = self._soma_update(layer, acc)
            presynaptic = spikes.nonzero()[0]
            spikes_per_layer.append(presynaptic)

        error_spikes = self._error_update(labels, spikes_per_layer[-1])
        self._dendrite_update(error_spikes)
        self.last_error_spikes = error_spikes
        self.tick_count = min(COUNTER_MAX, self.tick_count + 1)
        self.sample_tick = min(COUNTER_MAX, self.sample_tick + 1)
        return spikes_per_layer

    def _error_update(self, labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Step 4; returns the boolean ``(2, N_L)`` error spikes."""
        config, params = self.config, self.params
        low, high = config.membrane_range
        n_out = config.layers[-1]
        weight = params.error_input_weight
        n_inputs = labels.size + predictions.size
        if n_inputs == 0:
            acc = 0
        elif n_inputs * weight <= high:
            acc_plus = weight * (np.bincount(labels, minlength=n_out)
                                 - np.bincount(predictions, minlength=n_out))
            acc = acc_plus * _PLUS_MINUS
        else:
            acc = np.zeros((2, n_out), dtype=np.int64)
            for k, sign in [(k, 1) for k in labels] + [(k, -1) for k in predictions]:
                raw = acc[:, k] + np.array([sign * weight, -sign * weight])
                if ((raw < low) | (raw > high)).any():
                    self.flags |= FLAG_ERROR_SATURATED
                acc[:, k] = np.clip(raw, low, high)
        self.error_state, spikes, saturated = error_neuron_update(
            self.error_state, acc, params.error_threshold, config.membrane_bits)
        if saturated.any():
            self.flags |= FLAG_ERROR_SATURATED
        return spikes

    def _dendrite_update(self, error_spikes: np.ndarray) -> None:
        """Step 5."""
        config, params = self.config, self.params
        low, high = config.membrane_range
        shift = params.dendrite_leak_shift
        n_spikes = int(error_spikes.sum())
        signed = (error_spikes[0].astype(np.int64) - error_spikes[1]) if n_spikes else None
        for layer, matrix in enumerate(self.feedback):
            if n_spikes == 0:
                fb = 0
            elif n_spikes * self._feedback_largest[layer] <= high:
                fb = signed @ matrix      # no partial sum can saturate
            else:
                plus = np.flatnonzero(error_spikes[0])
                minus = np.flatnonzero(error_spikes[1])
                rows = np.concatenate([matrix[plus], -matrix[minus]])
                fb, saturated = _saturating_sum(rows, matrix.shape[1], low, high)
                if saturated:
                    self.flags |= FLAG_DENDRITE_SATURATED
            self.dendrite[layer], saturated = dendrite_update(self.dendrite[layer], fb, shift,
                                                              config.membrane_bits)
            if saturated.any():
                self.flags |= FLAG_DENDRITE_SATURATED

    def run_sample(self, raster, label_raster=None, *, learn: bool,
                   count_from: int | None = None):
        """Present one sample and return the prediction layer's spike counts.

        Parameters
        ----------
        raster : array_like of bool
            ``(ticks, N_in)`` data spikes.
        label_raster : array_like of bool, optional
            ``(ticks, N_L)`` label spikes (:func:`plasticore.datasets.label_spike_train`);
            they follow the data events of their tick as addresses ``N_in + k``.
        learn : bool
            Sets ``learning_enabled`` for the sample.
        count_from : int, optional
            First tick whose output spikes are counted; default ``burn_in_ticks``.
        """
        return present_sample(self, raster, label_raster, learn=learn, count_from=count_from)
