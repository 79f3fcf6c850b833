"""Weights in iCE40 SPRAM: the single-port bank against a plain memory, in amaranth.sim."""

import numpy as np
import pytest
from amaranth.hdl import Fragment, Instance
from amaranth.sim import Simulator

from plasticore import CoreConfig
from plasticore.hdl.projection import WeightBanks
from plasticore.hdl.spram import SPRAM_DEPTH, SpramBlock, SpramGeometry


@pytest.mark.parametrize("lanes, weight_bits, depth, shape", [
    # (lane bits, weights per block word, words per block word, columns, rows)
    (1, 8, 79400, (8, 2, 2, 1, 3)),      # 784-100-10, lanes 1: two words per block word
    (2, 8, 39700, (8, 2, 1, 1, 3)),
    (4, 6, 20000, (8, 2, 1, 2, 2)),      # 6-bit weights take a byte each (nibble mask)
    (1, 4, 10, (4, 4, 4, 1, 1)),
    (8, 16, 100, (16, 1, 1, 8, 1)),
    (2, 3, 3, (4, 4, 2, 1, 1)),
])
def test_geometry_lays_words_out_in_whole_nibbles(lanes, weight_bits, depth, shape):
    geometry = SpramGeometry(lanes, weight_bits, depth)
    assert (geometry.lane_bits, geometry.slot_lanes, geometry.pack, geometry.columns,
            geometry.rows) == shape
    assert geometry.blocks == shape[3] * shape[4]


def _run_against_model(config, depth, steps, seed, *, cover=None):
    """Drive a SPRAM bank with random lane writes and reads, never both in a cycle, and
    compare every read with a plain array of words."""
    dut = WeightBanks(config, depth=depth, memory="spram", checks=True)
    lanes, low = config.lanes, config.weight_range[0]
    high = config.weight_range[1]
    rng = np.random.default_rng(seed)
    model = np.zeros((depth, lanes), dtype=int)
    # Addresses: a few hot words (so reads see written data) and the edges of every slot
    # and block row the geometry has.
    hot = list(rng.integers(depth, size=6)) + [0, depth - 1] + list(cover or [])
    mismatches, reads = [], [0]

    async def bench(ctx):
        pending = None
        for _ in range(steps):
            if pending is not None:
                got = [ctx.get(dut.read.data[lane]) for lane in range(lanes)]
                if got != list(pending[1]):
                    mismatches.append((pending[0], got, list(pending[1])))
                reads[0] += 1
                pending = None
            word = int(hot[rng.integers(len(hot))]) if rng.random() < 0.8 else \
                int(rng.integers(depth))
            if rng.random() < 0.5:
                mask = int(rng.integers(1, 1 << lanes))
                values = [int(v) for v in rng.integers(low, high + 1, size=lanes)]
                ctx.set(dut.write.addr, word)
                ctx.set(dut.write.data, values)
                ctx.set(dut.write.en, mask)
                ctx.set(dut.read.valid, 0)
                for lane in range(lanes):
                    if mask >> lane & 1:
                        model[word, lane] = values[lane]
            else:
                ctx.set(dut.write.en, 0)
                ctx.set(dut.read.addr, word)
                ctx.set(dut.read.valid, 1)
                pending = (word, model[word].copy())
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert reads[0] > steps // 3
    assert mismatches == []


@pytest.mark.parametrize("lanes, weight_bits, depth", [
    (1, 8, 37),     # packed two words per block word
    (4, 6, 21),     # two block columns, padded lanes
    (1, 3, 50),     # packed four words per block word
    (2, 16, 9),     # one lane per block column
])
def test_spram_bank_reads_what_a_plain_memory_would(lanes, weight_bits, depth):
    config = CoreConfig(layers=(3, 4), lanes=lanes, weight_bits=weight_bits,
                        membrane_bits=max(16, weight_bits + 1))
    _run_against_model(config, depth, 400, seed=lanes * 100 + weight_bits)


def test_spram_bank_cascades_rows_by_address():
    # Two block rows: word addresses on both sides of the 16384-word boundary.
    config = CoreConfig(layers=(3, 4), lanes=2)
    depth = SPRAM_DEPTH + 20
    assert SpramGeometry(2, 8, depth).rows == 2
    edge = [SPRAM_DEPTH - 2, SPRAM_DEPTH - 1, SPRAM_DEPTH, SPRAM_DEPTH + 1]
    _run_against_model(config, depth, 300, seed=7, cover=edge)


def test_spram_bank_asserts_one_access_per_cycle():
    dut = WeightBanks(CoreConfig(layers=(3, 4)), depth=8, memory="spram", checks=True)

    async def bench(ctx):
        ctx.set(dut.write.addr, 1)
        ctx.set(dut.write.en, 1)
        ctx.set(dut.read.valid, 1)
        await ctx.tick()
        await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    with pytest.raises(AssertionError, match="read and a write in the same cycle"):
        sim.run()


def _instances(fragment, kind):
    found = 1 if isinstance(fragment, Instance) and fragment.type == kind else 0
    return found + sum(_instances(sub, kind) for sub, *_ in fragment.subfragments)


def test_spram_bank_is_the_primitive_on_an_ice40up_and_a_model_elsewhere():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    config = CoreConfig(layers=(784, 100, 10), weight_memory="spram")
    dut = WeightBanks(config, depth=79400)
    assert _instances(Fragment.get(dut, ICEBreakerPlatform()), "SB_SPRAM256KA") == 3
    assert _instances(Fragment.get(WeightBanks(config, depth=79400), None),
                      "SB_SPRAM256KA") == 0


def test_spram_refusals_name_the_value_and_the_limit():
    config = CoreConfig(layers=(3, 4), lanes=2)
    with pytest.raises(ValueError, match="banks = 2: must be 1 with memory = \"spram\""):
        WeightBanks(config, depth=4, banks=2, memory="spram")
    with pytest.raises(ValueError, match="memory = 'lut': must be"):
        WeightBanks(config, depth=4, memory="lut")
    with pytest.raises(ValueError, match=f"depth = {SPRAM_DEPTH + 1}: must be between 1 and"):
        SpramBlock(SPRAM_DEPTH + 1)


# Seeds whose draws lay words over 2 and 4 block columns (lanes 4 and 8 of padded 6 and
# 5-bit weights) and pack two words per block word (a recurrent 17-17-13-2, lanes 1).
@pytest.mark.parametrize("case, recurrent, columns, pack", [
    (0, False, 2, 1), (1, False, 4, 1), (2, True, 1, 2)])
def test_core_with_spram_weights_matches_golden(case, recurrent, columns, pack):
    # Core(checks=True): the bank asserts that no host write meets a delivery read.
    from plasticore.golden import GoldenCore
    from plasticore.layout import CoreLayout
    from plasticore.sim.pysim import run_core
    from plasticore.sim.random_case import (case_weights, random_config,
                                            random_event_ticks, random_recurrent_config)
    rng = np.random.default_rng(300 + case)
    draw = random_recurrent_config if recurrent else random_config
    config = draw(rng, name="spram").replace(weight_memory="spram")
    geometry = SpramGeometry(config.lanes, config.weight_bits, CoreLayout(config).weight_words)
    assert (geometry.columns, geometry.pack) == (columns, pack)
    weights = case_weights(config, rng)
    events = random_event_ticks(config, rng, ticks=20, activity=0.5)
    golden = GoldenCore(config, weights)
    expected = golden.run(events)
    run = run_core(config, weights, events, ready_probability=0.7, seed=case)
    assert [[list(layer) for layer in tick] for tick in run.spikes] == \
        [[list(layer) for layer in tick] for tick in expected]
    assert sum(len(layer) for tick in expected for layer in tick) > 0
    for layer in range(len(config.neuron_layers)):
        np.testing.assert_array_equal(run.membranes[layer], golden.membrane[layer])
    assert run.registers["flags"] == golden.flags
    if recurrent:
        # The recurrent core's read-back holds every weight, read through the bank.
        for got, want in zip(run.weights, golden.weights):
            np.testing.assert_array_equal(got, want)
