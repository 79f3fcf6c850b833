"""The host driver's framing, chunking and errors, against scripted transports.

The driver's run API against the real gateware (golden-equal spikes and state, through a
``socket://`` URL) is tested in tests/test_board_top_rtl.py.
"""

import struct
import time

import pytest

from plasticore.config import CoreConfig
from plasticore.host import (AddressOutOfRange, BadCRC, BoardCore, LinkError, LinkTimeout,
                             ReplyCorrupt, SpikesLost)
from plasticore.layout import CORE_MAGIC, CoreLayout
from plasticore.protocol import (Command, Status, decode_request, encode_reply,
                                 encode_spike_word)

CONFIG = CoreConfig(layers=(4, 3, 2), lanes=1, name="driver")
LAYOUT = CoreLayout(CONFIG)


class MemoryBoard:
    """A pyserial-like object that answers frames like a bridge over a flat memory."""

    def __init__(self, max_payload=16, spikes=(), noise=b""):
        self.max_payload = max_payload
        self.memory = {LAYOUT.register_address("magic"): CORE_MAGIC}
        self.out = bytearray(noise)
        self.frames = []
        self.spikes = list(spikes)     # words handed out by READ_SPIKES
        self.lost = False
        self.status_override = None

    def write(self, data):
        frame = decode_request(data)
        self.frames.append(frame)
        command, payload = frame.command, frame.payload
        assert len(payload) <= self.max_payload, "the driver sent an oversized frame"
        reply = b""
        status = Status.OK
        if command == Command.STATUS:
            reply = struct.pack("<HHBBH", len(self.spikes), 64, 0, 1, self.max_payload)
        elif command == Command.WRITE:
            address, *words = struct.unpack(f"<I{len(payload) // 4 - 1}I", payload)
            for index, word in enumerate(words):
                self.memory[address + index] = word
        elif command == Command.READ:
            address, count = struct.unpack("<IH", payload)
            if address >= 1 << LAYOUT.address_bits:
                status = Status.ADDRESS_OUT_OF_RANGE
            else:
                reply = struct.pack(f"<{count}I", *[self.memory.get(address + i, 0)
                                                    for i in range(count)])
        elif command == Command.READ_SPIKES:
            most = min(struct.unpack("<H", payload)[0], self.max_payload // 4)
            taken, self.spikes = self.spikes[:most], self.spikes[most:]
            reply = struct.pack(f"<{len(taken)}I", *taken)
            if self.lost:
                status = Status.SPIKES_LOST
        if self.status_override is not None:
            status, reply = self.status_override, b""
        self.out += encode_reply(command, status, reply)
        return len(data)

    def read(self, count):
        data = bytes(self.out[:count])
        del self.out[:count]
        return data


def test_connects_skipping_line_noise_and_checks_magic():
    board = BoardCore(CONFIG, MemoryBoard(noise=b"\x00\xff"), timeout=0.5)
    assert board.tick_count == 0
    stranger = MemoryBoard()
    stranger.memory.clear()
    with pytest.raises(LinkError, match="magic"):
        BoardCore(CONFIG, stranger, timeout=0.5)


def test_weights_split_into_frames_that_fit_the_payload():
    transport = MemoryBoard(max_payload=16)     # a WRITE carries at most 3 words
    board = BoardCore(CONFIG, transport, timeout=0.5)
    weights = [[[-128, 5, 127], [0, -1, 3], [1, 2, 3], [4, 5, 6]], [[7, -7], [0, 1], [2, 3]]]
    board.load_weights(weights)
    writes = [f for f in transport.frames if f.command == Command.WRITE]
    assert len(writes) == 4 + 3          # one frame per row: rows are 3 and 2 wide
    # Stored as 32-bit two's complement, one weight per address.
    assert transport.memory[LAYOUT.weight_address(1, 0, 0)] == 0xFFFF_FF80
    assert [m.tolist() for m in board.read_weights()] == weights
    big = list(range(10))
    board.write_words(LAYOUT.address(2, 0), big)
    assert board.read_words(LAYOUT.address(2, 0), 10) == big


def test_weights_out_of_range_refused_before_sending():
    transport = MemoryBoard()
    board = BoardCore(CONFIG, transport, timeout=0.5)
    sent = len(transport.frames)
    with pytest.raises(ValueError, match=r"weights\[0\].*\[-128, 127\]"):
        board.load_weights([[[128, 0, 0]] * 4, [[0, 0]] * 3])
    assert len(transport.frames) == sent


def test_status_codes_become_exceptions():
    transport = MemoryBoard()
    board = BoardCore(CONFIG, transport, timeout=0.5)
    with pytest.raises(AddressOutOfRange, match="READ: board answered ADDRESS_OUT_OF_RANGE"):
        board.read_words(1 << LAYOUT.address_bits, 1)
    transport.status_override = Status.BAD_CRC
    with pytest.raises(BadCRC):
        board.read_words(0, 1)


def test_corrupt_and_missing_replies():
    transport = MemoryBoard()
    board = BoardCore(CONFIG, transport, timeout=0.2)

    class Corrupting(MemoryBoard):
        def write(self, data):
            super().write(data)
            self.out[-1] ^= 0x01              # flip a CRC bit
            return len(data)

    board.transport = Corrupting()
    with pytest.raises(ReplyCorrupt, match="CRC"):
        board.read_words(0, 1)

    class Silent(MemoryBoard):
        def write(self, data):
            return len(data)

    board.transport = Silent()
    started = time.monotonic()
    with pytest.raises(LinkTimeout, match="0 of 1 bytes"):
        board.read_words(0, 1)
    assert time.monotonic() - started < 2


def test_tick_groups_spikes_by_layer_and_checks_the_tick():
    spikes = [encode_spike_word(2, 1, 0, False), encode_spike_word(0, 1, 0, False),
              encode_spike_word(1, 2, 0, False), encode_spike_word(0, 0, 0, True)]
    transport = MemoryBoard(max_payload=8, spikes=spikes)   # two words per READ_SPIKES
    board = BoardCore(CONFIG, transport, timeout=0.5)
    result = board.tick([1, 3, 70000, -1])
    assert [r.tolist() for r in result] == [[2, 0], [1]]
    pushed = [f for f in transport.frames if f.command == Command.PUSH_EVENTS]
    # Addresses outside u16 become 0xFFFF: out of range for the core, dropped and counted.
    assert b"".join(f.payload for f in pushed) == struct.pack("<4H", 1, 3, 0xFFFF, 0xFFFF)
    transport.spikes = [encode_spike_word(0, 0, 5, True)]
    with pytest.raises(LinkError, match="tick 1: received an event of tick 5"):
        board.tick([])
    transport.spikes, transport.lost = [encode_spike_word(0, 0, 1, True)], True
    with pytest.raises(SpikesLost):
        board.tick([])
