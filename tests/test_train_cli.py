"""The ``train`` command: outputs, metrics, dispatch and errors (tiny runs only)."""

from __future__ import annotations

import argparse
import json
import sys
import types

import numpy as np
import pytest

from plasticore import train
from plasticore.training import EpochMetrics, TrainResult

SMALL = """
name = "erbp_small"
layers = [64, 12, 10]
weight_bits = 8
membrane_bits = 16
leak_shift = 4
threshold = 500
reset = "zero"
refractory_ticks = 4
seed = 0
rule = "erbp"

[erbp]
ticks_per_sample = 30
test_ticks_per_sample = 30
burn_in_ticks = 5
epochs = 3
initial_weight_range = [16, 4]
"""


def run(argv) -> int:
    """Run the train command through its own parser, as the CLI does."""
    parser = argparse.ArgumentParser(prog="plasticore")
    train.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *argv])
    return args.handler(args)


@pytest.fixture
def small_config(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


@pytest.mark.parametrize("backend", ["golden", "float"])
def test_train_writes_weights_curve_and_metrics(small_config, tmp_path, backend, capsys):
    out = tmp_path / "out"
    metrics_file = tmp_path / "m" / "metrics.json"
    code = run([str(small_config), "--dataset", "digits", "--backend", backend,
                "--epochs", "2", "--limit-train", "6", "--limit-test", "4", "-o", str(out),
                "--json", str(metrics_file), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "train accuracy" in printed and "test accuracy" in printed
    metrics = json.loads(metrics_file.read_text())
    assert metrics["epochs"] == 2 and metrics["backend"] == backend
    for key in ("test_accuracy", "train_accuracy"):
        # Accuracies are fractions of 4 test / 6 training samples.
        denominator = 4 if key == "test_accuracy" else 6
        assert 0 <= metrics[key] <= 1
        assert metrics[key] * denominator == pytest.approx(round(metrics[key] * denominator))
    assert metrics["seconds"] > 0 and len(metrics["history"]) == 2
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    weights = np.load(out / "weights.npz")
    assert weights["w0"].shape == (64, 12) and weights["w1"].shape == (12, 10)
    if backend == "golden":
        assert weights["w0"].dtype.kind == "i"
        assert weights["w0"].min() >= -128 and weights["w0"].max() <= 127
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_output_directory_and_epochs(small_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = run([str(small_config), "--epochs", "1", "--limit-train", "2",
                "--limit-test", "2", "--no-progress"])
    assert code == 0
    assert (tmp_path / "out" / "train-erbp_small" / "weights.npz").exists()


@pytest.mark.rtl
def test_rtl_backend_trains_the_verilog_like_golden(small_config, tmp_path):
    """Training on the simulated RTL gives the golden model's learned weights and metrics
    (the bench also checks every tick against a golden shadow)."""
    from plasticore.config import CoreConfig
    from plasticore.datasets import load_training_split
    from plasticore.train_erbp import fit

    out = tmp_path / "out"
    code = run([str(small_config), "--backend", "rtl", "--epochs", "1", "--limit-train", "3",
                "--limit-test", "2", "-o", str(out), "--no-progress"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "rtl"
    config = CoreConfig.from_toml(small_config)
    golden = fit(config, load_training_split("digits", config), backend="golden", epochs=1,
                 limit_train=3, limit_test=2, progress=False)
    weights = np.load(out / "weights.npz")
    for index, matrix in enumerate(golden.weights):
        np.testing.assert_array_equal(weights[f"w{index}"], matrix)
    assert metrics["test_accuracy"] == golden.final.test_accuracy
    assert metrics["train_accuracy"] == golden.final.train_accuracy
    # 3 training samples, then 2 test and 2 validation samples (the limit applies to both).
    assert metrics["extra"]["ticks"] == 3 * 30 + 2 * 30 + 2 * 30


def test_rtl_backend_is_refused_clearly_for_decolle(capsys):
    code = run(["examples/decolle-digits.toml", "--backend", "rtl"])
    assert code != 0
    assert "--backend rtl" in capsys.readouterr().err


def test_rule_none_is_refused(tmp_path, capsys):
    path = tmp_path / "plain.toml"
    path.write_text('name = "plain"\nlayers = [64, 10]\n')
    assert run([str(path)]) != 0
    assert "does not learn" in capsys.readouterr().err


def test_decolle_dispatches_to_its_trainer(tmp_path, monkeypatch):
    calls = {}

    def fake_fit(config, split, *, backend, epochs=30, seed=0, progress=None):
        calls.update(rule=config.rule, backend=backend, epochs=epochs, n=len(split.test))
        return TrainResult("decolle", backend, [EpochMetrics(1, 0.5, 0.25, 1.0)],
                           [np.zeros((2, 2))])

    monkeypatch.setitem(sys.modules, "plasticore.train_decolle",
                        types.SimpleNamespace(fit=fake_fit))
    from plasticore.config import CoreConfig
    # A valid DECOLLE config: replace() validates the rule's parameters against the shape.
    config = CoreConfig.from_toml("examples/decolle-digits.toml").replace(name="fake")
    monkeypatch.setattr(train, "load_config", lambda path: config)
    out = tmp_path / "d"
    assert run(["whatever.toml", "--backend", "float", "-o", str(out), "--no-progress"]) == 0
    assert calls == {"rule": "decolle", "backend": "float", "epochs": 30, "n": 450}
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == 0.25
