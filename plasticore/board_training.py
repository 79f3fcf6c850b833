"""Train an eRBP core on a board (``train --backend board``), over its UART.

:class:`BoardErbpModel` gives a :class:`plasticore.host.BoardCore` the model API the eRBP
trainer uses (``run_sample``, ``learning_rate_shift``, ``read_weights``, ``flags``), so
:func:`plasticore.train_erbp.fit` trains the chip exactly as it trains the golden model:
per sample, the host writes ``sample_tick = 0`` and ``learning_enabled``, sends each tick's
data and label events, reads the spikes back, and switches learning off again.

With ``check_golden`` a golden model runs in lockstep: every tick's spikes are compared,
and after every training sample every weight is read back from the board and compared
(slow on a real UART, made for tests and bring-up). A difference raises :class:`BoardMismatch`.
"""

from __future__ import annotations

import numpy as np

from .config import CoreConfig
from .golden.erbp import GoldenErbpCore, initial_weights, sample_events
from .layout import REGION_DENDRITE, REGION_ERROR
from .rules import rule_params

__all__ = ["BoardErbpModel", "BoardMismatch"]


class BoardMismatch(RuntimeError):
    """The board's spikes or weights differ from the golden model's."""


class BoardErbpModel:
    """An eRBP core behind a host link, with the eRBP trainer's model API.

    Parameters
    ----------
    board : plasticore.host.BoardCore
        Connected to a core built with ``rule = "erbp"`` from ``config``.
    config : CoreConfig
    weights : list of array_like, optional
        Starting weights (default: the rule's random initial weights), loaded on connection.
    check_golden : bool
        Run a golden model in lockstep; compare spikes every tick, weights after every training sample.
    """

    def __init__(self, board, config: CoreConfig, weights=None, *, check_golden: bool = False):
        self.board = board
        self.config = config
        self.params = rule_params(config, "erbp", "training on a board")
        self.layout = board.layout
        weights = initial_weights(config) if weights is None else weights
        self.golden = GoldenErbpCore(config, weights) if check_golden else None
        self.samples = 0
        board.clear_state()
        board.load_weights(weights)
        self._write("burn_in_ticks", self.params.burn_in_ticks)
        self._learning_rate_shift = self.params.learning_rate_shift
        self._write("learning_rate_shift", self._learning_rate_shift)
        # A reset clears registers, not memories: start dendrites and error neurons at zero
        # too, as a fresh golden model does.
        board.write_words(self.layout.address(REGION_DENDRITE, 0), [0] * self.layout.state_words)
        board.write_words(self.layout.address(REGION_ERROR, 0), [0] * self.layout.error_neurons)
        if self.golden is not None:
            # The rounding draws depend on the tick counter, which only a reset clears.
            self.golden.tick_count = board.tick_count

    def _write(self, register: str, value: int) -> None:
        self.board.write_words(self.layout.register_address(register), [int(value)])

    @property
    def learning_rate_shift(self) -> int:
        """The core's learning-rate shift register (the trainer lowers the rate per epoch)."""
        return self._learning_rate_shift

    @learning_rate_shift.setter
    def learning_rate_shift(self, value: int) -> None:
        self._write("learning_rate_shift", value)
        self._learning_rate_shift = int(value)
        if self.golden is not None:
            self.golden.learning_rate_shift = int(value)

    @property
    def flags(self) -> int:
        """The board's sticky saturation flags."""
        return self.board.flags

    def read_weights(self) -> list[np.ndarray]:
        """Read every weight from the board."""
        return self.board.read_weights()

    def run_sample(self, raster, label_raster=None, *, learn: bool,
                   count_from: int | None = None) -> np.ndarray:
        """Present one sample on the board; return the prediction layer's spike counts."""
        if count_from is None:
            count_from = self.params.burn_in_ticks
        golden = self.golden
        self._write("sample_tick", 0)
        self._write("learning_enabled", int(learn))
        if golden is not None:
            golden.start_sample()
            golden.learning_enabled = learn
        counts = np.zeros(self.config.layers[-1], dtype=np.int64)
        for t, events in enumerate(sample_events(self.config.n_inputs, raster, label_raster)):
            spikes = self.board.tick(events)
            if golden is not None:
                expected = golden.tick(events)
                for layer, (got, want) in enumerate(zip(spikes, expected), 1):
                    if not np.array_equal(got, want):
                        raise BoardMismatch(f"sample {self.samples}, tick {t}, layer {layer}: "
                                            f"the board spiked {got.tolist()}, golden "
                                            f"{want.tolist()}")
            if t >= count_from:
                counts[spikes[-1]] += 1
        self._write("learning_enabled", 0)
        if golden is not None:
            golden.learning_enabled = False
            if learn:
                self._compare_weights()
        self.samples += 1
        return counts

    def _compare_weights(self) -> None:
        for layer, (got, want) in enumerate(zip(self.board.read_weights(), self.golden.weights),
                                            1):
            if not np.array_equal(got, want):
                pre, post = np.argwhere(got != want)[0]
                raise BoardMismatch(f"after sample {self.samples}: weight ({pre}, {post}) of "
                                    f"projection {layer} is {int(got[pre, post])} on the "
                                    f"board, {int(want[pre, post])} in golden")
