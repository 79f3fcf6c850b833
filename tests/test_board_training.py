"""``train --backend board`` end to end: the train command drives the simulated board top
of an eRBP core over a socket (sim/board_train_tb.py), checked against golden after every
sample; here the outcome is compared with training the golden model directly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plasticore.config import CoreConfig
from plasticore.datasets import load_training_split
from plasticore.train_erbp import fit
from plasticore.weights_file import load_weights, save_weights
from test_board_top_rtl import BAUD, CLK_HZ, build_board_top

pytestmark = pytest.mark.rtl

# Digits in, four hidden neurons, ten classes: the smallest eRBP core that trains on them.
CONFIG_TOML = """
name = "erbp_board"
layers = [64, 4, 10]
weight_bits = 8
membrane_bits = 16
leak_shift = 4
threshold = 500
refractory_ticks = 4
rule = "erbp"

[erbp]
ticks_per_sample = 10
test_ticks_per_sample = 10
burn_in_ticks = 2
initial_weight_range = [16, 4]
"""
LIMITS = ["--epochs", "1", "--limit-train", "2", "--limit-test", "1", "--seed", "4"]


def test_train_on_the_board_top_equals_golden(tmp_path):
    from cocotb_tools.runner import get_results
    (tmp_path / "config.toml").write_text(CONFIG_TOML)
    config = CoreConfig.from_toml(tmp_path / "config.toml")
    # Fine-tune from given weights, as `train --init` does: strong enough to spike.
    rng = np.random.default_rng(5)
    start = [rng.integers(-40, 80, size=(64, 4)), rng.integers(-60, 60, size=(4, 10))]
    save_weights(tmp_path / "init.npz", start)

    runner, build_dir = build_board_top("board_train", config)
    results = runner.test(
        test_module="plasticore.sim.board_train_tb", hdl_toplevel="link_top",
        build_dir=build_dir, test_dir=build_dir, timescale=("1ns", "1ps"),
        extra_env={
            "PLASTICORE_TB_TRAIN_DIR": str(tmp_path),
            # Rewrite the asserts of the testbench only, not of every module the
            # train command imports (scikit-learn, matplotlib): much faster to start.
            "COCOTB_REWRITE_ASSERTION_FILES": "board_train_tb.py",
            "PLASTICORE_TB_CLK_PS": str(round(1e12 / CLK_HZ)),
            "PLASTICORE_TB_DIVISOR": str(CLK_HZ // BAUD),
            "PLASTICORE_TB_TRAIN_ARGS": json.dumps(
                [*LIMITS, "--init", str(tmp_path / "init.npz")]),
        })
    tests, failed = get_results(results)
    assert tests == 1 and failed == 0, f"the board training failed; see {results}"

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["backend"] == "board"
    golden = fit(config, load_training_split("digits", config), backend="golden", epochs=1,
                 limit_train=2, limit_test=1, seed=4, progress=False, init_weights=start)
    learned = load_weights(tmp_path / "out" / "weights.npz", config)
    for got, want in zip(learned, golden.weights):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(got, before) for got, before in zip(learned, start)), \
        "no weight changed: the run proves little about learning"
    assert metrics["test_accuracy"] == golden.final.test_accuracy
    assert metrics["train_accuracy"] == golden.final.train_accuracy
