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
                                      inference_core, resolve_engine)
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
