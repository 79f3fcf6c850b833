"""Synaptic delivery arithmetic: one memory word of weights added to one word of accumulators.

The golden counterpart is the per-event saturating addition of step 2a in
:mod:`plasticore.golden.lif`.
"""

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from plasticore.config import CoreConfig
from .arith import saturate

__all__ = ["LaneAccumulate", "weight_word_layout", "accumulator_word_layout"]


def weight_word_layout(config: CoreConfig) -> data.ArrayLayout:
    """Return the layout of one weight memory word: ``lanes`` signed weights."""
    return data.ArrayLayout(signed(config.weight_bits), config.lanes)


def accumulator_word_layout(config: CoreConfig) -> data.ArrayLayout:
    """Return the layout of one accumulator memory word: ``lanes`` signed accumulators."""
    return data.ArrayLayout(signed(config.membrane_bits), config.lanes)


class LaneAccumulate(wiring.Component):
    """Add a word of weights to a word of accumulators, each lane saturating (combinational).

    Attributes
    ----------
    weights : In(weight_word_layout)
    accumulators : In(accumulator_word_layout)
    sums : Out(accumulator_word_layout)
    saturated : Out(lanes)
        One bit per lane that was clamped.
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        super().__init__({
            "weights": In(weight_word_layout(config)),
            "accumulators": In(accumulator_word_layout(config)),
            "sums": Out(accumulator_word_layout(config)),
            "saturated": Out(config.lanes),
        })

    def elaborate(self, platform):
        m = Module()
        for lane in range(self._config.lanes):
            total, clamped = saturate(self.accumulators[lane] + self.weights[lane],
                                      self._config.membrane_bits)
            m.d.comb += [
                self.sums[lane].eq(total),
                self.saturated[lane].eq(clamped),
            ]
        return m
