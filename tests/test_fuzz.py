"""plasticore fuzz: a slice of the campaign is bit-exact, and a planted bug is found, shrunk
and replayed by plasticore verify."""

import json
import shutil

import pytest

from plasticore.cli import main
from plasticore.fuzz import fuzz

pytestmark = pytest.mark.rtl

# Icarus compiles a core in about a second, Verilator in tens: the campaign's choice.
SIMULATOR = "icarus" if shutil.which("iverilog") else "verilator"
BUILD_ROOT = "build/sim"


def test_a_slice_of_the_campaign_is_bit_exact():
    figures = fuzz(300, streams_per_config=50, simulator=SIMULATOR, build_root=BUILD_ROOT,
                   seed=2026)
    assert figures["failure"] is None, figures["failure"]["mismatch"]
    assert figures["cases"] >= 300 and figures["configs"] == 6
    assert sum(figures["per_rule"].values()) == figures["cases"]
    assert figures["ticks"] >= figures["cases"]        # every case runs a tick at least


def test_a_planted_bug_is_found_shrunk_and_replayed(tmp_path, capsys):
    # The mutant reports neuron 1 of layer 1 as neuron 0.
    figures = fuzz(400, rules=("none",), streams_per_config=20, simulator=SIMULATOR,
                   build_root=BUILD_ROOT, seed=7, shrink_runs=12, mutant="wrong_spike")
    failure = figures["failure"]
    assert failure is not None, "the campaign missed the planted bug"
    mismatch = failure["mismatch"]
    assert mismatch["what"] == "output event"
    tag = mismatch["expected"][0]
    assert mismatch["expected"] == [tag, 1, 1, 0] and mismatch["got"] == [tag, 1, 0, 0]
    assert failure["config"]["layers"][1] >= 2
    # Shrinking kept only the streams up to the failing one.
    assert mismatch["stream"] == len(failure["streams"]) - 1

    path = tmp_path / "failure.json"
    path.write_text(json.dumps(failure))
    assert main(["verify", str(path), "--simulator", SIMULATOR, "--build-dir", BUILD_ROOT]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "what output event" in out
