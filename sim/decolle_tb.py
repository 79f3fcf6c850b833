"""cocotb testbench: the generated Verilog of a DECOLLE core against the golden model.

The case comes from the JSON file named by ``PLASTICORE_CASE`` (written by
:func:`plasticore.sim.runner.run_decolle_case`): a configuration, initial weights and
biases, a script of register writes and ticks (:mod:`plasticore.sim.decolle_case`) and the
output back-pressure. The bench loads the weights and biases through the host port, runs
the script on the RTL and on the golden model (:class:`GoldenDecolle` on the case's
``engine``, :mod:`plasticore.golden.engine`) side by side, compares each tick's
spikes as soon as its end-of-tick event arrives, and at the end reads every weight, bias,
membrane, refractory state, spike, trace and register back through the host port. The
first difference ends the run; the result is written as JSON to the path in the case.

With the output always ready the bench sleeps on the output's ``valid`` between events
instead of stepping every cycle, so that long runs (the digits) cost simulator time only.
"""

from __future__ import annotations


import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from plasticore.config import CoreConfig
from plasticore.golden.engine import decolle_model
from plasticore.hdl.interfaces import ADDRESS_BITS, LAYER_BITS, TICK_BITS
from plasticore.layout import DecolleLayout
from plasticore.sim.core_tb import CoreBench, Mismatch, _high, check_tick_outputs, run_job
from plasticore.sim.decolle_case import golden_apply, golden_state
from plasticore.sim.decolle_pysim import STATE_REGIONS

CLOCK_NS = 10


def _decode(word: int):
    neuron = word & ((1 << ADDRESS_BITS) - 1)
    layer = (word >> ADDRESS_BITS) & ((1 << LAYER_BITS) - 1)
    tick = (word >> (ADDRESS_BITS + LAYER_BITS)) & ((1 << TICK_BITS) - 1)
    end = (word >> (ADDRESS_BITS + LAYER_BITS + TICK_BITS)) & 1
    return tick, layer, neuron, end


class DecolleBench(CoreBench):
    """:class:`CoreBench` with a tick that can sleep between output events."""

    async def run_tick_fast(self, events):
        """Stream one tick's events, then sleep on the output's ``valid`` (the output is
        always ready) until the end-of-tick event. Returns the tick's output events and
        the cycles from the first offer to the end-of-tick event."""
        dut = self.dut
        start = get_sim_time("ns")
        first = len(self.outputs)
        queue = [(int(a), 0) for a in events] + [(0, 1)]
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
                await RisingEdge(dut.o_events__valid)
                await ReadOnly()
                if not _high(dut.o_events__valid):
                    continue
            value = dut.o_events__payload.value
            if not value.is_resolvable:
                raise Mismatch(what="output event with unknown bits", payload=str(value))
            self.outputs.append(_decode(value.to_unsigned()))
            await RisingEdge(dut.clk)      # the edge that takes it
        cycles = round((get_sim_time("ns") - start) / CLOCK_NS)
        return self.outputs[first:], cycles


async def _run_case(dut, case: dict) -> dict:
    config = CoreConfig.from_dict(case["config"])
    layout = DecolleLayout(config)
    weights = [np.array(w, dtype=np.int64).reshape(n_pre, n_post) for w, n_pre, n_post
               in zip(case["weights"], config.layers, config.layers[1:])]
    biases = [np.array(b, dtype=np.int64) for b in case["biases"]]
    # A test of the checker itself may give the golden model other weights than the RTL.
    golden_weights = case.get("golden_weights")
    golden = decolle_model(config, weights if golden_weights is None else
                           [np.array(w, dtype=np.int64) for w in golden_weights], biases,
                           engine=case.get("engine"))
    work = (sum(lay.n_pre * (lay.n_post + 1) + 4 * lay.n_post + 16 for lay in layout.layers)
            + config.learning.prng_rounds)
    bench = DecolleBench(dut, np.random.default_rng(case["seed"]), case["ready_probability"],
                         work * (2 + config.layers[-1]))
    fast = case["ready_probability"] >= 1.0

    dut.i_events__valid.value = 0
    dut.o_events__ready.value = 0
    dut.host__strobe.value = 0
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    result = {"ticks": 0, "spikes": 0, "learning_ticks": 0, "state_words": 0, "mismatch": None,
              "tick_cycles": [], "input_events": [], "learned": []}
    try:
        for layer, (matrix, bias) in enumerate(zip(weights, biases), 1):
            for (pre, post), value in np.ndenumerate(matrix):
                await bench.host_write(layout.weight_address(layer, pre, post), int(value))
            for neuron, value in enumerate(bias):
                await bench.host_write(layout.bias_address(layer, neuron), int(value))

        tick = 0
        for step in case["script"]:
            if step[0] != "tick":
                name = "sample_tick" if step[0] == "sample" else step[1]
                value = 0 if step[0] == "sample" else int(step[2])
                await bench.host_write(layout.register_address(name), value)
                golden_apply(golden, step)
                continue
            events = step[1]
            learns = bool(golden.learning and golden.sample_tick >= golden.burn_in
                          and any(config.n_inputs <= a < config.n_inputs + config.layers[-1]
                                  for a in events))
            expected = golden_apply(golden, step)
            if fast:
                outputs, cycles = await bench.run_tick_fast(events)
            else:
                outputs, cycles = await bench.run_tick(events)
            check_tick_outputs(tick, outputs, expected)
            result["ticks"] += 1
            result["learning_ticks"] += learns
            result["learned"].append(learns)
            result["spikes"] += sum(len(s) for s in expected)
            result["tick_cycles"].append(cycles)
            result["input_events"].append(len(events))
            tick += 1

        words = 0
        want_state = golden_state(golden)
        if case.get("check_state", True):
            for index, lay in enumerate(layout.layers):
                for pre in range(lay.n_pre):
                    for post in range(lay.n_post):
                        have = await bench.host_read(layout.weight_address(lay.index, pre, post))
                        want = int(want_state["weights"][index][pre, post])
                        if have != want:
                            raise Mismatch(tick="end", layer=lay.index, what="weight",
                                           pre=pre, post=post, expected=want, got=have)
                        words += 1
            for name, region in STATE_REGIONS.items():
                for index, lay in enumerate(layout.layers):
                    base, count = ((lay.row_base, lay.n_pre) if name.startswith("trace")
                                   else (lay.state_base, lay.n_post))
                    for k in range(count):
                        have = await bench.host_read(layout.address(region, base + k))
                        want = int(want_state[name][index][k])
                        if have != want:
                            raise Mismatch(tick="end", layer=lay.index, what=name, index=k,
                                           expected=want, got=have)
                        words += 1
        registers = {"tick": golden.tick_count, "dropped_events": golden.dropped_events,
                     "flags": golden.flags, "sample_tick": golden.sample_tick,
                     "learn": int(golden.learning), "burn_in": golden.burn_in}
        registers.update({f"lr_shift_{index}": shift
                          for index, shift in enumerate(golden.lr_shifts, 1)})
        for name, want in registers.items():
            have = (await bench.host_read(layout.register_address(name))) & 0xFFFFFFFF
            if have != want:
                raise Mismatch(tick="end", what=f"register {name}", expected=want, got=have)
            words += 1
        result["state_words"] = words
        result["flags"] = golden.flags
        result["weights_changed"] = int(sum((w != w0).sum() for w, w0
                                            in zip(want_state["weights"], weights)))
    except Mismatch as mismatch:
        result["mismatch"] = mismatch.as_json()
    return result


@cocotb.test()
async def decolle_matches_golden(dut):
    """Run the case named by PLASTICORE_CASE and write its result."""
    await run_job(dut, _run_case)
