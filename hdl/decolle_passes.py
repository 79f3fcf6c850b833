"""DECOLLE's passes over a layer: traces, membranes, spikes out, and the local update.

Each pass is a component started by the DECOLLE core's sequencer with a ``start`` pulse
and reporting ``done`` in its last cycle; each reaches the memories it shares through
read and write accesses (:mod:`plasticore.hdl.ports`). The arithmetic is in
:mod:`plasticore.hdl.decolle_units`; :class:`plasticore.hdl.decolle_core.DecolleCore`
assembles the passes. All of them see the constants of the layer being worked on through
their ``layer`` member (:func:`layer_constants_layout`).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from plasticore.rules.decolle import RANDOM_DRAW_BITS, ROUNDING_STREAM, synapse_offsets
from .decolle_units import (NeuronUnit, TraceUnit, UpdateUnit, dot_shape, refractory_shape,
                            trace_shape)
from .ports import read_access, write_access
from .prng import Threefry2x32, delayed
from .synapse import weight_word_layout

__all__ = ["layer_constants_layout", "trace_word_layout", "state_word_layout", "TracePass",
           "MembranePass", "EmitPass", "LearningPass", "error_unit_signature"]


def _bits(depth: int) -> int:
    return max(0, ceil_log2(depth))


def layer_constants_layout(config, layout) -> data.StructLayout:
    """The constants of one layer that the passes use (the sequencer selects the row)."""
    max_post, max_pre = max(config.neuron_layers), max(config.layers[:-1])
    return data.StructLayout({
        "n_pre": range(max_pre + 1), "n_post": range(max_post + 1),
        "row_base": range(layout.rows + 1),
        "weight_base": range(layout.weight_words + 1),
        "state_base": range(layout.state_words + 1),
        "previous_base": range(layout.state_words + 1),   # state of the layer below
        "synapse_base": range(synapse_offsets(config)[-1] + 1),
        "is_first": 1, "is_last": 1,
        "lr_shift": range(RANDOM_DRAW_BITS + 1),
    })


def trace_word_layout(config) -> data.StructLayout:
    """A presynaptic row's traces Q and P in one word."""
    return data.StructLayout({"q": trace_shape(config), "p": trace_shape(config)})


def state_word_layout(config) -> data.StructLayout:
    """A neuron's membrane, refractory count and last spike in one word."""
    return data.StructLayout({"u": signed(config.membrane_bits),
                              "r": refractory_shape(config), "s": 1})


def _accesses(config, layout, names):
    """Read and write access members for the DECOLLE memories named in ``names``."""
    memories = {
        "weights": (layout.weight_words, weight_word_layout(config)),
        "bias": (layout.state_words, signed(config.weight_bits)),
        "traces": (layout.rows, trace_word_layout(config)),
        "input": (config.n_inputs, 1),
        "state": (layout.state_words, state_word_layout(config)),
    }
    members = {}
    for name in names:
        memory, kind = name.rsplit("_", 1)
        depth, shape = memories[memory]
        access = read_access if kind == "read" else write_access
        members[name] = Out(access(_bits(depth), shape))
    return members


class TracePass(wiring.Component):
    """Step 1 for a layer: one input per cycle, Q and P read, updated and written back.

    A layer's input spikes come from the input-spike memory (cleared as it is read) for
    the first layer, from the spike bits of the layer below otherwise. ``fresh`` (a new
    sample) makes the old traces read as zero.
    """

    def __init__(self, config, layout):
        self._config = config
        super().__init__({
            "start": In(1), "done": Out(1), "fresh": In(1),
            "layer": In(layer_constants_layout(config, layout)),
            **_accesses(config, layout, ("traces_read", "traces_write", "input_read",
                                         "input_write", "state_read")),
        })

    def elaborate(self, platform):
        m = Module()
        layer = self.layer
        m.submodules.unit = unit = TraceUnit(self._config)
        active = Signal()
        index = Signal.like(layer.n_pre)
        b_valid = Signal()
        b_index = Signal.like(layer.n_pre)
        # Stage A: read the traces and the spike of input `index`.
        with m.If(self.start):
            m.d.sync += [active.eq(1), index.eq(0)]
        with m.Elif(active):
            m.d.comb += [self.traces_read.valid.eq(1),
                         self.traces_read.addr.eq(layer.row_base + index)]
            # Only the memory the spike comes from is read: the other may be shallower
            # than this layer's inputs.
            with m.If(layer.is_first):
                m.d.comb += [self.input_read.valid.eq(1), self.input_read.addr.eq(index)]
            with m.Else():
                m.d.comb += [self.state_read.valid.eq(1),
                             self.state_read.addr.eq(layer.previous_base + index)]
            m.d.sync += index.eq(index + 1)
            with m.If(index == layer.n_pre - 1):
                m.d.sync += active.eq(0)
        m.d.sync += [b_valid.eq(active & ~self.start), b_index.eq(index)]
        # Stage B: update and write back; the input spikes are cleared for the next tick.
        traces = self.traces_read.data
        m.d.comb += [
            unit.q.eq(Mux(self.fresh, 0, traces.q)),
            unit.p.eq(Mux(self.fresh, 0, traces.p)),
            unit.spike.eq(Mux(layer.is_first, self.input_read.data, self.state_read.data.s)),
            self.done.eq(~active & ~b_valid),
        ]
        with m.If(b_valid):
            m.d.comb += [
                self.traces_write.addr.eq(layer.row_base + b_index),
                self.traces_write.data.q.eq(unit.new_q),
                self.traces_write.data.p.eq(unit.new_p),
                self.traces_write.en.eq(1),
            ]
            with m.If(layer.is_first):
                m.d.comb += [self.input_write.addr.eq(b_index), self.input_write.en.eq(1)]
        return m


def error_unit_signature(config) -> wiring.Signature:
    """The error unit's accumulation inputs, from the membrane pass's side."""
    return wiring.Signature({"add": Out(1), "add_neuron": Out(range(max(config.neuron_layers)))})


class MembranePass(wiring.Component):
    """Steps 2 to 5a for a layer: exact dot products, one synapse per cycle, then the neuron.

    A walker visits neuron by neuron, input by input, reading ``W[j, i]`` and ``P[j]``; a
    product register and an accumulator form the dot product (the pipeline never drains
    between neurons). At each neuron's last input its sum enters three finalize stages:
    the first reads the neuron's state and bias, the next two run :class:`NeuronUnit`; the
    last writes U, R and S back and hands a spike to the error unit's readout sums.
    """

    def __init__(self, config, layout):
        self._config = config
        super().__init__({
            "start": In(1), "done": Out(1), "fresh": In(1), "saturated": Out(1),
            "layer": In(layer_constants_layout(config, layout)),
            "readout": Out(error_unit_signature(config)),
            **_accesses(config, layout, ("weights_read", "traces_read", "state_read",
                                         "bias_read", "state_write")),
        })

    def elaborate(self, platform):
        config, layer = self._config, self.layer
        max_post = max(config.neuron_layers)
        m = Module()
        m.submodules.unit = unit = NeuronUnit(config)
        active = Signal()
        neuron = Signal.like(layer.n_post)
        pre = Signal.like(layer.n_pre)
        weight_addr = Signal.like(layer.weight_base)
        with m.If(self.start):
            m.d.sync += [active.eq(1), neuron.eq(0), pre.eq(0), weight_addr.eq(layer.weight_base)]
        # Stage A: read W[j, i] and P[j]; the weights of a neuron are n_post words apart.
        last_input = pre == layer.n_pre - 1
        with m.Elif(active):
            m.d.comb += [
                self.weights_read.valid.eq(1), self.weights_read.addr.eq(weight_addr),
                self.traces_read.valid.eq(1), self.traces_read.addr.eq(layer.row_base + pre),
            ]
            with m.If(last_input):
                m.d.sync += [pre.eq(0), neuron.eq(neuron + 1),
                             weight_addr.eq(layer.weight_base + neuron + 1)]
                with m.If(neuron == layer.n_post - 1):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [pre.eq(pre + 1), weight_addr.eq(weight_addr + layer.n_post)]
        # Stage B: the product; stage C: accumulate, a neuron's last input hands its sum on.
        b_valid, b_first, b_last = Signal(), Signal(), Signal()
        b_neuron = Signal(range(max_post))
        c_valid, c_first, c_last = Signal(), Signal(), Signal()
        c_neuron = Signal(range(max_post))
        c_product = Signal(signed(config.weight_bits + trace_shape(config).width))
        accumulator = Signal(dot_shape(config))
        m.d.sync += [b_valid.eq(active & ~self.start), b_first.eq(pre == 0),
                     b_last.eq(last_input), b_neuron.eq(neuron)]
        m.d.sync += [c_valid.eq(b_valid), c_first.eq(b_first), c_last.eq(b_last),
                     c_neuron.eq(b_neuron),
                     c_product.eq(self.weights_read.data[0] * self.traces_read.data.p)]
        total = Mux(c_first, 0, accumulator) + c_product
        with m.If(c_valid):
            m.d.sync += accumulator.eq(total)
        # F1 reads the neuron's state and bias; F2 and F3 are the neuron unit's two stages,
        # F3 writes back and adds the readout row of a spike.
        f1_valid, f2_valid, f3_valid = Signal(), Signal(), Signal()
        f1_neuron = Signal(range(max_post))
        f2_neuron = Signal(range(max_post))
        f3_neuron = Signal(range(max_post))
        f1_dot = Signal(dot_shape(config))
        f2_dot = Signal(dot_shape(config))
        m.d.sync += [f1_valid.eq(c_valid & c_last), f1_neuron.eq(c_neuron), f1_dot.eq(total)]
        with m.If(f1_valid):
            address = layer.state_base + f1_neuron
            m.d.comb += [self.state_read.valid.eq(1), self.state_read.addr.eq(address),
                         self.bias_read.valid.eq(1), self.bias_read.addr.eq(address)]
        m.d.sync += [f2_valid.eq(f1_valid), f2_neuron.eq(f1_neuron), f2_dot.eq(f1_dot),
                     f3_valid.eq(f2_valid), f3_neuron.eq(f2_neuron)]
        state = self.state_read.data
        m.d.comb += [
            unit.dot.eq(f2_dot),
            unit.bias.eq(self.bias_read.data),
            unit.refractory.eq(Mux(self.fresh, 0, state.r)),
            unit.last_spike.eq(~self.fresh & state.s),
            self.done.eq(~active & ~b_valid & ~c_valid & ~f1_valid & ~f2_valid & ~f3_valid),
        ]
        with m.If(f3_valid):
            m.d.comb += [
                self.state_write.addr.eq(layer.state_base + f3_neuron),
                self.state_write.data.u.eq(unit.membrane),
                self.state_write.data.r.eq(unit.new_refractory),
                self.state_write.data.s.eq(unit.spike),
                self.state_write.en.eq(1),
                self.readout.add.eq(unit.spike),
                self.readout.add_neuron.eq(f3_neuron),
                self.saturated.eq(unit.saturated),
            ]
        return m


class EmitPass(wiring.Component):
    """A layer's spikes out: the spike bits read in neuron order, each spike offered on
    ``spikes``; a spike not taken holds the pass (the read port keeps its data)."""

    def __init__(self, config, layout):
        super().__init__({
            "start": In(1), "done": Out(1),
            "layer": In(layer_constants_layout(config, layout)),
            "spikes": Out(stream.Signature(range(max(config.neuron_layers)))),
            **_accesses(config, layout, ("state_read",)),
        })

    def elaborate(self, platform):
        m = Module()
        layer = self.layer
        active = Signal()
        neuron = Signal.like(layer.n_post)
        b_valid = Signal()
        stall = self.spikes.valid & ~self.spikes.ready
        with m.If(active | b_valid):
            m.d.comb += [self.state_read.valid.eq(1),
                         self.state_read.addr.eq(layer.state_base + neuron)]
        m.d.comb += [
            self.state_read.en.eq(~stall),
            self.spikes.valid.eq(b_valid & self.state_read.data.s),
            self.done.eq(~stall & ~active & ~b_valid & ~self.start),
        ]
        with m.If(self.start):
            m.d.sync += [active.eq(1), neuron.eq(0), b_valid.eq(0)]
        with m.Elif(~stall):
            m.d.sync += [b_valid.eq(active), self.spikes.payload.eq(neuron)]
            with m.If(active):
                m.d.sync += neuron.eq(neuron + 1)
                with m.If(neuron == layer.n_post - 1):
                    m.d.sync += active.eq(0)
        return m


class LearningPass(wiring.Component):
    """Steps 5a to 5c for a layer, on learning ticks: each neuron's error, then, for a
    nonzero error, its column of weights (and the bias with ``learn_bias``) updated.

    For each neuron the error unit computes ``e_q``; for a nonzero ``e_q`` a walker reads
    ``W[j, i]`` and ``P[j]`` one synapse per cycle. The Threefry pipeline draws each
    synapse's rounding bits ``latency - 1`` cycles ahead of its read, so that draw and data
    meet in :class:`UpdateUnit` (two stages), which writes the new weight two cycles after
    the read.

    Attributes
    ----------
    error : the error unit's per-neuron side (start, neuron, membrane, spike in; done,
        error out), driven from here
    tick : In(32)
    """

    def __init__(self, config, layout):
        self._config, self._layout = config, layout
        params = config.learning
        self._stochastic = params.stochastic_rounding
        max_post = max(config.neuron_layers)
        super().__init__({
            "start": In(1), "done": Out(1), "saturated": Out(1), "tick": In(32),
            "layer": In(layer_constants_layout(config, layout)),
            "error": Out(wiring.Signature({
                "start": Out(1), "neuron": Out(range(max_post)),
                "membrane": Out(signed(config.membrane_bits)), "spike": Out(1),
                "done": In(1), "error": In(signed(params.error_bits)),
            })),
            **_accesses(config, layout, ("weights_read", "weights_write", "bias_read",
                                         "bias_write", "traces_read", "state_read")),
        })

    def elaborate(self, platform):
        config, layout, layer = self._config, self._layout, self.layer
        params = config.learning
        max_post, max_pre = max(config.neuron_layers), max(config.layers[:-1])
        m = Module()
        neuron = Signal.like(layer.n_post)
        pre = Signal(range(max_pre + 2))            # input (the bias row is n_pre)
        weight_addr = Signal(range(layout.weight_words + max_post + 1))
        synapse = Signal(range(synapse_offsets(config)[-1] + max_post + 1))  # global index
        draws = Signal(range(max_pre + 2))          # draws issued for the column
        active = Signal()
        draw_active = Signal()
        self._threefry = (Threefry2x32((config.seed, ROUNDING_STREAM), params.prng_rounds,
                                       rounds_per_stage=min(2, params.prng_rounds))
                          if self._stochastic else None)
        latency = self._threefry.latency if self._threefry is not None else 1
        draw_lead = Signal(range(max(latency, 1)))
        error_value = Signal(signed(params.error_bits))
        issue = Signal()                            # stage A of the update pipeline
        in_flight = Signal()
        rows = layer.n_pre + 1 if params.learn_bias else layer.n_pre
        is_bias_row = pre == layer.n_pre

        def next_neuron():
            with m.If(neuron == layer.n_post - 1):
                m.next = "LAYER_DONE"
            with m.Else():
                m.d.sync += neuron.eq(neuron + 1)
                m.next = "ERROR_READ"

        with m.FSM(name="learning"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += neuron.eq(0)
                    m.next = "ERROR_READ"
            with m.State("ERROR_READ"):
                m.d.comb += [self.state_read.valid.eq(1),
                             self.state_read.addr.eq(layer.state_base + neuron)]
                m.next = "ERROR_START"
            with m.State("ERROR_START"):
                m.d.comb += [self.error.start.eq(1), self.error.neuron.eq(neuron),
                             self.error.membrane.eq(self.state_read.data.u),
                             self.error.spike.eq(self.state_read.data.s)]
                m.next = "ERROR_WAIT"
            with m.State("ERROR_WAIT"):
                with m.If(self.error.done):
                    with m.If(self.error.error != 0):
                        m.d.sync += [
                            error_value.eq(self.error.error), active.eq(1), pre.eq(0),
                            weight_addr.eq(layer.weight_base + neuron),
                            synapse.eq(layer.synapse_base + neuron), draws.eq(0),
                            draw_active.eq(1), draw_lead.eq(latency - 1),
                        ]
                        m.next = "UPDATE"
                    with m.Else():
                        next_neuron()
            with m.State("UPDATE"):
                # The draw walker runs ahead by latency - 1 synapses.
                with m.If(draw_active):
                    m.d.sync += [synapse.eq(synapse + layer.n_post), draws.eq(draws + 1)]
                    with m.If(draws == rows - 1):
                        m.d.sync += draw_active.eq(0)
                with m.If(draw_lead != 0):
                    m.d.sync += draw_lead.eq(draw_lead - 1)
                with m.Elif(active):
                    m.d.comb += issue.eq(1)
                    m.d.sync += [pre.eq(pre + 1), weight_addr.eq(weight_addr + layer.n_post)]
                    with m.If(pre == rows - 1):
                        m.d.sync += active.eq(0)
                with m.Elif(~in_flight):
                    next_neuron()
            with m.State("LAYER_DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"

        with m.If(issue):
            m.d.comb += [self.bias_read.valid.eq(1),
                         self.bias_read.addr.eq(layer.state_base + neuron)]
            # The bias row has no weight or trace word: reading one there would address
            # past the last layer's end of those memories.
            with m.If(~is_bias_row):
                m.d.comb += [self.weights_read.valid.eq(1), self.weights_read.addr.eq(weight_addr),
                             self.traces_read.valid.eq(1),
                             self.traces_read.addr.eq(layer.row_base + pre)]
        self._update_pipeline(m, issue, in_flight, is_bias_row, neuron, weight_addr, synapse,
                              error_value)
        return m

    def _update_pipeline(self, m, issue, in_flight, is_bias_row, neuron, weight_addr, synapse,
                         error_value):
        """The draws, the update unit and the write-back (the pipeline never stalls)."""
        config, layout, layer = self._config, self._layout, self.layer
        max_post = max(config.neuron_layers)
        threefry = self._threefry
        latency = threefry.latency if threefry is not None else 1
        address = Signal(range(max(layout.weight_words, layout.state_words) + max_post + 1))
        m.d.comb += address.eq(Mux(is_bias_row, layer.state_base + neuron, weight_addr))
        if threefry is not None:
            m.submodules.threefry = threefry
            m.d.comb += [threefry.counter0.eq(self.tick), threefry.counter1.eq(synapse >> 2)]
            field = delayed(m, synapse[:2], latency, "update_field")
            draw = Cat(threefry.word0, threefry.word1).word_select(field, RANDOM_DRAW_BITS)
        else:
            draw = 0
        # The read data are on the ports one cycle after the read (the update unit's first
        # stage); the new weight is written one cycle later.
        z1_bias = delayed(m, is_bias_row, 1, "update_bias")
        z1_valid = delayed(m, issue, 1, "update_valid")
        z_valid = delayed(m, z1_valid, 1, "update_write")
        z_bias = delayed(m, z1_bias, 1, "update_write_bias")
        z_address = delayed(m, address, 2, "update_address")
        m.submodules.unit = unit = UpdateUnit(config)
        m.d.comb += [
            unit.weight.eq(Mux(z1_bias, self.bias_read.data, self.weights_read.data[0])),
            unit.trace.eq(Mux(z1_bias, 1 << config.learning.trace_bits,
                              self.traces_read.data.p)),
            unit.error.eq(error_value),
            unit.draw.eq(draw),
            unit.shift.eq(layer.lr_shift),
            in_flight.eq(z1_valid | z_valid),
        ]
        with m.If(z_valid):
            with m.If(z_bias):
                m.d.comb += [self.bias_write.addr.eq(z_address),
                             self.bias_write.data.eq(unit.new_weight), self.bias_write.en.eq(1)]
            with m.Else():
                m.d.comb += [self.weights_write.addr.eq(z_address),
                             self.weights_write.data.eq(Cat(unit.new_weight)),
                             self.weights_write.en.eq(1)]
            m.d.comb += self.saturated.eq(unit.saturated)
        return m
