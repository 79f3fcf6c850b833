"""Each hardware block in amaranth.sim against its golden counterpart."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from plasticore import CoreConfig
from plasticore.golden.lif import lif_update, saturating_add
from plasticore.hdl.neuron import LifUpdate
from plasticore.hdl.synapse import LaneAccumulate


def _run_combinational(dut, cases, apply):
    """Run ``apply(ctx, case) -> outputs`` for every case in one simulation; return outputs."""
    outputs = []

    async def bench(ctx):
        for case in cases:
            outputs.append(apply(ctx, case))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    return outputs


def _edge_and_random(rng, low, high, count):
    edges = [low, low + 1, -1, 0, 1, high - 1, high]
    return np.concatenate([edges, rng.integers(low, high + 1, size=count)])


LIF_CONFIGS = [
    CoreConfig(layers=(1, 1), weight_bits=8, membrane_bits=16, leak_shift=4, threshold=256,
               reset="zero", refractory_ticks=3),
    CoreConfig(layers=(1, 1), weight_bits=4, membrane_bits=6, leak_shift=1, threshold=31,
               reset="subtract", refractory_ticks=0),
    CoreConfig(layers=(1, 1), weight_bits=6, membrane_bits=9, leak_shift=0, threshold=1,
               reset="subtract", refractory_ticks=255),
    CoreConfig(layers=(1, 1), weight_bits=16, membrane_bits=32, leak_shift=31,
               threshold=(1 << 31) - 1, reset="zero", refractory_ticks=1),
]


@pytest.mark.parametrize("config", LIF_CONFIGS, ids=lambda c: f"m{c.membrane_bits}-{c.reset}")
def test_lif_update_matches_golden(config):
    rng = np.random.default_rng(config.membrane_bits)
    low, high = config.membrane_range
    n = 400
    membrane = rng.permutation(_edge_and_random(rng, low, high, n))[:n]
    accumulator = rng.permutation(_edge_and_random(rng, low, high, n))[:n]
    refractory = rng.integers(0, config.refractory_ticks + 1, size=n)
    refractory[: n // 2] = 0        # most cases integrate
    dut = LifUpdate(config)

    def apply(ctx, case):
        v, r, a = case
        ctx.set(dut.membrane, int(v))
        ctx.set(dut.refractory, int(r))
        ctx.set(dut.accumulator, int(a))
        return (ctx.get(dut.new_membrane), ctx.get(dut.new_refractory), ctx.get(dut.spike),
                ctx.get(dut.saturated))

    got = np.array(_run_combinational(dut, list(zip(membrane, refractory, accumulator)), apply))
    v, r, spikes, clamped = lif_update(config, membrane, refractory, accumulator)
    np.testing.assert_array_equal(got[:, 0], v)
    np.testing.assert_array_equal(got[:, 1], r)
    np.testing.assert_array_equal(got[:, 2], spikes)
    np.testing.assert_array_equal(got[:, 3], clamped)
    # The cases must reach every branch, or the comparison proves little.
    assert spikes.any() and (~spikes).any() and clamped.any()
    assert (r > 0).any() == (config.refractory_ticks > 0)


def test_lif_update_hand_computed():
    """A few cases worked out by hand from the tick specification."""
    config = CoreConfig(layers=(1, 1), weight_bits=4, membrane_bits=8, leak_shift=2,
                        threshold=10, reset="subtract", refractory_ticks=2)
    # v=12, leak=3, acc=5 -> 14 >= 10: spike, v=4, ref=2
    # v=-7, leak=-2 (floor), acc=0 -> -5
    # v=100, leak=25, acc=127 -> 202 clamps to 127, spikes, v=117
    # refractory 2: v held, ref 1
    v, r, s, c = lif_update(config, [12, -7, 100, 50], [0, 0, 0, 2], [5, 0, 127, 9])
    assert list(v) == [4, -5, 117, 50]
    assert list(r) == [2, 0, 2, 1]
    assert list(s) == [True, False, True, False]
    assert list(c) == [False, False, True, False]


@pytest.mark.parametrize("lanes, weight_bits, membrane_bits", [(1, 8, 16), (4, 4, 5), (16, 2, 3)])
def test_lane_accumulate_matches_golden(lanes, weight_bits, membrane_bits):
    config = CoreConfig(layers=(1, lanes), weight_bits=weight_bits, membrane_bits=membrane_bits,
                        threshold=1, leak_shift=1, lanes=lanes)
    rng = np.random.default_rng(lanes)
    w_low, w_high = config.weight_range
    a_low, a_high = config.membrane_range
    # Half the accumulators sit near the ends of their range, so that lanes clamp.
    near_ends = [a_low, a_low + 1, a_high - 1, a_high]
    cases = [(rng.integers(w_low, w_high + 1, size=lanes),
              rng.choice(near_ends, size=lanes) if index % 2 else
              rng.integers(a_low, a_high + 1, size=lanes))
             for index in range(200)]
    dut = LaneAccumulate(config)

    def apply(ctx, case):
        weights, accumulators = case
        ctx.set(dut.weights, [int(x) for x in weights])
        ctx.set(dut.accumulators, [int(x) for x in accumulators])
        sums = ctx.get(dut.sums)
        return [sums[lane] for lane in range(lanes)], ctx.get(dut.saturated)

    got = _run_combinational(dut, cases, apply)
    saw_clamp = False
    for (weights, accumulators), (sums, saturated) in zip(cases, got):
        expected, clamped = saturating_add(accumulators, weights, a_low, a_high)
        assert sums == list(expected)
        assert saturated == sum(int(bit) << lane for lane, bit in enumerate(clamped))
        saw_clamp |= bool(clamped.any())
    assert saw_clamp


@pytest.mark.parametrize("width, subtract", [(5, False), (5, True), (9, True)])
def test_saturate_sum_matches_the_golden_saturating_add(width, subtract):
    """Every pair of signed(width) operands (random ones at 9 bits): the top-two-bits
    clamp equals the golden model's saturating addition, and flags exactly the sums it
    changed."""
    from amaranth.hdl import Module, Signal, signed
    from plasticore.hdl.arith import saturate_sum
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    a, b = Signal(signed(width)), Signal(signed(width))
    result, flag = Signal(signed(width)), Signal()
    m = Module()
    clamped, clamped_flag = saturate_sum(a - b if subtract else a + b, width)
    m.d.comb += [result.eq(clamped), flag.eq(clamped_flag)]
    values = np.arange(low, high + 1)
    if width > 5:
        values = _edge_and_random(np.random.default_rng(width), low, high, 60)
    cases = [(int(x), int(y)) for x in values for y in values]
    got = _run_combinational(m, cases, lambda ctx, case: (
        ctx.set(a, case[0]), ctx.set(b, case[1]), (ctx.get(result), ctx.get(flag)))[-1])
    xs, ys = np.array(cases).T
    expected, flagged = saturating_add(xs, -ys if subtract else ys, low, high)
    np.testing.assert_array_equal([value for value, _ in got], expected)
    np.testing.assert_array_equal([clamped_now for _, clamped_now in got], flagged)
    assert flagged.any() and not flagged.all()
