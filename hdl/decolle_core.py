"""The DECOLLE core: dense LIF layers with presynaptic traces that learn on chip.

It runs the tick of :mod:`plasticore.golden.decolle` (:meth:`GoldenDecolle.tick_events`)
bit for bit. How the hardware does it, one weight word (``lanes`` synapses of consecutive
postsynaptic neurons, a *group*) per cycle:

Phases
    ``INPUT``: an input event ``j < n_inputs`` sets bit ``j`` of the input-spike memory; an
    event ``n_inputs + k`` (``k < K``) sets bit ``k`` of the label; any other address is
    dropped and counted. The host port is served between events (a write inside an open
    tick is refused: :mod:`plasticore.hdl.shell`). ``end_of_tick`` decides
    whether this tick learns (``learn`` register set, ``sample_tick >= burn_in``, a label
    arrived) and starts layer 1. Then for each layer:

    The passes are components (:mod:`plasticore.hdl.decolle_passes`), each started by the
    sequencer below and reporting when it is done; the memories they share are reached
    through one arbiter per port (:mod:`plasticore.hdl.ports`).

    ``MEMBRANE``: a walker visits group by group, input by input, reading the word
    ``W[j, group]`` and ``P[j]``; per lane a product register and an accumulator form the
    exact dot product (the pipeline never drains between groups). The first group's walk
    is also step 1: it reads Q and the input's spike too (the input-spike memory, cleared
    as it is read, or the previous layer's spike bits), updates both traces
    (:class:`TraceUnit`), writes them back and multiplies by the new P; the later groups
    read that P. At a group's last input its sums enter three finalize stages one neuron
    per cycle: the first reads the neuron's state and bias, the next two run
    :class:`NeuronUnit` (steps 2 to 4, two stages); the last writes U, R and S back and,
    for a spike, sends it on ``o_events`` and adds the neuron's readout row to the readout
    sums (step 5a, event-driven). A spike the output does not take holds the pass.
    ``ERROR`` and ``UPDATE``, on learning ticks only: for each neuron of a group,
    :class:`ErrorUnit` computes ``e_q`` (steps 5a, 5b); a group with a nonzero ``e_q`` is
    handed to the update walker, which reads the group's column of words (``W[j, group]``,
    ``P[j]``, the bias word last with ``learn_bias``) one word per cycle while the next
    group's errors are formed; the Threefry pipelines draw each word's rounding bits
    (one draw per lane) ahead of its read, so that draws and data meet in one
    :class:`UpdateUnit` per lane (two stages), which write the new word two cycles after
    the read (step 5c); lanes with a zero error are not written. Cycles per tick:
    ``docs/decolle.md``, "Hardware".

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

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib.memory import Memory

from plasticore.config import ConfigError, CoreConfig
from plasticore.layout import (CORE_MAGIC, DECOLLE_FLAG_MEMBRANE_SATURATED,
                               DECOLLE_FLAG_WEIGHT_SATURATED, REGION_BIAS, REGION_MEMBRANE,
                               REGION_REFRACTORY, REGION_REGISTERS, REGION_SPIKES,
                               REGION_TRACE_P, REGION_TRACE_Q, REGION_WEIGHTS, DecolleLayout)
from plasticore.rules import rule_params
from plasticore.rules.decolle import RANDOM_DRAW_BITS, SAMPLE_TICK_MAX, synapse_offsets
from .arith import fits_signed
from .decolle_passes import (LearningPass, MembranePass, layer_constants_layout,
                             state_word_layout, trace_word_layout)
from .decolle_units import ErrorUnit
from .interfaces import ADDRESS_BITS
from .ports import NO_COLLISION_LOGIC, UncollidedReadPort, access_for, share_port
from .projection import WeightBanks, registered_reads
from .synapse import weight_word_layout
from .shell import (CoreShell, HostDecoder, count_saturating, host_check, host_checked_writes,
                    host_read_data, open_tick, select_constants, send_end_of_tick,
                    serve_memory, serve_register_write, start_pulses, weight_word_decoder)

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
        n_classes = config.layers[-1]
        if config.n_inputs + n_classes > 1 << ADDRESS_BITS:
            raise ConfigError("layers", list(config.layers),
                              f"n_inputs + K = {config.n_inputs + n_classes}: the label addresses "
                              f"n_inputs + k must stay below 2**{ADDRESS_BITS}")

    def elaborate(self, platform):
        m = Module()
        p = SimpleNamespace()
        self._memories(m, p)
        self._parts(m, p)
        self._registers(m, p)
        self._connect_ports(m, p)
        self._host_decoder(m, p)
        with m.FSM(name="phase"):
            self._input_phase(m, p)
            self._layer_phases(m, p)
            self._tick_phase(m, p)
            self._host_phases(m, p)
        return m

    def _memories(self, m, p):
        """Add the weight (in banks), bias, trace, input-spike and state memories."""
        config, layout = self._config, self._layout
        # No read of a weight coincides with its write: no bypass is needed. In SPRAM the
        # update walker leaves the write-back cycles free (LearningPass).
        m.submodules.weights = weights = WeightBanks(config, layout.weight_words,
                                                     transparent=False, checks=self.checks)
        p.ports = {"weights": (weights.read, weights.write)}
        # Biases in words of `lanes`, like a row of weights: word group_base + i // lanes.
        for name, shape, depth in (
                ("bias", weight_word_layout(config), layout.accumulator_words),
                ("traces", trace_word_layout(config), layout.rows),
                ("input", 1, config.n_inputs),
                ("state", state_word_layout(config), layout.state_words)):
            # No read meets a write of its word (MembranePass, LearningPass say why). The
            # input spikes go in block RAM too, though one bit wide: in logic cells their
            # read is a multiplexer as wide as the inputs. So do the biases: in the ECP5's
            # LUT RAM their read is combinational, behind the address multiplexer.
            attrs = dict(NO_COLLISION_LOGIC, **({"ram_style": "block"}
                                                 if name in ("input", "bias") else {}))
            m.submodules[name] = memory = Memory(shape=shape, depth=depth, init=[],
                                                 attrs=attrs)
            write = memory.write_port(granularity=1 if name == "bias" else None)
            m.submodules[f"{name}_read"] = read = UncollidedReadPort(
                memory, write, checks=self.checks, name=name)
            p.ports[name] = (read, write)

    def _parts(self, m, p):
        """Add the passes and the error unit they share."""
        config, layout = self._config, self._layout
        m.submodules.membrane_pass = p.membrane = MembranePass(config, layout)
        m.submodules.learning_pass = p.learning_pass = LearningPass(config, layout)
        m.submodules.error_unit = p.error_unit = error_unit = ErrorUnit(config)
        m.d.comb += [
            error_unit.add.eq(p.membrane.readout.add),
            error_unit.add_neuron.eq(p.membrane.readout.add_neuron),
            error_unit.start.eq(p.learning_pass.error.start),
            error_unit.neuron.eq(p.learning_pass.error.neuron),
            error_unit.membrane.eq(p.learning_pass.error.membrane),
            error_unit.spike.eq(p.learning_pass.error.spike),
            p.learning_pass.error.done.eq(error_unit.done),
            p.learning_pass.error.error.eq(error_unit.error),
        ]

    def _registers(self, m, p):
        """Add the registers and the constants of the layer being worked on."""
        config, layout = self._config, self._layout
        params = config.learning
        n_layers = len(layout.layers)
        offsets = synapse_offsets(config)
        p.tick = Signal(32)
        p.dropped_events = Signal(32)
        p.flags = Signal(2)
        p.learn_enable = Signal()
        p.burn_in = Signal(16, init=params.burn_in)
        p.sample_tick = Signal(16)
        p.lr_shifts = [Signal(range(RANDOM_DRAW_BITS + 1), init=shift, name=f"lr_shift_{index + 1}")
                       for index, shift in enumerate(params.lr_shifts)]
        # Reset and a new sample: the old state reads as zero until the next tick rewrites it.
        p.fresh = Signal(init=1)
        p.target = Signal(config.layers[-1])
        p.learning = Signal()                        # this tick learns
        p.layer = Signal(range(n_layers))
        p.constants = Signal(layer_constants_layout(config, layout))
        constants = p.constants
        select_constants(
            m, p.layer, (constants.n_pre, constants.n_post, constants.row_base,
                         constants.row_words, constants.weight_base, constants.group_base,
                         constants.state_base, constants.previous_base,
                         constants.synapse_base, constants.is_first, constants.is_last,
                         constants.lr_shift),
            [(lay.n_pre, lay.n_post, lay.row_base, lay.row_words, lay.weight_base,
              lay.accumulator_base, lay.state_base, layout.layers[index - 1].state_base if index else 0, offsets[index],
              index == 0, index == n_layers - 1, p.lr_shifts[index])
             for index, lay in enumerate(layout.layers)])
        for part in (p.membrane, p.learning_pass):
            m.d.comb += part.layer.eq(constants)
        # The readout sums start from g in the cycle after the membrane pass starts: the
        # layer register takes the next layer in the cycle of the start.
        clear_readout = Signal()
        m.d.sync += clear_readout.eq(p.membrane.start)
        # The passes' start pulses come from registers set as their phases are entered, so
        # that no `done` or input decode reaches into a pass's registers in one cycle.
        pulses = start_pulses(m, {"membrane": p.membrane, "learning": p.learning_pass})
        p.membrane_start, p.learning_start = pulses["membrane"], pulses["learning"]
        m.d.comb += [
            p.error_unit.clear.eq(clear_readout),
            p.membrane.fresh.eq(p.fresh),
            p.learning_pass.tick.eq(p.tick),
            p.error_unit.layer.eq(p.layer), p.error_unit.target.eq(p.target),
            self.o_events.payload.neuron.eq(p.membrane.spikes.payload),
            self.o_events.payload.layer.eq(p.layer + 1),
            self.o_events.payload.tick.eq(p.tick),
            p.membrane.spikes.ready.eq(self.o_events.ready),
        ]
        with m.If(p.membrane.saturated):
            m.d.sync += p.flags.eq(p.flags | DECOLLE_FLAG_MEMBRANE_SATURATED)
        with m.If(p.learning_pass.saturated):
            m.d.sync += p.flags.eq(p.flags | DECOLLE_FLAG_WEIGHT_SATURATED)

    def _connect_ports(self, m, p):
        """Give every shared memory port its arbiter, and every part its access."""
        membrane, learning = p.membrane, p.learning_pass
        p.host_read = {name: access_for(read, path=f"host_{name}_read")
                       for name, (read, _) in p.ports.items() if name != "input"}
        p.host_write = {name: access_for(p.ports[name][1], path=f"host_{name}_write")
                        for name in ("weights", "bias")}
        p.input_write = access_for(p.ports["input"][1], path="input_write")
        reads = {
            "weights": [membrane.weights_read, learning.weights_read],
            "bias": [membrane.bias_read, learning.bias_read],
            "traces": [membrane.traces_read, learning.traces_read],
            "input": [membrane.input_read],
            "state": [membrane.state_read, learning.state_read],
        }
        writes = {
            "weights": [learning.weights_write, p.host_write["weights"]],
            "bias": [learning.bias_write, p.host_write["bias"]],
            "traces": [membrane.traces_write],
            "input": [membrane.input_write, p.input_write],
            "state": [membrane.state_write],
        }
        for name, (read, write) in p.ports.items():
            host = [p.host_read[name]] if name in p.host_read else []
            share_port(m, f"{name} read", read, reads[name] + host, checks=self.checks)
            share_port(m, f"{name} write", write, writes[name], checks=self.checks)

    def _input_phase(self, m, p):
        """Add INPUT: the input classifier; the end of tick starts layer 1."""
        config, payload = self._config, self.i_events.payload
        n_inputs, n_classes = config.n_inputs, config.layers[-1]
        with m.State("INPUT"):
            with m.If(self.host.strobe):
                m.next = "HOST_DECODE"
            with m.Elif(self.i_events.valid):
                m.d.comb += self.i_events.ready.eq(1)
                with m.If(payload.end_of_tick):
                    m.d.sync += [
                        p.learning.eq(p.learn_enable & (p.sample_tick >= p.burn_in)
                                      & p.target.any()),
                        p.layer.eq(0),
                    ]
                    m.d.sync += p.membrane_start.eq(1)
                    m.next = "MEMBRANE"
                with m.Elif(payload.address < n_inputs):
                    m.d.comb += [p.input_write.addr.eq(payload.address),
                                 p.input_write.data.eq(1), p.input_write.en.eq(1)]
                with m.Elif(payload.address < n_inputs + n_classes):
                    label = (payload.address - n_inputs)[:max(1, (n_classes - 1).bit_length())]
                    m.d.sync += p.target.bit_select(label, 1).eq(1)
                with m.Else():
                    m.d.sync += count_saturating(p.dropped_events)

    def _layer_phases(self, m, p):
        """Add MEMBRANE (traces, membranes and spikes out) and LEARN: each starts its pass
        and waits for it."""
        is_last = p.constants.is_last

        def next_layer():
            with m.If(is_last):
                m.next = "END_TICK"
            with m.Else():
                m.d.sync += p.layer.eq(p.layer + 1)
                m.d.sync += p.membrane_start.eq(1)
                m.next = "MEMBRANE"

        with m.State("MEMBRANE"):
            m.d.comb += self.o_events.valid.eq(p.membrane.spikes.valid)
            # In the phase's first cycle the pass is only starting: its `done` is stale.
            with m.If(p.membrane.done & ~p.membrane_start):
                with m.If(p.learning):
                    m.d.sync += p.learning_start.eq(1)
                    m.next = "LEARN"
                with m.Else():
                    next_layer()
        with m.State("LEARN"):
            with m.If(p.learning_pass.done):
                # The readout sums are complete here (the last spike's row is added three
                # cycles after the membrane pass's last write-back) and nothing adds to them.
                with m.If(p.error_unit.readout_saturated):
                    m.d.sync += p.flags.eq(p.flags | DECOLLE_FLAG_MEMBRANE_SATURATED)
                next_layer()

    def _tick_phase(self, m, p):
        """Add END_TICK."""
        with m.State("END_TICK"):
            with m.If(send_end_of_tick(m, self.o_events)):
                m.d.sync += [p.tick.eq(p.tick + 1), p.layer.eq(0), p.fresh.eq(0),
                             p.target.eq(0), p.learning.eq(0)]
                with m.If(p.sample_tick != SAMPLE_TICK_MAX):
                    m.d.sync += p.sample_tick.eq(p.sample_tick + 1)
                m.next = "INPUT"

    def _host_decoder(self, m, p):
        """Add the host decoder: address fields, weight and bias decode, the register table."""
        config, layout, value = self._config, self._layout, self.host.write_data
        p.decoder = HostDecoder(self.host, layout, layout.offset_bits)
        p.decoder.drive(m)
        p.weight_decode = weight_word_decoder(
            m, layout, p.decoder.offset, stages=2 if registered_reads(config) else 1)
        p.bias_decode = self._bias_word_decoder(m, p.decoder.offset)
        # The checks of a host access's offset and value, registered (host_check).
        p.fits_weight = host_check(m, fits_signed(value, config.weight_bits))
        p.neuron_valid = host_check(m, p.decoder.offset < layout.state_words)
        p.trace_valid = host_check(m, p.decoder.offset < layout.rows)
        register_writes = {
            "dropped_events": (None, p.dropped_events.eq(0)),
            "flags": (None, p.flags.eq(p.flags & ~value[:2])),
            "learn": (value <= 1, p.learn_enable.eq(value[0])),
            "burn_in": (value <= BURN_IN_MAX, p.burn_in.eq(value)),
            "sample_tick": (None, [p.sample_tick.eq(0), p.fresh.eq(1)]),
        }
        register_writes.update({
            f"lr_shift_{index + 1}": (value <= RANDOM_DRAW_BITS, signal.eq(value))
            for index, signal in enumerate(p.lr_shifts)})
        p.register_writes = host_checked_writes(m, register_writes)
        p.tick_is_open = open_tick(m, self.i_events)

    def _bias_word_decoder(self, m, offset):
        """The bias word and lane of the neuron at ``offset`` (its global index): word
        ``group_base + i // lanes``, lane ``i % lanes`` of neuron ``i`` of its layer."""
        layout, lane_bits = self._layout, self._layout.lane_bits
        if not lane_bits:
            return offset, Const(0, 1)
        word = Signal(range(layout.accumulator_words + 1))
        lane = Signal(lane_bits)
        for lay in layout.layers:
            with m.If((offset >= lay.state_base) & (offset < lay.state_base + lay.n_post)):
                index = offset - lay.state_base
                # Registered, as the weight decode is (host_check says why that holds).
                m.d.sync += [word.eq(lay.accumulator_base + (index >> lane_bits)),
                             lane.eq(index[:lane_bits])]
        return word, lane

    def _host_phases(self, m, p):
        """Add HOST_DECODE (the weight decode's second cycle), HOST_ACCESS (decode and
        access), HOST_READ (with registered reads), HOST_ACK (answer) and HOST_DONE
        (``ack``)."""
        config, layout, host, decoder = self._config, self._layout, self.host, p.decoder
        offset, host_error, value = decoder.offset, decoder.error, host.write_data
        weight_word, weight_valid, weight_post = p.weight_decode
        bias_word, bias_lane = p.bias_decode
        neuron_valid = p.neuron_valid
        lanes, lane_bits = config.lanes, layout.lane_bits
        # The lane of a weight or bias access, kept for the answer; a write enables it only.
        lane = Mux(decoder.region == REGION_BIAS, bias_lane, weight_post[:lane_bits]) \
            if lane_bits else Const(0, 1)
        host_lane = Signal.like(lane)
        lane_data = Cat(*[value[:config.weight_bits]] * lanes)
        lane_enable = Const(1, lanes) << lane
        fits_weight, register_writes, tick_is_open = (p.fits_weight, p.register_writes,
                                                      p.tick_is_open)

        def serve_read_only(name, valid):
            # Neuron state and traces are computed, never written by the host.
            m.d.comb += [p.host_read[name].valid.eq(1), p.host_read[name].addr.eq(offset)]
            with m.If(~valid | host.write):
                m.d.sync += host_error.eq(1)

        with m.State("HOST_DECODE"):
            # The weight word's decode takes two cycles (weight_word_decoder).
            m.next = "HOST_ACCESS"

        registered = registered_reads(config)
        read_data = host_read_data(m, p.host_read, registered)

        with m.State("HOST_ACCESS"):
            m.next = "HOST_READ" if registered else "HOST_ACK"
            with decoder.decode(m, tick_is_open, [host_lane.eq(lane)]):
                with m.Case(REGION_REGISTERS):
                    serve_register_write(m, host, host_error, offset, layout.registers,
                                         register_writes)
                for region, name, address, valid in (
                        (REGION_WEIGHTS, "weights", weight_word, weight_valid),
                        (REGION_BIAS, "bias", bias_word, neuron_valid)):
                    with m.Case(region):
                        serve_memory(m, host, host_error, p.host_read[name],
                                     p.host_write[name], address, valid, fits_weight,
                                     lane_data, lane_enable)
                with m.Case(REGION_MEMBRANE, REGION_REFRACTORY, REGION_SPIKES):
                    serve_read_only("state", neuron_valid)
                with m.Case(REGION_TRACE_Q, REGION_TRACE_P):
                    serve_read_only("traces", p.trace_valid)

        if registered:
            with m.State("HOST_READ"):
                # The read data are registered (host_read_data).
                m.next = "HOST_ACK"

        with m.State("HOST_ACK"):
            # The old state of a fresh sample reads as zero, as it will be used.
            state, traces = read_data["state"], read_data["traces"]
            register_values = [("magic", CORE_MAGIC), ("tick", p.tick),
                               ("dropped_events", p.dropped_events), ("flags", p.flags),
                               ("layers", len(layout.layers)), ("neurons", config.n_neurons),
                               ("learn", p.learn_enable), ("burn_in", p.burn_in),
                               ("sample_tick", p.sample_tick)]
            register_values += [(f"lr_shift_{index + 1}", signal)
                                for index, signal in enumerate(p.lr_shifts)]
            decoder.answer(m, layout.registers, register_values, {
                REGION_WEIGHTS: read_data["weights"][host_lane],
                REGION_BIAS: read_data["bias"][host_lane],
                REGION_MEMBRANE: Mux(p.fresh, 0, state.u),
                REGION_REFRACTORY: Mux(p.fresh, 0, state.r),
                REGION_SPIKES: Mux(p.fresh, 0, state.s),
                REGION_TRACE_Q: Mux(p.fresh, 0, traces.q),
                REGION_TRACE_P: Mux(p.fresh, 0, traces.p),
            })
            m.next = "HOST_DONE"

        with m.State("HOST_DONE"):
            # ack: the host drops strobe at the end of this cycle.
            m.next = "INPUT"
