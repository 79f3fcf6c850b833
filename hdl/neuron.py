"""The LIF neuron update, the hardware of step 2b of a tick, in two halves.

:class:`LifIntegrate` forms the raw sum ``v - leak + acc``; :class:`LifFire` clamps it,
compares with the threshold, resets and counts refractory ticks. The core puts a register
between the two (the whole update is too long a carry chain for one iCE40 cycle);
:class:`LifUpdate` is the two joined combinationally. The golden counterpart of the whole is
:func:`plasticore.golden.lif.lif_update`.
"""

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from plasticore.config import CoreConfig
from .arith import saturate

__all__ = ["LifIntegrate", "LifFire", "LifUpdate", "raw_shape"]


def raw_shape(config: CoreConfig):
    """Shape of the raw integrated membrane: ``v - leak`` stays in the membrane range and
    the accumulator adds one bit; one more bit keeps the sign clear of both."""
    return signed(config.membrane_bits + 2)


class LifIntegrate(wiring.Component):
    """Combinational: ``raw = v - (v >> leak_shift) + acc``.

    Attributes
    ----------
    membrane, accumulator : In(signed(membrane_bits))
    raw : Out(raw_shape)
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        super().__init__({
            "membrane": In(signed(config.membrane_bits)),
            "accumulator": In(signed(config.membrane_bits)),
            "raw": Out(raw_shape(config)),
        })

    def elaborate(self, platform):
        m = Module()
        shift = self._config.leak_shift
        leak = (self.membrane >> shift) if shift else 0
        m.d.comb += self.raw.eq(self.membrane - leak + self.accumulator)
        return m


class LifFire(wiring.Component):
    """Combinational: clamp, threshold, reset and refractory from the raw sum.

    Attributes
    ----------
    membrane, refractory : In
        The neuron's state before the tick (kept while refractory).
    raw : In(raw_shape)
        From :class:`LifIntegrate`.
    new_membrane, new_refractory : Out
    spike : Out(1)
    saturated : Out(1)
        The integrated membrane was clamped (only when not refractory).
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        super().__init__({
            "membrane": In(signed(config.membrane_bits)),
            "refractory": In(unsigned(config.refractory_bits)),
            "raw": In(raw_shape(config)),
            "new_membrane": Out(signed(config.membrane_bits)),
            "new_refractory": Out(unsigned(config.refractory_bits)),
            "spike": Out(1),
            "saturated": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()
        active = self.refractory == 0
        integrated, clamped = saturate(self.raw, config.membrane_bits)
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


class LifUpdate(wiring.Component):
    """Combinational update of one LIF neuron from its accumulated input (both halves).

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
        super().__init__({
            "membrane": In(signed(config.membrane_bits)),
            "refractory": In(unsigned(config.refractory_bits)),
            "accumulator": In(signed(config.membrane_bits)),
            "new_membrane": Out(signed(config.membrane_bits)),
            "new_refractory": Out(unsigned(config.refractory_bits)),
            "spike": Out(1),
            "saturated": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.integrate = integrate = LifIntegrate(self._config)
        m.submodules.fire = fire = LifFire(self._config)
        m.d.comb += [
            integrate.membrane.eq(self.membrane),
            integrate.accumulator.eq(self.accumulator),
            fire.membrane.eq(self.membrane),
            fire.refractory.eq(self.refractory),
            fire.raw.eq(integrate.raw),
            self.new_membrane.eq(fire.new_membrane),
            self.new_refractory.eq(fire.new_refractory),
            self.spike.eq(fire.spike),
            self.saturated.eq(fire.saturated),
        ]
        return m
