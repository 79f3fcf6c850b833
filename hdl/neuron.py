"""The LIF neuron update: one neuron per cycle, the hardware of step 2b of a tick.

The golden counterpart is :func:`plasticore.golden.lif.lif_update`.
"""

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from plasticore.config import CoreConfig
from .arith import saturate

__all__ = ["LifUpdate"]


class LifUpdate(wiring.Component):
    """Combinational update of one LIF neuron from its accumulated input.

    Parameters
    ----------
    config : CoreConfig

    Attributes
    ----------
    membrane, refractory, accumulator : In
        The neuron's state and its input accumulated over the tick.
    new_membrane, new_refractory : Out
        State after the tick.
    spike : Out(1)
        The neuron fired.
    saturated : Out(1)
        The integrated membrane was clamped to its range.
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        membrane = signed(config.membrane_bits)
        refractory = unsigned(config.refractory_bits)
        super().__init__({
            "membrane": In(membrane),
            "refractory": In(refractory),
            "accumulator": In(membrane),
            "new_membrane": Out(membrane),
            "new_refractory": Out(refractory),
            "spike": Out(1),
            "saturated": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()

        active = self.refractory == 0
        leak = (self.membrane >> config.leak_shift) if config.leak_shift else 0
        # v - leak stays inside the membrane range and the accumulator adds one bit: two
        # extra bits hold the raw sum with room to spare.
        raw = self.membrane - leak + self.accumulator
        integrated, clamped = saturate(raw, config.membrane_bits)
        fires = integrated >= config.threshold
        after_spike = 0 if config.reset == "zero" else integrated - config.threshold

        with m.If(~active):
            # Refractory: the input is discarded and the membrane held.
            m.d.comb += [
                self.new_membrane.eq(self.membrane),
                self.new_refractory.eq(self.refractory - 1),
            ]
        with m.Elif(fires):
            m.d.comb += [
                self.new_membrane.eq(after_spike),
                self.new_refractory.eq(config.refractory_ticks),
                self.spike.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                self.new_membrane.eq(integrated),
                self.new_refractory.eq(0),
            ]
        m.d.comb += self.saturated.eq(active & clamped)
        return m
