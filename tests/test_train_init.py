"""``train --init W``: fine-tuning starts from the given weights (tiny runs only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plasticore.config import CoreConfig
from plasticore.datasets import load_training_split
from plasticore.golden.erbp import initial_weights
from plasticore.train_erbp import fit
from plasticore.weights_file import load_weights, save_weights
from test_train_cli import SMALL, run

OPTIONS = ["--epochs", "1", "--limit-train", "3", "--limit-test", "3", "--no-progress"]


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path, CoreConfig.from_toml(path)


def pretrained(config):
    """Weights unlike the rule's initial ones: larger, and of another draw."""
    rng = np.random.default_rng(11)
    return [rng.integers(-60, 61, size=w.shape) for w in initial_weights(config)]


@pytest.mark.parametrize("backend", ["golden", "float"])
def test_init_weights_are_where_training_starts(small, tmp_path, backend):
    path, config = small
    start = pretrained(config)
    save_weights(tmp_path / "start.npz", start)
    out = tmp_path / "tuned"
    assert run([str(path), "--backend", backend, "--init", str(tmp_path / "start.npz"),
                "-o", str(out), *OPTIONS]) == 0
    digits = load_training_split("digits", config)
    expected = fit(config, digits, backend=backend, epochs=1, limit_train=3, limit_test=3,
                   progress=False, init_weights=start)
    from_random = fit(config, digits, backend=backend, epochs=1, limit_train=3, limit_test=3,
                      progress=False)
    tuned = load_weights(out / "weights.npz", integer=backend == "golden")
    for got, want, other in zip(tuned, expected.weights, from_random.weights):
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, other)
    # Three samples move few weights: the result stays near where it started.
    assert np.abs(tuned[1] - start[1]).mean() < np.abs(start[1]).mean() / 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["init"] == str(tmp_path / "start.npz")
    # The accuracy fine-tuning starts from: the given weights, evaluated untrained.
    from plasticore.train_erbp import evaluate, make_model
    untrained = evaluate(make_model(config, backend, weights=start),
                         digits.limited(None, 3).test, seed=0)
    assert metrics["extra"]["initial_test_accuracy"] == untrained == \
        expected.extra["initial_test_accuracy"]


def test_init_file_that_does_not_fit_the_core_is_refused(small, tmp_path, capsys):
    path, config = small
    save_weights(tmp_path / "wrong.npz", [np.zeros((64, 13), dtype=np.int64),
                                          np.zeros((13, 10), dtype=np.int64)])
    assert run([str(path), "--init", str(tmp_path / "wrong.npz"), *OPTIONS]) == 2
    error = capsys.readouterr().err
    assert "wrong.npz" in error and "shape (64, 13), expected (64, 12)" in error
    save_weights(tmp_path / "wide.npz", [np.full((64, 12), 300), np.zeros((12, 10))])
    assert run([str(path), "--init", str(tmp_path / "wide.npz"), *OPTIONS]) == 2
    assert "[-128, 127] for weight_bits = 8" in capsys.readouterr().err


@pytest.mark.rtl
def test_init_weights_train_on_the_rtl_like_golden(small, tmp_path):
    """--init reaches the simulated Verilog too: its learned weights equal golden's."""
    path, config = small
    start = pretrained(config)
    save_weights(tmp_path / "start.npz", start)
    out = tmp_path / "rtl"
    assert run([str(path), "--backend", "rtl", "--init", str(tmp_path / "start.npz"),
                "-o", str(out), "--epochs", "1", "--limit-train", "2", "--limit-test", "1",
                "--no-progress"]) == 0
    golden = fit(config, load_training_split("digits", config), backend="golden", epochs=1,
                 limit_train=2, limit_test=1, progress=False, init_weights=start)
    tuned = load_weights(out / "weights.npz", config)
    for got, want in zip(tuned, golden.weights):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(got, before) for got, before in zip(tuned, start))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["extra"]["initial_test_accuracy"] == golden.extra["initial_test_accuracy"]
