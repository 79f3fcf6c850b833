"""Synaptic events per second from the bench's cycle counts and a build's clock."""

import json

import pytest

from plasticore.flow import bench_clocks, bench_resources, throughput_rows

#: A build's utilization as build_board writes it (figures made up, in the report's form).
UTILIZATION = {
    "LUT": {"used": 3100, "available": 5280, "cell": "ICESTORM_LC"},
    "FF": {"used": 900, "available": 5280, "cell": "SB_DFF*"},
    "BRAM": {"used": 8, "available": 30, "cell": "ICESTORM_RAM"},
    "SPRAM": {"used": 4, "available": 4, "cell": "ICESTORM_SPRAM"},
    "DSP": {"used": 0, "available": 8, "cell": None},
}


def _report(tmp_path, **fields):
    report = {"board": "icebreaker", "clock_requested_mhz": 12.0, "fmax_mhz": 21.5,
              "timing_met": True, "utilization": UTILIZATION, **fields}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


def test_clocks_come_from_the_report_and_the_command_line(tmp_path):
    clocks = bench_clocks(_report(tmp_path), 50)
    assert [mhz for _, mhz in clocks] == [12.0, 21.5, 50.0]
    assert "timing met" in clocks[0][0] and "Fmax" in clocks[1][0]
    missed = bench_clocks(_report(tmp_path, timing_met=False, fmax_mhz=None))
    assert len(missed) == 1 and "NOT met" in missed[0][0]


@pytest.mark.parametrize("content, message", [
    ("not json", "cannot read"),
    (json.dumps({"board": "x", "fmax_mhz": 3}), "clock_requested_mhz"),
    (json.dumps({"board": "x", "fmax_mhz": 3, "clock_requested_mhz": 12}), "utilization"),
])
def test_a_file_that_is_not_a_build_report_is_refused(tmp_path, content, message):
    path = tmp_path / "report.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        bench_clocks(path)


def test_a_clock_of_zero_is_refused():
    with pytest.raises(ValueError, match="--clock 0"):
        bench_clocks(None, 0)


def test_event_driven_throughput_is_synaptic_events_per_cycle_times_the_clock():
    figures = {"activity": [{"activity": 0.1, "learning": True,
                             "synaptic_events_per_tick": 300.0, "cycles_per_tick": 600.0}],
               "bursts": [{"learning": False, "cycles_per_synaptic_event": 0.25}]}
    rows = throughput_rows(figures, [("clock", 40.0)])
    # 300 events in 600 cycles at 40 MHz: 20 M/s; 4 events per cycle at 40 MHz: 160 M/s.
    assert [row["synaptic_events_per_second"] for row in rows] == [20e6, 160e6]
    assert [row["kind"] for row in rows] == ["activity", "burst"]


def test_a_dense_core_counts_every_synapse_every_tick():
    figures = {"synapses": 7400,
               "activity": [{"activity": 0.2, "learning": False, "cycles_per_tick": 7400.0}]}
    (row,) = throughput_rows(figures, [("clock", 50.0)])
    assert row["synaptic_events_per_second"] == 50e6


def test_bench_refuses_a_throughput_clock_without_the_rtl_measurement(tmp_path, capsys):
    from plasticore.cli import main

    code = main(["bench", "examples/tiny.toml", "--golden-only", "--clock", "50"])
    assert code == 2
    assert "drop --golden-only" in capsys.readouterr().err


def test_the_report_line_gives_every_resource_spram_included(tmp_path):
    assert bench_resources(_report(tmp_path)) == (
        "icebreaker build uses LUT 3100/5280, FF 900/5280, BRAM 8/30, SPRAM 4/4, DSP 0/8")
