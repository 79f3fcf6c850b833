"""cocotb test: ``plasticore train --backend board`` against the simulated board top.

The whole ``train`` command runs in a thread and reaches the board top (core, host link,
UART) of an eRBP core through ``socket://``, as it would reach a board through a
serial-to-TCP bridge. It trains with ``--check-golden``: a golden model runs in lockstep,
every tick's spikes are compared and, after every training sample, every weight is read back over
the UART and compared. Run by ``tests/test_board_training.py``, which passes:

``PLASTICORE_TB_TRAIN_DIR``  a directory holding ``config.toml`` (and ``init.npz`` to
                             fine-tune from); the command writes its outputs to ``out/``
``PLASTICORE_TB_CLK_PS``, ``PLASTICORE_TB_DIVISOR``  clock period and cycles per UART bit
``PLASTICORE_TB_TRAIN_ARGS`` further ``train`` arguments (JSON list)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb

from plasticore.sim.socket_bridge import serve_over_socket
from plasticore.sim.uart_model import start_board

# The command's modules (scikit-learn, matplotlib among them), imported here rather than in
# the thread, where imports are slow while the simulation runs.
import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402,F401
import plasticore.cli  # noqa: E402,F401
import plasticore.datasets  # noqa: E402,F401
import plasticore.train  # noqa: E402,F401
import plasticore.train_erbp  # noqa: E402,F401

DIRECTORY = Path(os.environ.get("PLASTICORE_TB_TRAIN_DIR", "."))
CLK_PS = int(os.environ.get("PLASTICORE_TB_CLK_PS", "125000"))
DIVISOR = int(os.environ.get("PLASTICORE_TB_DIVISOR", "8"))
EXTRA_ARGS = json.loads(os.environ.get("PLASTICORE_TB_TRAIN_ARGS", "[]"))


@cocotb.test()
async def train_over_the_uart(dut):
    """The train command trains the board top, equal to golden after every training sample."""
    uart = await start_board(dut, CLK_PS, DIVISOR)

    def train(url):
        return plasticore.cli.main(["train", str(DIRECTORY / "config.toml"), "--backend", "board",
                     "--port", url, "--timeout", "120", "--check-golden",
                     "-o", str(DIRECTORY / "out"), "--no-progress", *EXTRA_ARGS])

    code = await serve_over_socket(uart, train)
    assert code == 0, f"plasticore train exited with {code}"
    assert uart.framing_errors == 0
