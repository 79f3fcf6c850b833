"""The float eRBP reference: hand-computed cases, and agreement with the integer model."""

from __future__ import annotations

import numpy as np
import pytest

from plasticore.config import CoreConfig
from plasticore.datasets import label_spike_train, load_digits_split, rate_encode
from plasticore.golden.erbp import GoldenErbpCore
from plasticore.golden.erbp_float import FloatErbpNetwork

EXAMPLE = "examples/erbp-digits.toml"


@pytest.fixture(scope="module")
def config():
    return CoreConfig.from_toml(EXAMPLE)


def zero_network(config):
    return FloatErbpNetwork(config, weights=[np.zeros((64, 100)), np.zeros((100, 10))])


def test_error_neurons_and_output_dendrite(config):
    net = zero_network(config)
    label = 64 + 3
    # Same hand-computed sequence as the integer model: the error neurons are integers.
    expected_state = [511, 511, 1022, 1533, 508, 508]
    expected_spike = [True, False, True, True, True, False]
    for tick, events in enumerate([[label], [], [label], [label], [], []]):
        net.tick(events)
        assert net.error_state[0, 3] == expected_state[tick]
        assert bool(net.last_error_spikes[0, 3]) == expected_spike[tick]
        assert not net.last_error_spikes[1].any()
    # Dendrite: u <- u * (1 - 1/8) + 592 per E+ spike, spikes at ticks 0, 2, 3, 4.
    u = 0.0
    for spike in expected_spike:
        u = u * 0.875 + 592 * spike
    assert net.dendrite[1][3] == pytest.approx(u, rel=1e-12)
    # Hidden dendrites got column 3 of the zero-mean random feedback, four times, decayed.
    assert net.dendrite[0] == pytest.approx(net.feedback[0][3] * u / 592, rel=1e-9)


def test_update_on_presynaptic_spike(config):
    params = config.learning
    weights = [np.full((64, 100), 2.0), np.zeros((100, 10))]
    net = FloatErbpNetwork(config, weights=weights)
    net.learning_enabled = True
    net.sample_tick = params.burn_in_ticks          # past the burn-in
    u = np.linspace(-5000, 5000, 100)
    v = np.zeros(100)
    v[:10] = params.gate_high                         # outside the strict gate
    v[10:20] = params.gate_low
    net.dendrite[0], net.membrane[0] = u.copy(), v.copy()
    net.tick([5, 9])
    eta = 2.0 ** -params.learning_rate_shift
    expected = 2.0 + eta * u
    expected[:20] = 2.0
    assert net.weights[0][5] == pytest.approx(expected, abs=1e-12)
    assert net.weights[0][9] == pytest.approx(expected, abs=1e-12)
    assert (net.weights[0][[0, 1, 2]] == 2.0).all()
    # The delivered weights are the ones read before the update: 2 weights of 2 * 2**gain.
    v_expected = v * (1 - 2.0 ** -config.leak_shift) + 2 * 2.0 * 2 ** params.soma_gain_shift
    spiking = v_expected >= config.threshold
    assert net.membrane[0][~spiking] == pytest.approx(v_expected[~spiking])
    assert (net.membrane[0][spiking] == 0).all()   # reset = "zero"


def test_learning_off_and_burn_in(config):
    net = FloatErbpNetwork(config)
    before = net.read_weights()
    net.dendrite = [np.full(100, 3000.0), np.full(10, 3000.0)]
    net.start_sample()
    net.learning_enabled = True
    for _ in range(config.learning.burn_in_ticks):
        net.tick(list(range(64)))
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))
    net.tick(list(range(64)))
    assert not np.array_equal(before[0], net.weights[0])


def test_float_and_integer_models_agree_on_average(config):
    """Fixed point changes single spikes, not what the network learns on average."""
    split = load_digits_split()
    golden, reference = GoldenErbpCore(config), FloatErbpNetwork(config)
    params = config.learning
    rng = np.random.default_rng(1)
    ticks = params.ticks_per_sample
    golden_counts, float_counts = [], []
    for index in range(6):
        raster = rate_encode(split.x_train[index], ticks, params.input_rate, rng)
        labels = label_spike_train(int(split.y_train[index]), 10, ticks, params.label_period)
        golden.run_sample(raster, labels, learn=True)
        reference.run_sample(raster, labels, learn=True)
    for index in range(4):
        raster = rate_encode(split.x_test[index], ticks, params.input_rate, rng)
        golden_counts.append(golden.run_sample(raster, None, learn=False))
        float_counts.append(reference.run_sample(raster, None, learn=False))
    initial = GoldenErbpCore(config).read_weights()
    for layer in range(2):
        golden_change = golden.weights[layer] - initial[layer]
        float_change = reference.weights[layer] - initial[layer]
        assert np.abs(float_change).max() > 0.1          # it did learn something
        # One synapse's change after six samples is mostly rounding noise (a few +-1
        # steps); summed over a neuron's inputs the two models agree.
        assert np.corrcoef(golden_change.sum(axis=0), float_change.sum(axis=0))[0, 1] > 0.9
    golden_counts, float_counts = np.array(golden_counts), np.array(float_counts)
    assert np.abs(golden_counts - float_counts).sum() <= 0.25 * float_counts.sum() + 4
