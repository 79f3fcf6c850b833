"""The float DECOLLE reference against independent computations.

The weight update is checked against central finite differences of each layer's local loss
with the traces held fixed; the spike in the readout is replaced by a smooth ramp whose
derivative is the surrogate (straight-through: the forward value keeps the hard spikes).
"""

import numpy as np
import pytest

from plasticore.golden.decolle_float import (FloatDecolle, huber_loss, surrogate_derivative,
                                             surrogate_ramp)

ALPHA, BETA, ALPHA_RP, W_RP = 0.97, 0.92, 0.65, 1.0


def network(surrogate, sizes=(6, 5, 3), seed=0, lrs=(0.3, 0.2), window=0.5):
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(-1, 1, (a, b)) for a, b in zip(sizes, sizes[1:])]
    biases = [rng.uniform(-0.3, 0.3, b) for b in sizes[1:]]
    readouts = [(rng.uniform(-0.8, 0.8, (n, sizes[-1])), rng.uniform(-0.2, 0.2, sizes[-1]))
                for n in sizes[1:-1]] + [None]
    return FloatDecolle(weights, biases, readouts, alpha=ALPHA, beta=BETA, alpha_rp=ALPHA_RP,
                        w_rp=W_RP, window=window, surrogate=surrogate, learning_rates=lrs)


def straight_through_loss(P, R, W, b, readout, target, hard_spikes, u0, kind, window):
    """Local loss of one layer as a function of (W, b), traces held fixed."""
    u = P @ W + b + R
    soft = hard_spikes + surrogate_ramp(u, kind, window) - surrogate_ramp(u0, kind, window)
    r = soft if readout is None else soft @ readout[0] + readout[1]
    return float(huber_loss(r, target).sum())


@pytest.mark.parametrize("kind", ["boxcar", "fast_sigmoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_update_is_minus_lr_times_finite_difference_gradient(kind, seed):
    net = network(kind, seed=seed, window=2.0 if kind == "boxcar" else 0.5)
    rng = np.random.default_rng(100 + seed)
    # Arbitrary previous state, as if after some ticks.
    for layer, w in enumerate(net.weights):
        net.Q[layer] = rng.uniform(0, 1, (1, w.shape[0]))
        net.P[layer] = rng.uniform(0, 1, (1, w.shape[0]))
        net.R[layer] = rng.uniform(-0.5, 0, (1, w.shape[1]))
        net.S[layer] = (rng.random((1, w.shape[1])) < 0.5).astype(float)
    # Independent computation of the traces this tick will use (P from the OLD Q).
    P_used = [ALPHA * p + (1 - ALPHA) * q for p, q in zip(net.P, net.Q)]
    R_used = [ALPHA_RP * r - (1 - ALPHA_RP) * W_RP * s for r, s in zip(net.R, net.S)]
    before_w = [w.copy() for w in net.weights]
    before_b = [b.copy() for b in net.biases]
    target = np.zeros((1, 3))
    target[0, 1] = 1
    spikes_in = rng.random((1, 6)) < 0.5
    outputs = net.step(spikes_in, target, learn=True)
    for layer, (u0, s0) in enumerate(outputs):
        lr = net.learning_rates[layer]
        update_w = (before_w[layer] - net.weights[layer]) / lr
        update_b = (before_b[layer] - net.biases[layer]) / lr
        args = (P_used[layer], R_used[layer])
        tail = (net.readouts[layer], target, s0, u0, kind, net.window)
        numeric_w = np.zeros_like(update_w)
        numeric_b = np.zeros_like(update_b)
        eps = 1e-6
        for index in np.ndindex(*update_w.shape):
            plus, minus = before_w[layer].copy(), before_w[layer].copy()
            plus[index] += eps
            minus[index] -= eps
            numeric_w[index] = (straight_through_loss(*args, plus, before_b[layer], *tail)
                                - straight_through_loss(*args, minus, before_b[layer], *tail)) / (2 * eps)
        for i in range(update_b.size):
            plus, minus = before_b[layer].copy(), before_b[layer].copy()
            plus[i] += eps
            minus[i] -= eps
            numeric_b[i] = (straight_through_loss(*args, before_w[layer], plus, *tail)
                            - straight_through_loss(*args, before_w[layer], minus, *tail)) / (2 * eps)
        assert np.abs(numeric_w).max() > 1e-4, "degenerate case: no gradient at all"
        np.testing.assert_allclose(update_w, numeric_w, atol=1e-7, rtol=1e-5)
        np.testing.assert_allclose(update_b, numeric_b, atol=1e-7, rtol=1e-5)


def test_traces_hand_computed():
    net = network("boxcar", sizes=(1, 1, 1))
    net.weights[0][:] = 0.0
    net.biases[0][:] = -1.0       # never spikes, so R stays 0
    q, p = [], []
    for spike in [1, 0, 0, 1]:
        net.step([[spike]])
        q.append(net.Q[0][0, 0])
        p.append(net.P[0][0, 0])
    b1 = 1 - BETA
    expected_q = [b1, BETA * b1, BETA ** 2 * b1, BETA ** 3 * b1 + b1]
    a1 = 1 - ALPHA
    expected_p = [0.0, a1 * expected_q[0]]
    expected_p.append(ALPHA * expected_p[1] + a1 * expected_q[1])
    expected_p.append(ALPHA * expected_p[2] + a1 * expected_q[2])
    np.testing.assert_allclose(q, expected_q)
    np.testing.assert_allclose(p, expected_p)


def test_refractory_follows_own_previous_spike():
    net = network("boxcar", sizes=(1, 1, 1))
    net.weights[0][:] = 0.0
    net.biases[0][:] = 0.2        # spikes at tick 0 (R = 0), then R pulls it down
    spikes, refractory = [], []
    for _ in range(4):
        out = net.step([[0]])
        spikes.append(out[0][1][0, 0])
        refractory.append(net.R[0][0, 0])
    r1 = -(1 - ALPHA_RP) * W_RP   # -0.35
    assert refractory[0] == 0 and refractory[1] == pytest.approx(r1)
    assert refractory[2] == pytest.approx(ALPHA_RP * r1)
    assert refractory[3] == pytest.approx(ALPHA_RP ** 2 * r1)
    # 0.2 - 0.35 <= 0; 0.2 - 0.2275 <= 0; 0.2 - 0.1479 > 0
    assert spikes == [1.0, 0.0, 0.0, 1.0]


def test_boxcar_gates_and_fast_sigmoid_is_dense():
    u = np.array([-0.6, -0.5, -0.49, 0.0, 0.5, 0.51])
    np.testing.assert_array_equal(surrogate_derivative(u, "boxcar", 0.5), [0, 0, 1, 1, 1, 0])
    np.testing.assert_allclose(surrogate_derivative(u, "fast_sigmoid"), 1 / (10 * np.abs(u) + 1) ** 2)
    assert (surrogate_derivative(u, "fast_sigmoid") > 0).all()


def test_huber_loss_hand_computed():
    assert huber_loss([0.5, 3.0], [0.0, 0.0]) == pytest.approx((0.125 + 2.5) / 2)


def test_learns_to_tell_two_patterns_apart():
    """A 4-6-2 network separates two input patterns after a few online samples."""
    rng = np.random.default_rng(5)
    net = FloatDecolle([rng.uniform(-0.3, 0.3, (4, 6)), rng.uniform(-0.3, 0.3, (6, 2))],
                       [np.zeros(6), np.zeros(2)],
                       [(rng.uniform(-0.5, 0.5, (6, 2)), np.zeros(2)), None],
                       alpha=ALPHA, beta=BETA, alpha_rp=ALPHA_RP, w_rp=W_RP, window=0.5,
                       surrogate="boxcar", learning_rates=(0.5, 0.5), learn_bias=False)
    patterns = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=float) * 0.5
    for step in range(40):
        label = step % 2
        raster = rng.random((40, 4)) < patterns[label]
        net.run_sample(raster, label, learn=True, burn_in=5)
    rasters = rng.random((20, 40, 4)) < np.repeat(patterns, 10, axis=0)[:, None, :]
    counts, _ = net.run_sample(rasters, burn_in=5)
    labels = np.repeat([0, 1], 10)
    assert (counts.argmax(axis=1) == labels).mean() >= 0.9
