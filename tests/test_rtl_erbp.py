"""cocotb on the generated Verilog of the eRBP core: learning on, bit for bit against golden.

Random eRBP networks run random sessions (data, labels and out-of-range addresses
interleaved, learning switched on and off, samples restarting, the learning rate and the
burn-in rewritten between ticks) under output back-pressure; spikes are compared every
tick, and every weight, membrane, refractory counter, dendrite, error neuron and register
at the end. A short run of the digits network presents whole training samples and checks
every learned weight.
"""

import os

import numpy as np
import pytest

from plasticore import CoreConfig
from plasticore.datasets import label_spike_train, load_digits_split, rate_encode
from plasticore.golden.erbp import GoldenErbpCore, initial_weights, sample_session
from plasticore.sim.random_case import (apply_erbp_writes, random_erbp_config,
                                        random_erbp_session)
from plasticore.sim.runner import run_case

pytestmark = pytest.mark.rtl

SIMULATOR = os.environ.get("PLASTICORE_SIMULATOR", "verilator")
BUILD_ROOT = os.environ.get("PLASTICORE_BUILD_ROOT", "build/sim")
TICKS = 120


def _state_words(config):
    # Membrane, refractory and dendrite per neuron, every weight, E+ and E- per class,
    # and the registers magic, tick, dropped_events, flags, layers, neurons and the four
    # learning registers.
    return 3 * config.n_neurons + config.n_synapses + 2 * config.layers[-1] + 10


def _case(weights, session, seed, ready_probability=1.0, golden_weights=None):
    return {"weights": weights, "event_ticks": [events for _, events in session],
            "register_writes": [writes for writes, _ in session], "seed": seed,
            "ready_probability": ready_probability, "golden_weights": golden_weights}


def _golden_run(config, weights, session):
    golden = GoldenErbpCore(config, [w.copy() for w in weights])
    for writes, events in session:
        apply_erbp_writes(golden, writes)
        golden.tick(events)
    return golden


def _random_session_learns_bit_exact(config, rng, seed) -> int:
    """Run a random session of ``config`` (weights and events from ``rng``) on the Verilog,
    assert it matches golden; return how many weights golden changed."""
    weights = [rng.integers(-r, r + 1, size=w.shape)
               for r, w in zip(config.learning.initial_weight_range, initial_weights(config))]
    session = random_erbp_session(config, rng, TICKS, activity=float(rng.uniform(0.2, 0.6)))
    result = run_case(config, _case(weights, session, seed=seed,
                                    ready_probability=float(rng.uniform(0.4, 1.0))),
                      simulator=SIMULATOR, build_root=BUILD_ROOT)
    assert result["mismatch"] is None, result["mismatch"]
    assert result["ticks"] == TICKS
    assert result["state_words"] == _state_words(config)
    golden = _golden_run(config, weights, session)
    return sum(int((a != b).sum()) for a, b in zip(weights, golden.weights))


# Keys whose draws cover a 20-, a 1- and a 13-round rounding pipeline.
@pytest.mark.parametrize("key", [1, 6, 9])
def test_random_learning_networks_bit_exact(key):
    config = random_erbp_config(np.random.default_rng(key), name=f"erbp{key}")
    learned = sum(_random_session_learns_bit_exact(config, np.random.default_rng([key, draw]),
                                                   seed=key * 10 + draw)
                  for draw in range(2))
    # Weights that never changed would leave the learning path unchecked.
    assert learned > 0


# Several lanes: every lane draws and learns in the same cycle; golden knows no lanes.
@pytest.mark.parametrize("key, lanes, memory", [(4, 4, "bram"), (11, 2, "bram"),
                                                (9, 16, "bram"), (4, 2, "spram")])
def test_random_learning_networks_with_lanes_bit_exact(key, lanes, memory):
    """Several lanes (and, on single-port SPRAM, a word every other cycle)."""
    suffix = "_spram" if memory == "spram" else ""
    config = random_erbp_config(np.random.default_rng(key),
                                name=f"erbp{key}_lanes{lanes}{suffix}",
                                lanes=lanes).replace(weight_memory=memory)
    assert _random_session_learns_bit_exact(config, np.random.default_rng([key, lanes]),
                                            seed=key) > 0


def test_checker_reports_a_learning_difference():
    """The golden model starting from one different weight must be caught."""
    config = random_erbp_config(np.random.default_rng(9), name="erbp9")
    rng = np.random.default_rng(99)
    weights = initial_weights(config)
    session = random_erbp_session(config, rng, 60, activity=0.5)
    golden_weights = [w.copy() for w in weights]
    golden_weights[-1][0, 0] += 1 if golden_weights[-1][0, 0] < 0 else -1
    result = run_case(config, _case(weights, session, seed=1, golden_weights=golden_weights),
                      simulator=SIMULATOR, build_root=BUILD_ROOT)
    assert result["mismatch"] is not None


def test_digits_samples_learn_bit_exact():
    """Two whole training samples and one test sample of the default digits network:
    every learned weight in RTL equals golden."""
    config = CoreConfig.from_toml("examples/erbp-digits.toml")
    params = config.learning
    split = load_digits_split()
    rng = np.random.default_rng(3)
    # A short sample keeps the run short; the burn-in and the label train are the config's.
    ticks = 60
    session = [([("learning_rate_shift", params.learning_rate_shift)], np.array([], int))]
    for index in range(2):
        raster = rate_encode(split.x_train[index], ticks, params.input_rate, rng)
        labels = label_spike_train(int(split.y_train[index]), config.layers[-1], ticks,
                                   params.label_period)
        session += sample_session(config.n_inputs, raster, labels, learn=True)
    raster = rate_encode(split.x_test[0], ticks, params.input_rate, rng)
    session += sample_session(config.n_inputs, raster, learn=False)
    weights = initial_weights(config)
    result = run_case(config, _case(weights, session, seed=0),
                      simulator=SIMULATOR, build_root=BUILD_ROOT)
    assert result["mismatch"] is None, result["mismatch"]
    assert result["state_words"] == _state_words(config)
    golden = _golden_run(config, weights, session)
    changed = sum(int((a != b).sum()) for a, b in zip(weights, golden.weights))
    assert changed > 100, f"only {changed} weights learned"
