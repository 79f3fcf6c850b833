"""The rounding-draw statistics tell good draws from bad ones."""

import numpy as np
import pytest

from plasticore.rounding_study import draw_statistics


def test_thirteen_rounds_look_independent():
    row = draw_statistics(13)
    assert abs(row["tick"]) < 0.05 and abs(row["adjacent"]) < 0.05
    assert 0.8 < row["column"] < 1.2 and 0.8 < row["time"] < 1.25


def test_two_rounds_repeat_a_synapse_draw_from_tick_to_tick():
    # With two rounds the tick counter only shifts the low bits of word 0: consecutive
    # ticks draw almost the same value, and a synapse rounds the same way for many ticks.
    row = draw_statistics(2)
    assert row["tick"] > 0.9 and row["time"] > 2


def test_the_statistics_see_a_planted_dependence(monkeypatch):
    # A "generator" whose draw is the synapse index alone: no change from tick to tick.
    import plasticore.rounding_study as study

    def fake(key0, key1, counter0, counter1, rounds):
        word = np.broadcast_to(np.asarray(counter1, dtype=np.uint32) * np.uint32(2654435761),
                               np.broadcast_shapes(np.shape(counter0), np.shape(counter1)))
        return word, word

    monkeypatch.setattr(study, "threefry2x32", fake)
    row = study.draw_statistics(13)
    assert row["tick"] == pytest.approx(1.0)
    assert row["time"] > 5


def test_too_few_ticks_are_refused():
    with pytest.raises(ValueError, match="ticks = 10"):
        draw_statistics(13, ticks=10)
