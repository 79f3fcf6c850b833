"""The compiled engine against the NumPy specification, every state compared every tick.

Random configurations (every width, 1-neuron layers, deep nets, both resets, refractory
or not, 1 to 20 Threefry rounds) and random sessions (learning switched on and off, samples
restarting, learning-rate and burn-in changes, duplicate and out-of-range addresses) drive
the NumPy model and the engine side by side. The tests also check that the sessions reach
the corners: every saturation flag is raised somewhere, weights hit both limits.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from plasticore.config import CoreConfig, load_config
from plasticore.golden.engine import (ENGINES, core_model, decolle_model, erbp_core,
                                      inference_core, resolve_engine, unsupported_fields)
from plasticore.golden.erbp import GoldenErbpCore
from plasticore.golden.lif import GoldenCore
from plasticore.layout import (FLAG_ACCUMULATOR_SATURATED, FLAG_DENDRITE_SATURATED,
                               FLAG_ERROR_SATURATED, FLAG_MEMBRANE_SATURATED,
                               FLAG_WEIGHT_SATURATED)
from plasticore.sim.random_case import (apply_erbp_writes, case_weights, random_config,
                                        random_erbp_config, random_erbp_session,
                                        random_event_ticks)

ERBP_FLAGS = (FLAG_ACCUMULATOR_SATURATED | FLAG_MEMBRANE_SATURATED | FLAG_WEIGHT_SATURATED
              | FLAG_DENDRITE_SATURATED | FLAG_ERROR_SATURATED)


def assert_same_state(fast, spec, where: str) -> None:
    """Every state and register of the two models is equal."""
    names = ["membrane", "refractory", "weights"]
    if isinstance(spec, GoldenErbpCore):
        names.append("dendrite")
        assert np.array_equal(fast.error_state, spec.error_state), f"{where}: error_state"
        assert np.array_equal(fast.last_error_spikes, spec.last_error_spikes), \
            f"{where}: error spikes"
        for name in ("sample_tick", "learning_enabled", "burn_in_ticks", "learning_rate_shift"):
            assert getattr(fast, name) == getattr(spec, name), f"{where}: {name}"
    for name in names:
        for layer, (a, b) in enumerate(zip(getattr(fast, name), getattr(spec, name))):
            if not np.array_equal(a, b):
                index = np.argwhere(a != b)[0]
                raise AssertionError(f"{where}: {name}[{layer}]{tuple(index)} is "
                                     f"{a[tuple(index)]}, the specification {b[tuple(index)]}")
    for name in ("tick_count", "dropped_events", "flags"):
        assert getattr(fast, name) == getattr(spec, name), f"{where}: {name}"


def assert_same_spikes(fast_spikes, spec_spikes, where: str) -> None:
    assert len(fast_spikes) == len(spec_spikes), where
    for layer, (a, b) in enumerate(zip(fast_spikes, spec_spikes)):
        assert np.array_equal(a, b), f"{where}: layer {layer + 1} spikes {a} != {b}"


def deep_erbp_config(rng: np.random.Generator) -> CoreConfig:
    """A random eRBP core with three to five neuron layers (some of one neuron)."""
    data = random_erbp_config(rng).to_dict()
    depth = int(rng.integers(3, 6))
    layers = [int(rng.integers(2, 9))] + [int(rng.choice([1, 2, 4, 7, 12]))
                                          for _ in range(depth - 1)] + [int(rng.integers(1, 4))]
    data["layers"] = layers
    data["erbp"]["initial_weight_range"] = [data["erbp"]["initial_weight_range"][0]] * depth
    return CoreConfig.from_dict(data)


def erbp_case(seed: int):
    rng = np.random.default_rng(seed)
    config = deep_erbp_config(rng) if seed % 4 == 3 else random_erbp_config(rng)
    weights = case_weights(config, rng)
    session = random_erbp_session(config, rng, 40, activity=float(rng.uniform(0.2, 0.9)))
    return config, weights, session


def test_engine_names_and_default():
    assert ENGINES == ("fast", "numpy")
    assert resolve_engine(None) == "fast"
    with pytest.raises(ValueError, match="engine = 'gpu'"):
        resolve_engine("gpu")
    config = load_config("examples/inference.toml")
    assert type(core_model(config, engine="numpy")) is GoldenCore
    assert type(inference_core(config)).__name__ == "FastCore"
    # Every example runs on the fast engine (a [data] table included), except recurrent
    # projections, which its kernels do not implement yet.
    from pathlib import Path
    for example in sorted(Path("examples").glob("*.toml")):
        config = load_config(example)
        expected = ["projections"] if config.recurrent else []
        assert unsupported_fields(config) == expected, example


def test_a_field_the_engine_does_not_implement_is_not_run_fast(monkeypatch):
    """A later field of the specification: the default falls back to NumPy with a warning,
    asking for the fast engine is refused with the field's name."""
    config = load_config("examples/inference.toml")
    data = config.to_dict()
    monkeypatch.setattr(type(config), "to_dict", lambda self: {**data, "recurrent": True})
    assert unsupported_fields(config) == ["recurrent"]
    with pytest.warns(UserWarning, match="recurrent"):
        assert type(inference_core(config)) is GoldenCore
    with pytest.raises(ValueError, match="does not implement recurrent"):
        inference_core(config, engine="fast")


@pytest.mark.parametrize("block", range(4))
def test_erbp_tick_by_tick(block):
    """60 random eRBP sessions per block (240 in all), every state compared every tick."""
    flags = 0
    weight_limits = set()
    for seed in range(60 * block, 60 * (block + 1)):
        config, weights, session = erbp_case(seed)
        spec = GoldenErbpCore(config, weights)
        fast = erbp_core(config, weights, engine="fast")
        for tick, (writes, events) in enumerate(session):
            apply_erbp_writes(spec, writes)
            apply_erbp_writes(fast, writes)
            assert_same_spikes(fast.tick(events), spec.tick(events), f"seed {seed} tick {tick}")
            assert_same_state(fast, spec, f"seed {seed} tick {tick}")
        flags |= spec.flags
        low, high = config.weight_range
        for w in spec.weights:
            weight_limits |= {"low"} if (w == low).any() else set()
            weight_limits |= {"high"} if (w == high).any() else set()
    # The sessions reach the corners: every saturation flag, both weight limits.
    assert flags == ERBP_FLAGS, f"flags reached: {flags:#x}"
    assert weight_limits == {"low", "high"}


@pytest.mark.parametrize("row_draws", ["always", "never"])
def test_erbp_row_draw_paths(row_draws):
    """The two ways the kernel draws a delivered row (the whole row in one SIMD pass, or
    only the learning neurons' synapses), each forced on 40 random sessions: both are the
    specification, whatever share of a row learns."""
    from plasticore.golden.engine import _lif_kernel as kernel
    mode = {"always": kernel.ROW_DRAWS_ALWAYS, "never": kernel.ROW_DRAWS_NEVER}[row_draws]
    changed = 0
    for seed in range(1000, 1040):
        config, weights, session = erbp_case(seed)
        initial = [np.array(w) for w in weights]
        spec = GoldenErbpCore(config, weights)
        fast = erbp_core(config, weights, engine="fast")
        fast._constants[kernel.C_ROW_DRAWS] = mode
        for tick, (writes, events) in enumerate(session):
            apply_erbp_writes(spec, writes)
            apply_erbp_writes(fast, writes)
            assert_same_spikes(fast.tick(events), spec.tick(events), f"seed {seed} tick {tick}")
            assert_same_state(fast, spec, f"seed {seed} tick {tick}")
        changed += sum(int((w != w0).sum()) for w, w0 in zip(spec.weights, initial))
    assert changed > 100        # the sessions learn: the draws decide many updates


@pytest.mark.parametrize("block", range(2))
def test_inference_tick_by_tick(block):
    """75 random inference cores per block, every state compared every tick."""
    flags = 0
    resets = set()
    for seed in range(75 * block, 75 * (block + 1)):
        rng = np.random.default_rng(10_000 + seed)
        config = random_config(rng)
        weights = case_weights(config, rng)
        spec, fast = GoldenCore(config, weights), inference_core(config, weights, engine="fast")
        # Bursts well above the threshold reach the saturations.
        for tick, events in enumerate(random_event_ticks(config, rng, 30,
                                                         float(rng.uniform(0.1, 3.0)))):
            assert_same_spikes(fast.tick(events), spec.tick(events), f"seed {seed} tick {tick}")
            assert_same_state(fast, spec, f"seed {seed} tick {tick}")
        flags |= spec.flags
        resets.add(config.reset)
    assert flags == FLAG_ACCUMULATOR_SATURATED | FLAG_MEMBRANE_SATURATED
    assert resets == {"zero", "subtract"}


def test_runs_of_many_ticks_record_every_tick():
    """``run`` (one compiled call for all ticks) returns what the tick-by-tick spec does."""
    for seed in range(20):
        config, weights, session = erbp_case(500 + seed)
        spec, fast = GoldenErbpCore(config, weights), erbp_core(config, weights, engine="fast")
        for model in (spec, fast):
            model.learning_enabled, model.burn_in_ticks = True, 0
        events = [e for _, e in session]
        for tick, (a, b) in enumerate(zip(fast.run(events), spec.run(events))):
            assert_same_spikes(a, b, f"seed {seed} tick {tick}")
        assert_same_state(fast, spec, f"seed {seed} end")


def test_erbp_samples_on_the_digits_example():
    """Whole samples (learning on, then off) of the digits example, as the trainer runs them."""
    from plasticore.datasets import label_spike_train
    config = load_config("examples/erbp-digits.toml")
    params = config.learning
    spec, fast = GoldenErbpCore(config), erbp_core(config, engine="fast")
    rng = np.random.default_rng(1)
    for sample in range(3):
        raster = rng.random((params.ticks_per_sample, config.n_inputs)) < 0.15
        labels = label_spike_train(sample % 10, 10, params.ticks_per_sample, params.label_period)
        spec.learning_rate_shift = fast.learning_rate_shift = params.learning_rate_shift - sample
        assert np.array_equal(fast.run_sample(raster, labels, learn=True),
                              spec.run_sample(raster, labels, learn=True))
        assert_same_state(fast, spec, f"training sample {sample}")
    raster = rng.random((100, config.n_inputs)) < 0.15
    counts, ticks = fast.run_sample_recorded(raster, None, learn=False, count_from=10)
    assert np.array_equal(counts, spec.run_sample(raster, None, learn=False, count_from=10))
    assert_same_state(fast, spec, "test sample")
    assert len(ticks) == 100 and all(len(spikes) == 2 for _, spikes in ticks)


# ---- DECOLLE -----------------------------------------------------------------------------

def assert_same_decolle(fast, spec, where: str) -> None:
    from plasticore.sim.decolle_case import golden_state
    want, have = golden_state(spec), golden_state(fast)
    for name, arrays in want.items():
        for layer, (a, b) in enumerate(zip(have[name], arrays)):
            if not np.array_equal(a, b):
                index = tuple(np.argwhere(a != b)[0])
                raise AssertionError(f"{where}: {name}[{layer}]{index} is {a[index]}, "
                                     f"the specification {b[index]}")
    for name in ("tick_count", "flags", "sample_tick", "dropped_events", "learning", "burn_in",
                 "lr_shifts"):
        assert getattr(fast, name) == getattr(spec, name), f"{where}: {name}"


def narrow_membrane(config: CoreConfig) -> CoreConfig:
    """The DECOLLE ``config`` with the narrowest membrane its weights allow (it saturates)."""
    data = config.to_dict()
    data["membrane_bits"] = bits = config.weight_bits + 2
    high = (1 << (bits - 1)) - 1
    table = data["decolle"]
    table["unit_bits"] = unit = min(table["unit_bits"], bits - 2)
    table["refractory_weight"] = min(table["refractory_weight"], high)
    table["surrogate_window"] = min(table["surrogate_window"], high)
    table["error_shifts"] = [min(s, unit) for s in table["error_shifts"]]
    return CoreConfig.from_dict(data)


@pytest.mark.parametrize("block", range(3))
def test_decolle_tick_by_tick(block):
    """40 random DECOLLE networks and scripts per block (120 in all), every state compared
    after every step: learning on and off, burn-in and learning-rate changes, duplicate,
    second-label and out-of-range events, every switch of the rule."""
    from plasticore.golden.decolle import GoldenDecolle
    from plasticore.sim.decolle_case import golden_apply, random_case, random_config
    flags = 0
    switches = set()
    for seed in range(40 * block, 40 * (block + 1)):
        rng = np.random.default_rng(20_000 + seed)
        config = random_config(rng)
        if seed % 3 == 0:
            config = narrow_membrane(config)
        # Every third case: weights at their limits and busy inputs saturate the membranes.
        strong = seed % 3 == 0
        case = random_case(config, rng, 40, activity=0.9 if strong else 0.3,
                           weight_scale=50.0 if strong else 1.0)
        spec = GoldenDecolle(config, case["weights"], case["biases"])
        fast = decolle_model(config, case["weights"], case["biases"], engine="fast")
        for number, step in enumerate(case["script"]):
            want, have = golden_apply(spec, step), golden_apply(fast, step)
            if want is not None:
                assert_same_spikes(have, want, f"seed {seed} step {number}")
            assert_same_decolle(fast, spec, f"seed {seed} step {number}")
        flags |= spec.flags
        params = config.learning
        switches.add((params.stochastic_rounding, params.learn_bias))
    from plasticore.golden.decolle import FLAG_MEMBRANE_SATURATED as M, FLAG_WEIGHT_SATURATED as W
    assert flags == M | W, f"flags reached: {flags:#x}"
    assert len(switches) == 4


def test_decolle_samples_and_parallel_batches():
    """Whole samples of the digits example: training samples (online) and a batch evaluated
    in parallel give the specification's counts, membrane sums, weights and tick counter."""
    from plasticore.golden.decolle import GoldenDecolle
    config = load_config("examples/decolle-digits.toml")
    spec, fast = GoldenDecolle(config), decolle_model(config, engine="fast")
    rng = np.random.default_rng(2)
    for sample in range(3):
        raster = rng.random((config.learning.ticks_per_sample, config.n_inputs)) < 0.15
        for a, b in zip(fast.run_sample(raster, sample, learn=True),
                        spec.run_sample(raster, sample, learn=True)):
            assert np.array_equal(a, b)
        spec.set_lr_shifts([s + 1 for s in spec.lr_shifts])
        fast.set_lr_shifts(spec.lr_shifts)
    rasters = rng.random((7, 30, config.n_inputs)) < 0.2
    for a, b in zip(fast.run_sample(rasters), spec.run_sample(rasters)):
        assert np.array_equal(a, b)
    assert_same_decolle(fast, spec, "after the batch")


def test_decolle_silent_rows_and_weights_out_of_range():
    """A row whose input never spikes (trace 0) cannot change, so the engine skips it, but
    only while every weight is in range: a weight written out of range through the views
    is clamped by the update, with the weight flag, exactly as the specification does."""
    from plasticore.golden.decolle import FLAG_WEIGHT_SATURATED, GoldenDecolle
    config = load_config("examples/decolle-digits.toml")
    rng = np.random.default_rng(4)
    raster = rng.random((config.learning.ticks_per_sample, config.n_inputs)) < 0.3
    raster[:, :8] = False                        # inputs 0 to 7 never spike: silent rows
    for out_of_range in (False, True):
        spec, fast = GoldenDecolle(config), decolle_model(config, engine="fast")
        if out_of_range:
            high = config.weight_range[1]
            for model in (spec, fast):
                model.weights[0][3, :] = high + 7    # a silent row, beyond the limit
        for label in range(2):
            for a, b in zip(fast.run_sample(raster, label, learn=True),
                            spec.run_sample(raster, label, learn=True)):
                assert np.array_equal(a, b)
        assert_same_decolle(fast, spec, f"out of range: {out_of_range}")
        assert bool(spec.flags & FLAG_WEIGHT_SATURATED) == out_of_range
        if out_of_range:
            assert (spec.weights[0][3] == high).any()   # the update clamped the silent row


def _erbp_state(model) -> list:
    return ([np.concatenate(model.membrane), np.concatenate(model.refractory),
             np.concatenate(model.dendrite), model.error_state.copy(),
             model.last_error_spikes.copy()]
            + [getattr(model, name) for name in ("tick_count", "sample_tick", "flags",
                                                  "dropped_events", "learning_enabled")])


def _same_as_one_after_the_other(config, weights, rasters, workers, warm_up=None):
    """run_samples on ``workers`` cores against a loop of run_sample: the same counts,
    final state and registers. Returns how many samples the speculation got right."""
    sequential = erbp_core(config, weights, engine="fast")
    parallel = erbp_core(config, weights, engine="fast")
    for model in (sequential, parallel):
        model.flags = 0b10000                   # a flag raised before stays raised
        if warm_up is not None:
            labels = np.zeros((len(warm_up), config.layers[-1]), dtype=bool)
            labels[::5, -1] = True
            model.run_sample(warm_up, labels, learn=True)
    want = [sequential.run_sample(r, None, learn=False) for r in rasters]
    have = parallel.run_samples(rasters, workers=workers)
    assert np.array_equal(have, np.array(want).reshape(len(rasters), -1))
    for a, b in zip(_erbp_state(parallel), _erbp_state(sequential)):
        assert np.array_equal(a, b)
    return parallel._taken


def test_erbp_parallel_evaluation_is_the_sequential_one():
    """eRBP does not reset its neurons between samples, so evaluation in parallel must give
    what running the samples one after the other gives: on the digits network (long test
    samples: the speculative ranges agree after their first sample) and on random cores
    with samples of 1 to 80 ticks (start states that differ: samples are run again)."""
    from plasticore.datasets import as_split, load_digits_split
    config = load_config("examples/erbp-digits.toml")
    split = as_split(load_digits_split()).test
    rng = np.random.default_rng(0)
    params = config.learning
    rasters = [split.raster(k, params.test_ticks_per_sample, params.input_rate, rng)
               for k in range(9)]
    for workers in (2, 3):
        # all but the first sample of each speculative range are taken
        speculative = 9 - 9 // workers
        assert (_same_as_one_after_the_other(config, None, rasters, workers)
                == speculative - (workers - 1))
    # After learning, the error and dendrite states keep their history (only the
    # membranes agree): they are replayed from the recorded spikes.
    train = as_split(load_digits_split()).train
    warm_up = np.concatenate([train.raster(k, params.ticks_per_sample, params.input_rate, rng)
                              for k in range(12)])
    assert _same_as_one_after_the_other(config, None, rasters, 2, warm_up) > 0
    taken = run_again = 0
    for seed in range(30):
        config, weights, _ = erbp_case(seed)
        rng = np.random.default_rng(seed)
        activity = rng.uniform(0.2, 0.9)
        rasters = [rng.random((int(rng.integers(1, 80)), config.n_inputs)) < activity
                   for _ in range(int(rng.integers(1, 12)))]
        warm_up = rng.random((20, config.n_inputs)) < activity
        workers = int(rng.integers(2, 5))
        count = _same_as_one_after_the_other(config, weights, rasters, workers, warm_up)
        taken += count
        run_again += len(rasters) - len(rasters) // workers - count
    assert taken > 0 and run_again > 0      # both ways of ending a speculation are tested


def test_compiled_threefry_is_the_reference():
    """The engine's Threefry-2x32 against plasticore.golden.prng, for every round count, on
    arbitrary counters and on a row of consecutive ones."""
    from plasticore.golden.engine._threefry import threefry_row, threefry_words
    from plasticore.golden.prng import threefry2x32
    rng = np.random.default_rng(5)
    counters = rng.integers(-(1 << 40), 1 << 40, size=301)
    word0, word1 = np.empty(301, dtype=np.uint32), np.empty(301, dtype=np.uint32)
    for rounds in range(1, 33):
        key0, key1, counter0 = (int(x) for x in rng.integers(0, 1 << 34, size=3))
        threefry_words(key0, key1, counter0, counters, counters.size, rounds, word0, word1)
        want0, want1 = threefry2x32(key0, key1, counter0, counters, rounds)
        assert np.array_equal(word0, want0) and np.array_equal(word1, want1), rounds
        # a row of consecutive counters, crossing 2**32 (the counter wraps)
        count = int(rng.integers(1, 301))
        first = (1 << 32) - int(rng.integers(0, 2 * count))
        threefry_row(key0, key1, counter0, first, count, rounds, word0, word1)
        want0, want1 = threefry2x32(key0, key1, counter0, first + np.arange(count), rounds)
        assert np.array_equal(word0[:count], want0), rounds
        assert np.array_equal(word1[:count], want1), rounds


@pytest.mark.parametrize("example", ["examples/erbp-digits.toml", "examples/decolle-digits.toml"])
def test_train_gives_the_same_results_on_both_engines(example, tmp_path):
    """``plasticore train --engine fast`` and ``--engine numpy``: the same weights and
    accuracies (two epochs, so the learning-rate schedule and evaluation are crossed)."""
    import json

    from plasticore.cli import main
    results = {}
    for engine in ENGINES:
        out = tmp_path / engine
        assert main(["train", example, "--engine", engine, "--epochs", "2", "--limit-train", "6",
                     "--limit-test", "4", "--no-progress", "-o", str(out),
                     "--json", str(out / "m.json")]) == 0
        metrics = json.loads((out / "m.json").read_text())
        weights = np.load(out / "weights.npz")
        results[engine] = ([(h["train_accuracy"], h["test_accuracy"]) for h in metrics["history"]],
                           metrics["extra"].get("flags"), {k: weights[k] for k in weights.files})
    (acc_fast, flags_fast, w_fast), (acc_spec, flags_spec, w_spec) = results["fast"], results["numpy"]
    assert acc_fast == acc_spec and flags_fast == flags_spec
    assert w_fast.keys() == w_spec.keys()
    assert all(np.array_equal(w_fast[k], w_spec[k]) for k in w_spec)


def test_bench_measures_only_the_specification_where_the_fast_engine_cannot_run():
    """A recurrent config (not in the kernels yet): the bench measures the NumPy model
    alone instead of failing."""
    from plasticore.golden.engine.bench import compare
    config = load_config("examples/recurrent.toml")
    rows = compare(config, ticks=50, numpy_ticks=50)
    assert rows and {row["engine"] for row in rows} == {"numpy"}
    rows = compare(load_config("examples/inference.toml"), ticks=50, numpy_ticks=50)
    assert {row["engine"] for row in rows} == {"fast", "numpy"}
