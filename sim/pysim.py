"""Drive the Amaranth core in ``amaranth.sim`` with the golden model's run API.

Fast enough for unit tests of small networks (pure Python, no Verilog); the cocotb flow in
:mod:`plasticore.sim.runner` checks the generated Verilog.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from plasticore.config import CoreConfig
from plasticore.layout import CoreLayout
from plasticore.hdl.core import Core

__all__ = ["HostError", "PysimRun", "run_core", "host_read", "host_write", "OutputCollector",
           "offer_event", "offer_tick"]


class HostError(RuntimeError):
    """The core answered a host access with ``error``."""


def _to_signed(value: int, bits: int = 32) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


async def host_access(ctx, host, address: int, write: bool = False, data: int = 0):
    """Do one host access; return ``(read_data, error)``."""
    ctx.set(host.address, address)
    ctx.set(host.write, write)
    ctx.set(host.write_data, data & 0xFFFFFFFF)
    ctx.set(host.strobe, 1)
    while True:
        ack, error, read_data = ctx.get(host.ack), ctx.get(host.error), ctx.get(host.read_data)
        await ctx.tick()
        if ack:
            break
    ctx.set(host.strobe, 0)
    return read_data, bool(error)


async def offer_event(ctx, stream, address: int, end_of_tick: int = 0) -> None:
    """Offer one input event and wait until the core takes it (``valid`` stays high)."""
    ctx.set(stream.payload, {"address": address & 0xFFFF, "end_of_tick": end_of_tick})
    ctx.set(stream.valid, 1)
    while True:
        ready = ctx.get(stream.ready)
        await ctx.tick()
        if ready:
            return


async def host_read(ctx, host, address: int) -> int:
    """Read a host word as a signed 32-bit value; raise :class:`HostError` on error."""
    data, error = await host_access(ctx, host, address)
    if error:
        raise HostError(f"host read of address {address:#x} answered error")
    return _to_signed(data)


async def host_write(ctx, host, address: int, value: int) -> None:
    """Write a host word; raise :class:`HostError` on error."""
    _, error = await host_access(ctx, host, address, write=True, data=value)
    if error:
        raise HostError(f"host write of {value} to address {address:#x} answered error")


async def load_weights(ctx, core: Core, weights) -> None:
    """Write every weight through the host port."""
    layout = core.layout
    for projection, matrix in enumerate(weights):
        for (pre, post), value in np.ndenumerate(matrix):
            await host_write(ctx, core.host, layout.projection_address(projection, pre, post),
                             int(value))


async def _read_per_layer(ctx, core: Core, address_of):
    layout = core.layout
    return [np.array([await host_read(ctx, core.host, address_of(lay.index, i))
                      for i in range(lay.n_post)], dtype=np.int64) for lay in layout.layers]


async def read_state(ctx, core: Core):
    """Return ``(membranes, refractory)`` per neuron layer, read through the host port."""
    layout = core.layout
    return (await _read_per_layer(ctx, core, layout.membrane_address),
            await _read_per_layer(ctx, core, layout.refractory_address))


async def read_weights(ctx, core: Core) -> list[np.ndarray]:
    """Read every weight through the host port."""
    layout = core.layout
    return [np.array([[await host_read(ctx, core.host, layout.projection_address(p, j, i))
                       for i in range(lay.n_post)] for j in range(lay.n_pre)], dtype=np.int64)
            for p, lay in enumerate(layout.projections)]


async def read_erbp_state(ctx, core: Core):
    """Return ``(dendrites per layer, error states (2, N_L))`` of an eRBP core."""
    layout = core.layout
    dendrites = await _read_per_layer(ctx, core, layout.dendrite_address)
    classes = core.config.layers[-1]
    errors = np.array([[await host_read(ctx, core.host, layout.error_address(sign, k))
                        for k in range(classes)] for sign in (0, 1)], dtype=np.int64)
    return dendrites, errors


class OutputCollector:
    """The one output collector of the amaranth.sim drivers.

    Accepts the core's output stream with probability ``ready_probability`` per cycle and
    records every event in arrival order, nothing sorted: ``events`` holds
    ``(tick, layer, neuron, end_of_tick)``, ``spikes`` one entry per completed tick with
    each layer's neurons in the order they came, ``end_cycles`` the value of ``cycle`` at
    each end-of-tick event. Run it as a background testbench; it stops when ``done``.
    """

    def __init__(self, stream, n_layers: int, rng: np.random.Generator,
                 ready_probability: float, cycle):
        self.stream = stream
        self.n_layers = n_layers
        self.rng = rng
        self.ready_probability = ready_probability
        self.cycle = cycle
        self.events: list[tuple[int, int, int, int]] = []
        self.spikes: list[list[np.ndarray]] = []
        self.end_cycles: list[int] = []
        self.done = False

    async def run(self, ctx) -> None:
        current = [[] for _ in range(self.n_layers)]
        stream = self.stream
        while not self.done:
            ready = bool(self.rng.random() < self.ready_probability)
            ctx.set(stream.ready, ready)
            valid = ctx.get(stream.valid)
            payload = ctx.get(stream.payload)
            await ctx.tick()
            if not (valid and ready):
                continue
            self.events.append((payload.tick, payload.layer, payload.neuron,
                                payload.end_of_tick))
            if payload.end_of_tick:
                self.end_cycles.append(ctx.get(self.cycle))
                self.spikes.append([np.array(s, dtype=np.int64) for s in current])
                current = [[] for _ in range(self.n_layers)]
            else:
                current[payload.layer - 1].append(payload.neuron)


async def offer_tick(ctx, stream, events, cycle) -> int:
    """Offer one tick's input events back to back, then its end-of-tick event; return the
    value of ``cycle`` at the edge that took the first of them."""
    start = None
    for address, end in [(int(a), 0) for a in events] + [(0, 1)]:
        await offer_event(ctx, stream, address, end)
        if start is None:
            start = ctx.get(cycle)
    ctx.set(stream.valid, 0)
    return start


@dataclass
class PysimRun:
    """What a simulated run saw."""

    spikes: list = field(default_factory=list)          # per tick, per layer, arrival order
    membranes: list = field(default_factory=list)
    refractory: list = field(default_factory=list)
    registers: dict = field(default_factory=dict)
    weights: list = field(default_factory=list)         # eRBP and recurrent runs
    dendrites: list = field(default_factory=list)       # eRBP runs
    errors: np.ndarray | None = None                    # eRBP runs: (2, N_L) E+ and E-
    tick_cycles: list = field(default_factory=list)     # cycles from first event to end of tick
    events_out: list = field(default_factory=list)      # raw (tick, layer, neuron, end_of_tick)


def run_core(config: CoreConfig, weights, event_ticks, *, ready_probability: float = 1.0,
             seed: int = 0, read_back: bool = True, vcd: str | None = None,
             register_writes=None) -> PysimRun:
    """Simulate the core: load ``weights``, run one tick per entry of ``event_ticks``.

    Input events are offered back to back (``valid`` never drops inside a tick); the
    output is accepted with ``ready_probability`` per cycle to exercise back-pressure.
    ``register_writes``, one list of ``(register name, value)`` per tick, are written
    through the host port before the tick's first event. An eRBP core's read-back also
    holds the learned weights, dendrites, error neurons and learning registers.
    """
    core = Core(config, checks=True)
    layout = CoreLayout(config)
    result = PysimRun()
    cycle = Signal(64)
    collector = OutputCollector(core.o_events, len(config.neuron_layers),
                                np.random.default_rng(seed), ready_probability, cycle)
    result.spikes, result.events_out = collector.spikes, collector.events

    async def drive(ctx):
        await load_weights(ctx, core, weights)
        for tick_index, events in enumerate(event_ticks):
            for name, value in (register_writes[tick_index] if register_writes else ()):
                await host_write(ctx, core.host, layout.register_address(name), value)
            start = await offer_tick(ctx, core.i_events, events, cycle)
            # Wait for the end of the tick before the host may look at the state.
            while len(collector.spikes) < tick_index + 1:
                await ctx.tick()
            result.tick_cycles.append(ctx.get(cycle) - start)
        if read_back:
            result.membranes, result.refractory = await read_state(ctx, core)
            for name in layout.registers:
                result.registers[name] = await host_read(ctx, core.host,
                                                         layout.register_address(name)) & 0xFFFFFFFF
            if layout.erbp or layout.recurrent:
                result.weights = await read_weights(ctx, core)
            if layout.erbp:
                result.dendrites, result.errors = await read_erbp_state(ctx, core)
        collector.done = True

    simulate(core, cycle, drive, collector, vcd)
    return result


def simulate(core, cycle, drive, collector: OutputCollector, vcd: str | None = None) -> None:
    """Simulate ``core`` with a free-running ``cycle`` counter, the ``drive`` testbench and
    the ``collector`` in the background (optionally writing a VCD file)."""
    top = Module()
    top.submodules.core = core
    top.d.sync += cycle.eq(cycle + 1)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collector.run, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
