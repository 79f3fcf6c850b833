"""The host link protocol: frames between a Python host and the core's UART bridge.

One description of the wire format, shared by the gateware tests, the host driver and the
documentation (``docs/protocol.md`` has the same tables with a worked example).

Request (host to board)::

    0xA5 | command | length (u16 LE) | payload (length bytes) | CRC (u16 LE)

Reply (board to host), exactly one per request::

    0xA5 | command | status | length (u16 LE) | payload (length bytes) | CRC (u16 LE)

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no
final XOR) over every byte after the sync byte and before the CRC. All multi-byte fields
are little-endian. Only one request is in flight: the host waits for the reply before it
sends the next request.

A request that is malformed (bad CRC, unknown command, a length that the command does not
allow, an address out of range, or a frame cut short) changes nothing in the core and is
answered with its own status code and an empty payload. The checks are made in this
order: length above the bridge's maximum payload (answered once the line has been idle for
the bridge's timeout), truncation (idle timeout in the middle of a frame), CRC, command,
length, address.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

__all__ = ["SYNC", "PROTOCOL_VERSION", "DEFAULT_MAX_PAYLOAD", "Command", "Status",
           "crc16", "encode_request", "encode_reply", "decode_request", "decode_reply",
           "Frame", "Reply", "ProtocolError", "write_payload", "read_payload",
           "events_payload", "run_payload", "read_spikes_payload", "SpikeWord",
           "decode_spike_word", "encode_spike_word", "LinkStatus", "decode_status",
           "REQUEST_HEADER_BYTES", "REPLY_HEADER_BYTES", "CRC_BYTES", "STATUS_PAYLOAD_BYTES",
           "SPIKE_TICK_BITS"]

#: First byte of every frame, in both directions.
SYNC = 0xA5
#: Reported by the STATUS command; bump on any change to this module's wire format.
PROTOCOL_VERSION = 1
#: Largest payload the bridge accepts and sends, in bytes, unless built otherwise.
DEFAULT_MAX_PAYLOAD = 512
#: Sync, command, length.
REQUEST_HEADER_BYTES = 4
#: Sync, command, status, length.
REPLY_HEADER_BYTES = 5
CRC_BYTES = 2
#: Payload of a STATUS reply.
STATUS_PAYLOAD_BYTES = 8
#: Low bits of the tick number kept in each buffered output event.
SPIKE_TICK_BITS = 7


class Command(enum.IntEnum):
    """Request commands (the second byte of a frame)."""

    #: payload: address (u32), then one or more u32 words written to consecutive addresses.
    WRITE = 0x01
    #: payload: address (u32), count (u16); reply: ``count`` u32 words.
    READ = 0x02
    #: payload: one or more input addresses (u16), pushed into the core in order.
    PUSH_EVENTS = 0x03
    #: payload: ticks (u16); closes that many ticks; replies once the core has finished them.
    RUN_TICKS = 0x04
    #: payload: most (u16); reply: up to ``most`` buffered output events (u32 each).
    READ_SPIKES = 0x05
    #: no payload; reply: :class:`LinkStatus` (8 bytes).
    STATUS = 0x06


class Status(enum.IntEnum):
    """Reply status codes (the third byte of a reply)."""

    OK = 0x00
    #: The CRC does not match the frame.
    BAD_CRC = 0x01
    #: The command byte names no command.
    UNKNOWN_COMMAND = 0x02
    #: The length is above the bridge's maximum or not one the command allows.
    BAD_LENGTH = 0x03
    #: A READ or WRITE names an address outside the core's memory map.
    ADDRESS_OUT_OF_RANGE = 0x04
    #: The line went idle in the middle of a frame.
    TRUNCATED = 0x05
    #: READ_SPIKES: output events were lost because the buffer was full (the payload holds
    #: the events that were kept). Not an error in the frame: the request was executed.
    SPIKES_LOST = 0x06
    #: WRITE: the core refused a word (a value that does not fit its field, or a read-only
    #: register). The words before it were written; the payload (u16) says how many.
    REFUSED = 0x07
    #: Bytes arrived faster than the bridge took them (sent while it was executing or
    #: answering a request), so the receiver lost at least one. The bytes up to the next
    #: idle line were dropped unexecuted; the reply's command byte is 0.
    OVERRUN = 0x08


class ProtocolError(ValueError):
    """Bytes that do not form a valid frame."""


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc16_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """Return the CRC-16/CCITT-FALSE of ``data`` (check value: ``crc16(b"123456789") == 0x29B1``)."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def encode_request(command: int, payload: bytes = b"") -> bytes:
    """Return the request frame carrying ``payload`` for ``command``."""
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise ProtocolError(f"payload of {len(payload)} bytes: the length field holds at most 65535")
    body = struct.pack("<BH", command, len(payload)) + payload
    return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


def encode_reply(command: int, status: int, payload: bytes = b"") -> bytes:
    """Return the reply frame a bridge sends for ``command`` with ``status``."""
    payload = bytes(payload)
    body = struct.pack("<BBH", command, status, len(payload)) + payload
    return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


@dataclass(frozen=True)
class Frame:
    """A decoded request."""

    command: int
    payload: bytes


@dataclass(frozen=True)
class Reply:
    """A decoded reply."""

    command: int
    status: int
    payload: bytes


def decode_request(frame: bytes) -> Frame:
    """Decode one complete request frame; raise :class:`ProtocolError` if it is malformed."""
    frame = bytes(frame)
    if len(frame) < REQUEST_HEADER_BYTES + CRC_BYTES or frame[0] != SYNC:
        raise ProtocolError(f"not a request frame: {frame.hex()}")
    command, length = struct.unpack_from("<BH", frame, 1)
    if len(frame) != REQUEST_HEADER_BYTES + length + CRC_BYTES:
        raise ProtocolError(f"length field says {length} payload bytes, frame has "
                            f"{len(frame) - REQUEST_HEADER_BYTES - CRC_BYTES}")
    (crc,) = struct.unpack_from("<H", frame, len(frame) - CRC_BYTES)
    if crc != crc16(frame[1:-CRC_BYTES]):
        raise ProtocolError(f"CRC 0x{crc:04x} does not match 0x{crc16(frame[1:-2]):04x}")
    return Frame(command, frame[REQUEST_HEADER_BYTES:-CRC_BYTES])


def decode_reply(frame: bytes) -> Reply:
    """Decode one complete reply frame; raise :class:`ProtocolError` if it is malformed."""
    frame = bytes(frame)
    if len(frame) < REPLY_HEADER_BYTES + CRC_BYTES or frame[0] != SYNC:
        raise ProtocolError(f"not a reply frame: {frame.hex()}")
    command, status, length = struct.unpack_from("<BBH", frame, 1)
    if len(frame) != REPLY_HEADER_BYTES + length + CRC_BYTES:
        raise ProtocolError(f"length field says {length} payload bytes, frame has "
                            f"{len(frame) - REPLY_HEADER_BYTES - CRC_BYTES}")
    (crc,) = struct.unpack_from("<H", frame, len(frame) - CRC_BYTES)
    expected = crc16(frame[1:-CRC_BYTES])
    if crc != expected:
        raise ProtocolError(f"reply CRC 0x{crc:04x} does not match 0x{expected:04x}")
    return Reply(command, status, frame[REPLY_HEADER_BYTES:-CRC_BYTES])


# Payloads


def _u32(name: str, value: int) -> int:
    value = int(value)
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ProtocolError(f"{name} = {value}: must fit in 32 bits (0 to 4294967295)")
    return value


def _u16(name: str, value: int) -> int:
    value = int(value)
    if not 0 <= value <= 0xFFFF:
        raise ProtocolError(f"{name} = {value}: must fit in 16 bits (0 to 65535)")
    return value


def write_payload(address: int, words) -> bytes:
    """Return the WRITE payload that stores ``words`` (u32 each) from ``address`` on."""
    words = [_u32("word", word) for word in words]
    if not words:
        raise ProtocolError("WRITE needs at least one word")
    return struct.pack(f"<I{len(words)}I", _u32("address", address), *words)


def read_payload(address: int, count: int) -> bytes:
    """Return the READ payload for ``count`` words from ``address``."""
    return struct.pack("<IH", _u32("address", address), _u16("count", count))


def events_payload(addresses) -> bytes:
    """Return the PUSH_EVENTS payload for input ``addresses`` (u16 each), in order."""
    addresses = [_u16("event address", address) for address in addresses]
    if not addresses:
        raise ProtocolError("PUSH_EVENTS needs at least one event")
    return struct.pack(f"<{len(addresses)}H", *addresses)


def run_payload(ticks: int) -> bytes:
    """Return the RUN_TICKS payload for ``ticks`` ticks."""
    return struct.pack("<H", _u16("ticks", ticks))


def read_spikes_payload(most: int) -> bytes:
    """Return the READ_SPIKES payload asking for at most ``most`` events."""
    return struct.pack("<H", _u16("most", most))


@dataclass(frozen=True)
class SpikeWord:
    """One buffered output event, as READ_SPIKES returns it.

    Bits 0-15 neuron, 16-23 layer, 24-30 the low :data:`SPIKE_TICK_BITS` bits of the tick,
    31 end of tick (then neuron and layer are 0).
    """

    neuron: int
    layer: int
    tick_low: int
    end_of_tick: bool


def encode_spike_word(neuron: int, layer: int, tick: int, end_of_tick: bool) -> int:
    """Return the u32 the bridge buffers for one output event."""
    return ((neuron & 0xFFFF) | ((layer & 0xFF) << 16)
            | ((tick & ((1 << SPIKE_TICK_BITS) - 1)) << 24) | (int(bool(end_of_tick)) << 31))


def decode_spike_word(word: int) -> SpikeWord:
    """Split a buffered output event word into its fields."""
    return SpikeWord(word & 0xFFFF, (word >> 16) & 0xFF,
                     (word >> 24) & ((1 << SPIKE_TICK_BITS) - 1), bool(word >> 31))


@dataclass(frozen=True)
class LinkStatus:
    """The bridge's own state, from a STATUS reply."""

    buffered_events: int   # output events waiting in the buffer
    buffer_depth: int      # capacity of the output event buffer
    spikes_lost: bool      # sticky: an output event found the buffer full
    version: int           # PROTOCOL_VERSION of the gateware
    max_payload: int       # largest payload, in bytes, either way


def decode_status(payload: bytes) -> LinkStatus:
    """Decode a STATUS reply payload."""
    if len(payload) != STATUS_PAYLOAD_BYTES:
        raise ProtocolError(f"STATUS payload of {len(payload)} bytes, expected "
                            f"{STATUS_PAYLOAD_BYTES}")
    level, depth, flags, version, max_payload = struct.unpack("<HHBBH", payload)
    return LinkStatus(level, depth, bool(flags & 1), version, max_payload)
