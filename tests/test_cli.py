"""The generate and verify commands, and how the CLI reports bad input."""

import json
import re

import pytest

from plasticore.cli import main


def test_generate_writes_verilog_and_port_description(tmp_path, capsys):
    assert main(["generate", "examples/tiny.toml", "-o", str(tmp_path)]) == 0
    verilog = (tmp_path / "tiny.v").read_text()
    assert "module plasticore_tiny" in verilog
    description = json.loads((tmp_path / "tiny.json").read_text())
    ports = {port["name"]: port for port in description["ports"]}
    # Every described port is in the Verilog module header with its direction.
    for name, port in ports.items():
        assert re.search(rf"\b{port['direction']}\b[^;]*\b{name}\b", verilog), name
    assert ports["i_events__payload"]["width"] == 17
    assert ports["i_events__payload"]["fields"]["end_of_tick"] == {"offset": 16, "width": 1}
    assert ports["o_events__payload"]["fields"]["tick"]["width"] == 32
    assert description["memory_map"]["address_bits"] == ports["host__address"]["width"]


def test_bad_config_exits_2_with_message(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("layers = [2, 2]\nlanes = 3\n")
    assert main(["generate", str(path), "-o", str(tmp_path)]) == 2
    assert "lanes = 3: must be one of 1, 2, 4, 8, 16" in capsys.readouterr().err


@pytest.mark.rtl
def test_verify_prints_bit_exact(capsys):
    assert main(["verify", "examples/tiny.toml", "--ticks", "200", "--seed", "4",
                 "--build-dir", "build/sim"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(r"bit-exact: (\d+) ticks, (\d+) spikes, (\d+) state words compared",
                         line)
    assert match, line
    # tiny: 2 neurons (membrane + refractory), 3 weights, and every register (magic, tick,
    # dropped_events, flags, layers, neurons).
    assert match.group(1) == "200" and match.group(3) == str(2 * 2 + 3 + 6)
