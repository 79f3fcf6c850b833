"""The frame bridge against frames drawn by Hypothesis: random commands, lengths and
payloads, corrupted CRCs, frames cut short, line noise, oversized lengths, and every frame
split at its byte boundaries by random pauses. Every reply must be the reference's (so a
bad frame is answered with its status code) and the core's memory must end as the
reference's (so a bad frame changes nothing)."""

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plasticore.config import CoreConfig
from plasticore.layout import CoreLayout
from plasticore.protocol import (SYNC, Command, crc16, encode_request, events_payload,
                                 read_payload, read_spikes_payload, run_payload, write_payload)
from test_host_link import MAX_PAYLOAD, REFUSED_VALUE, TIMEOUT, check

LAYOUT = CoreLayout(CoreConfig(layers=(6, 5, 3), lanes=2, refractory_ticks=1))
# Addresses in the map, near its edges, and outside it.
ADDRESSES = st.one_of(
    st.sampled_from([LAYOUT.weight_address(1, 0, 0), LAYOUT.weight_address(2, 4, 2),
                     LAYOUT.membrane_address(1, 0), LAYOUT.register_address("flags")]),
    st.integers(0, (1 << LAYOUT.address_bits) + 4), st.integers(0, (1 << 32) - 1))
WORDS = st.lists(st.one_of(st.integers(0, (1 << 32) - 1), st.just(REFUSED_VALUE)),
                 min_size=0, max_size=MAX_PAYLOAD // 4)


@st.composite
def payloads(draw, command):
    """A payload that is right for ``command`` most of the time, and any bytes otherwise."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=MAX_PAYLOAD))
    if command == Command.WRITE:
        address, words = draw(ADDRESSES) & 0xFFFFFFFF, draw(WORDS)
        # write_payload refuses a WRITE of no words; the bridge must answer one anyway.
        return write_payload(address, words) if words else struct.pack("<I", address)
    if command == Command.READ:
        return read_payload(draw(ADDRESSES) & 0xFFFFFFFF, draw(st.integers(0, 20)))
    if command == Command.PUSH_EVENTS:
        return events_payload(draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=8)))
    if command == Command.RUN_TICKS:
        return run_payload(draw(st.integers(0, 3)))
    if command == Command.READ_SPIKES:
        return read_spikes_payload(draw(st.integers(0, 40)))
    return b""


@st.composite
def frames(draw):
    """One request frame, whole or damaged."""
    command = draw(st.one_of(st.sampled_from(list(Command)), st.sampled_from([0, 0x7F, 0xFF])))
    frame = bytearray(encode_request(command, draw(payloads(command))))
    damage = draw(st.sampled_from(["none", "none", "crc", "payload", "cut", "noise",
                                   "oversized"]))
    if damage == "crc":
        frame[-draw(st.integers(1, 2))] ^= 1 << draw(st.integers(0, 7))
    elif damage == "payload" and len(frame) > 6:
        frame[draw(st.integers(4, len(frame) - 3))] ^= 1 << draw(st.integers(0, 7))
    elif damage == "cut":
        frame = frame[:draw(st.integers(1, len(frame) - 1))]
    elif damage == "noise":
        noise = draw(st.binary(min_size=1, max_size=4).filter(lambda b: SYNC not in b))
        frame = bytearray(noise) + frame
    elif damage == "oversized":
        length = draw(st.integers(MAX_PAYLOAD + 1, MAX_PAYLOAD + 16))
        body = bytes([command]) + struct.pack("<H", length) + bytes(length)
        frame = bytearray([SYNC]) + body + struct.pack("<H", crc16(body))
    return bytes(frame)


@st.composite
def sessions(draw):
    """A few frames, each split at its byte boundaries by pauses shorter than the timeout."""
    drawn = draw(st.lists(frames(), min_size=1, max_size=5))
    gaps = [draw(st.lists(st.integers(0, TIMEOUT // 2), min_size=len(f), max_size=len(f)))
            for f in drawn]
    return drawn, gaps


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sessions())
def test_every_frame_is_answered_as_the_protocol_says(session):
    drawn, gaps = session
    check(LAYOUT, drawn, gaps=gaps)
