"""``plasticore fuzz``: golden against RTL on thousands of random cases, drawn by Hypothesis.

A *case* is one event stream through a core: a few ticks of input events (bursts,
duplicates, out-of-range addresses, labels for a learning core), host register and state
writes between ticks (legal ones and ones the core must refuse), and its own output
back-pressure, with the scoreboard checking every output event in order and the counters
and flags after every tick, and the whole state at chosen ticks
(:mod:`plasticore.sim.fuzz_tb`).

Hypothesis draws a configuration over every field of every rule, then
``streams_per_config`` cases for it; they run one after the other in one simulation, so a
core is compiled once for many cases. When a case fails, Hypothesis shrinks the example
(a smaller network, fewer streams, ticks and events) within a budget of simulator runs,
and the smallest failing example is written as a JSON file that ``plasticore verify FILE``
replays.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from .config import MAX_NEURONS_PER_LAYER, ConfigError, CoreConfig

__all__ = ["core_configs", "fuzz_jobs", "fuzz", "replay", "register"]

#: Rules a campaign covers by default.
FUZZ_RULES = ("none", "erbp", "decolle")


def _strategies():
    # Hypothesis is a test dependency: import it only when fuzzing.
    try:
        from hypothesis import strategies
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError("fuzz", "hypothesis", "needs the Hypothesis package "
                          "(pip install 'plasticore[test]')") from None
    return strategies


def _sizes(st):
    # Mostly tiny layers (1-neuron ones included), now and then odd and word-straddling.
    tiny = st.integers(1, 6)
    return st.one_of(tiny, tiny, tiny, st.sampled_from([7, 9, 13, 16, 17, 24]))


def core_configs(rules=FUZZ_RULES):
    """A Hypothesis strategy of valid configurations of the given rules, over every field:
    widths 2-16 (membrane up to 32), lanes 1-16, one to five neuron layers, 1-neuron
    layers, refractory periods up to 255, both resets."""
    st = _strategies()

    @st.composite
    def draw_config(draw):
        rule = draw(st.sampled_from(list(rules)))
        depth = {"none": (1, 5), "erbp": (2, 4), "decolle": (1, 3)}[rule]
        # A DECOLLE tick visits every synapse: its layers stay tiny.
        size = st.integers(1, 6) if rule == "decolle" else _sizes(st)
        layers = [draw(size)] + [draw(size) for _ in range(draw(st.integers(*depth)))]
        if rule == "decolle":
            layers[-1] = max(layers[-1], 2)            # a readout needs two classes
        weight_bits = draw(st.integers(5 if rule == "decolle" else 2, 16))
        membrane_bits = draw(st.integers(weight_bits + (1 if rule == "none" else 2), 32))
        w_max = (1 << (weight_bits - 1)) - 1
        m_max = (1 << (membrane_bits - 1)) - 1
        fields = dict(
            layers=layers, weight_bits=weight_bits, membrane_bits=membrane_bits,
            leak_shift=draw(st.one_of(st.integers(0, min(6, membrane_bits - 1)),
                                      st.integers(0, membrane_bits - 1))),
            reset=draw(st.sampled_from(["zero", "subtract"])),
            refractory_ticks=draw(st.one_of(st.just(0), st.integers(0, 5), st.integers(0, 255))),
            lanes=draw(st.sampled_from([1, 2, 4, 8, 16])) if rule == "none" else 1,
            seed=draw(st.integers(0, (1 << 32) - 1)), rule=rule, name=f"fuzz_{rule}")
        if rule == "erbp":
            gain = draw(st.integers(0, min(2, membrane_bits - weight_bits)))
            strong = w_max << gain
            gate = draw(st.integers(strong, max(strong + 1, m_max // 2)))
            fields["threshold"] = min(m_max, draw(st.integers(1, 3 * strong + 2)))
            fields["erbp"] = {
                "ticks_per_sample": 50, "test_ticks_per_sample": 50,
                "burn_in_ticks": draw(st.integers(0, 5)), "soma_gain_shift": gain,
                "dendrite_leak_shift": draw(st.integers(1, min(4, membrane_bits - 1))),
                "gate_low": -gate, "gate_high": gate,
                "learning_rate_shift": draw(st.integers(1, 8)),
                "error_threshold": draw(st.integers(1, m_max // 4 + 1)),
                "error_input_weight": draw(st.integers(1, m_max // 2 + 1)),
                "feedback_output_weight": draw(st.integers(0, m_max // 2)),
                "feedback_hidden_scale": draw(st.integers(0, m_max // 3)),
                "feedback_seed": draw(st.integers(0, (1 << 32) - 1)),
                "rounding_seed": draw(st.integers(0, (1 << 32) - 1)),
                # 1 and 2 rounds make the shortest draw pipeline the core supports.
                "prng_rounds": draw(st.sampled_from([13, 1, 2, 5, 20])),
                "initial_weight_range": [w_max // 2] * (len(layers) - 1),
            }
        elif rule == "decolle":
            n_layers = len(layers) - 1
            trace_bits = draw(st.integers(3, 8))
            unit_bits = draw(st.integers(2, min(7, membrane_bits - 2)))

            def shifts(most):
                return sorted(draw(st.sets(st.integers(1, 7), min_size=1, max_size=most)))

            fields["threshold"] = 1
            fields["decolle"] = {
                "ticks_per_sample": 20, "burn_in": draw(st.integers(0, 3)),
                "trace_bits": trace_bits, "q_shifts": shifts(3), "p_shifts": shifts(2),
                "r_shifts": shifts(3), "unit_bits": unit_bits,
                "refractory_weight": draw(st.integers(0, min(m_max, 4 << unit_bits))),
                "surrogate_window": draw(st.integers(1, min(m_max, 2 << unit_bits))),
                "error_bits": draw(st.integers(2, 5)),
                "error_shifts": [draw(st.integers(0, unit_bits)) for _ in range(n_layers)],
                "lr_shifts": [draw(st.integers(0, trace_bits)) for _ in range(n_layers)],
                "stochastic_rounding": draw(st.booleans()),
                "learn_bias": draw(st.booleans()),
                # Initial weights within the weight range: at most 0.9 of it.
                "init_scale": [min(draw(st.floats(0.5, 3.0)),
                                   0.9 * w_max * math.sqrt(fan_in) / (1 << unit_bits))
                               for fan_in in layers[:-1]],
                "readout_amplitude": draw(st.floats(0.3, 3.0)),
                "readout_seed": draw(st.integers(0, (1 << 32) - 1)),
                "prng_rounds": draw(st.integers(1, 13)),
            }
        else:
            fields["threshold"] = min(m_max, draw(st.one_of(st.integers(1, 4 * w_max + 2),
                                                            st.integers(1, m_max))))
        return CoreConfig.from_dict(fields)

    return draw_config()


def _register_writes(config: CoreConfig):
    """(name, legal values, illegal values) of the registers a stream may write."""
    writes = [("flags", (0, 1, 2, 0x1F, 0xFFFFFFFF), ()), ("dropped_events", (0, 7), ()),
              ("magic", (), (1,)), ("tick", (), (0,))]
    if config.rule == "erbp":
        writes += [("learning_enabled", (0, 1, 1, 1), (2,)),
                   ("learning_rate_shift", (1, 2, 5, 17, 32), (0, 33)),
                   ("sample_tick", (0, 0, 3), ()), ("burn_in_ticks", (0, 1, 4), ())]
    elif config.rule == "decolle":
        writes += [("learn", (0, 1, 1, 1), (2,)), ("burn_in", (0, 1, 3), (0x10000,)),
                   ("sample_tick", (0,), ())]
        writes += [(f"lr_shift_{lay}", (0, 3, 8, 16), (17,))
                   for lay in range(1, len(config.neuron_layers) + 1)]
    return writes


def _stream_steps(config: CoreConfig, rng: np.random.Generator, *, ticks: int,
                  max_events: int, burst: bool, host_writes: int, first: bool) -> list:
    """The steps of one stream, drawn from ``rng`` within the knobs Hypothesis drew."""
    n_inputs = config.n_inputs
    learning = config.rule != "none"
    n_classes = config.layers[-1]
    registers = _register_writes(config)
    regions = (["weight"] if config.rule == "decolle" else
               ["weight", "membrane", "refractory"] + (["dendrite"] if config.rule == "erbp" else []))
    steps = []
    if first and config.rule == "erbp":
        steps += [["write", "learning_enabled", 1], ["write", "burn_in_ticks", 0]]
    elif first and config.rule == "decolle":
        steps += [["write", "learn", 1], ["write", "burn_in", 0], ["write", "sample_tick", 0]]

    def address():
        kind = rng.random()
        if kind < 0.08:                     # out of range: dropped and counted
            return int(rng.integers(n_inputs + (n_classes if learning else 0),
                                    MAX_NEURONS_PER_LAYER))
        if learning and kind < 0.25:        # a label
            return n_inputs + int(rng.integers(0, n_classes))
        return int(rng.integers(0, n_inputs))

    def state_write():
        region = str(rng.choice(regions))
        layer = int(rng.integers(1, len(config.neuron_layers) + 1))
        n_pre, n_post = config.layers[layer - 1], config.layers[layer]
        if region == "weight":
            index = [int(rng.integers(0, n_pre)), int(rng.integers(0, n_post))]
            low, high = config.weight_range
        else:
            index = int(rng.integers(0, n_post))
            low, high = ((0, config.refractory_ticks) if region == "refractory"
                         else config.membrane_range)
        # Mostly in range (its corners too), now and then just outside: refused. A
        # 32-bit membrane has no outside that a 32-bit host word can carry.
        outside = [v for v in (low - 1, high + 1) if -(1 << 31) <= v < (1 << 31)] or [low]
        value = [int(rng.integers(low, high + 1)), low, high, *outside][
            int(rng.choice(3 + len(outside), p=[0.6, 0.1, 0.1, *[0.2 / len(outside)] * len(outside)]))]
        return ["state", region, layer, index, value]

    def register_write():
        name, legal, illegal = registers[int(rng.integers(0, len(registers)))]
        values = list(legal) + list(illegal)
        return ["write", name, int(values[int(rng.integers(0, len(values)))])]

    for _ in range(ticks):
        for _ in range(int(rng.integers(0, host_writes + 1))):
            steps.append(state_write() if rng.random() < 0.5 else register_write())
        count = int(rng.integers(8, 49)) if burst and rng.random() < 0.5 else \
            int(rng.integers(0, max_events + 1))
        steps.append(["tick", [address() for _ in range(count)]])
    return steps


def fuzz_jobs(config: CoreConfig, streams: int):
    """A Hypothesis strategy of jobs for :func:`plasticore.sim.runner.run_streams`: initial
    weights (and biases) and ``streams`` event streams with host writes between ticks.

    Hypothesis draws each stream's knobs (ticks, largest event count, bursts, host
    writes, a state check, back-pressure and a seed); the events and writes come from the
    seed. Shrinking a failure drops streams, ticks, events and writes.
    """
    st = _strategies()

    @st.composite
    def stream(draw, first: bool):
        knobs = dict(ticks=draw(st.integers(1, 3)),
                     max_events=draw(st.integers(0, min(8, max(4, config.n_inputs)))),
                     burst=draw(st.booleans()), host_writes=draw(st.integers(0, 3)))
        rng = np.random.default_rng(draw(st.integers(0, (1 << 32) - 1)))
        steps = _stream_steps(config, rng, first=first, **knobs)
        if draw(st.integers(0, 7)) == 0:       # the whole state, now and then
            steps.append(["check"])
        return {"ready_probability": draw(st.sampled_from([1.0, 0.8, 0.5, 0.25])),
                "seed": int(rng.integers(0, 1 << 16)), "steps": steps}

    @st.composite
    def job(draw):
        rng = np.random.default_rng(draw(st.integers(0, (1 << 32) - 1)))
        if config.rule == "decolle":
            from plasticore.sim.decolle_case import random_case
            case = random_case(config, rng, 0)
            weights, biases = case["weights"], case["biases"]
        else:
            from plasticore.sim.random_case import case_weights
            weights, biases = case_weights(config, rng), None
        return {"weights": [w.tolist() for w in weights],
                "biases": None if biases is None else [b.tolist() for b in biases],
                "streams": [draw(stream(index == 0)) for index in range(streams)]}

    return job()


def _size(failure) -> tuple:
    config, job = failure["config"], failure
    ticks = sum(1 for s in job["streams"] for step in s["steps"] if step[0] == "tick")
    return (CoreConfig.from_dict(config).n_synapses, len(job["streams"]), ticks)


def fuzz(cases: int, *, rules=FUZZ_RULES, streams_per_config: int = 50,
         simulator: str = "icarus", build_root="build/sim", seed: int = 0,
         shrink_runs: int = 30, mutant: str | None = None, log=None) -> dict:
    """Run a campaign of about ``cases`` cases; return its figures and the smallest failure.

    Parameters
    ----------
    cases : int
        Cases (streams) to run, in configurations of ``streams_per_config`` cases each.
    rules : sequence of str
        Rules the configurations are drawn from.
    simulator, build_root
        As for :func:`plasticore.sim.runner.run_streams`.
    seed : int
        Seed of Hypothesis's drawing: the same seed draws the same campaign.
    shrink_runs : int
        Simulator runs Hypothesis may spend shrinking a failure.
    mutant : str, optional
        Run a deliberately broken core (a test of the campaign itself).
    log : callable, optional
        Receives one line of progress per configuration.

    Returns
    -------
    dict
        ``cases``, ``configs``, ``ticks``, ``per_rule`` (cases per rule), ``seconds`` and
        ``failure`` (None, or the smallest failing job: ``config``, ``weights``,
        ``biases``, ``streams``, ``mismatch``, ``mutant``).
    """
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from plasticore.sim.runner import run_streams

    log = log or (lambda line: None)
    figures = {"cases": 0, "configs": 0, "ticks": 0, "per_rule": {r: 0 for r in rules},
               "failure": None, "shrink_runs": 0}
    start = time.perf_counter()

    class CaseFailed(AssertionError):
        pass

    @hypothesis_seed(seed)
    @settings(max_examples=max(1, math.ceil(cases / streams_per_config)), database=None,
              deadline=None, phases=(Phase.generate, Phase.shrink), derandomize=False,
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
              report_multiple_bugs=False)
    @given(st.data())
    def campaign(data):
        shrinking = figures["failure"] is not None
        if shrinking and figures["shrink_runs"] >= shrink_runs:
            return                          # budget spent: stop shrinking here
        config = data.draw(core_configs(rules), label="config")
        job = data.draw(fuzz_jobs(config, streams_per_config), label="job")
        result = run_streams(config, job, simulator=simulator, build_root=build_root,
                             mutant=mutant)
        mismatch = result["mismatch"]
        ran = result["streams"] + (mismatch is not None)
        if shrinking:
            figures["shrink_runs"] += 1
        else:
            figures["configs"] += 1
            figures["cases"] += ran
            figures["ticks"] += result["ticks"]
            figures["per_rule"][config.rule] += ran
            log(f"[{figures['cases']:>6} cases, {time.perf_counter() - start:7.1f} s] "
                f"{config.rule:<7} layers {list(config.layers)} w{config.weight_bits} "
                f"m{config.membrane_bits} lanes {config.lanes} refractory "
                f"{config.refractory_ticks} {config.reset}: {result['ticks']} ticks, "
                f"{result['host_writes']} host writes ({result['refused_writes']} refused), "
                f"{result['state_checks']} state checks: "
                f"{'MISMATCH ' + json.dumps(mismatch) if mismatch else 'bit-exact'}")
        if mismatch is None:
            return
        failing = {"config": config.to_dict(), "weights": job["weights"],
                   "biases": job["biases"], "streams": job["streams"][:mismatch["stream"] + 1],
                   "mismatch": mismatch, "mutant": mutant}
        if figures["failure"] is None or _size(failing) < _size(figures["failure"]):
            figures["failure"] = failing
            if shrinking:
                log(f"  shrunk to layers {list(config.layers)}, "
                    f"{len(failing['streams'])} streams, {_size(failing)[2]} ticks")
        raise CaseFailed(json.dumps(mismatch))

    try:
        campaign()
    except Exception:   # the failure (or Hypothesis's report of a flaky end) is recorded
        if figures["failure"] is None:
            raise
    figures["seconds"] = time.perf_counter() - start
    return figures


def replay(path, *, simulator: str, build_root) -> dict:
    """Run a job file written by :func:`fuzz` again; return the testbench result."""
    from plasticore.sim.runner import run_streams

    job = json.loads(Path(path).read_text())
    config = CoreConfig.from_dict(job["config"], source=str(path))
    return run_streams(config, job, simulator=simulator, build_root=build_root,
                       mutant=job.get("mutant"))


def _fuzz_command(args) -> int:
    rules = tuple(args.rules)
    figures = fuzz(args.cases, rules=rules, streams_per_config=args.streams_per_config,
                   simulator=args.simulator, build_root=args.build_dir, seed=args.seed,
                   shrink_runs=args.shrink_runs,
                   log=None if args.quiet else (lambda line: print(line, flush=True)))
    per_rule = ", ".join(f"{rule} {count}" for rule, count in figures["per_rule"].items())
    print(f"{figures['cases']} cases ({per_rule}) in {figures['configs']} configurations, "
          f"{figures['ticks']} ticks, {figures['seconds']:.0f} s on {args.simulator}: "
          + ("no mismatch" if figures["failure"] is None else "MISMATCH"))
    if figures["failure"] is None:
        return 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures["failure"]) + "\n")
    print(f"smallest failing case ({figures['shrink_runs']} shrinking runs): "
          f"{json.dumps(figures['failure']['mismatch'])}", file=sys.stderr)
    print(f"written to {out}; replay with: plasticore verify {out}", file=sys.stderr)
    return 1


def register(subparsers) -> None:
    """Add the ``fuzz`` command."""
    from plasticore.sim.runner import DEFAULT_BUILD_ROOT, SIMULATORS

    parser = subparsers.add_parser(
        "fuzz", help="golden against RTL on many random configurations and event streams")
    from plasticore.flow import _positive

    parser.add_argument("--cases", type=_positive, default=1000, help="event streams to run")
    parser.add_argument("--streams-per-config", type=_positive, default=50,
                        help="cases run through one build of each configuration")
    parser.add_argument("--rules", nargs="+", choices=FUZZ_RULES, default=list(FUZZ_RULES))
    parser.add_argument("--simulator", choices=SIMULATORS, default="icarus",
                        help="icarus compiles a core in about a second, Verilator in tens")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawing")
    parser.add_argument("--shrink-runs", type=_positive, default=30,
                        help="simulator runs spent shrinking a failure")
    parser.add_argument("--build-dir", default=str(DEFAULT_BUILD_ROOT))
    parser.add_argument("-o", "--output", default="build/fuzz-failure.json",
                        help="where the smallest failing case is written")
    parser.add_argument("--quiet", action="store_true", help="no line per configuration")
    parser.set_defaults(handler=_fuzz_command)
