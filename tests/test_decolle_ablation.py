"""The DECOLLE ablation variants build, train a few samples and predict as documented."""

from __future__ import annotations

import numpy as np
import pytest

from plasticore.config import CoreConfig
from plasticore.datasets import as_split, load_digits_split
from plasticore.decolle_ablation import VARIANTS, VotingDecolle, variant
from plasticore.train_decolle import fit


@pytest.fixture(scope="module")
def short_config():
    example = CoreConfig.from_toml("examples/decolle-digits.toml")
    return CoreConfig.from_dict({**example.to_dict(), "decolle": {
        **example.learning.to_dict(), "ticks_per_sample": 20, "burn_in": 5}})


def test_every_variant_trains(short_config):
    split = as_split(load_digits_split()).limited(6, 6)
    for name in VARIANTS:
        config, model = variant(short_config, name)
        result = fit(config, split, backend="float", epochs=1, model=model)
        assert 0 <= result.final.test_accuracy <= 1, name
    assert variant(short_config, "reference_init")[0].learning.init_scale in (1.0, (1.0, 1.0))
    assert variant(short_config, "dropout")[1].readout_dropout == 0.5


def test_vote_counts_the_argmax_of_each_tick_after_burn_in():
    """One input drives class 1 for 3 ticks, then another drives class 2 for 2 ticks: the
    vote is 3 to 2 (the burn-in tick and silent ticks do not vote)."""
    weights = [np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])]
    model = VotingDecolle(weights, [np.array([-0.01, -0.01, -0.01])], [None], alpha=0.0,
                          beta=0.0, alpha_rp=1.0, w_rp=0.0, window=0.5, surrogate="boxcar",
                          learning_rates=[0.0])
    raster = np.zeros((8, 2), bool)
    raster[[0, 1, 2], 0] = True       # P lags the input by two ticks (Q then P)
    raster[[3, 4], 1] = True
    votes, _ = model.run_sample(raster, burn_in=1)
    assert votes.tolist() == [[0, 3, 2]]
