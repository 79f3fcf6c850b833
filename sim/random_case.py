"""Random networks and event streams for verification (shared by amaranth.sim and cocotb)."""

from __future__ import annotations

import numpy as np

from plasticore.config import CoreConfig
from plasticore.golden.lif import random_weights

__all__ = ["random_config", "random_event_ticks", "case_weights"]

# Sizes that stress the pipeline: a single neuron, layers shorter than the pipeline,
# non-powers of two, rows that end in a partly filled word.
_SIZES = (1, 2, 3, 5, 7, 8, 13, 17, 24)


def random_config(rng: np.random.Generator, name: str = "random") -> CoreConfig:
    """Draw a random but sensible core configuration."""
    n_layers = int(rng.integers(1, 4))
    # At least two inputs: a lone input with a zero weight silences the whole network.
    layers = (int(rng.choice(_SIZES[1:])),) + tuple(int(rng.choice(_SIZES))
                                                    for _ in range(n_layers))
    weight_bits = int(rng.integers(4, 9))
    membrane_bits = int(rng.integers(weight_bits + 1, 17))
    w_max = (1 << (weight_bits - 1)) - 1
    m_max = (1 << (membrane_bits - 1)) - 1
    # A threshold of a few strong inputs keeps the layers spiking but not saturated.
    threshold = int(min(m_max, max(1, rng.integers(1, 4 * w_max + 2))))
    return CoreConfig(
        layers=layers,
        weight_bits=weight_bits,
        membrane_bits=membrane_bits,
        leak_shift=int(rng.integers(0, min(6, membrane_bits - 1) + 1)),
        threshold=threshold,
        reset=str(rng.choice(["zero", "subtract"])),
        refractory_ticks=int(rng.choice([0, 0, 1, 2, 5])),
        lanes=int(rng.choice([1, 1, 2, 4, 8])),
        seed=int(rng.integers(0, 1 << 32)),
        name=name,
    )


def case_weights(config: CoreConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Random weights biased positive (mean about a quarter of the range), so that small
    networks and deeper layers spike too."""
    weights = random_weights(config, rng)
    low, high = config.weight_range
    return [np.clip(w + (high + 1) // 2, low, high) for w in weights]


def random_event_ticks(config: CoreConfig, rng: np.random.Generator, ticks: int,
                       activity: float = 0.2, out_of_range: float = 0.03) -> list[np.ndarray]:
    """Draw each tick's input events: a random count around ``activity * n_inputs``,
    uniform addresses (duplicates allowed), and a fraction of out-of-range addresses."""
    n_inputs = config.n_inputs
    result = []
    for _ in range(ticks):
        count = int(rng.poisson(activity * n_inputs + 0.5))
        addresses = rng.integers(0, n_inputs, size=count)
        bad = rng.random(count) < out_of_range
        addresses[bad] = rng.integers(n_inputs, 1 << 16, size=int(bad.sum()))
        result.append(addresses.astype(np.int64))
    return result
