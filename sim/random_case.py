"""Random networks and event streams for verification (shared by amaranth.sim and cocotb)."""

from __future__ import annotations

import numpy as np

from plasticore.config import CoreConfig
from plasticore.golden.lif import random_weights

__all__ = ["random_config", "random_recurrent_config", "random_event_ticks", "case_weights"]

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


def random_recurrent_config(rng: np.random.Generator, name: str = "recurrent") -> CoreConfig:
    """Draw a random inference core with one to three recurrent projections (a layer onto
    itself or onto an earlier layer), a source sometimes feeding two of them."""
    config = random_config(rng, name)
    n_layers = len(config.neuron_layers)
    candidates = [(source, target) for source in range(1, n_layers + 1)
                  for target in range(1, source + 1)]
    count = int(rng.integers(1, min(3, len(candidates)) + 1))
    chosen = [candidates[i] for i in rng.choice(len(candidates), size=count, replace=False)]
    chain = [(source, source + 1) for source in range(n_layers)]
    return config.replace(projections=tuple(chain + chosen))


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


# ---- eRBP ------------------------------------------------------------------------------

#: The host registers an eRBP session writes, and the golden model's attribute for each.
ERBP_HOST_REGISTERS = {
    "learning_enabled": "learning_enabled",
    "sample_tick": "sample_tick",
    "burn_in_ticks": "burn_in_ticks",
    "learning_rate_shift": "learning_rate_shift",
}


def random_erbp_config(rng: np.random.Generator, name: str = "erbp_random",
                       lanes: int = 1) -> CoreConfig:
    """Draw a small eRBP core whose learning reaches its corners: large steps (a small
    learning-rate shift), frequent error spikes, and states and weights that saturate.
    ``lanes`` is the core's, not drawn (the draws stay those of earlier releases)."""
    n_hidden = int(rng.integers(1, 3))
    layers = ((int(rng.choice(_SIZES[1:])),) + tuple(int(rng.choice(_SIZES))
                                                     for _ in range(n_hidden))
              + (int(rng.choice([1, 2, 3, 5])),))
    weight_bits = int(rng.integers(4, 11))
    membrane_bits = int(rng.integers(weight_bits + 2, 17))
    w_max = (1 << (weight_bits - 1)) - 1
    m_max = (1 << (membrane_bits - 1)) - 1
    gain = int(rng.integers(0, min(2, membrane_bits - weight_bits) + 1))
    scale = w_max << gain           # a strong input
    gate = int(rng.integers(scale, max(scale + 1, m_max // 2) + 1))
    table = {
        "ticks_per_sample": 50, "test_ticks_per_sample": 50,
        "burn_in_ticks": int(rng.integers(0, 6)),
        "soma_gain_shift": gain,
        "dendrite_leak_shift": int(rng.integers(1, 5)),
        "gate_low": -gate, "gate_high": gate,
        "learning_rate_shift": int(rng.integers(1, 9)),
        "error_threshold": int(rng.integers(1, m_max // 4 + 2)),
        "error_input_weight": int(rng.integers(1, m_max // 2 + 2)),
        "feedback_output_weight": int(rng.integers(0, m_max // 2 + 1)),
        "feedback_hidden_scale": int(rng.integers(0, m_max // 3 + 1)),
        "feedback_seed": int(rng.integers(0, 1 << 32)),
        "rounding_seed": int(rng.integers(0, 1 << 32)),
        # 1 and 2 rounds make a one-stage draw pipeline, the shortest the core supports.
        "prng_rounds": int(rng.choice([13, 13, 5, 20, 1, 2])),
        "initial_weight_range": [w_max // 2] * (len(layers) - 1),
    }
    return CoreConfig.from_dict({
        "layers": list(layers), "weight_bits": weight_bits, "membrane_bits": membrane_bits,
        "leak_shift": int(rng.integers(0, min(6, membrane_bits - 1) + 1)),
        "threshold": int(min(m_max, max(1, rng.integers(1, 3 * scale + 2)))),
        "reset": str(rng.choice(["zero", "subtract"])),
        "refractory_ticks": int(rng.choice([0, 0, 1, 3])), "lanes": lanes,
        "seed": int(rng.integers(0, 1 << 32)), "rule": "erbp", "name": name, "erbp": table,
    })


def random_erbp_session(config: CoreConfig, rng: np.random.Generator, ticks: int,
                        activity: float = 0.4):
    """Draw an eRBP session: per tick, host register writes made before the tick, then
    its input events (data, labels ``N_in + k`` and out-of-range addresses, interleaved).

    Learning is on for most ticks; samples restart now and then (``sample_tick = 0``),
    and the learning rate and burn-in change a few times.

    Returns
    -------
    list of (list of (str, int), numpy.ndarray)
    """
    n_in, n_out = config.n_inputs, config.layers[-1]
    session = []
    for tick in range(ticks):
        writes = []
        if tick == 0:
            writes.append(("learning_enabled", 1))
        if rng.random() < 0.08:
            writes.append(("sample_tick", 0))
        if rng.random() < 0.04:
            writes.append(("learning_enabled", int(rng.random() < 0.7)))
        if rng.random() < 0.04:
            writes.append(("learning_rate_shift", int(rng.integers(1, 33))))
        if rng.random() < 0.03:
            writes.append(("burn_in_ticks", int(rng.integers(0, 8))))
        events = random_event_ticks(config, rng, 1, activity)[0]
        # A label train per tick for a class that changes with the samples.
        labels = n_in + rng.integers(0, n_out, size=int(rng.poisson(1.0)))
        mixed = np.concatenate([events, labels])
        session.append((writes, mixed[rng.permutation(mixed.size)].astype(np.int64)))
    return session


def apply_erbp_writes(golden, writes) -> None:
    """Do to the golden eRBP model what the host register ``writes`` do to the core."""
    for name, value in writes:
        setattr(golden, ERBP_HOST_REGISTERS[name],
                bool(value) if name == "learning_enabled" else int(value))
