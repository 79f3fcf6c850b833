"""The inference core: time-multiplexed LIF neurons with event-driven synaptic delivery.

It runs the tick of :mod:`plasticore.golden.lif` bit for bit. How the hardware does it:

Phases
    ``INPUT``: input events are delivered to layer 1 as they arrive; the host port is
    served between events. An ``end_of_tick`` event starts ``UPDATE`` of layer 1.
    ``UPDATE``: one neuron per cycle reads its membrane, refractory counter and accumulator,
    is updated (:class:`LifIntegrate`, a register, :class:`LifFire`: three pipeline
    stages), written back, and its accumulator cleared. A spike
    goes to ``o_events`` (the pass stalls while the output is not ready) and, unless this
    is the last layer, into the spike FIFO. ``DELIVER``: the FIFO's spikes are delivered to
    the next layer, then that layer is updated. After the last layer ``END_TICK`` sends the
    end-of-tick event.
Delivery (the row walker)
    A presynaptic event ``j`` walks its row: ``row_words`` consecutive weight words, each
    read together with the matching accumulator word; one cycle later the lanes are added
    (:class:`LaneAccumulate`) and written back. A new event is taken in the cycle the
    previous row issues its last word (through a one-event holding register), so a steady
    stream costs one word (``lanes`` synapses) per cycle. The accumulator read port is transparent to its write port, so a
    read in the same cycle as the write-back of the same word sees the new value:
    back-to-back events on one-word rows need no stall.
Host port
    Served only in ``INPUT`` with no row in flight: one cycle to decode and access, one to
    answer with ``ack``. Addresses that name nothing, read-only registers and values that do
    not fit their field are answered with ``error`` and change nothing.
"""

from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from plasticore.config import CoreConfig
from plasticore.layout import (CORE_MAGIC, FLAG_ACCUMULATOR_SATURATED, FLAG_MEMBRANE_SATURATED,
                               REGION_MEMBRANE, REGION_REFRACTORY, REGION_REGISTERS,
                               REGION_WEIGHTS, REGISTERS, CoreLayout)
from .interfaces import (ADDRESS_BITS, HOST_DATA_BITS, HostSignature, input_stream_signature,
                         output_stream_signature)
from .neuron import LifFire, LifIntegrate, raw_shape
from .synapse import LaneAccumulate, accumulator_word_layout, weight_word_layout

__all__ = ["Core"]

DROPPED_EVENTS_MAX = (1 << 32) - 1


def _fits_signed(value, bits):
    """1 when the 32-bit two's complement ``value`` is representable in ``signed(bits)``."""
    value = value.as_signed()
    return (value >= -(1 << (bits - 1))) & (value <= (1 << (bits - 1)) - 1)


class Core(wiring.Component):
    """A fully connected feedforward LIF core built from a :class:`CoreConfig`.

    Parameters
    ----------
    config : CoreConfig

    Attributes
    ----------
    i_events : In(stream)
        Input events (:data:`plasticore.hdl.interfaces.INPUT_EVENT`).
    o_events : Out(stream)
        Spikes and end-of-tick markers (:func:`plasticore.hdl.interfaces.output_event_layout`).
    host : In(HostSignature)
        Memory-mapped access to weights, neuron state and registers
        (:class:`plasticore.layout.CoreLayout`).
    """

    def __init__(self, config: CoreConfig):
        if config.rule != "none":
            raise NotImplementedError(
                f"rule = {config.rule!r}: the learning hardware is not built yet; "
                "only rule = \"none\" generates RTL")
        if len(config.neuron_layers) > 255:
            raise ValueError(f"layers: {len(config.neuron_layers)} neuron layers, "
                             "the output event tags at most 255")
        self._config = config
        self._layout = CoreLayout(config)
        super().__init__({
            "i_events": In(input_stream_signature()),
            "o_events": Out(output_stream_signature()),
            "host": In(HostSignature(self._layout.address_bits)),
        })

    @property
    def config(self) -> CoreConfig:
        return self._config

    @property
    def layout(self) -> CoreLayout:
        return self._layout

    def elaborate(self, platform):
        config, layout = self._config, self._layout
        lanes, lane_bits = config.lanes, layout.lane_bits
        n_layers = len(layout.layers)
        max_post = max(config.neuron_layers)
        m = Module()

        # ---- memories --------------------------------------------------------------
        m.submodules.weights = weights = Memory(
            shape=weight_word_layout(config), depth=layout.weight_words, init=[])
        weights_wr = weights.write_port(granularity=1)
        weights_rd = weights.read_port(transparent_for=(weights_wr,))

        m.submodules.accumulators = accumulators = Memory(
            shape=accumulator_word_layout(config), depth=layout.accumulator_words, init=[])
        acc_wr = accumulators.write_port(granularity=1)
        acc_rd = accumulators.read_port(transparent_for=(acc_wr,))

        m.submodules.membranes = membranes = Memory(
            shape=signed(config.membrane_bits), depth=layout.state_words, init=[])
        membrane_wr = membranes.write_port()
        membrane_rd = membranes.read_port(transparent_for=(membrane_wr,))

        m.submodules.refractory = refractory = Memory(
            shape=unsigned(config.refractory_bits), depth=layout.state_words, init=[])
        refractory_wr = refractory.write_port()
        refractory_rd = refractory.read_port(transparent_for=(refractory_wr,))

        # Spikes of a layer wait here until they are delivered to the next one. A layer
        # writes at most one spike per neuron before any is read; the buffered FIFO's output
        # register is one entry on top of the memory, hence depth + 1.
        spiking_layers = config.neuron_layers[:-1]
        if spiking_layers:
            m.submodules.spike_fifo = spike_fifo = SyncFIFOBuffered(
                width=max(1, ceil_log2(max(spiking_layers))), depth=max(spiking_layers) + 1)

        m.submodules.integrate = integrate = LifIntegrate(config)
        m.submodules.fire = fire = LifFire(config)
        m.submodules.lane_add = lane_add = LaneAccumulate(config)

        # ---- registers ---------------------------------------------------------------
        tick = Signal(32)
        dropped_events = Signal(32)
        flags = Signal(2)
        layer = Signal(range(n_layers))            # 0-based neuron layer being worked on

        # Per-layer constants of the current layer.
        n_post = Signal(range(max_post + 1))
        row_words = Signal(range(max(lay.row_words for lay in layout.layers) + 1))
        weight_address = range(layout.weight_words + 1)       # shape of a weight word address
        acc_base = Signal(range(layout.accumulator_words + 1))
        state_base = Signal(range(layout.state_words + 1))
        is_last = Signal()
        with m.Switch(layer):
            for index, lay in enumerate(layout.layers):
                with m.Case(index):
                    m.d.comb += [
                        n_post.eq(lay.n_post),
                        row_words.eq(lay.row_words),
                        acc_base.eq(lay.accumulator_base),
                        state_base.eq(lay.state_base),
                        is_last.eq(index == n_layers - 1),
                    ]

        # ---- row walker (delivery) -----------------------------------------------------
        event_valid = Signal()                     # a presynaptic event is offered
        event_pre = Signal(ADDRESS_BITS)
        event_take = Signal()
        walk_enable = Signal()                     # the phase allows taking events
        walk_active = Signal()
        walk_weight_addr = Signal(weight_address)
        walk_acc_addr = Signal.like(acc_base)
        walk_words_left = Signal.like(row_words)
        row_done = ~walk_active | (walk_words_left == 0)

        # Stage B: the words issued in the previous cycle are on the read ports.
        deliver_valid = Signal()
        deliver_acc_addr = Signal.like(acc_base)

        # Where the row of event_pre starts: a product by a per-layer constant, so that no
        # general multiplier is built.
        row_start = Signal(weight_address)
        with m.Switch(layer):
            for index, lay in enumerate(layout.layers):
                with m.Case(index):
                    m.d.comb += row_start.eq(lay.weight_base + event_pre * lay.row_words)
        # One register between the event source and the walker: the source's handshake and
        # the row-start product stay off the path into the weight memory's address, and a
        # stream of events still starts a row every cycle the previous one ends.
        pending_valid = Signal()
        pending_row_start = Signal(weight_address)
        walker_load = pending_valid & row_done
        m.d.comb += event_take.eq(walk_enable & event_valid & (~pending_valid | walker_load))
        with m.If(event_take):
            m.d.sync += [
                pending_valid.eq(1),
                pending_row_start.eq(row_start),
            ]
        with m.Elif(walker_load):
            m.d.sync += pending_valid.eq(0)
        delivery_idle = ~walk_active & ~pending_valid
        with m.If(walk_active):
            m.d.comb += [
                weights_rd.addr.eq(walk_weight_addr),
                acc_rd.addr.eq(walk_acc_addr),
            ]
            m.d.sync += [
                walk_weight_addr.eq(walk_weight_addr + 1),
                walk_acc_addr.eq(walk_acc_addr + 1),
                walk_words_left.eq(walk_words_left - 1),
            ]
        m.d.sync += [
            deliver_valid.eq(walk_active),
            deliver_acc_addr.eq(walk_acc_addr),
        ]
        with m.If(walker_load):
            m.d.sync += [
                walk_active.eq(1),
                walk_weight_addr.eq(pending_row_start),
                walk_acc_addr.eq(acc_base),
                walk_words_left.eq(row_words - 1),
            ]
        with m.Elif(row_done):
            m.d.sync += walk_active.eq(0)

        m.d.comb += [
            lane_add.weights.eq(weights_rd.data),
            lane_add.accumulators.eq(acc_rd.data),
        ]
        with m.If(deliver_valid):
            m.d.comb += [
                acc_wr.addr.eq(deliver_acc_addr),
                acc_wr.data.eq(lane_add.sums),
                acc_wr.en.eq(Const(-1, lanes)),
            ]
            with m.If(lane_add.saturated.any()):
                m.d.sync += flags.eq(flags | FLAG_ACCUMULATOR_SATURATED)

        # ---- update pass -------------------------------------------------------------------
        # Three stages: U1 issues the reads of neuron `update_index`; U2 has its words on the
        # read ports and forms the raw sum; U3 has the raw sum in a register, fires, writes
        # back and emits. A spike that the output cannot take stalls all three.
        update_index = Signal(range(max_post + 1))   # next neuron to issue
        update_issue = Signal()
        update_enable = Signal()
        u2_valid = Signal()
        u2_index = Signal(range(max_post))
        u2_lane = Signal(max(1, lane_bits))
        u3_valid = Signal()
        u3_index = Signal(range(max_post))
        u3_membrane = Signal(signed(config.membrane_bits))
        u3_refractory = Signal(unsigned(config.refractory_bits))
        u3_raw = Signal(raw_shape(config))
        stall = Signal()

        m.d.comb += [
            integrate.membrane.eq(membrane_rd.data),
            integrate.accumulator.eq(acc_rd.data[u2_lane] if lanes > 1 else acc_rd.data[0]),
            fire.membrane.eq(u3_membrane),
            fire.refractory.eq(u3_refractory),
            fire.raw.eq(u3_raw),
            stall.eq(u3_valid & fire.spike & ~self.o_events.ready),
            update_issue.eq(update_enable & (update_index < n_post)),
        ]
        # A stalled pass keeps its read data: the ports only latch when the pass advances.
        for port in (acc_rd, membrane_rd, refractory_rd):
            m.d.comb += port.en.eq(~stall)
        with m.If(update_enable):
            m.d.comb += [
                membrane_rd.addr.eq(state_base + update_index),
                refractory_rd.addr.eq(state_base + update_index),
                acc_rd.addr.eq(acc_base + (update_index >> lane_bits)),
            ]
            with m.If(~stall):
                m.d.sync += [
                    u2_valid.eq(update_issue),
                    u2_index.eq(update_index),
                    u2_lane.eq(update_index if lanes > 1 else 0),
                    u3_valid.eq(u2_valid),
                    u3_index.eq(u2_index),
                    u3_membrane.eq(membrane_rd.data),
                    u3_refractory.eq(refractory_rd.data),
                    u3_raw.eq(integrate.raw),
                ]
                with m.If(update_issue):
                    m.d.sync += update_index.eq(update_index + 1)

        spike_count = Signal(range(max_post + 1))   # spikes of the layer just updated
        spikes_taken = Signal(range(max_post + 1))  # of those, delivered to the next layer
        u3_commit = u3_valid & ~stall
        with m.If(u3_commit):
            m.d.comb += [
                membrane_wr.addr.eq(state_base + u3_index),
                membrane_wr.data.eq(fire.new_membrane),
                membrane_wr.en.eq(1),
                refractory_wr.addr.eq(state_base + u3_index),
                refractory_wr.data.eq(fire.new_refractory),
                refractory_wr.en.eq(1),
            ]
            # Clear this neuron's accumulator lane for the next tick (the delivery stage is
            # idle during the update pass, so the write port is free; the lane is read once
            # per tick, so the clear never races a read of it).
            m.d.comb += [
                acc_wr.addr.eq(acc_base + (u3_index >> lane_bits)),
                acc_wr.en.eq(Const(1, lanes) << u3_index[:lane_bits] if lanes > 1 else 1),
            ]
            with m.If(fire.saturated):
                m.d.sync += flags.eq(flags | FLAG_MEMBRANE_SATURATED)
            with m.If(fire.spike):
                m.d.sync += spike_count.eq(spike_count + 1)
                if spiking_layers:
                    m.d.comb += [
                        spike_fifo.w_data.eq(u3_index),
                        spike_fifo.w_en.eq(~is_last),
                    ]
        m.d.comb += [
            self.o_events.payload.neuron.eq(u3_index),
            self.o_events.payload.layer.eq(layer + 1),
            self.o_events.payload.tick.eq(tick),
        ]

        # ---- host port -------------------------------------------------------------------------
        host = self.host
        region = host.address[layout.offset_bits:layout.offset_bits + 2]
        offset = host.address[:layout.offset_bits]
        host_region = Signal(2)
        host_error = Signal()
        host_register = Signal(range(len(REGISTERS)))
        host_lane = Signal(max(1, lane_bits))

        # Weight addresses: (row << post_bits) | post, row counting presynaptic rows.
        weight_row = offset >> layout.post_bits
        weight_post = offset[:layout.post_bits] if layout.post_bits else Const(0, 1)
        weight_word = Signal(weight_address)
        weight_valid = Signal()
        for lay in layout.layers:
            with m.If((weight_row >= lay.row_base) & (weight_row < lay.row_base + lay.n_pre)
                      & (weight_post < lay.n_post)):
                m.d.comb += [
                    weight_valid.eq(1),
                    weight_word.eq(lay.weight_base + (weight_row - lay.row_base) * lay.row_words
                                   + (weight_post >> lane_bits)),
                ]
        neuron_valid = offset < layout.state_words
        write_value = host.write_data

        # ---- phase machine ---------------------------------------------------------------------
        payload = self.i_events.payload
        in_range = payload.address < config.n_inputs
        with m.FSM(name="phase"):
            with m.State("INPUT"):
                host_turn = host.strobe & delivery_idle
                m.d.comb += [
                    walk_enable.eq(~host.strobe),
                    event_valid.eq(self.i_events.valid & ~payload.end_of_tick & in_range),
                    event_pre.eq(payload.address),
                ]
                with m.If(host_turn):
                    m.next = "HOST_ACCESS"
                with m.Elif(self.i_events.valid & ~host.strobe):
                    with m.If(payload.end_of_tick):
                        with m.If(delivery_idle):
                            m.d.comb += self.i_events.ready.eq(1)
                            m.d.sync += [
                                update_index.eq(0),
                                spike_count.eq(0),
                                spikes_taken.eq(0),
                            ]
                            m.next = "UPDATE"
                    with m.Elif(~in_range):
                        # Dropped without touching any state, and counted.
                        m.d.comb += self.i_events.ready.eq(1)
                        with m.If(dropped_events != DROPPED_EVENTS_MAX):
                            m.d.sync += dropped_events.eq(dropped_events + 1)
                    with m.Else():
                        m.d.comb += self.i_events.ready.eq(event_take)

            with m.State("UPDATE"):
                m.d.comb += [
                    update_enable.eq(1),
                    self.o_events.valid.eq(u3_valid & fire.spike),
                ]
                with m.If(~update_issue & ~u2_valid & ~u3_valid):
                    m.d.sync += spikes_taken.eq(0)
                    with m.If(is_last):
                        m.next = "END_TICK"
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)
                        m.next = "DELIVER"

            with m.State("DELIVER"):
                if spiking_layers:
                    m.d.comb += [
                        walk_enable.eq(1),
                        event_valid.eq(spike_fifo.r_rdy),
                        event_pre.eq(spike_fifo.r_data),
                        spike_fifo.r_en.eq(event_take),
                    ]
                    with m.If(event_take):
                        m.d.sync += spikes_taken.eq(spikes_taken + 1)
                with m.If((spikes_taken == spike_count) & delivery_idle):
                    m.d.sync += [
                        update_index.eq(0),
                        spike_count.eq(0),
                    ]
                    m.next = "UPDATE"

            with m.State("END_TICK"):
                m.d.comb += [
                    self.o_events.valid.eq(1),
                    self.o_events.payload.end_of_tick.eq(1),
                    self.o_events.payload.neuron.eq(0),
                    self.o_events.payload.layer.eq(0),
                ]
                with m.If(self.o_events.ready):
                    # Input events of the next tick are delivered to layer 1.
                    m.d.sync += [tick.eq(tick + 1), layer.eq(0)]
                    m.next = "INPUT"

            with m.State("HOST_ACCESS"):
                m.d.sync += [
                    host_region.eq(region),
                    host_register.eq(offset),
                    host_lane.eq(weight_post if lanes > 1 else 0),
                    host_error.eq(0),
                ]
                m.next = "HOST_ACK"
                with m.Switch(region):
                    with m.Case(REGION_REGISTERS):
                        with m.If(offset >= len(REGISTERS)):
                            m.d.sync += host_error.eq(1)
                        with m.Elif(host.write):
                            with m.If(offset == REGISTERS["dropped_events"]):
                                m.d.sync += dropped_events.eq(0)
                            with m.Elif(offset == REGISTERS["flags"]):
                                m.d.sync += flags.eq(flags & ~write_value[:2])
                            with m.Else():
                                m.d.sync += host_error.eq(1)
                    with m.Case(REGION_WEIGHTS):
                        m.d.comb += weights_rd.addr.eq(weight_word)
                        with m.If(~weight_valid):
                            m.d.sync += host_error.eq(1)
                        with m.Elif(host.write):
                            with m.If(_fits_signed(write_value, config.weight_bits)):
                                m.d.comb += [
                                    weights_wr.addr.eq(weight_word),
                                    weights_wr.data.eq(Cat(*[write_value[:config.weight_bits]]
                                                           * lanes)),
                                    weights_wr.en.eq(Const(1, lanes) << weight_post[:lane_bits]
                                                    if lanes > 1 else 1),
                                ]
                            with m.Else():
                                m.d.sync += host_error.eq(1)
                    with m.Case(REGION_MEMBRANE):
                        m.d.comb += membrane_rd.addr.eq(offset)
                        with m.If(~neuron_valid):
                            m.d.sync += host_error.eq(1)
                        with m.Elif(host.write):
                            with m.If(_fits_signed(write_value, config.membrane_bits)):
                                m.d.comb += [
                                    membrane_wr.addr.eq(offset),
                                    membrane_wr.data.eq(write_value),
                                    membrane_wr.en.eq(1),
                                ]
                            with m.Else():
                                m.d.sync += host_error.eq(1)
                    with m.Case(REGION_REFRACTORY):
                        m.d.comb += refractory_rd.addr.eq(offset)
                        with m.If(~neuron_valid):
                            m.d.sync += host_error.eq(1)
                        with m.Elif(host.write):
                            with m.If(write_value <= config.refractory_ticks):
                                m.d.comb += [
                                    refractory_wr.addr.eq(offset),
                                    refractory_wr.data.eq(write_value),
                                    refractory_wr.en.eq(1),
                                ]
                            with m.Else():
                                m.d.sync += host_error.eq(1)

            with m.State("HOST_ACK"):
                m.d.comb += [
                    host.ack.eq(1),
                    host.error.eq(host_error),
                ]
                read_data = Signal(HOST_DATA_BITS)
                with m.Switch(host_region):
                    with m.Case(REGION_REGISTERS):
                        with m.Switch(host_register):
                            for name, value in (("magic", CORE_MAGIC), ("tick", tick),
                                                ("dropped_events", dropped_events),
                                                ("flags", flags), ("layers", n_layers),
                                                ("neurons", config.n_neurons)):
                                with m.Case(REGISTERS[name]):
                                    m.d.comb += read_data.eq(value)
                    with m.Case(REGION_WEIGHTS):
                        lane_value = (weights_rd.data[host_lane] if lanes > 1
                                      else weights_rd.data[0])
                        m.d.comb += read_data.eq(lane_value)
                    with m.Case(REGION_MEMBRANE):
                        m.d.comb += read_data.eq(membrane_rd.data)
                    with m.Case(REGION_REFRACTORY):
                        m.d.comb += read_data.eq(refractory_rd.data)
                with m.If(~host_error):
                    m.d.comb += host.read_data.eq(read_data)
                m.next = "INPUT"

        return m
