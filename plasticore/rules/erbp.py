"""Parameters of the eRBP learning rule (event-driven random back-propagation).

A configuration with ``rule = "erbp"`` carries these in an ``[erbp]`` TOML table. Every
constant of the rule lives here, so that the golden model (:mod:`plasticore.golden.erbp`),
the float reference (:mod:`plasticore.golden.erbp_float`), the trainer and, later, the
hardware read one validated object. The network shape, the somatic neuron (leak shift,
threshold, reset, refractory) and the number formats come from the core itself.

Units: one tick is one time step of the core; states are in the core's integer units
(weights delivered to a soma are scaled by ``2**soma_gain_shift``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from plasticore.config import ConfigError, CoreConfig, check_label_addresses
from plasticore.threefry import threefry2x32

__all__ = ["Params", "feedback_matrices", "synapse_offsets"]

_PREFIX = "erbp."


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(_PREFIX + name, value, "must be an integer")
    if not low <= value <= high:
        raise ConfigError(_PREFIX + name, value, f"must be between {low} and {high}")
    return value


def _float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(_PREFIX + name, value, "must be a number")
    if not low <= value <= high:
        raise ConfigError(_PREFIX + name, value, f"must be between {low} and {high}")
    return float(value)


@dataclass(frozen=True)
class Params:
    """The constants of eRBP, validated against a core.

    Parameters
    ----------
    ticks_per_sample : int
        Ticks each training sample is presented for.
    test_ticks_per_sample : int
        Ticks each test sample is presented for.
    burn_in_ticks : int
        Learning is off for the first ``burn_in_ticks`` ticks of every sample, while the
        network settles on the new input (and outputs are not counted at test time).
    input_rate : float
        Spike probability per tick of a fully on input pixel (Bernoulli rate code).
    label_period : int
        The label neuron of the true class spikes every ``label_period`` ticks (regular
        train, first spike at the sample's first tick); the others are silent.
    soma_gain_shift : int
        A weight ``w`` adds ``w << soma_gain_shift`` to the somatic accumulator (NSAT's
        ``Wgain``), so that 8-bit weights can drive a 16-bit membrane finely.
    dendrite_leak_shift : int
        The dendrite decays by ``u >> dendrite_leak_shift`` per tick (at least 1 while
        positive), time constant about ``2**dendrite_leak_shift`` ticks.
    gate_low, gate_high : int
        The boxcar: a neuron learns in a tick only if ``gate_low < v < gate_high`` for its
        somatic membrane ``v`` at the start of the tick.
    learning_rate_shift : int
        Expected weight change per presynaptic spike is ``u * 2**-learning_rate_shift``,
        ``u`` the postsynaptic dendrite; stochastic rounding keeps it unbiased. The core
        loads it into a register that the host may change between epochs.
    learning_rate_decay_epochs : int
        Training schedule: after every ``learning_rate_decay_epochs`` epochs the trainer
        adds one to the learning-rate shift (the rate halves), up to 32. 0 keeps it fixed.
    error_threshold : int
        An error neuron spikes when its state reaches this, and subtracts it.
    error_input_weight : int
        What a label spike adds to E+ (subtracts from E-) and a prediction spike subtracts
        from E+ (adds to E-).
    feedback_output_weight : int
        Error -> output dendrite weight, one to one: ``+w`` from E+, ``-w`` from E-.
    feedback_hidden_scale : int
        Error -> hidden dendrite weights are drawn uniformly from ``[-scale, scale]`` and
        made exactly zero-sum over the error neurons for each hidden neuron.
    feedback_seed : int
        Threefry key of the random feedback matrices (regenerable in hardware or stored).
    rounding_seed : int
        Threefry key of the stochastic-rounding draws.
    prng_rounds : int
        Threefry rounds used for both.
    epochs : int
        Default number of online training epochs (the trainer's ``--epochs`` overrides it).
    initial_weight_range : tuple of int
        Initial weights of projection ``l`` are uniform integers in
        ``[-initial_weight_range[l], initial_weight_range[l]]`` (seeded by the core seed).
    """

    ticks_per_sample: int = 200
    test_ticks_per_sample: int = 200
    burn_in_ticks: int = 50
    input_rate: float = 0.2
    label_period: int = 5
    soma_gain_shift: int = 3
    dendrite_leak_shift: int = 3
    gate_low: int = -2560
    gate_high: int = 2560
    learning_rate_shift: int = 17
    learning_rate_decay_epochs: int = 0
    error_threshold: int = 1025
    error_input_weight: int = 1536
    feedback_output_weight: int = 592
    feedback_hidden_scale: int = 912
    feedback_seed: int = 1
    rounding_seed: int = 2
    prng_rounds: int = 13
    epochs: int = 10
    initial_weight_range: tuple[int, ...] = (16, 4)

    @classmethod
    def from_dict(cls, table: dict, core) -> "Params":
        """Build and validate parameters from an ``[erbp]`` table for the core ``core``.

        Raises
        ------
        plasticore.config.ConfigError
            Naming the field (``erbp.<name>``), the value and the limit.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(_PREFIX + unknown[0], table[unknown[0]],
                              f"is not an eRBP parameter; known: {', '.join(sorted(known))}")
        data = dict(table)
        if "initial_weight_range" in data:
            value = data["initial_weight_range"]
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ConfigError(_PREFIX + "initial_weight_range", value,
                                  "must be a list with one range per projection")
            data["initial_weight_range"] = tuple(value)
        params = cls(**data)
        params.validate(core)
        return params

    def validate(self, core) -> None:
        """Check every field against the core; raise :class:`ConfigError` on the first bad one."""
        if len(core.layers) < 3:
            raise ConfigError("layers", list(core.layers),
                              "eRBP needs at least one hidden layer (inputs, hidden..., outputs)")
        check_label_addresses(core)
        v_low, v_high = core.membrane_range
        w_low, w_high = core.weight_range
        _int("ticks_per_sample", self.ticks_per_sample, 1, 1 << 20)
        _int("test_ticks_per_sample", self.test_ticks_per_sample, 1, 1 << 20)
        _int("burn_in_ticks", self.burn_in_ticks, 0, self.ticks_per_sample - 1)
        if self.burn_in_ticks >= self.test_ticks_per_sample:
            raise ConfigError(_PREFIX + "burn_in_ticks", self.burn_in_ticks,
                              f"must be below test_ticks_per_sample = {self.test_ticks_per_sample}"
                              " (no test tick would be counted)")
        _float("input_rate", self.input_rate, 0.0, 1.0)
        _int("label_period", self.label_period, 1, self.ticks_per_sample)
        _int("soma_gain_shift", self.soma_gain_shift, 0, core.membrane_bits - core.weight_bits)
        _int("dendrite_leak_shift", self.dendrite_leak_shift, 1, core.membrane_bits - 1)
        _int("gate_low", self.gate_low, v_low - 1, v_high)
        _int("gate_high", self.gate_high, self.gate_low + 2, v_high + 1)
        _int("learning_rate_shift", self.learning_rate_shift, 1, 32)
        _int("learning_rate_decay_epochs", self.learning_rate_decay_epochs, 0, 10000)
        _int("error_threshold", self.error_threshold, 1, v_high)
        _int("error_input_weight", self.error_input_weight, 1, v_high)
        _int("feedback_output_weight", self.feedback_output_weight, 0, v_high)
        _int("feedback_hidden_scale", self.feedback_hidden_scale, 0, v_high)
        _int("feedback_seed", self.feedback_seed, 0, (1 << 32) - 1)
        _int("rounding_seed", self.rounding_seed, 0, (1 << 32) - 1)
        _int("prng_rounds", self.prng_rounds, 1, 32)
        _int("epochs", self.epochs, 1, 10000)
        ranges = self.initial_weight_range
        if len(ranges) != len(core.layers) - 1:
            raise ConfigError(_PREFIX + "initial_weight_range", list(ranges),
                              f"needs one entry per projection ({len(core.layers) - 1})")
        for index, value in enumerate(ranges):
            _int(f"initial_weight_range[{index}]", value, 0, min(-w_low - 1, w_high))

    def learning_rate_shift_at(self, epoch: int) -> int:
        """Return the learning-rate shift of training epoch ``epoch`` (1-based)."""
        if not self.learning_rate_decay_epochs:
            return self.learning_rate_shift
        return min(32, self.learning_rate_shift + (epoch - 1) // self.learning_rate_decay_epochs)

    def to_dict(self) -> dict:
        """Return the fields as plain TOML/JSON-friendly values."""
        data = dataclasses.asdict(self)
        data["initial_weight_range"] = list(self.initial_weight_range)
        return data


# ---- fixed matrices shared by the golden model and the hardware ----

def _params(config: CoreConfig) -> "Params":
    from plasticore.rules import rule_params
    return rule_params(config, "erbp", "the eRBP feedback matrices")


def synapse_offsets(config: CoreConfig) -> list[int]:
    """Return ``offset[l]``: the global index of projection ``l``'s first synapse."""
    offsets, total = [], 0
    for n_pre, n_post in zip(config.layers, config.layers[1:]):
        offsets.append(total)
        total += n_pre * n_post
    return offsets


def feedback_matrices(config: CoreConfig) -> list[np.ndarray]:
    """Return the fixed error -> dendrite weights ``F[l]``, shape ``(N_L, N_l)``, int64.

    The prediction layer's matrix is ``feedback_output_weight`` times the identity. For
    hidden layer ``l`` (0-based) entry ``(k, i)`` is
    ``((x * (2 S + 1)) >> 32) - S`` with ``x = threefry2x32(key = (feedback_seed, l),
    counter = (k, i))[0]`` and ``S = feedback_hidden_scale`` (uniform on ``[-S, S]``), then
    each column is made exactly zero-sum: with ``t`` its sum, ``q = t // N_L`` is subtracted
    from every entry and 1 more from its first ``t - q N_L`` entries. Hardware can store the
    result or regenerate it from the seed.
    """
    params = _params(config)
    n_err = config.layers[-1]
    matrices = []
    for layer, n_post in enumerate(config.neuron_layers):
        if layer == len(config.neuron_layers) - 1:
            matrices.append(np.eye(n_err, dtype=np.int64) * params.feedback_output_weight)
            continue
        scale = params.feedback_hidden_scale
        k, i = np.meshgrid(np.arange(n_err), np.arange(n_post), indexing="ij")
        word, _ = threefry2x32(params.feedback_seed, layer, k, i, params.prng_rounds)
        matrix = ((word.astype(np.int64) * (2 * scale + 1)) >> 32) - scale
        total = matrix.sum(axis=0)
        quotient = total // n_err
        matrix -= quotient
        remainder = total - quotient * n_err
        matrix -= (np.arange(n_err)[:, None] < remainder[None, :]).astype(np.int64)
        matrices.append(matrix)
    return matrices
