"""cocotb tests of the board top (core + host link + UART), driven through its serial pins.

Run by ``tests/test_board_top_rtl.py`` on the Verilog of
:class:`plasticore.hdl.host_link.LinkTop`; the parameters come in environment variables:

``PLASTICORE_TB_CONFIG``  the CoreConfig as JSON (``CoreConfig.to_dict()``)
``PLASTICORE_TB_CLK_PS``  clock period in ps
``PLASTICORE_TB_DIVISOR`` clock cycles per UART bit
``PLASTICORE_TB_TIMEOUT`` the bridge's idle timeout in clock cycles
``PLASTICORE_TB_TICKS``   ticks to run against the golden model

Every result is compared with :class:`plasticore.golden.lif.GoldenCore`.
"""

from __future__ import annotations

import json
import os
import struct

import cocotb
import numpy as np

from plasticore.config import CoreConfig
from plasticore.golden.lif import GoldenCore, random_weights
from plasticore.layout import CoreLayout, REGION_MEMBRANE, REGION_REFRACTORY
from plasticore.protocol import (
    Command, Status, decode_reply, decode_spike_word, encode_request, events_payload,
    read_payload, read_spikes_payload, run_payload, write_payload)
from plasticore.sim.socket_bridge import serve_over_socket
from plasticore.sim.uart_model import UartHost, start_board

CONFIG = CoreConfig.from_dict(json.loads(os.environ.get(
    "PLASTICORE_TB_CONFIG", '{"layers": [8, 6, 4], "lanes": 2, "refractory_ticks": 1}')))
LAYOUT = CoreLayout(CONFIG)
CLK_PS = int(os.environ.get("PLASTICORE_TB_CLK_PS", "10000"))
DIVISOR = int(os.environ.get("PLASTICORE_TB_DIVISOR", "8"))
TIMEOUT_CYCLES = int(os.environ.get("PLASTICORE_TB_TIMEOUT", "2000"))
TICKS = int(os.environ.get("PLASTICORE_TB_TICKS", "8"))


async def start(dut) -> UartHost:
    """Start the clock, reset the design, and return the host's end of the line."""
    return await start_board(dut, CLK_PS, DIVISOR)


async def transact(uart: UartHost, frame: bytes):
    """Send raw request bytes; return the decoded reply."""
    await uart.send(frame)
    header = await uart.read(5)
    length = header[3] | header[4] << 8
    return decode_reply(header + await uart.read(length + 2))


async def request(uart, command, payload=b""):
    return await transact(uart, encode_request(command, payload))


def make_weights(seed: int):
    return random_weights(CONFIG, np.random.default_rng(seed))


def make_events(seed: int, ticks: int):
    rng = np.random.default_rng(seed)
    # Mostly valid input addresses, and now and then one past the end (dropped, counted).
    return [rng.integers(0, CONFIG.n_inputs + 1, size=rng.integers(0, 2 * CONFIG.n_inputs))
            for _ in range(ticks)]


async def load_weights(uart, weights):
    for lay, matrix in zip(LAYOUT.layers, weights):
        for pre in range(lay.n_pre):
            words = [int(w) & 0xFFFF_FFFF for w in matrix[pre]]
            reply = await request(uart, Command.WRITE,
                                  write_payload(LAYOUT.weight_address(lay.index, pre, 0), words))
            assert reply.status == Status.OK, reply


async def read_words(uart, address, count):
    reply = await request(uart, Command.READ, read_payload(address, count))
    assert reply.status == Status.OK, reply
    return list(struct.unpack(f"<{count}I", reply.payload))


def signed(values, bits):
    values = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
    return np.where(values >= 1 << (bits - 1), values - (1 << bits), values)


async def snapshot(uart):
    """Every weight, membrane and refractory counter, as the host sees them."""
    state = []
    for lay in LAYOUT.layers:
        for pre in range(lay.n_pre):
            state += await read_words(uart, LAYOUT.weight_address(lay.index, pre, 0), lay.n_post)
    state += await read_words(uart, LAYOUT.address(REGION_MEMBRANE, 0), LAYOUT.state_words)
    state += await read_words(uart, LAYOUT.address(REGION_REFRACTORY, 0), LAYOUT.state_words)
    return state


@cocotb.test()
async def frames_match_golden(dut):
    """Weights loaded, ticks run and state read back through frames equal the golden model."""
    uart = await start(dut)
    weights = make_weights(1)
    golden = GoldenCore(CONFIG, weights)
    await load_weights(uart, weights)
    spikes_seen = 0
    for tick, events in enumerate(make_events(2, TICKS)):
        expected = golden.tick(events)
        if len(events):
            reply = await request(uart, Command.PUSH_EVENTS, events_payload(events.tolist()))
            assert reply.status == Status.OK, reply
        reply = await request(uart, Command.RUN_TICKS, run_payload(1))
        assert reply.status == Status.OK, reply
        reply = await request(uart, Command.READ_SPIKES, read_spikes_payload(1000))
        assert reply.status == Status.OK, reply
        words = struct.unpack(f"<{len(reply.payload) // 4}I", reply.payload)
        spikes = [decode_spike_word(word) for word in words]
        assert spikes and spikes[-1].end_of_tick and spikes[-1].tick_low == tick % 128
        got = [[s.neuron for s in spikes[:-1] if s.layer == layer]
               for layer in range(1, len(CONFIG.layers))]
        assert all(s.tick_low == tick % 128 for s in spikes)
        assert got == [list(layer) for layer in expected], f"tick {tick}"
        spikes_seen += sum(len(layer) for layer in expected)
    assert spikes_seen > 0, "the test network never spiked: the comparison proves little"
    membrane = signed(await read_words(uart, LAYOUT.address(REGION_MEMBRANE, 0),
                                       LAYOUT.state_words), CONFIG.membrane_bits)
    refractory = await read_words(uart, LAYOUT.address(REGION_REFRACTORY, 0),
                                  LAYOUT.state_words)
    assert membrane.tolist() == np.concatenate(golden.membrane).tolist()
    assert refractory == np.concatenate(golden.refractory).tolist()
    registers = await read_words(uart, LAYOUT.register_address("tick"), 3)
    assert registers == [golden.tick_count, golden.dropped_events, golden.flags]
    dut._log.info("%d ticks, %d spikes, %d dropped events: equal to golden", TICKS,
                  spikes_seen, golden.dropped_events)



async def start_with_state(dut, *, weights_seed: int, events_seed: int):
    """Start the board top, load weights and run three ticks of events, so that the
    membranes hold some non-zero state for a test to protect; return the UART model."""
    uart = await start(dut)
    await load_weights(uart, make_weights(weights_seed))
    for events in make_events(events_seed, 3):
        if len(events):
            await request(uart, Command.PUSH_EVENTS, events_payload(events.tolist()))
        await request(uart, Command.RUN_TICKS, run_payload(1))
    await request(uart, Command.READ_SPIKES, read_spikes_payload(1000))
    return uart


@cocotb.test()
async def malformed_frames_change_nothing(dut):
    """Bad CRC, truncated, unknown command, bad length, out-of-range: coded, state unchanged."""
    uart = await start_with_state(dut, weights_seed=3, events_seed=4)
    before = await snapshot(uart)

    target = LAYOUT.weight_address(1, 0, 0)
    overwrite = encode_request(Command.WRITE, write_payload(target, [1, 2]))
    bad_crc = bytearray(overwrite)
    bad_crc[-2] ^= 0xFF
    cases = [
        ("bad CRC", bytes(bad_crc), Status.BAD_CRC),
        ("unknown command", encode_request(0x55, write_payload(target, [1])),
         Status.UNKNOWN_COMMAND),
        ("bad length", encode_request(Command.WRITE, b"\x00" * 7), Status.BAD_LENGTH),
        ("past the last neuron", encode_request(Command.WRITE, write_payload(
            LAYOUT.address(REGION_MEMBRANE, LAYOUT.state_words - 1), [0, 0])),
         Status.ADDRESS_OUT_OF_RANGE),
        ("outside the map", encode_request(Command.READ, read_payload(
            1 << LAYOUT.address_bits, 1)), Status.ADDRESS_OUT_OF_RANGE),
        ("weight out of range", encode_request(Command.WRITE, write_payload(
            target, [1 << CONFIG.weight_bits])), Status.REFUSED),
    ]
    for name, frame, status in cases:
        reply = await transact(uart, frame)
        assert reply.status == status, f"{name}: {reply}"
        assert reply.command == frame[1], name
    # Truncated: the frame stops in its payload; the bridge answers after its timeout.
    await uart.send(overwrite[:-3])
    header = await uart.read(5, timeout_bits=10 * TIMEOUT_CYCLES // DIVISOR + 100)
    reply = decode_reply(header + await uart.read(2 + (header[3] | header[4] << 8)))
    assert reply.status == Status.TRUNCATED, reply
    assert uart.framing_errors == 0
    assert await snapshot(uart) == before
    # And the link still works.
    assert (await request(uart, Command.STATUS)).status == Status.OK


async def reply_within(uart, bits: int):
    """The next reply, waiting at most ``bits`` bit times for its header."""
    header = await uart.read(5, timeout_bits=bits)
    return decode_reply(header + await uart.read(2 + (header[3] | header[4] << 8)))


def random_frame(rng, target: int) -> bytes:
    """A request that would change the state if it were executed, or a malformed one."""
    kind = int(rng.integers(0, 5))
    if kind == 0:
        return encode_request(Command.WRITE, write_payload(
            target, [int(w) & 0xFFFF_FFFF for w in rng.integers(-4, 5, size=int(rng.integers(1, 4)))]))
    if kind == 1:
        return encode_request(Command.PUSH_EVENTS, events_payload(
            rng.integers(0, CONFIG.n_inputs, size=int(rng.integers(1, 6))).tolist()))
    if kind == 2:
        return encode_request(Command.RUN_TICKS, run_payload(int(rng.integers(1, 3))))
    if kind == 3:
        frame = bytearray(encode_request(Command.WRITE, write_payload(target, [3])))
        frame[-1] ^= 0x5A              # a bad CRC
        return bytes(frame)
    return bytes(rng.integers(0, 256, size=int(rng.integers(2, 12))).tolist())


@cocotb.test()
async def overrun_frames_answered_and_change_nothing(dut):
    """Frames sent while the bridge answers a request overrun the receiver: the request is
    answered as usual, then everything sent meanwhile with one OVERRUN, the state kept."""
    uart = await start_with_state(dut, weights_seed=7, events_seed=8)
    before = await snapshot(uart) + await read_words(uart, LAYOUT.register_address("tick"), 3)
    rng = np.random.default_rng(int(os.environ.get("PLASTICORE_TB_SEED", "14")))
    rounds = int(os.environ.get("PLASTICORE_TB_OVERRUN_ROUNDS", "16"))
    drain_bits = TIMEOUT_CYCLES // DIVISOR
    for round_ in range(rounds):
        # A read-only request whose reply takes at least seven bytes on the line...
        first = [encode_request(Command.STATUS),
                 encode_request(Command.READ, read_payload(
                     LAYOUT.weight_address(1, 0, 0), int(rng.integers(1, 6)))),
                 encode_request(Command.READ_SPIKES, read_spikes_payload(8))][round_ % 3]
        # ...then, before its reply is out, one to three more frames, back to back or
        # a few bits apart: two bytes arrive while the bridge is busy, one is lost.
        late = [random_frame(rng, LAYOUT.weight_address(1, int(rng.integers(0, 8)), 0))
                for _ in range(int(rng.integers(1, 4)))]
        await uart.send(first)
        for frame in late:
            await uart.send(frame, gap_bits=int(rng.integers(0, 3)))
        reply = await reply_within(uart, 20 * drain_bits)
        assert reply.command == first[1] and reply.status in (Status.OK, Status.SPIKES_LOST), \
            f"round {round_}: {reply}"
        reply = await reply_within(uart, 20 * drain_bits)
        assert reply.status == Status.OVERRUN and reply.command == 0 and not reply.payload, \
            f"round {round_}: {reply} after {[frame.hex() for frame in late]}"
        await uart.idle(4)
        assert not uart.pending(), f"round {round_}: a third reply"
    assert uart.framing_errors == 0
    after = await snapshot(uart) + await read_words(uart, LAYOUT.register_address("tick"), 3)
    assert after == before
    assert (await request(uart, Command.STATUS)).status == Status.OK
    dut._log.info("%d overrun rounds answered OVERRUN, state and registers unchanged", rounds)


@cocotb.test()
async def host_driver_over_socket(dut):
    """The pyserial driver, through a socket:// URL, runs the golden script unchanged."""
    from plasticore.host import AddressOutOfRange, BoardCore, open_transport

    uart = await start(dut)
    weights = make_weights(5)
    event_ticks = make_events(6, TICKS)
    golden = GoldenCore(CONFIG, weights)

    def script(core):
        """The same lines run on the golden core and on the board."""
        core.load_weights(weights)
        spikes = core.run(event_ticks)
        return (spikes, core.read_weights(), core.read_membrane(), core.read_refractory(),
                core.tick_count, core.dropped_events)

    def driver(url):
        outcome = {}
        with BoardCore(CONFIG, open_transport(url, timeout=0.05), timeout=60.0,
                       run_timeout=60.0) as board:
            board.clear_state()       # the previous test left state in the memories
            outcome["board"] = script(board)
            try:
                board.read_words(LAYOUT.address(REGION_MEMBRANE, LAYOUT.state_words), 1)
            except AddressOutOfRange as error:
                outcome["error"] = error
        return outcome

    outcome = await serve_over_socket(uart, driver)
    expected = script(golden)
    board = outcome["board"]
    for tick, (got, want) in enumerate(zip(board[0], expected[0])):
        assert [g.tolist() for g in got] == [w.tolist() for w in want], f"tick {tick}"
    for got, want in zip(board[1:4], expected[1:4]):
        assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert board[4:] == expected[4:]
    assert isinstance(outcome.get("error"), AddressOutOfRange)
