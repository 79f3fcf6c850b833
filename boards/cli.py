"""``plasticore build`` and ``plasticore boards``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``build`` and ``boards`` commands."""
    build = subparsers.add_parser(
        "build", help="build a bitstream for a board and report utilization and Fmax",
        description="Synthesize, place and route CONFIG for a board with the open-source "
                    "tools (YoWASP unless YOSYS/NEXTPNR_*/ICEPACK/ECPPACK are set); write "
                    "the bitstream and report.json into DIR.")
    build.add_argument("config", help="core configuration (TOML)")
    build.add_argument("--board", required=True, help="board name (see `plasticore boards`)")
    build.add_argument("-o", "--output", default=None,
                       help="output directory (default: build/CONFIG_BOARD)")
    build.add_argument("--baud", type=int, default=None, help="serial speed (default: the board's)")
    build.add_argument("--clock", type=float, default=None, metavar="MHZ",
                       help="design clock in MHz, made by the PLL (default: the board's)")
    build.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    build.set_defaults(handler=_build)

    boards = subparsers.add_parser("boards", help="list the supported boards")
    boards.set_defaults(handler=_boards)


def _boards(args) -> int:
    from .platforms import BOARDS
    print(f"{'name':<12} {'device':<20} {'clock':>9}  {'LUT':>6} {'BRAM':>5} {'SPRAM':>5}  board")
    for board in BOARDS.values():
        r = board.resources
        print(f"{board.name:<12} {board.device:<20} {board.clock_hz / 1e6:>5.1f} MHz  "
              f"{r['LUT']:>6} {r['BRAM']:>5} {r['SPRAM']:>5}  {board.title}")
    return 0


def _build(args) -> int:
    from plasticore.config import load_config
    from .build import FitError, build_board, format_report
    from .platforms import BoardError

    config = load_config(args.config)
    config.check_size()
    out = Path(args.output or Path("build") / f"{config.name}_{args.board}")
    try:
        clock_hz = args.clock * 1e6 if args.clock else None
        report = build_board(config, args.board, out, baud_rate=args.baud, clock_hz=clock_hz,
                             seed=args.seed)
    except FitError as error:
        print(f"plasticore build: {error}", file=sys.stderr)
        return 3
    except (BoardError, ValueError) as error:     # includes a clock the PLL cannot make
        print(f"plasticore build: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(f"plasticore build: {error.cmd[0] if error.cmd else 'a tool'} failed "
              f"(exit {error.returncode}); the logs are in {out / 'build'}", file=sys.stderr)
        return 1
    print(format_report(report))
    print(f"  report: {out / 'report.json'}")
    if not report["timing_met"]:
        print("plasticore build: timing FAILED at the requested clock", file=sys.stderr)
        return 1
    return 0
