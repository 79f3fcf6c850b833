"""The arithmetic of eRBP learning: weight step, error neurons, dendrites (combinational).

Golden counterparts: :func:`plasticore.golden.erbp.weight_step`,
:func:`plasticore.golden.erbp.error_neuron_update` and
:func:`plasticore.golden.erbp.dendrite_update`. :class:`plasticore.hdl.core.Core` puts
them in its delivery pipeline and its end-of-tick passes.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from plasticore.config import CoreConfig
from .arith import saturate, saturate_sum

__all__ = ["ErbpWeightStep", "ErrorInput", "ErrorNeuron", "DendriteLeak", "DendriteUpdate"]


class ErbpWeightStep(wiring.Component):
    """The change of one weight: ``(u >> s) + (r < (u & (2**s - 1)))`` when gated, else 0.

    As written: the shift of the ``membrane_bits``-wide dendrite and the comparison of
    the fraction with ``r`` (the low ``s`` bits of the draw) side by side, then one
    increment. (Shifting the 33-bit ``u + 2**s - 1 - r`` instead gives the same value but
    needs a shifter twice as wide.)

    Parameters
    ----------
    config : CoreConfig
    gated : bool
        The dendrite comes already gated (``u`` for a soma inside the window, else 0; see
        :class:`plasticore.hdl.erbp_passes.SignalPass`): no ``membrane`` input.
    registered : bool or "change"
        ``delta`` follows its inputs by a cycle (for a datapath that holds the change a
        cycle anyway). True: the shifted dendrite, the bump and the gate are registered and
        added after, so that a memory's read data reach only the shift and the comparison
        in their cycle; ``"change"``: the change itself is registered, so that the weight's
        own addition follows a register (for inputs that come from registers). False:
        ``delta`` is combinational.

    Attributes
    ----------
    membrane, dendrite : In(signed(membrane_bits))
        The postsynaptic soma and dendrite at the start of the tick (no ``membrane`` when
        ``gated``).
    random : In(32)
        Word 0 of the synapse's Threefry draw.
    shift : In(range(33))
        The learning-rate shift ``s`` (1 to 32).
    mask : In(32)
        ``2**s - 1``, kept in a register beside ``shift``.
    active : In(1)
        Learning is on in this tick (enabled and past the burn-in).
    delta : Out(signed(membrane_bits))
    """

    def __init__(self, config: CoreConfig, *, gated: bool = False, registered=False):
        self._config, self._gated, self._registered = config, gated, registered
        bits = config.membrane_bits
        members = {
            "dendrite": In(signed(bits)),
            "random": In(32), "shift": In(range(33)), "mask": In(32), "active": In(1),
            "delta": Out(signed(bits)),
        }
        if not gated:
            members["membrane"] = In(signed(bits))
        super().__init__(members)

    def elaborate(self, platform):
        params = self._config.learning
        m = Module()
        fraction = Signal(32)
        m.d.comb += fraction.eq(self.dendrite & self.mask)     # u mod 2**s (u sign-extended)
        bump = (self.random & self.mask) < fraction
        if self._gated:
            # A neuron outside the window comes as u = 0, whose step is 0 for every draw
            # (the complement is below 2**s).
            gate = self.active
        else:
            gate = (self.active & (self.membrane > params.gate_low)
                    & (self.membrane < params.gate_high))
        # |u >> s| <= 2**(membrane_bits - 2) for s >= 1: the step and its bump fit the output.
        if self._registered == "change":
            m.d.sync += self.delta.eq(Mux(gate, (self.dendrite >> self.shift) + bump, 0))
            return m
        shifted = Signal(signed(len(self.dendrite)))
        gated_bump, gate_open = Signal(), Signal()
        domain = m.d.sync if self._registered else m.d.comb
        domain += [shifted.eq(self.dendrite >> self.shift), gated_bump.eq(bump),
                   gate_open.eq(gate)]
        m.d.comb += self.delta.eq(Mux(gate_open, shifted + gated_bump, 0))
        return m


class ErrorInput(wiring.Component):
    """One error neuron's input for step 4: the label sum, then the prediction's input.

    The first half of the error neuron's update, formed while the state is read (it
    depends only on this tick's labels and prediction), so that the cycle with the state
    holds one addition (:class:`ErrorNeuron`).

    Parameters
    ----------
    config : CoreConfig
    sign : +1 or -1
        +1 for E+ (labels excite, predictions inhibit), -1 for E-.

    Attributes
    ----------
    label_sum : In(signed(membrane_bits))
        The saturating sum of this tick's label inputs.
    prediction : In(1)
        The prediction neuron of the class spiked in this tick.
    input_sum : Out(signed(membrane_bits))
        The saturating sum of the labels' and the prediction's inputs.
    input_over : Out(signed(membrane_bits + 1))
        ``input_sum - error_threshold``.
    saturated : Out(1)
        The prediction's addition was clamped.
    """

    def __init__(self, config: CoreConfig, sign: int):
        if sign not in (1, -1):
            raise ValueError(f"sign = {sign}: must be +1 or -1")
        self._config, self._sign = config, sign
        bits = config.membrane_bits
        super().__init__({
            "label_sum": In(signed(bits)), "prediction": In(1),
            "input_sum": Out(signed(bits)), "input_over": Out(signed(bits + 1)),
            "saturated": Out(1),
        })

    def elaborate(self, platform):
        params = self._config.learning
        m = Module()
        weight = -self._sign * params.error_input_weight
        with_prediction, clamped = saturate(self.label_sum + weight, self._config.membrane_bits)
        input_sum = Mux(self.prediction, with_prediction, self.label_sum)
        m.d.comb += [
            self.input_sum.eq(input_sum),
            self.input_over.eq(input_sum - params.error_threshold),
            self.saturated.eq(self.prediction & clamped),
        ]
        return m


class ErrorNeuron(wiring.Component):
    """One error neuron's step 4 after its input: add, floor at zero, subtractive reset.

    ``e + input`` and ``e + input - threshold`` are formed side by side, so the spike is
    the sign of the second and the new state a choice between the two, with no adder after
    an adder. That is exact because ``1 <= threshold <= high``: a spike is ``sat(e + input)
    >= threshold``, which is ``e + input >= threshold``, and a sum that saturates high
    spikes.

    Parameters
    ----------
    config : CoreConfig

    Attributes
    ----------
    state : In(signed(membrane_bits))
        ``e`` before the tick (never negative).
    input_sum, input_over : In
        From :class:`ErrorInput`.
    new_state : Out(signed(membrane_bits))
    spike : Out(1)
    saturated : Out(1)
        ``e + input`` was clamped.
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        bits = config.membrane_bits
        super().__init__({
            "state": In(signed(bits)), "input_sum": In(signed(bits)),
            "input_over": In(signed(bits + 1)),
            "new_state": Out(signed(bits)), "spike": Out(1), "saturated": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        bits, threshold = config.membrane_bits, config.learning.error_threshold
        high = (1 << (bits - 1)) - 1
        m = Module()
        total = Signal(signed(bits + 1))
        over = Signal(signed(bits + 2))
        m.d.comb += [total.eq(self.state + self.input_sum),
                     over.eq(self.state + self.input_over)]
        # The sum of two signed(bits) leaves their range exactly when its top two bits differ.
        too_high = ~total[bits] & total[bits - 1]
        too_low = total[bits] & ~total[bits - 1]
        spike = ~over[bits + 1]
        m.d.comb += [
            self.spike.eq(spike),
            # No spike means total < threshold <= high: only the floor can apply.
            self.new_state.eq(Mux(spike, Mux(too_high, high - threshold, over),
                                  Mux(total[bits], 0, total))),
            self.saturated.eq(too_high | too_low),
        ]
        return m


class DendriteLeak(wiring.Component):
    """A dendrite's leak (the first half of step 5): ``u - leak``, a positive dendrite
    leaking at least 1. It depends on ``u`` alone, so it is formed in the cycle after the
    read, before the feedback is added (:class:`DendriteUpdate`).

    Attributes
    ----------
    dendrite : In(signed(membrane_bits))
    leaked : Out(signed(membrane_bits))
        ``u - leak``: never out of range (the leak has the sign of ``u`` and a smaller size).
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        bits = config.membrane_bits
        super().__init__({"dendrite": In(signed(bits)), "leaked": Out(signed(bits))})

    def elaborate(self, platform):
        m = Module()
        u = self.dendrite
        shifted = u >> self._config.learning.dendrite_leak_shift
        leak = Mux((u > 0) & (shifted == 0), 1, shifted)
        m.d.comb += self.leaked.eq(u - leak)
        return m


class DendriteUpdate(wiring.Component):
    """A dendrite's step 5 after its leak: ``(u - leak) + fb``, saturating.

    Attributes
    ----------
    leaked : In(signed(membrane_bits))
        From :class:`DendriteLeak`.
    feedback : In(signed(membrane_bits))
    new_dendrite : Out(signed(membrane_bits))
    saturated : Out(1)
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        bits = config.membrane_bits
        super().__init__({
            "leaked": In(signed(bits)), "feedback": In(signed(bits)),
            "new_dendrite": Out(signed(bits)), "saturated": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # Both in signed(membrane_bits): the top two bits of the sum tell the overflow.
        value, clamped = saturate_sum(self.leaked + self.feedback, self._config.membrane_bits)
        m.d.comb += [self.new_dendrite.eq(value), self.saturated.eq(clamped)]
        return m
