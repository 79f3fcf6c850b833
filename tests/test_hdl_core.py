"""The whole core in amaranth.sim against the golden model (fast, pure Python)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from plasticore import CoreConfig
from plasticore.golden import GoldenCore
from plasticore.golden.lif import FLAG_ACCUMULATOR_SATURATED, FLAG_MEMBRANE_SATURATED
from plasticore.hdl.core import Core
from plasticore.layout import CORE_MAGIC, CoreLayout, HostAddressError
from plasticore.sim.pysim import (HostError, host_access, host_read, host_write, offer_event,
                                  run_core)
from plasticore.sim.random_case import (case_weights, random_config, random_event_ticks,
                                        random_recurrent_config)


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


async def _push_event(ctx, stream, address, end_of_tick=0):
    """Offer one input event, wait until the core takes it, then offer nothing."""
    await offer_event(ctx, stream, address, end_of_tick)
    ctx.set(stream.valid, 0)


def test_host_write_during_an_open_tick_is_refused():
    """From a tick's first event to its end-of-tick marker, writes answer error and change
    nothing; reads are served; after the tick the same write is done."""
    config = CoreConfig(layers=(3, 2), weight_bits=6, membrane_bits=10, leak_shift=1,
                        threshold=500, lanes=1)

    async def body(ctx, core, layout):
        host = core.host
        ctx.set(core.o_events.ready, 1)
        weight = layout.weight_address(1, 0, 1)
        await host_write(ctx, host, weight, 5)
        await _push_event(ctx, core.i_events, 0)
        for address, value in ((weight, -7), (layout.membrane_address(1, 0), 9),
                               (layout.register_address("flags"), 3)):
            _, error = await host_access(ctx, host, address, write=True, data=value)
            assert error, f"a write to {address:#x} inside an open tick was accepted"
        assert await host_read(ctx, host, weight) == 5
        await _push_event(ctx, core.i_events, 0)
        await _push_event(ctx, core.i_events, 0, end_of_tick=1)
        while not (ctx.get(core.o_events.valid) and ctx.get(core.o_events.payload.end_of_tick)):
            await ctx.tick()
        await ctx.tick()
        # Both events of the tick used the weight 5: the refused write changed nothing.
        assert await host_read(ctx, host, layout.membrane_address(1, 1)) == 10
        await host_write(ctx, host, weight, -7)
        assert await host_read(ctx, host, weight) == -7

    _host_session(config, body)


@pytest.mark.parametrize("case", range(3))
def test_random_recurrent_network_matches_golden(case):
    """Recurrent projections (onto the same and earlier layers): spikes every tick, state
    and weights at the end, as golden."""
    rng = np.random.default_rng(300 + case)
    config = random_recurrent_config(rng)
    assert config.recurrent
    weights = case_weights(config, rng)
    events = random_event_ticks(config, rng, ticks=15, activity=0.4)
    golden, run = _assert_run_matches(config, weights, events, ready_probability=0.7,
                                      seed=case)
    # The recurrent rows went through the host port too.
    assert len(run.weights) == len(config.projection_pairs)
    for have, want in zip(run.weights, golden.weights):
        np.testing.assert_array_equal(have, want)


def test_recurrent_spikes_arrive_at_the_start_of_the_next_tick():
    """A hand-computed self-projection: the spike of a tick adds its weight at the start of
    the next tick, before that tick's input events (the order shows through saturation)."""
    config = CoreConfig(layers=(1, 1), weight_bits=6, membrane_bits=7, leak_shift=0,
                        threshold=20, reset="zero", projections=((0, 1), (1, 1)))
    # Input weight 31, self weight -32, accumulators in [-64, 63].
    # Tick 0: 31, spike. Tick 1: -32 first, then three inputs: 61 (inputs first would
    # clamp at 63 and end at 31, raising accumulator_saturated), spike. Tick 2: -32, no
    # spike. Tick 3: no recurrent input, -32 + 31 = -1.
    weights = [np.array([[31]]), np.array([[-32]])]
    golden, run = _assert_run_matches(config, weights, [[0], [0, 0, 0], [], [0]])
    assert [list(tick[0]) for tick in run.spikes] == [[0], [0], [], []]
    assert golden.membrane[0][0] == -1
    assert golden.flags == 0


def test_reset_in_the_middle_of_a_tick_clears_the_accumulators():
    """A reset after some events of a tick: the next tick starts from zero accumulators,
    as a fresh golden model does (membranes and weights are state and are kept)."""
    from amaranth.hdl import ResetInserter, Signal

    config = CoreConfig(layers=(2, 3), weight_bits=6, membrane_bits=10, leak_shift=0,
                        threshold=500, lanes=2)
    core = Core(config)
    reset = Signal()
    sim = Simulator(ResetInserter({"sync": reset})(core))
    sim.add_clock(1e-8)
    layout = CoreLayout(config)

    async def bench(ctx):
        ctx.set(core.o_events.ready, 1)
        for post in range(3):
            await host_write(ctx, core.host, layout.weight_address(1, 0, post), 20 + post)
        for _ in range(4):
            await _push_event(ctx, core.i_events, 0)
        ctx.set(reset, 1)
        await ctx.tick()
        ctx.set(reset, 0)
        await _push_event(ctx, core.i_events, 0)
        await _push_event(ctx, core.i_events, 0, end_of_tick=1)
        while not (ctx.get(core.o_events.valid) and ctx.get(core.o_events.payload.end_of_tick)):
            await ctx.tick()
        await ctx.tick()
        # Only the event after the reset counts (four more would give 100 + 5 post).
        assert [await host_read(ctx, core.host, layout.membrane_address(1, post))
                for post in range(3)] == [20, 21, 22]
        assert await host_read(ctx, core.host, layout.register_address("tick")) == 1

    sim.add_testbench(bench)
    sim.run()


def test_two_owners_of_a_memory_port_in_one_cycle_fail_the_simulation():
    """The ownership check the cores carry with checks=True: quiet while one part drives
    the port, an AssertionError the cycle two do."""
    from amaranth.hdl import Module, Signal

    from plasticore.hdl.shell import assert_one_owner

    m = Module()
    walker, update, host = Signal(), Signal(), Signal()
    assert_one_owner(m, "accumulator read", [walker, update, host])
    sim = Simulator(m)
    sim.add_clock(1e-8)
    cycles = []

    async def bench(ctx):
        for owners in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1)):
            for signal, value in zip((walker, update, host), owners):
                ctx.set(signal, value)
            await ctx.tick()
            cycles.append(owners)

    sim.add_testbench(bench)
    with pytest.raises(AssertionError, match="accumulator read: driven by more than one"):
        sim.run()
    assert cycles == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
