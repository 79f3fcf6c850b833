"""Drive the DECOLLE core in ``amaranth.sim`` through a case script (see
:mod:`plasticore.sim.decolle_case`). Pure Python: for small networks and unit tests; the
cocotb bench (:mod:`plasticore.sim.decolle_tb`) checks the generated Verilog."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Signal

from plasticore.config import CoreConfig
from plasticore.hdl.decolle_core import DecolleCore
from plasticore.layout import (REGION_BIAS, REGION_MEMBRANE, REGION_REFRACTORY, REGION_SPIKES,
                               REGION_TRACE_P, REGION_TRACE_Q)
from .pysim import OutputCollector, host_read, host_write, offer_tick, simulate

__all__ = ["DecolleRun", "run_decolle", "STATE_REGIONS"]

#: Host regions of the per-neuron and per-input state, by the name of :func:`golden_state`.
STATE_REGIONS = {"membrane": REGION_MEMBRANE, "refractory": REGION_REFRACTORY,
                 "spikes": REGION_SPIKES, "biases": REGION_BIAS,
                 "trace_q": REGION_TRACE_Q, "trace_p": REGION_TRACE_P}


@dataclass
class DecolleRun:
    """What a simulated run saw."""

    spikes: list = field(default_factory=list)        # per tick, per layer: arrays
    state: dict = field(default_factory=dict)         # as golden_state
    registers: dict = field(default_factory=dict)
    tick_cycles: list = field(default_factory=list)   # edges from the one that takes the
                                                      # first input to the end-of-tick output


async def load_case(ctx, core, case) -> None:
    """Write the case's weights and biases through the host port."""
    layout = core.layout
    for layer, (matrix, bias) in enumerate(zip(case["weights"], case["biases"]), 1):
        for (pre, post), value in np.ndenumerate(np.asarray(matrix)):
            await host_write(ctx, core.host, layout.weight_address(layer, pre, post), int(value))
        for neuron, value in enumerate(bias):
            await host_write(ctx, core.host, layout.bias_address(layer, neuron), int(value))


async def read_all_state(ctx, core) -> dict:
    """Read every weight, bias and state word back, per layer."""
    layout = core.layout
    state = {"weights": []}
    for lay in layout.layers:
        state["weights"].append(np.array(
            [[await host_read(ctx, core.host, layout.weight_address(lay.index, pre, post))
              for post in range(lay.n_post)] for pre in range(lay.n_pre)], dtype=np.int64))
    for name, region in STATE_REGIONS.items():
        per_layer = []
        for lay in layout.layers:
            if name.startswith("trace"):
                base, count = lay.row_base, lay.n_pre
            else:
                base, count = lay.state_base, lay.n_post
            per_layer.append(np.array(
                [await host_read(ctx, core.host, layout.address(region, base + k))
                 for k in range(count)], dtype=np.int64))
        state[name] = per_layer
    return state


def run_decolle(config: CoreConfig, case: dict, *, ready_probability: float = 1.0,
                seed: int = 0, read_back: bool = True) -> DecolleRun:
    """Simulate the core on ``case``: load it, run its script, read everything back."""
    core = DecolleCore(config, checks=True)
    layout = core.layout
    result = DecolleRun()
    cycle = Signal(64)
    collector = OutputCollector(core.o_events, len(config.neuron_layers),
                                np.random.default_rng(seed), ready_probability, cycle)
    result.spikes = collector.spikes
    starts = []

    async def drive(ctx):
        await load_case(ctx, core, case)
        for step in case["script"]:
            if step[0] == "sample":
                await host_write(ctx, core.host, layout.register_address("sample_tick"), 0)
                continue
            if step[0] == "write":
                await host_write(ctx, core.host, layout.register_address(step[1]), int(step[2]))
                continue
            starts.append(await offer_tick(ctx, core.i_events, step[1], cycle))
            while len(collector.spikes) < len(starts):
                await ctx.tick()
        if read_back:
            result.state = await read_all_state(ctx, core)
            for name in layout.registers:
                result.registers[name] = await host_read(
                    ctx, core.host, layout.register_address(name)) & 0xFFFFFFFF
        collector.done = True

    simulate(core, cycle, drive, collector)
    result.tick_cycles = [end - start + 1 for start, end in zip(starts, collector.end_cycles)]
    return result
