"""The arithmetic of a DECOLLE tick, one block per step of :mod:`plasticore.golden.decolle`.

:class:`TraceUnit` is step 1 (the presynaptic traces Q and P of one input),
:class:`NeuronUnit` steps 2 to 4 (refractory state, membrane and spike of one neuron from
its dot product), :class:`ErrorUnit` steps 5a and 5b (readout, error and its quantized,
gated value, one neuron at a time) and :class:`UpdateUnit` step 5c (one synapse). The core
(:mod:`plasticore.hdl.decolle_core`) walks memories through them; each is tested on its own
against the golden model.

Widths follow from the configuration. A floor shift can carry a falling trace a few LSBs
below its target, so the traces are signed and the refractory state can end a few LSBs
below ``-refractory_weight`` (:func:`trace_shape`, :func:`refractory_shape`).
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from plasticore.config import CoreConfig
from plasticore.rules.decolle import readout_matrices
from plasticore.rules.decolle import RANDOM_DRAW_BITS
from .arith import saturate

__all__ = ["trace_shape", "refractory_shape", "dot_shape", "decay", "TraceUnit", "NeuronUnit",
           "ErrorUnit", "UpdateUnit"]


def _symmetric(bound: int):
    """The signed shape that holds ``-bound .. bound``."""
    return signed(bits_for(max(bound, 1)) + 1)


def trace_shape(config: CoreConfig):
    """Signed shape of Q and P: ``2**trace_bits`` at most, and at least
    ``-(len(q_shifts) + len(p_shifts) - 2)`` (each floor shift of a falling trace can take
    one LSB too many)."""
    params = config.learning
    low = len(params.q_shifts) + len(params.p_shifts)
    return signed(max(params.trace_bits + 2, bits_for(-low, require_sign_bit=True)))


def refractory_shape(config: CoreConfig):
    """Signed shape of R, in ``[-(refractory_weight + len(r_shifts) - 1), 0]``."""
    params = config.learning
    return signed(bits_for(-(params.refractory_weight + len(params.r_shifts)),
                           require_sign_bit=True))


def dot_shape(config: CoreConfig):
    """Signed shape of the exact dot product ``W . P`` of the widest layer."""
    params = config.learning
    largest = max(config.layers[:-1]) * (1 << (config.weight_bits - 1)) * (1 << (params.trace_bits + 1))
    return _symmetric(largest)


def decay(value, target, shifts):
    """``value + sum((target - value) >> k for k in shifts)``, arithmetic shifts, exact width."""
    gap = target - value
    total = value
    for shift in shifts:
        total = total + (gap >> shift)
    return total


class TraceUnit(wiring.Component):
    """Combinational: step 1 for one input, ``Q += sum(((s << tb) - Q) >> k)`` and
    ``P += sum((Q_old - P) >> k)``.

    Attributes
    ----------
    q, p : In(trace_shape)
        The traces before the tick.
    spike : In(1)
        The input's spike in this tick.
    new_q, new_p : Out(trace_shape)
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        shape = trace_shape(config)
        super().__init__({
            "q": In(shape), "p": In(shape), "spike": In(1),
            "new_q": Out(shape), "new_p": Out(shape),
        })

    def elaborate(self, platform):
        params = self._config.learning
        m = Module()
        target = Mux(self.spike, 1 << params.trace_bits, 0)
        m.d.comb += [
            self.new_q.eq(decay(self.q, target, params.q_shifts)),
            self.new_p.eq(decay(self.p, self.q, params.p_shifts)),
        ]
        return m


class NeuronUnit(wiring.Component):
    """Steps 2 to 4 for one neuron, a two-stage pipeline (latency 1, a neuron per cycle).

    ``R += sum(((-w_rp if S_prev else 0) - R) >> k)``, then
    ``U = clamp_m((dot >> tb) + b + R)`` and ``S = U > 0``. The first stage registers the
    new R and ``(dot >> tb) + b``, the second adds, clamps and compares (combinational
    outputs, one cycle after the inputs): block RAM to block RAM through the decay, the sum
    and the clamp is too long for one cycle at 50 MHz.

    Attributes
    ----------
    dot : In(dot_shape)
        The exact ``sum_j W[j, i] * P[j]``.
    bias : In(signed(weight_bits))
    refractory : In(refractory_shape)
    last_spike : In(1)
        The neuron's spike of the previous tick.
    new_refractory : Out(refractory_shape)
    membrane : Out(signed(membrane_bits))
    spike, saturated : Out(1)
        ``U > 0``; the membrane was clamped. All outputs are for the inputs of the
        previous cycle.
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        super().__init__({
            "dot": In(dot_shape(config)),
            "bias": In(signed(config.weight_bits)),
            "refractory": In(refractory_shape(config)),
            "last_spike": In(1),
            "new_refractory": Out(refractory_shape(config)),
            "membrane": Out(signed(config.membrane_bits)),
            "spike": Out(1),
            "saturated": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        params = config.learning
        m = Module()
        kick = Mux(self.last_spike, -params.refractory_weight, 0)
        refractory = Signal(refractory_shape(config))
        partial = Signal(signed(dot_shape(config).width - params.trace_bits + 1))
        m.d.sync += [
            refractory.eq(decay(self.refractory, kick, params.r_shifts)),
            partial.eq((self.dot >> params.trace_bits) + self.bias),
        ]
        membrane, clamped = saturate(partial + refractory, config.membrane_bits)
        m.d.comb += [
            self.new_refractory.eq(refractory),
            self.membrane.eq(membrane),
            self.spike.eq(membrane > 0),
            self.saturated.eq(clamped),
        ]
        return m


class ErrorUnit(wiring.Component):
    """Steps 5a and 5b: the readout of a layer and the quantized, gated error of its neurons.

    Holds the fixed random readouts ``G`` of every layer below the top in a ROM (one word of
    ``K`` entries per neuron) and the readout sums ``r[k]`` of the layer being worked on.

    Use, for one layer (``layer`` held): pulse ``clear`` (``r = g``); pulse ``add`` with
    ``add_neuron`` for each neuron that spiked, at most one per cycle (``r += G[i]``, exact);
    then for each neuron pulse ``start`` with ``neuron``, ``membrane`` and ``spike`` and wait
    for ``done``: ``error`` is ``e_q``. The inputs are registered in the cycle of ``start``
    and the gate is formed in the next. A neuron below the top whose membrane is inside
    the boxcar takes ``K + 6`` cycles (one readout entry per cycle through a three-stage
    pipeline), any other 3.

    Attributes
    ----------
    layer : In
        0-based neuron layer.
    target : In(K)
        The label bits ``y`` of this tick.
    clear, add, start : In(1)
    add_neuron, neuron : In
        Index in the layer.
    membrane : In(signed(membrane_bits))
    spike : In(1)
    busy, done : Out(1)
    error : Out(signed(error_bits))
        Valid with ``done``.
    readout_saturated : Out(1)
        Some ``r[k]`` is outside the membrane range (clamped when used): the membrane flag.
    """

    def __init__(self, config: CoreConfig):
        self._config = config
        params = config.learning
        self._readouts = readout_matrices(config)
        n_layers = len(config.neuron_layers)
        amplitude = max([int(abs(G).max()) if G.size else 0
                         for G, _ in filter(None, self._readouts)] + [0])
        largest_g = max([int(abs(g).max()) for _, g in filter(None, self._readouts)] + [0])
        self._entry_shape = _symmetric(amplitude)
        max_post = max(config.neuron_layers)
        self._sum_shape = _symmetric(largest_g + max_post * amplitude)
        # e = sum_k G[i, k] * err[k] with |err| <= 2**u; the top layer's (S - y) << u too.
        self._error_sum_shape = _symmetric(max(config.layers[-1] * amplitude, 1)
                                           << params.unit_bits)
        super().__init__({
            "layer": In(range(n_layers)),
            "target": In(config.layers[-1]),
            "clear": In(1),
            "add": In(1),
            "add_neuron": In(range(max_post)),
            "start": In(1),
            "neuron": In(range(max_post)),
            "membrane": In(signed(config.membrane_bits)),
            "spike": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(signed(params.error_bits)),
            "readout_saturated": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        params = config.learning
        u = params.unit_bits
        n_classes = config.layers[-1]
        n_layers = len(config.neuron_layers)
        low, high = config.membrane_range
        m = Module()

        hidden = [index for index, readout in enumerate(self._readouts) if readout is not None]
        rom_base, rows = {}, []
        for index in hidden:
            rom_base[index] = len(rows)
            rows += [[int(x) for x in row] for row in self._readouts[index][0]]
        word = data.ArrayLayout(self._entry_shape, n_classes)
        is_top = Signal()
        base = Signal(range(max(len(rows), 1) + 1))
        g_values = [Signal(self._sum_shape, name=f"g_{k}") for k in range(n_classes)]
        with m.Switch(self.layer):
            for index in range(n_layers):
                with m.Case(index):
                    if index in hidden:
                        g = self._readouts[index][1]
                        m.d.comb += [base.eq(rom_base[index])]
                        m.d.comb += [g_values[k].eq(int(g[k])) for k in range(n_classes)]
                    else:
                        m.d.comb += is_top.eq(1)

        if rows:
            # A ROM of a few dozen words looks cheap in logic to Yosys; it is not (one LUT
            # tree per bit): ask for block RAM.
            m.submodules.readout = rom = Memory(shape=word, depth=len(rows), init=rows,
                                                attrs={"rom_style": "block", "ram_style": "block"})
            rom_rd = rom.read_port()
            row = rom_rd.data
        else:
            row = Signal(word)

        # Readout sums, exact; clamped (and flagged) only where used.
        sums = [Signal(self._sum_shape, name=f"r_{k}") for k in range(n_classes)]
        # The row of an added neuron is registered as it is read (a block RAM's read data
        # take 6 ns to come out on the ECP5) and added a cycle later.
        add_pending, add_row = Signal(), Signal()
        added = Signal.like(row)
        m.d.sync += [add_pending.eq(self.add), add_row.eq(add_pending), added.eq(row)]
        with m.If(self.clear):
            m.d.sync += [sums[k].eq(g_values[k]) for k in range(n_classes)]
        with m.Elif(add_row):
            m.d.sync += [sums[k].eq(sums[k] + added[k]) for k in range(n_classes)]
        any_saturated = Const(0, 1)
        for k in range(n_classes):
            any_saturated = any_saturated | (sums[k] < low) | (sums[k] > high)
        m.d.comb += self.readout_saturated.eq(~is_top & any_saturated)

        # Per-neuron error.
        neuron = Signal.like(self.neuron)
        with m.If(self.clear):
            # A new layer: the last neuron of the one before may be past this one's rows.
            m.d.sync += neuron.eq(0)
        membrane = Signal.like(self.membrane)
        spike = Signal()
        gate = Signal()
        total = Signal(self._error_sum_shape)
        k = Signal(range(n_classes + 1))
        # The readout entries' pipeline, one k per cycle: S1 takes r[k], G[i, k] and y[k];
        # S2 forms err[k] (one clamp chain shared by every k); S3 the product; then it is
        # added into the total. No stage holds more than one adder or the multiplier.
        s1_valid, s2_valid, s3_valid = Signal(), Signal(), Signal()
        selected = Signal(self._sum_shape)
        entry_1, entry_k = Signal(self._entry_shape), Signal(self._entry_shape)
        target_1 = Signal()
        error_k = Signal(signed(u + 2))
        product = Signal(signed(self._entry_shape.width + u + 2))
        m.d.sync += [s1_valid.eq(0), s2_valid.eq(s1_valid), s3_valid.eq(s2_valid),
                     entry_k.eq(entry_1), product.eq(entry_k * error_k)]
        clamped_sum, _ = saturate(selected, config.membrane_bits)
        difference = clamped_sum - (target_1 << u)
        m.d.sync += error_k.eq(Mux(difference > (1 << u), 1 << u,
                                   Mux(difference < -(1 << u), -(1 << u), difference)))
        with m.If(s3_valid):
            m.d.sync += total.eq(total + product)
        if rows:
            # The top layer has no readout rows: its neurons would address past the ROM.
            with m.If(is_top):
                m.d.comb += rom_rd.addr.eq(0)
            with m.Elif(self.add):
                m.d.comb += rom_rd.addr.eq(base + self.add_neuron)
            with m.Else():
                m.d.comb += rom_rd.addr.eq(base + neuron)
        window = params.surrogate_window
        error_limit = (1 << (params.error_bits - 1)) - 1
        quantized = Signal(self._error_sum_shape)
        with m.Switch(self.layer):
            for index, shift in enumerate(params.error_shifts):
                with m.Case(index):
                    half = (1 << (shift - 1)) if shift else 0
                    m.d.comb += quantized.eq((total + half) >> shift)
        clipped = Mux(quantized > error_limit, error_limit,
                      Mux(quantized < -error_limit, -error_limit, quantized))

        with m.FSM(name="error"):
            with m.State("IDLE"):
                # The inputs are registered first: the membrane comes from a block RAM's
                # read data, too late for the window's comparisons and the decision below.
                with m.If(self.start):
                    m.d.sync += [
                        neuron.eq(self.neuron),
                        membrane.eq(self.membrane),
                        spike.eq(self.spike),
                    ]
                    m.next = "GATE"
            with m.State("GATE"):
                m.d.comb += self.busy.eq(1)
                inside = (membrane > -window) & (membrane <= window)
                target = self.target.bit_select(neuron, 1)
                top_error = Mux(spike & ~target, 1 << u, Mux(~spike & target, -(1 << u), 0))
                m.d.sync += [gate.eq(inside), k.eq(0), total.eq(top_error)]
                with m.If(~is_top & inside):
                    m.d.sync += total.eq(0)
                    m.next = "SUM"
                with m.Else():
                    m.next = "QUANTIZE"
            with m.State("SUM"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [
                    s1_valid.eq(1),
                    selected.eq(Array(sums)[k]),
                    entry_1.eq(Array(row[index] for index in range(n_classes))[k]),
                    target_1.eq(self.target.bit_select(k, 1)),
                    k.eq(k + 1),
                ]
                with m.If(k == n_classes - 1):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # The last entry's product is added in the cycle S1 and S2 are empty.
                m.d.comb += self.busy.eq(1)
                with m.If(~s1_valid & ~s2_valid):
                    m.next = "QUANTIZE"
            with m.State("QUANTIZE"):
                m.d.comb += [
                    self.busy.eq(1),
                    self.done.eq(1),
                    self.error.eq(Mux(gate, clipped, 0)),
                ]
                m.next = "IDLE"
        return m


class UpdateUnit(wiring.Component):
    """Step 5c for one synapse, a five-stage pipeline (latency 4, one synapse per cycle).

    ``W = clamp_w(W + ((-e_q * P + rnd) >> lr_shift))`` with ``rnd`` the top ``lr_shift``
    bits of the 16-bit draw (0 without stochastic rounding). Every stage starts and ends
    at registers, so that no path joins a block RAM's read data, a multiplier and an adder:

    1. the inputs are registered (a block RAM's read data take 6 ns to come out on the
       ECP5), with ``-e_q`` and the rounding bits;
    2. the multiplier (a MULT18X18D alone takes 5.4 ns);
    3. the rounding add and the shift, and the step limited to ``weight_bits + 2`` bits
       (a larger step saturates every weight the same way);
    4. the saturating add to the weight, whose registered result reaches a memory's write
       data on its own (the routing to an iCE40 SPRAM alone takes up to 7 ns).

    Attributes
    ----------
    weight : In(signed(weight_bits))
    trace : In(trace_shape)
        ``P[j]`` (``1 << trace_bits`` for a bias).
    error : In(signed(error_bits))
    draw : In(16)
    shift : In(range(17))
        The layer's learning-rate shift.
    new_weight : Out(signed(weight_bits))
        For the inputs of ``latency`` cycles before.
    saturated : Out(1)
    """

    #: Cycles from the inputs to the outputs.
    latency = 4

    def __init__(self, config: CoreConfig):
        self._config = config
        params = config.learning
        super().__init__({
            "weight": In(signed(config.weight_bits)),
            "trace": In(trace_shape(config)),
            "error": In(signed(params.error_bits)),
            "draw": In(RANDOM_DRAW_BITS),
            "shift": In(range(RANDOM_DRAW_BITS + 1)),
            "new_weight": Out(signed(config.weight_bits)),
            "saturated": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()

        def stage(value, name):
            register = Signal.like(value, name=name) if isinstance(value, Signal) else \
                Signal(value.shape(), name=name)
            m.d.sync += register.eq(value)
            return register

        # Stage 1: the inputs.
        weight1 = stage(self.weight, "weight1")
        trace1 = stage(self.trace, "trace1")
        shift1 = stage(self.shift, "shift1")
        negated1 = Signal(signed(config.learning.error_bits + 1))
        m.d.sync += negated1.eq(-self.error)
        rounding1 = Signal(RANDOM_DRAW_BITS)
        if config.learning.stochastic_rounding:
            # A 16-bit draw shifted right by 16 is 0: no special case for lr_shift = 0.
            amount = Signal(range(RANDOM_DRAW_BITS + 1))
            m.d.comb += amount.eq(RANDOM_DRAW_BITS - self.shift)
            m.d.sync += rounding1.eq(self.draw >> amount)
        # Stage 2: the product.
        product2 = Signal(signed(len(negated1) + trace_shape(config).width))
        m.d.sync += product2.eq(negated1 * trace1)
        weight2, shift2, rounding2 = (stage(weight1, "weight2"), stage(shift1, "shift2"),
                                      stage(rounding1, "rounding2"))
        # Stage 3: round, shift and limit the step. It fits signed(weight_bits + 2) when
        # the bits of `rounded` from weight_bits + 1 + shift up all equal its sign: a mask
        # (from the shift, registered a stage before) beside the shifter, not a test
        # after it.
        rounded = product2 + rounding2
        shifted = Signal(rounded.shape())  # an arithmetic shift right: no wider than that
        m.d.comb += shifted.eq(rounded >> shift2)
        bits = config.weight_bits + 2
        width = len(rounded)
        above2 = Signal(width)
        m.d.sync += above2.eq((Const(-1, width) << (bits - 1 + shift1))[:width])
        sign = rounded[-1]
        outside = ((rounded ^ sign.replicate(width)) & above2).any()
        step3 = Signal(signed(bits))
        m.d.sync += step3.eq(Mux(outside, Mux(sign, -(1 << (bits - 1)), (1 << (bits - 1)) - 1),
                                 shifted[:bits]))
        weight3 = stage(weight2, "weight3")
        # Stage 4: the saturating add.
        new_weight, clamped = saturate(weight3 + step3, config.weight_bits)
        m.d.sync += [self.new_weight.eq(new_weight), self.saturated.eq(clamped)]
        return m
