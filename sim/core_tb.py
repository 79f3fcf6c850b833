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
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from plasticore.config import CoreConfig
from plasticore.golden.engine import core_model
from plasticore.hdl.interfaces import ADDRESS_BITS, LAYER_BITS, TICK_BITS
from plasticore.layout import CoreLayout
from plasticore.sim.random_case import apply_erbp_writes

NEURON_MASK = (1 << ADDRESS_BITS) - 1


def _high(signal) -> bool:
    """True when a 1-bit signal is 1. Icarus shows combinational outputs as X until their
    inputs first change, so X (and Z) read as low rather than raising."""
    return signal.value == 1


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & (1 << 31) else value


class Mismatch(Exception):
    """The RTL and the golden model disagree."""

    def __init__(self, **fields):
        self.fields = fields
        super().__init__(", ".join(f"{k} {v}" for k, v in fields.items()))

    def as_json(self) -> dict:
        """The fields, with values JSON cannot hold as text."""
        return {k: (v if isinstance(v, (int, str, list, type(None))) else str(v))
                for k, v in self.fields.items()}


async def run_job(dut, run) -> None:
    """Run the job in the JSON file named by ``PLASTICORE_CASE``: ``await run(dut, job)``
    returns the result, which is written to ``job["result"]``; a mismatch fails the test."""
    with open(os.environ["PLASTICORE_CASE"]) as file:
        job = json.load(file)
    result = await run(dut, job)
    with open(job["result"], "w") as file:
        json.dump(result, file)
    assert result["mismatch"] is None, f"RTL differs from golden: {result['mismatch']}"


def check_tick_outputs(tick: int, outputs, expected) -> None:
    """Compare one tick's output events with the golden spikes of each layer.

    Raises
    ------
    Mismatch
        At the first event tagged with another tick, layer out of range, or layer whose
        spikes differ (naming the first neuron that differs).
    """
    n_layers = len(expected)
    got = [[] for _ in range(n_layers)]
    for out_tick, layer, neuron, end in outputs:
        if out_tick != tick:
            raise Mismatch(tick=tick, what="output event tagged with tick",
                           expected=tick, got=out_tick)
        if not end:
            if not 1 <= layer <= n_layers:
                raise Mismatch(tick=tick, what="layer out of range", got=layer)
            got[layer - 1].append(neuron)
    for layer, (want, have) in enumerate(zip(expected, got), 1):
        if list(want) != have:
            extra = sorted(set(have) - set(want.tolist()))
            missing = sorted(set(want.tolist()) - set(have))
            neuron = (extra + missing)[0] if extra or missing else None
            raise Mismatch(tick=tick, layer=layer, neuron=neuron,
                           expected=[int(x) for x in want], got=have)


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
            value = dut.o_events__payload.value
            if not value.is_resolvable:
                raise Mismatch(what="output event with unknown bits", payload=str(value))
            word = value.to_unsigned()
            neuron = word & NEURON_MASK
            layer = (word >> ADDRESS_BITS) & ((1 << LAYER_BITS) - 1)
            tick = (word >> (ADDRESS_BITS + LAYER_BITS)) & ((1 << TICK_BITS) - 1)
            end = (word >> (ADDRESS_BITS + LAYER_BITS + TICK_BITS)) & 1
            self.outputs.append((tick, layer, neuron, end))
        self.cycle += 1
        return taken

    async def start(self, ready: int = 0) -> None:
        """Start the clock and reset the core, with every input idle."""
        dut = self.dut
        dut.i_events__valid.value = 0
        dut.o_events__ready.value = ready
        dut.host__strobe.value = 0
        Clock(dut.clk, 10, unit="ns").start()
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


async def _run_case(dut, case: dict) -> dict:
    config = CoreConfig.from_dict(case["config"])
    layout = CoreLayout(config)
    weights = [np.array(w, dtype=np.int64).reshape(n_pre, n_post) for w, n_pre, n_post
               in zip(case["weights"], config.layers, config.layers[1:])]
    # A test of the checker itself may give the golden model other weights than the RTL.
    golden_weights = case.get("golden_weights")
    erbp = config.rule == "erbp"
    golden = core_model(config, weights if golden_weights is None else
                        [np.array(w, dtype=np.int64) for w in golden_weights],
                        engine=case.get("engine"))
    register_writes = case.get("register_writes") or [[] for _ in case["event_ticks"]]
    work_per_event = (sum(lay.row_words for lay in layout.layers) + config.n_neurons) * 4
    if erbp:
        # The error, feedback and dendrite passes: at most every error neuron spiking.
        work_per_event += (2 * config.layers[-1] * sum(config.neuron_layers)
                           + 2 * config.n_neurons + 100)
    bench = CoreBench(dut, np.random.default_rng(case["seed"]), case["ready_probability"],
                      work_per_event)
    await bench.start()

    result = {"ticks": 0, "spikes": 0, "state_words": 0, "mismatch": None,
              "tick_cycles": [], "synaptic_events": [], "input_events": []}
    try:
        for layer, matrix in enumerate(weights, 1):
            for (pre, post), value in np.ndenumerate(matrix):
                await bench.host_write(layout.weight_address(layer, pre, post), int(value))

        for tick, events in enumerate(case["event_ticks"]):
            for name, value in register_writes[tick]:
                await bench.host_write(layout.register_address(name), int(value))
            if erbp:
                apply_erbp_writes(golden, register_writes[tick])
            expected = golden.tick(events)
            outputs, cycles = await bench.run_tick(events)
            check_tick_outputs(tick, outputs, expected)
            result["ticks"] += 1
            result["spikes"] += sum(len(s) for s in expected)
            result["tick_cycles"].append(cycles)
            valid = [a for a in events if 0 <= a < config.n_inputs]
            presynaptic = [len(valid)] + [len(s) for s in expected[:-1]]
            result["input_events"].append(len(events))
            result["synaptic_events"].append(
                int(sum(n * size for n, size in zip(presynaptic, config.neuron_layers))))

        words = 0
        for index, lay in enumerate(layout.layers):
            for neuron in range(lay.n_post):
                checks = [("membrane", layout.membrane_address(lay.index, neuron),
                           golden.membrane[index][neuron]),
                          ("refractory", layout.refractory_address(lay.index, neuron),
                           golden.refractory[index][neuron])]
                if erbp:
                    checks.append(("dendrite", layout.dendrite_address(lay.index, neuron),
                                   golden.dendrite[index][neuron]))
                for what, address, want in checks:
                    have = await bench.host_read(address)
                    if have != int(want):
                        raise Mismatch(tick="end", layer=lay.index, neuron=neuron, what=what,
                                       expected=int(want), got=have)
                    words += 1
        if case.get("check_weights", True):
            for index, lay in enumerate(layout.layers):
                for pre in range(lay.n_pre):
                    for post in range(lay.n_post):
                        have = await bench.host_read(layout.weight_address(lay.index, pre, post))
                        want = int(golden.weights[index][pre, post])
                        if have != want:
                            raise Mismatch(tick="end", layer=lay.index, what="weight",
                                           pre=pre, post=post, expected=want, got=have)
                        words += 1
        if erbp:
            for sign in (0, 1):
                for k in range(config.layers[-1]):
                    have = await bench.host_read(layout.error_address(sign, k))
                    want = int(golden.error_state[sign, k])
                    if have != want:
                        raise Mismatch(tick="end", what="error neuron", sign="+-"[sign], k=k,
                                       expected=want, got=have)
                    words += 1
        registers = [("tick", golden.tick_count), ("dropped_events", golden.dropped_events),
                     ("flags", golden.flags)]
        if erbp:
            registers += [("learning_enabled", int(golden.learning_enabled)),
                          ("sample_tick", golden.sample_tick),
                          ("burn_in_ticks", golden.burn_in_ticks),
                          ("learning_rate_shift", golden.learning_rate_shift)]
        for name, want in registers:
            have = (await bench.host_read(layout.register_address(name))) & 0xFFFFFFFF
            if have != want:
                raise Mismatch(tick="end", what=f"register {name}", expected=want, got=have)
            words += 1
        result["state_words"] = words
    except Mismatch as mismatch:
        result["mismatch"] = mismatch.as_json()
    return result


@cocotb.test()
async def core_matches_golden(dut):
    """Run the case named by PLASTICORE_CASE and write its result."""
    await run_job(dut, _run_case)
