"""DECOLLE's passes over a layer: traces, membranes, spikes out, and the local update.

Each pass is a component started by the DECOLLE core's sequencer with a ``start`` pulse
and reporting ``done`` in its last cycle; each reaches the memories it shares through
read and write accesses (:mod:`plasticore.hdl.ports`). The arithmetic is in
:mod:`plasticore.hdl.decolle_units`; :class:`plasticore.hdl.decolle_core.DecolleCore`
assembles the passes. All of them see the constants of the layer being worked on through
their ``layer`` member (:func:`layer_constants_layout`).
"""

from amaranth.hdl import Array, Cat, Const, EnableInserter, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from plasticore.rules.decolle import RANDOM_DRAW_BITS, ROUNDING_STREAM, synapse_offsets
from .decolle_units import (NeuronUnit, TraceUnit, UpdateUnit, dot_shape, refractory_shape,
                            trace_shape)
from .ports import read_access, write_access
from .prng import Threefry2x32, delayed
from .projection import prng_rounds_per_stage
from .synapse import weight_word_layout

__all__ = ["layer_constants_layout", "trace_word_layout", "state_word_layout",
           "MembranePass", "LearningPass", "error_unit_signature", "draw_blocks"]


def _bits(depth: int) -> int:
    return max(0, ceil_log2(depth))


def layer_constants_layout(config, layout) -> data.StructLayout:
    """The constants of one layer that the passes use (the sequencer selects the row)."""
    max_post, max_pre = max(config.neuron_layers), max(config.layers[:-1])
    return data.StructLayout({
        "n_pre": range(max_pre + 1), "n_post": range(max_post + 1),
        "row_base": range(layout.rows + 1),
        "row_words": range(max(lay.row_words for lay in layout.layers) + 1),
        "weight_base": range(layout.weight_words + 1),
        "group_base": range(layout.accumulator_words + 1),   # the layer's first bias word
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
        "bias": (layout.accumulator_words, weight_word_layout(config)),
        "traces": (layout.rows, trace_word_layout(config)),
        "input": (config.n_inputs, 1),
        "state": (layout.state_words, state_word_layout(config)),
    }
    members = {}
    for name in names:
        memory, kind = name.rsplit("_", 1)
        depth, shape = memories[memory]
        if kind == "read":
            members[name] = Out(read_access(_bits(depth), shape))
        else:
            # Weight and bias words are written lane by lane.
            lanes = config.lanes if memory in ("weights", "bias") else 1
            members[name] = Out(write_access(_bits(depth), shape, lanes))
    return members


def error_unit_signature(config) -> wiring.Signature:
    """The error unit's accumulation inputs, from the membrane pass's side."""
    return wiring.Signature({"add": Out(1), "add_neuron": Out(range(max(config.neuron_layers)))})


class MembranePass(wiring.Component):
    """Steps 1 to 5a for a layer: the traces, exact dot products (one weight word per
    cycle), then the neurons one by one, their spikes sent as they are formed.

    A walker visits the layer's weight words group by group (a group is the ``lanes``
    neurons of one word of a row), input by input, reading the word ``W[j, group]`` and
    ``P[j]``. The first group's walk also reads ``Q[j]`` and the input's spike (the
    input-spike memory, cleared as it is read, for the first layer; the spike bit of the
    layer below otherwise), updates both traces (:class:`TraceUnit`), writes them back and
    multiplies by the new ``P[j]``; the later groups read the P it wrote (every neuron
    needs the new P, so the first group's walk is the trace pass). ``fresh`` (a new
    sample) makes the old traces, refractory states and spikes read as zero.

    Per lane a weight register, a product register and an accumulator form the dot
    product (the pipeline never drains between groups). At a group's last input its sums
    enter three finalize stages one neuron per cycle (lane 0 at once, the others from a
    register bank): the first reads the neuron's state and bias, the next two run
    :class:`NeuronUnit`; the last writes U, R and S back, offers a spike on ``spikes`` and
    hands it to the error unit's readout sums. A group's last input waits until the bank
    has handed on the previous group (``lanes`` cycles, at least 2 so that the second
    group never reads a P in the cycle the first writes it), which only layers with fewer
    inputs than that notice. A spike that the output does not take holds the whole pass
    (every register and the read ports keep their values).
    """

    def __init__(self, config, layout):
        self._config = config
        super().__init__({
            "start": In(1), "done": Out(1), "fresh": In(1), "saturated": Out(1),
            "layer": In(layer_constants_layout(config, layout)),
            "readout": Out(error_unit_signature(config)),
            "spikes": Out(stream.Signature(range(max(config.neuron_layers)))),
            **_accesses(config, layout, ("weights_read", "traces_read", "traces_write",
                                         "input_read", "input_write", "state_read",
                                         "bias_read", "state_write")),
        })

    def elaborate(self, platform):
        config, layer = self._config, self.layer
        lanes = config.lanes
        lane_bits = (lanes - 1).bit_length()
        max_post = max(config.neuron_layers)
        m = Module()
        # Every register of the pass is in `p`, which holds still while a spike waits for
        # the output; the read ports hold their data with it.
        p = Module()
        stall = Signal()
        m.submodules.pipeline = EnableInserter(~stall)(p)
        for access in (self.weights_read, self.traces_read, self.input_read, self.state_read,
                       self.bias_read):
            m.d.comb += access.en.eq(~stall)
        p.submodules.trace_unit = trace_unit = TraceUnit(config)
        p.submodules.unit = unit = NeuronUnit(config)
        active = Signal()
        group = Signal.like(layer.row_words)
        pre = Signal.like(layer.n_pre)
        # Cycles since the last group's last input was read (at most `wait`).
        wait = max(lanes, 3)
        since = Signal(range(wait + 1), init=wait)
        # Registers, so that the reads' addresses and `issue` come from registers: this
        # is the input's last one; the addresses of W[pre, group], P[pre] and the spike of
        # input pre of the layer below (the layer's constants are valid from the cycle
        # that starts the pass).
        last_input = Signal()
        weight_addr = Signal.like(self.weights_read.addr)
        trace_addr = Signal.like(self.traces_read.addr)
        spike_addr = Signal.like(self.state_read.addr)
        first_group = group == 0
        # A layer of two inputs: a later group's first read waits a cycle more, so that
        # it never reads a P in the cycle the group before writes it (three cycles after
        # that group read it); a layer of one input has only its last input, which waits
        # `wait` cycles anyway, and one of three or more reads the first P late enough.
        # Registered: the layer's constants change as the pass starts.
        two_inputs = Signal()
        p.d.sync += two_inputs.eq(layer.n_pre == 2)
        issue = Signal()
        # Input 0 of a group: the row start, the column of the group.
        first_input = [last_input.eq(layer.n_pre == 1), trace_addr.eq(layer.row_base),
                       spike_addr.eq(layer.previous_base)]
        with p.If(self.start):
            p.d.sync += [active.eq(1), group.eq(0), pre.eq(0), since.eq(wait), *first_input,
                         weight_addr.eq(layer.weight_base)]
        # Stage A: read W[j, group] and the traces of j (and, in the first group, the
        # input's spike); a group's words are row_words apart.
        with p.Elif(active & Mux(last_input, since == wait, ~two_inputs | (since >= 2))):
            p.d.comb += [
                issue.eq(1),
                self.weights_read.valid.eq(1),
                self.weights_read.addr.eq(weight_addr),
                self.traces_read.valid.eq(1), self.traces_read.addr.eq(trace_addr),
            ]
            # Only the memory the spike comes from is read: the other may be shallower
            # than this layer's inputs.
            with p.If(first_group & ~layer.is_first):
                p.d.comb += [self.state_read.valid.eq(1), self.state_read.addr.eq(spike_addr)]
            with p.If(last_input):
                p.d.sync += [pre.eq(0), group.eq(group + 1), *first_input,
                             weight_addr.eq(layer.weight_base + group + 1)]
                with p.If(group == layer.row_words - 1):
                    p.d.sync += active.eq(0)
            with p.Else():
                p.d.sync += [pre.eq(pre + 1), last_input.eq(pre + 2 == layer.n_pre),
                             weight_addr.eq(weight_addr + layer.row_words),
                             trace_addr.eq(trace_addr + 1), spike_addr.eq(spike_addr + 1)]
        # The input-spike memory is read through the whole first group of the first layer,
        # stalls included, so that its address does not wait for `issue`: only the reads
        # issued are used (a stalled read is of `pre`, never of the word being cleared).
        with p.If(active & first_group & layer.is_first):
            p.d.comb += [self.input_read.valid.eq(1), self.input_read.addr.eq(pre)]
        with p.If(issue & last_input):
            p.d.sync += since.eq(1)
        with p.Elif(since != wait):
            p.d.sync += since.eq(since + 1)
        # Stage B: the read data are registered (a block RAM's read data take 6 ns to come
        # out on the ECP5); the input spikes are cleared for the next tick.
        b_valid, b_first, b_last, b_traces = Signal(), Signal(), Signal(), Signal()
        b_group = Signal.like(group)
        b_pre = Signal.like(pre)
        p.d.sync += [b_valid.eq(issue), b_first.eq(pre == 0), b_last.eq(last_input),
                     b_group.eq(group), b_pre.eq(pre), b_traces.eq(first_group)]
        with p.If(b_valid & b_traces & layer.is_first):
            p.d.comb += [self.input_write.addr.eq(b_pre), self.input_write.en.eq(1)]
        # Stage T: in the first group the traces are updated and written back, and the new
        # P goes on.
        t_valid, t_first, t_last, t_traces = Signal(), Signal(), Signal(), Signal()
        t_group = Signal.like(group)
        t_pre = Signal.like(pre)
        t_weights = Signal(weight_word_layout(config))
        # The traces as read (a later group's P) and as the trace update takes them (the
        # old traces of a fresh sample are zero).
        t_old = Signal.like(self.traces_read.data)
        t_start = Signal.like(self.traces_read.data)
        t_spike = Signal()
        p.d.sync += [t_valid.eq(b_valid), t_first.eq(b_first), t_last.eq(b_last),
                     t_group.eq(b_group), t_pre.eq(b_pre), t_traces.eq(b_traces),
                     t_weights.eq(self.weights_read.data),
                     t_old.eq(self.traces_read.data),
                     t_start.eq(Mux(self.fresh, 0, self.traces_read.data)),
                     t_spike.eq(Mux(layer.is_first, self.input_read.data,
                                    self.state_read.data.s))]
        p.d.comb += [trace_unit.q.eq(t_start.q), trace_unit.p.eq(t_start.p),
                     trace_unit.spike.eq(t_spike)]
        with p.If(t_valid & t_traces):
            p.d.comb += [
                self.traces_write.addr.eq(layer.row_base + t_pre),
                self.traces_write.data.q.eq(trace_unit.new_q),
                self.traces_write.data.p.eq(trace_unit.new_p),
                self.traces_write.en.eq(1),
            ]
        # Stage C: the weight word and P in registers (the trace update stays out of the
        # multipliers' path); stage D: the products; stage E: accumulate, a group's last
        # input hands its sums on.
        c_valid, c_first, c_last = Signal(), Signal(), Signal()
        c_group = Signal.like(group)
        c_weights = Signal(weight_word_layout(config))
        c_p = Signal(trace_shape(config))
        p.d.sync += [c_valid.eq(t_valid), c_first.eq(t_first), c_last.eq(t_last),
                     c_group.eq(t_group), c_weights.eq(t_weights),
                     c_p.eq(Mux(t_traces, trace_unit.new_p, t_old.p))]
        d_valid, d_first, d_last = Signal(), Signal(), Signal()
        d_group = Signal.like(group)
        product_shape = signed(config.weight_bits + trace_shape(config).width)
        d_products = [Signal(product_shape, name=f"d_product_{lane}") for lane in range(lanes)]
        accumulators = [Signal(dot_shape(config), name=f"accumulator_{lane}")
                        for lane in range(lanes)]
        p.d.sync += [d_valid.eq(c_valid), d_first.eq(c_first), d_last.eq(c_last),
                     d_group.eq(c_group)]
        p.d.sync += [d_products[lane].eq(c_weights[lane] * c_p) for lane in range(lanes)]
        totals = [Mux(d_first, 0, accumulator) + product
                  for accumulator, product in zip(accumulators, d_products)]
        with p.If(d_valid):
            p.d.sync += [accumulator.eq(total) for accumulator, total in zip(accumulators, totals)]
        # The serializer: lane 0 goes to F1 at once, lanes 1 on from the bank, one per cycle.
        f1_valid, f2_valid, f3_valid = Signal(), Signal(), Signal()
        f1_neuron = Signal(range(max_post))
        f2_neuron = Signal(range(max_post))
        f3_neuron = Signal(range(max_post))
        f1_dot = Signal(dot_shape(config))
        f2_dot = Signal(dot_shape(config))
        serial = Signal()
        serial_neuron = Signal(range(max_post + lanes))
        p.d.sync += f1_valid.eq(0)
        if lanes > 1:
            bank = Array(Signal(dot_shape(config), name=f"bank_{lane}") for lane in range(lanes))
            serial_lane = Signal(range(lanes))
            first_neuron = Cat(Const(0, lane_bits), d_group)
            with p.If(d_valid & d_last):
                p.d.sync += [bank[lane].eq(totals[lane]) for lane in range(1, lanes)]
                p.d.sync += [serial.eq(first_neuron + 1 < layer.n_post), serial_lane.eq(1),
                             serial_neuron.eq(first_neuron + 1)]
            with p.Elif(serial):
                p.d.sync += [f1_valid.eq(1), f1_neuron.eq(serial_neuron),
                             f1_dot.eq(bank[serial_lane]),
                             serial_lane.eq(serial_lane + 1), serial_neuron.eq(serial_neuron + 1)]
                with p.If((serial_lane == lanes - 1) | (serial_neuron == layer.n_post - 1)):
                    p.d.sync += serial.eq(0)
        else:
            first_neuron = d_group
        with p.If(d_valid & d_last):
            p.d.sync += [f1_valid.eq(1), f1_neuron.eq(first_neuron), f1_dot.eq(totals[0])]
        # F1 reads the neuron's state and bias word (the first group's spike reads of the
        # layer below are over by then); F2 and F3 are the neuron unit's two stages, F3
        # writes back, sends a spike and adds its readout row.
        with p.If(f1_valid):
            p.d.comb += [self.state_read.valid.eq(1),
                         self.state_read.addr.eq(layer.state_base + f1_neuron),
                         self.bias_read.valid.eq(1),
                         self.bias_read.addr.eq(layer.group_base + (f1_neuron >> lane_bits))]
        # R registers the state and bias words as they are read (a block RAM's read data
        # take 6 ns to come out on the ECP5).
        r_valid = Signal()
        r_neuron = Signal(range(max_post))
        r_dot = Signal(dot_shape(config))
        state = Signal.like(self.state_read.data)
        bias_word = Signal.like(self.bias_read.data)
        p.d.sync += [r_valid.eq(f1_valid), r_neuron.eq(f1_neuron), r_dot.eq(f1_dot),
                     state.eq(self.state_read.data), bias_word.eq(self.bias_read.data)]
        p.d.sync += [f2_valid.eq(r_valid), f2_neuron.eq(r_neuron), f2_dot.eq(r_dot),
                     f3_valid.eq(f2_valid), f3_neuron.eq(f2_neuron)]
        bias = bias_word[f2_neuron[:lane_bits]] if lanes > 1 else bias_word[0]
        p.d.comb += [
            unit.dot.eq(f2_dot),
            unit.bias.eq(bias),
            unit.refractory.eq(Mux(self.fresh, 0, state.r)),
            unit.last_spike.eq(~self.fresh & state.s),
        ]
        # F4 registers the neuron unit's results, so that the compare behind a spike does
        # not reach the output stream, the stall and the memories' write ports in a cycle.
        f4_valid, f4_spike, f4_saturated = Signal(), Signal(), Signal()
        f4_neuron = Signal(range(max_post))
        f4_membrane = Signal.like(unit.membrane)
        f4_refractory = Signal.like(unit.new_refractory)
        f4_address = Signal.like(self.state_write.addr)
        p.d.sync += [f4_valid.eq(f3_valid), f4_neuron.eq(f3_neuron),
                     f4_address.eq(layer.state_base + f3_neuron),
                     f4_spike.eq(unit.spike), f4_saturated.eq(unit.saturated),
                     f4_membrane.eq(unit.membrane), f4_refractory.eq(unit.new_refractory)]
        spike = f4_valid & f4_spike
        p.d.comb += [
            self.done.eq(~active & ~b_valid & ~t_valid & ~c_valid & ~d_valid & ~serial & ~f1_valid
                         & ~r_valid & ~f2_valid & ~f3_valid & ~f4_valid),
            self.spikes.valid.eq(spike),
            self.spikes.payload.eq(f4_neuron),
        ]
        m.d.comb += stall.eq(spike & ~self.spikes.ready)
        with p.If(f4_valid):
            # Repeated while stalled: the same word, the same flag; the readout row is
            # added once, in the cycle the spike leaves.
            p.d.comb += [
                self.state_write.addr.eq(f4_address),
                self.state_write.data.u.eq(f4_membrane),
                self.state_write.data.r.eq(f4_refractory),
                self.state_write.data.s.eq(f4_spike),
                self.state_write.en.eq(1),
                self.readout.add.eq(spike & ~stall),
                self.readout.add_neuron.eq(f4_neuron),
                self.saturated.eq(f4_saturated),
            ]
        return m


def draw_blocks(config, layout) -> int:
    """Threefry blocks the update pass draws per cycle: enough for the ``lanes``
    consecutive synapse indices of any word it updates (a block serves four indices, and a
    word's first index need not be a multiple of four)."""
    lanes, offsets = config.lanes, synapse_offsets(config)
    rows_extra = 1 if config.learning.learn_bias else 0
    worst = 0
    for base, lay in zip(offsets, layout.layers):
        # Residues modulo 4 repeat after four rows and four groups.
        worst = max([worst] + [(base + row * lay.n_post + group * lanes) % 4
                               for row in range(min(4, lay.n_pre + rows_extra))
                               for group in range(min(4, lay.row_words))])
    return ((worst + lanes - 1) >> 2) + 1


class LearningPass(wiring.Component):
    """Steps 5a to 5c for a layer, on learning ticks: group by group (the ``lanes``
    neurons of one weight word), each neuron's error, then, if any of the group's errors
    is nonzero, the group's column of weight words (and its bias word with
    ``learn_bias``) updated, one word per cycle.

    The error side has the error unit compute ``e_q`` for each neuron of a group (one
    neuron at a time) and hands the complete group to the update walker as soon as the
    walker can take it; it then forms the next group's errors while the walker runs
    (they use the state memory and the error unit, the walker the weight, trace and bias
    memories). With block RAM the walker can take the next group once the last draw of
    the group before is issued (one group waits in a queue), so consecutive columns are
    read back to back; with SPRAM it takes one group at a time. The walker reads ``W[j, group]`` and ``P[j]``, one row per cycle, and every
    lane updates its own weight with its own neuron's error and its own rounding draw; a
    lane whose error is zero (or past the layer's end) is not written. The Threefry
    pipelines (:func:`draw_blocks` of them) draw each word's blocks ``latency - 1``
    cycles ahead of its read, so that draws and data meet in the :class:`UpdateUnit` of
    each lane (two stages), which writes the new word two cycles after the read. With the
    weights in single-port SPRAM (``weight_memory = "spram"``) the walker reads two words,
    then leaves the next two cycles to their write-backs.

    Attributes
    ----------
    error : the error unit's per-neuron side (start, neuron, membrane, spike in; done,
        error out), driven from here
    tick : In(32)
    """

    def __init__(self, config, layout):
        self._config, self._layout = config, layout
        params = config.learning
        # Single-port weights: a read must never share a cycle with a write-back.
        self._single_port = config.weight_memory == "spram"
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
        lanes = config.lanes
        lane_bits = (lanes - 1).bit_length()
        max_post, max_pre = max(config.neuron_layers), max(config.layers[:-1])
        m = Module()
        # The error side works on `group`, the update walker on `update_group` (the group
        # handed over before it).
        group = Signal.like(layer.row_words)
        update_group = Signal.like(layer.row_words)
        lane = Signal(range(lanes))
        neuron = Signal(range(max_post + lanes))
        pre = Signal(range(max_pre + 2))            # input (the bias row is n_pre)
        weight_addr = Signal(range(layout.weight_words + max_post + 1))
        # Global index of the word's first synapse (lane 0).
        synapse = Signal(range(synapse_offsets(config)[-1] + max_post + lanes + 1))
        draws = Signal(range(max_pre + 2))          # draw rows issued for the group
        active = Signal()
        draw_active = Signal()
        self._threefry = ([Threefry2x32((config.seed, ROUNDING_STREAM), params.prng_rounds,
                                        rounds_per_stage=min(prng_rounds_per_stage(config),
                                                             params.prng_rounds))
                           for _ in range(draw_blocks(config, layout))]
                          if self._stochastic else [])
        latency = self._threefry[0].latency if self._threefry else 1
        draw_lead = Signal(range(max(latency, 1)))
        pending = [Signal(signed(params.error_bits), name=f"pending_{k}") for k in range(lanes)]
        errors = [Signal(signed(params.error_bits), name=f"error_{k}") for k in range(lanes)]
        any_error = Signal()                        # some lane of the group has e_q != 0
        issue = Signal()                            # stage A of the update pipeline
        in_flight = Signal()
        updating = Signal()                         # the update walker holds a group
        hand_over = Signal()                        # a group starts its update
        rows = layer.n_pre + 1 if params.learn_bias else layer.n_pre
        is_bias_row = pre == layer.n_pre
        # Block RAM: the next group is handed over as soon as the draw walker is free, so
        # its draws start right after the last ones of the group before and its reads
        # right after that group's last read (the reads trail the draws by latency - 1
        # cycles). The update walker takes it from a one-group queue latency - 2 cycles
        # after the hand-over (at once without a lead). SPRAM keeps one group at a time:
        # its walkers' four-cycle pace restarts with each group.
        overlap = not self._single_port
        queue = overlap and latency > 1
        queued = Signal()
        queued_group = Signal.like(group)
        queued_errors = [Signal(signed(params.error_bits), name=f"queued_error_{k}")
                         for k in range(lanes)]
        queued_lead = Signal(range(max(latency - 1, 1)))
        free = Signal()                             # a group can be handed over
        m.d.comb += [neuron.eq(Cat(lane, group) if lanes > 1 else group),
                     updating.eq(active | draw_active | in_flight | queued),
                     free.eq(~draw_active & ~queued if overlap else ~updating)]
        last_lane = (lane == lanes - 1) | (neuron == layer.n_post - 1)

        def clear_group():
            m.d.sync += [lane.eq(0), any_error.eq(0)]
            m.d.sync += [error.eq(0) for error in pending]

        # The error side: each neuron's e_q into `pending`; a complete group is handed to
        # the update walker as soon as it is free, and the next group's errors are formed
        # while it walks.
        with m.FSM(name="learning"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += group.eq(0)
                    clear_group()
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
                    m.d.sync += [Array(pending)[lane].eq(self.error.error),
                                 any_error.eq(any_error | (self.error.error != 0))]
                    with m.If(~last_lane):
                        m.d.sync += lane.eq(lane + 1)
                        m.next = "ERROR_READ"
                    with m.Else():
                        m.next = "HAND_OVER"
            with m.State("HAND_OVER"):
                with m.If(free):
                    with m.If(any_error):
                        m.d.comb += hand_over.eq(1)
                        m.d.sync += [
                            synapse.eq(layer.synapse_base + (group << lane_bits)), draws.eq(0),
                            draw_active.eq(1),
                        ]
                        if queue:
                            m.d.sync += [queued.eq(1), queued_group.eq(group),
                                         queued_lead.eq(latency - 2)]
                            m.d.sync += [error.eq(value)
                                         for error, value in zip(queued_errors, pending)]
                        else:
                            m.d.sync += [error.eq(value) for error, value in zip(errors, pending)]
                            m.d.sync += [
                                update_group.eq(group), active.eq(1), pre.eq(0),
                                weight_addr.eq(layer.weight_base + group),
                                draw_lead.eq(latency - 1),
                            ]
                    with m.If(group == layer.row_words - 1):
                        m.next = "DRAIN"
                    with m.Else():
                        m.d.sync += group.eq(group + 1)
                        clear_group()
                        m.next = "ERROR_READ"
            with m.State("DRAIN"):
                with m.If(~updating):
                    m.next = "LAYER_DONE"
            with m.State("LAYER_DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"

        # The update walker: the draw walker runs ahead by latency - 1 rows. In single-port
        # SPRAM both walkers step every other cycle: a word read in cycle c is written back
        # in cycle c + 3 (UpdateUnit.latency is even), which reads nothing. The two
        # walkers count their cycles from their own first row, so the draws stay exactly
        # latency - 1 cycles ahead of the reads (the draw pipelines' inputs hold still
        # in the other cycles).
        if self._single_port:
            assert UpdateUnit.latency % 2 == 0, "reads and write-backs would share a cycle"
            draw_phase, issue_phase = Signal(), Signal()
            draw_step, issue_step = ~draw_phase, ~issue_phase
            with m.If(hand_over):
                m.d.sync += [draw_phase.eq(0), issue_phase.eq(0)]
            with m.Else():
                with m.If(draw_active):
                    m.d.sync += draw_phase.eq(~draw_phase)
                with m.If(active & (draw_lead == 0)):
                    m.d.sync += issue_phase.eq(~issue_phase)
        else:
            draw_step = issue_step = Const(1)
        with m.If(draw_active & draw_step):
            m.d.sync += [synapse.eq(synapse + layer.n_post), draws.eq(draws + 1)]
            with m.If(draws == rows - 1):
                m.d.sync += draw_active.eq(0)
        with m.If(draw_lead != 0):
            m.d.sync += draw_lead.eq(draw_lead - 1)
        with m.Elif(active & issue_step):
            m.d.comb += issue.eq(1)
            m.d.sync += [pre.eq(pre + 1), weight_addr.eq(weight_addr + layer.row_words)]
            with m.If(pre == rows - 1):
                m.d.sync += active.eq(0)
        if queue:
            # The queued group's first read comes latency - 1 cycles after its first draw;
            # the group before has issued its last read by then.
            with m.If(queued):
                with m.If(queued_lead != 0):
                    m.d.sync += queued_lead.eq(queued_lead - 1)
                with m.Else():
                    m.d.sync += [queued.eq(0), update_group.eq(queued_group), active.eq(1),
                                 pre.eq(0), weight_addr.eq(layer.weight_base + queued_group)]
                    m.d.sync += [error.eq(value) for error, value in zip(errors, queued_errors)]

        with m.If(issue):
            m.d.comb += [self.bias_read.valid.eq(1),
                         self.bias_read.addr.eq(layer.group_base + update_group)]
            # The bias row has no weight or trace word: reading one there would address
            # past the last layer's end of those memories.
            with m.If(~is_bias_row):
                m.d.comb += [self.weights_read.valid.eq(1), self.weights_read.addr.eq(weight_addr),
                             self.traces_read.valid.eq(1),
                             self.traces_read.addr.eq(layer.row_base + pre)]
        self._update_pipeline(m, issue, in_flight, is_bias_row, update_group, weight_addr,
                              synapse, errors)
        return m

    def _update_pipeline(self, m, issue, in_flight, is_bias_row, group, weight_addr, synapse,
                         errors):
        """The draws, the update units and the write-back (the pipeline never stalls)."""
        config, layout, layer = self._config, self._layout, self.layer
        lanes = config.lanes
        max_post = max(config.neuron_layers)
        threefry = self._threefry
        latency = threefry[0].latency if threefry else 1
        address = Signal(range(max(layout.weight_words, layout.accumulator_words) + max_post + 1))
        m.d.comb += address.eq(Mux(is_bias_row, layer.group_base + group, weight_addr))
        if threefry:
            # Lane k's draw is field (synapse & 3) + k of the blocks synapse >> 2 onwards.
            fields = []
            for index, generator in enumerate(threefry):
                m.submodules[f"threefry_{index}" if len(threefry) > 1 else "threefry"] = generator
                m.d.comb += [generator.counter0.eq(self.tick),
                             generator.counter1.eq((synapse >> 2) + index)]
                fields.append(Cat(generator.word0, generator.word1))
            first = delayed(m, synapse[:2], latency, "update_field")
            blocks = data.ArrayLayout(RANDOM_DRAW_BITS, 4 * len(threefry))(Cat(*fields))
            lane_draws = [blocks[first + k] for k in range(lanes)]
        else:
            lane_draws = [0] * lanes
        # The read data are on the ports one cycle after the read (the update units' first
        # stage); the new words are written UpdateUnit.latency cycles later.
        unit_latency = UpdateUnit.latency
        z1_bias = delayed(m, is_bias_row, 1, "update_bias")
        z1_valid = delayed(m, issue, 1, "update_valid")
        stage_valid = [z1_valid]
        for stage in range(unit_latency):
            stage_valid.append(delayed(m, stage_valid[-1], 1, f"update_valid_{stage + 2}"))
        z_valid = stage_valid[-1]
        z_bias = delayed(m, z1_bias, unit_latency, "update_write_bias")
        z_address = delayed(m, address, 1 + unit_latency, "update_address")
        # A lane writes only where its neuron has a nonzero error (padding lanes have
        # none). The errors are those of the word in the first update stage; the next
        # group's may replace them before the write-back, so the enables are delayed.
        enable = delayed(m, Cat(*(error != 0 for error in errors)), unit_latency,
                         "update_enable")
        new_words, saturated = [], []
        for k in range(lanes):
            m.submodules[f"unit_{k}" if lanes > 1 else "unit"] = unit = UpdateUnit(config)
            m.d.comb += [
                unit.weight.eq(Mux(z1_bias, self.bias_read.data[k], self.weights_read.data[k])),
                unit.trace.eq(Mux(z1_bias, 1 << config.learning.trace_bits,
                                  self.traces_read.data.p)),
                unit.error.eq(errors[k]),
                unit.draw.eq(lane_draws[k]),
                unit.shift.eq(layer.lr_shift),
            ]
            new_words.append(unit.new_weight)
            saturated.append(unit.saturated & enable[k])
        m.d.comb += in_flight.eq(Cat(*stage_valid).any())
        with m.If(z_valid):
            with m.If(z_bias):
                m.d.comb += [self.bias_write.addr.eq(z_address),
                             self.bias_write.data.eq(Cat(*new_words)), self.bias_write.en.eq(enable)]
            with m.Else():
                m.d.comb += [self.weights_write.addr.eq(z_address),
                             self.weights_write.data.eq(Cat(*new_words)),
                             self.weights_write.en.eq(enable)]
            m.d.comb += self.saturated.eq(Cat(*saturated).any())
        return m
