"""cocotb testbench: the generated Verilog of a core against the golden model, tick by tick.

The case comes from the JSON file named by ``PLASTICORE_CASE`` (written by
:func:`plasticore.sim.runner.run_case`): a configuration, weights, each tick's input
events and the output back-pressure. The testbench loads the weights through the host
port, streams each tick's events back to back, compares the tick's spikes with the golden
model as soon as the end-of-tick event arrives, and at the end reads every membrane,
refractory counter, weight and status register back through the host port. The first
difference ends the run. The result is written as JSON to the path in the case.

An eRBP core (``rule = "erbp"``) runs against :class:`plasticore.golden.erbp.GoldenErbpCore`;
the case may carry host register writes to make before each tick (learning on and off,
sample starts, the learning rate), and the end also compares every dendrite, error neuron
and learning register. The golden model runs on the case's ``engine``
(:mod:`plasticore.golden.engine`; the compiled one by default).

Every cycle the bench drives inputs just after the falling clock edge and samples the
settled outputs in the read-only phase, so what it sees is what the rising edge takes.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

from plasticore.config import CoreConfig
from plasticore.golden.engine import core_model
from plasticore.golden.lif import projection_shapes
from plasticore.hdl.interfaces import ADDRESS_BITS, LAYER_BITS, TICK_BITS
from plasticore.layout import CoreLayout, layout_for
from plasticore.sim.random_case import apply_erbp_writes
from plasticore.sim.scoreboard import Mismatch, Scoreboard

NEURON_MASK = (1 << ADDRESS_BITS) - 1
CLOCK_NS = 10


def _high(signal) -> bool:
    """True when a 1-bit signal is 1. Icarus shows combinational outputs as X until their
    inputs first change, so X (and Z) read as low rather than raising."""
    return signal.value == 1


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & (1 << 31) else value


async def run_job(dut, run) -> None:
    """Run the job in the JSON file named by ``PLASTICORE_CASE``: ``await run(dut, job)``
    returns the result, which is written to ``job["result"]``; a mismatch fails the test."""
    with open(os.environ["PLASTICORE_CASE"]) as file:
        job = json.load(file)
    result = await run(dut, job)
    with open(job["result"], "w") as file:
        json.dump(result, file)
    assert result["mismatch"] is None, f"RTL differs from golden: {result['mismatch']}"


def read_output(dut) -> tuple[int, int, int, int]:
    """Decode the output payload as ``(tick, layer, neuron, end_of_tick)``."""
    value = dut.o_events__payload.value
    if not value.is_resolvable:
        raise Mismatch(what="output event with unknown bits", payload=str(value))
    word = value.to_unsigned()
    neuron = word & NEURON_MASK
    layer = (word >> ADDRESS_BITS) & ((1 << LAYER_BITS) - 1)
    tick = (word >> (ADDRESS_BITS + LAYER_BITS)) & ((1 << TICK_BITS) - 1)
    end = (word >> (ADDRESS_BITS + LAYER_BITS + TICK_BITS)) & 1
    return tick, layer, neuron, end


def tick_work_bound(config: CoreConfig) -> int:
    """Cycles per input event within which a tick must end (or it has hung): generous
    multiples of the work a tick does per event, for every rule."""
    layout = layout_for(config)
    if config.rule == "decolle":
        work = (sum(lay.n_pre * (lay.n_post + 1) + 4 * lay.n_post + 16 for lay in layout.layers)
                + config.learning.prng_rounds)
        return work * (2 + config.layers[-1])
    # Every row of every projection and every neuron, and the recurrent replay of each
    # source layer's spikes.
    work = (sum(lay.row_words for lay in layout.projections) + config.n_neurons) * 4
    work += 4 * sum(lay.n_pre * lay.row_words for lay in layout.recurrent)
    if config.rule == "erbp":
        # The error, feedback and dendrite passes: at most every error neuron spiking.
        work += 2 * config.layers[-1] * sum(config.neuron_layers) + 2 * config.n_neurons + 100
    return work


def case_matrices(config: CoreConfig, matrices) -> list[np.ndarray]:
    """The weight matrices of a JSON case as int64 arrays of the projections' shapes."""
    return [np.array(w, dtype=np.int64).reshape(shape)
            for w, shape in zip(matrices, projection_shapes(config))]


class CoreBench:
    """Cycle-level driver and monitor of the core's streams and host port."""

    def __init__(self, dut, rng: np.random.Generator, ready_probability: float,
                 cycles_per_event: int):
        self.dut = dut
        # A tick that takes far longer than its work explains has hung: report, don't wait.
        self.cycles_per_event = cycles_per_event
        self.rng = rng
        self.ready_probability = ready_probability
        self.cycle = 0
        self.outputs = []            # (tick, layer, neuron, end_of_tick)

    async def step(self, offer=None):
        """Run one clock cycle: offer ``offer`` = (address, end_of_tick) on the input stream
        (or nothing), accept output with the configured probability.

        Returns True when the offered input was taken at this cycle's rising edge.
        """
        dut = self.dut
        await FallingEdge(dut.clk)
        if offer is None:
            dut.i_events__valid.value = 0
        else:
            address, end_of_tick = offer
            dut.i_events__payload.value = (end_of_tick << ADDRESS_BITS) | (address & 0xFFFF)
            dut.i_events__valid.value = 1
        ready = bool(self.rng.random() < self.ready_probability)
        dut.o_events__ready.value = int(ready)
        await ReadOnly()
        taken = offer is not None and _high(dut.i_events__ready)
        if ready and _high(dut.o_events__valid):
            self.outputs.append(read_output(dut))
        self.cycle += 1
        return taken

    async def start(self, ready: int = 0) -> None:
        """Start the clock and reset the core, with every input idle."""
        dut = self.dut
        dut.i_events__valid.value = 0
        dut.o_events__ready.value = ready
        dut.host__strobe.value = 0
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0

    async def host(self, address: int, write: bool = False, data: int = 0):
        """One host access between ticks; returns ``(read_data, error)``."""
        dut = self.dut
        await FallingEdge(dut.clk)
        dut.i_events__valid.value = 0
        dut.host__address.value = address
        dut.host__write.value = int(write)
        dut.host__write_data.value = data & 0xFFFFFFFF
        dut.host__strobe.value = 1
        while True:
            await ReadOnly()
            if _high(dut.host__ack):
                result = (dut.host__read_data.value.to_unsigned(), _high(dut.host__error))
                break
            await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.host__strobe.value = 0
        return result

    async def host_read(self, address: int) -> int:
        data, error = await self.host(address)
        if error:
            raise Mismatch(what="host read answered error", address=hex(address))
        return _signed32(data)

    async def host_write(self, address: int, value: int) -> None:
        _, error = await self.host(address, True, value)
        if error:
            raise Mismatch(what="host write answered error", address=hex(address), value=value)

    async def load(self, layout, weights, biases=None) -> None:
        """Write every weight (and a DECOLLE core's biases) through the host port."""
        for projection, matrix in enumerate(weights):
            for (pre, post), value in np.ndenumerate(np.asarray(matrix)):
                await self.host_write(layout.projection_address(projection, pre, post),
                                      int(value))
        for layer, layer_biases in enumerate(biases or [], 1):
            for neuron, value in enumerate(layer_biases):
                await self.host_write(layout.bias_address(layer, neuron), int(value))

    async def run_tick(self, events):
        """Stream one tick's events back to back, then wait for its end-of-tick event.

        Returns the tick's output events and the cycles from the first offer to the
        end-of-tick event.
        """
        start_cycle = self.cycle
        first_output = len(self.outputs)
        queue = [(int(a), 0) for a in events] + [(0, 1)]
        position = 0
        limit = int((1000 + self.cycles_per_event * len(queue)) / max(self.ready_probability, 0.05))
        while self.cycle - start_cycle < limit:
            offer = queue[position] if position < len(queue) else None
            if await self.step(offer):
                position += 1
            if self.outputs[first_output:] and self.outputs[-1][3]:
                return self.outputs[first_output:], self.cycle - start_cycle
        raise Mismatch(what="tick did not end", cycles=limit, inputs_taken=position,
                       inputs=len(queue))

    async def run_tick_fast(self, events):
        """:meth:`run_tick` with the output always ready: stream the events, then sleep on
        the output's ``valid`` until the end-of-tick event instead of stepping every cycle
        (long ticks cost simulator time only). Same returns."""
        dut = self.dut
        start = get_sim_time("ns")
        first = len(self.outputs)
        queue = [(int(a), 0) for a in events] + [(0, 1)]
        limit_ns = (1000 + self.cycles_per_event * len(queue)) * CLOCK_NS
        position = 0
        while position < len(queue):
            if await self.step(queue[position]):
                position += 1
        await FallingEdge(dut.clk)
        dut.i_events__valid.value = 0
        dut.o_events__ready.value = 1
        while not (len(self.outputs) > first and self.outputs[-1][3]):
            await ReadOnly()
            if not _high(dut.o_events__valid):
                try:
                    await with_timeout(RisingEdge(dut.o_events__valid), limit_ns, "ns")
                except SimTimeoutError:
                    raise Mismatch(what="tick did not end", cycles=limit_ns // CLOCK_NS,
                                   inputs=len(queue)) from None
                await ReadOnly()
                if not _high(dut.o_events__valid):
                    # A glitch: look again, out of the read-only phase, half a cycle on.
                    await FallingEdge(dut.clk)
                    continue
            self.outputs.append(read_output(dut))
            await RisingEdge(dut.clk)      # the edge that takes it
        cycles = round((get_sim_time("ns") - start) / CLOCK_NS)
        return self.outputs[first:], cycles


async def _run_case(dut, case: dict) -> dict:
    config = CoreConfig.from_dict(case["config"])
    layout = CoreLayout(config)
    weights = case_matrices(config, case["weights"])
    # A test of the checker itself may give the golden model other weights than the RTL.
    golden_weights = case.get("golden_weights")
    erbp = config.rule == "erbp"
    golden = core_model(config, weights if golden_weights is None else
                        case_matrices(config, golden_weights), engine=case.get("engine"))
    register_writes = case.get("register_writes") or [[] for _ in case["event_ticks"]]
    bench = CoreBench(dut, np.random.default_rng(case["seed"]), case["ready_probability"],
                      tick_work_bound(config))
    await bench.start()

    scoreboard = Scoreboard(bench, golden, layout)
    result = {"ticks": 0, "spikes": 0, "state_words": 0, "mismatch": None,
              "tick_cycles": [], "synaptic_events": [], "input_events": []}
    try:
        await bench.load(layout, weights)
        for tick, events in enumerate(case["event_ticks"]):
            for name, value in register_writes[tick]:
                await bench.host_write(layout.register_address(name), int(value))
            if erbp:
                apply_erbp_writes(golden, register_writes[tick])
            tag = golden.tick_count
            expected = golden.tick(events)
            outputs, cycles = await bench.run_tick(events)
            await scoreboard.after_tick(tag, outputs, expected)
            result["ticks"] += 1
            result["spikes"] += sum(len(s) for s in expected)
            result["tick_cycles"].append(cycles)
            valid = [a for a in events if 0 <= a < config.n_inputs]
            presynaptic = [len(valid)] + [len(s) for s in expected[:-1]]
            result["input_events"].append(len(events))
            # Recurrent projections deliver this tick's spikes before the tick ends.
            recurrent = sum(len(expected[source - 1]) * config.layers[target]
                            for source, target in config.recurrent)
            result["synaptic_events"].append(
                int(sum(n * size for n, size in zip(presynaptic, config.neuron_layers)))
                + recurrent)
        scoreboard.words = 0
        await scoreboard.check_state("end", weights=case.get("check_weights", True))
        result["state_words"] = scoreboard.words
    except Mismatch as mismatch:
        result["mismatch"] = mismatch.as_json()
    return result


@cocotb.test()
async def core_matches_golden(dut):
    """Run the case named by PLASTICORE_CASE and write its result."""
    await run_job(dut, _run_case)
