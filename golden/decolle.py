"""The integer model of DECOLLE learning: the specification the hardware follows.

Network: fully connected LIF layers with presynaptic traces (``layers = [n_in, h, ..., K]``).
Every layer below the top has a fixed random readout ``G`` (``n_post x K``) and bias ``g``
(``K``); the top layer's own K neurons are the class readout (its readout is the identity).
Each layer learns from its own local loss only; nothing crosses layers or ticks.

Units (see :mod:`plasticore.rules.decolle`): traces have ``tb = trace_bits`` fraction bits,
membranes, biases, weights and readouts ``u = unit_bits``. ``>>`` is an arithmetic (floor)
shift, ``clamp_m`` clamps to the membrane range, ``clamp_w`` to the weight range; clamping
sets a sticky flag (``FLAG_*``) and never wraps.

A tick
------
One call of :meth:`GoldenDecolle.tick` with the input spikes of that tick does exactly this,
and the hardware does the same, bit for bit. For each neuron layer ``l = 1, 2, ...`` in order,
with presynaptic spikes ``s`` (the inputs for ``l = 1``; for ``l > 1`` the spikes layer
``l-1`` emitted in step 4 of this same tick):

1. **Traces, per input j** (P uses the OLD Q; both stay in ``[-(len(q_shifts) +
   len(p_shifts) - 2), 2**tb]``: each floor shift of a falling trace can take one LSB too
   many, so a trace can end a few LSBs below 0)::

       q_old = Q[j]
       Q[j] += sum(((s[j] << tb) - Q[j]) >> k for k in q_shifts)
       P[j] += sum((q_old - P[j]) >> k for k in p_shifts)

2. **Refractory, per neuron i** (from the neuron's own spike of the previous tick)::

       R[i] += sum(((-refractory_weight if S_prev[i] else 0) - R[i]) >> k for k in r_shifts)

3. **Membrane**: ``U[i] = clamp_m(((sum_j W[j, i] * P[j]) >> tb) + b[i] + R[i])``. The dot
   product is exact (an accumulator wide enough for ``n_pre`` products, checked when the
   model is built); only the final value is clamped.
4. **Spike**: ``S[i] = U[i] > 0``; ``S_prev = S`` for the next tick.
5. **Learning**, only when learning is on for this tick (a training sample, at or after its
   burn-in), with the one-hot label ``y``:

   a. Readout error, once per tick. Below the top layer::

          r[k]   = clamp_m(g[k] + sum_{i: S[i]} G[i, k])          # event-driven
          err[k] = clamp(r[k] - (y[k] << u), -(1 << u), 1 << u)   # Huber gradient
          e[i]   = sum_k G[i, k] * err[k]                         # exact

      In the top layer ``e[i] = (S[i] - y[i]) << u``.
   b. Quantized, gated error, once per neuron::

          e_q[i] = clamp((e[i] + half) >> error_shift, -(2**(error_bits-1) - 1), 2**(error_bits-1) - 1)
          e_q[i] = 0 unless -surrogate_window < U[i] <= surrogate_window     # boxcar

      with ``half = 1 << (error_shift - 1)`` (0 when the shift is 0): round half up.
   c. Update, per synapse (with ``learn_bias`` the bias is synapse row ``n_pre`` with a
      constant trace of ``1 << tb``), for every neuron with ``e_q[i] != 0``::

          x = -e_q[i] * P[j]                     # a small product (a shift if error_bits = 2)
          W[j, i] = clamp_w(W[j, i] + ((x + rnd) >> lr_shift))

      ``rnd`` is the top ``lr_shift`` bits of the synapse's 16-bit draw (stochastic
      rounding: ``E[(x + rnd) >> s] = x / 2**s``), or 0 with ``stochastic_rounding = false``.
      ``lr_shift`` is the layer's entry of ``lr_shifts``; the host may raise it between
      epochs (``lr_halving_epochs``).
      Biases live in the weight format and saturate the same way; they change only with
      ``learn_bias`` (off by default: the bias row's draws are then unused).

After the last layer the tick counter advances by one.

The core's input stream
-----------------------
:meth:`GoldenDecolle.tick_events` is the tick the hardware runs from its input stream and
registers (it calls :meth:`GoldenDecolle.tick`, so the arithmetic above is unchanged): an
address ``j < n_inputs`` is an input spike (duplicates count once), an address
``n_inputs + k`` with ``k < K`` names class ``k`` of this tick's label (``y[k] = 1``; several
labels give several ones), any other address is dropped and counted in ``dropped_events``
(sticky at ``2**32 - 1``). The tick learns when ``learning`` is on, ``sample_tick >=
burn_in`` and at least one label arrived; ``sample_tick`` (ticks since
:meth:`GoldenDecolle.start_sample`, sticky at ``2**16 - 1``) then advances.

Random draws
------------
Every random number is a Threefry-2x32 draw (:mod:`plasticore.threefry`, ``prng_rounds``
rounds) whose counter names what it is for, so a draw never depends on the order of others:

- stochastic rounding: key ``(seed, ROUNDING_STREAM)``, counter ``(tick, index >> 2)``, where
  ``tick`` is the model's tick counter (it counts every tick run, learning or not); the
  synapse with global index ``index`` takes the 16-bit field ``index & 3`` of the 64 output
  bits (word 0 low, word 0 high, word 1 low, word 1 high), so one Threefry block serves four
  synapses. Global indices run layer by layer, row (presynaptic index, bias last) by row:
  ``offset[l] + j * n_post + i``.
- readouts: key ``(readout_seed, READOUT_STREAM + l)``, counter ``(i, k)`` for ``G[i, k]``
  and ``(n_post, k)`` for ``g[k]``: word 0 maps to ``-A .. A`` as ``(word * (2A + 1)) >> 32
  - A`` with ``A = round(readout_amplitude / sqrt(n_post) * 2**u)``. The readout is
  regenerated from the seed when the network is built; the hardware stores it in a ROM.

Notes
-----
A floor shift makes a rising trace stop short of its target (``(target - X) >> k`` is 0 once
the gap is below ``2**k``) and a falling one reach 0. The prediction for a sample is the top
layer's spike count over the ticks from ``burn_in`` on; ties go to the larger sum of
membranes over those ticks, then to the lower index.

Of the core's fields the model reads ``layers``, ``weight_bits``, ``membrane_bits`` and
``seed``; the DECOLLE neuron has no leak, threshold, reset or refractory counter of its own
(``leak_shift``, ``threshold``, ``reset``, ``refractory_ticks`` belong to the inference
core's LIF neuron and are ignored here).
"""

from __future__ import annotations

import math

import numpy as np

from plasticore.config import CoreConfig
from plasticore.golden.prng import threefry2x32
from plasticore.rules import rule_params
from plasticore.rules.decolle import (READOUT_STREAM, ROUNDING_STREAM, SAMPLE_TICK_MAX,
                                      readout_matrices, synapse_offsets)

__all__ = ["GoldenDecolle", "initial_parameters", "SAMPLE_TICK_MAX", "DROPPED_EVENTS_MAX", "readout_matrices", "rounding_draws",
           "synapse_offsets", "predict", "FLAG_MEMBRANE_SATURATED", "FLAG_WEIGHT_SATURATED",
           "ROUNDING_STREAM", "READOUT_STREAM"]

#: Sticky flags.
FLAG_MEMBRANE_SATURATED = 1 << 0
FLAG_WEIGHT_SATURATED = 1 << 1
#: ``dropped_events`` sticks at this value (``sample_tick`` at ``SAMPLE_TICK_MAX``).
DROPPED_EVENTS_MAX = (1 << 32) - 1

_ACCUMULATOR_BITS = 48   # the dot products; a build-time check keeps them in range (and float-exact)


def _params(config: CoreConfig):
    return rule_params(config, "decolle", "the DECOLLE golden model")


def initial_parameters(config: CoreConfig, seed: int | None = None):
    """Draw initial integer weights, uniform in ``+-init_scale[l]/sqrt(fan_in)``; biases 0.

    Initial values are loaded by the host, so an ordinary NumPy generator is enough.

    Returns
    -------
    weights, biases : list of numpy.ndarray
        ``weights[l]`` is ``(layers[l], layers[l+1])`` int64, ``biases[l]`` is ``(layers[l+1],)``.
    """
    params = _params(config)
    rng = np.random.default_rng(config.seed if seed is None else seed)
    high = config.weight_range[1]
    weights, biases = [], []
    for scale, n_pre, n_post in zip(params.init_scale, config.layers, config.layers[1:]):
        bound = scale / math.sqrt(n_pre) * (1 << params.unit_bits)
        w = np.rint(rng.uniform(-bound, bound, size=(n_pre, n_post))).astype(np.int64)
        weights.append(np.clip(w, -high, high))
        biases.append(np.zeros(n_post, dtype=np.int64))
    return weights, biases


def rounding_draws(config: CoreConfig, ticks, index_start: int = 0, index_stop: int | None = None):
    """The 16-bit stochastic-rounding draws of ``ticks`` for synapses ``index_start..stop-1``.

    Returns an int64 array of shape ``(len(ticks), index_stop - index_start)``.
    """
    params = _params(config)
    if index_stop is None:
        index_stop = synapse_offsets(config)[-1]
    ticks = np.asarray(ticks, dtype=np.int64).reshape(-1, 1)
    blocks = np.arange(index_start >> 2, ((index_stop - 1) >> 2) + 1, dtype=np.int64)
    w0, w1 = threefry2x32(config.seed, ROUNDING_STREAM, ticks, blocks[None, :], params.prng_rounds)
    fields = np.stack([w0 & np.uint32(0xFFFF), w0 >> np.uint32(16),
                       w1 & np.uint32(0xFFFF), w1 >> np.uint32(16)], axis=-1)
    fields = fields.reshape(len(ticks), -1).astype(np.int64)
    first = index_start - (blocks[0] << 2)
    return fields[:, first:first + index_stop - index_start]


def predict(counts, membrane_sums) -> np.ndarray:
    """Class per sample: most top-layer spikes, ties to the larger membrane sum, then lower index."""
    counts = np.asarray(counts)
    membrane_sums = np.asarray(membrane_sums)
    # lexsort sorts ascending by the last key first; negate to put the best first.
    n_classes = counts.shape[1]
    index = np.broadcast_to(np.arange(n_classes), counts.shape)
    order = np.lexsort((index, -membrane_sums, -counts), axis=1)
    return order[:, 0]


def _decay(x, target, shifts):
    gap = target - x
    for shift in shifts:
        x = x + (gap >> shift)
    return x


class GoldenDecolle:
    """Bit-exact integer DECOLLE network, run tick by tick (batched when not learning).

    Parameters
    ----------
    config : CoreConfig
        With ``rule = "decolle"``.
    weights, biases : list of array_like, optional
        Defaults to :func:`initial_parameters`.

    Attributes
    ----------
    weights, biases : list of numpy.ndarray
    readouts : list of (G, g) or None
    tick_count : int
        Ticks run so far (the stochastic-rounding counter).
    flags : int
        Sticky ``FLAG_*`` bits.
    Q, P, R, S, U : list of numpy.ndarray
        Per layer, ``(batch, n)``: traces (per input of the layer), refractory states,
        spikes and membranes of the last tick (zero after :meth:`reset_state`).
    learning : bool
        Whether :meth:`tick_events` learns (with a label, from ``burn_in`` on).
    burn_in, sample_tick, dropped_events : int
        See "The core's input stream" in the module docstring.
    """

    def __init__(self, config: CoreConfig, weights=None, biases=None):
        self.config = config
        self.params = params = _params(config)
        if weights is None or biases is None:
            w0, b0 = initial_parameters(config)
            weights = w0 if weights is None else weights
            biases = b0 if biases is None else biases
        self.weights = [np.array(w, dtype=np.int64) for w in weights]
        # float64 mirrors of the weights: BLAS dot products, exact because every partial sum
        # stays below 2**53 (checked below)
        self._weights_float = [w.astype(np.float64) for w in self.weights]
        self.biases = [np.array(b, dtype=np.int64) for b in biases]
        low, high = config.weight_range
        for index, (w, b, n_pre, n_post) in enumerate(
                zip(self.weights, self.biases, config.layers, config.layers[1:])):
            if w.shape != (n_pre, n_post) or b.shape != (n_post,):
                raise ValueError(f"weights[{index}]/biases[{index}]: shapes {w.shape}/{b.shape}, "
                                 f"expected {(n_pre, n_post)}/{(n_post,)}")
            for name, values in (("weights", w), ("biases", b)):
                if values.size and (values.min() < low or values.max() > high):
                    raise ValueError(f"{name}[{index}]: values span [{values.min()}, {values.max()}], "
                                     f"the limit is [{low}, {high}] for weight_bits = {config.weight_bits}")
            # The dot product must fit the accumulator: n_pre products of |W| * P.
            if n_pre * (high + 1) * (1 << (params.trace_bits + 1)) >= 1 << (_ACCUMULATOR_BITS - 1):
                raise ValueError(f"layers[{index}] = {n_pre}: the dot product could overflow")
        self.readouts = readout_matrices(config)
        #: Learning-rate shifts in use: ``params.lr_shifts`` unless the host changed them
        #: (a register write between epochs, see :meth:`set_lr_shifts`).
        self.lr_shifts = tuple(params.lr_shifts)
        self.offsets = synapse_offsets(config)
        self.tick_count = 0
        self.flags = 0
        self.learning = False
        self.burn_in = params.burn_in
        self.sample_tick = 0
        self.dropped_events = 0
        self.reset_state(1)

    def set_lr_shifts(self, shifts) -> None:
        """Change the learning-rate shifts (0 to 16 each, one per layer)."""
        shifts = tuple(int(v) for v in shifts)
        if len(shifts) != len(self.weights) or not all(0 <= v <= 16 for v in shifts):
            raise ValueError(f"lr_shifts = {list(shifts)}: need {len(self.weights)} values in 0..16")
        self.lr_shifts = shifts

    def load_weights(self, weights, biases) -> None:
        """Replace every layer's weights and biases (checked as in the constructor)."""
        checked = GoldenDecolle(self.config, weights, biases)
        self.weights, self.biases = checked.weights, checked.biases
        self._weights_float = checked._weights_float

    def read_weights(self):
        """Return copies of the weights and biases."""
        return [w.copy() for w in self.weights], [b.copy() for b in self.biases]

    def reset_state(self, batch: int = 1) -> None:
        """Zero every trace, refractory state and spike (a new sample; weights are kept)."""
        config = self.config
        self.Q = [np.zeros((batch, n), dtype=np.int64) for n in config.layers[:-1]]
        self.P = [np.zeros((batch, n), dtype=np.int64) for n in config.layers[:-1]]
        self.R = [np.zeros((batch, n), dtype=np.int64) for n in config.neuron_layers]
        self.S = [np.zeros((batch, n), dtype=bool) for n in config.neuron_layers]
        self.U = [np.zeros((batch, n), dtype=np.int64) for n in config.neuron_layers]

    def start_sample(self) -> None:
        """Begin a new sample: zero the state (batch of one) and ``sample_tick``."""
        self.reset_state(1)
        self.sample_tick = 0

    def tick_events(self, events):
        """Run one tick from the core's input events (inputs and labels, see the module docstring).

        Returns
        -------
        list of numpy.ndarray
            For each neuron layer, the indices of the neurons that spiked, ascending.
        """
        config = self.config
        n_inputs, n_classes = config.n_inputs, config.layers[-1]
        events = np.asarray(events, dtype=np.int64).reshape(-1)
        inputs = events[(events >= 0) & (events < n_inputs)]
        labels = events[(events >= n_inputs) & (events < n_inputs + n_classes)] - n_inputs
        dropped = len(events) - len(inputs) - len(labels)
        self.dropped_events = min(DROPPED_EVENTS_MAX, self.dropped_events + dropped)
        spikes = np.zeros((1, n_inputs), dtype=bool)
        spikes[0, inputs] = True
        target = np.zeros((1, n_classes), dtype=np.int64)
        target[0, labels] = 1
        learn = bool(self.learning and self.sample_tick >= self.burn_in and len(labels))
        outputs = self.tick(spikes, target, learn)
        self.sample_tick = min(SAMPLE_TICK_MAX, self.sample_tick + 1)
        return [np.flatnonzero(s_out[0]) for _, s_out in outputs]

    def _clamp_membrane(self, x):
        low, high = self.config.membrane_range
        if x.size and (x.min() < low or x.max() > high):
            self.flags |= FLAG_MEMBRANE_SATURATED
            return np.clip(x, low, high)
        return x

    def layer_error(self, layer: int, spikes, membrane, target) -> np.ndarray:
        """Quantized, gated error ``e_q`` of one layer (steps 5a and 5b); all ``(batch, n)``."""
        params = self.params
        u = params.unit_bits
        spikes = np.asarray(spikes, dtype=bool)
        target = np.asarray(target, dtype=np.int64)
        readout = self.readouts[layer]
        if readout is None:
            error = (spikes.astype(np.int64) - target) << u
        else:
            G, g = readout
            r = self._clamp_membrane(g + spikes.astype(np.int64) @ G)
            err = np.clip(r - (target << u), -(1 << u), 1 << u)
            error = err @ G.T
        shift = params.error_shifts[layer]
        half = (1 << (shift - 1)) if shift else 0
        limit = (1 << (params.error_bits - 1)) - 1
        quantized = np.clip((error + half) >> shift, -limit, limit)
        window = params.surrogate_window
        gate = (membrane > -window) & (membrane <= window)
        return np.where(gate, quantized, 0)

    def _learn(self, layer: int, pre_trace, error_q, draws) -> None:
        """Step 5c for a batch of one: update the columns of neurons with a nonzero error."""
        params = self.params
        columns = np.flatnonzero(error_q[0])
        if columns.size == 0:
            return
        n_pre, n_post = self.weights[layer].shape
        error = error_q[0, columns]
        shift = self.lr_shifts[layer]
        rows = n_pre + 1 if params.learn_bias else n_pre
        product = np.empty((rows, columns.size), dtype=np.int64)
        np.multiply.outer(-pre_trace[0], error, out=product[:n_pre])
        if params.learn_bias:
            product[n_pre] = -error << params.trace_bits     # bias row: constant trace 1.0
        if params.stochastic_rounding and shift:
            block = draws[self.offsets[layer]:self.offsets[layer + 1]].reshape(n_pre + 1, n_post)
            product += block[:rows, columns] >> (16 - shift)
        product >>= shift
        low, high = self.config.weight_range
        new_w = self.weights[layer][:, columns] + product[:n_pre]
        if new_w.min() < low or new_w.max() > high:
            self.flags |= FLAG_WEIGHT_SATURATED
            np.clip(new_w, low, high, out=new_w)
        self.weights[layer][:, columns] = new_w
        self._weights_float[layer][:, columns] = new_w
        if params.learn_bias:
            new_b = self.biases[layer][columns] + product[n_pre]
            if new_b.min() < low or new_b.max() > high:
                self.flags |= FLAG_WEIGHT_SATURATED
                np.clip(new_b, low, high, out=new_b)
            self.biases[layer][columns] = new_b

    def tick(self, spikes, target=None, learn: bool = False, draws=None):
        """Run one tick (steps 1 to 5) on the input ``spikes``.

        Parameters
        ----------
        spikes : array_like of bool
            ``(batch, n_inputs)`` (or ``(n_inputs,)`` for a batch of one).
        target : array_like, optional
            One-hot labels ``(batch, K)``; needed when ``learn``.
        learn : bool
            Apply step 5 (only with a batch of one: learning is online).
        draws : numpy.ndarray, optional
            This tick's rounding draws for every synapse (from :func:`rounding_draws`);
            computed when omitted.

        Returns
        -------
        list of (membrane, spikes)
            Per neuron layer, ``(batch, n)`` arrays.
        """
        params = self.params
        tb = params.trace_bits
        s = np.atleast_2d(np.asarray(spikes, dtype=bool))
        if learn:
            if s.shape[0] != 1:
                raise ValueError(f"batch = {s.shape[0]}: learning is online, one sample at a time")
            if target is None:
                raise ValueError("target: learning needs the one-hot label")
            target = np.atleast_2d(target)
            if params.stochastic_rounding and draws is None:
                draws = rounding_draws(self.config, [self.tick_count])[0]
        outputs = []
        for layer in range(len(self.weights)):
            q_old = self.Q[layer]
            self.Q[layer] = _decay(q_old, s.astype(np.int64) << tb, params.q_shifts)
            self.P[layer] = _decay(self.P[layer], q_old, params.p_shifts)
            kick = np.where(self.S[layer], -params.refractory_weight, 0)
            self.R[layer] = _decay(self.R[layer], kick, params.r_shifts)
            drive = (self.P[layer].astype(np.float64) @ self._weights_float[layer]).astype(np.int64) >> tb
            membrane = self._clamp_membrane(drive + self.biases[layer] + self.R[layer])
            s_out = membrane > 0
            self.S[layer] = s_out
            self.U[layer] = membrane
            if learn:
                error_q = self.layer_error(layer, s_out, membrane, target)
                self._learn(layer, self.P[layer], error_q, draws)
            outputs.append((membrane, s_out))
            s = s_out
        self.tick_count += 1
        return outputs

    def run_sample(self, raster, label=None, learn: bool = False):
        """Present samples from a fresh state; return the top layer's counts and membrane sums.

        ``raster`` is ``(ticks, n_inputs)`` for one sample or ``(batch, ticks, n_inputs)``;
        learning (``label`` given, ``learn``) needs a single sample and is on from
        ``burn_in``. Counts and membrane sums cover the ticks from ``burn_in`` on.
        """
        params = self.params
        raster = np.asarray(raster, dtype=bool)
        if raster.ndim == 2:
            raster = raster[None]
        batch, ticks, _ = raster.shape
        self.reset_state(batch)
        n_classes = self.config.layers[-1]
        target = None
        all_draws = None
        if learn:
            target = np.zeros((1, n_classes), dtype=np.int64)
            target[0, label] = 1
            if params.stochastic_rounding:   # only the learning ticks draw
                all_draws = np.zeros((ticks, self.offsets[-1]), dtype=np.int64)
                all_draws[params.burn_in:] = rounding_draws(
                    self.config, self.tick_count + np.arange(params.burn_in, ticks))
        counts = np.zeros((batch, n_classes), dtype=np.int64)
        sums = np.zeros((batch, n_classes), dtype=np.int64)
        for t in range(ticks):
            on = learn and t >= params.burn_in
            outputs = self.tick(raster[:, t], target, on,
                                all_draws[t] if (on and all_draws is not None) else None)
            if t >= params.burn_in:
                membrane, s_out = outputs[-1]
                counts += s_out
                sums += membrane
        return counts, sums
