"""The integer model of the inference core: the specification the hardware follows.

A tick
------
One call of :meth:`GoldenCore.tick` with the input events of that tick (addresses into the
input layer, in arrival order) does exactly this, and the hardware does the same, bit for bit:

1. **Input events.** Each event whose address is ``>= n_inputs`` (or negative) is dropped
   and counted in ``dropped_events`` (a counter that sticks at ``2**32 - 1``); it touches
   no other state. Each valid event ``j``, in arrival order, is delivered to layer 1.
2. For each neuron layer ``l = 1, 2, ...`` in order:

   a. **Delivery.** Every presynaptic event ``j`` of this tick (inputs for ``l = 1``, the
      spikes of layer ``l-1`` from step 2c of this same tick, in ascending neuron order,
      otherwise) adds its row of weights to the neurons' accumulators, one saturating
      addition per synapse::

          acc[i] = clamp(acc[i] + W[j, i], membrane_range)   # for every i

      The accumulators start the tick at zero, or, in a network with recurrent
      projections, holding what step 3 of the previous tick delivered: recurrent spikes
      arrive at the start of the next tick, *before* any of its input events.
      Saturation sets the sticky flag ``accumulator_saturated``. Because of saturation the
      order of events matters; the order is the arrival order above.
   b. **Update.** Every neuron ``i`` of the layer, in ascending order::

          if ref[i] > 0:                      # refractory: input discarded, membrane held
              ref[i] -= 1
          else:
              leak = (v[i] >> leak_shift) if leak_shift else 0   # arithmetic shift
              v[i] = clamp(v[i] - leak + acc[i], membrane_range)  # flag if it clamps
              if v[i] >= threshold:
                  spike
                  v[i] = 0 if reset == "zero" else v[i] - threshold
                  ref[i] = refractory_ticks
          acc[i] = 0

      Clamping sets the sticky flag ``membrane_saturated``.
   c. **Spikes.** The layer's spikes, in ascending neuron order, are output (tagged with
      layer, neuron and tick) and are the presynaptic events of layer ``l+1`` in this
      same tick.
3. **Recurrent delivery** (only with recurrent projections, ``config.recurrent``). For
   each recurrent projection ``source -> target`` in config order, each spike ``j`` of
   layer ``source`` from step 2c of this tick, in ascending neuron order, adds its row of
   that projection's weights into the accumulators of layer ``target``, saturating and
   flagging as in step 2a. The accumulators were all cleared by step 2b, so this is what
   the next tick's step 2a starts from. The weights used are those of this tick: a host
   write between ticks comes after this step.
4. The tick counter advances by one.

Notes
-----
The leak is a floor shift, so a positive membrane below ``2**leak_shift`` does not decay
and a negative one decays towards -1 then 0. The membrane range is also the accumulator
range: ``[-2**(membrane_bits-1), 2**(membrane_bits-1) - 1]``.
"""

from __future__ import annotations

import numpy as np

from plasticore.config import CoreConfig
from plasticore.layout import FLAG_ACCUMULATOR_SATURATED, FLAG_MEMBRANE_SATURATED

__all__ = ["GoldenCore", "random_weights", "projection_shapes", "check_weights", "lif_update", "saturating_add", "FLAG_ACCUMULATOR_SATURATED",
           "FLAG_MEMBRANE_SATURATED"]

DROPPED_EVENTS_MAX = (1 << 32) - 1


def random_weights(config: CoreConfig, rng: np.random.Generator | None = None,
                   scale: float = 1.0) -> list[np.ndarray]:
    """Draw uniform random weights for every projection.

    Parameters
    ----------
    config : CoreConfig
    rng : numpy.random.Generator, optional
        Defaults to one seeded with ``config.seed``.
    scale : float
        Fraction of the full weight range to draw from (1.0 is the whole range).

    Returns
    -------
    list of numpy.ndarray
        One matrix per projection of ``config.projection_pairs``: ``weights[l - 1]`` has
        shape ``(layers[l-1], layers[l])``, a recurrent projection ``(s, t)`` after them
        ``(layers[s], layers[t])``; dtype int64.
    """
    if rng is None:
        rng = np.random.default_rng(config.seed)
    low, high = config.weight_range
    low, high = int(np.floor(low * scale)), int(np.ceil(high * scale))
    return [rng.integers(low, high + 1, size=shape, dtype=np.int64)
            for shape in projection_shapes(config)]


def projection_shapes(config: CoreConfig) -> list[tuple[int, int]]:
    """Return the ``(n_pre, n_post)`` shape of every projection, in weight-list order."""
    return [(config.layers[source], config.layers[target])
            for source, target in config.projection_pairs]


def lif_update(config: CoreConfig, v, ref, acc):
    """Update LIF neurons for one tick from their accumulated input (step 2b).

    Vectorized over neurons. Returns ``(v, ref, spikes, clamped)`` as new arrays:
    ``spikes`` and ``clamped`` are boolean masks.
    """
    v = np.asarray(v, dtype=np.int64)
    ref = np.asarray(ref, dtype=np.int64)
    acc = np.asarray(acc, dtype=np.int64)
    low, high = config.membrane_range
    active = ref == 0
    leak = (v >> config.leak_shift) if config.leak_shift else np.zeros_like(v)
    raw = v - leak + acc
    clamped = active & ((raw < low) | (raw > high))
    integrated = np.clip(raw, low, high)
    spikes = active & (integrated >= config.threshold)
    if config.reset == "zero":
        after_spike = np.zeros_like(integrated)
    else:
        after_spike = integrated - config.threshold
    new_v = np.where(active, np.where(spikes, after_spike, integrated), v)
    new_ref = np.where(active, np.where(spikes, config.refractory_ticks, 0), ref - 1)
    return new_v, new_ref, spikes, clamped


def saturating_add(accumulators, weights, low: int, high: int):
    """Add weights to accumulators, clamping each sum to ``[low, high]`` (one event, step 2a).

    Returns ``(sums, clamped)``; ``clamped`` is a boolean mask.
    """
    raw = np.asarray(accumulators, dtype=np.int64) + np.asarray(weights, dtype=np.int64)
    return np.clip(raw, low, high), (raw < low) | (raw > high)


def _deliver(events: np.ndarray, weights: np.ndarray, low: int, high: int, start=None):
    """Accumulate the rows of ``events`` with a saturating addition per synapse (step 2a),
    onto ``start`` (zeros if None).

    Returns the accumulators and whether any addition saturated.
    """
    n_post = weights.shape[1]
    acc = np.zeros(n_post, dtype=np.int64) if start is None else np.array(start, dtype=np.int64)
    if len(events) == 0:
        return acc, False
    largest = int(np.abs(weights[np.unique(events)]).max())
    if int(np.abs(acc).max()) + len(events) * largest <= high:
        # No partial sum can leave the range, so order does not matter: sum at once.
        return acc + weights[events].sum(axis=0), False
    saturated = False
    for j in events:
        acc, clamped = saturating_add(acc, weights[j], low, high)
        saturated |= bool(clamped.any())
    return acc, saturated


def check_weights(config: CoreConfig, weights) -> list[np.ndarray]:
    """Return ``weights`` as int64 matrices, refusing a wrong count, shape or range.

    The error names the projection, what was found and the limit.
    """
    pairs = config.projection_pairs
    if len(weights) != len(pairs):
        raise ValueError(f"weights: got {len(weights)} matrices, the core has "
                         f"{len(pairs)} projections")
    low, high = config.weight_range
    checked = []
    for index, (matrix, shape, (source, target)) in enumerate(
            zip(weights, projection_shapes(config), pairs), 1):
        matrix = np.array(matrix, dtype=np.int64)
        what = f"layer {index}" if index < len(config.layers) else f"{source} -> {target}"
        if matrix.shape != shape:
            raise ValueError(f"weights[{index - 1}] ({what}): shape {matrix.shape}, "
                             f"expected {shape}")
        if matrix.size and (matrix.min() < low or matrix.max() > high):
            raise ValueError(f"weights[{index - 1}] ({what}): values span "
                             f"[{matrix.min()}, {matrix.max()}], the limit is "
                             f"[{low}, {high}] for weight_bits = {config.weight_bits}")
        checked.append(matrix)
    return checked


class GoldenCore:
    """Bit-exact integer model of the inference core, run tick by tick.

    Parameters
    ----------
    config : CoreConfig
    weights : list of array_like, optional
        One integer matrix per projection (:func:`projection_shapes`: the feedforward
        ``(layers[l-1], layers[l])`` ones, then the recurrent ones); defaults to
        :func:`random_weights` of the config seed. Values out of the weight range are refused.

    Attributes
    ----------
    weights : list of numpy.ndarray
    membrane, refractory : list of numpy.ndarray
        Per neuron layer, int64.
    tick_count : int
    dropped_events : int
    flags : int
        Sticky ``FLAG_*`` bits.
    """

    def __init__(self, config: CoreConfig, weights=None):
        self.config = config
        if weights is None:
            weights = random_weights(config)
        self.weights = check_weights(self.config, weights)
        self.membrane = [np.zeros(n, dtype=np.int64) for n in config.neuron_layers]
        self.refractory = [np.zeros(n, dtype=np.int64) for n in config.neuron_layers]
        self.tick_count = 0
        self.dropped_events = 0
        self.flags = 0
        # What recurrent projections delivered for the next tick (step 3), per layer.
        self.recurrent_input = [np.zeros(n, dtype=np.int64) for n in config.neuron_layers]

    # The run API. The RTL simulation and the board driver offer the same methods, so that
    # one script runs unchanged against any of them.

    def load_weights(self, weights) -> None:
        """Replace every projection's weights (checked as in the constructor)."""
        self.weights = check_weights(self.config, weights)

    def read_weights(self) -> list[np.ndarray]:
        """Return a copy of every projection's weights."""
        return [matrix.copy() for matrix in self.weights]

    def read_membrane(self) -> list[np.ndarray]:
        """Return a copy of every neuron layer's membrane potentials."""
        return [v.copy() for v in self.membrane]

    def read_refractory(self) -> list[np.ndarray]:
        """Return a copy of every neuron layer's refractory counters."""
        return [r.copy() for r in self.refractory]

    def tick(self, events) -> list[np.ndarray]:
        """Run one tick on the input ``events`` (addresses, in arrival order).

        Returns
        -------
        list of numpy.ndarray
            For each neuron layer, the indices of the neurons that spiked, ascending.
        """
        config = self.config
        events = np.asarray(events, dtype=np.int64).reshape(-1)
        valid = (events >= 0) & (events < config.n_inputs)
        dropped = int((~valid).sum())
        self.dropped_events = min(DROPPED_EVENTS_MAX, self.dropped_events + dropped)
        presynaptic = events[valid]
        low, high = config.membrane_range
        spikes_per_layer = []
        for layer in range(len(config.neuron_layers)):
            acc, saturated = _deliver(presynaptic, self.weights[layer], low, high,
                                      self.recurrent_input[layer])
            if saturated:
                self.flags |= FLAG_ACCUMULATOR_SATURATED
            v, ref, spikes, clamped = lif_update(config, self.membrane[layer],
                                                 self.refractory[layer], acc)
            if clamped.any():
                self.flags |= FLAG_MEMBRANE_SATURATED
            self.membrane[layer], self.refractory[layer] = v, ref
            presynaptic = np.flatnonzero(spikes)
            spikes_per_layer.append(presynaptic)
        self._deliver_recurrent(spikes_per_layer)
        self.tick_count += 1
        return spikes_per_layer

    def _deliver_recurrent(self, spikes_per_layer) -> None:
        """Step 3: this tick's spikes along the recurrent projections, for the next tick."""
        config = self.config
        low, high = config.membrane_range
        self.recurrent_input = [np.zeros(n, dtype=np.int64) for n in config.neuron_layers]
        first = len(config.layers) - 1
        for weights, (source, target) in zip(self.weights[first:], config.recurrent):
            acc, saturated = _deliver(spikes_per_layer[source - 1], weights, low, high,
                                      self.recurrent_input[target - 1])
            self.recurrent_input[target - 1] = acc
            if saturated:
                self.flags |= FLAG_ACCUMULATOR_SATURATED

    def run(self, event_ticks) -> list[list[np.ndarray]]:
        """Run one tick per entry of ``event_ticks``; return each tick's spikes."""
        return [self.tick(events) for events in event_ticks]
