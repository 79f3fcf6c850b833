"""Frame encoding and decoding, against known-answer vectors and hand-built frames."""

import struct

import pytest

from plasticore.protocol import (
    Command, ProtocolError, Status, SYNC, crc16, decode_reply, decode_request,
    decode_spike_word, decode_status, encode_reply, encode_request, encode_spike_word,
    events_payload, read_payload, write_payload)


def test_crc16_known_answers():
    # CRC-16/CCITT-FALSE catalogue check value, and the empty message (the initial value).
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    assert crc16(b"A") == 0xB915


def naive_crc16(data):
    """Bit by bit, as the polynomial division is written on paper."""
    crc = 0xFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 15) ^ ((byte >> bit) & 1)
            crc = (crc << 1) & 0xFFFF
            if top:
                crc ^= 0x1021
    return crc


def test_crc16_matches_bitwise_reference():
    for data in [bytes(range(256)), b"\xA5\x01\x08\x00", bytes(100)]:
        assert crc16(data) == naive_crc16(data)


def test_worked_example_from_the_docs():
    # docs/protocol.md: READ two weights of examples/inference.toml from host address
    # 0x1060 (layer 1, pre 3, post 0), byte for byte as the document prints it.
    frame = encode_request(Command.READ, read_payload(0x1060, 2))
    body = bytes([0x02, 0x06, 0x00, 0x60, 0x10, 0x00, 0x00, 0x02, 0x00])
    assert frame == bytes([SYNC]) + body + struct.pack("<H", naive_crc16(body))
    assert frame.hex(" ") == "a5 02 06 00 60 10 00 00 02 00 fe 63"
    reply = encode_reply(Command.READ, Status.OK, struct.pack("<2i", 5, -2))
    assert reply.hex(" ") == "a5 02 00 08 00 05 00 00 00 fe ff ff ff 9d 6f"
    assert decode_request(frame).payload == body[3:]


def test_reply_round_trip_and_corruption():
    reply = encode_reply(Command.READ, Status.OK, b"\x01\x02\x03\x04")
    assert decode_reply(reply).payload == b"\x01\x02\x03\x04"
    for index in range(1, len(reply)):
        broken = bytearray(reply)
        broken[index] ^= 0x10
        with pytest.raises(ProtocolError):
            decode_reply(bytes(broken))
    with pytest.raises(ProtocolError):
        decode_reply(reply[:-1])


def test_payload_builders_refuse_bad_values():
    assert write_payload(1, [2]) == bytes([1, 0, 0, 0, 2, 0, 0, 0])
    assert events_payload([1, 0x203]) == bytes([1, 0, 3, 2])
    with pytest.raises(ProtocolError, match="address"):
        write_payload(-1, [0])
    with pytest.raises(ProtocolError, match="word"):
        write_payload(0, [1 << 32])
    with pytest.raises(ProtocolError, match="event address"):
        events_payload([70000])
    with pytest.raises(ProtocolError):
        events_payload([])


def test_spike_word_fields():
    word = encode_spike_word(neuron=0x1234, layer=2, tick=130, end_of_tick=False)
    assert word == 0x1234 | (2 << 16) | ((130 % 128) << 24)
    spike = decode_spike_word(word)
    assert (spike.neuron, spike.layer, spike.tick_low, spike.end_of_tick) == (0x1234, 2, 2, False)
    assert decode_spike_word(1 << 31).end_of_tick


def test_status_payload():
    status = decode_status(bytes([3, 0, 0, 1, 1, 1, 0, 2]))
    assert (status.buffered_events, status.buffer_depth, status.spikes_lost, status.version,
            status.max_payload) == (3, 256, True, 1, 512)
