"""Synaptic delivery arithmetic: one memory word of weights added to one word of accumulators.

The golden counterpart is the per-event saturating addition of step 2a in
:mod:`plasticore.golden.lif`.
"""

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from plasticore.config import CoreConfig
from .arith import saturate

__all__ = ["LaneAccumulate", "WeightUpdate", "weight_word_layout", "accumulator_word_layout"]


def weight_word_layout(config: CoreConfig) -> data.ArrayLayout:
    """Return the layout of one weight memory word: ``lanes`` signed weights."""
    return data.ArrayLayout(signed(config.weight_bits), config.lanes)


def accumulator_word_layout(config: CoreConfig) -> data.ArrayLayout:
    """Return the layout of one accumulator memory word: ``lanes`` signed accumulators."""
    return data.ArrayLayout(signed(config.membrane_bits), config.lanes)


class LaneAccumulate(wiring.Component):
    """Add a word of weights to a word of accumulators, each lane saturating (combinational).

    Parameters
    ----------
    config : CoreConfig
    gain_shift : int
        Each weight is added shifted left by this much (eRBP's ``soma_gain_shift``).

    Attributes
    ----------
    weights : In(weight_word_layout)
    accumulators : In(accumulator_word_layout)
    sums : Out(accumulator_word_layout)
    saturated : Out(lanes)
        One bit per lane that was clamped.
    """

    def __init__(self, config: CoreConfig, gain_shift: int = 0):
        self._config = config
        self._gain_shift = gain_shift
        super().__init__({
            "weights": In(weight_word_layout(config)),
            "accumulators": In(accumulator_word_layout(config)),
            "sums": Out(accumulator_word_layout(config)),
            "saturated": Out(config.lanes),
        })

    def elaborate(self, platform):
        m = Module()
        for lane in range(self._config.lanes):
            total, clamped = saturate(
                self.accumulators[lane] + (self.weights[lane] << self._gain_shift),
                self._config.membrane_bits)
            m.d.comb += [
                self.sums[lane].eq(total),
                self.saturated[lane].eq(clamped),
            ]
        return m


class WeightUpdate(wiring.Component):
    """A learned weight: ``clamp(weight + delta)`` to the weight range (combinational).

    The read-modify-write step of every learning rule: the rule computes ``delta``, this
    saturates the result and says when it did.

    Attributes
    ----------
    weight : In(signed(weight_bits))
    delta : In(delta_shape)
    new_weight : Out(signed(weight_bits))
    saturated : Out(1)
    """

    def __init__(self, weight_bits: int, delta_shape):
        self._weight_bits = weight_bits
        super().__init__({
            "weight": In(signed(weight_bits)), "delta": In(delta_shape),
            "new_weight": Out(signed(weight_bits)), "saturated": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        value, clamped = saturate(self.weight + self.delta, self._weight_bits)
        m.d.comb += [self.new_weight.eq(value), self.saturated.eq(clamped)]
        return m
