"""Verification cases for the DECOLLE core, shared by amaranth.sim and cocotb.

A case is a configuration, initial weights and biases, and a script of host operations and
ticks, as plain JSON-friendly data::

    {"weights": [...], "biases": [...],
     "script": [["write", "learn", 1], ["write", "burn_in", 3], ["sample"],
                ["tick", [3, 0, 70000 % 65536, n_inputs + 2]], ...]}

``["write", name, value]`` writes a register of :class:`plasticore.layout.DecolleLayout`
(``sample_tick`` starts a sample), ``["sample"]`` is the same as writing ``sample_tick``,
``["tick", events]`` runs one tick on the input events (inputs, labels ``n_inputs + k`` and
out-of-range addresses). :func:`golden_apply` runs a script step on the golden model.
"""

from __future__ import annotations

import numpy as np

from plasticore.config import CoreConfig
from plasticore.golden.decolle import GoldenDecolle, initial_parameters

__all__ = ["golden_apply", "random_case", "random_config", "digits_case", "golden_state"]


def golden_apply(golden: GoldenDecolle, step):
    """Apply one script step to ``golden``; return the tick's spikes (or None)."""
    kind = step[0]
    if kind == "tick":
        return golden.tick_events(step[1])
    if kind == "sample":
        golden.start_sample()
        return None
    name, value = step[1], int(step[2])
    if name == "learn":
        golden.learning = bool(value)
    elif name == "burn_in":
        golden.burn_in = value
    elif name == "sample_tick":
        golden.start_sample()
    elif name.startswith("lr_shift_"):
        shifts = list(golden.lr_shifts)
        shifts[int(name[len("lr_shift_"):]) - 1] = value
        golden.set_lr_shifts(shifts)
    elif name == "flags":
        golden.flags &= ~value
    elif name == "dropped_events":
        golden.dropped_events = 0
    else:
        raise ValueError(f"script: register {name!r} cannot be written")
    return None


def golden_state(golden: GoldenDecolle) -> dict:
    """Every state the host can read, per layer, as int64 arrays (batch of one)."""
    return {
        "weights": [w.copy() for w in golden.weights],
        "biases": [b.copy() for b in golden.biases],
        "membrane": [u[0].copy() for u in golden.U],
        "refractory": [r[0].copy() for r in golden.R],
        "spikes": [s[0].astype(np.int64) for s in golden.S],
        "trace_q": [q[0].copy() for q in golden.Q],
        "trace_p": [p[0].copy() for p in golden.P],
    }


def random_case(config: CoreConfig, rng: np.random.Generator, ticks: int, *,
                activity: float = 0.3, out_of_range: float = 0.03, learn_fraction: float = 0.85,
                weight_scale: float = 1.0) -> dict:
    """Draw initial weights and a script: samples of random length, each started through the
    host, with a label on most ticks, learning on for most samples, a random burn-in, and
    learning-rate shifts changed now and then."""
    params = config.learning
    weights, biases = initial_parameters(config, seed=int(rng.integers(1 << 31)))
    low, high = config.weight_range
    weights = [np.clip(np.rint(w * weight_scale), low, high).astype(np.int64) for w in weights]
    # Nonzero biases: the host may load them even when they do not learn.
    biases = [np.clip(rng.integers(-(high + 1) // 4, (high + 1) // 4 + 1, size=b.shape), low, high)
              for b in biases]
    n_inputs, n_classes = config.n_inputs, config.layers[-1]
    script = [["write", "learn", 1], ["write", "burn_in", int(rng.integers(0, 4))]]
    done = 0
    while done < ticks:
        length = int(rng.integers(1, 25))
        script.append(["sample"] if rng.random() < 0.5 else ["write", "sample_tick", 0])
        script.append(["write", "learn", int(rng.random() < learn_fraction)])
        if rng.random() < 0.3:
            layer = int(rng.integers(1, len(config.neuron_layers) + 1))
            script.append(["write", f"lr_shift_{layer}",
                           int(rng.integers(0, min(16, params.trace_bits + 2) + 1))])
        if rng.random() < 0.2:
            script.append(["write", "burn_in", int(rng.integers(0, 6))])
        label = int(rng.integers(0, n_classes))
        rate = rng.random(n_inputs) * 2 * activity
        for _ in range(min(length, ticks - done)):
            events = list(np.flatnonzero(rng.random(n_inputs) < rate))
            if rng.random() < 0.2 and events:
                events += list(rng.choice(events, size=2))             # duplicates
            if rng.random() < 0.9:
                events.append(n_inputs + label)
            if rng.random() < 0.05:
                events.append(n_inputs + int(rng.integers(0, n_classes)))  # a second label
            bad = int(rng.binomial(len(events) + 1, out_of_range))
            events += [int(x) for x in rng.integers(n_inputs + n_classes, 1 << 16, size=bad)]
            order = rng.permutation(len(events))
            script.append(["tick", [int(events[i]) for i in order]])
            done += 1
    return {"weights": weights, "biases": biases, "script": script}


def digits_case(config: CoreConfig, samples: int, *, seed: int = 0) -> dict:
    """A short training run on the digits: ``samples`` training images, each presented for
    ``ticks_per_sample`` ticks (Bernoulli, ``input_rate * pixel``), with its label on every
    tick and learning from ``burn_in`` on, as :func:`plasticore.train_decolle.fit` does."""
    from plasticore.datasets import load_digits_split

    params = config.learning
    split = load_digits_split()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(split.x_train))[:samples]
    weights, biases = initial_parameters(config)
    script = [["write", "learn", 1], ["write", "burn_in", params.burn_in]]
    for index in order:
        image = np.clip(split.x_train[index], 0, 1)
        label = int(split.y_train[index])
        raster = rng.random((params.ticks_per_sample, len(image))) < image * params.input_rate
        script.append(["sample"])
        for row in raster:
            script.append(["tick", [int(j) for j in np.flatnonzero(row)] + [config.n_inputs + label]])
    return {"weights": weights, "biases": biases, "script": script}


def random_config(rng: np.random.Generator, name: str = "random", lanes: int = 1) -> CoreConfig:
    """Draw a small random DECOLLE configuration (odd sizes, one to three layers, narrow
    formats that saturate, every switch of the rule) with ``lanes`` weights per word (not
    drawn: the same ``rng`` gives the same network at every lane count)."""
    sizes = (1, 2, 3, 5, 7, 9)
    n_layers = int(rng.integers(1, 4))
    layers = [int(rng.choice(sizes[1:]))] + [int(rng.choice(sizes)) for _ in range(n_layers)]
    layers[-1] = max(layers[-1], 2)            # at least two classes
    weight_bits = int(rng.integers(5, 11))
    membrane_bits = int(rng.integers(weight_bits + 2, 16))
    trace_bits = int(rng.integers(3, 9))
    unit_bits = int(rng.integers(2, min(7, membrane_bits - 2) + 1))
    membrane_high = (1 << (membrane_bits - 1)) - 1

    def shifts(count_high):
        count = int(rng.integers(1, count_high + 1))
        return sorted(int(x) for x in rng.choice(np.arange(1, 8), size=count, replace=False))

    table = dict(
        ticks_per_sample=20, burn_in=int(rng.integers(0, 4)), trace_bits=trace_bits,
        q_shifts=shifts(3), p_shifts=shifts(2), r_shifts=shifts(3), unit_bits=unit_bits,
        refractory_weight=int(rng.integers(0, min(membrane_high, 4 << unit_bits) + 1)),
        surrogate_window=int(rng.integers(1, min(membrane_high, 2 << unit_bits) + 1)),
        error_bits=int(rng.integers(2, 6)),
        # Shifts that leave nonzero updates: e is up to K * G * 2**u, P up to 2**tb.
        error_shifts=[int(rng.integers(0, unit_bits + 1)) for _ in range(n_layers)],
        lr_shifts=[int(rng.integers(0, trace_bits + 1)) for _ in range(n_layers)],
        stochastic_rounding=bool(rng.random() < 0.8), learn_bias=bool(rng.random() < 0.4),
        init_scale=[float(rng.uniform(0.5, 3.0)) for _ in range(n_layers)],
        readout_amplitude=float(rng.uniform(0.3, 3.0)),
        readout_seed=int(rng.integers(0, 1 << 32)), prng_rounds=int(rng.integers(1, 14)))
    table["init_scale"] = [min(s, 0.9 * ((1 << (weight_bits - 1)) - 1) * np.sqrt(n) / (1 << unit_bits))
                           for s, n in zip(table["init_scale"], layers)]
    return CoreConfig.from_dict(dict(layers=layers, weight_bits=weight_bits,
                                     membrane_bits=membrane_bits, threshold=1, seed=int(rng.integers(0, 1 << 32)),
                                     lanes=lanes, rule="decolle", name=name, decolle=table))
