"""The frame bridge in amaranth.sim, at the byte level, against a stand-in core.

The stand-in core (a Python testbench process) is a flat memory over the host map and an
event echo: every input event of a tick comes back as a spike of neuron ``address`` in
layer 1, then an end-of-tick marker. The expected replies come from :class:`RefLink`, a
plain reading of the protocol rules in docs/protocol.md, written apart from the gateware.
"""

from __future__ import annotations

import struct

import pytest
from amaranth.sim import Simulator

from plasticore.config import CoreConfig
from plasticore.hdl.host_link import HostLink
from plasticore.layout import CoreLayout, REGION_WEIGHTS, REGION_MEMBRANE
from plasticore.protocol import (
    Command, Status, SYNC, crc16, decode_reply, decode_spike_word, decode_status,
    encode_request, events_payload, read_payload, read_spikes_payload, run_payload,
    write_payload, encode_spike_word)

TIMEOUT = 40
MAX_PAYLOAD = 64
REFUSED_VALUE = 0xDEAD0000


class FakeCore:
    """A host-port memory and an event echo, shared by the simulation and the reference."""

    def __init__(self, layout: CoreLayout):
        self.layout = layout
        self.valid = {layout.address(0, offset) for offset in range(len(layout.registers))}
        for index, lay in enumerate(layout.projections):
            self.valid.update(layout.projection_address(index, pre, post)
                              for pre in range(lay.n_pre) for post in range(lay.n_post))
        # The state regions (a DECOLLE core has more of them, behind a third region bit).
        for region, size in enumerate(layout.region_sizes()[2:], 2):
            self.valid.update(layout.address(region, offset) for offset in range(size))
        self.memory = {}
        self.tick = 0
        self.pending = []       # input addresses of the open tick
        self.out = []           # output events (neuron, layer, tick, eot) not yet delivered

    def access(self, address, write, data):
        """Return (error, read_data)."""
        if address not in self.valid:
            return True, 0
        if write and data == REFUSED_VALUE:
            return True, 0      # stands for a value that does not fit its field
        if write:
            self.memory[address] = data
            return False, 0
        return False, self.memory.get(address, 0)

    def event(self, address, end_of_tick):
        if end_of_tick:
            self.out += [(a, 1, self.tick, False) for a in self.pending]
            self.out.append((0, 0, self.tick, True))
            self.pending = []
            self.tick += 1
        else:
            self.pending.append(address)


class RefLink:
    """What the bridge should answer, from the protocol rules alone."""

    def __init__(self, layout, depth, max_payload=MAX_PAYLOAD):
        self.core = FakeCore(layout)
        self.layout = layout
        self.depth = depth
        self.max_payload = max_payload
        self.buffer = []
        self.lost = False

    def _drain_core(self):
        for neuron, layer, tick, eot in self.core.out:
            if len(self.buffer) < self.depth:
                self.buffer.append(encode_spike_word(neuron, layer, tick, eot))
            else:
                self.lost = True
        self.core.out = []

    def _in_map(self, address, count):
        layout = self.layout
        if address >> layout.address_bits:
            return False
        last = address + count - 1
        if address >> layout.offset_bits == REGION_WEIGHTS and \
                last >> layout.post_bits != address >> layout.post_bits:
            return False        # weight bursts stay inside one row
        return all(a in self.core.valid for a in range(address, address + count)) and \
            last >> layout.offset_bits == address >> layout.offset_bits

    def answer(self, frame: bytes) -> bytes:
        """Return the reply to one complete frame (or a truncated one)."""
        from plasticore.protocol import encode_reply
        frame = frame[frame.index(SYNC):]       # the bridge skips line noise before a frame
        command = frame[1] if len(frame) > 1 else 0
        if len(frame) >= 4:
            length = frame[2] | frame[3] << 8
            if length > self.max_payload:
                return encode_reply(command, Status.BAD_LENGTH)
        if len(frame) < 4 or len(frame) < 6 + length:
            return encode_reply(command, Status.TRUNCATED)
        payload = frame[4:4 + length]
        if crc16(frame[1:4 + length]) != (frame[4 + length] | frame[5 + length] << 8):
            return encode_reply(command, Status.BAD_CRC)
        if command not in set(Command):
            return encode_reply(command, Status.UNKNOWN_COMMAND)
        bad_length = encode_reply(command, Status.BAD_LENGTH)
        if command == Command.WRITE:
            if length < 8 or length % 4:
                return bad_length
            address, *words = struct.unpack(f"<I{(length - 4) // 4}I", payload)
            if not self._in_map(address, len(words)):
                return encode_reply(command, Status.ADDRESS_OUT_OF_RANGE)
            for index, word in enumerate(words):
                if self.core.access(address + index, True, word)[0]:
                    return encode_reply(command, Status.REFUSED, struct.pack("<H", index))
            return encode_reply(command, Status.OK)
        if command == Command.READ:
            if length != 6:
                return bad_length
            address, count = struct.unpack("<IH", payload)
            if not 1 <= count <= self.max_payload // 4:
                return bad_length
            if not self._in_map(address, count):
                return encode_reply(command, Status.ADDRESS_OUT_OF_RANGE)
            words = [self.core.access(address + i, False, 0)[1] for i in range(count)]
            return encode_reply(command, Status.OK, struct.pack(f"<{count}I", *words))
        if command == Command.PUSH_EVENTS:
            if length < 2 or length % 2:
                return bad_length
            for address in struct.unpack(f"<{length // 2}H", payload):
                self.core.event(address, False)
            return encode_reply(command, Status.OK)
        if command == Command.RUN_TICKS:
            if length != 2:
                return bad_length
            for _ in range(struct.unpack("<H", payload)[0]):
                self.core.event(0, True)
            self._drain_core()
            return encode_reply(command, Status.OK)
        if command == Command.READ_SPIKES:
            if length != 2:
                return bad_length
            most = min(struct.unpack("<H", payload)[0], self.max_payload // 4)
            taken, self.buffer = self.buffer[:most], self.buffer[most:]
            status = Status.SPIKES_LOST if self.lost else Status.OK
            self.lost = False
            return encode_reply(command, status, struct.pack(f"<{len(taken)}I", *taken))
        if command == Command.STATUS:
            if length != 0:
                return bad_length
            return encode_reply(command, Status.OK, struct.pack(
                "<HHBBH", len(self.buffer), self.depth, int(self.lost), 1, self.max_payload))
        raise AssertionError("unreachable")


def run_link(layout, frames, *, depth=16, gap=2, max_cycles=200_000, gaps=None):
    """Send each frame (raw bytes) to a HostLink over a stand-in core; return the replies.

    ``gaps``, if given, holds for each frame the idle cycles after each of its bytes
    (a frame split at byte boundaries); otherwise every byte is followed by ``gap``.
    """
    dut = HostLink(layout, timeout_cycles=TIMEOUT, event_buffer_depth=depth,
                   max_payload=MAX_PAYLOAD)
    core = FakeCore(layout)
    replies = []

    async def core_process(ctx):
        ctx.set(dut.o_events.ready, 1)
        acked = False
        while True:
            ctx.set(dut.host.ack, 0)
            ctx.set(dut.host.error, 0)
            if core.out:
                neuron, layer, tick, eot = core.out[0]
                ctx.set(dut.i_events.valid, 1)
                ctx.set(dut.i_events.payload.neuron, neuron)
                ctx.set(dut.i_events.payload.layer, layer)
                ctx.set(dut.i_events.payload.tick, tick)
                ctx.set(dut.i_events.payload.end_of_tick, eot)
            else:
                ctx.set(dut.i_events.valid, 0)
            if ctx.get(dut.host.strobe) and not acked:
                error, data = core.access(ctx.get(dut.host.address), ctx.get(dut.host.write),
                                          ctx.get(dut.host.write_data))
                ctx.set(dut.host.ack, 1)
                ctx.set(dut.host.error, error)
                ctx.set(dut.host.read_data, data)
                acked = True
            else:
                acked = False
            taken_in = ctx.get(dut.o_events.valid)
            address = ctx.get(dut.o_events.payload.address)
            end_of_tick = ctx.get(dut.o_events.payload.end_of_tick)
            gave_out = bool(core.out) and ctx.get(dut.i_events.ready)
            await ctx.tick()
            if taken_in:
                core.event(address, end_of_tick)
            if gave_out:
                core.out.pop(0)

    async def host_process(ctx):
        ctx.set(dut.o_bytes.ready, 1)
        budget = [max_cycles]

        async def step():
            received = None
            if ctx.get(dut.o_bytes.valid):
                received = ctx.get(dut.o_bytes.payload)
            await ctx.tick()
            budget[0] -= 1
            assert budget[0] > 0, "simulation ran out of cycles"
            return received

        pending = bytearray()
        for frame_index, frame in enumerate(frames):
            for byte_index, byte in enumerate(frame):
                ctx.set(dut.i_bytes.valid, 1)
                ctx.set(dut.i_bytes.payload, byte)
                while True:
                    ready = ctx.get(dut.i_bytes.ready)
                    got = await step()
                    if got is not None:
                        pending.append(got)
                    if ready:
                        break
                ctx.set(dut.i_bytes.valid, 0)
                for _ in range(gap if gaps is None else gaps[frame_index][byte_index]):
                    got = await step()
                    if got is not None:
                        pending.append(got)
            # Wait for one whole reply.
            while len(pending) < 5 or len(pending) < 7 + (pending[3] | pending[4] << 8):
                got = await step()
                if got is not None:
                    pending.append(got)
            size = 7 + (pending[3] | pending[4] << 8)
            replies.append(bytes(pending[:size]))
            del pending[:size]
            for _ in range(4):
                got = await step()
                assert got is None, "the bridge sent bytes after its reply"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(core_process, background=True)
    sim.add_testbench(host_process)
    sim.run()
    return replies, core


@pytest.fixture(scope="module")
def layout():
    return CoreLayout(CoreConfig(layers=(6, 5, 3), lanes=2, refractory_ticks=1))


def check(layout, frames, depth=16, gaps=None):
    """Run ``frames`` on the gateware and on the reference; compare every reply."""
    reference = RefLink(layout, depth)
    expected = [reference.answer(frame) for frame in frames]
    replies, core = run_link(layout, frames, depth=depth, gaps=gaps)
    for index, (got, want) in enumerate(zip(replies, expected)):
        assert got == want, (f"frame {index} {frames[index].hex()}: got {decode_reply(got)}, "
                             f"want {decode_reply(want)}")
    assert core.memory == reference.core.memory
    return [decode_reply(reply) for reply in replies]


def test_status_of_a_fresh_link(layout):
    (reply,) = check(layout, [encode_request(Command.STATUS)])
    status = decode_status(reply.payload)
    assert (reply.status, status.buffered_events, status.buffer_depth, status.spikes_lost,
            status.version, status.max_payload) == (Status.OK, 0, 16, False, 1, MAX_PAYLOAD)


def test_write_then_read_back(layout):
    base = layout.weight_address(1, 2, 0)
    words = [0x11, 0xFFFFFFFF, 0x12345678]
    replies = check(layout, [
        encode_request(Command.WRITE, write_payload(base, words)),
        encode_request(Command.READ, read_payload(base, 5)),
    ])
    assert replies[0].status == Status.OK
    assert struct.unpack("<5I", replies[1].payload) == (*words, 0, 0)


def test_out_of_range_bursts_change_nothing(layout):
    membrane_end = layout.address(REGION_MEMBRANE, layout.state_words)
    last_weight = layout.weight_address(2, 4, 2)          # layers (6, 5, 3): last row
    row_end = layout.weight_address(1, 0, 4)              # last post of a 5-wide row
    frames = [
        encode_request(Command.WRITE, write_payload(last_weight - 1, [7, 8])),   # fits
        encode_request(Command.WRITE, write_payload(last_weight, [1, 2])),       # one past
        encode_request(Command.WRITE, write_payload(row_end, [1, 2])),           # row hole
        encode_request(Command.READ, read_payload(membrane_end - 2, 3)),         # one past
        encode_request(Command.READ, read_payload(1 << layout.address_bits, 1)),  # high bit
        encode_request(Command.WRITE, write_payload(layout.address(0, 5), [1, 2])),
        encode_request(Command.READ, read_payload(layout.weight_address(1, 5, 4) + 1, 1)),
        encode_request(Command.READ, read_payload(last_weight - 1, 2)),
    ]
    replies = check(layout, frames)
    assert [r.status for r in replies] == [Status.OK] + [Status.ADDRESS_OUT_OF_RANGE] * 6 \
        + [Status.OK]
    assert struct.unpack("<2I", replies[-1].payload) == (7, 8)


def test_malformed_frames_answered_and_ignored(layout):
    base = layout.address(REGION_WEIGHTS, 0)
    good = encode_request(Command.WRITE, write_payload(base, [5]))
    bad_crc = bytearray(encode_request(Command.WRITE, write_payload(base, [9])))
    bad_crc[-1] ^= 0x40
    corrupt_payload = bytearray(encode_request(Command.WRITE, write_payload(base, [9])))
    corrupt_payload[6] ^= 1
    frames = [
        good,
        bytes(bad_crc),
        bytes(corrupt_payload),
        encode_request(0x7F, b"\x01\x02"),                          # unknown command
        encode_request(Command.READ, b"\x00\x00\x00\x00\x01"),     # READ needs 6 bytes
        encode_request(Command.WRITE, b"\x00" * 6),                 # not address + words
        encode_request(Command.READ, read_payload(base, 0)),        # zero words
        encode_request(Command.READ, read_payload(base, MAX_PAYLOAD // 4 + 1)),
        encode_request(Command.STATUS, b"\x00"),
        encode_request(Command.RUN_TICKS, b""),
        encode_request(Command.PUSH_EVENTS, b"\x01"),
        encode_request(Command.READ, read_payload(base, 1)),
    ]
    replies = check(layout, frames)
    assert [r.status for r in replies] == [
        Status.OK, Status.BAD_CRC, Status.BAD_CRC, Status.UNKNOWN_COMMAND] + \
        [Status.BAD_LENGTH] * 7 + [Status.OK]
    assert struct.unpack("<I", replies[-1].payload) == (5,)


def test_truncated_and_oversized_frames_then_recovery(layout):
    base = layout.weight_address(1, 3, 1)
    whole = encode_request(Command.WRITE, write_payload(base, [3, 4]))
    oversized = bytes([SYNC, Command.WRITE]) + struct.pack("<H", MAX_PAYLOAD + 4) + \
        bytes(MAX_PAYLOAD + 10)
    frames = [
        whole[:7],                 # cut in the payload
        whole[:3],                 # cut in the header
        whole[:-1],                # cut in the CRC
        oversized,
        b"\x00\x13" + whole,       # line noise before a good frame is skipped
        encode_request(Command.READ, read_payload(base, 2)),
    ]
    replies = check(layout, frames)
    assert [r.status for r in replies] == [Status.TRUNCATED] * 3 + [Status.BAD_LENGTH] + \
        [Status.OK] * 2
    assert struct.unpack("<2I", replies[-1].payload) == (3, 4)


def test_events_ticks_and_spike_buffer(layout):
    frames = [
        encode_request(Command.PUSH_EVENTS, events_payload([4, 1, 300])),
        encode_request(Command.RUN_TICKS, run_payload(1)),
        encode_request(Command.STATUS),
        encode_request(Command.RUN_TICKS, run_payload(3)),
        encode_request(Command.READ_SPIKES, read_spikes_payload(2)),
        encode_request(Command.READ_SPIKES, read_spikes_payload(100)),
        encode_request(Command.RUN_TICKS, run_payload(0)),
        encode_request(Command.READ_SPIKES, read_spikes_payload(5)),
    ]
    replies = check(layout, frames)
    assert all(r.status == Status.OK for r in replies)
    assert decode_status(replies[2].payload).buffered_events == 4
    words = struct.unpack("<2I", replies[4].payload) + struct.unpack("<5I", replies[5].payload)
    decoded = [decode_spike_word(w) for w in words]
    # Hand-written: three echoed spikes and the end of tick 0, then three empty ticks.
    assert [(s.neuron, s.layer, s.tick_low, s.end_of_tick) for s in decoded] == [
        (4, 1, 0, False), (1, 1, 0, False), (300, 1, 0, False), (0, 0, 0, True),
        (0, 0, 1, True), (0, 0, 2, True), (0, 0, 3, True)]
    assert replies[7].payload == b""


def test_full_buffer_loses_events_and_says_so(layout):
    frames = [
        encode_request(Command.PUSH_EVENTS, events_payload(range(10))),
        encode_request(Command.RUN_TICKS, run_payload(1)),
        encode_request(Command.STATUS),
        encode_request(Command.READ_SPIKES, read_spikes_payload(100)),
        encode_request(Command.STATUS),
    ]
    replies = check(layout, frames, depth=8)
    assert decode_status(replies[2].payload).spikes_lost
    assert replies[3].status == Status.SPIKES_LOST and len(replies[3].payload) == 32
    assert not decode_status(replies[4].payload).spikes_lost


def test_core_refusal_stops_a_write_and_says_where(layout):
    base = layout.weight_address(1, 1, 0)
    frames = [
        encode_request(Command.WRITE, write_payload(base, [1, 2, REFUSED_VALUE, 4])),
        encode_request(Command.READ, read_payload(base, 4)),
    ]
    replies = check(layout, frames)
    assert replies[0].status == Status.REFUSED and replies[0].payload == b"\x02\x00"
    assert struct.unpack("<4I", replies[1].payload) == (1, 2, 0, 0)


def test_decolle_regions_pass_the_bridge():
    """A DECOLLE core's extra registers and regions 4 to 7 are in the map; past them is not."""
    from plasticore.layout import REGION_BIAS, REGION_TRACE_P, DecolleLayout
    config = CoreConfig.from_dict(dict(
        layers=[6, 5, 3], weight_bits=8, membrane_bits=12, threshold=10, rule="decolle",
        decolle=dict(trace_bits=6, unit_bits=5, error_shifts=[6, 3], lr_shifts=[4, 3],
                     init_scale=[1.0, 1.0])))
    layout = DecolleLayout(config)
    bias = layout.address(REGION_BIAS, 0)
    trace_end = layout.address(REGION_TRACE_P, layout.rows)
    replies = check(layout, [
        encode_request(Command.WRITE, write_payload(bias, [3, 4, 5])),
        encode_request(Command.READ, read_payload(bias, 3)),
        encode_request(Command.READ, read_payload(trace_end - 2, 2)),            # fits
        encode_request(Command.READ, read_payload(trace_end - 2, 3)),            # one past
        encode_request(Command.WRITE, write_payload(layout.register_address("lr_shift_2"), [9])),
        encode_request(Command.READ, read_payload(layout.address(0, len(layout.registers)), 1)),
        encode_request(Command.READ, read_payload(1 << layout.address_bits, 1)),  # high bit
    ])
    assert [r.status for r in replies] == [Status.OK] * 3 + [Status.ADDRESS_OUT_OF_RANGE] \
        + [Status.OK] + [Status.ADDRESS_OUT_OF_RANGE] * 2
    assert struct.unpack("<3I", replies[1].payload) == (3, 4, 5)


def test_recurrent_weight_rows_pass_the_bridge():
    """A recurrent projection's rows follow the feedforward ones in the weight region; a
    burst fits its row (the target layer's width), one past it does not."""
    config = CoreConfig(layers=(3, 4, 2), projections=((0, 1), (1, 2), (2, 1)))
    layout = CoreLayout(config)
    row = layout.projection_address(2, 1, 0)        # 2 -> 1, presynaptic neuron 1
    replies = check(layout, [
        encode_request(Command.WRITE, write_payload(row, [5, 6, 7, 8])),
        encode_request(Command.READ, read_payload(row, 4)),
        encode_request(Command.WRITE, write_payload(row + 1, [1, 2, 3, 4])),
    ])
    assert [r.status for r in replies] == [Status.OK, Status.OK, Status.ADDRESS_OUT_OF_RANGE]
    assert struct.unpack("<4I", replies[1].payload) == (5, 6, 7, 8)
