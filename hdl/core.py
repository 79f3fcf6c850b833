"""The inference core: time-multiplexed LIF neurons with event-driven synaptic delivery,
and the eRBP core, the same datapath with eRBP's plasticity parts plugged in.

It runs the tick of :mod:`plasticore.golden.lif` (and :mod:`plasticore.golden.erbp`) bit
for bit. The core is assembled from parts, each a ``wiring.Component`` with one job
(docs/architecture.md draws them):

- :class:`Delivery` (:mod:`plasticore.hdl.projection`): the row walker and its datapath,
  presynaptic events in, weight words added into accumulator words;
- :class:`UpdatePass` (:mod:`plasticore.hdl.population`): a layer's neurons, one per
  cycle, its spikes out as a stream;
- :class:`WeightBanks`: the weights of every projection;
- for ``rule = "erbp"`` (:mod:`plasticore.hdl.erbp_passes`): the weight stage on
  delivery's plasticity member, and the error, feedback and dendrite passes;
- :class:`SpikeList` (:mod:`plasticore.hdl.recurrence`) per recurrent source layer;
- one arbiter per shared memory port (:mod:`plasticore.hdl.ports`).

This module adds the memories, connects the parts and runs a tick through them with the
sequencer, a phase FSM:

``CLEAR`` (after reset only)
    The accumulators are written to zero, one word per cycle, so that a reset in the
    middle of a tick leaves no partial sums (the memories of state and weights are kept;
    the registers take their reset values).
``INPUT``
    Input events go through the input classifier: data events into delivery (layer 1),
    label events of the eRBP core into the error pass's counts, out-of-range addresses
    counted in ``dropped_events``. The host port is served between events with no row in
    flight (a write inside an open tick is refused: :mod:`plasticore.hdl.shell`). The
    ``end_of_tick`` event starts ``UPDATE`` of layer 1.
``UPDATE`` / ``DELIVER``
    The update pass runs over the layer; each spike leaves on ``o_events`` and, unless
    this is the last layer, enters the spike FIFO, which ``DELIVER`` then feeds to
    delivery along the projection into the next layer, and so on.
``RECURRENT`` (with recurrent projections, inference core only)
    Each recurrent projection replays its source layer's spike list through delivery into
    the target layer's accumulators, which the next tick starts from (step 3 of
    :mod:`plasticore.golden.lif`).
``ERROR``, ``FEEDBACK``, ``DENDRITE`` (eRBP)
    The three passes, each started by the sequencer and reporting when it is done.
``END_TICK``
    The end-of-tick event leaves; the tick counter advances.
``HOST_ACCESS``, ``HOST_ACK``
    One cycle to decode and access, one to answer with ``ack``. Addresses that name
    nothing, read-only registers and values that do not fit their field are answered with
    ``error`` and change nothing.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.utils import ceil_log2

from plasticore.config import ConfigError, CoreConfig
from plasticore.layout import (CORE_MAGIC, FLAG_ACCUMULATOR_SATURATED, FLAG_DENDRITE_SATURATED,
                               FLAG_ERROR_SATURATED, FLAG_MEMBRANE_SATURATED,
                               FLAG_WEIGHT_SATURATED, REGION_DENDRITE, REGION_ERROR,
                               REGION_MEMBRANE, REGION_REFRACTORY, REGION_REGISTERS,
                               REGION_WEIGHTS, CoreLayout)
from .arith import fits_signed
from .erbp_passes import (DendritePass, ErbpWeightStage, ErrorPass, FeedbackPass, SignalPass,
                          error_word_layout, signal_word_layout)
from .population import UpdatePass
from .ports import NO_COLLISION_LOGIC, UncollidedReadPort, access_for, share_port
from .projection import Delivery, WeightBanks, registered_reads
from .recurrence import SpikeList
from .shell import (CoreShell, HostDecoder, count_saturating, host_check, host_checked_writes,
                    host_read_data, open_tick, select_constants, send_end_of_tick,
                    serve_memory, serve_register_write, start_pulses, weight_word_decoder)
from .synapse import accumulator_word_layout

__all__ = ["Core"]


def _bit(flag: int) -> int:
    """The bit index of a one-bit flag mask."""
    return flag.bit_length() - 1


class Core(CoreShell):
    """A LIF core (feedforward, or with recurrent projections), with eRBP learning for
    ``rule = "erbp"``, built from a :class:`CoreConfig`.

    The parameters (``config``, ``checks``) and the ports (``i_events``, ``o_events``,
    ``host``) are those of :class:`plasticore.hdl.shell.CoreShell`; the host memory map is
    :class:`plasticore.layout.CoreLayout`. With ``checks = True`` every shared memory port
    asserts one owner per cycle and delivery asserts that no accumulator lane wraps.
    """

    layout_class = CoreLayout

    @classmethod
    def check_config(cls, config: CoreConfig) -> None:
        super().check_config(config)
        if config.rule not in ("none", "erbp"):
            raise ConfigError("rule", config.rule,
                              "Core builds rule = \"none\" or \"erbp\"; "
                              "plasticore.hdl.cores.make_core picks the core of other rules")

    def elaborate(self, platform):
        m = Module()
        # The parts and the signals the sequencer shares between them.
        learning = self._config.rule == "erbp"
        p = SimpleNamespace(learning=learning, recurrent=self._layout.recurrent,
                            # Several lanes read their neurons' signals from one word.
                            signals=learning and self._config.lanes > 1)
        self._memories(m, p)
        self._parts(m, p)
        self._registers(m, p)
        self._host_accesses(m, p)
        self._connect_ports(m, p)
        self._spike_routes(m, p)
        with m.FSM(init="CLEAR", name="phase") as phase:
            p.phase = phase
            self._input_phases(m, p)
            self._layer_phases(m, p)
            if p.learning:
                self._erbp_phases(m, p)
            if p.recurrent:
                self._recurrent_phase(m, p)
            self._tick_phase(m, p)
            self._host_phases(m, p)
        return m

    def _memories(self, m, p):
        """Add the memories: weights (in banks), accumulators, neuron state."""
        config, layout = self._config, self._layout
        m.submodules.weights = p.weights = WeightBanks(config, layout.weight_words,
                                                       checks=self.checks)

        def memory(name, shape, depth, granularity=None, transparent=False):
            # In block RAM, however small: in the ECP5's LUT RAM a read is combinational,
            # behind the address multiplexer of the memory's users.
            m.submodules[name] = memory = Memory(
                shape=shape, depth=depth, init=[],
                attrs=None if transparent else dict(NO_COLLISION_LOGIC, ram_style="block"))
            write = memory.write_port(granularity=granularity)
            if transparent:
                return memory.read_port(transparent_for=(write,)), write
            m.submodules[f"{name}_read"] = read = UncollidedReadPort(
                memory, write, checks=self.checks, name=name)
            return read, write

        # Only the accumulators are read in the cycle they are written and need the word
        # written (delivery adds event after event into the same words). Every other
        # memory is walked a neuron (or class) at a time, each written back before it is
        # read again, and never read in the cycle it is written: its read port needs no
        # bypass and no collision logic (NO_COLLISION_LOGIC).
        p.acc = memory("accumulators", accumulator_word_layout(config),
                       layout.accumulator_words, granularity=1, transparent=True)
        state = signed(config.membrane_bits)
        p.membrane = memory("membranes", state, layout.state_words)
        p.refractory = memory("refractory", unsigned(config.refractory_bits),
                              layout.state_words)
        if p.learning:
            p.dendrite = memory("dendrites", state, layout.state_words)
            p.error = memory("error_states", error_word_layout(config),
                             config.layers[-1], granularity=1)
        if p.signals:
            p.signal = memory("learning_signals", signal_word_layout(config),
                              layout.accumulator_words, granularity=1)

    def _parts(self, m, p):
        """Add the datapath's parts: delivery, the update pass, eRBP's, the spike buffers."""
        config, layout, checks = self._config, self._layout, self.checks
        if p.learning:
            m.submodules.weight_stage = p.weight_stage = ErbpWeightStage(config, layout)
            m.submodules.error_pass = p.error_pass = ErrorPass(config)
            m.submodules.feedback_pass = p.feedback_pass = FeedbackPass(config, layout)
            m.submodules.dendrite_pass = p.dendrite_pass = DendritePass(config, layout)
            if p.signals:
                m.submodules.signal_pass = p.signal_pass = SignalPass(config, layout)
            m.submodules.delivery = p.delivery = Delivery(
                config, layout, gain_shift=config.learning.soma_gain_shift,
                lead=p.weight_stage.lead, checks=checks)
            wiring.connect(m, p.delivery.plasticity, p.weight_stage.plasticity)
            for part in (p.feedback_pass, p.dendrite_pass):
                m.d.comb += [part.spikes_plus.eq(p.error_pass.spikes_plus),
                             part.spikes_minus.eq(p.error_pass.spikes_minus)]
        else:
            m.submodules.delivery = p.delivery = Delivery(config, layout, checks=checks)
        m.submodules.update = p.update = UpdatePass(config, layout)
        # Spikes of a layer wait here until they are delivered to the next one. A layer
        # writes at most one spike per neuron before any is read; the buffered FIFO's output
        # register is one entry on top of the memory, hence depth + 1.
        p.spiking_layers = config.neuron_layers[:-1]
        if p.spiking_layers:
            m.submodules.spike_fifo = p.spike_fifo = SyncFIFOBuffered(
                width=max(1, ceil_log2(max(p.spiking_layers))),
                depth=max(p.spiking_layers) + 1)
        p.spike_lists = {}
        for source in sorted({lay.source for lay in p.recurrent}):
            p.spike_lists[source] = SpikeList(config.layers[source])
            m.submodules[f"spike_list_{source}"] = p.spike_lists[source]

    def _registers(self, m, p):
        """Add the registers, the flags and the constants of the layer being worked on."""
        config, layout = self._config, self._layout
        n_layers = len(layout.layers)
        p.tick = Signal(32)
        p.dropped_events = Signal(32)
        p.flags = Signal(5 if p.learning else 2)
        # Flags raised this cycle, bit by bit: several parts may raise different ones.
        p.flags_raised = Signal.like(p.flags)
        m.d.sync += p.flags.eq(p.flags | p.flags_raised)
        raised = [(FLAG_ACCUMULATOR_SATURATED, p.delivery.saturated),
                  (FLAG_MEMBRANE_SATURATED, p.update.saturated)]
        p.layer = Signal(range(n_layers))            # 0-based neuron layer being worked on
        p.n_post = Signal(range(max(config.neuron_layers) + 1))
        p.state_base = Signal(range(layout.state_words + 1))
        p.acc_base = Signal(range(layout.accumulator_words + 1))
        p.is_last = Signal()
        select_constants(m, p.layer, (p.n_post, p.state_base, p.acc_base, p.is_last), [
            (lay.n_post, lay.state_base, lay.accumulator_base, index == n_layers - 1)
            for index, lay in enumerate(layout.layers)])
        m.d.comb += [p.update.n_post.eq(p.n_post), p.update.state_base.eq(p.state_base),
                     p.update.acc_base.eq(p.acc_base)]
        # The projection delivery walks: the one feeding `layer`, or in RECURRENT the
        # recurrent projection `recurrent_index`.
        if p.recurrent:
            p.recurrent_active = Signal()
            p.recurrent_index = Signal(range(len(p.recurrent)))
            m.d.comb += p.delivery.projection.eq(
                Mux(p.recurrent_active, n_layers + p.recurrent_index, p.layer))
        else:
            m.d.comb += p.delivery.projection.eq(p.layer)
        if p.learning:
            params = config.learning
            p.learning_enabled = Signal()
            p.sample_tick = Signal(32)
            p.burn_in_ticks = Signal(32, init=params.burn_in_ticks)
            p.rate_shift = Signal(range(33), init=params.learning_rate_shift)
            p.rate_mask = Signal(32, init=(1 << params.learning_rate_shift) - 1)
            p.predictions = Signal(config.layers[-1])    # prediction spikes of this tick
            # The signal memory holds this tick's learning signals (SignalPass).
            p.signals_loaded = Signal()
            stage = p.weight_stage
            m.d.comb += [
                stage.tick.eq(p.tick), stage.shift.eq(p.rate_shift), stage.mask.eq(p.rate_mask),
                stage.active.eq(p.learning_enabled & (p.sample_tick >= p.burn_in_ticks)),
                p.error_pass.predictions.eq(p.predictions),
            ]
            # A label event, registered on its way to the error pass's label counts.
            p.label_valid = Signal()
            p.label_class = Signal(max(1, ceil_log2(config.layers[-1])))
            m.d.sync += p.label_valid.eq(0)
            m.d.comb += [p.error_pass.label_valid.eq(p.label_valid),
                         p.error_pass.label_class.eq(p.label_class)]
            # The passes' start pulses, registered (see _erbp_phases): phase -> pulse.
            p.pass_start = start_pulses(m, {"ERROR": p.error_pass, "FEEDBACK": p.feedback_pass,
                                            "DENDRITE": p.dendrite_pass})
            raised += [(FLAG_WEIGHT_SATURATED, p.delivery.weight_saturated),
                       (FLAG_ERROR_SATURATED, p.error_pass.saturated),
                       (FLAG_ERROR_SATURATED, p.error_pass.label_saturated),
                       (FLAG_DENDRITE_SATURATED, p.feedback_pass.saturated),
                       (FLAG_DENDRITE_SATURATED, p.dendrite_pass.saturated)]
        for flag in sorted({flag for flag, _ in raised}):
            m.d.comb += p.flags_raised[_bit(flag)].eq(
                Cat(*(value for other, value in raised if other == flag)).any())

    def _host_accesses(self, m, p):
        """Add the host's accesses to the memories, and its decoder."""
        config, layout = self._config, self._layout
        p.ports = {"weights": (p.weights.read, p.weights.write),
                   "acc": p.acc, "membrane": p.membrane, "refractory": p.refractory}
        if p.learning:
            p.ports.update(dendrite=p.dendrite, error=p.error)
        p.host_read, p.host_write = {}, {}
        for name, (read, write) in p.ports.items():
            if name != "acc":
                p.host_read[name] = access_for(read, path=f"host_{name}_read")
                p.host_write[name] = access_for(write, path=f"host_{name}_write")
        # The register number, or the error neuron's index, is kept for the answer.
        p.decoder = HostDecoder(self.host, layout,
                                range(max(len(layout.registers), layout.error_neurons)))
        p.decoder.drive(m)
        p.tick_is_open = open_tick(m, self.i_events)
        # Weight addresses: (row << post_bits) | post, row counting presynaptic rows.
        p.weight_decode = weight_word_decoder(
            m, layout, p.decoder.offset, stages=2 if registered_reads(config) else 1)
        # The CLEAR phase writes the accumulators itself.
        p.clear_write = access_for(p.acc[1], path="clear_write")
        # The checks of a host access's offset and value, registered (host_check).
        config, offset, value = self._config, p.decoder.offset, self.host.write_data
        checks = p.host_checks = SimpleNamespace(
            neuron_valid=host_check(m, offset < layout.state_words),
            fits_weight=host_check(m, fits_signed(value, config.weight_bits)),
            fits_membrane=host_check(m, fits_signed(value, config.membrane_bits)),
            fits_refractory=host_check(m, value <= config.refractory_ticks),
            register_writes=host_checked_writes(m, self._register_writes(p, value)))
        if p.learning:
            # Error neurons never go negative: 0 .. 2**(membrane_bits-1) - 1.
            checks.error_valid = host_check(m, offset < layout.error_neurons)
            checks.fits_error = host_check(m, value <= (1 << (config.membrane_bits - 1)) - 1)

    def _connect_ports(self, m, p):
        """Give every shared memory port its arbiter, and every part its access."""
        delivery, update = p.delivery, p.update
        reads = {
            "weights": [delivery.weight_read],
            "acc": [delivery.acc_read, update.acc_read],
            "membrane": [update.membrane_read],
            "refractory": [update.refractory_read],
        }
        writes = {
            "weights": [],
            "acc": [delivery.acc_write, update.acc_write, p.clear_write],
            "membrane": [update.membrane_write],
            "refractory": [update.refractory_write],
        }
        if p.learning:
            stage, error, feedback, dendrite = (p.weight_stage, p.error_pass, p.feedback_pass,
                                                p.dendrite_pass)
            reads["acc"] += [feedback.acc_read, dendrite.acc_read]
            writes["acc"] += [feedback.acc_write, dendrite.acc_write]
            reads["dendrite"] = [dendrite.dendrite_read]
            writes["dendrite"] = [dendrite.dendrite_write]
            # The postsynaptic states: read by the weight stage itself (one lane), or by
            # the signal pass into the signal memory the stage reads (several lanes).
            signal_reader = p.signal_pass if p.signals else stage
            reads["membrane"].append(signal_reader.membrane_read)
            reads["dendrite"].append(signal_reader.dendrite_read)
            if p.signals:
                share_port(m, "signal read", p.signal[0], [stage.signal_read])
                share_port(m, "signal write", p.signal[1], [p.signal_pass.signal_write])
            reads["error"], writes["error"] = [error.error_read], [error.error_write]
            writes["weights"].append(delivery.weight_write)
        for name, (read, write) in p.ports.items():
            host = [] if name == "acc" else [p.host_read[name]]
            share_port(m, f"{name} read", read, reads[name] + host, checks=self.checks)
            host = [] if name == "acc" else [p.host_write[name]]
            share_port(m, f"{name} write", write, writes[name] + host, checks=self.checks)

    def _spike_routes(self, m, p):
        """Route the update pass's spikes: out, into the FIFO, the spike lists, predictions."""
        update, o_events = p.update, self.o_events
        spike = update.spikes.payload
        m.d.comb += [
            update.spikes.ready.eq(o_events.ready),
            o_events.payload.neuron.eq(spike),
            o_events.payload.layer.eq(p.layer + 1),
            o_events.payload.tick.eq(p.tick),
        ]
        p.spike_count = Signal(range(max(self._config.neuron_layers) + 1))
        with m.If(update.spikes.valid & update.spikes.ready):
            m.d.sync += p.spike_count.eq(p.spike_count + 1)
            if p.learning:
                with m.If(p.is_last):
                    m.d.sync += p.predictions.bit_select(spike, 1).eq(1)
            if p.spiking_layers:
                m.d.comb += [p.spike_fifo.w_data.eq(spike), p.spike_fifo.w_en.eq(~p.is_last)]
            for source, spike_list in p.spike_lists.items():
                m.d.comb += [spike_list.w_data.eq(spike),
                             spike_list.w_en.eq(p.layer == source - 1)]

    def _input_phases(self, m, p):
        """Add the phases CLEAR and INPUT (the input classifier)."""
        config, layout, host, delivery = self._config, self._layout, self.host, p.delivery
        payload = self.i_events.payload
        in_range = payload.address < config.n_inputs
        # After a reset the accumulators may hold part of a tick (or recurrent input for
        # the next one); every tick assumes they start as the golden model's do: zero.
        clear_index = Signal(range(layout.accumulator_words))
        with m.State("CLEAR"):
            m.d.comb += [p.clear_write.addr.eq(clear_index),
                         p.clear_write.en.eq(Const(-1, config.lanes))]
            m.d.sync += clear_index.eq(clear_index + 1)
            with m.If(clear_index == layout.accumulator_words - 1):
                m.next = "INPUT"

        if p.signals:
            # The first event of a tick (or after a host access) waits for the signals;
            # nothing they are read from changes in INPUT, so loading them late is exact.
            need_signals = ~p.signals_loaded & p.weight_stage.active
        else:
            need_signals = Const(0)
        with m.State("INPUT"):
            m.d.comb += [
                delivery.enable.eq(~host.strobe & ~need_signals),
                delivery.events.valid.eq(self.i_events.valid & ~payload.end_of_tick & in_range),
                delivery.events.payload.eq(payload.address),
            ]
            if p.learning:
                n_classes = config.layers[-1]
                is_label = ~in_range & (payload.address < config.n_inputs + n_classes)
            with m.If(host.strobe & delivery.idle):
                m.next = "HOST_DECODE"
            if p.signals:
                with m.Elif(self.i_events.valid & need_signals & delivery.idle):
                    m.d.comb += p.signal_pass.start.eq(1)
                    m.next = "SIGNALS"
            with m.Elif(self.i_events.valid & ~host.strobe):
                with m.If(payload.end_of_tick):
                    with m.If(delivery.idle):
                        m.d.comb += [self.i_events.ready.eq(1), p.update.start.eq(1)]
                        m.d.sync += p.spike_count.eq(0)
                        m.next = "UPDATE"
                if p.learning:
                    with m.Elif(is_label):
                        # Labels only add into their class's error inputs (step 4), a
                        # cycle later (registered); the error pass reads them at the
                        # tick's end.
                        m.d.comb += self.i_events.ready.eq(1)
                        m.d.sync += [p.label_valid.eq(1), p.label_class.eq(
                            (payload.address - config.n_inputs)[:len(p.label_class)])]
                with m.Elif(~in_range):
                    # Dropped without touching any state, and counted.
                    m.d.comb += self.i_events.ready.eq(1)
                    m.d.sync += count_saturating(p.dropped_events)
                with m.Else():
                    m.d.comb += self.i_events.ready.eq(delivery.events.ready)

    def _layer_phases(self, m, p):
        """Add the phases UPDATE and DELIVER."""
        delivery = p.delivery
        spikes_taken = Signal.like(p.spike_count)   # spikes delivered to the next layer
        with m.State("UPDATE"):
            m.d.comb += [p.update.enable.eq(1), self.o_events.valid.eq(p.update.spikes.valid)]
            with m.If(~p.update.busy):
                m.d.sync += spikes_taken.eq(0)
                with m.If(p.is_last):
                    if p.learning:
                        m.d.sync += p.pass_start["ERROR"].eq(1)
                        m.next = "ERROR"
                    elif p.recurrent:
                        m.d.sync += p.recurrent_index.eq(0)
                        m.d.comb += [spike_list.rewind.eq(1)
                                     for spike_list in p.spike_lists.values()]
                        m.next = "RECURRENT"
                    else:
                        m.next = "END_TICK"
                with m.Else():
                    m.d.sync += p.layer.eq(p.layer + 1)
                    m.next = "DELIVER"

        with m.State("DELIVER"):
            if p.spiking_layers:
                fifo = p.spike_fifo
                m.d.comb += [
                    delivery.enable.eq(1),
                    delivery.events.valid.eq(fifo.r_rdy),
                    delivery.events.payload.eq(fifo.r_data),
                    fifo.r_en.eq(delivery.events.ready),
                ]
                with m.If(fifo.r_rdy & delivery.events.ready):
                    m.d.sync += spikes_taken.eq(spikes_taken + 1)
            with m.If((spikes_taken == p.spike_count) & delivery.idle):
                m.d.comb += p.update.start.eq(1)
                m.d.sync += p.spike_count.eq(0)
                m.next = "UPDATE"

    def _erbp_phases(self, m, p):
        """Add eRBP's phases: each starts its pass and waits until it is done.

        A pass's ``start`` comes from a register set as its phase is entered, so that no
        pass's ``done`` reaches into the next pass's registers in one cycle. In that first
        cycle the pass has not started yet, and its ``done`` is not looked at.
        """
        if p.signals:
            with m.State("SIGNALS"):
                with m.If(p.signal_pass.done):
                    m.d.sync += p.signals_loaded.eq(1)
                    m.next = "INPUT"
        for state, part, following in (("ERROR", p.error_pass, "FEEDBACK"),
                                       ("FEEDBACK", p.feedback_pass, "DENDRITE"),
                                       ("DENDRITE", p.dendrite_pass, "END_TICK")):
            with m.State(state):
                with m.If(part.done & ~p.pass_start[state]):
                    if part is p.error_pass:
                        m.d.sync += p.predictions.eq(0)
                    if following in p.pass_start:
                        m.d.sync += p.pass_start[following].eq(1)
                    m.next = following

    def _recurrent_phase(self, m, p):
        """Add RECURRENT: each recurrent projection replays its source's spike list (step 3)."""
        delivery = p.delivery
        with m.State("RECURRENT"):
            m.d.comb += [p.recurrent_active.eq(1), delivery.enable.eq(1)]
            replayed = Signal()
            with m.Switch(p.recurrent_index):
                for index, lay in enumerate(p.recurrent):
                    spike_list = p.spike_lists[lay.source]
                    with m.Case(index):
                        m.d.comb += [
                            delivery.events.valid.eq(spike_list.valid),
                            delivery.events.payload.eq(spike_list.data),
                            spike_list.take.eq(spike_list.valid & delivery.events.ready),
                            replayed.eq(~spike_list.valid),
                        ]
            with m.If(replayed & delivery.idle):
                m.d.comb += [spike_list.rewind.eq(1) for spike_list in p.spike_lists.values()]
                with m.If(p.recurrent_index == len(p.recurrent) - 1):
                    m.next = "END_TICK"
                with m.Else():
                    m.d.sync += p.recurrent_index.eq(p.recurrent_index + 1)

    def _tick_phase(self, m, p):
        """Add END_TICK."""
        with m.State("END_TICK"):
            with m.If(send_end_of_tick(m, self.o_events)):
                # Input events of the next tick are delivered to layer 1.
                m.d.sync += p.layer.eq(0)
                m.d.comb += [spike_list.clear.eq(1) for spike_list in p.spike_lists.values()]
                if p.learning:
                    # The tick counter names the rounding draws: it saturates, never wraps.
                    m.d.sync += [count_saturating(p.tick), count_saturating(p.sample_tick)]
                else:
                    m.d.sync += p.tick.eq(p.tick + 1)
                if p.signals:
                    m.d.sync += p.signals_loaded.eq(0)
                m.next = "INPUT"

    def _register_writes(self, p, value):
        """The writable registers: name -> (the value fits, the statements of a write)."""
        writes = {
            "dropped_events": (None, p.dropped_events.eq(0)),
            "flags": (None, p.flags.eq(p.flags & ~value[:len(p.flags)])),
        }
        if p.learning:
            writes.update({
                "learning_enabled": (value <= 1, p.learning_enabled.eq(value[0])),
                "sample_tick": (None, p.sample_tick.eq(value)),
                "burn_in_ticks": (None, p.burn_in_ticks.eq(value)),
                # 2**s - 1 as a thermometer code: bit i is i < s.
                "learning_rate_shift": ((value >= 1) & (value <= 32), [
                    p.rate_shift.eq(value),
                    p.rate_mask.eq(Cat(*(value[:6] > bit for bit in range(32)))),
                ]),
            })
        return writes

    def _host_phases(self, m, p):
        """Add HOST_DECODE (the weight decode's second cycle), HOST_ACCESS (decode and
        access), HOST_READ (with registered reads), HOST_ACK (answer) and HOST_DONE
        (``ack``)."""
        config, layout, host, decoder = self._config, self._layout, self.host, p.decoder
        lanes, lane_bits = config.lanes, layout.lane_bits
        offset, value = decoder.offset, host.write_data
        weight_word, weight_valid, weight_post = p.weight_decode
        host_lane = Signal(max(1, lane_bits))
        n_classes = config.layers[-1]
        checks = p.host_checks

        def serve(name, address, valid, fits, data, enable=1):
            serve_memory(m, host, decoder.error, p.host_read[name], p.host_write[name],
                         address, valid, fits, data, enable)

        with m.State("HOST_DECODE"):
            # The weight word's decode takes two cycles (weight_word_decoder).
            m.next = "HOST_ACCESS"

        registered = registered_reads(config)
        read_data = host_read_data(m, p.host_read, registered)

        with m.State("HOST_ACCESS"):
            m.next = "HOST_READ" if registered else "HOST_ACK"
            if p.signals:
                # A write may change a soma, a dendrite or whether learning is on.
                m.d.sync += p.signals_loaded.eq(0)
            with decoder.decode(m, p.tick_is_open,
                                [host_lane.eq(weight_post if lanes > 1 else 0)]):
                with m.Case(REGION_REGISTERS):
                    serve_register_write(m, host, decoder.error, offset, layout.registers,
                                         checks.register_writes)
                with m.Case(REGION_WEIGHTS):
                    serve("weights", weight_word, weight_valid,
                          checks.fits_weight,
                          Cat(*[value[:config.weight_bits]] * lanes),
                          Const(1, lanes) << weight_post[:lane_bits] if lanes > 1 else 1)
                with m.Case(REGION_MEMBRANE):
                    serve("membrane", offset, checks.neuron_valid, checks.fits_membrane, value)
                with m.Case(REGION_REFRACTORY):
                    serve("refractory", offset, checks.neuron_valid,
                          checks.fits_refractory, value)
                if p.learning:
                    with m.Case(REGION_DENDRITE):
                        serve("dendrite", offset, checks.neuron_valid, checks.fits_membrane,
                              value)
                    with m.Case(REGION_ERROR):
                        minus = offset >= n_classes
                        error_bits = config.membrane_bits - 1
                        serve("error", Mux(minus, offset - n_classes, offset),
                              checks.error_valid, checks.fits_error,
                              Cat(value[:error_bits], value[:error_bits]),
                              Mux(minus, 0b10, 0b01))
                    with m.Default():
                        m.d.sync += decoder.error.eq(1)

        if registered:
            with m.State("HOST_READ"):
                # The read data are registered (host_read_data).
                m.next = "HOST_ACK"

        with m.State("HOST_ACK"):
            register_values = [("magic", CORE_MAGIC), ("tick", p.tick),
                               ("dropped_events", p.dropped_events), ("flags", p.flags),
                               ("layers", len(layout.layers)), ("neurons", config.n_neurons)]
            weights = read_data["weights"]
            region_values = {
                REGION_WEIGHTS: weights[host_lane] if lanes > 1 else weights[0],
                REGION_MEMBRANE: read_data["membrane"],
                REGION_REFRACTORY: read_data["refractory"],
            }
            if p.learning:
                register_values += [("learning_enabled", p.learning_enabled),
                                    ("sample_tick", p.sample_tick),
                                    ("burn_in_ticks", p.burn_in_ticks),
                                    ("learning_rate_shift", p.rate_shift)]
                error = read_data["error"]
                region_values[REGION_DENDRITE] = read_data["dendrite"]
                region_values[REGION_ERROR] = Mux(decoder.register < n_classes,
                                                  error[0], error[1])
            decoder.answer(m, layout.registers, register_values, region_values)
            m.next = "HOST_DONE"

        with m.State("HOST_DONE"):
            # ack: the host drops strobe at the end of this cycle.
            m.next = "INPUT"
