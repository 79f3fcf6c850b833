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

from plasticore.config import CoreConfig
from plasticore.golden.engine import decolle_model
from plasticore.layout import DecolleLayout
from plasticore.sim.core_tb import CoreBench, case_matrices, run_job, tick_work_bound
from plasticore.sim.decolle_case import golden_apply, golden_state
from plasticore.sim.scoreboard import Mismatch, Scoreboard


async def _run_case(dut, case: dict) -> dict:
    config = CoreConfig.from_dict(case["config"])
    layout = DecolleLayout(config)
    weights = case_matrices(config, case["weights"])
    biases = [np.array(b, dtype=np.int64) for b in case["biases"]]
    # A test of the checker itself may give the golden model other weights than the RTL.
    golden_weights = case.get("golden_weights")
    golden = decolle_model(config, weights if golden_weights is None else
                           case_matrices(config, golden_weights), biases,
                           engine=case.get("engine"))
    bench = CoreBench(dut, np.random.default_rng(case["seed"]), case["ready_probability"],
                         tick_work_bound(config))
    fast = case["ready_probability"] >= 1.0

    await bench.start()
    scoreboard = Scoreboard(bench, golden, layout)

    result = {"ticks": 0, "spikes": 0, "learning_ticks": 0, "state_words": 0, "mismatch": None,
              "tick_cycles": [], "input_events": [], "learned": []}
    try:
        await bench.load(layout, weights, biases)
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
            tag = golden.tick_count
            expected = golden_apply(golden, step)
            if fast:
                outputs, cycles = await bench.run_tick_fast(events)
            else:
                outputs, cycles = await bench.run_tick(events)
            await scoreboard.after_tick(tag, outputs, expected)
            result["ticks"] += 1
            result["learning_ticks"] += learns
            result["learned"].append(learns)
            result["spikes"] += sum(len(s) for s in expected)
            result["tick_cycles"].append(cycles)
            result["input_events"].append(len(events))

        scoreboard.words = 0
        if case.get("check_state", True):
            await scoreboard.check_state("end")
        result["state_words"] = scoreboard.words
        result["flags"] = golden.flags
        result["weights_changed"] = int(sum((w != w0).sum() for w, w0
                                            in zip(golden_state(golden)["weights"], weights)))
    except Mismatch as mismatch:
        result["mismatch"] = mismatch.as_json()
    return result


@cocotb.test()
async def decolle_matches_golden(dut):
    """Run the case named by PLASTICORE_CASE and write its result."""
    await run_job(dut, _run_case)
