"""The integer DECOLLE model against a deliberately naive scalar reading of its spec."""

import math

import numpy as np
import pytest

from plasticore.config import ConfigError, CoreConfig
from plasticore.golden.decolle import (FLAG_MEMBRANE_SATURATED, FLAG_WEIGHT_SATURATED,
                                       GoldenDecolle, READOUT_STREAM, ROUNDING_STREAM, predict,
                                       readout_matrices, rounding_draws, synapse_offsets)
from plasticore.golden.decolle_float import FloatDecolle
from plasticore.golden.prng import threefry2x32
from plasticore.rules.decolle import Params


def make_config(layers=(5, 4, 3), weight_bits=8, membrane_bits=12, **decolle):
    table = dict(ticks_per_sample=12, burn_in=2, trace_bits=6, q_shifts=[2, 4], p_shifts=[3],
                 r_shifts=[1, 3], unit_bits=5, refractory_weight=32, surrogate_window=40,
                 error_bits=4, error_shifts=[6, 3], lr_shifts=[4, 3])
    table.update(decolle)
    return CoreConfig.from_dict(dict(layers=list(layers), weight_bits=weight_bits, threshold=10,
                                     membrane_bits=membrane_bits, seed=7, rule="decolle",
                                     decolle=table))


def scalar_draw(config, tick, index):
    w0, w1 = threefry2x32(config.seed, ROUNDING_STREAM, tick, index // 4, config.learning.prng_rounds)
    bits = int(w0) | (int(w1) << 32)
    return (bits >> (16 * (index % 4))) & 0xFFFF


def floor_shift(x, k):
    return math.floor(x / 2 ** k)


class NaiveDecolle:
    """The module docstring's tick, one scalar at a time, in plain Python integers."""

    def __init__(self, config, weights, biases, readouts):
        self.c, self.p = config, config.learning
        self.W = [[list(map(int, row)) for row in w] for w in weights]
        self.b = [list(map(int, b)) for b in biases]
        self.G = readouts
        layers = config.layers
        self.Q = [[0] * n for n in layers[:-1]]
        self.P = [[0] * n for n in layers[:-1]]
        self.R = [[0] * n for n in layers[1:]]
        self.S = [[False] * n for n in layers[1:]]
        self.tick_count = 0
        self.flags = 0

    def clamp(self, x, low, high, flag):
        if x < low or x > high:
            self.flags |= flag
        return min(max(x, low), high)

    def tick(self, spikes, label=None, learn=False):
        p, c = self.p, self.c
        mlow, mhigh = c.membrane_range
        wlow, whigh = c.weight_range
        u, tb = p.unit_bits, p.trace_bits
        s = [bool(v) for v in spikes]
        offsets = synapse_offsets(c)
        membranes = []
        for l in range(len(self.W)):
            n_pre, n_post = len(self.W[l]), len(self.W[l][0])
            for j in range(n_pre):
                q_old = self.Q[l][j]
                target = (1 << tb) if s[j] else 0
                self.Q[l][j] = q_old + sum(floor_shift(target - q_old, k) for k in p.q_shifts)
                self.P[l][j] = self.P[l][j] + sum(floor_shift(q_old - self.P[l][j], k) for k in p.p_shifts)
            U = []
            for i in range(n_post):
                kick = -p.refractory_weight if self.S[l][i] else 0
                self.R[l][i] += sum(floor_shift(kick - self.R[l][i], k) for k in p.r_shifts)
                dot = sum(self.W[l][j][i] * self.P[l][j] for j in range(n_pre))
                U.append(self.clamp(floor_shift(dot, tb) + self.b[l][i] + self.R[l][i],
                                    mlow, mhigh, FLAG_MEMBRANE_SATURATED))
            S = [x > 0 for x in U]
            self.S[l] = S
            membranes.append(U)
            if learn:
                K = c.layers[-1]
                y = [1 if k == label else 0 for k in range(K)]
                if self.G[l] is None:
                    e = [((1 if S[i] else 0) - y[i]) << u for i in range(n_post)]
                else:
                    G, g = self.G[l]
                    r = [self.clamp(int(g[k]) + sum(int(G[i][k]) for i in range(n_post) if S[i]),
                                    mlow, mhigh, FLAG_MEMBRANE_SATURATED) for k in range(K)]
                    err = [min(max(r[k] - (y[k] << u), -(1 << u)), 1 << u) for k in range(K)]
                    e = [sum(int(G[i][k]) * err[k] for k in range(K)) for i in range(n_post)]
                es = p.error_shifts[l]
                half = (1 << (es - 1)) if es else 0
                limit = (1 << (p.error_bits - 1)) - 1
                ls = p.lr_shifts[l]
                for i in range(n_post):
                    eq = min(max(floor_shift(e[i] + half, es), -limit), limit)
                    if not (-p.surrogate_window < U[i] <= p.surrogate_window) or eq == 0:
                        continue
                    for j in range(n_pre + 1):
                        trace = self.P[l][j] if j < n_pre else (1 << tb)
                        x = -eq * trace
                        index = offsets[l] + j * n_post + i
                        rnd = (scalar_draw(c, self.tick_count, index) >> (16 - ls)
                               if p.stochastic_rounding and ls else 0)
                        delta = floor_shift(x + rnd, ls)
                        if j < n_pre or not p.learn_bias:
                            if j == n_pre:
                                continue
                            self.W[l][j][i] = self.clamp(self.W[l][j][i] + delta, wlow, whigh,
                                                         FLAG_WEIGHT_SATURATED)
                        else:
                            self.b[l][i] = self.clamp(self.b[l][i] + delta, wlow, whigh,
                                                      FLAG_WEIGHT_SATURATED)
            s = S
        self.tick_count += 1
        return membranes


def random_start(config, rng, fraction=0.6):
    low, high = config.weight_range
    weights = [rng.integers(int(low * fraction), int(high * fraction) + 1, (a, b))
               for a, b in zip(config.layers, config.layers[1:])]
    biases = [rng.integers(int(low * fraction), int(high * fraction) + 1, b) for b in config.layers[1:]]
    return weights, biases


@pytest.mark.parametrize("case", [
    dict(),
    dict(decolle=dict(learn_bias=True)),
    dict(weight_bits=5, membrane_bits=6,                     # saturates
         decolle=dict(init_scale=0.5, unit_bits=4, refractory_weight=16, surrogate_window=20,
                      learn_bias=True)),
    dict(decolle=dict(error_bits=2, stochastic_rounding=False)),
    dict(layers=(7, 6, 5, 4), decolle=dict(error_shifts=[6, 6, 2], lr_shifts=[5, 0, 16])),
])
def test_ticks_match_naive_spec(case):
    config = make_config(layers=case.get("layers", (5, 4, 3)),
                         weight_bits=case.get("weight_bits", 8),
                         membrane_bits=case.get("membrane_bits", 12), **case.get("decolle", {}))
    rng = np.random.default_rng(len(str(case)))
    weights, biases = random_start(config, rng, 1.0 if "weight_bits" in case else 0.6)
    if "weight_bits" in case:      # drive the first hidden neuron hard: its membrane must clamp
        weights[0][:, 0] = config.weight_range[1]
    model = GoldenDecolle(config, weights, biases)
    naive = NaiveDecolle(config, weights, biases, readout_matrices(config))
    learned_ticks = 0
    for t in range(60):
        spikes = rng.random(config.layers[0]) < (0.9 if "weight_bits" in case else 0.5)
        label = int(rng.integers(config.layers[-1]))
        learn = t % 5 != 0 and t >= 20    # let the traces build up first
        outputs = model.tick(spikes, np.eye(config.layers[-1], dtype=np.int64)[label], learn)
        expected = naive.tick(spikes, label, learn)
        for (membrane, s_out), exp in zip(outputs, expected):
            assert membrane[0].tolist() == exp
            assert s_out[0].tolist() == [x > 0 for x in exp]
        for layer in range(len(weights)):
            assert model.weights[layer].tolist() == naive.W[layer]
            assert model.biases[layer].tolist() == naive.b[layer]
        learned_ticks += learn
    assert model.flags == naive.flags
    changed = any((w0 != w).any() for w0, w in zip(weights, model.weights))
    assert changed, "the case never learned: it tests nothing"
    if "weight_bits" in case:
        assert model.flags & FLAG_WEIGHT_SATURATED and model.flags & FLAG_MEMBRANE_SATURATED


def test_traces_hand_computed():
    # trace_bits 6 (1.0 = 64), q_shifts [2, 4], p_shifts [3]; one spike, then silence.
    config = make_config(layers=(1, 1, 1))
    model = GoldenDecolle(config, [[[0]], [[0]]], [[-5], [-5]])
    q, p = [], []
    for spike in [1, 0, 0, 0]:
        model.tick([[spike]])
        q.append(int(model.Q[0][0, 0]))
        p.append(int(model.P[0][0, 0]))
    # Q: 0 + 16 + 4 = 20; 20 + (-5) + (-2) = 13; 13 + (-4) + (-1) = 8; 8 - 2 - 1 = 5
    assert q == [20, 13, 8, 5]
    # P: 0; 0 + (20 >> 3) = 2; 2 + (11 >> 3) = 3; 3 + (5 >> 3) = 3
    assert p == [0, 2, 3, 3]


def test_refractory_hand_computed():
    config = make_config(layers=(1, 1, 1))
    model = GoldenDecolle(config, [[[0]], [[0]]], [[10], [-5]])
    spikes, refractory = [], []
    for _ in range(4):
        (membrane, s_out), _ = model.tick([[0]])
        spikes.append(bool(s_out[0, 0]))
        refractory.append(int(model.R[0][0, 0]))
    # w_rp 32, r_shifts [1, 3]: R = 0, then -16 - 4 = -20 after the spike; U = 10 - 20 < 0;
    # then R = -20 + 10 + 2 = -8 (gap 20: 20 >> 1 = 10, 20 >> 3 = 2), U = 2 > 0 -> spike.
    assert refractory[:3] == [0, -20, -8]
    assert spikes[:3] == [True, False, True]
    # after the spike at tick 2: gap -32 + 8 = -24: -12, -3 -> R = -23
    assert refractory[3] == -23


def test_draw_lanes_match_scalar_threefry():
    config = make_config(layers=(5, 4, 3))
    total = synapse_offsets(config)[-1]
    assert total == 6 * 4 + 5 * 3
    draws = rounding_draws(config, [0, 3, 1000])
    for row, tick in enumerate([0, 3, 1000]):
        assert draws[row].tolist() == [scalar_draw(config, tick, i) for i in range(total)]
    assert rounding_draws(config, [3], 5, 13)[0].tolist() == draws[1, 5:13].tolist()


def test_readouts_regenerated_from_seed():
    config = make_config(layers=(5, 30, 3))
    (G, g), top = readout_matrices(config)
    assert top is None
    amplitude = round(0.5 / math.sqrt(30) * 32)
    for (i, k) in [(0, 0), (29, 2), (30, 1)]:
        word, _ = threefry2x32(0, READOUT_STREAM, i, k, 13)
        expected = (int(word) * (2 * amplitude + 1) >> 32) - amplitude
        assert (G[i, k] if i < 30 else g[k]) == expected
    assert G.min() >= -amplitude and G.max() <= amplitude and G.std() > 0
    other = make_config(layers=(5, 30, 3), readout_seed=1)
    assert (readout_matrices(other)[0][0] != G).any()


def test_stochastic_rounding_is_unbiased_and_truncation_is_not():
    # A top neuron held far below threshold with label 1: S - y = -1, so e = -(1 << 5) and
    # e_q = (-32 + 16) >> 5 = -1. Its bias (trace 1.0 = 64) gains (64 + rnd) >> 8 per tick,
    # whose mean must be 64 / 256 = 0.25; truncation gives exactly 0.
    results = {}
    for rounding in (True, False):
        config = make_config(layers=(1, 1, 1), weight_bits=16, membrane_bits=20,
                             error_shifts=[6, 5], lr_shifts=[4, 8], surrogate_window=1 << 18,
                             learn_bias=True,
                             stochastic_rounding=rounding)
        model = GoldenDecolle(config, [[[0]], [[0]]], [[-1000], [-5000]])
        ticks = 2000
        for _ in range(ticks):
            model.tick([[0]], [[1]], learn=True)
        results[rounding] = (int(model.biases[1][0]) + 5000) / ticks
    assert results[True] == pytest.approx(0.25, abs=0.03)
    assert results[False] == 0


def test_batched_run_equals_one_sample_at_a_time():
    config = make_config()
    rng = np.random.default_rng(3)
    rasters = rng.random((4, 12, 5)) < 0.5
    model = GoldenDecolle(config, *random_start(config, rng))
    counts, sums = model.run_sample(rasters)
    for index in range(4):
        c, s = model.run_sample(rasters[index])
        assert c[0].tolist() == counts[index].tolist() and s[0].tolist() == sums[index].tolist()


def test_learning_run_uses_the_same_draws_as_single_ticks():
    config = make_config()
    rng = np.random.default_rng(4)
    start = random_start(config, rng)
    raster = rng.random((12, 5)) < 0.5
    fast = GoldenDecolle(config, *start)
    fast.run_sample(raster, 1, learn=True)
    slow = GoldenDecolle(config, *start)
    slow.reset_state(1)
    target = np.eye(3, dtype=np.int64)[1]
    for t in range(12):
        slow.tick(raster[t], target, learn=t >= config.learning.burn_in)
    for a, b in zip(fast.weights + fast.biases, slow.weights + slow.biases):
        assert a.tolist() == b.tolist()


def test_error_sign_agrees_with_float_reference():
    """With fine units, the integer error has the float error's sign wherever it is nonzero."""
    config = make_config(layers=(6, 8, 4), weight_bits=16, membrane_bits=24, unit_bits=12,
                         trace_bits=10, error_bits=8, error_shifts=[14, 12],
                         surrogate_window=1 << 11)
    rng = np.random.default_rng(9)
    model = GoldenDecolle(config, *random_start(config, rng, 0.05))
    scale = 2.0 ** 12
    constants = config.learning.float_constants(config)
    reference = FloatDecolle([w / scale for w in model.weights], [b / scale for b in model.biases],
                             [None if r is None else (r[0] / scale, r[1] / scale) for r in model.readouts],
                             **constants)
    from plasticore.golden.decolle_float import local_error
    agree = total = 0
    target = np.eye(4, dtype=np.int64)[2]
    for _ in range(30):
        spikes = rng.random(6) < 0.5
        outputs = model.tick(spikes)
        for layer, (membrane, s_out) in enumerate(outputs):
            e_int = model.layer_error(layer, s_out, membrane, target[None])
            e_float = local_error(membrane / scale, s_out, reference.readouts[layer], target[None],
                                  "boxcar", constants["window"])
            nonzero = e_int != 0
            agree += int((np.sign(e_int[nonzero]) == np.sign(e_float[nonzero])).sum())
            total += int(nonzero.sum())
    assert total > 20 and agree == total


def test_predict_breaks_ties_by_membrane_then_index():
    counts = np.array([[3, 5, 5, 1], [2, 2, 2, 2], [0, 0, 0, 0]])
    sums = np.array([[0, 10, 20, 0], [7, 7, 3, 1], [-5, -1, -1, -9]])
    assert predict(counts, sums).tolist() == [2, 0, 1]


@pytest.mark.parametrize("field, value, fragment", [
    ("lr_shifts", [4], "one entry per neuron layer"),
    ("lr_shifts", [4, 17], "between 0 and 16"),
    ("q_shifts", [1, 1], "distinct"),
    ("q_shifts", [0, 2], "between 1 and 15"),
    ("burn_in", 12, "between 0 and 11"),
    ("unit_bits", 11, "between 0 and 10"),
    ("surrogate", "tanh", "boxcar"),
    ("input_rate", 0, "(0.0, 1.0]"),
    ("init_scale", 60.0, "exceed the weight range"),
    ("stochastic_rounding", 1, "true or false"),
    ("float_decays", [0.9, 0.9], "alpha"),
    ("colour", 3, "not a decolle parameter"),
])
def test_bad_parameters_named(field, value, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace("[", r"\[")) as info:
        make_config(**{field: value})
    assert info.value.field.startswith(f"decolle.{field}")


def test_params_round_trip_and_example_config():
    config = make_config()
    again = Params.from_dict(config.learning.to_dict(), config)
    assert again == config.learning
    example = CoreConfig.from_toml("examples/decolle-digits.toml")
    assert example.rule == "decolle" and example.layers == (64, 100, 10)
    model = GoldenDecolle(example)
    assert model.weights[0].shape == (64, 100)


@pytest.mark.parametrize("backend", ["golden", "float"])
def test_fit_runs_online_and_reports(backend):
    from plasticore.train_decolle import fit
    example = CoreConfig.from_toml("examples/decolle-digits.toml")
    config = CoreConfig.from_dict({**example.to_dict(), "decolle": {
        **example.learning.to_dict(), "ticks_per_sample": 20, "burn_in": 5}})
    seen = []
    result = fit(config, backend=backend, epochs=1, limit_train=8, limit_test=6,
                 on_epoch=seen.append)
    assert result.rule == "decolle" and result.backend == backend
    assert len(result.epochs) == 1 and seen == result.epochs
    assert 0 <= result.final.test_accuracy <= 1 and result.final.seconds > 0
    assert [w.shape for w in result.weights] == [(65, 100), (101, 10)]
    start = GoldenDecolle(config).weights[0] / (1 if backend == "golden" else 256)
    assert (result.weights[0][:64] != start).any(), "no weight changed: nothing learned online"
    assert np.abs(result.weights[0][:64] - start).max() < 0.2 * np.abs(start).max()
