"""plasticore fuzz: the drawing reaches every field and rule, a slice of the campaign is
bit-exact, and a planted bug is found, shrunk and replayed by plasticore verify."""

import json
import shutil

import numpy as np
import pytest

from plasticore.cli import main
from plasticore.fuzz import FUZZ_RULES, fuzz, random_config, shrink

# Icarus compiles a core in about a second, Verilator in tens: the campaign's choice.
SIMULATOR = "icarus" if shutil.which("iverilog") else "verilator"
BUILD_ROOT = "build/sim"


def test_the_drawing_reaches_every_field_and_rule():
    configs = [random_config(np.random.default_rng([3, k]), FUZZ_RULES[k % 3])
               for k in range(600)]
    for rule in FUZZ_RULES:
        of_rule = [c for c in configs if c.rule == rule]
        assert max(len(c.neuron_layers) for c in of_rule) == 5, rule
        assert {c.reset for c in of_rule} == {"zero", "subtract"}, rule
        assert any(1 in c.layers[1:] for c in of_rule), rule
        assert max(c.refractory_ticks for c in of_rule) == 255, rule
        assert min(c.weight_bits for c in of_rule) == (5 if rule == "decolle" else 2), rule
        assert max(c.weight_bits for c in of_rule) == 16, rule
        assert {c.lanes for c in of_rule} == {1, 2, 4, 8, 16}, rule
    inference = [c for c in configs if c.rule == "none"]
    assert {len(c.neuron_layers) for c in inference} == {1, 2, 3, 4, 5}
    assert any(c.recurrent for c in inference)
    assert max(c.membrane_bits for c in configs) == 32


def test_a_long_campaign_draws_hundreds_of_distinct_configurations(capsys):
    figures = fuzz(10_000, streams_per_config=40, seed=5, draw_only=True)
    assert figures["cases"] == 10_000 and figures["configs"] == 250
    assert figures["distinct_configs"] >= 200
    assert sorted(figures["per_depth"]) == [1, 2, 3, 4, 5]
    assert sorted(figures["per_lanes"]) == [1, 2, 4, 8, 16]
    assert min(figures["per_rule"].values()) >= 3000
    assert main(["fuzz", "--cases", "200", "--streams-per-config", "20", "--stats",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "configurations: 10 (10 distinct)" in out and "by lanes" in out


def test_shrinking_keeps_only_what_the_failure_needs():
    # A stand-in for the simulator: the "core" fails on any tick that holds event 5.
    def run(job):
        for index, stream in enumerate(job["streams"]):
            if any(step[0] == "tick" and 5 in step[1] for step in stream["steps"]):
                return {"stream": index, "what": "output event"}
        return None

    noise = [["write", "flags", 0], ["tick", [1, 2, 3]]]
    job = {"weights": [], "biases": None, "streams": [
        {"steps": noise}, {"steps": noise + [["tick", [4, 5, 6, 7]]] + noise},
        {"steps": noise}]}
    small, mismatch, spent = shrink(None, job, run(job), run, budget=100)
    assert small["streams"] == [{"steps": [["tick", [5]]]}]
    assert mismatch == {"stream": 0, "what": "output event"} and spent <= 100
    # A budget of one run leaves the job as the truncation left it.
    small, _, spent = shrink(None, job, run(job), run, budget=0)
    assert len(small["streams"]) == 2 and spent == 0


@pytest.mark.rtl
def test_a_slice_of_the_campaign_is_bit_exact():
    # A few hundred cases: ten configurations, the rules in turn (none, erbp, decolle, ...).
    figures = fuzz(300, streams_per_config=30, simulator=SIMULATOR, build_root=BUILD_ROOT,
                   seed=2026)
    assert figures["failure"] is None, figures["failure"]["mismatch"]
    assert figures["cases"] == 300 and figures["configs"] == 10
    assert figures["per_rule"] == {"none": 120, "erbp": 90, "decolle": 90}
    assert figures["ticks"] >= figures["cases"]        # every case runs a tick at least


@pytest.mark.rtl
def test_a_planted_bug_is_found_shrunk_and_replayed(tmp_path, capsys):
    # The mutant reports neuron 1 of layer 1 as neuron 0.
    figures = fuzz(400, rules=("none",), streams_per_config=20, simulator=SIMULATOR,
                   build_root=BUILD_ROOT, seed=7, shrink_runs=6, mutant="wrong_spike")
    failure = figures["failure"]
    assert failure is not None, "the campaign missed the planted bug"
    mismatch = failure["mismatch"]
    assert mismatch["what"] == "output event"
    tag = mismatch["expected"][0]
    assert mismatch["expected"] == [tag, 1, 1, 0] and mismatch["got"] == [tag, 1, 0, 0]
    assert failure["config"]["layers"][1] >= 2
    # Shrinking kept only the streams up to the failing one, and spent its budget.
    assert mismatch["stream"] == len(failure["streams"]) - 1
    assert 0 < figures["shrink_runs"] <= 6

    path = tmp_path / "failure.json"
    path.write_text(json.dumps(failure))
    assert main(["verify", str(path), "--simulator", SIMULATOR, "--build-dir", BUILD_ROOT]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "what output event" in out
