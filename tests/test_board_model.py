"""The board trainer's host side (:class:`plasticore.board_training.BoardErbpModel`) against
a stand-in board: the golden model behind BoardCore's methods and the host register map.
Fast; the real gateware over a socket is tests/test_board_training.py."""

from __future__ import annotations

import numpy as np
import pytest

from plasticore.board_training import BoardErbpModel, BoardMismatch
from plasticore.config import CoreConfig
from plasticore.datasets import load_digits_split
from plasticore.golden.erbp import GoldenErbpCore
from plasticore.layout import CoreLayout, REGION_REGISTERS
from plasticore.train_erbp import fit
from test_board_training import CONFIG_TOML


class StandInBoard:
    """BoardCore's methods over a golden eRBP core; register writes as the hardware takes
    them. ``flip_after`` corrupts one weight after that many ticks (a faulty board)."""

    def __init__(self, config, flip_after=None):
        self.layout = CoreLayout(config)
        self.core = GoldenErbpCore(config)
        self.names = {offset: name for name, offset in self.layout.registers.items()}
        self.flip_after = flip_after
        self.writes = []

    def clear_state(self):
        self.writes.append("clear_state")

    def load_weights(self, weights):
        self.core.load_weights(weights)

    def write_words(self, address, words):
        if address >> self.layout.offset_bits != REGION_REGISTERS:
            return                                  # dendrites and error neurons: zero already
        name = self.names[address & ((1 << self.layout.offset_bits) - 1)]
        self.writes.append((name, words[0]))
        if name == "sample_tick":
            self.core.start_sample()
        elif name == "learning_enabled":
            self.core.learning_enabled = bool(words[0])
        else:
            setattr(self.core, name, words[0])

    @property
    def tick_count(self):
        return self.core.tick_count

    @property
    def flags(self):
        return self.core.flags

    def tick(self, events):
        spikes = self.core.tick(events)
        if self.flip_after is not None and self.core.tick_count == self.flip_after:
            self.core.weights[0][3, 1] += 1
        return spikes

    def read_weights(self):
        return self.core.read_weights()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(CONFIG_TOML)
    return CoreConfig.from_toml(path)


def start_weights():
    rng = np.random.default_rng(5)
    return [rng.integers(-40, 80, size=(64, 4)), rng.integers(-60, 60, size=(4, 10))]


def test_board_training_runs_the_golden_session(config):
    split = load_digits_split()
    board = StandInBoard(config)
    model = BoardErbpModel(board, config, start_weights(), check_golden=True)
    on_board = fit(config, split, backend="board", model=model, evaluate_start=True,
                   epochs=1, limit_train=2, limit_test=1, seed=4, progress=False)
    golden = fit(config, split, backend="golden", epochs=1, limit_train=2, limit_test=1,
                 seed=4, progress=False, init_weights=start_weights())
    for got, want in zip(on_board.weights, golden.weights):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(got, before)
               for got, before in zip(on_board.weights, start_weights()))
    assert on_board.extra["initial_test_accuracy"] == golden.extra["initial_test_accuracy"]
    # Each sample: start it, switch learning as asked, switch it off at the end.
    writes = [w for w in board.writes if w != "clear_state"]
    assert writes[:2] == [("burn_in_ticks", 2), ("learning_rate_shift", 17)]
    assert writes.count(("sample_tick", 0)) == 4     # initial test, two training, one test
    assert writes.count(("learning_enabled", 1)) == 2


def test_check_golden_stops_at_the_first_weight_that_differs(config):
    model = BoardErbpModel(StandInBoard(config, flip_after=15), config, start_weights(),
                           check_golden=True)
    with pytest.raises(BoardMismatch, match=r"after sample 1: weight \(3, 1\) of projection 1"):
        fit(config, load_digits_split(), backend="board", model=model, epochs=1,
            limit_train=2, limit_test=1, seed=4, progress=False)


def test_board_backend_needs_a_port_and_a_learning_rule(tmp_path, capsys):
    from test_train_cli import run
    path = tmp_path / "board.toml"
    path.write_text(CONFIG_TOML)
    assert run([str(path), "--backend", "board"]) == 2
    assert "--backend board needs --port PORT" in capsys.readouterr().err
    assert run([str(path), "--port", "/dev/null"]) == 2
    assert "--port needs --backend board" in capsys.readouterr().err
    assert run(["examples/decolle-digits.toml", "--backend", "board", "--port", "x"]) == 2
    assert "training on a board is built for rule = erbp" in capsys.readouterr().err
