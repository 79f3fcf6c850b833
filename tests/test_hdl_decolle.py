"""The DECOLLE core's blocks and the whole core in amaranth.sim, against golden/decolle.py."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from plasticore.config import ConfigError, CoreConfig
from plasticore.golden.decolle import (FLAG_MEMBRANE_SATURATED, FLAG_WEIGHT_SATURATED,
                                       GoldenDecolle, _decay)
from plasticore.hdl.decolle_core import DecolleCore
from plasticore.hdl.decolle_passes import draw_blocks
from plasticore.hdl.decolle_units import (ErrorUnit, NeuronUnit, TraceUnit, UpdateUnit,
                                          refractory_shape, trace_shape)
from plasticore.layout import (CORE_MAGIC, DECOLLE_FLAG_MEMBRANE_SATURATED,
                               DECOLLE_FLAG_WEIGHT_SATURATED, CoreLayout, DecolleLayout,
                               layout_for)
from plasticore.sim.decolle_case import golden_apply, golden_state, random_case, random_config
from plasticore.sim.decolle_pysim import run_decolle
from plasticore.sim.pysim import host_access, host_read, host_write


def make_config(layers=(5, 4, 3), weight_bits=8, membrane_bits=12, **decolle):
    table = dict(ticks_per_sample=12, burn_in=2, trace_bits=6, q_shifts=[2, 4], p_shifts=[3],
                 r_shifts=[1, 3], unit_bits=5, refractory_weight=32, surrogate_window=40,
                 error_bits=4, error_shifts=[6, 3], lr_shifts=[4, 3], init_scale=[3.0, 2.0])
    table.update(decolle)
    return CoreConfig.from_dict(dict(layers=list(layers), weight_bits=weight_bits, threshold=10,
                                     membrane_bits=membrane_bits, seed=7, rule="decolle",
                                     decolle=table))


def simulate(dut, bench):
    """Run an async testbench on ``dut``; return what it returns."""
    result = {}

    async def wrapper(ctx):
        result["value"] = await bench(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(wrapper)
    sim.run()
    return result["value"]


def combinational(dut, inputs, outputs):
    """Apply each dict of ``inputs`` and read ``outputs``; return a list of tuples."""
    async def bench(ctx):
        seen = []
        for values in inputs:
            for name, value in values.items():
                ctx.set(getattr(dut, name), int(value))
            await ctx.delay(1e-9)
            seen.append(tuple(ctx.get(getattr(dut, name)) for name in outputs))
        return seen

    sim = Simulator(dut)
    result = {}

    async def wrapper(ctx):
        result["value"] = await bench(ctx)

    sim.add_testbench(wrapper)
    sim.run()
    return result["value"]


def pipelined(dut, inputs, outputs, latency=1):
    """Feed one dict of ``inputs`` per cycle to a unit of ``latency``; return its outputs
    for each, read while later inputs are already applied (they must not change them)."""
    async def bench(ctx):
        seen = []
        for values in inputs + [{}] * latency:
            await ctx.tick()
            for name, value in values.items():
                ctx.set(getattr(dut, name), int(value))
            seen.append(tuple(ctx.get(getattr(dut, name)) for name in outputs))
        return seen[latency:]

    return simulate(dut, bench)


# ---- trace unit ------------------------------------------------------------------------------

@pytest.mark.parametrize("decolle", [
    dict(trace_bits=6, q_shifts=[2, 4], p_shifts=[3]),
    dict(trace_bits=12, q_shifts=[4, 6], p_shifts=[5], error_shifts=[10, 8]),
    dict(trace_bits=3, q_shifts=[1, 2, 3], p_shifts=[1, 2]),
])
def test_trace_unit_matches_golden(decolle):
    config = make_config(**decolle)
    params = config.learning
    tb = params.trace_bits
    shape = trace_shape(config)
    rng = np.random.default_rng(tb)
    low = -(len(params.q_shifts) + len(params.p_shifts) - 2)
    edges = [low, -1, 0, 1, 2, (1 << tb) - 1, 1 << tb]
    cases = [(q, p, s) for q in edges for p in edges for s in (0, 1)]
    cases += [(int(rng.integers(low, (1 << tb) + 1)), int(rng.integers(low, (1 << tb) + 1)),
               int(rng.integers(0, 2))) for _ in range(200)]
    q, p, s = (np.array(column, dtype=np.int64) for column in zip(*cases))
    want_q = _decay(q, s << tb, params.q_shifts)
    want_p = _decay(p, q, params.p_shifts)
    got = combinational(TraceUnit(config), [dict(q=a, p=b, spike=c) for a, b, c in cases],
                        ("new_q", "new_p"))
    np.testing.assert_array_equal(np.array(got), np.stack([want_q, want_p], axis=1))
    # Every value reached stays inside the trace shape (it is what the memory stores).
    assert shape.width >= tb + 2


def test_traces_stay_in_their_shape_over_a_long_run():
    """A floor shift takes a falling trace below 0: the shape must hold what golden reaches."""
    config = make_config(trace_bits=4, q_shifts=[1, 2, 3], p_shifts=[1, 2])
    golden = GoldenDecolle(config)
    rng = np.random.default_rng(3)
    low_q = low_p = 0
    for _ in range(400):
        golden.tick(rng.random(5) < 0.3)
        low_q = min(low_q, int(golden.Q[0].min()))
        low_p = min(low_p, int(golden.P[0].min()))
    assert low_q < 0 and low_p < 0          # the case the signed shape exists for
    shape = trace_shape(config)
    assert -(1 << (shape.width - 1)) <= min(low_q, low_p)


# ---- neuron unit ----------------------------------------------------------------------------

def test_neuron_unit_matches_golden():
    config = make_config(membrane_bits=10, refractory_weight=100, r_shifts=[1, 2, 4])
    params = config.learning
    model = GoldenDecolle(config)
    rng = np.random.default_rng(5)
    low_w, high_w = config.weight_range
    r_low = -(params.refractory_weight + len(params.r_shifts) - 1)
    largest = 5 * (high_w + 1) << params.trace_bits     # 5 inputs of the largest |W| * P
    dots = [0, 1, -1, largest, -largest, 5000, -5000]
    cases = [(d, b, r, s) for d in dots for b in (low_w, 0, high_w) for r in (r_low, -1, 0)
             for s in (0, 1)]
    cases += [(int(rng.integers(-largest, largest + 1)), int(rng.integers(low_w, high_w + 1)),
               int(rng.integers(r_low, 1)), int(rng.integers(0, 2))) for _ in range(300)]
    dot, bias, refr, last = (np.array(c, dtype=np.int64) for c in zip(*cases))
    want_r = _decay(refr, np.where(last, -params.refractory_weight, 0), params.r_shifts)
    model.flags = 0
    raw = (dot >> params.trace_bits) + bias + want_r
    want_u = model._clamp_membrane(raw)
    got = np.array(pipelined(NeuronUnit(config),
                             [dict(dot=a, bias=b, refractory=c, last_spike=d)
                              for a, b, c, d in cases],
                             ("new_refractory", "membrane", "spike", "saturated")))
    np.testing.assert_array_equal(got[:, 0], want_r)
    np.testing.assert_array_equal(got[:, 1], want_u)
    np.testing.assert_array_equal(got[:, 2], want_u > 0)
    np.testing.assert_array_equal(got[:, 3], want_u != raw)
    assert got[:, 3].any() and model.flags == FLAG_MEMBRANE_SATURATED
    assert refractory_shape(config).width >= (params.refractory_weight + 3).bit_length() + 1


# ---- error unit -----------------------------------------------------------------------------

def run_error_unit(config, cases):
    """Per case (layer, spikes, membranes, target): e_q of every neuron and the readout flag."""
    dut = ErrorUnit(config)

    async def bench(ctx):
        results = []
        for layer, spikes, membranes, target in cases:
            ctx.set(dut.layer, layer)
            ctx.set(dut.target, int(sum(int(bit) << k for k, bit in enumerate(target))))
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for neuron in np.flatnonzero(spikes):      # back to back, as the core adds them
                ctx.set(dut.add, 1)
                ctx.set(dut.add_neuron, int(neuron))
                await ctx.tick()
            ctx.set(dut.add, 0)
            await ctx.tick()
            saturated = ctx.get(dut.readout_saturated)
            errors = []
            for neuron, (spike, membrane) in enumerate(zip(spikes, membranes)):
                ctx.set(dut.start, 1)
                ctx.set(dut.neuron, neuron)
                ctx.set(dut.membrane, int(membrane))
                ctx.set(dut.spike, int(spike))
                await ctx.tick()
                ctx.set(dut.start, 0)
                while not ctx.get(dut.done):
                    await ctx.tick()
                errors.append(ctx.get(dut.error))
                await ctx.tick()
            results.append((errors, saturated))
        return results

    return simulate(dut, bench)


@pytest.mark.parametrize("decolle", [
    dict(),
    dict(error_bits=2, error_shifts=[0, 0], surrogate_window=1),
    # Large readouts in narrow membranes: the readout sums clamp.
    dict(readout_amplitude=40.0, unit_bits=5, error_shifts=[9, 2]),
])
def test_error_unit_matches_golden(decolle):
    config = make_config(layers=(4, 7, 3), membrane_bits=9, **decolle)
    window = config.learning.surrogate_window
    model = GoldenDecolle(config)
    rng = np.random.default_rng(11)
    low, high = config.membrane_range
    edges = np.array([-window, -window + 1, 0, window, window + 1, low, high])
    cases = []
    for layer, n in enumerate(config.neuron_layers):
        for draw in range(12):
            spikes = rng.random(n) < (0.5 if draw else 1.0)
            if draw == 1:
                spikes[:] = False
            membranes = rng.integers(-2 * window, 2 * window + 1, size=n)
            membranes[:min(n, 3)] = rng.choice(edges, size=min(n, 3))
            target = np.zeros(config.layers[-1], dtype=np.int64)
            target[rng.integers(0, len(target))] = 1
            if draw == 2:
                target[:] = 0
            cases.append((layer, spikes, membranes, target))
    got = run_error_unit(config, cases)
    saturated_seen = False
    for (layer, spikes, membranes, target), (errors, saturated) in zip(cases, got):
        model.flags = 0
        want = model.layer_error(layer, spikes[None], membranes[None], target[None])[0]
        assert errors == list(want), (layer, spikes, membranes, target)
        assert saturated == bool(model.flags & FLAG_MEMBRANE_SATURATED)
        saturated_seen |= bool(saturated)
    if decolle.get("readout_amplitude"):
        assert saturated_seen


# ---- update unit ----------------------------------------------------------------------------

@pytest.mark.parametrize("stochastic", [True, False])
def test_update_unit_matches_golden(stochastic):
    config = make_config(layers=(9, 6), weight_bits=6, error_bits=5, error_shifts=[2],
                         lr_shifts=[3], init_scale=[1.0], stochastic_rounding=stochastic,
                         learn_bias=True)
    params = config.learning
    tb = params.trace_bits
    low, high = config.weight_range
    limit = (1 << (params.error_bits - 1)) - 1
    rng = np.random.default_rng(2 + stochastic)
    inputs, expected = [], []
    for shift in (0, 1, 3, 15, 16):
        model = GoldenDecolle(config)
        model.set_lr_shifts([shift])
        weights = rng.integers(low, high + 1, size=(9, 6))
        weights[0] = [low, high, low, high, 0, 0]
        model.load_weights([weights], [rng.integers(low, high + 1, size=6)])
        pre = rng.integers(-2, (1 << tb) + 1, size=(1, 9))
        pre[0, :3] = [1 << tb, -2, 0]
        errors = rng.integers(-limit, limit + 1, size=(1, 6))
        errors[0, :3] = [limit, -limit, 0]
        draws = rng.integers(0, 1 << 16, size=model.offsets[-1])
        draws[:4] = [0, 0xFFFF, 0x8000, 1]
        before_w, before_b = model.weights[0].copy(), model.biases[0].copy()
        model._learn(0, pre, errors, draws)
        block = draws.reshape(10, 6)
        for j in range(10):
            for i in range(6):
                if errors[0, i] == 0:
                    continue
                weight = before_b[i] if j == 9 else before_w[j, i]
                trace = (1 << tb) if j == 9 else pre[0, j]
                inputs.append(dict(weight=weight, trace=trace, error=errors[0, i],
                                   draw=block[j, i], shift=shift))
                new = model.biases[0][i] if j == 9 else model.weights[0][j, i]
                expected.append((new, None))
    got = pipelined(UpdateUnit(config), inputs, ("new_weight", "saturated"),
                    latency=UpdateUnit.latency)
    np.testing.assert_array_equal([g[0] for g in got], [e[0] for e in expected])
    # Saturation is flagged exactly where the unclamped sum left the range.
    assert any(g[1] for g in got) and not all(g[1] for g in got)
    for values, (new, saturated) in zip(inputs, got):
        if saturated:
            assert new in (low, high)


# ---- the whole core -------------------------------------------------------------------------

def assert_core_matches(config, case, **kwargs):
    golden = GoldenDecolle(config, case["weights"], case["biases"])
    expected = [s for s in (golden_apply(golden, step) for step in case["script"]) if s is not None]
    run = run_decolle(config, case, **kwargs)
    assert len(run.spikes) == len(expected)
    for tick, (want, got) in enumerate(zip(expected, run.spikes)):
        for layer, (w, g) in enumerate(zip(want, got), 1):
            assert list(g) == list(w), f"tick {tick}, layer {layer}"
    state = golden_state(golden)
    for name, per_layer in state.items():
        for layer, values in enumerate(per_layer):
            np.testing.assert_array_equal(run.state[name][layer], values,
                                          err_msg=f"{name} of layer {layer + 1}")
    registers = run.registers
    assert registers["magic"] == CORE_MAGIC
    assert registers["tick"] == golden.tick_count
    assert registers["flags"] == golden.flags
    assert registers["dropped_events"] == golden.dropped_events
    assert registers["sample_tick"] == golden.sample_tick
    assert registers["learn"] == golden.learning and registers["burn_in"] == golden.burn_in
    for layer, shift in enumerate(golden.lr_shifts, 1):
        assert registers[f"lr_shift_{layer}"] == shift
    return golden, run


@pytest.mark.parametrize("seed, lanes", [(5, 1), (9, 1), (12, 1), (5, 2), (9, 4), (12, 8),
                                         (15, 16)])
def test_random_core_matches_golden(seed, lanes):
    rng = np.random.default_rng(seed)
    config = random_config(rng, lanes=lanes)
    case = random_case(config, rng, 30, weight_scale=float(rng.uniform(0.5, 4)))
    golden, _ = assert_core_matches(config, case, ready_probability=0.5, seed=seed)
    changed = sum(int((w != w0).sum()) for w, w0 in zip(golden.weights, case["weights"]))
    assert changed > 0, "nothing learned: the comparison says little"


@pytest.mark.parametrize("seed, lanes", [(9, 1), (5, 2)])
def test_core_with_weights_in_spram_matches_golden(seed, lanes):
    """Single-port SPRAM weights: the same results, and the bank's check (no read claimed in
    a cycle that writes) holds in every cycle of the run."""
    rng = np.random.default_rng(seed)
    config = random_config(rng, lanes=lanes).replace(weight_memory="spram")
    case = random_case(config, rng, 30, weight_scale=float(rng.uniform(0.5, 4)))
    golden, _ = assert_core_matches(config, case, ready_probability=0.5, seed=seed)
    changed = sum(int((w != w0).sum()) for w, w0 in zip(golden.weights, case["weights"]))
    assert changed > 0, "nothing learned: the comparison says little"


def test_spram_check_catches_a_read_in_a_write_back_cycle(monkeypatch):
    """The update walker issuing every cycle on SPRAM (the BRAM schedule) reads in the
    cycles its write-backs need: the bank's check must stop the run."""
    from plasticore.hdl import decolle_passes

    original = decolle_passes.LearningPass.__init__

    def bram_schedule(self, config, layout):
        original(self, config, layout)
        self._single_port = False

    monkeypatch.setattr(decolle_passes.LearningPass, "__init__", bram_schedule)
    rng = np.random.default_rng(9)
    config = random_config(rng).replace(weight_memory="spram")
    case = random_case(config, rng, 30, weight_scale=float(rng.uniform(0.5, 4)))
    with pytest.raises(AssertionError, match="write"):
        run_decolle(config, case)


def test_core_learns_and_saturates_like_golden():
    """Narrow weights, large learning steps: the weights clamp and both flags are set."""
    config = make_config(layers=(6, 5, 3), weight_bits=5, membrane_bits=6, unit_bits=3,
                         trace_bits=5, lr_shifts=[0, 0], error_shifts=[0, 0],
                         refractory_weight=20, surrogate_window=30, readout_amplitude=20.0,
                         init_scale=[1.0, 1.0], learn_bias=True)
    case = random_case(config, np.random.default_rng(9), 25, activity=0.5, weight_scale=3.0)
    golden, run = assert_core_matches(config, case, ready_probability=0.8)
    assert golden.flags == FLAG_MEMBRANE_SATURATED | FLAG_WEIGHT_SATURATED
    low, high = config.weight_range
    assert ((golden.weights[0] == low) | (golden.weights[0] == high)).any()


def test_labels_burn_in_and_learning_switch():
    """Learning happens only with learn = 1, from burn_in on, in ticks that carry a label."""
    config = make_config(layers=(4, 3, 2), lr_shifts=[0, 0], error_shifts=[0, 0],
                         surrogate_window=2000, membrane_bits=14)
    weights = [np.full((4, 3), 40), np.full((3, 2), 30)]
    biases = [np.zeros(3, dtype=np.int64), np.zeros(2, dtype=np.int64)]
    label = 4 + 1
    script = [["write", "burn_in", 2], ["sample"]]
    script += [["tick", [0, 1, 2, 3, label]]] * 2                  # burn-in: no learning
    script += [["tick", [0, 1, 2, 3]]]                             # no label: no learning
    script += [["write", "learn", 0], ["tick", [0, 1, 2, 3, label]]]   # learning off
    golden, _ = assert_core_matches(config, {"weights": weights, "biases": biases,
                                             "script": script})
    np.testing.assert_array_equal(golden.weights[0], weights[0])
    np.testing.assert_array_equal(golden.weights[1], weights[1])
    script += [["write", "learn", 1], ["tick", [0, 1, 2, 3, label]]]   # now it learns
    golden, _ = assert_core_matches(config, {"weights": weights, "biases": biases,
                                             "script": script})
    assert (golden.weights[1] != weights[1]).any()


def test_decolle_layout_keeps_the_inference_addresses():
    for layers in ((64, 100, 10), (5, 7, 3), (13, 2, 9, 4)):
        config = make_config(layers=layers, error_shifts=[1] * (len(layers) - 1),
                             lr_shifts=[1] * (len(layers) - 1),
                             init_scale=[1.0] * (len(layers) - 1))
        core, decolle = CoreLayout(config.replace(rule="none", learning=None)), layout_for(config)
        assert isinstance(decolle, DecolleLayout) and decolle.offset_bits == core.offset_bits
        for lay in core.layers:
            for pre, post in ((0, 0), (lay.n_pre - 1, lay.n_post - 1)):
                assert decolle.weight_address(lay.index, pre, post) == \
                    core.weight_address(lay.index, pre, post)
        for name in ("magic", "tick", "dropped_events", "flags", "layers", "neurons"):
            assert decolle.register_address(name) == core.register_address(name)
    assert (DECOLLE_FLAG_MEMBRANE_SATURATED, DECOLLE_FLAG_WEIGHT_SATURATED) == \
        (FLAG_MEMBRANE_SATURATED, FLAG_WEIGHT_SATURATED)


@pytest.mark.parametrize("lanes", [1, 4])
def test_host_port_of_the_decolle_core(lanes):
    config = make_config(layers=(3, 5, 2), weight_bits=6, learn_bias=True, init_scale=[1.0, 1.0])
    config = config.replace(lanes=lanes)
    core = DecolleCore(config)
    layout = core.layout

    async def bench(ctx):
        host = core.host
        for layer, pre, post, value in ((1, 2, 4, -32), (2, 4, 1, 31)):
            await host_write(ctx, host, layout.weight_address(layer, pre, post), value)
            assert await host_read(ctx, host, layout.weight_address(layer, pre, post)) == value
        await host_write(ctx, host, layout.bias_address(2, 1), -7)
        assert await host_read(ctx, host, layout.bias_address(2, 1)) == -7
        # With lanes, each of these shares its word with the one written: a write touches
        # its own lane only.
        assert await host_read(ctx, host, layout.weight_address(2, 4, 0)) == 0
        assert await host_read(ctx, host, layout.bias_address(2, 0)) == 0
        for name, value in (("learn", 1), ("burn_in", 65535), ("lr_shift_1", 16),
                            ("lr_shift_2", 0)):
            await host_write(ctx, host, layout.register_address(name), value)
            assert await host_read(ctx, host, layout.register_address(name)) == value
        assert await host_read(ctx, host, layout.register_address("lr_shift_1")) == 16
        bad = [
            (layout.weight_address(1, 0, 0), True, 32, "weight above range"),
            (layout.bias_address(1, 0), True, -33, "bias below range"),
            (layout.address(1, (0 << layout.post_bits) | 5), False, 0, "post past layer 1"),
            (layout.address(4, layout.state_words), False, 0, "bias past the last neuron"),
            (layout.membrane_address(1, 0), True, 0, "membrane is read-only"),
            (layout.refractory_address(1, 0), True, 0, "refractory is read-only"),
            (layout.spike_address(1, 0), True, 0, "spikes are read-only"),
            (layout.trace_address(2, 0, "q"), True, 0, "traces are read-only"),
            (layout.address(7, layout.rows), False, 0, "trace past the last row"),
            (layout.register_address("learn"), True, 2, "learn is 0 or 1"),
            (layout.register_address("burn_in"), True, 65536, "burn_in above 16 bits"),
            (layout.register_address("lr_shift_2"), True, 17, "shift above 16"),
            (layout.register_address("tick"), True, 0, "read-only register"),
            (layout.address(0, len(layout.registers)), False, 0, "no such register"),
        ]
        for address, write, value, what in bad:
            _, error = await host_access(ctx, host, address, write, value)
            assert error, what
        assert await host_read(ctx, host, layout.weight_address(1, 0, 0)) == 0
        assert await host_read(ctx, host, layout.bias_address(1, 0)) == 0
        assert await host_read(ctx, host, layout.register_address("learn")) == 1
        assert await host_read(ctx, host, layout.register_address("burn_in")) == 65535
        assert await host_read(ctx, host, layout.register_address("lr_shift_2")) == 0
        return True

    assert simulate(core, bench)


def test_decolle_core_refuses_what_it_cannot_build():
    with pytest.raises(ConfigError, match="label addresses"):
        DecolleCore(make_config(layers=(65530, 2, 10)))
    with pytest.raises(ValueError, match="decolle"):
        DecolleCore(CoreConfig(layers=(3, 2)))


def expected_cycles(config, golden, events, learned, targets):
    """The cycles of a tick as docs/decolle.md gives them: input, then per layer the
    membrane pass (traces in its first group, spikes sent as they are formed), and on
    learning ticks the error and update passes."""
    params = config.learning
    lanes = config.lanes
    # Threefry rounds per stage: one with the weights in block RAM, two in SPRAM.
    per_stage = 1 if config.weight_memory == "bram" else 2
    latency = -(-params.prng_rounds // min(per_stage, params.prng_rounds)) \
        if params.stochastic_rounding else 1
    n_classes = config.layers[-1]
    cycles = len(events) + 2
    for layer, (n_pre, n_post) in enumerate(zip(config.layers, config.layers[1:])):
        groups = -(-n_post // lanes)
        last_group = n_post - (groups - 1) * lanes
        cycles += n_pre + (groups - 1) * max(n_pre, lanes, 3) + last_group + 10
        if not learned:
            continue
        membrane, spikes = golden.U[layer], golden.S[layer]
        flags = golden.flags                # recomputing e_q must not set flags again
        errors = golden.layer_error(layer, spikes, membrane, targets)[0]
        golden.flags = flags
        top = layer == len(config.neuron_layers) - 1
        window = params.surrogate_window
        rows = n_pre + params.learn_bias
        # A group's update, from its hand-over to the end of its last write-back, and how
        # long it keeps the walker from taking the next group.
        update = rows + latency + 5
        if config.weight_memory == "spram":
            # A word read every other cycle, written back in the cycles between; one group
            # at a time.
            update += rows - 1
            occupied = update
        else:
            # The next group's draws follow the last draw of this one.
            occupied = max(rows + 1, latency)
        # Per group of `lanes` neurons (one weight word): its errors (4 cycles per neuron,
        # K + 1 more inside the boxcar below the top) and the hand-over; the update of a
        # group with some nonzero error overlaps the next group's errors.
        handed = busy = finished = 0
        for group in range(groups):
            neurons = list(range(group * lanes, min(n_post, (group + 1) * lanes)))
            inside = (membrane[0, neurons] > -window) & (membrane[0, neurons] <= window)
            errors_cost = 4 * len(neurons) + (0 if top else (n_classes + 3) * int(inside.sum())) + 1
            handed += max(errors_cost, busy)
            busy = occupied if errors[neurons].any() else 0
            if busy:
                finished = handed + update
        cycles += max(handed + 1, finished) + 2
    return cycles


@pytest.mark.parametrize("seed, lanes, memory", [(9, 1, "bram"), (12, 1, "bram"),
                                                 (9, 4, "bram"), (12, 8, "bram"),
                                                 (12, 1, "spram")])
def test_cycles_per_tick_follow_the_documented_formula(seed, lanes, memory):
    rng = np.random.default_rng(seed)
    config = random_config(rng, lanes=lanes).replace(weight_memory=memory)
    case = random_case(config, rng, 25, weight_scale=2.0)
    run = run_decolle(config, case, ready_probability=1.0, read_back=False)
    golden = GoldenDecolle(config, case["weights"], case["biases"])
    n_inputs, n_classes = config.n_inputs, config.layers[-1]
    tick = 0
    learning_ticks = 0
    for step in case["script"]:
        if step[0] != "tick":
            golden_apply(golden, step)
            continue
        events = step[1]
        targets = np.zeros((1, n_classes), dtype=np.int64)
        labels = [a - n_inputs for a in events if n_inputs <= a < n_inputs + n_classes]
        targets[0, labels] = 1
        learned = bool(golden.learning and golden.sample_tick >= golden.burn_in and labels)
        golden_apply(golden, step)
        assert run.tick_cycles[tick] == expected_cycles(config, golden, events, learned, targets), \
            f"tick {tick}"
        learning_ticks += learned
        tick += 1
    assert learning_ticks > 5


def test_a_new_sample_reads_as_zero_and_starts_from_zero():
    """Writing sample_tick zeroes the state the host reads, then the next tick starts from it."""
    rng = np.random.default_rng(12)
    config = random_config(rng)
    case = random_case(config, rng, 12, weight_scale=2.0)
    case["script"].append(["write", "sample_tick", 5])
    golden, run = assert_core_matches(config, case)
    assert all(not values.any() for name in ("membrane", "refractory", "spikes", "trace_q",
                                             "trace_p") for values in run.state[name])
    case["script"].append(["tick", [0, config.n_inputs]])
    assert_core_matches(config, case)


def test_draw_blocks_cover_every_word_the_update_pass_reads():
    """Every word's lanes take their draws from the blocks the pipelines produce, and no
    pipeline is one too many (brute force over every row and group of each network)."""
    for seed in range(40):
        for lanes in (1, 2, 4, 8, 16):
            config = random_config(np.random.default_rng(seed), lanes=lanes)
            layout = layout_for(config)
            offsets = GoldenDecolle(config).offsets
            spans = [((offset + row * lay.n_post + group * lanes) % 4 + lanes - 1) // 4 + 1
                     for offset, lay in zip(offsets, layout.layers)
                     for row in range(lay.n_pre + config.learning.learn_bias)
                     for group in range(lay.row_words)]
            assert draw_blocks(config, layout) == max(spans), (seed, lanes)


def test_digits_network_fits_the_icebreaker_with_its_weights_in_spram():
    """64-100-10: 7400 weights of 12 bits in one SPRAM block, the rest in block RAM within
    the UP5K's 30 EBR; the same network with its weights in block RAM does not fit."""
    from plasticore.boards.build import FitError, check_fit
    from plasticore.boards.platforms import get_board

    config = CoreConfig.from_toml("examples/decolle-digits-icebreaker.toml")
    board = get_board("icebreaker")
    memories = check_fit(config, board)
    spram = [memory for memory in memories if memory["kind"] == "SPRAM"]
    assert [(memory["depth"], memory["blocks"]) for memory in spram] == [(7400, 1)]
    assert sum(memory["blocks"] for memory in memories if memory["kind"] == "BRAM") <= 30
    with pytest.raises(FitError, match="BRAM needs 37"):
        check_fit(config.replace(weight_memory="bram"), board)
