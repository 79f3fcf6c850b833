"""The whole core in amaranth.sim against the golden model (fast, pure Python)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from plasticore import CoreConfig
from plasticore.golden import GoldenCore
from plasticore.golden.lif import FLAG_ACCUMULATOR_SATURATED, FLAG_MEMBRANE_SATURATED
from plasticore.hdl.core import Core
from plasticore.layout import CORE_MAGIC, CoreLayout, HostAddressError
from plasticore.sim.pysim import HostError, host_access, host_read, host_write, run_core
from plasticore.sim.random_case import case_weights, random_config, random_event_ticks


def _assert_run_matches(config, weights, event_ticks, **kwargs):
    golden = GoldenCore(config, weights)
    expected = golden.run(event_ticks)
    run = run_core(config, weights, event_ticks, **kwargs)
    assert len(run.spikes) == len(expected)
    for tick, (want, got) in enumerate(zip(expected, run.spikes)):
        for layer, (w, g) in enumerate(zip(want, got), 1):
            assert list(g) == list(w), f"tick {tick}, layer {layer}"
    for layer in range(len(config.neuron_layers)):
        np.testing.assert_array_equal(run.membranes[layer], golden.membrane[layer])
        np.testing.assert_array_equal(run.refractory[layer], golden.refractory[layer])
    assert run.registers["tick"] == len(event_ticks)
    assert run.registers["dropped_events"] == golden.dropped_events
    assert run.registers["flags"] == golden.flags
    assert run.registers["magic"] == CORE_MAGIC
    # Spike events carry the tick they belong to.
    ticks_seen = [tick for tick, _, _, _ in run.events_out]
    assert ticks_seen == sorted(ticks_seen)
    return golden, run


@pytest.mark.parametrize("case", range(6))
def test_random_network_matches_golden(case):
    rng = np.random.default_rng(100 + case)
    config = random_config(rng)
    weights = case_weights(config, rng)
    events = random_event_ticks(config, rng, ticks=25, activity=0.4)
    golden, _ = _assert_run_matches(config, weights, events,
                                    ready_probability=0.6, seed=case)
    assert golden.tick_count == 25


def test_spikes_reach_every_layer_and_back_pressure():
    config = CoreConfig(layers=(5, 3, 4, 2), weight_bits=6, membrane_bits=10, leak_shift=2,
                        threshold=20, reset="subtract", refractory_ticks=1, lanes=2)
    rng = np.random.default_rng(7)
    weights = [np.full(shape, 15) for shape in ((5, 3), (3, 4), (4, 2))]
    events = random_event_ticks(config, rng, ticks=20, activity=0.8)
    golden, run = _assert_run_matches(config, weights, events, ready_probability=0.3)
    layers_spiking = {layer for _, layer, _, end in run.events_out if not end}
    assert layers_spiking == {1, 2, 3}


def test_saturation_flags_and_dropped_events():
    config = CoreConfig(layers=(3, 2), weight_bits=4, membrane_bits=5, leak_shift=0,
                        threshold=15, reset="zero", lanes=1)
    weights = [np.array([[7, -8], [7, -8], [7, -8]])]
    # Four +7 events clamp the accumulator at 15; -8s clamp at -16, the membrane follows.
    events = [[0, 1, 2, 0, 70000 % 65536], [1, 1, 1], []]
    golden, run = _assert_run_matches(config, weights, events)
    assert golden.flags == FLAG_ACCUMULATOR_SATURATED | FLAG_MEMBRANE_SATURATED
    assert golden.dropped_events == 1


def _host_session(config, body):
    """Run ``body(ctx, core, layout)`` as an amaranth.sim testbench."""
    core = Core(config)
    sim = Simulator(core)
    sim.add_clock(1e-8)
    failures = []

    async def bench(ctx):
        try:
            await body(ctx, core, CoreLayout(config))
        except AssertionError as error:  # surface testbench assertions in pytest
            failures.append(error)

    sim.add_testbench(bench)
    sim.run()
    if failures:
        raise failures[0]


def test_host_port_round_trips_and_refuses_bad_accesses():
    config = CoreConfig(layers=(3, 5, 2), weight_bits=6, membrane_bits=10, leak_shift=1,
                        threshold=100, refractory_ticks=3, lanes=4)

    async def body(ctx, core, layout):
        host = core.host
        # Every weight gets a distinct value; read back after all writes (no aliasing).
        values = {}
        for lay in layout.layers:
            for pre in range(lay.n_pre):
                for post in range(lay.n_post):
                    value = ((lay.index * 7 + pre * 5 + post * 3) % 64) - 32
                    values[(lay.index, pre, post)] = value
                    await host_write(ctx, host, layout.weight_address(lay.index, pre, post), value)
        for (layer, pre, post), value in values.items():
            assert await host_read(ctx, host, layout.weight_address(layer, pre, post)) == value
        await host_write(ctx, host, layout.membrane_address(2, 1), -512)
        assert await host_read(ctx, host, layout.membrane_address(2, 1)) == -512
        await host_write(ctx, host, layout.refractory_address(1, 4), 3)
        assert await host_read(ctx, host, layout.refractory_address(1, 4)) == 3
        assert await host_read(ctx, host, layout.register_address("neurons")) == 7
        assert await host_read(ctx, host, layout.register_address("layers")) == 2

        bad = [
            # (address, write, value, what)
            (layout.address(1, (0 << layout.post_bits) | 5), False, 0, "post past layer 1"),
            (layout.address(1, (3 << layout.post_bits) | 2), False, 0, "post past layer 2"),
            (layout.weight_address(1, 0, 0), True, 32, "weight above range"),
            (layout.weight_address(1, 0, 0), True, -33, "weight below range"),
            (layout.membrane_address(1, 0), True, 512, "membrane above range"),
            (layout.address(2, 7), False, 0, "neuron past the last"),
            (layout.refractory_address(1, 0), True, 4, "refractory above limit"),
            (layout.register_address("tick"), True, 0, "read-only register"),
            (layout.address(0, 6), False, 0, "no such register"),
        ]
        for address, write, value, what in bad:
            _, error = await host_access(ctx, host, address, write, value)
            assert error, what
        # Rows past the last do not fit the offset field here; the layout refuses them.
        assert layout.rows << layout.post_bits == 1 << layout.offset_bits
        try:
            layout.address(1, layout.rows << layout.post_bits)
        except HostAddressError:
            pass
        else:
            raise AssertionError("an offset past the field was accepted")
        # Nothing changed.
        assert await host_read(ctx, host, layout.weight_address(1, 0, 0)) == values[(1, 0, 0)]
        assert await host_read(ctx, host, layout.membrane_address(1, 0)) == 0
        assert await host_read(ctx, host, layout.refractory_address(1, 0)) == 0

    _host_session(config, body)


def test_host_error_is_raised_by_driver():
    config = CoreConfig(layers=(1, 1), weight_bits=4, membrane_bits=6, leak_shift=1, threshold=3)

    async def body(ctx, core, layout):
        try:
            await host_write(ctx, core.host, layout.weight_address(1, 0, 0), 100)
        except HostError as error:
            assert "answered error" in str(error)
        else:
            raise AssertionError("an out-of-range weight was accepted")

    _host_session(config, body)


def test_back_to_back_events_on_one_word_rows():
    """Duplicate events on a single-neuron layer: each read must see the previous write."""
    config = CoreConfig(layers=(2, 1), weight_bits=8, membrane_bits=16, leak_shift=0,
                        threshold=30000, lanes=4)
    weights = [np.array([[3], [-1]])]
    events = [[0] * 9 + [1] * 2 + [0], [1, 0, 1, 0]]
    golden, run = _assert_run_matches(config, weights, events)
    # Twelve events on input 0 (+3 each) and four on input 1 (-1 each), no leak.
    assert golden.membrane[0][0] == 12 * 3 - 4


def test_host_refuses_row_past_the_last():
    config = CoreConfig(layers=(3, 4), weight_bits=4, membrane_bits=6, leak_shift=1, threshold=3)

    async def body(ctx, core, layout):
        assert layout.rows == 3
        _, error = await host_access(ctx, core.host, layout.address(1, 3 << layout.post_bits))
        assert error, "row 3 of a 3-row core was accepted"
        _, error = await host_access(ctx, core.host, layout.address(1, 2 << layout.post_bits | 3))
        assert not error, "the last weight was refused"

    _host_session(config, body)
