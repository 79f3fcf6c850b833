"""The ``plasticore`` command line.

Each command lives in its own module, which offers ``register(subparsers)``: it adds its
sub-parser(s) and sets ``handler`` to a function ``handler(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .config import ConfigError

#: Modules that register commands, in the order their commands are listed.
COMMAND_MODULES = [
    "plasticore.flow",
    "plasticore.train",
    "plasticore.nir_cli",        # import, export (NIR)
    "plasticore.boards.cli",
    "plasticore.fuzz",
]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="plasticore",
        description="Spiking cores that learn on chip: golden model, RTL, verification, FPGA.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"plasticore: configuration error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # A missing file, a directory given for a file, no permission: one line, not a
        # traceback. Errors of the simulators and tools are reported by their commands.
        if error.filename is None:
            raise
        print(f"plasticore: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
