"""The inference core: time-multiplexed LIF neurons with event-driven synaptic delivery.

It runs the tick of :mod:`plasticore.golden.lif` bit for bit. How the hardware does it:

Phases
    ``CLEAR`` (after reset only): the accumulators are written to zero, one word per cycle,
    so that a reset in the middle of a tick leaves no partial sums (the memories of state
    and weights are kept; the registers take their reset values).
    ``INPUT``: input events are delivered to layer 1 as they arrive; the host port is
    served between events (a write inside an open tick is refused:
    :mod:`plasticore.hdl.shell`). An ``end_of_tick`` event starts ``UPDATE`` of layer 1.
    ``UPDATE``: one neuron per cycle reads its membrane, refractory counter and accumulator,
    is updated (:class:`LifIntegrate`, a register, :class:`LifFire`: three pipeline
    stages), written back, and its accumulator cleared. A spike
    goes to ``o_events`` (the pass stalls while the output is not ready) and, unless this
    is the last layer, into the spike FIFO. ``DELIVER``: the FIFO's spikes are delivered to
    the next layer, then that layer is updated. With recurrent projections (inference core
    only) ``RECURRENT`` follows the last layer: each recurrent projection replays its
    source layer's spikes, kept in a :class:`SpikeList` during that layer's update, through
    the row walker into the target layer's accumulators, which the next tick starts from
    (step 3 of :mod:`plasticore.golden.lif`). After that ``END_TICK`` sends the
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
eRBP learning (``rule = "erbp"``; a core with ``rule = "none"`` has none of this logic)
    It runs the tick of :mod:`plasticore.golden.erbp`. The synapse index of the rounding
    draw is the weight word address (one weight per word: the eRBP core has one lane), so
    the row walker's address enters the Threefry pipeline (:class:`Threefry2x32`) and the
    word travels beside it for its ``latency`` cycles before it is read. One cycle before
    the read the postsynaptic soma and dendrite are read (they still hold the start of the
    tick: neither is written during delivery), and :class:`ErbpWeightStep` turns them and
    the draw into the weight's change. In the cycle the accumulator is written back, the
    weight is written back too, through :class:`WeightUpdate`: learning costs no cycle per
    synaptic event, only the pipeline's fill once per delivered layer. Label events
    (addresses ``N_in + k``) add into per-class label sums as they arrive. After the last
    layer's update three passes finish the tick: ``ERROR`` (one cycle per class, E+ and E-
    side by side), ``FEEDBACK`` (for each hidden layer and each error spike, a walk over
    the layer adding the spike's row of the feedback ROM into the accumulators, which
    are free after the somatic update), ``DENDRITE`` (one neuron per cycle, leaking and
    adding the feedback, clearing the accumulator).
"""

from amaranth.hdl import Array, Assert, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.utils import ceil_log2

from plasticore.config import ConfigError, CoreConfig
from plasticore.layout import (CORE_MAGIC, FLAG_ACCUMULATOR_SATURATED, FLAG_DENDRITE_SATURATED,
                               FLAG_ERROR_SATURATED, FLAG_MEMBRANE_SATURATED,
                               FLAG_WEIGHT_SATURATED, REGION_DENDRITE, REGION_ERROR,
                               REGION_MEMBRANE, REGION_REFRACTORY, REGION_REGISTERS,
                               REGION_WEIGHTS, CoreLayout)
from plasticore.golden.erbp import feedback_matrices
from .arith import fits_signed, saturate
from .erbp import DendriteUpdate, ErbpWeightStep, ErrorNeuron
from .interfaces import ADDRESS_BITS
from .neuron import LifFire, LifIntegrate, raw_shape
from .prng import Threefry2x32
from .recurrence import SpikeList
from .shell import (CoreShell, HostDecoder, SharedNames, assert_one_owner, count_saturating,
                    open_tick, select_constants, send_end_of_tick, serve_memory,
                    serve_register_write, weight_word_decoder)
from .synapse import LaneAccumulate, WeightUpdate, accumulator_word_layout, weight_word_layout

__all__ = ["Core"]

#: Threefry rounds between pipeline registers in the eRBP core: two 32-bit additions in
#: series stay shorter than the core's other paths on an iCE40.
PRNG_ROUNDS_PER_STAGE = 2


def _bit(flag: int) -> int:
    """The bit index of a one-bit flag mask."""
    return flag.bit_length() - 1


class Core(CoreShell):
    """A LIF core (feedforward, or with recurrent projections), with eRBP learning for
    ``rule = "erbp"``, built from a :class:`CoreConfig`.

    The parameters (``config``, ``checks``) and the ports (``i_events``, ``o_events``,
    ``host``) are those of :class:`plasticore.hdl.shell.CoreShell`; the host memory map is
    :class:`plasticore.layout.CoreLayout`.
    """

    layout_class = CoreLayout

    @classmethod
    def check_config(cls, config: CoreConfig) -> None:
        super().check_config(config)
        if config.rule not in ("none", "erbp"):
            raise ConfigError("rule", config.rule,
                              "Core builds rule = \"none\" or \"erbp\"; "
                              "plasticore.hdl.cores.make_core picks the core of other rules")
        if config.rule == "erbp" and config.lanes != 1:
            raise ConfigError("lanes", config.lanes,
                              "must be 1 for rule = \"erbp\" (the eRBP core reads one weight "
                              "and one postsynaptic state per cycle)")

    def elaborate(self, platform):
        config, layout = self._config, self._layout
        lanes, lane_bits = config.lanes, layout.lane_bits
        n_layers = len(layout.layers)
        max_post = max(config.neuron_layers)
        m = Module()
        # The parts below share their signals through `ns`, in this order.
        ns = SharedNames()
        ns.keep(locals())

        self._memories(m, ns)
        self._registers(m, ns)
        self._delivery(m, ns)
        self._update_pass(m, ns)
        self._erbp_passes(m, ns)
        self._host_decoder(m, ns)
        with m.FSM(init="CLEAR", name="phase") as phase:
            ns.keep({"phase": phase})
            self._input_phases(m, ns)
            self._layer_phases(m, ns)
            self._end_phases(m, ns)
            self._tick_and_host_phases(m, ns)
        self._assertions(m, ns)
        return m

    def _memories(self, m, ns):
        """Add the weight, accumulator and state memories, the spike FIFO and the leaf units."""
        (config, layout) = ns.take(
            "config", "layout")
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

        learning = config.rule == "erbp"
        params = config.learning
        n_classes = config.layers[-1]
        hidden_layers = layout.layers[:-1]
        membrane_high = (1 << (config.membrane_bits - 1)) - 1
        if learning:
            m.submodules.dendrites = dendrites = Memory(
                shape=signed(config.membrane_bits), depth=layout.state_words, init=[])
            dendrite_wr = dendrites.write_port()
            dendrite_rd = dendrites.read_port(transparent_for=(dendrite_wr,))
            # The fixed error -> hidden dendrite weights, row k (class) after row k - 1,
            # hidden layer after hidden layer. The prediction layer's feedback is one to
            # one with a single weight and needs no storage.
            feedback_rows, feedback_base = [], []
            for matrix in feedback_matrices(config)[:-1]:
                feedback_base.append(len(feedback_rows))
                feedback_rows.extend(int(value) for value in matrix.reshape(-1))
            feedback_bits = max(abs(value) for value in feedback_rows).bit_length() + 1
            m.submodules.feedback = feedback_rom = Memory(
                shape=signed(feedback_bits), depth=len(feedback_rows), init=feedback_rows)
            feedback_rd = feedback_rom.read_port()

        # Spikes of a layer wait here until they are delivered to the next one. A layer
        # writes at most one spike per neuron before any is read; the buffered FIFO's output
        # register is one entry on top of the memory, hence depth + 1.
        spiking_layers = config.neuron_layers[:-1]
        if spiking_layers:
            m.submodules.spike_fifo = spike_fifo = SyncFIFOBuffered(
                width=max(1, ceil_log2(max(spiking_layers))), depth=max(spiking_layers) + 1)

        m.submodules.integrate = integrate = LifIntegrate(config)
        m.submodules.fire = fire = LifFire(config)
        m.submodules.lane_add = lane_add = LaneAccumulate(
            config, params.soma_gain_shift if learning else 0)

        ns.keep(locals())

    def _registers(self, m, ns):
        """Add the registers, the per-layer constants and the projection the walker delivers along."""
        (config, layout, learning, max_post, membrane_high, n_classes, n_layers, params) = ns.take(
            "config", "layout", "learning", "max_post", "membrane_high", "n_classes",
            "n_layers", "params")
        tick = Signal(32)
        dropped_events = Signal(32)
        flags = Signal(5 if learning else 2)
        # Flags raised this cycle, bit by bit: several stages may raise different ones.
        flags_raised = Signal.like(flags)
        m.d.sync += flags.eq(flags | flags_raised)
        layer = Signal(range(n_layers))            # 0-based neuron layer being worked on

        if learning:
            learning_enabled = Signal()
            sample_tick = Signal(32)
            burn_in_ticks = Signal(32, init=params.burn_in_ticks)
            rate_shift = Signal(range(33), init=params.learning_rate_shift)
            rate_mask = Signal(32, init=(1 << params.learning_rate_shift) - 1)
            learn_active = Signal()
            m.d.comb += learn_active.eq(learning_enabled & (sample_tick >= burn_in_ticks))

            # Label inputs of this tick, as counts: every label adds the same weight, so the
            # saturating sum of n of them is min(n w, high) (E+) and max(-n w, low) (E-),
            # and a count that reaches n w > high stands for all larger ones.
            label_count_max = membrane_high // params.error_input_weight + 1
            label_counts = Array(Signal(range(label_count_max + 1), name=f"label_count_{k}")
                                 for k in range(n_classes))
            # E+ and E- of a class in one memory word: their states are never negative.
            error_bits = config.membrane_bits - 1
            m.submodules.error_states = error_states = Memory(
                shape=data.ArrayLayout(unsigned(error_bits), 2), depth=n_classes, init=[])
            error_wr = error_states.write_port(granularity=1)
            error_rd = error_states.read_port(transparent_for=(error_wr,))
            predictions = Signal(n_classes)         # prediction spikes of this tick
            spikes_plus = Signal(n_classes)         # error spikes of this tick
            spikes_minus = Signal(n_classes)

        # Per-layer constants of the current layer.
        n_post = Signal(range(max_post + 1))
        row_words = Signal(range(max(lay.row_words for lay in layout.layers) + 1))
        weight_address = range(layout.weight_words + 1)       # shape of a weight word address
        acc_base = Signal(range(layout.accumulator_words + 1))
        state_base = Signal(range(layout.state_words + 1))
        is_last = Signal()
        select_constants(m, layer, (n_post, row_words, acc_base, state_base, is_last), [
            (lay.n_post, lay.row_words, lay.accumulator_base, lay.state_base,
             index == n_layers - 1) for index, lay in enumerate(layout.layers)])

        # The projection the row walker delivers along: the one feeding `layer`, or in
        # RECURRENT the recurrent projection `recurrent_index`, with its own constants.
        recurrent = layout.recurrent
        if recurrent:
            recurrent_active = Signal()
            recurrent_index = Signal(range(len(recurrent)))
            projection = Signal(range(len(layout.projections)))
            m.d.comb += projection.eq(Mux(recurrent_active, n_layers + recurrent_index, layer))
            walk_row_words, walk_acc_base = Signal.like(row_words), Signal.like(acc_base)
            select_constants(m, projection, (walk_row_words, walk_acc_base), [
                (lay.row_words, lay.accumulator_base) for lay in layout.projections])
            spike_lists = {}
            for source in sorted({lay.source for lay in recurrent}):
                spike_lists[source] = SpikeList(config.layers[source])
                m.submodules[f"spike_list_{source}"] = spike_lists[source]
        else:
            projection, walk_row_words, walk_acc_base = layer, row_words, acc_base

        ns.keep(locals())

    def _delivery(self, m, ns):
        """Add the row walker (a presynaptic event to a stream of weight words) and the eRBP weight stage."""
        (acc_base, acc_rd, acc_wr, config, dendrite_rd, flags_raised, lane_add, lanes, layout,
         learn_active, learning, membrane_rd, params, projection, rate_mask, rate_shift,
         row_words, tick, walk_acc_base, walk_row_words, weight_address, weights_rd, weights_wr) = ns.take(
            "acc_base", "acc_rd", "acc_wr", "config", "dendrite_rd", "flags_raised",
            "lane_add", "lanes", "layout", "learn_active", "learning", "membrane_rd",
            "params", "projection", "rate_mask", "rate_shift", "row_words", "tick",
            "walk_acc_base", "walk_row_words", "weight_address", "weights_rd", "weights_wr")
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
        with m.Switch(projection):
            for index, lay in enumerate(layout.projections):
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
        with m.If(walk_active):
            m.d.sync += [
                walk_weight_addr.eq(walk_weight_addr + 1),
                walk_acc_addr.eq(walk_acc_addr + 1),
                walk_words_left.eq(walk_words_left - 1),
            ]
        # eRBP: the word's address is its synapse index; the word waits `lead` cycles
        # beside its rounding draw before it is read.
        if learning:
            m.submodules.prng = prng = Threefry2x32(
                (params.rounding_seed, 0), params.prng_rounds,
                min(PRNG_ROUNDS_PER_STAGE, params.prng_rounds))
            m.d.comb += [prng.counter0.eq(tick), prng.counter1.eq(walk_weight_addr)]
            lead = prng.latency
        else:
            lead = 0
        lead_valid, lead_weight_addr, lead_acc_addr = [walk_active], [walk_weight_addr], \
            [walk_acc_addr]
        for stage in range(1, lead + 1):
            lead_valid.append(Signal(name=f"lead{stage}_valid"))
            lead_weight_addr.append(Signal(weight_address, name=f"lead{stage}_weight_addr"))
            lead_acc_addr.append(Signal.like(acc_base, name=f"lead{stage}_acc_addr"))
            m.d.sync += [
                lead_valid[stage].eq(lead_valid[stage - 1]),
                lead_weight_addr[stage].eq(lead_weight_addr[stage - 1]),
                lead_acc_addr[stage].eq(lead_acc_addr[stage - 1]),
            ]
        issue_valid, issue_weight_addr, issue_acc_addr = (
            lead_valid[-1], lead_weight_addr[-1], lead_acc_addr[-1])
        delivery_idle = ~walk_active & ~pending_valid
        for valid in lead_valid[1:]:
            delivery_idle = delivery_idle & ~valid
        with m.If(issue_valid):
            m.d.comb += [
                weights_rd.addr.eq(issue_weight_addr),
                acc_rd.addr.eq(issue_acc_addr),
            ]
        m.d.sync += [
            deliver_valid.eq(issue_valid),
            deliver_acc_addr.eq(issue_acc_addr),
        ]
        with m.If(walker_load):
            m.d.sync += [
                walk_active.eq(1),
                walk_weight_addr.eq(pending_row_start),
                walk_acc_addr.eq(walk_acc_base),
                walk_words_left.eq(walk_row_words - 1),
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
                m.d.comb += flags_raised[_bit(FLAG_ACCUMULATOR_SATURATED)].eq(1)

        if learning:
            # One cycle before the weight is read: its postsynaptic soma and dendrite (the
            # accumulator address is the neuron index: one lane).
            with m.If(lead_valid[-2]):
                m.d.comb += [
                    membrane_rd.addr.eq(lead_acc_addr[-2]),
                    dendrite_rd.addr.eq(lead_acc_addr[-2]),
                ]
            m.submodules.weight_step = weight_step = ErbpWeightStep(config)
            m.d.comb += [
                weight_step.membrane.eq(membrane_rd.data),
                weight_step.dendrite.eq(dendrite_rd.data),
                weight_step.random.eq(prng.word0),
                weight_step.shift.eq(rate_shift),
                weight_step.mask.eq(rate_mask),
                weight_step.active.eq(learn_active),
            ]
            deliver_delta = Signal(signed(config.membrane_bits))
            deliver_weight_addr = Signal(weight_address)
            m.d.sync += [
                deliver_delta.eq(weight_step.delta),
                deliver_weight_addr.eq(issue_weight_addr),
            ]
            # Written back in the cycle the accumulator is: the read port is transparent,
            # so the next event on the same row reads the learned weight.
            m.submodules.weight_update = weight_update = WeightUpdate(
                config.weight_bits, signed(config.membrane_bits))
            m.d.comb += [
                weight_update.weight.eq(weights_rd.data[0]),
                weight_update.delta.eq(deliver_delta),
            ]
            with m.If(deliver_valid):
                m.d.comb += [
                    weights_wr.addr.eq(deliver_weight_addr),
                    weights_wr.data.eq(Cat(weight_update.new_weight)),
                    weights_wr.en.eq(1),
                ]
                with m.If(weight_update.saturated):
                    m.d.comb += flags_raised[_bit(FLAG_WEIGHT_SATURATED)].eq(1)

        ns.keep(locals())

    def _update_pass(self, m, ns):
        """Add the population's update pass: one neuron per cycle, spikes out as a stream."""
        (acc_base, acc_rd, acc_wr, config, fire, flags_raised, integrate, is_last, lane_bits,
         lanes, layer, learning, max_post, membrane_rd, membrane_wr, n_post, predictions,
         recurrent, refractory_rd, refractory_wr, spike_fifo, spike_lists, spiking_layers,
         state_base, tick) = ns.take(
            "acc_base", "acc_rd", "acc_wr", "config", "fire", "flags_raised", "integrate",
            "is_last", "lane_bits", "lanes", "layer", "learning", "max_post", "membrane_rd",
            "membrane_wr", "n_post", "predictions", "recurrent", "refractory_rd",
            "refractory_wr", "spike_fifo", "spike_lists", "spiking_layers", "state_base",
            "tick")
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
                m.d.comb += flags_raised[_bit(FLAG_MEMBRANE_SATURATED)].eq(1)
            with m.If(fire.spike):
                m.d.sync += spike_count.eq(spike_count + 1)
                if learning:
                    with m.If(is_last):
                        m.d.sync += predictions.bit_select(u3_index, 1).eq(1)
                if spiking_layers:
                    m.d.comb += [
                        spike_fifo.w_data.eq(u3_index),
                        spike_fifo.w_en.eq(~is_last),
                    ]
                if recurrent:
                    for source, spike_list in spike_lists.items():
                        m.d.comb += [
                            spike_list.w_data.eq(u3_index),
                            spike_list.w_en.eq(layer == source - 1),
                        ]
        m.d.comb += [
            self.o_events.payload.neuron.eq(u3_index),
            self.o_events.payload.layer.eq(layer + 1),
            self.o_events.payload.tick.eq(tick),
        ]

        ns.keep(locals())

    def _erbp_passes(self, m, ns):
        """Add the eRBP tick passes: error neurons, feedback and dendrites."""
        (acc_base, acc_rd, acc_wr, config, dendrite_rd, dendrite_wr, error_bits, error_rd,
         error_wr, feedback_base, feedback_rd, feedback_rows, flags_raised, hidden_layers,
         is_last, label_counts, layer, learning, max_post, membrane_high, n_classes, n_post,
         params, predictions, spikes_minus, spikes_plus, state_base) = ns.take(
            "acc_base", "acc_rd", "acc_wr", "config", "dendrite_rd", "dendrite_wr",
            "error_bits", "error_rd", "error_wr", "feedback_base", "feedback_rd",
            "feedback_rows", "flags_raised", "hidden_layers", "is_last", "label_counts",
            "layer", "learning", "max_post", "membrane_high", "n_classes", "n_post",
            "params", "predictions", "spikes_minus", "spikes_plus", "state_base")
        if learning:
            # ---- error neurons (step 4), one class per cycle ---------------------------------
            # Two stages: read class `error_index`, then update and write it back.
            # The label sums are formed while the state is read.
            error_index = Signal(range(n_classes + 1))
            error_issue = Signal()
            error_write = Signal()
            error_write_index = Signal(range(n_classes))
            error_label_plus = Signal(signed(config.membrane_bits))
            error_label_minus = Signal(signed(config.membrane_bits))
            error_predicted = Signal()
            label_total = label_counts[error_index] * params.error_input_weight
            m.d.sync += [
                error_write.eq(error_issue),
                error_write_index.eq(error_index),
                error_label_plus.eq(Mux(label_total > membrane_high, membrane_high,
                                        label_total)),
                error_label_minus.eq(-Mux(label_total > membrane_high + 1, membrane_high + 1,
                                          label_total)),
                error_predicted.eq(predictions.bit_select(error_index, 1)),
            ]
            with m.If(error_issue):
                m.d.comb += error_rd.addr.eq(error_index)
                m.d.sync += error_index.eq(error_index + 1)
            m.submodules.error_p = error_p = ErrorNeuron(config, +1)
            m.submodules.error_m = error_m = ErrorNeuron(config, -1)
            m.d.comb += [
                error_p.state.eq(error_rd.data[0]),
                error_p.label_sum.eq(error_label_plus),
                error_p.prediction.eq(error_predicted),
                error_m.state.eq(error_rd.data[1]),
                error_m.label_sum.eq(error_label_minus),
                error_m.prediction.eq(error_predicted),
            ]
            with m.If(error_write):
                m.d.comb += [
                    error_wr.addr.eq(error_write_index),
                    error_wr.data.eq(Cat(error_p.new_state[:error_bits],
                                         error_m.new_state[:error_bits])),
                    error_wr.en.eq(0b11),
                ]
                m.d.sync += [
                    label_counts[error_write_index].eq(0),
                    spikes_plus.bit_select(error_write_index, 1).eq(error_p.spike),
                    spikes_minus.bit_select(error_write_index, 1).eq(error_m.spike),
                ]
                with m.If(error_p.saturated | error_m.saturated):
                    m.d.comb += flags_raised[_bit(FLAG_ERROR_SATURATED)].eq(1)

            # ---- feedback (step 5, hidden layers): error spike rows into the accumulators --
            spikes_done = Signal(2 * n_classes)     # spikes of this layer already walked
            spikes_left = Cat(spikes_plus, spikes_minus) & ~spikes_done
            next_spike = Signal(range(2 * n_classes))   # the lowest: E+ ascending, then E-
            for bit in reversed(range(2 * n_classes)):
                with m.If(spikes_left[bit]):
                    m.d.comb += next_spike.eq(bit)
            next_negative = next_spike >= n_classes
            next_class = Mux(next_negative, next_spike - n_classes, next_spike)
            next_row = Signal(range(len(feedback_rows) + 1))
            with m.Switch(layer):
                for index, lay in enumerate(hidden_layers):
                    with m.Case(index):
                        m.d.comb += next_row.eq(feedback_base[index] + next_class * lay.n_post)
            feedback_walking = Signal()
            feedback_issue = Signal()
            feedback_row = Signal.like(next_row)
            feedback_negative = Signal()
            feedback_index = Signal(range(max_post + 1))
            feedback_write = Signal()
            feedback_write_addr = Signal.like(acc_base)
            feedback_write_negative = Signal()
            m.d.sync += [
                feedback_write.eq(feedback_issue),
                feedback_write_addr.eq(acc_base + feedback_index),
                feedback_write_negative.eq(feedback_negative),
            ]
            with m.If(feedback_issue):
                m.d.comb += [
                    feedback_rd.addr.eq(feedback_row + feedback_index),
                    acc_rd.addr.eq(acc_base + feedback_index),
                ]
                m.d.sync += feedback_index.eq(feedback_index + 1)
                with m.If(feedback_index == n_post - 1):
                    m.d.sync += feedback_walking.eq(0)
            feedback_value = Mux(feedback_write_negative, -feedback_rd.data, feedback_rd.data)
            feedback_sum, feedback_clamped = saturate(acc_rd.data[0] + feedback_value,
                                                      config.membrane_bits)
            with m.If(feedback_write):
                m.d.comb += [
                    acc_wr.addr.eq(feedback_write_addr),
                    acc_wr.data.eq(Cat(feedback_sum)),
                    acc_wr.en.eq(1),
                ]
                with m.If(feedback_clamped):
                    m.d.comb += flags_raised[_bit(FLAG_DENDRITE_SATURATED)].eq(1)

            # ---- dendrites (step 5), one neuron per cycle ---------------------------------
            m.submodules.dendrite_update = dendrite_update = DendriteUpdate(config)
            dendrite_index = Signal(range(max_post + 1))
            dendrite_issue = Signal()
            dendrite_write = Signal()
            dendrite_write_index = Signal(range(max_post))
            dendrite_write_last = Signal()
            dendrite_write_state = Signal.like(state_base)
            dendrite_write_acc = Signal.like(acc_base)
            m.d.sync += [
                dendrite_write.eq(dendrite_issue),
                dendrite_write_index.eq(dendrite_index),
                dendrite_write_last.eq(is_last),
                dendrite_write_state.eq(state_base + dendrite_index),
                dendrite_write_acc.eq(acc_base + dendrite_index),
            ]
            with m.If(dendrite_issue):
                m.d.comb += [
                    dendrite_rd.addr.eq(state_base + dendrite_index),
                    acc_rd.addr.eq(acc_base + dendrite_index),
                ]
                m.d.sync += dendrite_index.eq(dendrite_index + 1)
            # The prediction layer's feedback: +w for its E+ spike, then -w for its E-.
            output_weight = params.feedback_output_weight
            output_feedback, output_clamped = saturate(
                Mux(spikes_plus.bit_select(dendrite_write_index, 1), output_weight, 0)
                - Mux(spikes_minus.bit_select(dendrite_write_index, 1), output_weight, 0),
                config.membrane_bits)
            m.d.comb += [
                dendrite_update.dendrite.eq(dendrite_rd.data),
                dendrite_update.feedback.eq(Mux(dendrite_write_last, output_feedback,
                                                acc_rd.data[0])),
            ]
            with m.If(dendrite_write):
                m.d.comb += [
                    dendrite_wr.addr.eq(dendrite_write_state),
                    dendrite_wr.data.eq(dendrite_update.new_dendrite),
                    dendrite_wr.en.eq(1),
                    # The feedback sum is used: clear it for the next tick's delivery.
                    acc_wr.addr.eq(dendrite_write_acc),
                    acc_wr.en.eq(1),
                ]
                with m.If(dendrite_update.saturated
                          | (dendrite_write_last & output_clamped)):
                    m.d.comb += flags_raised[_bit(FLAG_DENDRITE_SATURATED)].eq(1)

        ns.keep(locals())

    def _host_decoder(self, m, ns):
        """Add the host decoder's address decode and register table, and the input classifier."""
        (burn_in_ticks, config, dropped_events, flags, label_counts, lane_bits, layout,
         learning, learning_enabled, n_classes, rate_mask, rate_shift, sample_tick) = ns.take(
            "burn_in_ticks", "config", "dropped_events", "flags", "label_counts",
            "lane_bits", "layout", "learning", "learning_enabled", "n_classes", "rate_mask",
            "rate_shift", "sample_tick")
        host = self.host
        registers = layout.registers
        # The register number, or the error neuron's index, is kept for the answer.
        decoder = HostDecoder(host, layout, range(max(len(registers), layout.error_neurons)))
        region, offset, host_error = decoder.region, decoder.offset, decoder.error
        host_lane = Signal(max(1, lane_bits))

        # Weight addresses: (row << post_bits) | post, row counting presynaptic rows.
        weight_word, weight_valid, weight_post = weight_word_decoder(m, layout, offset)
        neuron_valid = offset < layout.state_words
        write_value = host.write_data

        def serve_neuron_state(read_port, write_port):
            """A signed per-neuron state (membrane, dendrite)."""
            serve_memory(m, host, host_error, read_port, write_port, offset, neuron_valid,
                         fits_signed(write_value, config.membrane_bits), write_value)

        register_writes = {
            "dropped_events": (None, dropped_events.eq(0)),
            "flags": (None, flags.eq(flags & ~write_value[:len(flags)])),
        }
        if learning:
            register_writes.update({
                "learning_enabled": (write_value <= 1, learning_enabled.eq(write_value[0])),
                "sample_tick": (None, sample_tick.eq(write_value)),
                "burn_in_ticks": (None, burn_in_ticks.eq(write_value)),
                # 2**s - 1 as a thermometer code: bit i is i < s.
                "learning_rate_shift": ((write_value >= 1) & (write_value <= 32), [
                    rate_shift.eq(write_value),
                    rate_mask.eq(Cat(*(write_value[:6] > bit for bit in range(32)))),
                ]),
            })

        payload = self.i_events.payload
        in_range = payload.address < config.n_inputs
        tick_is_open = open_tick(m, self.i_events)
        if learning:
            is_label = ~in_range & (payload.address < config.n_inputs + n_classes)
            label_class = (payload.address - config.n_inputs)[:max(1, ceil_log2(n_classes))]
            label_count = label_counts[label_class]
        # After a reset the accumulators may hold part of a tick (or recurrent input for
        # the next one); every tick assumes they start as the golden model's do: zero.
        clear_index = Signal(range(layout.accumulator_words))
        ns.keep(locals())

    def _input_phases(self, m, ns):
        """Add the phases CLEAR and INPUT."""
        (acc_wr, clear_index, delivery_idle, dropped_events, event_pre, event_take, event_valid,
         flags_raised, host, in_range, is_label, label_count, label_count_max, lanes, layout,
         learning, payload, spike_count, spikes_taken, update_index, walk_enable) = ns.take(
            "acc_wr", "clear_index", "delivery_idle", "dropped_events", "event_pre",
            "event_take", "event_valid", "flags_raised", "host", "in_range", "is_label",
            "label_count", "label_count_max", "lanes", "layout", "learning", "payload",
            "spike_count", "spikes_taken", "update_index", "walk_enable")
        with m.State("CLEAR"):
            m.d.comb += [acc_wr.addr.eq(clear_index), acc_wr.en.eq(Const(-1, lanes))]
            m.d.sync += clear_index.eq(clear_index + 1)
            with m.If(clear_index == layout.accumulator_words - 1):
                m.next = "INPUT"

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
                if learning:
                    with m.Elif(is_label):
                        # Labels only add into their class's error inputs (step 4).
                        m.d.comb += self.i_events.ready.eq(1)
                        with m.If(label_count != label_count_max):
                            m.d.sync += label_count.eq(label_count + 1)
                        # This label's addition saturates once (n + 1) w > high.
                        with m.If(label_count >= label_count_max - 1):
                            m.d.comb += flags_raised[_bit(FLAG_ERROR_SATURATED)].eq(1)
                with m.Elif(~in_range):
                    # Dropped without touching any state, and counted.
                    m.d.comb += self.i_events.ready.eq(1)
                    m.d.sync += count_saturating(dropped_events)
                with m.Else():
                    m.d.comb += self.i_events.ready.eq(event_take)

        ns.keep(locals())

    def _layer_phases(self, m, ns):
        """Add the phases UPDATE and DELIVER."""
        (delivery_idle, error_index, event_pre, event_take, event_valid, fire, is_last, layer,
         learning, recurrent, recurrent_index, spike_count, spike_fifo, spike_lists,
         spikes_taken, spiking_layers, u2_valid, u3_valid, update_enable, update_index,
         update_issue, walk_enable) = ns.take(
            "delivery_idle", "error_index", "event_pre", "event_take", "event_valid",
            "fire", "is_last", "layer", "learning", "recurrent", "recurrent_index",
            "spike_count", "spike_fifo", "spike_lists", "spikes_taken", "spiking_layers",
            "u2_valid", "u3_valid", "update_enable", "update_index", "update_issue",
            "walk_enable")
        with m.State("UPDATE"):
            m.d.comb += [
                update_enable.eq(1),
                self.o_events.valid.eq(u3_valid & fire.spike),
            ]
            with m.If(~update_issue & ~u2_valid & ~u3_valid):
                m.d.sync += spikes_taken.eq(0)
                with m.If(is_last):
                    if learning:
                        m.d.sync += error_index.eq(0)
                        m.next = "ERROR"
                    elif recurrent:
                        m.d.sync += recurrent_index.eq(0)
                        m.d.comb += [spike_list.rewind.eq(1)
                                     for spike_list in spike_lists.values()]
                        m.next = "RECURRENT"
                    else:
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

        ns.keep(locals())

    def _end_phases(self, m, ns):
        """Add the phases after the last layer: eRBP's ERROR, FEEDBACK, DENDRITE; RECURRENT."""
        (delivery_idle, dendrite_index, dendrite_issue, error_index, error_issue, event_pre,
         event_take, event_valid, feedback_index, feedback_issue, feedback_negative,
         feedback_row, feedback_walking, hidden_layers, is_last, layer, learning, n_classes,
         n_post, next_negative, next_row, next_spike, predictions, recurrent, recurrent_active,
         recurrent_index, spike_lists, spikes_done, spikes_left, walk_enable) = ns.take(
            "delivery_idle", "dendrite_index", "dendrite_issue", "error_index",
            "error_issue", "event_pre", "event_take", "event_valid", "feedback_index",
            "feedback_issue", "feedback_negative", "feedback_row", "feedback_walking",
            "hidden_layers", "is_last", "layer", "learning", "n_classes", "n_post",
            "next_negative", "next_row", "next_spike", "predictions", "recurrent",
            "recurrent_active", "recurrent_index", "spike_lists", "spikes_done",
            "spikes_left", "walk_enable")
        if learning:
            with m.State("ERROR"):
                with m.If(error_index != n_classes):
                    m.d.comb += error_issue.eq(1)
                with m.Else():
                    # The last class is written back in this cycle.
                    m.d.sync += [
                        predictions.eq(0),
                        spikes_done.eq(0),
                        feedback_walking.eq(0),
                        layer.eq(0),
                    ]
                    m.next = "FEEDBACK"

            with m.State("FEEDBACK"):
                with m.If(feedback_walking):
                    m.d.comb += feedback_issue.eq(1)
                with m.Elif(spikes_left.any()):
                    m.d.sync += [
                        spikes_done.bit_select(next_spike, 1).eq(1),
                        feedback_walking.eq(1),
                        feedback_index.eq(0),
                        feedback_row.eq(next_row),
                        feedback_negative.eq(next_negative),
                    ]
                with m.Else():
                    m.d.sync += spikes_done.eq(0)
                    with m.If(layer == len(hidden_layers) - 1):
                        m.d.sync += [layer.eq(0), dendrite_index.eq(0)]
                        m.next = "DENDRITE"
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)

            with m.State("DENDRITE"):
                with m.If(dendrite_index < n_post):
                    m.d.comb += dendrite_issue.eq(1)
                with m.Elif(is_last):
                    m.next = "END_TICK"
                with m.Else():
                    m.d.sync += [layer.eq(layer + 1), dendrite_index.eq(0)]

        if recurrent:
            with m.State("RECURRENT"):
                # Step 3: each recurrent projection replays its source's spike list.
                m.d.comb += [recurrent_active.eq(1), walk_enable.eq(1)]
                replayed = Signal()
                with m.Switch(recurrent_index):
                    for index, lay in enumerate(recurrent):
                        spike_list = spike_lists[lay.source]
                        with m.Case(index):
                            m.d.comb += [
                                event_valid.eq(spike_list.valid),
                                event_pre.eq(spike_list.data),
                                spike_list.take.eq(event_take),
                                replayed.eq(~spike_list.valid),
                            ]
                with m.If(replayed & delivery_idle):
                    m.d.comb += [spike_list.rewind.eq(1)
                                 for spike_list in spike_lists.values()]
                    with m.If(recurrent_index == len(recurrent) - 1):
                        m.next = "END_TICK"
                    with m.Else():
                        m.d.sync += recurrent_index.eq(recurrent_index + 1)

        ns.keep(locals())

    def _tick_and_host_phases(self, m, ns):
        """Add the phases END_TICK, HOST_ACCESS and HOST_ACK."""
        (burn_in_ticks, config, decoder, dendrite_rd, dendrite_wr, dropped_events, error_bits,
         error_rd, error_wr, flags, host, host_error, host_lane, lane_bits, lanes, layer, layout,
         learning, learning_enabled, membrane_high, membrane_rd, membrane_wr, n_classes,
         n_layers, neuron_valid, offset, rate_shift, recurrent, refractory_rd, refractory_wr,
         register_writes, registers, sample_tick, serve_neuron_state, spike_lists, tick,
         tick_is_open, weight_post, weight_valid, weight_word, weights_rd, weights_wr,
         write_value) = ns.take(
            "burn_in_ticks", "config", "decoder", "dendrite_rd", "dendrite_wr",
            "dropped_events", "error_bits", "error_rd", "error_wr", "flags", "host",
            "host_error", "host_lane", "lane_bits", "lanes", "layer", "layout", "learning",
            "learning_enabled", "membrane_high", "membrane_rd", "membrane_wr", "n_classes",
            "n_layers", "neuron_valid", "offset", "rate_shift", "recurrent",
            "refractory_rd", "refractory_wr", "register_writes", "registers", "sample_tick",
            "serve_neuron_state", "spike_lists", "tick", "tick_is_open", "weight_post",
            "weight_valid", "weight_word", "weights_rd", "weights_wr", "write_value")
        with m.State("END_TICK"):
            with m.If(send_end_of_tick(m, self.o_events)):
                # Input events of the next tick are delivered to layer 1.
                m.d.sync += layer.eq(0)
                if recurrent:
                    m.d.comb += [spike_list.clear.eq(1)
                                 for spike_list in spike_lists.values()]
                if learning:
                    # The tick counter names the rounding draws: it saturates, never wraps.
                    m.d.sync += [count_saturating(tick), count_saturating(sample_tick)]
                else:
                    m.d.sync += tick.eq(tick + 1)
                m.next = "INPUT"

        with m.State("HOST_ACCESS"):
            m.next = "HOST_ACK"
            with decoder.decode(m, tick_is_open, [host_lane.eq(weight_post if lanes > 1 else 0)]):
                with m.Case(REGION_REGISTERS):
                    serve_register_write(m, host, host_error, offset, registers,
                                         register_writes)
                with m.Case(REGION_WEIGHTS):
                    serve_memory(m, host, host_error, weights_rd, weights_wr, weight_word,
                                 weight_valid,
                                 fits_signed(write_value, config.weight_bits),
                                 Cat(*[write_value[:config.weight_bits]] * lanes),
                                 Const(1, lanes) << weight_post[:lane_bits]
                                 if lanes > 1 else 1)
                with m.Case(REGION_MEMBRANE):
                    serve_neuron_state(membrane_rd, membrane_wr)
                with m.Case(REGION_REFRACTORY):
                    serve_memory(m, host, host_error, refractory_rd, refractory_wr,
                                 offset, neuron_valid,
                                 write_value <= config.refractory_ticks, write_value)
                if learning:
                    with m.Case(REGION_DENDRITE):
                        serve_neuron_state(dendrite_rd, dendrite_wr)
                    with m.Case(REGION_ERROR):
                        # Error neurons never go negative: 0 .. 2**(membrane_bits-1) - 1.
                        minus = offset >= n_classes
                        serve_memory(m, host, host_error, error_rd, error_wr,
                                     Mux(minus, offset - n_classes, offset),
                                     offset < layout.error_neurons,
                                     write_value <= membrane_high,
                                     Cat(write_value[:error_bits], write_value[:error_bits]),
                                     Mux(minus, 0b10, 0b01))
                    with m.Default():
                        m.d.sync += host_error.eq(1)

        with m.State("HOST_ACK"):
            register_values = [("magic", CORE_MAGIC), ("tick", tick),
                               ("dropped_events", dropped_events), ("flags", flags),
                               ("layers", n_layers), ("neurons", config.n_neurons)]
            region_values = {
                REGION_WEIGHTS: (weights_rd.data[host_lane] if lanes > 1
                                 else weights_rd.data[0]),
                REGION_MEMBRANE: membrane_rd.data,
                REGION_REFRACTORY: refractory_rd.data,
            }
            if learning:
                register_values += [("learning_enabled", learning_enabled),
                                    ("sample_tick", sample_tick),
                                    ("burn_in_ticks", burn_in_ticks),
                                    ("learning_rate_shift", rate_shift)]
                region_values[REGION_DENDRITE] = dendrite_rd.data
                region_values[REGION_ERROR] = Mux(decoder.register < n_classes,
                                                  error_rd.data[0], error_rd.data[1])
            decoder.answer(m, registers, register_values, region_values)
            m.next = "INPUT"

        ns.keep(locals())

    def _assertions(self, m, ns):
        """Add the assertions of ``checks = True``."""
        (acc_rd, config, deliver_valid, dendrite_issue, dendrite_write, feedback_issue,
         feedback_write, host, issue_valid, lane_add, lanes, lead_valid, learning, params, phase,
         region, u3_commit, update_enable, weights_rd) = ns.take(
            "acc_rd", "config", "deliver_valid", "dendrite_issue", "dendrite_write",
            "feedback_issue", "feedback_write", "host", "issue_valid", "lane_add", "lanes",
            "lead_valid", "learning", "params", "phase", "region", "u3_commit",
            "update_enable", "weights_rd")
        if self.checks:
            host_decode = phase.ongoing("HOST_ACCESS")
            host_owners = {name: host_decode & (region == number) for name, number in (
                ("weights", REGION_WEIGHTS), ("membrane", REGION_MEMBRANE),
                ("refractory", REGION_REFRACTORY), ("dendrite", REGION_DENDRITE))}
            accumulator_readers = [issue_valid, update_enable]
            accumulator_writers = [deliver_valid, u3_commit, phase.ongoing("CLEAR")]
            membrane_readers = [update_enable, host_owners["membrane"]]
            if learning:
                accumulator_readers += [feedback_issue, dendrite_issue]
                accumulator_writers += [feedback_write, dendrite_write]
                membrane_readers.append(lead_valid[-2])
            for name, owners in (
                    ("accumulator read", accumulator_readers),
                    ("accumulator write", accumulator_writers),
                    ("weight read", [issue_valid, host_owners["weights"]]),
                    ("weight write", [deliver_valid if learning else Const(0, 1),
                                      host_owners["weights"] & host.write]),
                    ("membrane read", membrane_readers),
                    ("refractory read", [update_enable, host_owners["refractory"]])):
                assert_one_owner(m, name, owners)
            # Saturating delivery never wraps: an addition that was not clamped stores the
            # exact sum, one that was stores a bound.
            low, high = config.membrane_range
            gain = params.soma_gain_shift if learning else 0
            for lane in range(lanes):
                exact = acc_rd.data[lane] + (weights_rd.data[lane] << gain)
                stored = lane_add.sums[lane]
                m.d.sync += Assert(~deliver_valid | Mux(lane_add.saturated[lane],
                                                         (stored == low) | (stored == high),
                                                         stored == exact),
                                   f"accumulator lane {lane} wrapped")
        ns.keep(locals())
