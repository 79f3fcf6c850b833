"""eRBP's plasticity parts: the weight stage and the three passes at the end of a tick.

The rule's hardware lives here; :class:`plasticore.hdl.core.Core` plugs it into its
datapath when ``rule = "erbp"`` (a core with ``rule = "none"`` has none of it):

- :class:`ErbpWeightStage` sits on :class:`plasticore.hdl.projection.Delivery`'s
  ``plasticity`` member: every weight word the row walker issues gets its rounding draw,
  its postsynaptic soma and dendrite, and is rewritten in the cycle it is delivered;
- :class:`ErrorPass`, :class:`FeedbackPass` and :class:`DendritePass` run after the last
  layer's update, one after the other, each started with a ``start`` pulse and reporting
  ``done`` in its last cycle (steps 4 and 5 of :mod:`plasticore.golden.erbp`).

The arithmetic is in :mod:`plasticore.hdl.erbp`; these parts schedule it over memories.
"""

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from plasticore.rules.erbp import feedback_matrices
from .arith import saturate, saturate_sum, times_constant
from .erbp import DendriteLeak, DendriteUpdate, ErbpWeightStep, ErrorInput, ErrorNeuron
from .ports import read_access, write_access
from .prng import Threefry2x32, delayed
from .projection import (plasticity_signature, prng_rounds_per_stage, registered_reads,
                         weight_data_stage)
from .shell import select_constants
from .synapse import WeightUpdate, accumulator_word_layout

__all__ = ["ErbpWeightStage", "SignalPass", "ErrorPass", "FeedbackPass", "DendritePass",
           "error_word_layout", "signal_word_layout"]


def _one_hot_select(one_hot, values, width: int):
    """The constant ``values[k]`` for the set bit ``k`` of a one-hot value (0 for zero):
    an OR tree per result bit."""
    return Cat(*(Cat(*(one_hot[k] for k, value in enumerate(values) if value >> b & 1)).any()
                 for b in range(width)))


def _bits(depth: int) -> int:
    return max(0, ceil_log2(depth))


def _feedback_pass_members(n_classes: int) -> dict:
    """The members the two passes that spread the error spikes share: the sequencer's
    handshake, the spikes, the saturation flag."""
    return {"start": In(1), "done": Out(1),
            "spikes_plus": In(n_classes), "spikes_minus": In(n_classes),
            "saturated": Out(1)}


def error_word_layout(config):
    """E+ and E- of a class in one memory word: their states are never negative."""
    return data.ArrayLayout(unsigned(config.membrane_bits - 1), 2)


def _walk_neurons(m: Module, layout, start, done) -> SimpleNamespace:
    """Visit every neuron of every layer, one per cycle, from ``start``; ``done`` is driven
    in the cycle after the last one is issued (when a pass writes it back).

    Returns the layer's constants (``n_post``, ``state_base``, ``acc_base``, ``is_last``),
    the neuron ``index`` within it and ``issue`` (a neuron is visited in this cycle); the
    caller advances ``index`` when it issues.
    """
    layers = layout.layers
    walk = SimpleNamespace(
        layer=Signal(range(len(layers))),
        n_post=Signal(range(max(lay.n_post for lay in layers) + 1)),
        state_base=Signal(range(layout.state_words + 1)),
        acc_base=Signal(range(layout.accumulator_words + 1)),
        is_last=Signal(), issue=Signal())
    walk.index = Signal.like(walk.n_post)
    select_constants(m, walk.layer, (walk.n_post, walk.state_base, walk.acc_base, walk.is_last),
                     [(lay.n_post, lay.state_base, lay.accumulator_base, index == len(layers) - 1)
                      for index, lay in enumerate(layers)])
    running = Signal()
    with m.If(start):
        m.d.sync += [running.eq(1), walk.layer.eq(0), walk.index.eq(0)]
    with m.Elif(running & (walk.index < walk.n_post)):
        m.d.comb += walk.issue.eq(1)
    with m.Elif(running & walk.is_last):
        m.d.comb += done.eq(1)
        m.d.sync += running.eq(0)
    with m.Elif(running):
        m.d.sync += [walk.layer.eq(walk.layer + 1), walk.index.eq(0)]
    return walk


class ErbpWeightStage(wiring.Component):
    """The weight stage: each delivered weight changes by its postsynaptic neuron's step.

    With one lane the synapse index of the rounding draw is the weight word's address, so
    the walker's first-stage address enters the Threefry pipeline (a cycle later, through
    a register) and the word waits ``lead`` cycles beside its draw. One cycle before the
    weight is read, the postsynaptic soma and dendrite are read (they still hold the start
    of the tick: neither is written during delivery) and registered; in the next cycle
    :class:`ErbpWeightStep` turns them and the draw into the change, registered, and in
    the cycle after that (:func:`~plasticore.hdl.projection.weight_data_stage`)
    :class:`WeightUpdate` applies it to the weight read.

    With ``lanes`` lanes every lane has its own Threefry pipeline, named by its synapse
    (the walker's ``synapse`` plus the lane), and reads its neuron's learning signal from
    one word of the signal memory that :class:`SignalPass` fills at the start of the tick:
    one draw and one update per lane per cycle.

    Attributes
    ----------
    plasticity : In(plasticity_signature)
    tick : In(32)
        The tick counter (the draw's counter word 0).
    shift, mask, active : In
        The learning-rate shift, ``2**shift - 1``, and learning on in this tick.
    membrane_read, dendrite_read : Out(read_access)
        With one lane.
    signal_read : Out(read_access)
        With several lanes: the signal memory (:func:`signal_word_layout`).
    """

    def __init__(self, config, layout):
        self._config = config
        params = config.learning
        self._prngs = [Threefry2x32((params.rounding_seed, 0), params.prng_rounds,
                                    min(prng_rounds_per_stage(config), params.prng_rounds))
                       for _ in range(config.lanes)]
        state = signed(config.membrane_bits)
        members = {
            "plasticity": In(plasticity_signature(config, layout)),
            "tick": In(32), "shift": In(range(33)), "mask": In(32), "active": In(1),
        }
        if config.lanes == 1:
            bits = _bits(layout.state_words)
            members["membrane_read"] = Out(read_access(bits, state))
            members["dendrite_read"] = Out(read_access(bits, state))
        else:
            members["signal_read"] = Out(read_access(_bits(layout.accumulator_words),
                                                     signal_word_layout(config)))
        super().__init__(members)

    @property
    def lead(self) -> int:
        """Cycles from the walker's first stage to the weight read: the draw's latency."""
        return self._prngs[0].latency

    def elaborate(self, platform):
        config, plasticity, lanes = self._config, self.plasticity, self._config.lanes
        m = Module()
        early = plasticity.early
        if lanes == 1:
            synapse = plasticity.step.payload.weight_addr
            # The accumulator address is the postsynaptic neuron's index (one lane).
            reads = (self.membrane_read, self.dendrite_read)
        else:
            synapse = plasticity.step.payload.synapse
            reads = (self.signal_read,)
        with m.If(early.valid):
            for port in reads:
                m.d.comb += [port.valid.eq(1), port.addr.eq(early.payload.acc_addr)]
        # The step registers its shift and compare, and its change meets the weight word
        # in the stage after the word's read (weight_data_stage). With registered reads
        # the soma and dendrite (or the signal word) are registered as they are read, the
        # step works a cycle later, and so do the draws: the Threefry counters take the
        # synapse a cycle after the walker's first stage. Otherwise the change is held a
        # cycle.
        assert weight_data_stage(config) == 2
        registered = registered_reads(config)
        held = [port.data for port in reads]
        counter = synapse
        if registered:
            held = [Signal(value.shape(), name=f"held{index}") for index, value in enumerate(held)]
            counter = Signal.like(synapse)
            m.d.sync += [register.eq(port.data) for register, port in zip(held, reads)]
            m.d.sync += counter.eq(synapse)
        updates = []
        for lane, prng in enumerate(self._prngs):
            m.submodules[f"prng{lane}" if lanes > 1 else "prng"] = prng
            m.d.comb += [prng.counter0.eq(self.tick), prng.counter1.eq(counter + lane)]
            step = ErbpWeightStep(config, gated=lanes > 1,
                                  registered="change" if registered else True)
            m.submodules[f"step{lane}" if lanes > 1 else "step"] = step
            if lanes == 1:
                m.d.comb += [step.membrane.eq(held[0]), step.dendrite.eq(held[1])]
            else:
                m.d.comb += step.dendrite.eq(held[0][lane])
            m.d.comb += [
                step.random.eq(prng.word0),
                step.shift.eq(self.shift), step.mask.eq(self.mask), step.active.eq(self.active),
            ]
            delta = step.delta if registered else delayed(m, step.delta, 1, f"delta{lane}")
            update = WeightUpdate(config.weight_bits, signed(config.membrane_bits))
            m.submodules[f"update{lane}" if lanes > 1 else "update"] = update
            m.d.comb += [update.weight.eq(plasticity.old_weight[lane]), update.delta.eq(delta)]
            updates.append(update)
        m.d.comb += [
            plasticity.new_weight.eq(Cat(*(update.new_weight for update in updates))),
            plasticity.saturated.eq(Cat(*(update.saturated for update in updates)).any()),
        ]
        return m


def signal_word_layout(config):
    """A word of the signal memory: one learning signal per lane (:class:`SignalPass`)."""
    return data.ArrayLayout(signed(config.membrane_bits), config.lanes)


class SignalPass(wiring.Component):
    """Step 2 for a core with several lanes: every neuron's learning signal, once per tick.

    A lane of the weight stage needs its postsynaptic neuron's soma and dendrite in the
    cycle its weight is read, and ``lanes`` neurons' states do not come out of a memory of
    one neuron per word. Before delivery starts, this pass reads every neuron's soma ``v``
    and dendrite ``u`` (one neuron per cycle) and writes ``u`` if ``gate_low < v <
    gate_high`` else 0 into its lane of the signal memory, whose words are laid out as the
    accumulators' (word ``accumulator_base + i // lanes``, lane ``i % lanes``). Padding
    lanes are never written and stay 0: a zero signal is a zero step.

    Attributes
    ----------
    start : In(1)
    done : Out(1)
        In the cycle the last neuron is written.
    membrane_read, dendrite_read : Out(read_access)
    signal_write : Out(write_access)
    """

    def __init__(self, config, layout):
        self._config, self._layout = config, layout
        state = signed(config.membrane_bits)
        state_bits = _bits(layout.state_words)
        super().__init__({
            "start": In(1), "done": Out(1),
            "membrane_read": Out(read_access(state_bits, state)),
            "dendrite_read": Out(read_access(state_bits, state)),
            "signal_write": Out(write_access(_bits(layout.accumulator_words),
                                             signal_word_layout(config), config.lanes)),
        })

    def elaborate(self, platform):
        config, layout = self._config, self._layout
        params, lanes, lane_bits = config.learning, config.lanes, layout.lane_bits
        m = Module()
        walk = _walk_neurons(m, layout, self.start, self.done)
        state_base, acc_base, index, issue = walk.state_base, walk.acc_base, walk.index, walk.issue
        write = Signal()
        write_addr = Signal.like(acc_base)
        write_lane = Signal(lane_bits)
        m.d.sync += [write.eq(issue), write_addr.eq(acc_base + (index >> lane_bits)),
                     write_lane.eq(index[:lane_bits])]
        with m.If(issue):
            for port in (self.membrane_read, self.dendrite_read):
                m.d.comb += [port.valid.eq(1), port.addr.eq(state_base + index)]
            m.d.sync += index.eq(index + 1)
        soma = self.membrane_read.data
        inside = (soma > params.gate_low) & (soma < params.gate_high)
        signal = Mux(inside, self.dendrite_read.data, 0)
        with m.If(write):
            m.d.comb += [
                self.signal_write.addr.eq(write_addr),
                self.signal_write.data.eq(Cat(*[signal.as_signed()[:config.membrane_bits]]
                                              * lanes)),
                self.signal_write.en.eq(Const(1, lanes) << write_lane),
            ]
        return m


class ErrorPass(wiring.Component):
    """The error neurons (step 4): label counts during the tick, one class per cycle after.

    Label inputs are kept as counts: every label adds the same weight, so the saturating
    sum of ``n`` of them is ``min(n w, high)`` (E+) and ``max(-n w, low)`` (E-), and a count
    that reaches ``n w > high`` stands for all larger ones. After ``start`` the pass reads
    class ``k``'s label sums, then reads its state and forms its inputs
    (:class:`ErrorInput`), then updates E+ and E- (:class:`ErrorNeuron`) and writes them
    back, clearing the count: three stages, one class per cycle (five with registered
    reads, :func:`~plasticore.hdl.projection.registered_reads`).

    Attributes
    ----------
    label_valid, label_class : In
        A label event of this tick.
    label_saturated : Out(1)
        This label's addition saturates.
    start : In(1)
    done : Out(1)
        In the cycle the last class is written back.
    predictions : In(n_classes)
        The prediction layer's spikes of this tick.
    spikes_plus, spikes_minus : Out(n_classes)
        The error spikes of this tick, valid from ``done`` on.
    saturated : Out(1)
    error_read : Out(read_access), error_write : Out(write_access)
    """

    def __init__(self, config):
        self._config = config
        n_classes = config.layers[-1]
        bits = _bits(n_classes)
        word = error_word_layout(config)
        super().__init__({
            "label_valid": In(1), "label_class": In(range(max(2, n_classes))),
            "label_saturated": Out(1),
            "start": In(1), "done": Out(1), "predictions": In(n_classes),
            "spikes_plus": Out(n_classes), "spikes_minus": Out(n_classes),
            "saturated": Out(1),
            "error_read": Out(read_access(bits, word)),
            "error_write": Out(write_access(bits, word, 2)),
        })

    def elaborate(self, platform):
        config, params = self._config, self._config.learning
        n_classes, error_bits = config.layers[-1], config.membrane_bits - 1
        high = (1 << (config.membrane_bits - 1)) - 1
        m = Module()
        count_max = high // params.error_input_weight + 1
        counts = [Signal(range(count_max + 1), name=f"label_count_{k}") for k in range(n_classes)]
        counts = Array(counts)
        label_count = counts[self.label_class]
        with m.If(self.label_valid):
            with m.If(label_count != count_max):
                m.d.sync += label_count.eq(label_count + 1)
            # This label's addition saturates once (n + 1) w > high.
            m.d.comb += self.label_saturated.eq(label_count >= count_max - 1)

        # One class per cycle: form its label sums; read its state and form its inputs
        # (labels, then prediction); update and write back. With registered reads
        # (registered_reads) two stages more: the count is taken a stage before and the
        # label sums formed a stage later, as the state read is registered (a block RAM's
        # read data take 6 ns to come out on the ECP5) before the update.
        registered = registered_reads(config)
        index = Signal(range(n_classes + 1), init=n_classes)
        issue = Signal()
        stages = ("sums", "read", "state", "write") if registered else ("read", "write")
        valid, indices = {}, {}
        before, before_index = issue, index
        for stage in stages:
            valid[stage] = Signal(name=f"{stage}_valid")
            indices[stage] = Signal(range(n_classes), name=f"{stage}_index")
            m.d.sync += [valid[stage].eq(before), indices[stage].eq(before_index)]
            before, before_index = valid[stage], indices[stage]
        read, read_index = valid["read"], indices["read"]
        write, write_index = valid["write"], indices["write"]
        m.d.comb += [issue.eq(index != n_classes),
                     self.done.eq(~issue & ~Cat(*(valid[stage] for stage in stages[:-1])).any())]
        # The label count and the prediction, taken at issue, reach the label sums and
        # the inputs in the stage before the write.
        count = counts[index]
        predicted = self.predictions.bit_select(index, 1)
        for stage in stages[:-2]:
            taken = Signal(range(count_max + 1), name=f"{stage}_count")
            m.d.sync += taken.eq(count)
            count = taken
            predicted = delayed(m, predicted, 1, f"{stage}_predicted")
        # A multiplier block alone takes 5.4 ns on the ECP5; the iCE40 has DSP blocks to
        # spare and logic cells to save.
        total = times_constant(count, params.error_input_weight) if registered \
            else count * params.error_input_weight
        label_plus = Signal(signed(config.membrane_bits))
        label_minus = Signal(signed(config.membrane_bits))
        m.d.sync += [
            label_plus.eq(Mux(total > high, high, total)),
            label_minus.eq(-Mux(total > high + 1, high + 1, total)),
        ]
        predicted = delayed(m, predicted, 1, "label_predicted")
        with m.If(self.start):
            m.d.sync += index.eq(0)
        with m.Elif(issue):
            m.d.sync += index.eq(index + 1)
        with m.If(read):
            m.d.comb += [self.error_read.valid.eq(1), self.error_read.addr.eq(read_index)]
        state = self.error_read.data
        if registered:
            state = Signal.like(self.error_read.data)
            m.d.sync += state.eq(self.error_read.data)
        neurons, input_clamped = [], Signal()
        for word, (sign, name, label_sum) in enumerate(((+1, "plus", label_plus),
                                                        (-1, "minus", label_minus))):
            m.submodules[f"input_{name}"] = inputs = ErrorInput(config, sign)
            m.submodules[f"error_{name}"] = neuron = ErrorNeuron(config)
            m.d.comb += [inputs.label_sum.eq(label_sum), inputs.prediction.eq(predicted),
                         neuron.state.eq(state[word])]
            m.d.sync += [neuron.input_sum.eq(inputs.input_sum),
                         neuron.input_over.eq(inputs.input_over)]
            neurons.append((inputs, neuron))
        (input_p, error_p), (input_m, error_m) = neurons
        m.d.sync += input_clamped.eq(input_p.saturated | input_m.saturated)
        with m.If(write):
            m.d.comb += [
                self.error_write.addr.eq(write_index),
                self.error_write.data.eq(Cat(error_p.new_state[:error_bits],
                                             error_m.new_state[:error_bits])),
                self.error_write.en.eq(0b11),
                self.saturated.eq(input_clamped | error_p.saturated | error_m.saturated),
            ]
            m.d.sync += [
                counts[write_index].eq(0),
                self.spikes_plus.bit_select(write_index, 1).eq(error_p.spike),
                self.spikes_minus.bit_select(write_index, 1).eq(error_m.spike),
            ]
        return m


class FeedbackPass(wiring.Component):
    """Feedback to the hidden layers (step 5): each error spike's row of the feedback ROM
    added into the layer's accumulators, which are free after the somatic update.

    Hidden layer after hidden layer, the error spikes in order (E+ ascending, then E-),
    one neuron per cycle. The ROM holds the fixed error -> hidden weights
    (:func:`plasticore.rules.erbp.feedback_matrices`), row ``k`` (class) after row ``k - 1``;
    an E- spike adds the row negated.

    Attributes
    ----------
    start : In(1)
    done : Out(1)
        In the pass's last cycle.
    spikes_plus, spikes_minus : In(n_classes)
    saturated : Out(1)
        An accumulator (a dendrite's feedback sum) was clamped.
    acc_read : Out(read_access), acc_write : Out(write_access)
    """

    def __init__(self, config, layout):
        self._config, self._layout = config, layout
        rows, bases = [], []
        for matrix in feedback_matrices(config)[:-1]:
            bases.append(len(rows))
            rows.extend(int(value) for value in matrix.reshape(-1))
        self._rows, self._bases = rows, bases
        n_classes = config.layers[-1]
        bits = _bits(layout.accumulator_words)
        word = accumulator_word_layout(config)
        super().__init__({
            **_feedback_pass_members(n_classes),
            "acc_read": Out(read_access(bits, word)),
            "acc_write": Out(write_access(bits, word, config.lanes)),
        })

    def elaborate(self, platform):
        config, rows = self._config, self._rows
        hidden = self._layout.layers[:-1]
        n_classes = config.layers[-1]
        m = Module()
        rom_bits = max(abs(value) for value in rows).bit_length() + 1
        m.submodules.rom = rom = Memory(shape=signed(rom_bits), depth=len(rows), init=rows)
        rom_read = rom.read_port()
        layer = Signal(range(len(hidden)))
        n_post = Signal(range(max(lay.n_post for lay in hidden) + 1))
        acc_base = Signal(range(self._layout.accumulator_words + 1))
        select_constants(m, layer, (n_post, acc_base),
                         [(lay.n_post, lay.accumulator_base) for lay in hidden])

        running = Signal()
        walking = Signal()
        spikes_done = Signal(2 * n_classes)     # spikes of this layer already walked
        spikes_left = Signal(2 * n_classes)
        m.d.comb += spikes_left.eq(Cat(self.spikes_plus, self.spikes_minus) & ~spikes_done)
        # The lowest spike left (E+ ascending, then E-), one-hot: x & -x is one carry chain,
        # where a priority chain over the bits would be one logic level per bit.
        lowest = Signal(2 * n_classes)
        m.d.comb += lowest.eq(spikes_left & -spikes_left)
        next_negative = lowest[n_classes:].any()
        next_class = lowest[:n_classes] | lowest[n_classes:]       # one-hot
        next_row = Signal(range(len(rows) + 1))
        with m.Switch(layer):
            for index, lay in enumerate(hidden):
                with m.Case(index):
                    # The class's row start picked by its one-hot bit, an OR tree per
                    # address bit: no index, no product after the carry chain.
                    m.d.comb += next_row.eq(_one_hot_select(
                        next_class, [self._bases[index] + k * lay.n_post
                                     for k in range(n_classes)], len(next_row)))
        row = Signal.like(next_row)
        negative = Signal()
        index = Signal(range(max(lay.n_post for lay in hidden) + 1))
        issue = Signal()
        write = Signal()
        write_addr = Signal.like(acc_base)
        write_negative = Signal()
        lanes, lane_bits = config.lanes, self._layout.lane_bits
        write_lane = Signal(max(1, lane_bits))
        m.d.sync += [write.eq(issue), write_addr.eq(acc_base + (index >> lane_bits)),
                     write_negative.eq(negative), write_lane.eq(index[:lane_bits])]
        add_valid = Signal()

        with m.If(self.start):
            m.d.sync += [running.eq(1), spikes_done.eq(0), walking.eq(0), layer.eq(0)]
        with m.Elif(running & walking):
            m.d.comb += issue.eq(1)
        with m.Elif(running & spikes_left.any()):
            m.d.sync += [spikes_done.eq(spikes_done | lowest), walking.eq(1),
                         index.eq(0), row.eq(next_row), negative.eq(next_negative)]
        with m.Elif(running):
            with m.If(layer != len(hidden) - 1):
                m.d.sync += [spikes_done.eq(0), layer.eq(layer + 1)]
            with m.Elif(~write & ~add_valid):
                # Done once the last write-back has been made.
                m.d.comb += self.done.eq(1)
                m.d.sync += [spikes_done.eq(0), running.eq(0)]

        with m.If(issue):
            m.d.comb += [rom_read.addr.eq(row + index), self.acc_read.valid.eq(1),
                         self.acc_read.addr.eq(acc_base + (index >> lane_bits))]
            m.d.sync += index.eq(index + 1)
            with m.If(index == n_post - 1):
                m.d.sync += walking.eq(0)
        # The row's value and the accumulator's lane are registered as they are read, and
        # added in the next cycle: no memory's read data reaches another's write data in
        # one cycle. Consecutive neurons of a word write only their own lanes, and a
        # neuron's next visit (the next spike's walk) is issued two cycles after its
        # last one at the earliest, with its write-back: the port is transparent.
        add_lane = Signal.like(write_lane)
        add_addr = Signal.like(write_addr)
        add_value = Signal(signed(rom_bits))
        add_negative = Signal()
        add_acc = Signal(signed(config.membrane_bits))
        m.d.sync += [add_valid.eq(write), add_addr.eq(write_addr), add_lane.eq(write_lane),
                     add_value.eq(rom_read.data), add_negative.eq(write_negative),
                     add_acc.eq(self.acc_read.data[write_lane])]
        # An E- spike's row is subtracted: an adder and a subtracter side by side, not a
        # negation in front of the adder.
        total, clamped = saturate_sum(Mux(add_negative, add_acc - add_value,
                                          add_acc + add_value), config.membrane_bits)
        with m.If(add_valid):
            m.d.comb += [self.acc_write.addr.eq(add_addr),
                         self.acc_write.data.eq(Cat(*[total[:config.membrane_bits]] * lanes)),
                         self.acc_write.en.eq(Const(1, lanes) << add_lane),
                         self.saturated.eq(clamped)]
        return m


class DendritePass(wiring.Component):
    """The dendrites (step 5): one neuron per cycle, every layer, leaking and adding the
    feedback (the accumulator of a hidden neuron, ``+-w`` of the prediction neuron's own
    error spikes), then clearing the accumulator for the next tick's delivery.

    Attributes
    ----------
    start, done : In(1), Out(1)
        The sequencer's handshake (``done`` in the pass's last cycle).
    spikes_plus, spikes_minus : In(n_classes)
        The error spikes: the prediction layer's feedback.
    saturated : Out(1)
        A dendrite was clamped.
    dendrite_read, acc_read, dendrite_write, acc_write : accesses
    """

    def __init__(self, config, layout):
        self._config, self._layout = config, layout
        n_classes = config.layers[-1]
        state, acc = signed(config.membrane_bits), accumulator_word_layout(config)
        state_bits, acc_bits = _bits(layout.state_words), _bits(layout.accumulator_words)
        super().__init__({
            **_feedback_pass_members(n_classes),
            "dendrite_read": Out(read_access(state_bits, state)),
            "acc_read": Out(read_access(acc_bits, acc)),
            "dendrite_write": Out(write_access(state_bits, state)),
            "acc_write": Out(write_access(acc_bits, acc, config.lanes)),
        })

    def elaborate(self, platform):
        config, layout = self._config, self._layout
        m = Module()
        walk_done = Signal()
        walk = _walk_neurons(m, layout, self.start, walk_done)
        n_post, state_base, acc_base, is_last = (walk.n_post, walk.state_base, walk.acc_base,
                                                 walk.is_last)
        index, issue = walk.index, walk.issue
        # Three stages: read the dendrite; leak it and read the feedback sum; add, write
        # back and clear the sum. With registered reads (registered_reads) a fourth: the
        # dendrite is registered as it is read and leaked in the third, the feedback sum
        # registered as it is read, and the fourth adds (a block RAM's read data take 6 ns
        # to come out on the ECP5). `b_*` is the second stage's neuron, `c_*` the third's,
        # `d_*` the fourth's.
        registered = registered_reads(config)
        lanes, lane_bits = config.lanes, layout.lane_bits
        b_valid, c_valid = Signal(), Signal()
        b_index = Signal.like(index)
        b_last, c_last = Signal(), Signal()
        b_state, c_state = Signal.like(state_base), Signal.like(state_base)
        b_acc, c_acc = Signal.like(acc_base), Signal.like(acc_base)
        b_lane, c_lane = Signal(max(1, lane_bits)), Signal(max(1, lane_bits))
        m.d.sync += [b_valid.eq(issue), b_index.eq(index), b_last.eq(is_last),
                     b_state.eq(state_base + index),
                     b_acc.eq(acc_base + (index >> lane_bits)), b_lane.eq(index[:lane_bits]),
                     c_valid.eq(b_valid), c_last.eq(b_last), c_state.eq(b_state),
                     c_acc.eq(b_acc), c_lane.eq(b_lane)]
        with m.If(issue):
            m.d.comb += [self.dendrite_read.valid.eq(1),
                         self.dendrite_read.addr.eq(state_base + index)]
            m.d.sync += index.eq(index + 1)
        with m.If(b_valid):
            m.d.comb += [self.acc_read.valid.eq(1), self.acc_read.addr.eq(b_acc)]
        m.submodules.leak = leak = DendriteLeak(config)
        m.d.comb += leak.dendrite.eq(delayed(m, self.dendrite_read.data, int(registered),
                                             "dendrite"))
        leaked = Signal(signed(config.membrane_bits))
        m.d.sync += leaked.eq(leak.leaked)
        # The prediction layer's feedback: +w for its E+ spike, then -w for its E-; formed
        # in the second stage, so that the last holds only the addition.
        weight = config.learning.feedback_output_weight
        feedback, clamped = saturate(
            Mux(self.spikes_plus.bit_select(b_index, 1), weight, 0)
            - Mux(self.spikes_minus.bit_select(b_index, 1), weight, 0),
            config.membrane_bits)
        output_feedback = Signal(signed(config.membrane_bits))
        output_clamped = Signal()
        m.d.sync += [output_feedback.eq(feedback), output_clamped.eq(clamped)]
        last, state_addr, acc_addr, lane = c_last, c_state, c_acc, c_lane
        summed = Mux(c_last, output_feedback, self.acc_read.data[c_lane])
        add_valid, summed_clamped = c_valid, output_clamped
        if registered:
            add_valid, last, state_addr, acc_addr, lane, summed, summed_clamped = (
                delayed(m, value, 1, f"d_{name}") for name, value in (
                    ("valid", c_valid), ("last", c_last), ("state", c_state),
                    ("acc", c_acc), ("lane", c_lane), ("feedback", summed),
                    ("clamped", output_clamped)))
        m.submodules.update = update = DendriteUpdate(config)
        m.d.comb += [update.leaked.eq(leaked), update.feedback.eq(summed)]
        with m.If(add_valid):
            m.d.comb += [
                self.dendrite_write.addr.eq(state_addr),
                self.dendrite_write.data.eq(update.new_dendrite),
                self.dendrite_write.en.eq(1),
                # The feedback sum is used: clear it for the next tick's delivery.
                self.acc_write.addr.eq(acc_addr),
                self.acc_write.en.eq(Const(1, lanes) << lane),
                self.saturated.eq(update.saturated | (last & summed_clamped)),
            ]
        # The walk ends a cycle after its last read; the last write is a cycle (two with
        # registered reads) later.
        m.d.sync += self.done.eq(delayed(m, walk_done, int(registered), "walk_done"))
        return m
