"""The eRBP hardware in amaranth.sim: each block against its golden function, then the
whole learning core against :class:`plasticore.golden.erbp.GoldenErbpCore`."""

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.sim import Simulator

from plasticore import CoreConfig
from plasticore.config import ConfigError
from plasticore.golden.erbp import (FLAG_DENDRITE_SATURATED, FLAG_WEIGHT_SATURATED,
                                    GoldenErbpCore, dendrite_update, error_neuron_update,
                                    initial_weights, weight_step)
from plasticore.golden.prng import threefry2x32
from plasticore.hdl.core import Core
from plasticore.hdl.erbp import (DendriteLeak, DendriteUpdate, ErbpWeightStep, ErrorInput,
                                 ErrorNeuron)
from plasticore.hdl.synapse import WeightUpdate
from plasticore.layout import CoreLayout
from plasticore.sim.pysim import host_access, host_read, host_write, run_core
from plasticore.sim.random_case import (apply_erbp_writes, random_erbp_config,
                                        random_erbp_session)

from test_hdl_blocks import _edge_and_random, _run_combinational


def _erbp_config(layers=(3, 4, 2), weight_bits=8, membrane_bits=12, **table):
    high = (1 << (membrane_bits - 1)) - 1
    base = {"ticks_per_sample": 20, "test_ticks_per_sample": 20, "burn_in_ticks": 0,
            "soma_gain_shift": 1,
            "gate_low": -(high // 2), "gate_high": high // 2, "learning_rate_shift": 4,
            "error_threshold": high // 8, "error_input_weight": high // 4,
            "feedback_output_weight": high // 10, "feedback_hidden_scale": high // 7,
            "initial_weight_range": [20] * (len(layers) - 1)}
    base.update(table)
    return CoreConfig.from_dict({"layers": list(layers), "weight_bits": weight_bits,
                                 "membrane_bits": membrane_bits, "leak_shift": 3,
                                 "threshold": 200, "rule": "erbp", "erbp": base})


# ---- blocks ---------------------------------------------------------------------------

def test_weight_step_matches_golden():
    config = _erbp_config()
    params = config.learning
    rng = np.random.default_rng(1)
    low, high = config.membrane_range
    n = 600
    v = rng.permutation(np.concatenate([_edge_and_random(rng, low, high, n),
                                        [params.gate_low, params.gate_low + 1,
                                         params.gate_high - 1, params.gate_high]]))[:n]
    u = rng.permutation(_edge_and_random(rng, low, high, n))[:n]
    words = rng.integers(0, 1 << 32, size=n)
    words[:4] = [0, 0xFFFFFFFF, 1, 0x80000000]
    shifts = rng.integers(1, 33, size=n)
    shifts[:3] = [1, 32, config.membrane_bits]
    active = rng.random(n) < 0.8
    dut = ErbpWeightStep(config)

    def apply(ctx, case):
        vv, uu, word, shift, on = case
        ctx.set(dut.membrane, int(vv))
        ctx.set(dut.dendrite, int(uu))
        ctx.set(dut.random, int(word))
        ctx.set(dut.shift, int(shift))
        ctx.set(dut.mask, (1 << int(shift)) - 1)
        ctx.set(dut.active, int(on))
        return ctx.get(dut.delta)

    got = np.array(_run_combinational(dut, list(zip(v, u, words, shifts, active)), apply))
    want = np.array([weight_step(vv, uu, word, int(s), params.gate_low, params.gate_high)
                     if on else 0 for vv, uu, word, s, on in zip(v, u, words, shifts, active)])
    np.testing.assert_array_equal(got, want)
    # The cases reach both signs, the rounding carry, and the gate closing.
    assert (want > 0).any() and (want < 0).any()
    assert ((want == 0) & (u != 0) & active).any()


@pytest.mark.parametrize("sign", [1, -1])
def test_error_neuron_matches_golden(sign):
    config = _erbp_config(membrane_bits=10, error_threshold=100, error_input_weight=300)
    params = config.learning
    low, high = config.membrane_range
    rng = np.random.default_rng(2 + sign)
    n = 500
    state = rng.permutation(_edge_and_random(rng, 0, high, n))[:n]
    # Label sums as the core accumulates them: a saturating sum of label inputs.
    labels = rng.integers(0, 4, size=n)
    label_sum = np.clip(labels * sign * params.error_input_weight, low, high)
    prediction = rng.random(n) < 0.5
    # The two halves as ErrorPass chains them (a register between them there).
    inputs, neuron = ErrorInput(config, sign), ErrorNeuron(config)
    dut = Module()
    dut.submodules.inputs, dut.submodules.neuron = inputs, neuron
    dut.d.comb += [neuron.input_sum.eq(inputs.input_sum),
                   neuron.input_over.eq(inputs.input_over)]

    def apply(ctx, case):
        e, s, p = case
        ctx.set(neuron.state, int(e))
        ctx.set(inputs.label_sum, int(s))
        ctx.set(inputs.prediction, int(p))
        return (ctx.get(neuron.new_state), ctx.get(neuron.spike),
                ctx.get(neuron.saturated) | ctx.get(inputs.saturated))

    got = np.array(_run_combinational(dut, list(zip(state, label_sum, prediction)), apply))
    # Step 4: the prediction's input after the labels', saturating; then the state update.
    raw_input = label_sum - prediction * sign * params.error_input_weight
    input_sum = np.clip(raw_input, low, high)
    new_state, spike, state_clamped = error_neuron_update(state, input_sum,
                                                          params.error_threshold,
                                                          config.membrane_bits)
    np.testing.assert_array_equal(got[:, 0], new_state)
    np.testing.assert_array_equal(got[:, 1], spike)
    np.testing.assert_array_equal(got[:, 2], state_clamped | (raw_input != input_sum))
    assert spike.any() and (~spike).any() and state_clamped.any()


def test_dendrite_update_matches_golden():
    config = _erbp_config(membrane_bits=9, dendrite_leak_shift=2)
    low, high = config.membrane_range
    rng = np.random.default_rng(3)
    n = 500
    u = rng.permutation(_edge_and_random(rng, low, high, n))[:n]
    fb = rng.permutation(_edge_and_random(rng, low, high, n))[:n]
    # The two halves as DendritePass chains them (a register between them there).
    leak, update = DendriteLeak(config), DendriteUpdate(config)
    dut = Module()
    dut.submodules.leak, dut.submodules.update = leak, update
    dut.d.comb += update.leaked.eq(leak.leaked)

    def apply(ctx, case):
        ctx.set(leak.dendrite, int(case[0]))
        ctx.set(update.feedback, int(case[1]))
        return ctx.get(update.new_dendrite), ctx.get(update.saturated)

    got = np.array(_run_combinational(dut, list(zip(u, fb)), apply))
    want, saturated = dendrite_update(u, fb, 2, config.membrane_bits)
    np.testing.assert_array_equal(got[:, 0], want)
    np.testing.assert_array_equal(got[:, 1], saturated)
    # A small positive dendrite without feedback still decays by one.
    assert dendrite_update(np.array([3]), 0, 2, 9)[0][0] == 2
    assert saturated.any()


def test_weight_update_saturates_like_golden():
    from amaranth.hdl import signed
    rng = np.random.default_rng(4)
    dut = WeightUpdate(6, signed(12))
    weights = rng.permutation(_edge_and_random(rng, -32, 31, 300))[:300]
    deltas = rng.permutation(_edge_and_random(rng, -2048, 2047, 300))[:300]

    def apply(ctx, case):
        ctx.set(dut.weight, int(case[0]))
        ctx.set(dut.delta, int(case[1]))
        return ctx.get(dut.new_weight), ctx.get(dut.saturated)

    got = np.array(_run_combinational(dut, list(zip(weights, deltas)), apply))
    raw = weights + deltas
    np.testing.assert_array_equal(got[:, 0], np.clip(raw, -32, 31))
    np.testing.assert_array_equal(got[:, 1], (raw < -32) | (raw > 31))


# ---- the whole core -----------------------------------------------------------------------

def _golden_session(config, weights, session):
    golden = GoldenErbpCore(config, [w.copy() for w in weights])
    spikes = []
    for writes, events in session:
        apply_erbp_writes(golden, writes)
        spikes.append(golden.tick(events))
    return golden, spikes


def _assert_learning_run_matches(config, weights, session, **kwargs):
    golden, expected = _golden_session(config, weights, session)
    run = run_core(config, weights, [events for _, events in session],
                   register_writes=[writes for writes, _ in session], **kwargs)
    for tick, (want, got) in enumerate(zip(expected, run.spikes)):
        for layer, (w, g) in enumerate(zip(want, got), 1):
            assert list(g) == list(w), f"tick {tick}, layer {layer}"
    assert len(run.spikes) == len(expected)
    for layer in range(len(config.neuron_layers)):
        np.testing.assert_array_equal(run.weights[layer], golden.weights[layer],
                                      err_msg=f"weights of projection {layer}")
        np.testing.assert_array_equal(run.membranes[layer], golden.membrane[layer])
        np.testing.assert_array_equal(run.refractory[layer], golden.refractory[layer])
        np.testing.assert_array_equal(run.dendrites[layer], golden.dendrite[layer])
    np.testing.assert_array_equal(run.errors, golden.error_state)
    assert run.registers["tick"] == golden.tick_count
    assert run.registers["sample_tick"] == golden.sample_tick
    assert run.registers["dropped_events"] == golden.dropped_events
    assert run.registers["flags"] == golden.flags
    assert run.registers["learning_rate_shift"] == golden.learning_rate_shift
    assert run.registers["learning_enabled"] == golden.learning_enabled
    return golden, run


@pytest.mark.parametrize("seed, lanes", [(1, 1), (6, 1), (16, 1), (1, 4), (6, 2), (16, 8)])
def test_random_learning_core_matches_golden(seed, lanes):
    rng = np.random.default_rng(seed)
    config = random_erbp_config(rng, lanes=lanes)
    session = random_erbp_session(config, rng, 40)
    weights = initial_weights(config)
    golden, _ = _assert_learning_run_matches(config, weights, session,
                                             ready_probability=0.6, seed=seed)
    changed = sum(int((a != b).sum()) for a, b in zip(weights, golden.weights))
    assert changed > 0, "the case did not learn anything"


@pytest.mark.parametrize("seed, lanes", [(6, 1), (1, 2)])
def test_learning_core_on_single_port_spram_matches_golden(seed, lanes):
    """Weights in SPRAM: a word every other cycle, its write-back in the free cycle (the
    bank asserts that no read is claimed in a cycle that writes)."""
    rng = np.random.default_rng(seed)
    config = random_erbp_config(rng, lanes=lanes).replace(weight_memory="spram")
    session = random_erbp_session(config, rng, 40)
    weights = initial_weights(config)
    golden, _ = _assert_learning_run_matches(config, weights, session,
                                             ready_probability=0.6, seed=seed)
    assert sum(int((a != b).sum()) for a, b in zip(weights, golden.weights)) > 0


@pytest.mark.parametrize("memory", ["bram", "spram"])
def test_repeated_event_rereads_the_learned_weight_and_weights_saturate(memory):
    """One hidden neuron: input 0 arrives three times in a tick, each time re-reading the
    weight the previous event wrote (block RAM: the back-to-back case of the transparent
    read port; SPRAM: the word read again before that write-back, which the delivery
    forwards), and the steps are big enough to clamp weights and dendrites."""
    config = CoreConfig.from_dict({
        "layers": [2, 1, 2], "weight_bits": 8, "membrane_bits": 12, "leak_shift": 3,
        "threshold": 40, "rule": "erbp",
        "erbp": {"ticks_per_sample": 20, "test_ticks_per_sample": 20, "burn_in_ticks": 0,
                 "soma_gain_shift": 1, "gate_low": -2048, "gate_high": 2047,
                 "learning_rate_shift": 3, "error_threshold": 100, "error_input_weight": 400,
                 "feedback_output_weight": 300, "feedback_hidden_scale": 600,
                 "initial_weight_range": [3, 3]}}).replace(weight_memory=memory)
    weights = [np.array([[20], [-3]]), np.array([[30, -30]])]
    # The label says class 1 while the network predicts class 0: E+ of class 1 and E- of
    # class 0 spike, and the hidden dendrite (feedback +-269) turns positive.
    session = [([("learning_enabled", 1)] if t == 0 else [],
                np.array([0, 0, 0, 1, 3] if t % 2 else [0, 3, 0])) for t in range(8)]
    golden, run = _assert_learning_run_matches(config, weights, session)
    assert golden.flags & FLAG_WEIGHT_SATURATED and golden.flags & FLAG_DENDRITE_SATURATED
    # Tick 1: u = 538 gives steps of 538 >> 3 = 67 per event: 20 + 67 + 67 clamps at 127
    # (one step, 87, had the repeats read a stale weight).
    single = GoldenErbpCore(config, [w.copy() for w in weights])
    single.learning_enabled = True
    single.tick(session[0][1])
    assert single.dendrite[0][0] == 538
    single.tick(session[1][1])
    assert single.weights[0][0, 0] == 127


def test_spram_word_read_again_before_its_write_back_takes_the_written_word():
    """On SPRAM a word is written back three cycles after its read, so an event on the same
    one-word row two cycles later reads the memory too early: the delivery forwards the
    word it has just written (without that, these weights end differently)."""
    config = CoreConfig.from_dict({
        "layers": [2, 1, 2], "weight_bits": 8, "membrane_bits": 12, "leak_shift": 3,
        "threshold": 40, "rule": "erbp", "weight_memory": "spram",
        "erbp": {"ticks_per_sample": 20, "test_ticks_per_sample": 20, "burn_in_ticks": 0,
                 "soma_gain_shift": 1, "gate_low": -2048, "gate_high": 2047,
                 "learning_rate_shift": 5, "error_threshold": 100, "error_input_weight": 400,
                 "feedback_output_weight": 300, "feedback_hidden_scale": 600,
                 "initial_weight_range": [3, 3]}})
    weights = [np.array([[-20], [-3]]), np.array([[30, -30]])]
    session = [([("learning_enabled", 1)] if t == 0 else [], np.array([3, 0, 0]))
               for t in range(8)]
    golden, _ = _assert_learning_run_matches(config, weights, session)
    assert golden.weights[0][0, 0] != weights[0][0, 0]


def test_learning_off_leaves_weights_and_burn_in_holds_them():
    rng = np.random.default_rng(5)
    config = random_erbp_config(rng)
    weights = initial_weights(config)
    session = random_erbp_session(config, rng, 12)
    session[0] = ([("learning_enabled", 1), ("burn_in_ticks", 100)], session[0][1])
    session = [(writes if t == 0 else [w for w in writes if w[0] != "sample_tick"], events)
               for t, (writes, events) in enumerate(session)]
    session = [([w for w in writes if w[0] != "burn_in_ticks" or t == 0], events)
               for t, (writes, events) in enumerate(session)]
    golden, run = _assert_learning_run_matches(config, weights, session)
    for before, after in zip(weights, run.weights):
        np.testing.assert_array_equal(before, after)


# ---- host port and build-time checks -------------------------------------------------------

def test_learning_registers_and_regions_refuse_bad_accesses():
    config = _erbp_config()
    core = Core(config)
    layout = CoreLayout(config)
    failures = []

    async def bench(ctx):
        try:
            host = core.host
            assert await host_read(ctx, host, layout.register_address("learning_rate_shift")) == 4
            assert await host_read(ctx, host, layout.register_address("burn_in_ticks")) == 0
            await host_write(ctx, host, layout.register_address("learning_rate_shift"), 32)
            assert await host_read(ctx, host, layout.register_address("learning_rate_shift")) == 32
            await host_write(ctx, host, layout.register_address("sample_tick"), 0xFFFFFFFF)
            assert await host_read(ctx, host, layout.register_address("sample_tick")) == -1
            await host_write(ctx, host, layout.dendrite_address(2, 1), -2048)
            assert await host_read(ctx, host, layout.dendrite_address(2, 1)) == -2048
            await host_write(ctx, host, layout.error_address(1, 1), 2047)
            assert await host_read(ctx, host, layout.error_address(1, 1)) == 2047
            assert await host_read(ctx, host, layout.error_address(0, 1)) == 0
            bad = [
                (layout.register_address("learning_enabled"), True, 2, "enable not 0/1"),
                (layout.register_address("learning_rate_shift"), True, 0, "shift 0"),
                (layout.register_address("learning_rate_shift"), True, 33, "shift 33"),
                (layout.dendrite_address(1, 0), True, 2048, "dendrite above range"),
                (layout.address(4, layout.state_words), False, 0, "dendrite past the last"),
                (layout.error_address(0, 0), True, -1, "negative error state"),
                (layout.error_address(0, 0), True, 2048, "error state above range"),
                (layout.address(5, 4), False, 0, "error neuron past the last"),
                (6 << layout.offset_bits, False, 0, "region 6"),
                (7 << layout.offset_bits, True, 1, "region 7"),
                (layout.address(0, len(layout.registers)), False, 0, "no such register"),
            ]
            for address, write, value, what in bad:
                _, error = await host_access(ctx, host, address, write, value)
                assert error, what
            assert await host_read(ctx, host, layout.register_address("learning_rate_shift")) == 32
            assert await host_read(ctx, host, layout.register_address("learning_enabled")) == 0
            assert await host_read(ctx, host, layout.error_address(0, 0)) == 0
        except AssertionError as error:
            failures.append(error)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    if failures:
        raise failures[0]


def test_erbp_core_refuses_other_rules_which_make_core_picks():
    with pytest.raises(ConfigError, match="make_core"):
        Core(CoreConfig.from_toml("examples/decolle-digits.toml"))


def test_inference_core_carries_no_learning_logic():
    config = _erbp_config()
    learning = rtlil.convert(Core(config))
    inference = rtlil.convert(Core(config.replace(rule="none", learning=None)))
    for name in ("prng", "dendrites", "feedback_pass", "weight_stage", "error_pass",
                 "dendrite_pass", "sample_tick"):
        assert name in learning
        assert name not in inference


def test_threefry_key_and_counter_are_the_golden_ones():
    """The rounding draws of a learning tick come from key (rounding_seed, 0) and counter
    (tick, synapse): a core whose draws used another counter would fail the runs above,
    this pins the convention itself against the reference function."""
    config = _erbp_config(rounding_seed=77)
    word, _ = threefry2x32(77, 0, 5, 9, config.learning.prng_rounds)
    golden = GoldenErbpCore(config)
    golden.tick_count = 5
    draws = golden._draw_rows(0, np.array([2]))
    shift = golden.learning_rate_shift
    assert draws[0, 9 - 2 * 4] == int(word) & ((1 << shift) - 1)


def test_memory_map_describes_the_learning_regions():
    layout = CoreLayout(_erbp_config(layers=(3, 4, 2)))
    regions = layout.describe()["regions"]
    assert regions["dendrite"]["base"] == layout.dendrite_address(1, 0)
    assert regions["error"]["base"] == layout.error_address(0, 0)
    assert regions["error"]["base"] + 2 + 1 == layout.error_address(1, 1)
    assert regions["registers"]["registers"]["learning_rate_shift"] == 9
    assert regions["registers"]["flags"]["error_saturated"] == 16
    plain = CoreLayout(CoreConfig(layers=(3, 4, 2))).describe()["regions"]
    assert "dendrite" not in plain and "learning_enabled" not in plain["registers"]["registers"]
