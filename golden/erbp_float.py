"""Float reference of eRBP: the rule of :mod:`plasticore.golden.erbp` without fixed point.

It follows the reference semantics of eRBP (Neftci et al. 2017; Auryn's ``SRM0``/``LinGroup``
neurons and ``peRBPConnection``, see ``/work/shared/ALGORITHMS.md``): a somatic compartment
driven by the plastic weights, a dendritic compartment driven only by error spikes, error
neurons E+/E- with subtractive reset and a floor at zero, fixed random zero-mean feedback to
hidden layers and one-to-one feedback to the prediction layer, a boxcar gate on the soma,
a burn-in window per sample, and ``w += eta * u_dendrite`` on every presynaptic spike.

The network, tick order, thresholds and time constants are those of the integer model, so
that the accuracy difference between the two is the cost of fixed point alone. What is
*not* done here, and is done in the integer model:

- no rounding: decays multiply by ``1 - 2**-k`` (the integer model subtracts ``x >> k``),
  and the weight change is exactly ``2**-learning_rate_shift * u`` (the integer model adds
  a stochastically rounded integer);
- no saturation and no quantization of weights, somata, dendrites or accumulators.

The initial weights and the feedback matrices are the integer model's (as floats), so both
start from the same network. Deviations from Auryn itself are listed in ``docs/erbp.md``.

A tick (compare the integer model's docstring):

1. Learning signals from the state at the start of the tick: ``active`` iff learning is
   enabled and ``sample_tick >= burn_in_ticks``; ``g[i] = active and gate_low < v[i] <
   gate_high``; ``du[i] = g[i] * u[i] * 2**-learning_rate_shift``.
2. Each neuron layer in order: every presynaptic event ``j`` delivers ``W[j] *
   2**soma_gain_shift`` (the weight before this tick's update) to the accumulators, then
   ``W[j] += du``. Soma: if refractory, ``ref -= 1`` and the membrane is held; else
   ``v = v * (1 - 2**-leak_shift) + acc``; spike if ``v >= threshold``, then reset
   (``zero`` or ``subtract``) and ``ref = refractory_ticks``.
3. Error neurons: ``e = max(0, e + acc)``; spike if ``e >= error_threshold``, subtract it.
4. Dendrites: ``u = u * (1 - 2**-dendrite_leak_shift) + F^T (sE+ - sE-)``.
"""

from __future__ import annotations

import numpy as np

from plasticore.config import CoreConfig
from plasticore.rules import rule_params
from plasticore.golden.erbp import feedback_matrices, initial_weights, present_sample

__all__ = ["FloatErbpNetwork"]


class FloatErbpNetwork:
    """Float eRBP network with the same run API as :class:`plasticore.golden.erbp.GoldenErbpCore`.

    Parameters
    ----------
    config : CoreConfig
        With ``rule = "erbp"``.
    weights : list of array_like, optional
        Initial weights; default the integer model's initial weights, as floats.
    """

    def __init__(self, config: CoreConfig, weights=None):
        self.config = config
        self.params = params = rule_params(config, "erbp", "the eRBP float model")
        if weights is None:
            weights = initial_weights(config)
        self.weights = [np.array(w, dtype=float) for w in weights]
        for index, (matrix, n_pre, n_post) in enumerate(
                zip(self.weights, config.layers, config.layers[1:])):
            if matrix.shape != (n_pre, n_post):
                raise ValueError(f"weights[{index}]: shape {matrix.shape}, "
                                 f"expected {(n_pre, n_post)}")
        self.feedback = [np.array(m, dtype=float) for m in feedback_matrices(config)]
        self.membrane = [np.zeros(n) for n in config.neuron_layers]
        self.refractory = [np.zeros(n, dtype=np.int64) for n in config.neuron_layers]
        self.dendrite = [np.zeros(n) for n in config.neuron_layers]
        self.error_state = np.zeros((2, config.layers[-1]))
        self.last_error_spikes = np.zeros((2, config.layers[-1]), dtype=bool)
        self.learning_enabled = False
        self.tick_count = 0
        self.sample_tick = 0
        self._soma_decay = 1.0 - (2.0 ** -config.leak_shift if config.leak_shift else 0.0)
        self._dendrite_decay = 1.0 - 2.0 ** -params.dendrite_leak_shift
        self._gain = 2.0 ** params.soma_gain_shift
        self.learning_rate_shift = params.learning_rate_shift

    def load_weights(self, weights) -> None:
        """Replace every plastic projection's weights."""
        self.weights = [np.array(w, dtype=float) for w in weights]

    def read_weights(self) -> list[np.ndarray]:
        """Return a copy of every plastic projection's weights."""
        return [w.copy() for w in self.weights]

    def start_sample(self) -> None:
        """Mark the start of a sample: the burn-in window restarts."""
        self.sample_tick = 0

    def tick(self, events) -> list[np.ndarray]:
        """Run one tick; ``events`` are data addresses ``< N_in`` and labels ``N_in + k``."""
        config, params = self.config, self.params
        n_in, n_out = config.n_inputs, config.layers[-1]
        events = np.asarray(events, dtype=np.int64).reshape(-1)
        labels = events[(events >= n_in) & (events < n_in + n_out)] - n_in
        presynaptic = events[(events >= 0) & (events < n_in)]

        active = self.learning_enabled and self.sample_tick >= params.burn_in_ticks
        spikes_per_layer = []
        for layer, matrix in enumerate(self.weights):
            v, u, ref = self.membrane[layer], self.dendrite[layer], self.refractory[layer]
            acc = matrix[presynaptic].sum(axis=0) * self._gain
            if active and presynaptic.size:
                gate = (v > params.gate_low) & (v < params.gate_high)
                du = np.where(gate, u * 2.0 ** -self.learning_rate_shift, 0.0)
                np.add.at(matrix, presynaptic, du)   # duplicates add twice
            idle = ref == 0
            integrated = v * self._soma_decay + acc
            spikes = idle & (integrated >= config.threshold)
            if config.reset == "zero":
                after = np.where(spikes, 0.0, integrated)
            else:
                after = integrated - spikes * config.threshold
            self.membrane[layer] = np.where(idle, after, v)
            self.refractory[layer] = np.where(idle, spikes * config.refractory_ticks, ref - 1)
            presynaptic = spikes.nonzero()[0]
            spikes_per_layer.append(presynaptic)

        # Error neurons: label k pushes E+_k up and E-_k down, prediction k the opposite.
        difference = (np.bincount(labels, minlength=n_out)
                      - np.bincount(spikes_per_layer[-1], minlength=n_out))
        acc = params.error_input_weight * np.stack([difference, -difference])
        state = np.maximum(self.error_state + acc, 0.0)
        error_spikes = state >= params.error_threshold
        self.error_state = state - error_spikes * params.error_threshold
        signed = error_spikes[0].astype(float) - error_spikes[1]
        for layer, matrix in enumerate(self.feedback):
            self.dendrite[layer] = self.dendrite[layer] * self._dendrite_decay + signed @ matrix
        self.last_error_spikes = error_spikes
        self.tick_count += 1
        self.sample_tick += 1
        return spikes_per_layer

    def run_sample(self, raster, label_raster=None, *, learn: bool,
                   count_from: int | None = None):
        """Present one sample; return the prediction layer's spike counts (see the golden model)."""
        return present_sample(self, raster, label_raster, learn=learn, count_from=count_from)
