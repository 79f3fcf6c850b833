"""Drive a core on a board (or in RTL simulation) over the host link, like the golden model.

:class:`BoardCore` offers the run API of :class:`plasticore.golden.lif.GoldenCore`
(``load_weights``, ``read_weights``, ``read_membrane``, ``read_refractory``, ``tick``,
``run``, ``tick_count``, ``dropped_events``, ``flags``), so one script runs unchanged
against the golden model, the RTL simulation of the board top, or a board::

    core = BoardCore.open(config, "/dev/ttyUSB1", baudrate=115200)
    core.load_weights(weights)
    spikes = core.run(event_ticks)

The transport is anything with pyserial's ``read(n)`` / ``write(data)`` (and optionally
``reset_input_buffer()``): a ``serial.Serial``, or the object ``serial.serial_for_url``
returns for a URL such as ``socket://127.0.0.1:PORT`` (how the tests reach the simulator).
"""

from __future__ import annotations

import time

import numpy as np

from .config import CoreConfig, load_config
from .golden.lif import check_weights
from .layout import CORE_MAGIC, REGION_MEMBRANE, REGION_REFRACTORY, layout_for
from .protocol import (
    Command, LinkStatus, ProtocolError, REPLY_HEADER_BYTES, CRC_BYTES, Status, SYNC,
    decode_reply, decode_spike_word, decode_status, encode_request, events_payload,
    read_payload, read_spikes_payload, run_payload, write_payload, SPIKE_TICK_BITS)

__all__ = ["BoardCore", "LinkError", "LinkTimeout", "ReplyCorrupt", "StatusError",
           "BadCRC", "UnknownCommand", "BadLength", "AddressOutOfRange", "Truncated",
           "SpikesLost", "Refused", "open_transport"]


class LinkError(Exception):
    """Something went wrong on the host link."""


class LinkTimeout(LinkError):
    """The board did not answer (in full) within the timeout."""


class ReplyCorrupt(LinkError):
    """The reply's bytes do not form a valid frame (bad CRC, wrong command echo...)."""


class StatusError(LinkError):
    """The board answered with a status other than OK.

    Attributes
    ----------
    command : Command
    status : Status
    """

    def __init__(self, command, status, detail=""):
        self.command = command
        self.status = status
        name = Command(command).name if command in set(Command) else f"0x{command:02x}"
        super().__init__(f"{name}: board answered {Status(status).name}"
                         + (f" ({detail})" if detail else ""))


class BadCRC(StatusError):
    """The board saw a CRC error in the request (line noise?)."""


class UnknownCommand(StatusError):
    """The board does not know the command."""


class BadLength(StatusError):
    """The request's length is not allowed for its command, or above the board's maximum."""


class AddressOutOfRange(StatusError):
    """A READ or WRITE reached outside the core's memory map; nothing was changed."""


class Truncated(StatusError):
    """The board saw the request cut short."""


class SpikesLost(StatusError):
    """Output events were lost because the board's buffer was full."""


class Refused(StatusError):
    """The core refused a written value (out of its field's range, or read-only)."""


_STATUS_ERRORS = {
    Status.REFUSED: Refused,
    Status.BAD_CRC: BadCRC,
    Status.UNKNOWN_COMMAND: UnknownCommand,
    Status.BAD_LENGTH: BadLength,
    Status.ADDRESS_OUT_OF_RANGE: AddressOutOfRange,
    Status.TRUNCATED: Truncated,
    Status.SPIKES_LOST: SpikesLost,
}


def open_transport(url: str, *, baudrate: int = 115200, timeout: float = 1.0):
    """Open a serial port or pyserial URL (``/dev/ttyUSB0``, ``socket://host:port``, ...)."""
    import serial
    return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)


def _sign_extend(values, bits: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
    return np.where(values >= 1 << (bits - 1), values - (1 << bits), values)


class BoardCore:
    """A core behind a host link, with the golden model's run API.

    Parameters
    ----------
    config : CoreConfig or path
        The configuration the board was built from.
    transport : object
        With ``read(n) -> bytes`` (returning fewer bytes on timeout) and ``write(bytes)``.
    timeout : float
        Seconds to wait for a whole reply.
    run_timeout : float
        Seconds to wait for a RUN_TICKS reply (the core computes before answering).
    check_magic : bool
        Read the core's magic register on connection and refuse a board that does not
        answer with it.
    """

    def __init__(self, config, transport, *, timeout: float = 2.0, run_timeout: float = 10.0,
                 check_magic: bool = True):
        self.config: CoreConfig = load_config(config)
        self.layout = layout_for(self.config)
        self.transport = transport
        self.timeout = timeout
        self.run_timeout = run_timeout
        if hasattr(transport, "reset_input_buffer"):
            transport.reset_input_buffer()
        self._link = self.link_status()
        if check_magic:
            magic = self._read_register("magic")
            if magic != CORE_MAGIC:
                raise LinkError(f"the board answered magic 0x{magic:08x}, expected "
                                f"0x{CORE_MAGIC:08x}: not a plasticore core (or another "
                                "layout version)")
        self._tick = self._read_register("tick")

    @classmethod
    def open(cls, config, url: str, *, baudrate: int = 115200, **kwargs) -> "BoardCore":
        """Connect to the board on serial port or pyserial URL ``url``."""
        return cls(config, open_transport(url, baudrate=baudrate, timeout=0.05), **kwargs)

    def close(self) -> None:
        """Close the transport."""
        if hasattr(self.transport, "close"):
            self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Frames

    def _read_exactly(self, count: int, deadline: float) -> bytes:
        data = bytearray()
        while len(data) < count:
            if time.monotonic() > deadline:
                raise LinkTimeout(f"timed out waiting for a reply: {len(data)} of {count} "
                                  f"bytes arrived ({bytes(data).hex() or 'none'})")
            chunk = self.transport.read(count - len(data))
            if chunk:
                data += chunk
        return bytes(data)

    def transact(self, command: int, payload: bytes = b"", *, timeout: float | None = None,
                 raise_status: bool = True):
        """Send one request and return its :class:`~plasticore.protocol.Reply`.

        Raises
        ------
        LinkTimeout
            No complete reply within ``timeout`` seconds.
        ReplyCorrupt
            The reply's CRC is wrong or it answers another command.
        StatusError
            The status is not OK (a subclass per status), unless ``raise_status`` is false.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self.transport.write(encode_request(command, payload))
        # Skip anything before the sync byte (a board that just came out of reset may
        # leave a stray byte on the line).
        while self._read_exactly(1, deadline)[0] != SYNC:
            pass
        header = bytes([SYNC]) + self._read_exactly(REPLY_HEADER_BYTES - 1, deadline)
        length = header[3] | header[4] << 8
        frame = header + self._read_exactly(length + CRC_BYTES, deadline)
        try:
            reply = decode_reply(frame)
        except ProtocolError as error:
            raise ReplyCorrupt(str(error)) from None
        if reply.command != command:
            raise ReplyCorrupt(f"sent command 0x{command:02x}, the reply is for "
                               f"0x{reply.command:02x}")
        if raise_status and reply.status != Status.OK:
            error = _STATUS_ERRORS.get(reply.status, StatusError)
            raise error(command, reply.status)
        return reply

    def link_status(self) -> LinkStatus:
        """Return the bridge's own status (buffer fill, lost events, limits)."""
        return decode_status(self.transact(Command.STATUS).payload)

    # Memory map

    @property
    def _max_words(self) -> int:
        return self._link.max_payload // 4 - 1     # a WRITE also carries its address

    def write_words(self, address: int, words) -> None:
        """Write u32 ``words`` to consecutive host addresses from ``address``.

        The bridge refuses a weight burst that leaves a presynaptic row; write row by row.
        """
        words = [int(w) & 0xFFFF_FFFF for w in words]
        step = self._max_words
        for start in range(0, len(words), step):
            self.transact(Command.WRITE, write_payload(address + start, words[start:start + step]))

    def read_words(self, address: int, count: int) -> list[int]:
        """Read ``count`` u32 words from consecutive host addresses."""
        words = []
        step = self._link.max_payload // 4
        for start in range(0, count, step):
            n = min(step, count - start)
            payload = self.transact(Command.READ, read_payload(address + start, n)).payload
            words += [int.from_bytes(payload[4 * i:4 * i + 4], "little") for i in range(n)]
        return words

    def _read_register(self, name: str) -> int:
        return self.read_words(self.layout.register_address(name), 1)[0]

    # The golden run API

    @property
    def tick_count(self) -> int:
        """Ticks completed since reset (the core's ``tick`` register)."""
        return self._read_register("tick")

    @property
    def dropped_events(self) -> int:
        """Input events dropped because their address was out of range."""
        return self._read_register("dropped_events")

    @property
    def flags(self) -> int:
        """Sticky saturation flags (``FLAG_*`` of :mod:`plasticore.layout`)."""
        return self._read_register("flags")

    def load_weights(self, weights) -> None:
        """Replace every projection's weights (checked as the golden model checks them)."""
        for projection, matrix in enumerate(check_weights(self.config, weights)):
            for pre, row in enumerate(matrix):
                self.write_words(self.layout.projection_address(projection, pre, 0),
                                 row.tolist())

    def read_weights(self) -> list[np.ndarray]:
        """Return every projection's weights, read from the board."""
        matrices = []
        for projection, lay in enumerate(self.layout.projections):
            rows = [self.read_words(self.layout.projection_address(projection, pre, 0),
                                    lay.n_post) for pre in range(lay.n_pre)]
            matrices.append(_sign_extend(np.array(rows, dtype=np.int64).reshape(
                lay.n_pre, lay.n_post), self.config.weight_bits))
        return matrices

    def _read_state(self, region: int, signed_bits: int | None) -> list[np.ndarray]:
        words = np.array(self.read_words(self.layout.address(region, 0),
                                         self.layout.state_words), dtype=np.int64)
        if signed_bits is not None:
            words = _sign_extend(words, signed_bits)
        return [words[lay.state_base:lay.state_base + lay.n_post].copy()
                for lay in self.layout.layers]

    def read_membrane(self) -> list[np.ndarray]:
        """Return every neuron layer's membrane potentials."""
        return self._read_state(REGION_MEMBRANE, self.config.membrane_bits)

    def read_refractory(self) -> list[np.ndarray]:
        """Return every neuron layer's refractory counters (a DECOLLE core: the signed
        refractory states ``R``)."""
        return self._read_state(REGION_REFRACTORY, 32 if self.config.rule == "decolle" else None)

    def clear_state(self) -> None:
        """Zero every membrane and refractory counter and clear ``dropped_events`` and ``flags``.

        Board-specific: a reset of the FPGA clears the registers but not the state
        memories, while a fresh golden model starts from zero.
        """
        zeros = [0] * self.layout.state_words
        for region in (REGION_MEMBRANE, REGION_REFRACTORY):
            self.write_words(self.layout.address(region, 0), zeros)
        self.write_words(self.layout.register_address("dropped_events"), [0])
        self.write_words(self.layout.register_address("flags"), [0xFFFF_FFFF])

    def _event_words(self, events) -> list[int]:
        events = np.asarray(events, dtype=np.int64).reshape(-1)
        if len(events) and (events.min() < 0 or events.max() > 0xFFFF):
            if self.config.n_inputs > 0xFFFF:
                raise ValueError("events: addresses outside 0..65535 cannot be sent to a "
                                 "core with 65536 inputs")
            # Out of range either way: 0xFFFF is dropped and counted by the core, as the
            # golden model drops and counts a negative address.
            events = np.where((events < 0) | (events > 0xFFFF), 0xFFFF, events)
        return events.tolist()

    def tick(self, events) -> list[np.ndarray]:
        """Run one tick on the input ``events``; return each neuron layer's spikes.

        Raises :class:`SpikesLost` if the board's event buffer overflowed.
        """
        words = self._event_words(events)
        step = self._link.max_payload // 2
        for start in range(0, len(words), step):
            self.transact(Command.PUSH_EVENTS, events_payload(words[start:start + step]))
        self.transact(Command.RUN_TICKS, run_payload(1), timeout=self.run_timeout)
        spikes = [[] for _ in self.layout.layers]
        expected_tick = self._tick & ((1 << SPIKE_TICK_BITS) - 1)
        while True:
            reply = self.transact(Command.READ_SPIKES,
                                  read_spikes_payload(self._link.max_payload // 4),
                                  raise_status=False)
            if reply.status not in (Status.OK, Status.SPIKES_LOST):
                raise _STATUS_ERRORS.get(reply.status, StatusError)(Command.READ_SPIKES,
                                                                    reply.status)
            if reply.status == Status.SPIKES_LOST:
                raise SpikesLost(Command.READ_SPIKES, reply.status,
                                 f"tick {self._tick}: more output events than the board's "
                                 f"buffer of {self._link.buffer_depth} holds")
            if not reply.payload:
                raise LinkError(f"tick {self._tick}: the core finished the tick but its "
                                "end-of-tick event is missing from the buffer")
            finished = False
            for offset in range(0, len(reply.payload), 4):
                spike = decode_spike_word(int.from_bytes(reply.payload[offset:offset + 4],
                                                         "little"))
                if spike.tick_low != expected_tick:
                    raise LinkError(f"tick {self._tick}: received an event of tick "
                                    f"{spike.tick_low} (mod 128)")
                if spike.end_of_tick:
                    finished = True
                    if offset + 4 != len(reply.payload):
                        raise LinkError(f"tick {self._tick}: events after the end of tick")
                    break
                if not 1 <= spike.layer <= len(spikes):
                    raise LinkError(f"tick {self._tick}: spike in layer {spike.layer}, the "
                                    f"core has {len(spikes)} neuron layers")
                spikes[spike.layer - 1].append(spike.neuron)
            if finished:
                break
        self._tick += 1
        return [np.array(layer, dtype=np.int64) for layer in spikes]

    def run(self, event_ticks) -> list[list[np.ndarray]]:
        """Run one tick per entry of ``event_ticks``; return each tick's spikes."""
        return [self.tick(events) for events in event_ticks]
