"""cocotb testbench of ``plasticore fuzz``: many event streams through one build of a core.

The job (JSON, named by ``PLASTICORE_CASE``; written by :func:`plasticore.sim.runner.run_streams`
and, for a failure, by ``plasticore fuzz`` as a file that ``plasticore verify --case``
replays) is a configuration of any rule, initial weights (and a DECOLLE core's biases)
and a list of *streams*. The streams run one after the other in one simulation against
one golden model: a stream continues from the state the previous one left (nothing is
reset between them). Each stream has its own output back-pressure and a list of steps:

``["tick", [address, ...]]``
    One tick: the events back to back (out-of-range addresses included), then the
    end-of-tick event; the scoreboard checks every output event in order, then the
    counters and flags.
``["write", register, value]``
    A host register write between ticks (flags and dropped_events clears, learning
    registers; an illegal value must be answered with ``error`` and change nothing).
``["state", region, layer, index, value]``
    A host write of one state word (``weight`` with ``index = [pre, post]``, ``membrane``,
    ``refractory``, ``dendrite``); a value out of the word's range must be answered with
    ``error`` and change nothing.
``["check"]``
    Read every word of state and every register back and compare (learning state at a
    chosen tick).

The result names the stream and the step of the first mismatch.
"""

from __future__ import annotations

import cocotb
import numpy as np

from plasticore.config import CoreConfig
from plasticore.layout import layout_for
from plasticore.sim.core_tb import CoreBench, case_matrices, run_job, tick_work_bound
from plasticore.sim.scoreboard import Mismatch, Scoreboard

__all__ = ["golden_model", "register_write_legal", "state_write_legal", "apply_step"]


def golden_model(config: CoreConfig, weights, biases=None):
    """The golden model of ``config``'s rule, loaded with ``weights`` (and ``biases``)."""
    if config.rule == "decolle":
        from plasticore.golden.decolle import GoldenDecolle
        return GoldenDecolle(config, weights, biases)
    if config.rule == "erbp":
        from plasticore.golden.erbp import GoldenErbpCore
        return GoldenErbpCore(config, weights)
    from plasticore.golden.lif import GoldenCore
    return GoldenCore(config, weights)


def register_write_legal(config: CoreConfig, name: str, value: int) -> bool:
    """Whether the core accepts ``value`` in register ``name`` (else it answers error)."""
    if name in ("learning_enabled", "learn"):
        return value in (0, 1)
    if name == "learning_rate_shift":
        return 1 <= value <= 32
    if name.startswith("lr_shift_"):
        from plasticore.rules.decolle import RANDOM_DRAW_BITS
        return 0 <= value <= RANDOM_DRAW_BITS
    if name == "burn_in" and config.rule == "decolle":
        return 0 <= value <= 0xFFFF
    return name in ("flags", "dropped_events", "sample_tick", "burn_in_ticks")


def state_write_legal(config: CoreConfig, region: str, value: int) -> bool:
    """Whether a host write of ``value`` to a word of ``region`` is in its range."""
    if region == "weight":
        low, high = config.weight_range
    elif region == "refractory":
        low, high = 0, config.refractory_ticks
    else:
        low, high = config.membrane_range
    return low <= value <= high


def apply_step(golden, step) -> None:
    """Do to ``golden`` what a legal ``write`` or ``state`` step does to the core."""
    config = golden.config
    if step[0] == "write":
        name, value = step[1], int(step[2])
        if config.rule == "decolle":
            from plasticore.sim.decolle_case import golden_apply
            golden_apply(golden, step)
        elif name == "flags":
            golden.flags &= ~value
        elif name == "dropped_events":
            golden.dropped_events = 0
        else:
            from plasticore.sim.random_case import apply_erbp_writes
            apply_erbp_writes(golden, [(name, value)])
        return
    _, region, layer, index, value = step
    if region == "weight":
        if config.rule == "decolle":
            # load_weights also refreshes the float copy the DECOLLE model keeps.
            weights, biases = golden.read_weights()
            weights[layer - 1][index[0], index[1]] = value
            golden.load_weights(weights, biases)
        else:
            golden.weights[layer - 1][index[0], index[1]] = value
        return
    getattr(golden, region)[layer - 1][index] = value


def _state_address(layout, region: str, layer: int, index) -> int:
    if region == "weight":
        return layout.weight_address(layer, index[0], index[1])
    return getattr(layout, f"{region}_address")(layer, index)


async def _run_streams(dut, job: dict) -> dict:
    config = CoreConfig.from_dict(job["config"])
    layout = layout_for(config)
    weights = case_matrices(config, job["weights"])
    biases = ([np.array(b, dtype=np.int64) for b in job["biases"]]
              if config.rule == "decolle" else None)
    golden = golden_model(config, [w.copy() for w in weights],
                          None if biases is None else [b.copy() for b in biases])
    bench = CoreBench(dut, np.random.default_rng(0), 1.0, tick_work_bound(config))
    await bench.start()
    scoreboard = Scoreboard(bench, golden, layout)
    result = {"streams": 0, "ticks": 0, "spikes": 0, "host_writes": 0, "refused_writes": 0,
              "state_checks": 0, "mismatch": None}
    where = {"stream": None, "step": None}
    try:
        await bench.load(layout, weights, biases)
        for stream_index, stream in enumerate(job["streams"]):
            bench.rng = np.random.default_rng(stream["seed"])
            bench.ready_probability = stream["ready_probability"]
            where["stream"] = stream_index
            for step_index, step in enumerate(stream["steps"]):
                where["step"] = step_index
                kind = step[0]
                if kind == "tick":
                    tag = golden.tick_count
                    expected = (golden.tick_events(step[1]) if config.rule == "decolle"
                                else golden.tick(step[1]))
                    run_tick = (bench.run_tick_fast if bench.ready_probability >= 1.0
                                else bench.run_tick)
                    outputs, _ = await run_tick(step[1])
                    await scoreboard.after_tick(tag, outputs, expected)
                    result["ticks"] += 1
                    result["spikes"] += sum(len(s) for s in expected)
                    continue
                if kind == "check":
                    await scoreboard.check_state(golden.tick_count)
                    result["state_checks"] += 1
                    continue
                if kind == "write":
                    address = layout.register_address(step[1])
                    legal = register_write_legal(config, step[1], int(step[2]))
                    value = int(step[2])
                else:
                    address = _state_address(layout, step[1], step[2], step[3])
                    value = int(step[4])
                    legal = state_write_legal(config, step[1], value)
                _, error = await bench.host(address, True, value)
                if error == legal:
                    raise Mismatch(tick=golden.tick_count, what="host write answer",
                                   step=step, expected="ok" if legal else "error",
                                   got="error" if error else "ok")
                result["host_writes"] += 1
                if legal:
                    apply_step(golden, step)
                else:
                    result["refused_writes"] += 1
            result["streams"] += 1
        await scoreboard.check_state("end")
        result["state_checks"] += 1
    except Mismatch as mismatch:
        result["mismatch"] = dict(mismatch.as_json(), **where)
    return result


@cocotb.test()
async def streams_match_golden(dut):
    """Run the streams of the job named by PLASTICORE_CASE and write the result."""
    await run_job(dut, _run_streams)
