"""Parameters of the DECOLLE learning rule (``rule = "decolle"``, TOML table ``[decolle]``).

Every constant of the rule lives here, in the integer units of the golden model
(:mod:`plasticore.golden.decolle`); the float reference (:mod:`plasticore.golden.decolle_float`)
derives its real-valued constants from the same fields (see :meth:`Params.float_constants`),
so that float and fixed point run the same rule and differ only by quantization.

Units
-----
- A trace (``Q``, ``P``) of ``2**trace_bits`` is 1.0: an input that spikes every tick drives
  its traces towards ``2**trace_bits``.
- A membrane, bias or weight of ``2**unit_bits`` is 1.0 (the weight scale is the membrane
  scale, so ``U = (W . P) >> trace_bits + b + R`` needs no other rescaling).
- A decay ``X = d*X + (1-d)*target`` is written ``X += sum((target - X) >> k for k in
  shifts)``, that is ``d = 1 - sum(2**-k)``: shifts and additions, no multiplier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from plasticore.config import ConfigError, CoreConfig, check_label_addresses
from plasticore.threefry import threefry2x32

__all__ = ["Params", "SURROGATES", "RANDOM_DRAW_BITS", "ROUNDING_STREAM", "READOUT_STREAM",
           "SAMPLE_TICK_MAX", "readout_matrices", "synapse_offsets"]

#: Surrogate derivatives the float reference offers; the integer model uses the boxcar.
SURROGATES = ("boxcar", "fast_sigmoid")
#: Width of one stochastic-rounding draw; a learning-rate shift can drop at most this many bits.
RANDOM_DRAW_BITS = 16


def _int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, value, "must be an integer")
    if not low <= value <= high:
        raise ConfigError(name, value, f"must be between {low} and {high}")
    return value


def _number(name, value, low, high, *, open_low=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, value, "must be a number")
    value = float(value)
    if not math.isfinite(value) or value > high or value < low or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise ConfigError(name, value, f"must be in {bracket}{low}, {high}]")
    return value


def _shifts(name, value, low, high):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(name, value, "must be a list of shift amounts")
    value = tuple(value)
    if not value:
        raise ConfigError(name, list(value), "needs at least one shift")
    for index, shift in enumerate(value):
        _int(f"{name}[{index}]", shift, low, high)
    if len(set(value)) != len(value):
        raise ConfigError(name, list(value), "shifts must be distinct")
    return tuple(sorted(value))


def _per_layer(name, value, count, low, high):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(name, value, f"must be a list with one entry per neuron layer ({count})")
    value = tuple(value)
    if len(value) != count:
        raise ConfigError(name, list(value), f"needs one entry per neuron layer ({count})")
    for index, item in enumerate(value):
        _int(f"{name}[{index}]", item, low, high)
    return value


@dataclass(frozen=True)
class Params:
    """Constants of the DECOLLE rule, validated against the core they run on.

    The defaults are those of ``examples/decolle-digits.toml`` (measured in
    ``docs/decolle.md``), except ``init_scale``, which the example sets per layer.

    Parameters
    ----------
    epochs : int
        Training epochs when the command line does not say (``plasticore train``).
    ticks_per_sample : int
        Ticks each training and test sample is presented for.
    burn_in : int
        Ticks at the start of each sample with no learning and no vote (the traces settle).
    input_rate : float
        Spike probability per tick of a fully on input pixel (Bernoulli rate code).
    trace_bits : int
        Fraction bits of the presynaptic traces (1.0 = ``2**trace_bits``); traces are
        at most ``2**trace_bits``, and a floor shift can leave a falling trace a few LSBs
        below 0 (the hardware stores them signed, ``trace_bits + 2`` wide).
    q_shifts, p_shifts, r_shifts : tuple of int
        Decays of Q (``beta``), P (``alpha``) and the refractory state R (``alpha_rp``):
        ``d = 1 - sum(2**-k)``.
    unit_bits : int
        Fraction bits of membranes, biases and weights (1.0 = ``2**unit_bits``).
    refractory_weight : int
        ``w_rp`` in membrane LSBs: a spike drives R towards ``-refractory_weight``.
    surrogate_window : int
        Half width of the boxcar surrogate in membrane LSBs: a neuron learns when
        ``-surrogate_window < U <= surrogate_window``.
    surrogate : {"boxcar", "fast_sigmoid"}
        Surrogate of the float backend (the integer model always uses the boxcar).
    error_bits : int
        Signed width of the quantized per-neuron error (2 = ternary, a pure shift update).
    error_shifts : tuple of int
        Per neuron layer: the raw error is rounded and shifted right by this much, then
        clamped to ``error_bits``.
    lr_shifts : tuple of int
        Per neuron layer: learning-rate shift, ``dW = round_stochastic(e_q * P >> lr_shift)``.
    lr_halving_epochs : int
        Every this many epochs the trainer adds 1 to each learning-rate shift (up to 16),
        halving the rates; 0 keeps them. A host register write between epochs.
    stochastic_rounding : bool
        False truncates (floor) instead; kept only to measure what rounding buys.
    learn_bias : bool
        Whether biases learn (as a synapse with a constant trace of 1.0). Off by default:
        measured on the digits, a learning bias follows the classes of the last few dozen
        samples (online, one sample at a time) and costs accuracy; the bias then stays at
        its initial 0 and the hardware can drop it.
    init_scale : float or tuple of float
        Per neuron layer (or one for all): initial weights are uniform in
        ``+-init_scale / sqrt(fan_in)`` (units); initial biases are 0. Large enough that the
        input, not the bias, decides who spikes (the reference gets there with a data-driven
        LSUV initialization instead).
    readout_amplitude : float
        ``lc_ampl``: hidden layers' fixed readouts are uniform in ``+-lc_ampl/sqrt(fan_in)``.
    readout_seed : int
        Threefry key of the fixed readout matrices (regenerated, never stored in a file).
    prng_rounds : int
        Threefry rounds of every draw (readouts and stochastic rounding).
    float_decays : tuple of float or None
        ``(alpha, beta, alpha_rp)`` for the float backend instead of the values the shifts
        give; used to measure what the shift decays cost.
    """

    epochs: int = 15
    ticks_per_sample: int = 100
    burn_in: int = 10
    input_rate: float = 0.2
    trace_bits: int = 12
    q_shifts: tuple = (4, 6)
    p_shifts: tuple = (5,)
    r_shifts: tuple = (2, 4, 5)
    unit_bits: int = 8
    refractory_weight: int = 256
    surrogate_window: int = 128
    surrogate: str = "boxcar"
    error_bits: int = 4
    error_shifts: tuple = (10, 8)
    lr_shifts: tuple = (12, 12)
    lr_halving_epochs: int = 5
    stochastic_rounding: bool = True
    learn_bias: bool = False
    init_scale: Any = 3.0
    readout_amplitude: float = 0.5
    readout_seed: int = 0
    prng_rounds: int = 13
    float_decays: Any = None

    @classmethod
    def from_dict(cls, table: dict, core) -> "Params":
        """Build and validate the parameters of ``core`` from a ``[decolle]`` table."""
        if not isinstance(table, dict):
            raise ConfigError("decolle", table, "must be a table of decolle parameters")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"decolle.{unknown[0]}", table[unknown[0]],
                              f"is not a decolle parameter; known: {', '.join(sorted(known))}")
        params = cls(**table)
        params.validate(core)
        return params

    def validate(self, core) -> None:
        """Check every field against ``core``; raise :class:`ConfigError` on the first bad one."""
        n_layers = len(core.neuron_layers)
        check_label_addresses(core)
        p = "decolle."
        _int(p + "epochs", self.epochs, 1, 1 << 16)
        ticks = _int(p + "ticks_per_sample", self.ticks_per_sample, 1, 1 << 16)
        _int(p + "burn_in", self.burn_in, 0, ticks - 1)
        _number(p + "input_rate", self.input_rate, 0.0, 1.0, open_low=True)
        _int(p + "trace_bits", self.trace_bits, 1, 16)
        for name in ("q_shifts", "p_shifts", "r_shifts"):
            # distinct shifts of at least 1 keep sum(2**-k) < 1: the decay stays in (0, 1)
            object.__setattr__(self, name, _shifts(p + name, getattr(self, name), 1, 15))
        membrane_high = (1 << (core.membrane_bits - 1)) - 1
        weight_high = (1 << (core.weight_bits - 1)) - 1
        unit = _int(p + "unit_bits", self.unit_bits, 0, core.membrane_bits - 2)
        _int(p + "refractory_weight", self.refractory_weight, 0, membrane_high)
        _int(p + "surrogate_window", self.surrogate_window, 1, membrane_high)
        if self.surrogate not in SURROGATES:
            raise ConfigError(p + "surrogate", self.surrogate, f"must be one of {', '.join(SURROGATES)}")
        _int(p + "error_bits", self.error_bits, 2, 16)
        object.__setattr__(self, "error_shifts",
                           _per_layer(p + "error_shifts", self.error_shifts, n_layers, 0, 31))
        object.__setattr__(self, "lr_shifts",
                           _per_layer(p + "lr_shifts", self.lr_shifts, n_layers, 0, RANDOM_DRAW_BITS))
        _int(p + "lr_halving_epochs", self.lr_halving_epochs, 0, 1 << 16)
        for name in ("stochastic_rounding", "learn_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(p + name, getattr(self, name), "must be true or false")
        scales = self.init_scale
        if isinstance(scales, (int, float)) and not isinstance(scales, bool):
            scales = (scales,) * n_layers
        if isinstance(scales, (str, bytes)) or not hasattr(scales, "__iter__") or len(tuple(scales)) != n_layers:
            raise ConfigError(p + "init_scale", scales,
                              f"must be a number or a list with one entry per neuron layer ({n_layers})")
        scales = tuple(_number(f"{p}init_scale[{i}]", v, 0.0, 1024.0) for i, v in enumerate(scales))
        object.__setattr__(self, "init_scale", scales)
        for index, (scale, fan_in) in enumerate(zip(scales, core.layers)):
            largest_init = scale / math.sqrt(fan_in) * (1 << unit)
            if largest_init > weight_high:
                raise ConfigError(f"{p}init_scale[{index}]", scale,
                                  f"initial weights up to {largest_init:.0f} LSBs exceed the weight "
                                  f"range (+-{weight_high} for weight_bits = {core.weight_bits})")
        _number(p + "readout_amplitude", self.readout_amplitude, 0.0, 64.0, open_low=True)
        _int(p + "readout_seed", self.readout_seed, 0, (1 << 32) - 1)
        _int(p + "prng_rounds", self.prng_rounds, 1, 32)
        if self.float_decays is not None:
            decays = self.float_decays
            if isinstance(decays, (str, bytes)) or not hasattr(decays, "__iter__") or len(decays) != 3:
                raise ConfigError(p + "float_decays", decays, "must be [alpha, beta, alpha_rp] or absent")
            decays = tuple(_number(f"{p}float_decays[{i}]", d, 0.0, 1.0) for i, d in enumerate(decays))
            for i, d in enumerate(decays):
                if d >= 1.0:
                    raise ConfigError(f"{p}float_decays[{i}]", d, "must be below 1")
            object.__setattr__(self, "float_decays", decays)
        if core.rule != "decolle":
            raise ConfigError("rule", core.rule, 'must be "decolle" for decolle parameters')

    def to_dict(self) -> dict:
        """Return the fields as plain TOML/JSON-friendly values (lists for tuples)."""
        data = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return data

    # Derived constants shared by both backends.

    @staticmethod
    def decay(shifts) -> float:
        """The decay factor ``1 - sum(2**-k)`` a tuple of shifts implements."""
        return 1.0 - sum(2.0 ** -k for k in shifts)

    def float_constants(self, core) -> dict:
        """Real-valued constants of the float reference that match the integer rule.

        The float error carries the local loss's ``1/K`` (K readout outputs); the float
        learning rate absorbs the integer error and learning-rate shifts:
        ``lr = K * 2**(unit_bits + trace_bits - error_shift - lr_shift)`` for a layer read out
        through a random matrix (whose integer entries carry ``2**unit_bits``), and
        ``lr = K * 2**(trace_bits - error_shift - lr_shift)`` for the top layer, whose
        readout is the identity (an integer 1).
        """
        if self.float_decays is not None:
            alpha, beta, alpha_rp = self.float_decays
        else:
            alpha, beta = self.decay(self.p_shifts), self.decay(self.q_shifts)
            alpha_rp = self.decay(self.r_shifts)
        n_classes = core.layers[-1]
        n_layers = len(self.lr_shifts)
        rates = tuple(n_classes * 2.0 ** ((self.unit_bits if index < n_layers - 1 else 0)
                                          + self.trace_bits - es - ls)
                      for index, (es, ls) in enumerate(zip(self.error_shifts, self.lr_shifts)))
        unit = float(1 << self.unit_bits)
        return dict(alpha=alpha, beta=beta, alpha_rp=alpha_rp,
                    w_rp=self.refractory_weight / unit,
                    window=self.surrogate_window / unit,
                    learning_rates=rates, surrogate=self.surrogate, learn_bias=self.learn_bias)


# ---- constants and fixed matrices shared by the golden model and the hardware ----

#: Threefry key word 1 of the stochastic-rounding stream ("DEC0").
ROUNDING_STREAM = 0x44454330
#: Threefry key word 1 of layer 0's readout (layer l uses READOUT_STREAM + l).
READOUT_STREAM = 0x52444F00
#: ``sample_tick`` sticks at this value.
SAMPLE_TICK_MAX = (1 << 16) - 1


def _params(config: CoreConfig) -> "Params":
    from plasticore.rules import rule_params
    return rule_params(config, "decolle", "the DECOLLE readouts")


def synapse_offsets(config: CoreConfig) -> list[int]:
    """Global index of each layer's first synapse (bias rows included), and the total last."""
    offsets = [0]
    for n_pre, n_post in zip(config.layers, config.layers[1:]):
        offsets.append(offsets[-1] + (n_pre + 1) * n_post)
    return offsets


def readout_matrices(config: CoreConfig):
    """Regenerate the fixed readouts of every layer below the top from ``readout_seed``.

    Returns
    -------
    list of (G, g) or None
        ``G`` is ``(n_post, K)`` int64, ``g`` is ``(K,)``; None for the top layer.
    """
    params = _params(config)
    n_classes = config.layers[-1]
    readouts = []
    for layer, n_post in enumerate(config.neuron_layers):
        if layer == len(config.neuron_layers) - 1:
            readouts.append(None)
            continue
        amplitude = int(round(params.readout_amplitude / math.sqrt(n_post) * (1 << params.unit_bits)))
        rows, cols = np.meshgrid(np.arange(n_post + 1), np.arange(n_classes), indexing="ij")
        word, _ = threefry2x32(params.readout_seed, READOUT_STREAM + layer, rows, cols,
                               params.prng_rounds)
        values = ((word.astype(np.uint64) * np.uint64(2 * amplitude + 1)) >> np.uint64(32))
        values = values.astype(np.int64) - amplitude
        readouts.append((values[:n_post], values[n_post]))
    return readouts
