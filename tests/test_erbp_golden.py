"""The integer eRBP model against a naive per-synapse reference and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from plasticore.config import ConfigError, CoreConfig
from plasticore.golden.erbp import (FLAG_DENDRITE_SATURATED, FLAG_ERROR_SATURATED,
                                    FLAG_WEIGHT_SATURATED, GoldenErbpCore, feedback_matrices,
                                    threefry_word0)
from plasticore.golden.lif import lif_update
from plasticore.golden.prng import threefry2x32
from plasticore.layout import FLAG_ACCUMULATOR_SATURATED, FLAG_MEMBRANE_SATURATED

EXAMPLE = "examples/erbp-digits.toml"


def small_config(**erbp) -> CoreConfig:
    """A tiny core whose narrow formats make every saturation reachable."""
    table = dict(ticks_per_sample=40, test_ticks_per_sample=40, burn_in_ticks=5,
                 input_rate=0.5, label_period=2, soma_gain_shift=4, dendrite_leak_shift=2,
                 gate_low=-300, gate_high=300, learning_rate_shift=6, error_threshold=200,
                 error_input_weight=150, feedback_output_weight=100,
                 feedback_hidden_scale=80, feedback_seed=7, rounding_seed=9, prng_rounds=5,
                 initial_weight_range=[15, 15])
    table.update(erbp)
    return CoreConfig.from_dict(dict(name="small", layers=[5, 4, 3], weight_bits=5,
                                     membrane_bits=10, leak_shift=2, threshold=100,
                                     reset="subtract", refractory_ticks=1, seed=3,
                                     rule="erbp", erbp=table))


# --- A deliberately naive reference: one Python integer at a time, straight from the spec.

def _sat(x, low, high):
    return max(low, min(high, x))


class NaiveErbp:
    def __init__(self, config: CoreConfig, weights, feedback):
        self.c, self.p = config, config.learning
        self.w = [[[int(x) for x in row] for row in m] for m in weights]
        self.f = [[[int(x) for x in row] for row in m] for m in feedback]
        sizes = config.neuron_layers
        self.v = [[0] * n for n in sizes]
        self.ref = [[0] * n for n in sizes]
        self.u = [[0] * n for n in sizes]
        self.e = [[0] * config.layers[-1] for _ in range(2)]
        self.tick_count = self.sample_tick = self.dropped = self.flags = 0

    def tick(self, events, learning_enabled):
        c, p = self.c, self.p
        low, high = c.membrane_range
        wl, wh = c.weight_range
        n_in, n_out = c.n_inputs, c.layers[-1]
        data = [e for e in events if 0 <= e < n_in]
        labels = [e - n_in for e in events if n_in <= e < n_in + n_out]
        self.dropped += len(events) - len(data) - len(labels)
        s = p.learning_rate_shift
        active = learning_enabled and self.sample_tick >= p.burn_in_ticks
        step, frac = [], []
        for v, u in zip(self.v, self.u):
            gate = [active and p.gate_low < v[i] < p.gate_high for i in range(len(v))]
            step.append([u[i] >> s if gate[i] else 0 for i in range(len(v))])
            frac.append([u[i] & ((1 << s) - 1) if gate[i] else 0 for i in range(len(v))])
        offset = 0
        pre = data
        all_spikes = []
        for layer, n in enumerate(c.neuron_layers):
            w = self.w[layer]
            acc = [0] * n
            for j in pre:
                for i in range(n):
                    raw = acc[i] + (w[j][i] << p.soma_gain_shift)
                    if not low <= raw <= high:
                        self.flags |= FLAG_ACCUMULATOR_SATURATED
                    acc[i] = _sat(raw, low, high)
                    synapse = offset + j * n + i
                    word = int(threefry2x32(p.rounding_seed, 0, self.tick_count, synapse,
                                            p.prng_rounds)[0])
                    r = word & ((1 << s) - 1)
                    new = w[j][i] + step[layer][i] + (1 if r < frac[layer][i] else 0)
                    if not wl <= new <= wh:
                        self.flags |= FLAG_WEIGHT_SATURATED
                    w[j][i] = _sat(new, wl, wh)
            offset += len(w) * n
            spikes = []
            for i in range(n):
                if self.ref[layer][i] > 0:
                    self.ref[layer][i] -= 1
                else:
                    v = self.v[layer][i]
                    raw = v - (v >> c.leak_shift) + acc[i]
                    if not low <= raw <= high:
                        self.flags |= FLAG_MEMBRANE_SATURATED
                    v = _sat(raw, low, high)
                    if v >= c.threshold:
                        spikes.append(i)
                        v = 0 if c.reset == "zero" else v - c.threshold
                        self.ref[layer][i] = c.refractory_ticks
                    self.v[layer][i] = v
            all_spikes.append(spikes)
            pre = spikes
        # Error neurons.
        acc = [[0] * n_out for _ in range(2)]
        for k, sign in [(k, 1) for k in labels] + [(k, -1) for k in all_spikes[-1]]:
            for row, direction in ((0, sign), (1, -sign)):
                raw = acc[row][k] + direction * p.error_input_weight
                if not low <= raw <= high:
                    self.flags |= FLAG_ERROR_SATURATED
                acc[row][k] = _sat(raw, low, high)
        error_spikes = [[], []]
        for row in range(2):
            for k in range(n_out):
                raw = self.e[row][k] + acc[row][k]
                if not low <= raw <= high:
                    self.flags |= FLAG_ERROR_SATURATED
                e = max(0, _sat(raw, low, high))
                if e >= p.error_threshold:
                    error_spikes[row].append(k)
                    e -= p.error_threshold
                self.e[row][k] = e
        # Dendrites.
        for layer, n in enumerate(c.neuron_layers):
            fb = [0] * n
            for row, sign in ((0, 1), (1, -1)):
                for k in error_spikes[row]:
                    for i in range(n):
                        raw = fb[i] + sign * self.f[layer][k][i]
                        if not low <= raw <= high:
                            self.flags |= FLAG_DENDRITE_SATURATED
                        fb[i] = _sat(raw, low, high)
            for i in range(n):
                u = self.u[layer][i]
                leak = u >> p.dendrite_leak_shift
                if u > 0 and leak == 0:
                    leak = 1
                raw = u - leak + fb[i]
                if not low <= raw <= high:
                    self.flags |= FLAG_DENDRITE_SATURATED
                self.u[layer][i] = _sat(raw, low, high)
        self.tick_count += 1
        self.sample_tick += 1
        return all_spikes, error_spikes


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_matches_naive_reference_bit_for_bit(reset):
    config = small_config().replace(reset=reset)
    core = GoldenErbpCore(config)
    naive = NaiveErbp(config, core.read_weights(), core.feedback)
    rng = np.random.default_rng(11)
    n_in, n_out = config.n_inputs, config.layers[-1]
    for tick in range(120):
        if tick % 30 == 0:
            core.start_sample()
            naive.sample_tick = 0
        learning = tick < 100
        core.learning_enabled = learning
        # Data events, labels (sometimes several per tick, to saturate the error
        # accumulators), a duplicate and out-of-range addresses now and then.
        events = list(np.flatnonzero(rng.random(n_in) < 0.6))
        events += [n_in + int(k) for k in rng.integers(0, n_out, size=rng.integers(0, 5))]
        if tick % 7 == 0 and events:
            events.append(events[0])
        if tick % 11 == 0:
            events += [-1, n_in + n_out]
        rng.shuffle(events)
        spikes = core.tick(events)
        naive_spikes, naive_errors = naive.tick([int(e) for e in events], learning)
        assert [list(s) for s in spikes] == naive_spikes, tick
        assert [list(np.flatnonzero(r)) for r in core.last_error_spikes] == naive_errors, tick
        assert [w.tolist() for w in core.weights] == naive.w, tick
        assert [v.tolist() for v in core.membrane] == naive.v, tick
        assert [r.tolist() for r in core.refractory] == naive.ref, tick
        assert [u.tolist() for u in core.dendrite] == naive.u, tick
        assert core.error_state.tolist() == naive.e, tick
        assert core.flags == naive.flags, tick
        assert core.dropped_events == naive.dropped
    # The run exercised what it claims to test.
    assert core.flags & FLAG_WEIGHT_SATURATED
    assert core.flags & FLAG_ACCUMULATOR_SATURATED
    assert core.flags & FLAG_ERROR_SATURATED


def test_fast_threefry_matches_reference():
    counters = np.arange(0, 3000, 7, dtype=np.int64) * 104729
    for rounds in (1, 4, 5, 8, 13, 20):
        for key0, key1, counter0 in ((0, 0, 0), (2, 0, 123), (0xFFFFFFFF, 5, 0xFFFFFFF0)):
            expected = threefry2x32(key0, key1, counter0, counters, rounds)[0]
            assert np.array_equal(threefry_word0(key0, key1, counter0, counters, rounds),
                                  expected)


def test_soma_update_is_lif_update():
    config = small_config()
    core = GoldenErbpCore(config)
    rng = np.random.default_rng(5)
    low, high = config.membrane_range
    for _ in range(200):
        v = rng.integers(low, high + 1, size=4)
        ref = rng.integers(0, 2, size=4)
        acc = rng.integers(2 * low, 2 * high, size=4)
        core.membrane[0], core.refractory[0], core.flags = v.copy(), ref.copy(), 0
        spikes = core._soma_update(0, acc)
        expected_v, expected_ref, expected_spikes, clamped = lif_update(config, v, ref, acc)
        assert np.array_equal(core.membrane[0], expected_v)
        assert np.array_equal(core.refractory[0], expected_ref)
        assert np.array_equal(spikes, expected_spikes)
        assert bool(core.flags & FLAG_MEMBRANE_SATURATED) == bool(clamped.any())


def test_stochastic_rounding_is_unbiased():
    shift = 6
    counters = np.arange(40000, dtype=np.int64)
    draws = threefry_word0(9, 0, 17, counters, 13).astype(np.int64) & ((1 << shift) - 1)
    for u in (1, 5, 31, 32, 63, -1, -17, -64, 200, -333):
        step, frac = u >> shift, u & ((1 << shift) - 1)
        mean = (step + (draws < frac)).mean()
        # Bernoulli standard error at 40000 draws is below 0.0025.
        assert abs(mean - u / 2 ** shift) < 0.01, u
    # Truncation instead would lose everything below one LSB.
    assert (1 >> shift) == 0


def test_error_neurons_hand_computed():
    config = CoreConfig.from_toml(EXAMPLE)
    core = GoldenErbpCore(config, weights=[np.zeros((64, 100)), np.zeros((100, 10))])
    label = 64 + 3
    # Label spikes at ticks 0, 2, 3; threshold 1025, weight 1536, subtract on spike.
    # E+_3: 1536 -> spike, 511 | 511 | 2047 -> spike, 1022 | 2558 -> spike, 1533 |
    #       1533 -> spike, 508 | 508.  E-_3 stays at its floor, 0.
    expected_state = [511, 511, 1022, 1533, 508, 508]
    expected_spike = [True, False, True, True, True, False]
    for tick, events in enumerate([[label], [], [label], [label], [], []]):
        core.tick(events)
        assert core.error_state[0, 3] == expected_state[tick]
        assert bool(core.last_error_spikes[0, 3]) == expected_spike[tick]
        assert core.error_state[1].sum() == 0 and not core.last_error_spikes[1].any()
    # Each E+ spike adds feedback_output_weight (592) to the prediction dendrite, which
    # decays by u >> 3 per tick: 592 | 592-74=518 | 518-64+592=1046 | 1046-130+592=1508
    # | 1508-188+592=1912 | 1912-239=1673.
    assert core.dendrite[1][3] == 1673
    assert core.dendrite[1][[0, 1, 2, 4]].sum() == 0


def test_dendrite_leak_reaches_zero():
    config = small_config()
    core = GoldenErbpCore(config)
    core.dendrite[0] = np.array([3, 1, -1, -5])
    core.tick([])
    # shift 2: 3 >> 2 = 0 -> leak forced to 1; -1 >> 2 = -1; -5 >> 2 = -2.
    assert core.dendrite[0].tolist() == [2, 0, 0, -3]


def test_feedback_matrices():
    config = CoreConfig.from_toml(EXAMPLE)
    params = config.learning
    hidden, output = feedback_matrices(config)
    assert hidden.shape == (10, 100) and output.shape == (10, 10)
    assert np.array_equal(output, 592 * np.eye(10, dtype=np.int64))
    assert (hidden.sum(axis=0) == 0).all()
    scale = params.feedback_hidden_scale
    # Independent recomputation of the draws, one Python integer at a time.
    for i in (0, 37, 99):
        raw = [((int(threefry2x32(params.feedback_seed, 0, k, i, params.prng_rounds)[0])
                 * (2 * scale + 1)) >> 32) - scale for k in range(10)]
        total = sum(raw)
        quotient, remainder = total // 10, total % 10
        expected = [r - quotient - (1 if k < remainder else 0) for k, r in enumerate(raw)]
        assert hidden[:, i].tolist() == expected
    assert hidden.std() > scale / 3
    other = feedback_matrices(config.replace(learning=params.__class__(
        **{**params.to_dict(), "feedback_seed": 2,
           "initial_weight_range": tuple(params.initial_weight_range)})))
    assert not np.array_equal(other[0], hidden)


def test_learning_off_and_burn_in_leave_weights_alone():
    config = small_config(burn_in_ticks=10)
    core = GoldenErbpCore(config)
    core.dendrite = [np.full(4, 200), np.full(3, -200)]   # a strong learning signal
    before = core.read_weights()
    core.learning_enabled = False
    for _ in range(3):
        core.tick([0, 1, 2, 3, 4])
    assert all(np.array_equal(a, b) for a, b in zip(before, core.weights))
    core.start_sample()
    core.learning_enabled = True
    core.dendrite = [np.full(4, 200), np.full(3, -200)]
    for _ in range(10):
        core.tick([0, 1, 2, 3, 4])
    assert all(np.array_equal(a, b) for a, b in zip(before, core.weights))
    core.dendrite = [np.full(4, 200), np.full(3, -200)]
    core.tick([0, 1, 2, 3, 4])
    assert not np.array_equal(before[0], core.weights[0])


def test_gate_blocks_learning_per_neuron():
    config = small_config(gate_low=-50, gate_high=50, burn_in_ticks=0)
    core = GoldenErbpCore(config, weights=[np.zeros((5, 4)), np.zeros((4, 3))])
    core.learning_enabled = True
    core.membrane[0] = np.array([0, 50, -50, 49])       # gate is strict: 50 and -50 are out
    core.dendrite[0] = np.array([128, 128, 128, -128])   # u >> 6 = +-2 exactly, no fraction
    core.tick([1])
    assert core.weights[0][1].tolist() == [2, 0, 0, -2]
    assert not core.weights[0][[0, 2, 3, 4]].any()       # only the row that spiked
    assert core.flags & FLAG_DENDRITE_SATURATED == 0


def test_params_validation_names_the_field():
    base = CoreConfig.from_toml(EXAMPLE).to_dict()

    def load(**erbp):
        data = {**base, "erbp": {**base["erbp"], **erbp}}
        return CoreConfig.from_dict(data)

    cases = {
        "erbp.gate_high": dict(gate_low=10, gate_high=11),
        "erbp.burn_in_ticks": dict(burn_in_ticks=200),
        "erbp.learning_rate_shift": dict(learning_rate_shift=0),
        "erbp.input_rate": dict(input_rate=1.5),
        "erbp.soma_gain_shift": dict(soma_gain_shift=7),   # 16-bit soma, 10-bit weights
        "erbp.initial_weight_range": dict(initial_weight_range=[16]),
        "erbp.initial_weight_range[1]": dict(initial_weight_range=[16, 512]),
        "erbp.error_threshold": dict(error_threshold=True),
        "erbp.no_such_field": dict(no_such_field=1),
    }
    for field, change in cases.items():
        with pytest.raises(ConfigError) as error:
            load(**change)
        assert error.value.field == field, (field, error.value)
    with pytest.raises(ConfigError) as error:
        CoreConfig.from_dict({**base, "layers": [64, 10]})
    assert error.value.field == "layers"
    # Round trip.
    config = CoreConfig.from_toml(EXAMPLE)
    assert CoreConfig.from_dict(config.to_dict()) == config


def test_learns_a_two_class_problem():
    """A few online samples of two disjoint input patterns are enough to separate them."""
    config = small_config(learning_rate_shift=6, burn_in_ticks=5, ticks_per_sample=40,
                          label_period=3, initial_weight_range=[8, 4],
                          soma_gain_shift=3).replace(layers=[6, 16, 2], threshold=60)
    from plasticore.datasets import label_spike_train, rate_encode
    core = GoldenErbpCore(config)
    rng = np.random.default_rng(0)
    patterns = [np.array([1, 1, 1, 0, 0, 0.0]), np.array([0, 0, 0, 1, 1, 1.0])]

    def accuracy():
        correct = 0
        for label in (0, 1) * 10:
            counts = core.run_sample(rate_encode(patterns[label], 40, 0.5, rng), None,
                                     learn=False)
            correct += int(np.argmax(counts) == label and counts.max() > 0)
        return correct / 20

    assert accuracy() < 0.8          # the task is not solved by the initial weights
    for _ in range(30):
        for label in (0, 1):
            core.run_sample(rate_encode(patterns[label], 40, 0.5, rng),
                            label_spike_train(label, 2, 40, 3), learn=True)
    assert accuracy() >= 0.8


def test_learning_rate_schedule_and_register():
    base = CoreConfig.from_toml(EXAMPLE).to_dict()
    config = CoreConfig.from_dict({**base, "erbp": {**base["erbp"], "learning_rate_shift": 30,
                                                    "learning_rate_decay_epochs": 2}})
    params = config.learning
    assert [params.learning_rate_shift_at(e) for e in range(1, 9)] == [30, 30, 31, 31, 32,
                                                                       32, 32, 32]
    constant = CoreConfig.from_dict({**base, "erbp": {**base["erbp"],
                                                      "learning_rate_decay_epochs": 0}}).learning
    assert constant.learning_rate_shift_at(50) == constant.learning_rate_shift
    # The register, not the config, sets the step: u = 256 at shift 7 is exactly +2.
    core = GoldenErbpCore(small_config(burn_in_ticks=0),
                          weights=[np.zeros((5, 4)), np.zeros((4, 3))])
    core.learning_enabled = True
    core.learning_rate_shift = 7
    core.dendrite[0] = np.full(4, 256)
    core.tick([2])
    assert core.weights[0][2].tolist() == [2, 2, 2, 2]
