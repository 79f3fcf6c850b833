"""UART receiver and transmitter in amaranth.sim against a hand-written 8N1 line model."""

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from plasticore.hdl.uart import (BaudRateError, UARTReceiver, UARTTransmitter,
                                 cycles_per_bit)


def line_bits(byte, stop=1):
    """The 10 levels of an 8N1 frame: start, data LSB first, stop."""
    return [0] + [(byte >> bit) & 1 for bit in range(8)] + [stop]


def test_cycles_per_bit():
    assert cycles_per_bit(12e6, 115200) == 104      # 12e6 / 115200 = 104.17
    assert cycles_per_bit(48e6, 1_000_000) == 48
    with pytest.raises(BaudRateError, match="off"):
        cycles_per_bit(12e6, 2_600_000)      # 5 cycles: 2.4 MBd, 7.7 % off
    with pytest.raises(BaudRateError, match="at least 4"):
        cycles_per_bit(12e6, 4_000_000)


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_receiver_reads_a_driven_line(divisor):
    dut = UARTReceiver(divisor)
    # Bytes with their stop bit level; a low stop bit is a framing error, dropped.
    sent = [(0x55, 1), (0x00, 1), (0xA5, 0), (0xFF, 1), (0x81, 1)]
    received, errors = [], []

    async def drive(ctx):
        ctx.set(dut.o_stream.ready, 1)
        await ctx.tick().repeat(5)
        for byte, stop in sent:
            for level in line_bits(byte, stop):
                ctx.set(dut.rx, level)
                for _ in range(divisor):
                    if ctx.get(dut.o_stream.valid):
                        received.append(ctx.get(dut.o_stream.payload))
                    if ctx.get(dut.framing_error):
                        errors.append(byte)
                    await ctx.tick()
            ctx.set(dut.rx, 1)
            for _ in range(3 * divisor):
                if ctx.get(dut.o_stream.valid):
                    received.append(ctx.get(dut.o_stream.payload))
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.run()
    assert received == [0x55, 0x00, 0xFF, 0x81]
    assert errors == [0xA5]


@pytest.mark.parametrize("divisor", [4, 9])
def test_transmitter_line_levels(divisor):
    dut = UARTTransmitter(divisor)
    payload = [0x3C, 0x01, 0xFE]
    levels = []

    async def bench(ctx):
        for byte in payload:
            ctx.set(dut.i_stream.valid, 1)
            ctx.set(dut.i_stream.payload, byte)
            while True:
                ready = ctx.get(dut.i_stream.ready)
                levels.append(ctx.get(dut.tx))
                await ctx.tick()
                if ready:
                    break
            ctx.set(dut.i_stream.valid, 0)
        for _ in range(12 * divisor):
            levels.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # Decode the recorded line like a receiver: find each start bit, sample mid-bit.
    decoded, index = [], 0
    while index < len(levels):
        if levels[index] == 0:
            bits = [levels[index + divisor // 2 + k * divisor] for k in range(10)]
            assert bits[0] == 0 and bits[9] == 1
            decoded.append(sum(bit << k for k, bit in enumerate(bits[1:9])))
            index += 10 * divisor
        else:
            index += 1
    assert decoded == payload
    # Back to back: no idle gap longer than a bit between the three frames.
    first_start = levels.index(0)
    assert levels[first_start:first_start + 30 * divisor].count(1) <= 30 * divisor


def test_loopback_at_minimum_divisor():
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(4)
    m.submodules.rx = rx = UARTReceiver(4)
    m.d.comb += rx.rx.eq(tx.tx)
    data = list(range(0, 256, 7))
    got = []

    async def bench(ctx):
        ctx.set(rx.o_stream.ready, 1)
        for byte in data:
            ctx.set(tx.i_stream.valid, 1)
            ctx.set(tx.i_stream.payload, byte)
            while True:
                ready = ctx.get(tx.i_stream.ready)
                if ctx.get(rx.o_stream.valid):
                    got.append(ctx.get(rx.o_stream.payload))
                await ctx.tick()
                if ready:
                    break
        ctx.set(tx.i_stream.valid, 0)
        for _ in range(60):
            if ctx.get(rx.o_stream.valid):
                got.append(ctx.get(rx.o_stream.payload))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == data
