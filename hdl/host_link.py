"""The frame bridge between a UART byte stream and the core.

:class:`HostLink` parses the request frames of :mod:`plasticore.protocol`, executes them on
the core's host port and event streams, buffers the core's output events, and sends one
reply per request. :class:`LinkTop` is the platform-independent part of a board top: core,
bridge and UART, with the serial pins and status outputs as its only ports.

Why the design is built this way:

- A request is executed only after its CRC has been checked, so the payload is held in a
  byte memory until the frame is complete; a bad frame never reaches the core. The same
  memory then holds the reply payload (READ results, buffered events, status), so that the
  reply header, whose length and status come first on the wire, is known before the
  first byte leaves.
- READ and WRITE bursts are checked against the memory map's region sizes before the first
  access, so an out-of-range burst changes nothing instead of half of itself.
- Output events are always accepted from the core and kept in a FIFO; when it is full they
  are counted as lost (a sticky flag reported by STATUS and READ_SPIKES) rather than
  stalling the core, because a stalled core could never finish the RUN_TICKS that the host
  is waiting for.
- A frame cut short is detected by an idle timeout on the line; a length above the
  maximum payload cannot be trusted to find the frame's end, so the bridge drops bytes
  until the line is idle and then answers.
- The bridge takes no byte while it executes or answers a request, and a UART cannot
  hold the sender back: a second byte sent in that time overwrites the first in the
  receiver, which reports an *overrun*. The frame it belonged to cannot be trusted, so
  once the current reply is sent the bridge drops bytes until the line is idle and
  answers OVERRUN, executing nothing of them.
"""


import operator

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, connect

from plasticore.layout import CoreLayout, REGION_WEIGHTS, layout_for
from plasticore.protocol import (
    SYNC, PROTOCOL_VERSION, DEFAULT_MAX_PAYLOAD, SPIKE_TICK_BITS, Command, Status)

from .interfaces import HostSignature, input_stream_signature, output_stream_signature
from .shell import SharedNames
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["HostLink", "LinkTop", "region_sizes"]


def region_sizes(layout: CoreLayout) -> tuple[int, ...]:
    """Return the offset bound of each host region (registers, weights, membrane, refractory,
    and a DECOLLE core's more; ``1 << region_bits`` entries, 0 for a region that names nothing).

    The weight region has holes (``post`` past the end of a row's layer); they are checked
    separately, per row.
    """
    sizes = tuple(layout.region_sizes())
    return sizes + (0,) * ((1 << layout.region_bits) - len(sizes))


def _crc16_step(crc: int, byte: int) -> int:
    for bit in reversed(range(8)):
        feedback = ((crc >> 15) ^ (byte >> bit)) & 1
        crc = ((crc << 1) & 0xFFFF) ^ (0x1021 if feedback else 0)
    return crc


def _crc16_byte(crc, byte):
    """Return the CRC-16/CCITT-FALSE after ``byte`` (combinational).

    One byte's update is linear over GF(2), so each output bit is the XOR of a fixed set
    of input bits; the sets are found by pushing each input bit alone through the bitwise
    reference. This is one XOR tree per bit, not eight chained shift steps.
    """
    inputs = [crc[i] for i in range(16)] + [byte[i] for i in range(8)]
    masks = [_crc16_step(1 << i, 0) for i in range(16)] + \
        [_crc16_step(0, 1 << i) for i in range(8)]
    bits = []
    for out in range(16):
        taps = [signal for signal, mask in zip(inputs, masks) if mask >> out & 1]
        bits.append(Cat(*taps).xor())
    return Cat(*bits)


class HostLink(wiring.Component):
    """Serve request frames from a byte stream on the core's host port and event streams.

    Parameters
    ----------
    layout : CoreLayout
        The core's memory map; fixes the host address width and the region sizes that
        READ and WRITE are checked against.
    timeout_cycles : int
        Idle cycles on the receive side after which a frame in progress is abandoned as
        truncated. Choose it well above the longest gap a host's USB-serial adapter leaves
        between two bytes of one frame (a few milliseconds).
    event_buffer_depth : int
        Output events the bridge holds between READ_SPIKES requests (a power of two).
    max_payload : int
        Largest payload, in bytes, in either direction (a multiple of 4, 8 or more).

    Members
    -------
    i_bytes : In(stream.Signature(8))
        Received bytes.
    o_bytes : Out(stream.Signature(8))
        Bytes to send.
    host : Out(HostSignature)
        To the core's host port.
    o_events : Out(input stream)
        To the core's input events.
    i_events : In(output stream)
        From the core's output events.
    busy : Out(1)
        A frame is being received, executed or answered.
    error : Out(1)
        The last reply carried a status other than OK.
    spikes_lost : Out(1)
        Sticky until read: an output event found the buffer full.
    overrun : In(1)
        The receiver lost a byte (a pulse): the bytes up to the next idle line are
        dropped and answered with one OVERRUN reply.
    """

    def __init__(self, layout: CoreLayout, *, timeout_cycles: int,
                 event_buffer_depth: int = 256, max_payload: int = DEFAULT_MAX_PAYLOAD):
        self._layout = layout
        self._timeout_cycles = operator.index(timeout_cycles)
        self._depth = operator.index(event_buffer_depth)
        self._max_payload = operator.index(max_payload)
        if self._timeout_cycles < 1:
            raise ValueError(f"timeout_cycles = {timeout_cycles}: must be at least 1")
        if self._depth < 2 or self._depth & (self._depth - 1) or self._depth > 0xFFFF:
            raise ValueError(f"event_buffer_depth = {event_buffer_depth}: must be a power of "
                             "two from 2 to 32768")
        if self._max_payload < 8 or self._max_payload % 4 or self._max_payload > 0xFFFC:
            raise ValueError(f"max_payload = {max_payload}: must be a multiple of 4 from 8 "
                             "to 65532")
        super().__init__({
            "i_bytes": In(stream.Signature(8)),
            "o_bytes": Out(stream.Signature(8)),
            "host": Out(HostSignature(layout.address_bits)),
            "o_events": Out(input_stream_signature()),
            "i_events": In(output_stream_signature()),
            "busy": Out(1),
            "error": Out(1),
            "spikes_lost": Out(1),
            "overrun": In(1),
        })

    @property
    def layout(self) -> CoreLayout:
        return self._layout

    @property
    def max_payload(self) -> int:
        return self._max_payload

    @property
    def event_buffer_depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        layout = self._layout
        max_payload = self._max_payload
        max_words = max_payload // 4
        # The parts below share their signals through `ns`, in this order.
        ns = SharedNames()
        ns.keep(locals())

        self._buffers(m, ns)
        self._execution(m, ns)
        with m.FSM() as fsm:
            self._receive_phases(m, ns)
            self._access_phases(m, ns)
            self._event_phases(m, ns)
            self._reply_phases(m, ns)
        m.d.comb += self.busy.eq(~fsm.ongoing("HUNT"))
        return m

    def _buffers(self, m, ns):
        """Add the payload/reply buffer, the output event buffer and the receive side's registers."""
        (max_payload,) = ns.take(
            "max_payload")
        # Payload and reply memory, one byte per word.
        m.submodules.buffer = buffer = Memory(shape=8, depth=max_payload, init=[])
        buf_wr = buffer.write_port()
        buf_rd = buffer.read_port()
        pointer = Signal(range(max_payload + 1))
        m.d.comb += buf_rd.addr.eq(pointer)

        # Output event buffer.
        m.submodules.events = events = fifo.SyncFIFOBuffered(width=32, depth=self._depth)
        lost = Signal()
        ticks_seen = Signal(16)
        m.d.comb += [
            self.i_events.ready.eq(1),
            events.w_data.eq(Cat(self.i_events.payload.neuron, self.i_events.payload.layer,
                                 self.i_events.payload.tick[:SPIKE_TICK_BITS],
                                 self.i_events.payload.end_of_tick)),
            events.w_en.eq(self.i_events.valid),
        ]
        with m.If(self.i_events.valid):
            with m.If(~events.w_rdy):
                m.d.sync += lost.eq(1)
            with m.If(self.i_events.payload.end_of_tick):
                m.d.sync += ticks_seen.eq(ticks_seen + 1)
        m.d.comb += self.spikes_lost.eq(lost)

        # Receive side.
        command = Signal(8)
        # A length above max_payload is refused as its second byte arrives: never stored.
        length = Signal(range(max_payload + 1))
        # length - 1, registered beside it: the payload phase compares the pointer with it
        # by equality, no subtraction between the pointer and the phase register.
        payload_last = Signal(range(max_payload))
        header_index = Signal(2)
        received_crc = Signal(16)
        rx_crc = Signal(16)
        # The first six payload bytes: a 32-bit address (READ, WRITE) or a 16-bit count
        # (RUN_TICKS, READ_SPIKES), then a 16-bit count (READ). Only the address bits the
        # map has are kept, and whether any bit above them was set.
        address_low = Signal(max(self._layout.address_bits, 16))
        address_high_set = Signal()
        count_param = Signal(16)
        idle = Signal(range(self._timeout_cycles + 1))
        timed_out = Signal()
        byte_in = Signal(8)
        took_byte = Signal()
        m.d.comb += [byte_in.eq(self.i_bytes.payload),
                     took_byte.eq(self.i_bytes.valid & self.i_bytes.ready),
                     timed_out.eq(idle == self._timeout_cycles)]
        with m.If(took_byte):
            m.d.sync += idle.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += idle.eq(idle + 1)
        # A byte lost while the bridge was busy: remembered until the reply is sent.
        overran = Signal()
        with m.If(self.overrun):
            m.d.sync += overran.eq(1)

        ns.keep(locals())

    def _execution(self, m, ns):
        """Add the execution and reply registers, the burst checks against the memory map and the command table."""
        (address_high_set, address_low, command, count_param, events, layout, length, lost,
         max_payload, max_words, received_crc, rx_crc) = ns.take(
            "address_high_set", "address_low", "command", "count_param", "events", "layout",
            "length", "lost", "max_payload", "max_words", "received_crc", "rx_crc")
        # Execution and reply.
        status = Signal(8)
        # Sized to what they can hold: a checked address, at most max_payload bytes.
        reply_length = Signal(range(max_payload + 1))
        # Registered forms of "pointer + 1 == reply_length" and "done + 1 == count", so that
        # no adder sits between a counter and the phase register (the link's longest paths
        # on the iCE40). reply_last is set in REPLY, before the header's five bytes go out;
        # last_word follows done and count every cycle, and both hold still through the
        # byte-gathering phases before WRITE_ACCESS and PUSH_SEND read it.
        reply_last = Signal(range(max_payload))
        last_word = Signal()
        address = Signal(layout.address_bits)
        word = Signal(32)
        byte_index = Signal(3)
        count = Signal(16)
        done = Signal(range(max_payload // 2 + 1))   # words or events of one frame
        m.d.sync += last_word.eq(done + 1 == count)
        # done == count, registered likewise: READ_STORE and SPIKES_POP look at it at
        # least four cycles after `done` moved (VERIFY sets it for SPIKES_POP itself).
        all_done = Signal()
        m.d.sync += all_done.eq(done == count)
        ticks_sent = Signal(16)
        tx_crc = Signal(16)
        address_param = address_low      # READ, WRITE
        short_param = address_low[:16]   # RUN_TICKS, READ_SPIKES

        sizes = region_sizes(layout)
        offset_bits = layout.offset_bits
        end_bits = max(offset_bits, 16) + 1
        region = address_param[offset_bits:offset_bits + layout.region_bits]
        offset = address_param[:offset_bits]
        burst = Signal(16)
        # The checks take two cycles (CHECK, then VERIFY): the table lookups (the region's
        # size; a weight row's layer width) are registered, then the sums and comparisons
        # on them, so no lookup feeds an adder, and no adder the phase register, in one
        # cycle.
        burst_checked = Signal(16)
        region_size = Signal(end_bits)
        upper_zero = Signal()
        # A weight burst stays inside one presynaptic row: post + burst <= n_post of the
        # row's layer, so that it never runs into the holes between rows.
        row = offset[layout.post_bits:]
        post = offset[:layout.post_bits]
        row_known = Signal()
        row_width = Signal(range(max((lay.n_post for lay in layout.projections), default=0) + 1))
        # Registered every cycle: their inputs hold still from the frame's end to its reply.
        m.d.sync += [burst_checked.eq(burst),
                     region_size.eq(Array(Const(size, end_bits) for size in sizes)[region]),
                     upper_zero.eq((address_param[layout.address_bits:] == 0) & ~address_high_set),
                     row_known.eq(0)]
        for lay in layout.projections:
            with m.If((row >= lay.row_base) & (row < lay.row_base + lay.n_pre)):
                m.d.sync += [row_known.eq(1), row_width.eq(lay.n_post)]
        # Registered too, the ends of the access first and the comparisons a cycle later:
        # the inputs are registered copies of values that hold still from the frame's end,
        # so by VERIFY (two cycles after CHECK) it has seen them final.
        offset_end = Signal((offset + burst_checked).shape())
        post_end = Signal((post + burst_checked).shape())
        m.d.sync += [offset_end.eq(offset + burst_checked), post_end.eq(post + burst_checked)]
        address_ok = Signal()
        m.d.sync += address_ok.eq(
            upper_zero & (offset_end <= region_size)
            & ((region != REGION_WEIGHTS) | (row_known & (post_end <= row_width))))

        known_command = Signal()
        length_ok = Signal()
        with m.Switch(command):
            with m.Case(Command.WRITE):
                m.d.comb += [known_command.eq(1),
                             length_ok.eq((length >= 8) & (length[:2] == 0)),
                             burst.eq((length - 4) >> 2)]
            with m.Case(Command.READ):
                m.d.comb += [known_command.eq(1),
                             length_ok.eq((length == 6) & (count_param != 0)
                                          & (count_param <= max_words)),
                             burst.eq(count_param)]
            with m.Case(Command.PUSH_EVENTS):
                m.d.comb += [known_command.eq(1), length_ok.eq((length >= 2) & ~length[0])]
            with m.Case(Command.RUN_TICKS, Command.READ_SPIKES):
                m.d.comb += [known_command.eq(1), length_ok.eq(length == 2)]
            with m.Case(Command.STATUS):
                m.d.comb += [known_command.eq(1), length_ok.eq(length == 0)]

        # The request's own checks, registered as above, and its command one-hot, so that
        # VERIFY chooses the next phase from single bits.
        crc_ok, command_known, command_length_ok = Signal(), Signal(), Signal()
        m.d.sync += [crc_ok.eq(received_crc == rx_crc), command_known.eq(known_command),
                     command_length_ok.eq(length_ok)]
        is_command = {name: Signal(name=f"is_{name.lower()}") for name in (
            "WRITE", "READ", "PUSH_EVENTS", "RUN_TICKS", "READ_SPIKES", "STATUS")}
        m.d.sync += [flag.eq(command == Command[name]) for name, flag in is_command.items()]

        status_word = Signal(64)
        # The event buffer's fill level, registered: the FIFO's level is a sum of its
        # counters, and READ_SPIKES compares it and STATUS stores it. It lags the FIFO by
        # a cycle; the FIFO is popped only in SPIKES_POP, so it never exceeds the level.
        # It holds while STATUS stores it, so its two bytes come from one value.
        level = Signal(16)
        hold_level = Signal()
        with m.If(~hold_level):
            m.d.sync += level.eq(events.level)
        m.d.comb += [status_word.eq(Cat(level, Const(self._depth, 16), lost, Const(0, 7),
                                        Const(PROTOCOL_VERSION, 8), Const(max_payload, 16)))]

        reply_header = Array([Const(SYNC, 8), command, status, reply_length[:8],
                              reply_length[8:]])
        header_step = Signal(3)
        tx_byte = Signal(8)
        m.d.comb += self.o_bytes.payload.eq(tx_byte)
        sent = Signal()
        m.d.comb += sent.eq(self.o_bytes.valid & self.o_bytes.ready)

        # The access strobes come from registers, set as the phase that raises them is
        # entered and cleared with its ack: the core's event intake waits on the strobe in
        # the same cycle, so a decode of the phase register here would stretch that path.
        strobe, write = Signal(), Signal()
        m.d.comb += [self.host.address.eq(address[:layout.address_bits]),
                     self.host.write_data.eq(word),
                     self.host.strobe.eq(strobe), self.host.write.eq(write)]
        # The same for the events offered to the core (PUSH_SEND, RUN), whose intake
        # decides on `valid` and the payload in the cycle it sees them: the payload comes
        # from registers too (an event's word; the request's command, one-hot), not the
        # phase.
        offer = Signal()
        m.d.comb += [self.o_events.valid.eq(offer),
                     self.o_events.payload.address.eq(word[16:]),
                     self.o_events.payload.end_of_tick.eq(is_command["RUN_TICKS"])]

        ns.keep(locals())

    def _receive_phases(self, m, ns):
        """Add the phases that receive a frame: HUNT, HEADER, PAYLOAD, CRC0, CRC1, DRAIN."""
        (address_high_set, address_low, buf_wr, byte_in, command, count_param, header_index,
         length, max_payload, payload_last, pointer, received_crc, rx_crc, status, timed_out,
         took_byte) = ns.take(
            "address_high_set", "address_low", "buf_wr", "byte_in", "command", "count_param",
            "header_index", "length", "max_payload", "payload_last", "pointer", "received_crc",
            "rx_crc", "status", "timed_out", "took_byte")
        with m.State("HUNT"):
            m.d.comb += self.i_bytes.ready.eq(1)
            with m.If(took_byte & (byte_in == SYNC)):
                m.d.sync += [rx_crc.eq(0xFFFF), header_index.eq(0), address_low.eq(0),
                             address_high_set.eq(0), count_param.eq(0), command.eq(0),
                             length.eq(0)]
                m.next = "HEADER"

        with m.State("HEADER"):
            m.d.comb += self.i_bytes.ready.eq(1)
            with m.If(took_byte):
                m.d.sync += [rx_crc.eq(_crc16_byte(rx_crc, byte_in)),
                             header_index.eq(header_index + 1), pointer.eq(0)]
                with m.Switch(header_index):
                    with m.Case(0):
                        m.d.sync += command.eq(byte_in)
                    with m.Case(1):
                        m.d.sync += length[:8].eq(byte_in)
                    with m.Case(2):
                        full_length = Cat(length[:8], byte_in)
                        m.d.sync += [length.eq(full_length), payload_last.eq(full_length - 1)]
                        with m.If(full_length > max_payload):
                            m.d.sync += status.eq(Status.BAD_LENGTH)
                            m.next = "DRAIN"
                        with m.Elif(full_length == 0):
                            m.next = "CRC0"
                        with m.Else():
                            m.next = "PAYLOAD"
            with m.Elif(timed_out):
                m.d.sync += status.eq(Status.TRUNCATED)
                m.next = "REPLY_EMPTY"

        with m.State("PAYLOAD"):
            m.d.comb += self.i_bytes.ready.eq(1)
            m.d.comb += [buf_wr.addr.eq(pointer), buf_wr.data.eq(byte_in),
                         buf_wr.en.eq(took_byte)]
            with m.If(took_byte):
                m.d.sync += [rx_crc.eq(_crc16_byte(rx_crc, byte_in)),
                             pointer.eq(pointer + 1)]
                for index in range(4):
                    with m.If(pointer == index):
                        for bit in range(8):
                            position = 8 * index + bit
                            if position < len(address_low):
                                m.d.sync += address_low[position].eq(byte_in[bit])
                            else:
                                with m.If(byte_in[bit]):
                                    m.d.sync += address_high_set.eq(1)
                for index in range(2):
                    with m.If(pointer == 4 + index):
                        m.d.sync += count_param[8 * index:8 * index + 8].eq(byte_in)
                with m.If(pointer == payload_last):
                    m.next = "CRC0"
            with m.Elif(timed_out):
                m.d.sync += status.eq(Status.TRUNCATED)
                m.next = "REPLY_EMPTY"

        with m.State("CRC0"):
            m.d.comb += self.i_bytes.ready.eq(1)
            with m.If(took_byte):
                m.d.sync += received_crc[:8].eq(byte_in)
                m.next = "CRC1"
            with m.Elif(timed_out):
                m.d.sync += status.eq(Status.TRUNCATED)
                m.next = "REPLY_EMPTY"

        with m.State("CRC1"):
            m.d.comb += self.i_bytes.ready.eq(1)
            with m.If(took_byte):
                m.d.sync += received_crc[8:].eq(byte_in)
                m.next = "CHECK"
            with m.Elif(timed_out):
                m.d.sync += status.eq(Status.TRUNCATED)
                m.next = "REPLY_EMPTY"

        with m.State("DRAIN"):
            # The length cannot be trusted to find the end: wait for the line to go quiet.
            m.d.comb += self.i_bytes.ready.eq(1)
            with m.If(timed_out):
                m.next = "REPLY_EMPTY"

        ns.keep(locals())

    def _access_phases(self, m, ns):
        """Add CHECK, VERIFY and the phases of WRITE and READ."""
        (address, address_ok, address_param, burst, byte_index, command, command_known,
         command_length_ok, count, crc_ok, done, last_word, length, level, lost, max_words,
         offer, pointer, reply_length, short_param, status, strobe, ticks_seen, ticks_sent,
         word, write) = ns.take(
            "address", "address_ok", "address_param", "burst", "byte_index", "command",
            "command_known", "command_length_ok", "count", "crc_ok", "done", "last_word",
            "length", "level", "lost", "max_words", "offer", "pointer", "reply_length",
            "short_param", "status", "strobe", "ticks_seen", "ticks_sent", "word", "write")
        (all_done, is_command) = ns.take("all_done", "is_command")
        # READ_SPIKES takes min(asked, buffered, max_words) events, found in two registered
        # steps: the request holds still from its end, and the buffer only fills until
        # SPIKES_POP, so the count is never more than the buffer holds.
        spikes_limit = Signal.like(level)
        spikes_to_read = Signal.like(count)
        m.d.sync += [spikes_limit.eq(Mux(short_param < level, short_param, level)),
                     spikes_to_read.eq(Mux(spikes_limit < max_words, spikes_limit, max_words))]
        with m.State("CHECK"):
            m.next = "CHECK_ENDS"   # the checks' lookups are registered in this cycle
        with m.State("CHECK_ENDS"):
            m.next = "VERIFY"       # and the address check's sums in this one
        with m.State("VERIFY"):
            m.d.sync += [address.eq(address_param), count.eq(burst), done.eq(0),
                         byte_index.eq(0), reply_length.eq(0), status.eq(Status.OK)]
            with m.If(~crc_ok):
                m.d.sync += status.eq(Status.BAD_CRC)
                m.next = "REPLY_EMPTY"
            with m.Elif(~command_known):
                m.d.sync += status.eq(Status.UNKNOWN_COMMAND)
                m.next = "REPLY_EMPTY"
            with m.Elif(~command_length_ok):
                m.d.sync += status.eq(Status.BAD_LENGTH)
                m.next = "REPLY_EMPTY"
            with m.Elif((is_command["READ"] | is_command["WRITE"]) & ~address_ok):
                m.d.sync += status.eq(Status.ADDRESS_OUT_OF_RANGE)
                m.next = "REPLY_EMPTY"
            with m.Elif(is_command["WRITE"]):
                m.d.sync += pointer.eq(4)
                m.next = "WRITE_FETCH"
            with m.Elif(is_command["READ"]):
                m.d.sync += [pointer.eq(0), strobe.eq(1)]
                m.next = "READ_ACCESS"
            with m.Elif(is_command["PUSH_EVENTS"]):
                m.d.sync += [pointer.eq(0), count.eq(length >> 1)]
                m.next = "PUSH_FETCH"
            with m.Elif(is_command["RUN_TICKS"]):
                m.d.sync += [count.eq(short_param), ticks_sent.eq(0),
                             ticks_seen.eq(0), offer.eq(short_param != 0)]
                m.next = "RUN"
            with m.Elif(is_command["READ_SPIKES"]):
                m.d.sync += [count.eq(spikes_to_read), all_done.eq(spikes_to_read == 0),
                             pointer.eq(0),
                             status.eq(Mux(lost, Status.SPIKES_LOST, Status.OK)),
                             lost.eq(0)]
                m.next = "SPIKES_POP"
            with m.Elif(is_command["STATUS"]):
                m.d.sync += [pointer.eq(0), byte_index.eq(0)]
                m.next = "STATUS_STORE"

        # WRITE: assemble each word from four payload bytes, then write it.
        self._gather_bytes(m, ns, "WRITE", 4, then="WRITE_ACCESS",
                           entering=[strobe.eq(1), write.eq(1)])
        with m.State("WRITE_ACCESS"):
            with m.If(self.host.ack):
                m.d.sync += [address.eq(address + 1), done.eq(done + 1), strobe.eq(0),
                             write.eq(0)]
                with m.If(self.host.error):
                    # The map was checked, so the core refused the value itself: say
                    # how many words went in before it.
                    m.d.sync += [status.eq(Status.REFUSED), word.eq(done), pointer.eq(0),
                                 byte_index.eq(2)]
                    m.next = "READ_STORE"
                with m.Elif(last_word):
                    m.next = "REPLY"
                with m.Else():
                    m.next = "WRITE_FETCH"

        # READ: read each word and store its four bytes as the reply payload.
        with m.State("READ_ACCESS"):
            with m.If(self.host.ack):
                m.d.sync += [word.eq(self.host.read_data), address.eq(address + 1),
                             done.eq(done + 1), byte_index.eq(0), strobe.eq(0)]
                with m.If(self.host.error):
                    m.d.sync += status.eq(Status.ADDRESS_OUT_OF_RANGE)
                    m.next = "REPLY_EMPTY"
                with m.Else():
                    m.next = "READ_STORE"
        with m.State("READ_STORE"):
            self._store_byte(m, ns)
            with m.If(byte_index == 3):
                with m.If(status == Status.REFUSED):
                    m.d.sync += reply_length.eq(2)
                    m.next = "REPLY"
                with m.Elif(all_done):
                    m.d.sync += reply_length.eq(count << 2)
                    m.next = "REPLY"
                with m.Else():
                    m.d.sync += strobe.eq(1)
                    m.next = "READ_ACCESS"

        ns.keep(locals())

    def _event_phases(self, m, ns):
        """Add the phases of PUSH_EVENTS, RUN_TICKS, READ_SPIKES and STATUS."""
        (buf_wr, byte_index, count, done, events, hold_level, last_word, offer, pointer,
         reply_length, status_word, ticks_seen, ticks_sent, word) = ns.take(
            "buf_wr", "byte_index", "count", "done", "events", "hold_level", "last_word",
            "offer", "pointer", "reply_length", "status_word", "ticks_seen", "ticks_sent",
            "word")
        (all_done,) = ns.take("all_done")
        # The core's `ready` is a decode of its phase and its delivery's state: it clears
        # `offer` and nothing else, and the phases move on in the cycles after.
        # PUSH_EVENTS: two payload bytes per event, into the core's input stream.
        self._gather_bytes(m, ns, "PUSH", 2, then="PUSH_SEND", entering=[offer.eq(1)])
        with m.State("PUSH_SEND"):
            with m.If(offer):
                with m.If(self.o_events.ready):
                    m.d.sync += offer.eq(0)
            with m.Else():
                m.d.sync += done.eq(done + 1)
                with m.If(last_word):
                    m.next = "REPLY"
                with m.Else():
                    m.next = "PUSH_FETCH"

        # RUN_TICKS: close `count` ticks, then wait for the core to finish them all.
        # After each tick is taken the offer stays down for three cycles: `ticks_sent`
        # moves in the first, `more_ticks` (registered, no adder before it) follows it in
        # the second, and the offer is renewed from it in the third. A tick takes the
        # core far longer than that.
        more_ticks = Signal()
        taken = Signal(3)
        m.d.sync += [more_ticks.eq(ticks_sent != count), taken.eq(taken << 1)]
        with m.State("RUN"):
            with m.If(offer & self.o_events.ready):
                m.d.sync += [offer.eq(0), taken.eq(0b001)]
            with m.Elif(taken[2]):
                m.d.sync += offer.eq(more_ticks)
            with m.If(taken[0]):
                m.d.sync += ticks_sent.eq(ticks_sent + 1)
            with m.If(ticks_seen == count):
                m.next = "REPLY"

        # READ_SPIKES: move buffered events into the reply payload.
        with m.State("SPIKES_POP"):
            with m.If(all_done):
                m.d.sync += reply_length.eq(count << 2)
                m.next = "REPLY"
            with m.Elif(events.r_rdy):
                m.d.comb += events.r_en.eq(1)
                m.d.sync += [word.eq(events.r_data), done.eq(done + 1), byte_index.eq(0)]
                m.next = "SPIKES_STORE"
        with m.State("SPIKES_STORE"):
            self._store_byte(m, ns)
            with m.If(byte_index == 3):
                m.next = "SPIKES_POP"

        with m.State("STATUS_STORE"):
            m.d.comb += [hold_level.eq(1), buf_wr.addr.eq(pointer), buf_wr.en.eq(1),
                         buf_wr.data.eq(status_word.word_select(byte_index, 8))]
            m.d.sync += [pointer.eq(pointer + 1), byte_index.eq(byte_index + 1)]
            with m.If(byte_index == 7):
                m.d.sync += reply_length.eq(8)
                m.next = "REPLY"

        ns.keep(locals())

    def _gather_bytes(self, m, ns, name, size, *, then, entering=()):
        """Add ``{name}_FETCH`` and ``{name}_SHIFT``: read ``size`` payload bytes from the
        buffer into the top of ``word``, little-endian, then go to phase ``then`` (with the
        statements ``entering``)."""
        (buf_rd, byte_index, pointer, word) = ns.take("buf_rd", "byte_index", "pointer", "word")
        with m.State(f"{name}_FETCH"):
            m.next = f"{name}_SHIFT"   # the read port answers on the next cycle
        with m.State(f"{name}_SHIFT"):
            m.d.sync += [word.eq(Cat(word[8:], buf_rd.data)), pointer.eq(pointer + 1),
                         byte_index.eq(byte_index + 1)]
            with m.If(byte_index == size - 1):
                m.d.sync += [byte_index.eq(0), *entering]
                m.next = then
            with m.Else():
                m.next = f"{name}_FETCH"

    def _store_byte(self, m, ns):
        """Store the low byte of ``word`` in the reply buffer and move on to the next."""
        (buf_wr, byte_index, pointer, word) = ns.take("buf_wr", "byte_index", "pointer", "word")
        m.d.comb += [buf_wr.addr.eq(pointer), buf_wr.data.eq(word[:8]), buf_wr.en.eq(1)]
        m.d.sync += [word.eq(word >> 8), pointer.eq(pointer + 1),
                     byte_index.eq(byte_index + 1)]

    def _reply_phases(self, m, ns):
        """Add the phases that send the reply: header, payload from the buffer, CRC."""
        (buf_rd, command, header_step, idle, overran, pointer, reply_header, reply_last,
         reply_length, sent, status, tx_byte, tx_crc) = ns.take(
            "buf_rd", "command", "header_step", "idle", "overran", "pointer", "reply_header",
            "reply_last", "reply_length", "sent", "status", "tx_byte", "tx_crc")
        with m.State("REPLY_EMPTY"):
            m.d.sync += reply_length.eq(0)
            m.next = "REPLY"
        with m.State("REPLY"):
            m.d.sync += [header_step.eq(0), tx_crc.eq(0xFFFF), pointer.eq(0),
                         reply_last.eq(reply_length - 1),
                         self.error.eq(status != Status.OK)]
            m.next = "SEND_HEADER"
        with m.State("SEND_HEADER"):
            m.d.comb += [self.o_bytes.valid.eq(1), tx_byte.eq(reply_header[header_step])]
            with m.If(sent):
                m.d.sync += header_step.eq(header_step + 1)
                with m.If(header_step != 0):
                    m.d.sync += tx_crc.eq(_crc16_byte(tx_crc, tx_byte))
                with m.If(header_step == 4):
                    m.d.sync += header_step.eq(0)
                    with m.If(reply_length == 0):
                        m.next = "SEND_CRC0"
                    with m.Else():
                        m.next = "SEND_FETCH"
        # The payload byte is registered as it is read (a block RAM's read data take 6 ns
        # to come out on the ECP5, too late for the CRC and the transmitter in a cycle).
        fetched = Signal(8)
        m.d.sync += fetched.eq(buf_rd.data)
        with m.State("SEND_FETCH"):
            m.next = "SEND_LOAD"
        with m.State("SEND_LOAD"):
            m.next = "SEND_PAYLOAD"
        with m.State("SEND_PAYLOAD"):
            m.d.comb += [self.o_bytes.valid.eq(1), tx_byte.eq(fetched)]
            with m.If(sent):
                m.d.sync += [tx_crc.eq(_crc16_byte(tx_crc, tx_byte)),
                             pointer.eq(pointer + 1)]
                with m.If(pointer == reply_last):
                    m.next = "SEND_CRC0"
                with m.Else():
                    m.next = "SEND_FETCH"
        with m.State("SEND_CRC0"):
            m.d.comb += [self.o_bytes.valid.eq(1), tx_byte.eq(tx_crc[:8])]
            with m.If(sent):
                m.next = "SEND_CRC1"
        with m.State("SEND_CRC1"):
            m.d.comb += [self.o_bytes.valid.eq(1), tx_byte.eq(tx_crc[8:])]
            with m.If(sent & (overran | self.overrun)):
                # Bytes were lost while this request ran: drop the rest of what was sent
                # meanwhile (from a fresh idle count) and answer OVERRUN.
                m.d.sync += [status.eq(Status.OVERRUN), command.eq(0), overran.eq(0),
                             idle.eq(0)]
                m.next = "DRAIN"
            with m.Elif(sent):
                m.next = "HUNT"

        ns.keep(locals())


class LinkTop(wiring.Component):
    """Core, host link and UART: a board top without the board.

    Parameters
    ----------
    config : CoreConfig
    clk_frequency : float
        Frequency of the ``sync`` domain, in Hz.
    baud_rate : int
    timeout_seconds : float
        Idle time that ends a truncated frame.
    event_buffer_depth, max_payload : int
        See :class:`HostLink`.
    core_factory : callable, optional
        ``core_factory(config)`` returns the core component; defaults to
        :class:`plasticore.hdl.core.Core`.

    Members
    -------
    rx : In(1)
    tx : Out(1)
    busy, error, spikes_lost : Out(1)
        For status LEDs.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)
    error: Out(1)
    spikes_lost: Out(1)

    def __init__(self, config, *, clk_frequency: float, baud_rate: int = 115200,
                 timeout_seconds: float = 0.05, event_buffer_depth: int = 256,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, core_factory=None):
        from .uart import cycles_per_bit
        self.config = config
        self.layout = layout_for(config)
        self.divisor = cycles_per_bit(clk_frequency, baud_rate)
        self.timeout_cycles = max(1, round(clk_frequency * timeout_seconds))
        self.event_buffer_depth = event_buffer_depth
        self.max_payload = max_payload
        self._core_factory = core_factory
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        if self._core_factory is None:
            from .cores import make_core
            core = make_core(self.config)
        else:
            core = self._core_factory(self.config)
        m.submodules.core = core
        m.submodules.receiver = receiver = UARTReceiver(self.divisor)
        m.submodules.transmitter = transmitter = UARTTransmitter(self.divisor)
        m.submodules.link = link = HostLink(self.layout, timeout_cycles=self.timeout_cycles,
                                            event_buffer_depth=self.event_buffer_depth,
                                            max_payload=self.max_payload)
        connect(m, receiver.o_stream, link.i_bytes)
        connect(m, link.o_bytes, transmitter.i_stream)
        connect(m, link.host, core.host)
        connect(m, link.o_events, core.i_events)
        connect(m, core.o_events, link.i_events)
        m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(transmitter.tx),
                     link.overrun.eq(receiver.overrun),
                     self.busy.eq(link.busy), self.error.eq(link.error),
                     self.spikes_lost.eq(link.spikes_lost)]
        return m
