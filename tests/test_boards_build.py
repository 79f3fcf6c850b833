"""Board tops, the build flow's checks and report parsing, and (marked ``synth``) a real build.

The ``synth`` tests run Yosys and nextpnr (YoWASP) on examples/inference.toml and
examples/mnist-inference-icebreaker.toml (weights in SPRAM) for the iCEBreaker: a minute
or two; select it with ``-m synth`` or leave it out with ``-m "not synth"``.
"""

import json
from pathlib import Path

import pytest

from plasticore.boards.build import (FitError, check_fit, parse_nextpnr_report,
                                     parse_yosys_cells, placement_overflow)
from plasticore.boards.platforms import BOARDS, BoardError, get_board
from plasticore.boards.top import BoardTop, board_pll, ecp5_pll_params, ice40_pll_params
from plasticore.cli import main
from plasticore.config import CoreConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_pll_settings_by_hand():
    # iCE40: 12 MHz * (63 + 1) / (0 + 1) = 768 MHz VCO, / 2**4 = 48 MHz (icepll's answer).
    assert ice40_pll_params(12e6, 48e6) == {"DIVR": 0, "DIVF": 63, "DIVQ": 4,
                                             "FILTER_RANGE": 1, "frequency": 48e6}
    # ECP5: 25 MHz / 1 * 2 = 50 MHz, VCO 50 * 12 = 600 MHz (the middle of 400-800).
    params = ecp5_pll_params(25e6, 50e6)
    assert (params["CLKI_DIV"], params["CLKFB_DIV"], params["CLKOP_DIV"],
            params["frequency"]) == (1, 2, 12, 50e6)


def test_unknown_board_is_named():
    with pytest.raises(BoardError, match="board = 'de0'.*icebreaker"):
        get_board("de0")


def test_config_too_big_for_the_icebreaker_is_refused_before_synthesis():
    # 1024 x 1024 weights of 8 bits is 8 Mbit; the UP5K has 30 x 4 kbit EBR.
    config = CoreConfig(layers=(1024, 1024), weight_bits=8, lanes=1, name="huge")
    with pytest.raises(FitError) as raised:
        check_fit(config, get_board("icebreaker"))
    message = str(raised.value)
    assert "BRAM" in message and "icebreaker" in message
    needed = int(message.split("needs ")[1].split()[0])
    # The weights alone: 1M words of 8 bits in 512 x 8 blocks.
    assert needed >= 1024 * 1024 // 512
    assert f"({needed - 30} too many" in message


def test_inference_fits_every_board():
    config = load_config(ROOT / "examples" / "inference.toml")
    for board in BOARDS.values():
        memories = check_fit(config, board)
        names = {memory["name"] for memory in memories}
        assert "link.buffer" in names and any(n.startswith("core.") for n in names)


def test_nextpnr_report_parsing():
    sample = {
        "utilization": {"ICESTORM_LC": {"available": 5280, "used": 2582},
                        "ICESTORM_RAM": {"available": 30, "used": 12},
                        "ICESTORM_SPRAM": {"available": 4, "used": 0},
                        "ICESTORM_DSP": {"available": 8, "used": 0}},
        "fmax": {"clk": {"achieved": 18.391, "constraint": 12.0},
                 "pll_clk": {"achieved": 40.0, "constraint": 48.0}},
    }
    path = Path(__file__).parent / "_nextpnr_sample.json"
    try:
        path.write_text(json.dumps(sample))
        parsed = parse_nextpnr_report(path, "ice40")
    finally:
        path.unlink()
    assert parsed["utilization"]["LUT"] == {"used": 2582, "available": 5280,
                                            "cell": "ICESTORM_LC"}
    assert parsed["utilization"]["BRAM"]["used"] == 12
    assert parsed["clocks"]["clk"] == {"nextpnr_mhz": 18.39, "achieved_mhz": 18.39,
                                       "constraint_mhz": 12.0, "met": True}
    assert parsed["clocks"]["pll_clk"]["met"] is False


def _path(source, sink, *delays):
    return {"from": source, "to": sink, "path": [{"delay": delay} for delay in delays]}


@pytest.mark.parametrize("halves, want_mhz, limited", [
    # 30 + 20 ns through the DSP block: 20 MHz, below nextpnr's 25.
    ((20.0, 10.0, 15.0, 5.0), 20.0, True),
    # 10 + 10 ns: the real clock's 40 ns path (25 MHz) stays the limit.
    ((6.0, 4.0, 5.0, 5.0), 25.0, False),
])
def test_nextpnr_report_bounds_paths_through_unregistered_dsp(tmp_path, halves, want_mhz,
                                                              limited):
    into = halves[:2]
    out_of = halves[2:]
    sample = {
        "utilization": {"ICESTORM_LC": {"available": 5280, "used": 4000}},
        "fmax": {"clk": {"achieved": 25.0, "constraint": 24.0}},
        "critical_paths": [
            _path("posedge clk", "posedge clk", 30.0, 10.0),
            _path("posedge clk", "posedge $PACKER_GND_NET_$glb_clk", *into),
            _path("posedge $PACKER_GND_NET_$glb_clk", "posedge clk", *out_of),
            _path("<async>", "posedge clk", 3.0),
        ],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(sample))
    clock = parse_nextpnr_report(path, "ice40")["clocks"]["clk"]
    assert clock["nextpnr_mhz"] == 25.0
    assert clock["achieved_mhz"] == pytest.approx(want_mhz)
    assert clock["met"] is (want_mhz >= 24.0)
    assert ("limited_by" in clock) is limited


def test_yosys_statistics_parsing(tmp_path):
    log = tmp_path / "top.rpt"
    log.write_text("""
2.50. Printing statistics.

=== top ===

   Number of cells:               4000
       2   SB_RAM40_4K
       9   SB_RAM40_4K
    1988   SB_LUT4
     639   SB_CARRY
    1400   SB_DFF
      12   SB_DFFE
""")
    cells = parse_yosys_cells(log)
    assert cells["SB_RAM40_4K"] == 2 or cells["SB_RAM40_4K"] == 9
    assert cells["SB_LUT4"] == 1988 and cells["SB_DFF*"] == 1412


def test_placement_overflow_from_a_failed_nextpnr_log(tmp_path):
    log = tmp_path / "top.tim"
    log.write_text("Info: Device utilisation:\n"
                   "Info: \t              DP16KD:      57/     56   101%\n"
                   "Info: \t          MULT18X18D:       1/     28     3%\n"
                   "ERROR: Unable to place cell 'weights.0.40', no BELs remaining\n")
    assert placement_overflow(log) == "DP16KD needs 57, the device has 56 (1 too many)"
    log.write_text("Info: \t          MULT18X18D:       1/     28     3%\n")
    assert placement_overflow(log) is None


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_top_elaborates_with_its_pins(board):
    """Prepare the build files (no tools run): pins, clock, PLL and constraints resolve."""
    spec = get_board(board)
    config = CoreConfig.from_toml(ROOT / "examples" / "tiny.toml")
    top = BoardTop(config, spec)
    plan = spec.platform().build(top, name="top", do_build=False)
    files = plan.files
    constraints = files.get("top.pcf") or files.get("top.lpf")
    assert constraints and "uart" in constraints
    if top.pll is not None:
        assert ("EHXPLLL" if spec.family == "ecp5" else "SB_PLL40") in files["top.il"]
    assert top.clock_hz == pytest.approx(spec.clock_hz, rel=0.01)


def test_boards_command_lists_the_boards(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    for name in ("icebreaker", "ulx3s-85f", "orangecrab"):
        assert name in out


def test_build_command_refuses_a_config_that_does_not_fit(tmp_path, capsys):
    config = tmp_path / "huge.toml"
    config.write_text('name = "huge"\nlayers = [1024, 1024]\n')
    assert main(["build", str(config), "--board", "icebreaker", "-o", str(tmp_path)]) == 3
    assert "BRAM needs" in capsys.readouterr().err


@pytest.mark.synth
def test_icebreaker_build_meets_timing(tmp_path):
    out = tmp_path / "icebreaker"
    code = main(["build", str(ROOT / "examples" / "inference.toml"), "--board", "icebreaker",
                 "-o", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert code == 0, report
    assert Path(report["bitstream"]).stat().st_size > 100_000     # UP5K images are ~104 kB
    assert report["utilization"]["LUT"]["used"] > 0
    assert report["utilization"]["BRAM"]["used"] > 0
    assert report["timing_met"] and report["fmax_mhz"] >= 12.0


@pytest.mark.synth
def test_icebreaker_build_with_weights_in_spram_meets_timing(tmp_path):
    # 101,632 weights: 199 EBR in block RAM, so the build stands only if SPRAM holds them.
    out = tmp_path / "mnist"
    code = main(["build", str(ROOT / "examples" / "mnist-inference-icebreaker.toml"),
                 "--board", "icebreaker", "-o", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert code == 0, report
    assert report["utilization"]["SPRAM"] == {"used": 4, "available": 4,
                                              "cell": "ICESTORM_SPRAM"}
    assert report["synthesis_cells"]["SB_SPRAM256KA"] == 4
    assert report["utilization"]["BRAM"]["used"] <= 30
    assert report["timing_met"] and report["fmax_mhz"] >= 12.0


def test_clock_override_goes_through_the_pll(tmp_path, capsys):
    spec = get_board("ulx3s-85f")
    config = CoreConfig.from_toml(ROOT / "examples" / "tiny.toml")
    pll = board_pll(spec, 30e6)
    # 25 MHz / 5 * 6 = 30 MHz, VCO 30 * 20 = 600 MHz.
    assert (pll["CLKI_DIV"], pll["CLKFB_DIV"], pll["CLKOP_DIV"]) == (5, 6, 20)
    assert main(["build", str(ROOT / "examples" / "tiny.toml"), "--board", "icebreaker",
                 "--clock", "2000", "-o", str(tmp_path)]) == 2
    assert "no iCE40 PLL setting makes 2000 MHz" in capsys.readouterr().err


def test_weights_in_spram_are_counted_as_spram_blocks_not_ebr():
    config = load_config(ROOT / "examples" / "mnist-inference-icebreaker.toml")
    memories = check_fit(config, get_board("icebreaker"))
    spram = [memory for memory in memories if memory["kind"] == "SPRAM"]
    # 50,816 words of two 8-bit weights: three full blocks and 1,664 words of a fourth.
    assert [memory["depth"] for memory in spram] == [16384, 16384, 16384, 1664]
    assert sum(memory["blocks"] for memory in spram) == 4
    assert sum(memory["blocks"] for memory in memories if memory["kind"] == "BRAM") <= 30
    # The same network in block RAM does not fit: 50,816 x 16 bits is 199 EBR.
    with pytest.raises(FitError, match="core.weights.memory \\(50816 x 16 bits, 199 blocks\\)"):
        check_fit(config.replace(weight_memory="bram"), get_board("icebreaker"))


def test_weights_in_spram_are_refused_on_a_board_without_it():
    config = load_config(ROOT / "examples" / "mnist-inference-icebreaker.toml")
    with pytest.raises(FitError, match="weight_memory = 'spram': ulx3s-85f .* has no SPRAM; "
                                       "boards with SPRAM \\(iCE40UP\\): icebreaker"):
        check_fit(config, get_board("ulx3s-85f"))
