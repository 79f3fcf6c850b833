"""The DECOLLE core: dense LIF layers with presynaptic traces that learn on chip.

It runs the tick of :mod:`plasticore.golden.decolle` (:meth:`GoldenDecolle.tick_events`)
bit for bit. How the hardware does it, one synapse per cycle:

Phases
    ``INPUT``: an input event ``j < n_inputs`` sets bit ``j`` of the input-spike memory; an
    event ``n_inputs + k`` (``k < K``) sets bit ``k`` of the label; any other address is
    dropped and counted. The host port is served between events (a write inside an open
    tick is refused: :mod:`plasticore.hdl.shell`). ``end_of_tick`` decides
    whether this tick learns (``learn`` register set, ``sample_tick >= burn_in``, a label
    arrived) and starts layer 1. Then for each layer:

    ``TRACE``: one input per cycle, Q and P are read, updated (:class:`TraceUnit`) and
    written back (step 1); the layer's input spikes come from the input-spike memory
    (cleared as it is read) or from the previous layer's spike bits.
    ``MEMBRANE``: a walker visits neuron by neuron, input by input, reading ``W[j, i]`` and
    ``P[j]``; a product register and an accumulator form the exact dot product (one
    synapse per cycle, the pipeline never drains between neurons). At each neuron's last
    input its sum enters three finalize stages: the first reads the neuron's state and
    bias, the next two run :class:`NeuronUnit` (steps 2 to 4, two stages); the last writes
    U, R and S back and, for a spike, adds the neuron's readout row to the readout sums
    (step 5a, event-driven).
    ``EMIT``: the layer's spike bits are read in neuron order and each spike is sent on
    ``o_events`` (the walk stalls while the output is not ready).
    ``ERROR`` and ``UPDATE``, on learning ticks only: for each neuron, :class:`ErrorUnit`
    computes ``e_q`` (steps 5a, 5b); for a nonzero ``e_q`` the walker reads the neuron's
    column (``W[j, i]``, ``P[j]``, the bias last with ``learn_bias``) one synapse per cycle;
    the Threefry pipeline draws each synapse's rounding bits ahead of its read, so that
    draw and data meet in :class:`UpdateUnit` (two stages), which writes the new weight two
    cycles after the read (step 5c). Cycles per tick: ``docs/decolle.md``, "Hardware".

    ``END_TICK`` sends the end-of-tick event and advances ``tick`` and ``sample_tick``.
Host port
    Served only in ``INPUT``: one cycle to decode and access, one to answer with ``ack``.
    The memory map is :class:`plasticore.layout.DecolleLayout`. Addresses that name
    nothing, read-only registers and regions, and values that do not fit their field are
    answered with ``error`` and change nothing.
A new sample
    Writing ``sample_tick`` sets ``fresh``: until the end of the next tick every read of
    the old state (traces, refractory states, spikes, membranes) sees zero, and each entry
    is rewritten during that tick (the passes are dense), so no clearing pass is needed.
    ``fresh`` is also set by reset: the memories start as the golden model does.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data
from amaranth.lib.memory import Memory

from plasticore.config import ConfigError, CoreConfig
from plasticore.rules.decolle import ROUNDING_STREAM, SAMPLE_TICK_MAX, synapse_offsets
from plasticore.layout import (CORE_MAGIC, DECOLLE_FLAG_MEMBRANE_SATURATED,
                               DECOLLE_FLAG_WEIGHT_SATURATED, REGION_BIAS, REGION_MEMBRANE,
                               REGION_REFRACTORY, REGION_REGISTERS, REGION_SPIKES,
                               REGION_TRACE_P, REGION_TRACE_Q, REGION_WEIGHTS, DecolleLayout)
from plasticore.rules import rule_params
from plasticore.rules.decolle import RANDOM_DRAW_BITS
from .arith import fits_signed
from .decolle_units import (ErrorUnit, NeuronUnit, TraceUnit, UpdateUnit, dot_shape,
                            refractory_shape, trace_shape)
from .interfaces import ADDRESS_BITS
from .prng import Threefry2x32, delayed
from .shell import (CoreShell, HostDecoder, SharedNames, count_saturating, open_tick, select_constants,
                    send_end_of_tick, serve_memory, serve_register_write, weight_word_decoder)
from .synapse import weight_word_layout

__all__ = ["DecolleCore"]

BURN_IN_MAX = (1 << 16) - 1


class DecolleCore(CoreShell):
    """A DECOLLE learning core built from a :class:`CoreConfig` with ``rule = "decolle"``.

    The parameters and ports are those of :class:`plasticore.hdl.shell.CoreShell` (input
    events carry labels too); the host memory map is :class:`plasticore.layout.DecolleLayout`.
    """

    layout_class = DecolleLayout

    @classmethod
    def check_config(cls, config: CoreConfig) -> None:
        super().check_config(config)
        rule_params(config, "decolle", "the DECOLLE core")
        if config.lanes != 1:
            raise ConfigError("lanes", config.lanes,
                              'must be 1 for rule = "decolle" (the core does one synapse per cycle)')
        n_classes = config.layers[-1]
        if config.n_inputs + n_classes > 1 << ADDRESS_BITS:
            raise ConfigError("layers", list(config.layers),
                              f"n_inputs + K = {config.n_inputs + n_classes}: the label addresses "
                              f"n_inputs + k must stay below 2**{ADDRESS_BITS}")

    def elaborate(self, platform):
        config, layout = self._config, self._layout
        params = config.learning
        tb = params.trace_bits
        n_layers = len(layout.layers)
        n_classes = config.layers[-1]
        n_inputs = config.n_inputs
        max_post = max(config.neuron_layers)
        max_pre = max(config.layers[:-1])
        offsets = synapse_offsets(config)
        m = Module()
        # The parts below share their signals through `ns`, in this order.
        ns = SharedNames()
        ns.keep(locals())

        self._memories(m, ns)
        self._registers(m, ns)
        self._update_pipeline(m, ns)
        self._host_decoder(m, ns)
        with m.FSM(name="phase"):
            self._input_and_trace_phases(m, ns)
            self._membrane_phases(m, ns)
            self._learning_phases(m, ns)
            self._tick_and_host_phases(m, ns)
        return m

    def _memories(self, m, ns):
        """Add the weight, bias, trace, input-spike and state memories and the units."""
        (config, layout, n_inputs, params) = ns.take(
            "config", "layout", "n_inputs", "params")
        m.submodules.weights = weights = Memory(
            shape=weight_word_layout(config), depth=layout.weight_words, init=[])
        weights_wr = weights.write_port()
        weights_rd = weights.read_port()

        m.submodules.biases = biases = Memory(
            shape=signed(config.weight_bits), depth=layout.state_words, init=[])
        bias_wr = biases.write_port()
        bias_rd = biases.read_port()

        trace_word = data.StructLayout({"q": trace_shape(config), "p": trace_shape(config)})
        m.submodules.traces = traces = Memory(shape=trace_word, depth=layout.rows, init=[])
        traces_wr = traces.write_port()
        traces_rd = traces.read_port()

        m.submodules.input_spikes = input_spikes = Memory(shape=1, depth=n_inputs, init=[])
        input_wr = input_spikes.write_port()
        input_rd = input_spikes.read_port()

        state_word = data.StructLayout({"u": signed(config.membrane_bits),
                                        "r": refractory_shape(config), "s": 1})
        m.submodules.state = state = Memory(shape=state_word, depth=layout.state_words, init=[])
        state_wr = state.write_port()
        state_rd = state.read_port()

        m.submodules.trace_unit = trace_unit = TraceUnit(config)
        m.submodules.neuron_unit = neuron_unit = NeuronUnit(config)
        m.submodules.error_unit = error_unit = ErrorUnit(config)
        m.submodules.update_unit = update_unit = UpdateUnit(config)
        if params.stochastic_rounding:
            m.submodules.threefry = threefry = Threefry2x32(
                (config.seed, ROUNDING_STREAM), params.prng_rounds,
                rounds_per_stage=min(2, params.prng_rounds))
            draw_latency = threefry.latency
        else:
            threefry = None
            draw_latency = 1

        ns.keep(locals())

    def _registers(self, m, ns):
        """Add the registers, the per-layer constants, the walkers and pipeline registers."""
        (config, error_unit, layout, max_post, max_pre, n_classes, n_layers, offsets, params) = ns.take(
            "config", "error_unit", "layout", "max_post", "max_pre", "n_classes",
            "n_layers", "offsets", "params")
        tick = Signal(32)
        dropped_events = Signal(32)
        flags = Signal(2)
        learn_enable = Signal()
        burn_in = Signal(16, init=params.burn_in)
        sample_tick = Signal(16)
        lr_shifts = [Signal(range(RANDOM_DRAW_BITS + 1), init=shift, name=f"lr_shift_{index + 1}")
                     for index, shift in enumerate(params.lr_shifts)]
        # Reset and a new sample: the old state reads as zero until the next tick rewrites it.
        fresh = Signal(init=1)
        target = Signal(n_classes)
        learning = Signal()                        # this tick learns
        layer = Signal(range(n_layers))

        # Constants of the current layer.
        n_pre = Signal(range(max_pre + 1))
        n_post = Signal(range(max_post + 1))
        row_base = Signal(range(layout.rows + 1))
        weight_base = Signal(range(layout.weight_words + 1))
        state_base = Signal(range(layout.state_words + 1))
        previous_base = Signal(range(layout.state_words + 1))   # state of the layer below
        synapse_base = Signal(range(offsets[-1] + 1))
        is_first = Signal()
        is_last = Signal()
        lr_shift = Signal(range(RANDOM_DRAW_BITS + 1))
        select_constants(
            m, layer, (n_pre, n_post, row_base, weight_base, state_base, previous_base,
                       synapse_base, is_first, is_last, lr_shift),
            [(lay.n_pre, lay.n_post, lay.row_base, lay.weight_base, lay.state_base,
              layout.layers[index - 1].state_base if index else 0, offsets[index],
              index == 0, index == n_layers - 1, lr_shifts[index])
             for index, lay in enumerate(layout.layers)])
        m.d.comb += [error_unit.layer.eq(layer), error_unit.target.eq(target)]

        walk_active = Signal()
        walk_i = Signal(range(max_post + 1))        # neuron
        walk_j = Signal(range(max_pre + 2))         # input (the bias row is n_pre)
        walk_weight = Signal(range(layout.weight_words + max_post + 1))
        walk_index = Signal(range(offsets[-1] + max_post + 1))   # global synapse index
        walk_draws = Signal(range(max_pre + 2))     # draws issued for the column

        # TRACE and EMIT: stage B has the data of the address issued one cycle earlier.
        b_valid = Signal()
        b_index = Signal(range(max(max_pre, max_post) + 1))

        # MEMBRANE: B (read data) -> C (product) -> accumulator -> F1 (state reads) -> F2.
        mb_valid, mb_first, mb_last = Signal(), Signal(), Signal()
        mb_neuron = Signal(range(max_post))
        product_shape = signed(config.weight_bits + trace_shape(config).width)
        mc_valid, mc_first, mc_last = Signal(), Signal(), Signal()
        mc_neuron = Signal(range(max_post))
        mc_product = Signal(product_shape)
        accumulator = Signal(dot_shape(config))
        f1_valid, f2_valid, f3_valid = Signal(), Signal(), Signal()
        f1_neuron, f2_neuron = Signal(range(max_post)), Signal(range(max_post))
        f3_neuron = Signal(range(max_post))
        f1_dot, f2_dot = Signal(dot_shape(config)), Signal(dot_shape(config))

        # ERROR / UPDATE.
        error_value = Signal(signed(params.error_bits))
        u_valid = Signal()       # issued this cycle (stage A of the update pipeline)
        update_in_flight = Signal()

        ns.keep(locals())

    def _update_pipeline(self, m, ns):
        """Add the output stream's payload and the weight update pipeline (the draws never stall)."""
        (b_index, bias_rd, bias_wr, draw_latency, error_value, flags, layer, layout, lr_shift,
         max_post, n_pre, state_base, tb, threefry, tick, traces_rd, u_valid, update_in_flight,
         update_unit, walk_i, walk_index, walk_j, walk_weight, weights_rd, weights_wr) = ns.take(
            "b_index", "bias_rd", "bias_wr", "draw_latency", "error_value", "flags",
            "layer", "layout", "lr_shift", "max_post", "n_pre", "state_base", "tb",
            "threefry", "tick", "traces_rd", "u_valid", "update_in_flight", "update_unit",
            "walk_i", "walk_index", "walk_j", "walk_weight", "weights_rd", "weights_wr")
        m.d.comb += [
            self.o_events.payload.neuron.eq(b_index),
            self.o_events.payload.layer.eq(layer + 1),
            self.o_events.payload.tick.eq(tick),
        ]

        # ---- update pipeline (runs in UPDATE; the draws never stall) ----------------------
        # The draws are issued `draw_latency - 1` cycles ahead of the memory reads of the
        # same synapses, so that a draw and its weight and trace arrive together one cycle
        # after the read: only addresses are delayed.
        draw_active = Signal()
        draw_lead = Signal(range(max(draw_latency, 1)))
        is_bias_row = walk_j == n_pre
        a_bias = Signal()
        a_address = Signal(range(max(layout.weight_words, layout.state_words) + max_post + 1))
        m.d.comb += [
            a_bias.eq(is_bias_row),
            a_address.eq(Mux(is_bias_row, state_base + walk_i, walk_weight)),
        ]
        if threefry is not None:
            m.d.comb += [threefry.counter0.eq(tick), threefry.counter1.eq(walk_index >> 2)]
        z_field = delayed(m, walk_index[:2], draw_latency, "update_field")
        # The read data are on the ports one cycle after the read (stage Z1, the update
        # unit's first stage); the new weight is written one cycle later (Z2).
        z1_bias = delayed(m, a_bias, 1, "update_bias")
        z1_valid = delayed(m, u_valid, 1, "update_valid")
        z_valid = delayed(m, z1_valid, 1, "update_write")
        z_bias = delayed(m, z1_bias, 1, "update_write_bias")
        z_address = delayed(m, a_address, 2, "update_address")
        if threefry is not None:
            fields = Cat(threefry.word0, threefry.word1)
            draw = fields.word_select(z_field, RANDOM_DRAW_BITS)
        else:
            draw = 0
        m.d.comb += [
            update_unit.weight.eq(Mux(z1_bias, bias_rd.data, weights_rd.data[0])),
            update_unit.trace.eq(Mux(z1_bias, 1 << tb, traces_rd.data.p)),
            update_unit.error.eq(error_value),
            update_unit.draw.eq(draw),
            update_unit.shift.eq(lr_shift),
        ]
        m.d.comb += update_in_flight.eq(z1_valid | z_valid)
        with m.If(z_valid):
            with m.If(z_bias):
                m.d.comb += [bias_wr.addr.eq(z_address), bias_wr.data.eq(update_unit.new_weight),
                             bias_wr.en.eq(1)]
            with m.Else():
                m.d.comb += [weights_wr.addr.eq(z_address),
                             weights_wr.data.eq(Cat(update_unit.new_weight)),
                             weights_wr.en.eq(1)]
            with m.If(update_unit.saturated):
                m.d.sync += flags.eq(flags | DECOLLE_FLAG_WEIGHT_SATURATED)

        ns.keep(locals())

    def _host_decoder(self, m, ns):
        """Add the host decoder's address decode and register table."""
        (burn_in, config, dropped_events, flags, fresh, layout, learn_enable, lr_shifts,
         sample_tick) = ns.take(
            "burn_in", "config", "dropped_events", "flags", "fresh", "layout",
            "learn_enable", "lr_shifts", "sample_tick")
        host = self.host
        decoder = HostDecoder(host, layout, layout.offset_bits)
        offset, host_error = decoder.offset, decoder.error
        weight_word, weight_valid, _ = weight_word_decoder(m, layout, offset)
        neuron_valid = offset < layout.state_words
        row_valid = offset < layout.rows
        write_value = host.write_data
        fits_weight = Signal()
        m.d.comb += fits_weight.eq(fits_signed(write_value, config.weight_bits))
        registers = layout.registers
        register_writes = {
            "dropped_events": (None, dropped_events.eq(0)),
            "flags": (None, flags.eq(flags & ~write_value[:2])),
            "learn": (write_value <= 1, learn_enable.eq(write_value[0])),
            "burn_in": (write_value <= BURN_IN_MAX, burn_in.eq(write_value)),
            "sample_tick": (None, [sample_tick.eq(0), fresh.eq(1)]),
        }
        register_writes.update({
            f"lr_shift_{index + 1}": (write_value <= RANDOM_DRAW_BITS, signal.eq(write_value))
            for index, signal in enumerate(lr_shifts)})

        payload = self.i_events.payload
        tick_is_open = open_tick(m, self.i_events)
        ns.keep(locals())

    def _input_and_trace_phases(self, m, ns):
        """Add the phases INPUT and TRACE."""
        (b_index, b_valid, burn_in, dropped_events, error_unit, fresh, host, input_rd, input_wr,
         is_first, layer, learn_enable, learning, n_classes, n_inputs, n_pre, payload,
         previous_base, row_base, sample_tick, state_rd, target, trace_unit, traces_rd,
         traces_wr, walk_active, walk_i, walk_j, walk_weight, weight_base) = ns.take(
            "b_index", "b_valid", "burn_in", "dropped_events", "error_unit", "fresh",
            "host", "input_rd", "input_wr", "is_first", "layer", "learn_enable", "learning",
            "n_classes", "n_inputs", "n_pre", "payload", "previous_base", "row_base",
            "sample_tick", "state_rd", "target", "trace_unit", "traces_rd", "traces_wr",
            "walk_active", "walk_i", "walk_j", "walk_weight", "weight_base")
        with m.State("INPUT"):
            with m.If(host.strobe):
                m.next = "HOST_ACCESS"
            with m.Elif(self.i_events.valid):
                m.d.comb += self.i_events.ready.eq(1)
                with m.If(payload.end_of_tick):
                    m.d.sync += [
                        learning.eq(learn_enable & (sample_tick >= burn_in) & target.any()),
                        layer.eq(0),
                        walk_active.eq(1),
                        walk_j.eq(0),
                    ]
                    m.next = "TRACE"
                with m.Elif(payload.address < n_inputs):
                    m.d.comb += [input_wr.addr.eq(payload.address), input_wr.data.eq(1),
                                 input_wr.en.eq(1)]
                with m.Elif(payload.address < n_inputs + n_classes):
                    label = (payload.address - n_inputs)[:max(1, (n_classes - 1).bit_length())]
                    m.d.sync += target.bit_select(label, 1).eq(1)
                with m.Else():
                    m.d.sync += count_saturating(dropped_events)

        with m.State("TRACE"):
            # Stage A: read the traces and the spike of input walk_j.
            with m.If(walk_active):
                m.d.comb += traces_rd.addr.eq(row_base + walk_j)
                # Only the memory the spike comes from is read: the other may be
                # shallower than this layer's inputs.
                with m.If(is_first):
                    m.d.comb += input_rd.addr.eq(walk_j)
                with m.Else():
                    m.d.comb += state_rd.addr.eq(previous_base + walk_j)
                m.d.sync += walk_j.eq(walk_j + 1)
                with m.If(walk_j == n_pre - 1):
                    m.d.sync += walk_active.eq(0)
            m.d.sync += [b_valid.eq(walk_active), b_index.eq(walk_j)]
            # Stage B: update and write back; the input spikes are cleared for the next tick.
            m.d.comb += [
                trace_unit.q.eq(Mux(fresh, 0, traces_rd.data.q)),
                trace_unit.p.eq(Mux(fresh, 0, traces_rd.data.p)),
                trace_unit.spike.eq(Mux(is_first, input_rd.data, state_rd.data.s)),
            ]
            with m.If(b_valid):
                m.d.comb += [
                    traces_wr.addr.eq(row_base + b_index),
                    traces_wr.data.q.eq(trace_unit.new_q),
                    traces_wr.data.p.eq(trace_unit.new_p),
                    traces_wr.en.eq(1),
                    input_wr.addr.eq(b_index),
                    input_wr.data.eq(0),
                    input_wr.en.eq(is_first),
                ]
            with m.If(~walk_active & ~b_valid):
                m.d.sync += [walk_active.eq(1), walk_i.eq(0), walk_j.eq(0),
                             walk_weight.eq(weight_base)]
                m.d.comb += error_unit.clear.eq(1)
                m.next = "MEMBRANE"

        ns.keep(locals())

    def _membrane_phases(self, m, ns):
        """Add the phases MEMBRANE and EMIT."""
        (accumulator, b_index, b_valid, bias_rd, error_unit, f1_dot, f1_neuron, f1_valid,
         f2_dot, f2_neuron, f2_valid, f3_neuron, f3_valid, flags, fresh, is_last, layer,
         learning, mb_first, mb_last, mb_neuron, mb_valid, mc_first, mc_last, mc_neuron,
         mc_product, mc_valid, n_post, n_pre, neuron_unit, row_base, state_base, state_rd,
         state_wr, traces_rd, walk_active, walk_i, walk_j, walk_weight, weight_base, weights_rd) = ns.take(
            "accumulator", "b_index", "b_valid", "bias_rd", "error_unit", "f1_dot",
            "f1_neuron", "f1_valid", "f2_dot", "f2_neuron", "f2_valid", "f3_neuron",
            "f3_valid", "flags", "fresh", "is_last", "layer", "learning", "mb_first",
            "mb_last", "mb_neuron", "mb_valid", "mc_first", "mc_last", "mc_neuron",
            "mc_product", "mc_valid", "n_post", "n_pre", "neuron_unit", "row_base",
            "state_base", "state_rd", "state_wr", "traces_rd", "walk_active", "walk_i",
            "walk_j", "walk_weight", "weight_base", "weights_rd")
        with m.State("MEMBRANE"):
            # Stage A: read W[j, i] and P[j]; the walker runs input by input, then neuron
            # by neuron (the weights of a neuron are n_post words apart).
            last_input = walk_j == n_pre - 1
            with m.If(walk_active):
                m.d.comb += [
                    weights_rd.addr.eq(walk_weight),
                    traces_rd.addr.eq(row_base + walk_j),
                ]
                with m.If(last_input):
                    m.d.sync += [walk_j.eq(0), walk_i.eq(walk_i + 1),
                                 walk_weight.eq(weight_base + walk_i + 1)]
                    with m.If(walk_i == n_post - 1):
                        m.d.sync += walk_active.eq(0)
                with m.Else():
                    m.d.sync += [walk_j.eq(walk_j + 1), walk_weight.eq(walk_weight + n_post)]
            m.d.sync += [mb_valid.eq(walk_active), mb_first.eq(walk_j == 0),
                         mb_last.eq(last_input), mb_neuron.eq(walk_i)]
            # Stage B: the product.
            m.d.sync += [mc_valid.eq(mb_valid), mc_first.eq(mb_first), mc_last.eq(mb_last),
                         mc_neuron.eq(mb_neuron),
                         mc_product.eq(weights_rd.data[0] * traces_rd.data.p)]
            # Stage C: accumulate; a neuron's last input hands its sum to finalize.
            total = Mux(mc_first, 0, accumulator) + mc_product
            with m.If(mc_valid):
                m.d.sync += accumulator.eq(total)
            m.d.sync += [f1_valid.eq(mc_valid & mc_last), f1_neuron.eq(mc_neuron),
                         f1_dot.eq(total)]
            # F1: read the neuron's state and bias.
            with m.If(f1_valid):
                m.d.comb += [state_rd.addr.eq(state_base + f1_neuron),
                             bias_rd.addr.eq(state_base + f1_neuron)]
            m.d.sync += [f2_valid.eq(f1_valid), f2_neuron.eq(f1_neuron), f2_dot.eq(f1_dot)]
            # F2 and F3: steps 2 to 4 (the neuron unit's two stages); F3 writes back and
            # adds the readout row of a spike.
            m.d.comb += [
                neuron_unit.dot.eq(f2_dot),
                neuron_unit.bias.eq(bias_rd.data),
                neuron_unit.refractory.eq(Mux(fresh, 0, state_rd.data.r)),
                neuron_unit.last_spike.eq(~fresh & state_rd.data.s),
            ]
            m.d.sync += [f3_valid.eq(f2_valid), f3_neuron.eq(f2_neuron)]
            with m.If(f3_valid):
                m.d.comb += [
                    state_wr.addr.eq(state_base + f3_neuron),
                    state_wr.data.u.eq(neuron_unit.membrane),
                    state_wr.data.r.eq(neuron_unit.new_refractory),
                    state_wr.data.s.eq(neuron_unit.spike),
                    state_wr.en.eq(1),
                    error_unit.add.eq(neuron_unit.spike),
                    error_unit.add_neuron.eq(f3_neuron),
                ]
                with m.If(neuron_unit.saturated):
                    m.d.sync += flags.eq(flags | DECOLLE_FLAG_MEMBRANE_SATURATED)
            with m.If(~walk_active & ~mb_valid & ~mc_valid & ~f1_valid & ~f2_valid
                      & ~f3_valid):
                m.d.sync += [walk_active.eq(1), walk_i.eq(0), b_valid.eq(0)]
                m.next = "EMIT"

        with m.State("EMIT"):
            # Stage A reads the spike bit of walk_i; stage B sends it. A spike the output
            # does not take holds both stages (the read port keeps its data).
            stall = b_valid & state_rd.data.s & ~self.o_events.ready
            m.d.comb += [
                state_rd.addr.eq(state_base + walk_i),
                state_rd.en.eq(~stall),
                self.o_events.valid.eq(b_valid & state_rd.data.s),
            ]
            with m.If(~stall):
                m.d.sync += [b_valid.eq(walk_active), b_index.eq(walk_i)]
                with m.If(walk_active):
                    m.d.sync += walk_i.eq(walk_i + 1)
                    with m.If(walk_i == n_post - 1):
                        m.d.sync += walk_active.eq(0)
                with m.If(~walk_active & ~b_valid):
                    m.d.sync += walk_i.eq(0)
                    with m.If(learning):
                        with m.If(error_unit.readout_saturated):
                            m.d.sync += flags.eq(flags | DECOLLE_FLAG_MEMBRANE_SATURATED)
                        m.next = "ERROR_READ"
                    with m.Elif(is_last):
                        m.next = "END_TICK"
                    with m.Else():
                        m.d.sync += [layer.eq(layer + 1), walk_active.eq(1), walk_j.eq(0)]
                        m.next = "TRACE"

        ns.keep(locals())

    def _learning_phases(self, m, ns):
        """Add the phases ERROR_READ, ERROR_START, ERROR_WAIT, UPDATE and LAYER_DONE."""
        (bias_rd, draw_active, draw_latency, draw_lead, error_unit, error_value, is_bias_row,
         is_last, layer, n_post, n_pre, params, row_base, state_base, state_rd, synapse_base,
         traces_rd, u_valid, update_in_flight, walk_active, walk_draws, walk_i, walk_index,
         walk_j, walk_weight, weight_base, weights_rd) = ns.take(
            "bias_rd", "draw_active", "draw_latency", "draw_lead", "error_unit",
            "error_value", "is_bias_row", "is_last", "layer", "n_post", "n_pre", "params",
            "row_base", "state_base", "state_rd", "synapse_base", "traces_rd", "u_valid",
            "update_in_flight", "walk_active", "walk_draws", "walk_i", "walk_index",
            "walk_j", "walk_weight", "weight_base", "weights_rd")
        with m.State("ERROR_READ"):
            m.d.comb += state_rd.addr.eq(state_base + walk_i)
            m.next = "ERROR_START"

        with m.State("ERROR_START"):
            m.d.comb += [
                error_unit.start.eq(1),
                error_unit.neuron.eq(walk_i),
                error_unit.membrane.eq(state_rd.data.u),
                error_unit.spike.eq(state_rd.data.s),
            ]
            m.next = "ERROR_WAIT"

        with m.State("ERROR_WAIT"):
            next_neuron = walk_i == n_post - 1
            with m.If(error_unit.done):
                with m.If(error_unit.error != 0):
                    m.d.sync += [
                        error_value.eq(error_unit.error),
                        walk_active.eq(1),
                        walk_j.eq(0),
                        walk_weight.eq(weight_base + walk_i),
                        walk_index.eq(synapse_base + walk_i),
                        walk_draws.eq(0),
                        draw_active.eq(1),
                        draw_lead.eq(draw_latency - 1),
                    ]
                    m.next = "UPDATE"
                with m.Elif(next_neuron):
                    m.next = "LAYER_DONE"
                with m.Else():
                    m.d.sync += walk_i.eq(walk_i + 1)
                    m.next = "ERROR_READ"

        with m.State("UPDATE"):
            rows = n_pre + 1 if params.learn_bias else n_pre
            # The draw walker runs ahead by draw_latency - 1 synapses.
            with m.If(draw_active):
                m.d.sync += [walk_index.eq(walk_index + n_post), walk_draws.eq(walk_draws + 1)]
                with m.If(walk_draws == rows - 1):
                    m.d.sync += draw_active.eq(0)
            with m.If(draw_lead != 0):
                m.d.sync += draw_lead.eq(draw_lead - 1)
            with m.Elif(walk_active):
                m.d.comb += [
                    u_valid.eq(1),
                    bias_rd.addr.eq(state_base + walk_i),
                ]
                # The bias row has no weight or trace word: reading one there would
                # address past the last layer's end of those memories.
                with m.If(~is_bias_row):
                    m.d.comb += [
                        weights_rd.addr.eq(walk_weight),
                        traces_rd.addr.eq(row_base + walk_j),
                    ]
                m.d.sync += [walk_j.eq(walk_j + 1), walk_weight.eq(walk_weight + n_post)]
                with m.If(walk_j == rows - 1):
                    m.d.sync += walk_active.eq(0)
            with m.Elif(~update_in_flight):
                with m.If(walk_i == n_post - 1):
                    m.next = "LAYER_DONE"
                with m.Else():
                    m.d.sync += walk_i.eq(walk_i + 1)
                    m.next = "ERROR_READ"

        with m.State("LAYER_DONE"):
            with m.If(is_last):
                m.next = "END_TICK"
            with m.Else():
                m.d.sync += [layer.eq(layer + 1), walk_active.eq(1), walk_j.eq(0)]
                m.next = "TRACE"

        ns.keep(locals())

    def _tick_and_host_phases(self, m, ns):
        """Add the phases END_TICK, HOST_ACCESS and HOST_ACK."""
        (bias_rd, bias_wr, burn_in, config, decoder, dropped_events, fits_weight, flags, fresh,
         host, host_error, layer, learn_enable, learning, lr_shifts, n_layers, neuron_valid,
         offset, register_writes, registers, row_valid, sample_tick, state_rd, target, tick,
         tick_is_open, traces_rd, weight_valid, weight_word, weights_rd, weights_wr, write_value) = ns.take(
            "bias_rd", "bias_wr", "burn_in", "config", "decoder", "dropped_events",
            "fits_weight", "flags", "fresh", "host", "host_error", "layer", "learn_enable",
            "learning", "lr_shifts", "n_layers", "neuron_valid", "offset",
            "register_writes", "registers", "row_valid", "sample_tick", "state_rd",
            "target", "tick", "tick_is_open", "traces_rd", "weight_valid", "weight_word",
            "weights_rd", "weights_wr", "write_value")
        with m.State("END_TICK"):
            with m.If(send_end_of_tick(m, self.o_events)):
                m.d.sync += [
                    tick.eq(tick + 1),
                    layer.eq(0),
                    fresh.eq(0),
                    target.eq(0),
                    learning.eq(0),
                ]
                with m.If(sample_tick != SAMPLE_TICK_MAX):
                    m.d.sync += sample_tick.eq(sample_tick + 1)
                m.next = "INPUT"

        with m.State("HOST_ACCESS"):
            m.next = "HOST_ACK"
            with decoder.decode(m, tick_is_open, ()):
                with m.Case(REGION_REGISTERS):
                    serve_register_write(m, host, host_error, offset, registers,
                                         register_writes)
                with m.Case(REGION_WEIGHTS):
                    serve_memory(m, host, host_error, weights_rd, weights_wr, weight_word,
                                 weight_valid, fits_weight, write_value[:config.weight_bits])
                with m.Case(REGION_BIAS):
                    serve_memory(m, host, host_error, bias_rd, bias_wr, offset,
                                 neuron_valid, fits_weight, write_value)
                with m.Case(REGION_MEMBRANE, REGION_REFRACTORY, REGION_SPIKES):
                    # Neuron state is computed, never written by the host.
                    m.d.comb += state_rd.addr.eq(offset)
                    with m.If(~neuron_valid | host.write):
                        m.d.sync += host_error.eq(1)
                with m.Case(REGION_TRACE_Q, REGION_TRACE_P):
                    m.d.comb += traces_rd.addr.eq(offset)
                    with m.If(~row_valid | host.write):
                        m.d.sync += host_error.eq(1)

        with m.State("HOST_ACK"):
            # The old state of a fresh sample reads as zero, as it will be used.
            register_values = [("magic", CORE_MAGIC), ("tick", tick),
                               ("dropped_events", dropped_events), ("flags", flags),
                               ("layers", n_layers), ("neurons", config.n_neurons),
                               ("learn", learn_enable), ("burn_in", burn_in),
                               ("sample_tick", sample_tick)]
            register_values += [(f"lr_shift_{index + 1}", signal)
                                for index, signal in enumerate(lr_shifts)]
            decoder.answer(m, registers, register_values, {
                REGION_WEIGHTS: weights_rd.data[0],
                REGION_BIAS: bias_rd.data,
                REGION_MEMBRANE: Mux(fresh, 0, state_rd.data.u),
                REGION_REFRACTORY: Mux(fresh, 0, state_rd.data.r),
                REGION_SPIKES: Mux(fresh, 0, state_rd.data.s),
                REGION_TRACE_Q: Mux(fresh, 0, traces_rd.data.q),
                REGION_TRACE_P: Mux(fresh, 0, traces_rd.data.p),
            })
            m.next = "INPUT"

        ns.keep(locals())
