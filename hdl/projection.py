"""Projections: the weight memory in banks, the row walker and the delivery stage.

A projection carries a presynaptic layer's spikes to a postsynaptic layer. In hardware:

- :class:`WeightBanks` holds the weights of every projection, one word of ``lanes``
  weights per address, split over ``banks`` memories (lanes ``b * lanes / banks`` onwards
  live in bank ``b``), so that a later core can put each bank in another kind of memory
  (block RAM, SPRAM, LUT RAM) or give each lane its own port; ``memory = "spram"`` puts
  the words in the iCE40's single-port SPRAM (:mod:`.spram`).
- :class:`RowWalker` takes presynaptic events as a stream and issues the words of each
  event's row, one per cycle: the weight word and the accumulator word it adds into.
- :class:`Delivery` is the walker with its datapath: it reads each weight word and its
  accumulator word, adds them lane by lane (:class:`LaneAccumulate`, saturating) and
  writes the sums back a cycle later. A plasticity part plugs into its ``plasticity``
  member: it sees the row walker's words ``lead`` cycles before they are read and returns
  the rewritten weight word in the cycle the accumulator is written back.
"""

from amaranth.hdl import Assert, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from plasticore.config import WEIGHT_MEMORIES
from plasticore.rules.erbp import synapse_offsets

from .interfaces import ADDRESS_BITS
from .ports import NO_COLLISION_LOGIC, UncollidedReadPort, read_access, write_access
from .arith import times_constant
from .shell import select_constants
from .spram import SPRAM_DEPTH, SpramBlock, SpramGeometry
from .synapse import LaneAccumulate, accumulator_word_layout, weight_word_layout

__all__ = ["WeightBanks", "RowWalker", "Delivery", "plasticity_signature",
           "weight_data_stage", "registered_reads", "prng_rounds_per_stage"]


def weight_data_stage(config) -> int:
    """Cycles from a learning core's weight read to the stage that uses the word: 2.

    The read data are registered before the update, and the new word again before its
    write-back. In block RAM a read's data take 6 ns to come out on the ECP5, and the
    iCE40UP5K's SPRAM blocks sit at the corners of the die, where the routing to and from
    them alone takes 5 to 7 ns each way.
    """
    return 2


def registered_reads(config) -> bool:
    """Whether a learning core registers each block RAM read before any arithmetic uses it.

    A block RAM's read data take 6 ns to come out on the ECP5 (no output register), which
    leaves too little of a 10 ns cycle for an adder behind them, so the cores with their
    weights in block RAM register them (and take a cycle or two more per pass). A core with
    its weights in SPRAM is an iCE40UP5K core: there a register is a logic cell, the cell
    count is what bounds the network, and the shorter pipeline meets 30 MHz, so those
    cores keep it. (The eRBP weight stage, its error and dendrite passes and the weight
    decode of the host port follow this; the other stages of both cores register their
    reads on every memory.)
    """
    return config.weight_memory != "spram"


def prng_rounds_per_stage(config) -> int:
    """Threefry rounds between pipeline registers in a learning core's rounding draws.

    With registered reads (:func:`registered_reads`) one: a round's two 32-bit additions
    in series take most of a 10 ns cycle on the ECP5. Otherwise two, which stay shorter
    than the core's other paths on an iCE40 and take half the registers.
    """
    return 1 if registered_reads(config) else 2


def _address_bits(depth: int) -> int:
    return max(0, ceil_log2(depth))


class WeightBanks(wiring.Component):
    """The weight memory of all projections, as ``banks`` memories side by side.

    Parameters
    ----------
    config : CoreConfig
    depth : int
        Weight words (``CoreLayout.weight_words``).
    banks : int
        Memories the lanes of a word are split over; divides ``config.lanes``. Every bank
        has the same address: a read or write of a word reads or writes all its banks.
    transparent : bool
        A read in the cycle of a write to the same word sees the new word (the eRBP core
        relies on it; a core that never reads a word as it writes it saves the bypass and
        the logic that returns the old word on a collision: ``NO_COLLISION_LOGIC``).
        Without effect in SPRAM, where no read may share a cycle with a write.
    memory : {"bram", "spram"} or None
        Where the weights live; ``None``: ``config.weight_memory``. ``"spram"`` lays the
        words out over single-port iCE40 SPRAM blocks (:class:`~.spram.SpramGeometry`):
        one address per cycle, so a write and a read never share a cycle; it needs
        ``banks = 1`` (the geometry splits a wide word over blocks itself).
    checks : bool
        With ``"spram"``: assert that no read is claimed (``read.valid``) in a cycle that
        writes.

    Attributes
    ----------
    read : In(addr, en, valid) / Out(data)
        A read port of whole words. ``valid``: a part uses the data of this read (the
        port arbiter drives it; only the SPRAM check looks at it).
    write : In(addr, data, en)
        A write port with one enable bit per lane.
    """

    def __new__(cls, config, depth: int, banks: int = 1, *, transparent: bool = True,
                memory=None, checks: bool = False, src_loc_at: int = 0):
        # A refused split raises before the component exists (nothing left unelaborated).
        if banks < 1 or config.lanes % banks:
            raise ValueError(f"banks = {banks}: must divide lanes = {config.lanes}")
        memory = config.weight_memory if memory is None else memory
        if memory not in WEIGHT_MEMORIES:
            raise ValueError(f"memory = {memory!r}: must be one of {', '.join(WEIGHT_MEMORIES)}")
        if memory == "spram" and banks != 1:
            raise ValueError(f"banks = {banks}: must be 1 with memory = \"spram\" (the "
                             "SPRAM layout splits a word over blocks itself)")
        return super().__new__(cls, src_loc_at=src_loc_at + 1)

    def __init__(self, config, depth: int, banks: int = 1, *, transparent: bool = True,
                 memory=None, checks: bool = False):
        lanes = config.lanes
        self._config, self._depth, self._banks = config, depth, banks
        self._transparent, self._checks = transparent, checks
        self._memory = config.weight_memory if memory is None else memory
        word = weight_word_layout(config)
        bits = _address_bits(depth)
        super().__init__({
            "read": Out(wiring.Signature({
                "addr": In(unsigned(bits)), "en": In(1, init=1), "valid": In(1),
                "data": Out(word)})),
            "write": Out(wiring.Signature({
                "addr": In(unsigned(bits)), "data": In(word), "en": In(lanes)})),
        })

    @property
    def banks(self) -> int:
        return self._banks

    @property
    def memory(self) -> str:
        """Where the weights live: ``"bram"`` or ``"spram"``."""
        return self._memory

    def elaborate(self, platform):
        m = Module()
        if self._memory == "spram":
            self._spram(m)
            return m
        config, banks = self._config, self._banks
        per_bank = config.lanes // banks
        for bank in range(banks):
            lanes = slice(bank * per_bank, (bank + 1) * per_bank)
            memory = Memory(shape=data.ArrayLayout(signed(config.weight_bits), per_bank),
                            depth=self._depth, init=[],
                            attrs=None if self._transparent else NO_COLLISION_LOGIC)
            m.submodules[f"bank{bank}" if banks > 1 else "memory"] = memory
            write = memory.write_port(granularity=1)
            if self._transparent:
                read = memory.read_port(transparent_for=(write,))
            else:
                m.submodules[f"bank{bank}_read" if banks > 1 else "read"] = read = \
                    UncollidedReadPort(memory, write, checks=self._checks)
            m.d.comb += [
                write.addr.eq(self.write.addr),
                write.data.eq(self.write.data.as_value()[lanes.start * config.weight_bits:
                                                         lanes.stop * config.weight_bits]),
                write.en.eq(self.write.en[lanes]),
                read.addr.eq(self.read.addr),
                read.en.eq(self.read.en),
                *([] if self._transparent else [read.valid.eq(self.read.valid)]),
                self.read.data.as_value()[lanes.start * config.weight_bits:
                                          lanes.stop * config.weight_bits].eq(read.data),
            ]
        return m

    def _spram(self, m):
        """The words in single-port SPRAM blocks: one address per cycle, the write's when
        any lane writes, else the read's."""
        config = self._config
        bits = config.weight_bits
        geometry = SpramGeometry(config.lanes, bits, self._depth)
        pack_bits = geometry.pack.bit_length() - 1
        writing = self.write.en.any()
        addr = Mux(writing, self.write.addr, self.read.addr)
        block_addr, slot = addr[pack_bits:], addr[:pack_bits]
        block_bits = SPRAM_DEPTH.bit_length() - 1     # a word within one block
        row = block_addr[block_bits:]
        # The read data leaves a cycle later: remember which slot and block row it is.
        read_slot, read_row = Signal(range(geometry.pack)), Signal(range(geometry.rows))
        with m.If(self.read.en & ~writing):
            m.d.sync += [read_slot.eq(slot), read_row.eq(row)]
        blocks = {}
        for r in range(geometry.rows):
            words = min(SPRAM_DEPTH, geometry.block_words - r * SPRAM_DEPTH)
            for c in range(geometry.columns):
                blocks[r, c] = block = SpramBlock(depth=words)
                m.submodules[f"spram_{r}_{c}"] = block
                m.d.comb += [
                    block.addr.eq(block_addr[:block_bits]),
                    block.write.eq(writing),
                    block.select.eq((row == r) & (writing | self.read.en)),
                ]
        # Write: every slot's copy of a lane gets its data; the mask picks the slot.
        masks = {c: [0] * 4 for c in range(geometry.columns)}
        for s in range(geometry.pack):
            for lane in range(config.lanes):
                c, offset = geometry.position(s, lane)
                enable = self.write.en[lane] & (slot == s)
                for r in range(geometry.rows):
                    m.d.comb += blocks[r, c].data_in[offset:offset + bits].eq(
                        self.write.data.as_value()[lane * bits:(lane + 1) * bits])
                for nibble in range(offset // 4, (offset + geometry.lane_bits) // 4):
                    masks[c][nibble] = masks[c][nibble] | enable
        for (r, c), block in blocks.items():
            m.d.comb += block.mask.eq(Cat(*masks[c]))
        # Read: each lane from the block row and slot of the read.
        for lane in range(config.lanes):
            out = self.read.data.as_value()[lane * bits:(lane + 1) * bits]
            if geometry.rows == geometry.pack == 1:
                c, offset = geometry.position(0, lane)
                m.d.comb += out.eq(blocks[0, c].data_out[offset:offset + bits])
                continue
            with m.Switch(Cat(read_slot, read_row)):
                for r in range(geometry.rows):
                    for s in range(geometry.pack):
                        c, offset = geometry.position(s, lane)
                        with m.Case(s | (r << pack_bits)):
                            m.d.comb += out.eq(blocks[r, c].data_out[offset:offset + bits])
        if self._checks:
            m.d.sync += Assert(~(writing & self.read.valid),
                               "weights: a read and a write in the same cycle of a "
                               "single-port SPRAM bank")


def _walk_step_layout(layout, synapses: bool = False) -> data.StructLayout:
    fields = {
        "weight_addr": unsigned(_address_bits(layout.weight_words + 1)),
        "acc_addr": unsigned(_address_bits(layout.accumulator_words + 1)),
    }
    if synapses:
        # The global index of the word's lane 0 (``offset + j * n_post + i``): with several
        # lanes it differs from the weight address, and a rounding draw is named by it.
        fields["synapse"] = unsigned(_address_bits(layout.config.n_synapses + layout.lanes))
    return data.StructLayout(fields)


class RowWalker(wiring.Component):
    """Turn presynaptic events into the words of their rows, one word per cycle.

    An event ``j`` on projection ``p`` (the ``projection`` input while the event is taken)
    becomes the ``row_words`` words from ``weight_base + j * row_words``, each paired with
    the accumulator word ``accumulator_base + w`` of the target layer. One event waits in a
    holding register, so the event source's handshake stays off the row-start product
    (shifts and adds from that register into the walker's address registers), and a
    stream of events still starts a row every cycle the previous one issues its last word.

    Parameters
    ----------
    layout : CoreLayout
        Its ``projections`` give each projection's constants.
    lead : int
        Cycles between a word leaving the walker (``step``) and its issue to the memories
        (``words``): the latency of a plasticity part's random draw. 0 without one.
    every_other : bool
        Issue a word every other cycle, always in cycles of the same parity, leaving the
        cycles between free for write-backs (a learning core on a single-port weight
        memory, which writes a word back an odd number of cycles after its read).
    synapses : bool
        The words also carry ``synapse``, the global index of their lane-0 synapse
        (``offset[p] + j * n_post + lanes * w``; :func:`plasticore.rules.erbp.synapse_offsets`).

    Attributes
    ----------
    events : In(stream of presynaptic addresses)
    enable : In(1)
        The sequencer lets events in.
    projection : In(range(len(layout.projections)))
        The projection events are taken on.
    step : Out(stream, always ready)
        The word in the walker's address registers (the first stage of its pipeline).
    early : Out(stream, always ready)
        The same word one cycle before ``words`` (for reads a plasticity part makes ahead
        of the weight read); equal to ``step`` when ``lead`` is 0.
    words : Out(stream, always ready)
        The word to read now: ``payload.weight_addr`` and ``payload.acc_addr``.
    idle : Out(1)
        No event held and no word in the pipeline.
    """

    def __init__(self, layout, lead: int = 0, synapses: bool = False,
                 every_other: bool = False):
        self._layout, self._lead, self._synapses = layout, lead, synapses
        self._every_other = every_other
        # The rule's numbering of the synapses, the one its golden model draws by.
        self._synapse_offsets = synapse_offsets(layout.config) if synapses else None
        step_layout = _walk_step_layout(layout, synapses)
        words = stream.Signature(step_layout, always_ready=True)
        super().__init__({
            "events": In(stream.Signature(unsigned(ADDRESS_BITS))),
            "enable": In(1),
            "projection": In(range(max(2, len(layout.projections)))),
            "step": Out(words), "early": Out(words), "words": Out(words),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layout, projections = self._layout, self._layout.projections
        step_layout = _walk_step_layout(layout, self._synapses)
        step = self.step.payload
        row_words = Signal(range(max(lay.row_words for lay in projections) + 1))
        acc_base = Signal(range(layout.accumulator_words + 1))
        select_constants(m, self.projection, (row_words, acc_base), [
            (lay.row_words, lay.accumulator_base) for lay in projections])
        # The row start of the held event: a product by a per-projection constant, as
        # shifts and adds (times_constant), from registers (the event and its projection
        # are held as taken).
        pending_event = Signal.like(self.events.payload)
        pending_projection = Signal.like(self.projection)
        row_start = Signal.like(step.weight_addr)
        synapse_start = Signal.like(step.synapse) if self._synapses else None
        with m.Switch(pending_projection):
            for index, lay in enumerate(projections):
                with m.Case(index):
                    m.d.comb += row_start.eq(lay.weight_base
                                             + times_constant(pending_event, lay.row_words))
                    if synapse_start is not None:
                        m.d.comb += synapse_start.eq(
                            self._synapse_offsets[index]
                            + times_constant(pending_event, lay.n_post))

        active, words_left = Signal(), Signal.like(row_words)
        if self._every_other:
            # Each word stays two cycles in the address registers and is issued in the
            # first. The phase runs freely, so every word is issued in a cycle of the same
            # parity and its write-back, an odd number of cycles later, never meets a read.
            second = Signal()
            m.d.sync += second.eq(~second)
            advance = active & second
        else:
            second, advance = Const(0), active
        m.d.comb += self.step.valid.eq(active & ~second)
        # The word in the address registers is its row's last: a register beside
        # `words_left`, so that the handshake with the event source starts at registers.
        last_word = Signal()
        if self._every_other:
            # A row starts only where its first word falls on an issuing cycle.
            row_done = second & (~active | last_word)
        else:
            row_done = ~active | last_word
        pending_valid = Signal()
        load = pending_valid & row_done
        m.d.comb += self.events.ready.eq(self.enable & (~pending_valid | load))
        with m.If(self.events.valid & self.events.ready):
            m.d.sync += [pending_valid.eq(1), pending_event.eq(self.events.payload),
                         pending_projection.eq(self.projection)]
        with m.Elif(load):
            m.d.sync += pending_valid.eq(0)
        with m.If(advance):
            m.d.sync += [
                step.weight_addr.eq(step.weight_addr + 1),
                step.acc_addr.eq(step.acc_addr + 1),
                words_left.eq(words_left - 1),
                last_word.eq(words_left == 1),
            ]
        with m.If(load):
            m.d.sync += [
                active.eq(1),
                step.weight_addr.eq(row_start),
                step.acc_addr.eq(acc_base),
                words_left.eq(row_words - 1),
                last_word.eq(row_words == 1),
            ]
        with m.Elif(row_done):
            m.d.sync += active.eq(0)
        if synapse_start is not None:
            with m.If(load):
                m.d.sync += step.synapse.eq(synapse_start)
            with m.Elif(advance):
                m.d.sync += step.synapse.eq(step.synapse + layout.lanes)

        # The lead: the word travels beside its random draw for `lead` cycles.
        stages = [self.step]
        for index in range(1, self._lead + 1):
            stage = stream.Signature(step_layout, always_ready=True).create(
                path=(f"lead{index}",))
            m.d.sync += [stage.valid.eq(stages[-1].valid), stage.payload.eq(stages[-1].payload)]
            stages.append(stage)
        idle = ~active & ~pending_valid
        for stage in stages[1:]:
            idle = idle & ~stage.valid
        early = stages[-2] if len(stages) > 1 else stages[-1]
        m.d.comb += [
            self.idle.eq(idle),
            self.early.valid.eq(early.valid), self.early.payload.eq(early.payload),
            self.words.valid.eq(stages[-1].valid), self.words.payload.eq(stages[-1].payload),
        ]
        return m


def plasticity_signature(config, layout) -> wiring.Signature:
    """What a plasticity part sees of :class:`Delivery` and gives back (Delivery's side).

    Members
    -------
    step, early, words : Out(stream)
        The row walker's words at its first stage, one cycle before the read, and at the
        read (:class:`RowWalker`); with several lanes they carry ``synapse`` (with one,
        the weight address is the synapse index).
    old_weight : Out(weight word)
        The weight word read, in the cycle it is updated: the cycle after the read, or
        :func:`weight_data_stage` cycles after it.
    new_weight : In(weight word)
        The updated word, in the same cycle.
    saturated : In(1)
        The new word was clamped.
    """
    words = stream.Signature(_walk_step_layout(layout, config.lanes > 1), always_ready=True)
    word = weight_word_layout(config)
    return wiring.Signature({
        "step": Out(words), "early": Out(words), "words": Out(words),
        "old_weight": Out(word), "new_weight": In(word), "saturated": In(1),
    })


class Delivery(wiring.Component):
    """The row walker and its datapath: weight words added into accumulator words.

    Stage A issues a word's weight and accumulator reads (the walker's ``words``); stage B
    has both on the read ports, adds them lane by lane and writes the sums back (and, with
    a plasticity part, the rewritten weight word). The accumulator read port is transparent
    to its write port, so a word read in the cycle of its own write-back sees the new sum.

    A learning core with its weights in SPRAM (:func:`weight_data_stage` 2) registers the
    weight word in stage B and reads the accumulator there; stage C adds and updates, and
    stage D writes the registered new weight word back, three cycles after its read (the
    walker reads in cycles of one parity). A word read again in the cycle before that
    write-back takes the word being written. ``idle`` waits for the last write-back.

    Parameters
    ----------
    config, layout : CoreConfig, CoreLayout
    gain_shift : int
        Weights are scaled by ``2**gain_shift`` before they are added (eRBP's soma gain).
    lead : int
        The plasticity part's look-ahead (:class:`RowWalker`); ``None``: no plasticity part.
    checks : bool
        Assert that no lane's saturating addition wraps.

    Attributes
    ----------
    events, enable, projection, idle : the walker's (:class:`RowWalker`)
    weight_read, acc_read : Out(read_access)
    acc_write : Out(write_access)
    weight_write : Out(write_access), with a plasticity part only
    plasticity : Out(plasticity_signature), with a plasticity part only
    weight_saturated : Out(1), with a plasticity part only
        A rewritten weight was clamped in this cycle.
    saturated : Out(1)
        An accumulator lane was clamped in this cycle.
    """

    def __init__(self, config, layout, *, gain_shift: int = 0, lead=None, checks=False):
        self._config, self._layout = config, layout
        self._gain_shift, self._lead, self._checks = gain_shift, lead, checks
        lanes = config.lanes
        weight_bits = _address_bits(layout.weight_words)
        acc_bits = _address_bits(layout.accumulator_words)
        members = {
            "events": In(stream.Signature(unsigned(ADDRESS_BITS))),
            "enable": In(1),
            "projection": In(range(max(2, len(layout.projections)))),
            "idle": Out(1),
            "weight_read": Out(read_access(weight_bits, weight_word_layout(config))),
            "acc_read": Out(read_access(acc_bits, accumulator_word_layout(config))),
            "acc_write": Out(write_access(acc_bits, accumulator_word_layout(config), lanes)),
            "saturated": Out(1),
        }
        if lead is not None:
            members["weight_write"] = Out(write_access(weight_bits, weight_word_layout(config),
                                                       lanes))
            members["plasticity"] = Out(plasticity_signature(config, layout))
            members["weight_saturated"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        config = self._config
        learns = self._lead is not None
        m.submodules.walker = walker = RowWalker(
            self._layout, self._lead or 0, synapses=learns and config.lanes > 1,
            # A single-port weight memory cannot read a word while it writes one back.
            every_other=learns and config.weight_memory == "spram")
        wiring.connect(m, wiring.flipped(self.events), walker.events)
        m.d.comb += [
            walker.enable.eq(self.enable),
            walker.projection.eq(self.projection),
        ]
        words = walker.words
        if learns and config.weight_memory != "spram":
            return self._pipelined(m, walker)
        # With the weight word registered after its read (weight_data_stage), the
        # accumulator is read a cycle later, so that both reach the add together.
        registered = learns and weight_data_stage(config) == 2
        with m.If(words.valid):
            m.d.comb += [self.weight_read.valid.eq(1),
                         self.weight_read.addr.eq(words.payload.weight_addr)]
        # Stage B: the words issued in the previous cycle are on the read ports.
        deliver_valid = Signal()
        m.d.sync += deliver_valid.eq(words.valid)
        if registered:
            # The walker holds each word two cycles (every other cycle), so in stage B its
            # addresses are still those of `words`.
            deliver = words.payload
            with m.If(deliver_valid):
                m.d.comb += [self.acc_read.valid.eq(1), self.acc_read.addr.eq(deliver.acc_addr)]
            # Stage C: the weight word and the accumulator word meet. The addresses are
            # loaded only with a word, so they hold through its write-back (stage D).
            weight = Signal.like(self.weight_read.data)
            add_valid = Signal()
            add = Signal.like(words.payload)
            m.d.sync += [weight.eq(self.weight_read.data), add_valid.eq(deliver_valid)]
            with m.If(deliver_valid):
                m.d.sync += add.eq(deliver)
        else:
            with m.If(words.valid):
                m.d.comb += [self.acc_read.valid.eq(1),
                             self.acc_read.addr.eq(words.payload.acc_addr)]
            weight = self.weight_read.data
            add_valid = deliver_valid
            add = Signal.like(words.payload)
            m.d.sync += add.eq(words.payload)
        if learns:
            weight, in_flight = self._plasticity(m, walker, weight, deliver_valid, add_valid,
                                                 add, registered)
        else:
            in_flight = Const(0)
        m.submodules.lane_add = lane_add = LaneAccumulate(config, self._gain_shift)
        m.d.comb += [
            lane_add.weights.eq(weight),
            lane_add.accumulators.eq(self.acc_read.data),
        ]
        with m.If(add_valid):
            m.d.comb += [
                self.acc_write.addr.eq(add.acc_addr),
                self.acc_write.data.eq(lane_add.sums),
                self.acc_write.en.eq(Const(-1, config.lanes)),
                self.saturated.eq(lane_add.saturated.any()),
            ]
        if registered:
            # Idle once every word is written back: the next phase may use the port.
            m.d.comb += self.idle.eq(walker.idle & ~deliver_valid & ~add_valid & ~in_flight)
        else:
            m.d.comb += self.idle.eq(walker.idle)
        if self._checks:
            self._assert_no_wrap(m, lane_add, weight, self.acc_read.data, add_valid)
        return m

    def _pipelined(self, m, walker):
        """A learning core's delivery with its weights in block RAM: four stages, one word
        per cycle, every memory's read data registered before they are used.

        Stage A reads the weight word; B registers it and reads the accumulator word; C
        hands the weight word to the plasticity part and registers the new word, the old
        one and the accumulator word; D adds and writes both words back. A word read again
        before the write-back of its last change takes the new word from stage D: in
        stage B when it was read two cycles before that write-back, in stage C when it was
        read three cycles before (a read in the write-back's cycle sees it: both read
        ports are transparent). The accumulators likewise, in stage C.
        """
        config, lanes = self._config, self._config.lanes
        plasticity = self.plasticity
        for name in ("step", "early", "words"):
            m.d.comb += [getattr(plasticity, name).valid.eq(getattr(walker, name).valid),
                         getattr(plasticity, name).payload.eq(getattr(walker, name).payload)]
        words = walker.words
        word_layout = words.payload.shape()
        b_valid, c_valid, d_valid = Signal(), Signal(), Signal()
        b, c, d = (Signal(word_layout, name=f"{stage}_word") for stage in "bcd")
        m.d.sync += [b_valid.eq(words.valid), c_valid.eq(b_valid), d_valid.eq(c_valid),
                     b.eq(words.payload), c.eq(b), d.eq(c)]
        # Stage A.
        with m.If(words.valid):
            m.d.comb += [self.weight_read.valid.eq(1),
                         self.weight_read.addr.eq(words.payload.weight_addr)]
        # Which stage D a word will meet, compared a stage ahead so that only registers
        # steer the forwarding multiplexers.
        weight_b_d, weight_c_d, acc_c_d = Signal(), Signal(), Signal()
        m.d.sync += [
            weight_b_d.eq(c_valid & (words.payload.weight_addr == c.weight_addr)),
            weight_c_d.eq(c_valid & (b.weight_addr == c.weight_addr)),
            acc_c_d.eq(c_valid & (b.acc_addr == c.acc_addr)),
        ]
        written = Signal.like(self.weight_read.data)        # stage D: the new word
        m.submodules.lane_add = lane_add = LaneAccumulate(config, self._gain_shift)
        # Stage B.
        c_weight = Signal.like(self.weight_read.data)
        m.d.sync += c_weight.eq(Mux(weight_b_d, written, self.weight_read.data))
        with m.If(b_valid):
            m.d.comb += [self.acc_read.valid.eq(1), self.acc_read.addr.eq(b.acc_addr)]
        # Stage C.
        current = Signal.like(c_weight)
        m.d.comb += [current.eq(Mux(weight_c_d, written, c_weight)),
                     plasticity.old_weight.eq(current)]
        d_weight = Signal.like(c_weight)
        d_acc = Signal.like(self.acc_read.data)
        m.d.sync += [written.eq(plasticity.new_weight), d_weight.eq(current),
                     d_acc.eq(Mux(acc_c_d, lane_add.sums, self.acc_read.data))]
        # The flag from a register: it only has to reach the flags before the tick ends.
        d_weight_saturated = Signal()
        m.d.sync += d_weight_saturated.eq(c_valid & plasticity.saturated)
        m.d.comb += self.weight_saturated.eq(d_weight_saturated)
        # Stage D.
        m.d.comb += [lane_add.weights.eq(d_weight), lane_add.accumulators.eq(d_acc)]
        with m.If(d_valid):
            m.d.comb += [
                self.acc_write.addr.eq(d.acc_addr),
                self.acc_write.data.eq(lane_add.sums),
                self.acc_write.en.eq(Const(-1, lanes)),
                self.saturated.eq(lane_add.saturated.any()),
                self.weight_write.addr.eq(d.weight_addr),
                self.weight_write.data.eq(written),
                self.weight_write.en.eq(Const(-1, lanes)),
            ]
        # Idle once every word is written back: the next phase may use the ports.
        m.d.comb += self.idle.eq(walker.idle & ~b_valid & ~c_valid & ~d_valid)
        if self._checks:
            self._assert_no_wrap(m, lane_add, d_weight, d_acc, d_valid)
        return m

    def _plasticity(self, m, walker, weight, deliver_valid, add_valid, add, registered):
        """Hand the walker's words to the plasticity part and write back the weight it
        returns; return the weight word the accumulators get, and whether a write-back is
        still to come."""
        plasticity = self.plasticity
        for name in ("step", "early", "words"):
            m.d.comb += [getattr(plasticity, name).valid.eq(getattr(walker, name).valid),
                         getattr(plasticity, name).payload.eq(getattr(walker, name).payload)]
        if not registered:
            # Written back in the cycle the accumulator is: the weight read port is
            # transparent, so the next event on the same row reads the learned weight.
            m.d.comb += plasticity.old_weight.eq(weight)
            with m.If(add_valid):
                m.d.comb += [
                    self.weight_write.addr.eq(add.weight_addr),
                    self.weight_write.data.eq(plasticity.new_weight),
                    self.weight_write.en.eq(Const(-1, self._config.lanes)),
                    self.weight_saturated.eq(plasticity.saturated),
                ]
            return weight, Const(0)
        # Stage D: the new word is registered, then written back at the address stage C
        # still holds.
        written = Signal.like(weight)
        write_valid = Signal()
        m.d.sync += write_valid.eq(add_valid)
        with m.If(add_valid):
            m.d.sync += written.eq(plasticity.new_weight)
            m.d.comb += self.weight_saturated.eq(plasticity.saturated)
        with m.If(write_valid):
            m.d.comb += [
                self.weight_write.addr.eq(add.weight_addr),
                self.weight_write.data.eq(written),
                self.weight_write.en.eq(Const(-1, self._config.lanes)),
            ]
        current = weight
        if any(projection.row_words == 1 for projection in self._layout.projections):
            # A row of one word, its event twice in a row: the word is read again in the
            # cycle before its write-back. Seen in stage B (this word's read was in the
            # cycle before the write now going out), it takes the word written instead.
            forward = Signal()
            m.d.sync += forward.eq(deliver_valid & write_valid
                                   & (walker.words.payload.weight_addr == add.weight_addr))
            current = Signal.like(weight)
            m.d.comb += current.eq(Mux(forward, written, weight))
        m.d.comb += plasticity.old_weight.eq(current)
        return current, write_valid

    def _assert_no_wrap(self, m, lane_add, weight, accumulators, deliver_valid):
        """An addition that was not clamped stores the exact sum, one that was a bound."""
        low, high = self._config.membrane_range
        for lane in range(self._config.lanes):
            exact = (accumulators[lane] + (weight[lane] << self._gain_shift))
            stored = lane_add.sums[lane]
            m.d.sync += Assert(~deliver_valid | Mux(lane_add.saturated[lane],
                                                     (stored == low) | (stored == high),
                                                     stored == exact),
                               f"accumulator lane {lane} wrapped")
