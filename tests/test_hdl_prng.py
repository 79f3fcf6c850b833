"""The pipelined Threefry-2x32 against the golden model, one draw per cycle."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from plasticore.golden.prng import threefry2x32
from plasticore.hdl.prng import Threefry2x32


@pytest.mark.parametrize("rounds, rounds_per_stage", [(13, 2), (13, 1), (20, 3), (5, 5), (1, 1)])
def test_threefry_pipeline_matches_golden(rounds, rounds_per_stage):
    rng = np.random.default_rng(rounds * 10 + rounds_per_stage)
    key = (int(rng.integers(0, 1 << 32)), 0xFFFFFFFF)
    counters = rng.integers(0, 1 << 32, size=(40, 2), dtype=np.int64)
    counters[:3] = [[0, 0], [0xFFFFFFFF, 0xFFFFFFFF], [1, 0]]
    expected = np.stack(threefry2x32(key[0], key[1], counters[:, 0], counters[:, 1], rounds),
                        axis=1).astype(np.int64)
    dut = Threefry2x32(key, rounds, rounds_per_stage)
    assert dut.latency == -(-rounds // rounds_per_stage)
    seen = []

    async def bench(ctx):
        # A new draw every cycle: the outputs lag the inputs by exactly `latency` cycles.
        for cycle in range(len(counters) + dut.latency):
            if cycle < len(counters):
                ctx.set(dut.counter0, int(counters[cycle, 0]))
                ctx.set(dut.counter1, int(counters[cycle, 1]))
            if cycle >= dut.latency:
                seen.append((ctx.get(dut.word0), ctx.get(dut.word1)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(np.array(seen, dtype=np.int64), expected)


def test_threefry_pipeline_refuses_bad_parameters():
    with pytest.raises(ValueError, match="rounds = 0"):
        Threefry2x32((1, 2), rounds=0)
    with pytest.raises(ValueError, match="rounds_per_stage = 14"):
        Threefry2x32((1, 2), rounds=13, rounds_per_stage=14)
