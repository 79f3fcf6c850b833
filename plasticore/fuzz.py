"""``plasticore fuzz``: golden against RTL on thousands of random cases.

A *case* is one event stream through a core: a few ticks of input events (bursts,
duplicates, out-of-range addresses, labels for a learning core), host register and state
writes between ticks (legal ones and ones the core must refuse), and its own output
back-pressure, with the scoreboard checking every output event in order and the counters
and flags after every tick, and the whole state at chosen ticks
(:mod:`plasticore.sim.fuzz_tb`).

Each configuration of a campaign is drawn afresh from its own seed, over every field of
every rule (the rules take turns), then ``streams_per_config`` cases for it; they run one
after the other in one simulation, so a core is compiled once for many cases. (Drawing
with Hypothesis reused and mutated earlier configurations: 50 drawn held 25 distinct
ones.) When a case fails, it is shrunk greedily (fewer streams, ticks, host writes and
events) within a budget of simulator runs, and the smallest failing case is written as a
JSON file that ``plasticore verify FILE`` replays. :func:`core_configs` offers the same
configurations as a Hypothesis strategy.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from .config import MAX_NEURONS_PER_LAYER, ConfigError, CoreConfig

__all__ = ["random_config", "core_configs", "random_job", "shrink", "fuzz", "replay",
           "register"]

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


def _pick(rng: np.random.Generator, *options):
    """One of ``options`` (each a callable of no argument), chosen uniformly."""
    return options[int(rng.integers(0, len(options)))]()


def _between(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]``."""
    return int(rng.integers(low, high + 1))


def _layer_size(rng: np.random.Generator, rule: str, depth: int) -> int:
    # Mostly tiny layers, a quarter of them of one neuron; now and then odd and
    # word-straddling sizes. A DECOLLE tick visits every synapse: its layers stay tiny.
    if rng.random() < 0.25:
        return 1
    if rule == "decolle":
        return _between(rng, 1, 6 if depth <= 3 else 4)
    if rng.random() < 0.2:
        return int(rng.choice([7, 9, 13, 16, 17, 24]))
    return _between(rng, 1, 6)


def random_config(rng: np.random.Generator, rule: str, *, name: str | None = None) -> CoreConfig:
    """A valid configuration of ``rule`` drawn from ``rng``, over every field: weight
    widths 2-16, membranes up to 32 bits, lanes 1-16, one to five neuron layers, 1-neuron
    layers, refractory periods up to 255, both resets, recurrent projections (inference),
    and the rule's own parameters.
    """
    if rule not in FUZZ_RULES:
        raise ConfigError("rule", rule, f"must be one of {', '.join(FUZZ_RULES)}")
    low_depth = 2 if rule == "erbp" else 1
    depth = _between(rng, low_depth, 5)
    layers = [_layer_size(rng, rule, depth) for _ in range(depth + 1)]
    if rule == "decolle":
        layers[-1] = max(layers[-1], 2)            # a readout needs two classes
    weight_bits = _between(rng, 5 if rule == "decolle" else 2, 16)
    narrowest = weight_bits + (1 if rule == "none" else 2)
    membrane_bits = _pick(rng, lambda: _between(rng, narrowest, min(32, narrowest + 6)),
                          lambda: _between(rng, narrowest, 32))
    w_max = (1 << (weight_bits - 1)) - 1
    m_max = (1 << (membrane_bits - 1)) - 1
    fields = dict(
        layers=layers, weight_bits=weight_bits, membrane_bits=membrane_bits,
        leak_shift=_pick(rng, lambda: _between(rng, 0, min(6, membrane_bits - 1)),
                         lambda: _between(rng, 0, membrane_bits - 1)),
        reset=str(rng.choice(["zero", "subtract"])),
        refractory_ticks=_pick(rng, lambda: 0, lambda: _between(rng, 1, 5),
                               lambda: _between(rng, 0, 255), lambda: 255),
        lanes=int(rng.choice([1, 2, 4, 8, 16])),
        seed=int(rng.integers(0, 1 << 32)), rule=rule, name=name or f"fuzz_{rule}")
    if rule == "erbp":
        gain = _between(rng, 0, min(2, membrane_bits - weight_bits))
        strong = w_max << gain
        gate = _between(rng, strong, max(strong + 1, m_max // 2))
        fields["threshold"] = min(m_max, _between(rng, 1, 3 * strong + 2))
        fields["erbp"] = {
            "ticks_per_sample": 50, "test_ticks_per_sample": 50,
            "burn_in_ticks": _between(rng, 0, 5), "soma_gain_shift": gain,
            "dendrite_leak_shift": _between(rng, 1, min(4, membrane_bits - 1)),
            "gate_low": -gate, "gate_high": gate,
            "learning_rate_shift": _between(rng, 1, 8),
            "error_threshold": _between(rng, 1, m_max // 4 + 1),
            "error_input_weight": _between(rng, 1, m_max // 2 + 1),
            "feedback_output_weight": _between(rng, 0, m_max // 2),
            "feedback_hidden_scale": _between(rng, 0, m_max // 3),
            "feedback_seed": int(rng.integers(0, 1 << 32)),
            "rounding_seed": int(rng.integers(0, 1 << 32)),
            # 1 and 2 rounds make the shortest draw pipeline the core supports.
            "prng_rounds": int(rng.choice([13, 1, 2, 5, 20])),
            "initial_weight_range": [w_max // 2] * (len(layers) - 1),
        }
    elif rule == "decolle":
        n_layers = len(layers) - 1
        trace_bits = _between(rng, 3, 8)
        unit_bits = _between(rng, 2, min(7, membrane_bits - 2))

        def shifts(most):
            return sorted({_between(rng, 1, 7) for _ in range(_between(rng, 1, most))})

        fields["threshold"] = 1
        fields["decolle"] = {
            "ticks_per_sample": 20, "burn_in": _between(rng, 0, 3),
            "trace_bits": trace_bits, "q_shifts": shifts(3), "p_shifts": shifts(2),
            "r_shifts": shifts(3), "unit_bits": unit_bits,
            "refractory_weight": _between(rng, 0, min(m_max, 4 << unit_bits)),
            "surrogate_window": _between(rng, 1, min(m_max, 2 << unit_bits)),
            "error_bits": _between(rng, 2, 5),
            "error_shifts": [_between(rng, 0, unit_bits) for _ in range(n_layers)],
            "lr_shifts": [_between(rng, 0, trace_bits) for _ in range(n_layers)],
            "stochastic_rounding": bool(rng.integers(0, 2)),
            "learn_bias": bool(rng.integers(0, 2)),
            # Initial weights within the weight range: at most 0.9 of it.
            "init_scale": [min(float(rng.uniform(0.5, 3.0)),
                               0.9 * w_max * math.sqrt(fan_in) / (1 << unit_bits))
                           for fan_in in layers[:-1]],
            "readout_amplitude": float(rng.uniform(0.3, 3.0)),
            "readout_seed": int(rng.integers(0, 1 << 32)),
            "prng_rounds": _between(rng, 1, 13),
        }
    else:
        fields["threshold"] = min(m_max, _pick(rng, lambda: _between(rng, 1, 4 * w_max + 2),
                                               lambda: _between(rng, 1, m_max)))
        if rng.random() < 0.3:
            # Recurrent projections: a neuron layer onto itself or onto an earlier one.
            chain = [[source, source + 1] for source in range(depth)]
            back = {(source, _between(rng, 1, source))
                    for source in (_between(rng, 1, depth) for _ in range(_between(rng, 1, 3)))}
            fields["projections"] = chain + [list(pair) for pair in sorted(back)]
    return CoreConfig.from_dict(fields)


def config_shape(config: CoreConfig) -> tuple:
    """What tells two configurations apart in a campaign's count of distinct ones."""
    return (config.rule, tuple(config.layers), config.recurrent, config.weight_bits,
            config.membrane_bits, config.lanes, config.refractory_ticks, config.reset,
            config.leak_shift, config.threshold)


def core_configs(rules=FUZZ_RULES):
    """A Hypothesis strategy of the configurations of :func:`random_config`."""
    st = _strategies()
    return st.builds(lambda rule, seed: random_config(np.random.default_rng(seed), rule),
                     st.sampled_from(list(rules)), st.integers(0, (1 << 32) - 1))


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


def random_job(config: CoreConfig, rng: np.random.Generator, streams: int) -> dict:
    """A job for :func:`plasticore.sim.runner.run_streams`: initial weights (and biases)
    and ``streams`` event streams with host writes between ticks.

    Each stream draws its knobs (ticks, largest event count, bursts, host writes, a state
    check, back-pressure) and then its events and writes from ``rng``.
    """
    if config.rule == "decolle":
        from plasticore.sim.decolle_case import random_case
        case = random_case(config, rng, 0)
        weights, biases = case["weights"], case["biases"]
    else:
        from plasticore.sim.random_case import case_weights
        weights, biases = case_weights(config, rng), None
    job_streams = []
    for index in range(streams):
        knobs = dict(ticks=_between(rng, 1, 3),
                     max_events=_between(rng, 0, min(8, max(4, config.n_inputs))),
                     burst=bool(rng.integers(0, 2)), host_writes=_between(rng, 0, 3))
        steps = _stream_steps(config, rng, first=index == 0, **knobs)
        if rng.random() < 1 / 8:                # the whole state, now and then
            steps.append(["check"])
        job_streams.append({"ready_probability": float(rng.choice([1.0, 0.8, 0.5, 0.25])),
                            "seed": int(rng.integers(0, 1 << 16)), "steps": steps})
    return {"weights": [w.tolist() for w in weights],
            "biases": None if biases is None else [b.tolist() for b in biases],
            "streams": job_streams}


def _ticks(job) -> int:
    return sum(1 for stream in job["streams"] for step in stream["steps"] if step[0] == "tick")


def _smaller_jobs(job):
    """Jobs one step smaller than ``job``, the largest cuts first: a stream, a tick or host
    write, then half or one of a tick's events."""
    streams = job["streams"]
    for index in range(len(streams) - 1):            # the last one holds the failure
        yield dict(job, streams=streams[:index] + streams[index + 1:])
    for index, stream in enumerate(streams):
        steps = stream["steps"]
        for at in range(len(steps)):
            smaller = steps[:at] + steps[at + 1:]
            if any(step[0] == "tick" for step in smaller):
                yield dict(job, streams=streams[:index] + [dict(stream, steps=smaller)]
                           + streams[index + 1:])
        for at, step in enumerate(steps):
            if step[0] != "tick" or not step[1]:
                continue
            events = step[1]
            cuts = [events[:len(events) // 2], events[len(events) // 2:]] if len(events) > 1 \
                else [[]]
            cuts += [events[:k] + events[k + 1:] for k in range(len(events))] \
                if len(events) <= 4 else []
            for cut in cuts:
                new_steps = steps[:at] + [["tick", cut]] + steps[at + 1:]
                yield dict(job, streams=streams[:index] + [dict(stream, steps=new_steps)]
                           + streams[index + 1:])


def shrink(config: CoreConfig, job: dict, mismatch: dict, run, budget: int, log=None):
    """Make a failing ``job`` smaller while it still fails, greedily, within ``budget``
    runs of ``run(job)`` (which returns a mismatch or None).

    Returns
    -------
    (dict, dict, int)
        The smallest failing job found, its mismatch, and the runs spent.
    """
    job = dict(job, streams=job["streams"][:mismatch["stream"] + 1])
    spent = 0
    progress = True
    while progress and spent < budget:
        progress = False
        for candidate in _smaller_jobs(job):
            if spent >= budget:
                break
            spent += 1
            found = run(candidate)
            if found is not None:
                job = dict(candidate, streams=candidate["streams"][:found["stream"] + 1])
                mismatch = found
                progress = True
                if log:
                    log(f"  shrunk to {len(job['streams'])} streams, {_ticks(job)} ticks")
                break
    return job, mismatch, spent


def fuzz(cases: int, *, rules=FUZZ_RULES, streams_per_config: int = 50,
         simulator: str = "icarus", build_root="build/sim", seed: int = 0,
         shrink_runs: int = 30, mutant: str | None = None, log=None,
         draw_only: bool = False) -> dict:
    """Run a campaign of about ``cases`` cases; return its figures and the smallest failure.

    Configuration ``k`` of the campaign has rule ``rules[k % len(rules)]`` and is drawn by
    :func:`random_config` from the seed ``(seed, k)``, then its cases by
    :func:`random_job`: every configuration is new, and any one can be drawn again alone.

    Parameters
    ----------
    cases : int
        Cases (streams) to run, in configurations of ``streams_per_config`` cases each.
    rules : sequence of str
        Rules the configurations are drawn from, in turn.
    simulator, build_root
        As for :func:`plasticore.sim.runner.run_streams`.
    seed : int
        Seed of the campaign: the same seed draws the same campaign.
    shrink_runs : int
        Simulator runs that may be spent shrinking a failure.
    mutant : str, optional
        Run a deliberately broken core (a test of the campaign itself).
    log : callable, optional
        Receives one line of progress per configuration.
    draw_only : bool
        Draw the campaign's configurations and cases without simulating them (the
        figures then count the cases drawn, and no ticks).

    Returns
    -------
    dict
        ``cases``, ``configs``, ``distinct_configs``, ``ticks``, ``seconds``, the counts
        ``per_rule`` (cases), ``per_depth`` and ``per_lanes`` (configurations), and
        ``failure`` (None, or the smallest failing job: ``config``, ``weights``,
        ``biases``, ``streams``, ``mismatch``, ``mutant``).
    """
    from plasticore.sim.runner import run_streams

    for rule in rules:
        if rule not in FUZZ_RULES:
            raise ConfigError("rules", rule, f"must be among {', '.join(FUZZ_RULES)}")
    log = log or (lambda line: None)
    figures = {"cases": 0, "configs": 0, "distinct_configs": 0, "ticks": 0,
               "per_rule": {r: 0 for r in rules}, "per_depth": {}, "per_lanes": {},
               "features": {"one_neuron_layer": 0, "recurrent": 0, "refractory_over_5": 0,
                            "reset_zero": 0, "reset_subtract": 0},
               "failure": None, "shrink_runs": 0}
    shapes = set()
    start = time.perf_counter()
    for index in range(max(1, math.ceil(cases / streams_per_config))):
        rng = np.random.default_rng([seed, index])
        config = random_config(rng, rules[index % len(rules)])
        job = random_job(config, rng, streams_per_config)
        result = {"streams": streams_per_config, "ticks": 0, "host_writes": 0,
                  "refused_writes": 0, "state_checks": 0, "mismatch": None} if draw_only \
            else run_streams(config, job, simulator=simulator, build_root=build_root,
                             mutant=mutant)
        mismatch = result["mismatch"]
        ran = result["streams"] + (mismatch is not None)
        shapes.add(config_shape(config))
        figures["configs"] += 1
        figures["distinct_configs"] = len(shapes)
        figures["cases"] += ran
        figures["ticks"] += result["ticks"]
        figures["per_rule"][config.rule] += ran
        depth = len(config.neuron_layers)
        figures["per_depth"][depth] = figures["per_depth"].get(depth, 0) + 1
        figures["per_lanes"][config.lanes] = figures["per_lanes"].get(config.lanes, 0) + 1
        features = figures["features"]
        features["one_neuron_layer"] += 1 in config.layers
        features["recurrent"] += bool(config.recurrent)
        features["refractory_over_5"] += config.refractory_ticks > 5
        features["reset_" + config.reset] += 1
        log(f"[{figures['cases']:>6} cases, {time.perf_counter() - start:7.1f} s] "
            f"#{index} {config.rule:<7} layers {list(config.layers)}"
            f"{' recurrent ' + str([list(p) for p in config.recurrent]) if config.recurrent else ''}"
            f" w{config.weight_bits} m{config.membrane_bits} lanes {config.lanes} refractory "
            f"{config.refractory_ticks} {config.reset}: {result['ticks']} ticks, "
            f"{result['host_writes']} host writes ({result['refused_writes']} refused), "
            f"{result['state_checks']} state checks: "
            f"{'MISMATCH ' + json.dumps(mismatch) if mismatch else 'bit-exact'}")
        if mismatch is None:
            continue

        def run(candidate):
            return run_streams(config, candidate, simulator=simulator, build_root=build_root,
                               mutant=mutant)["mismatch"]

        job, mismatch, spent = shrink(config, job, mismatch, run, shrink_runs, log)
        figures["shrink_runs"] = spent
        figures["failure"] = {"config": config.to_dict(), "weights": job["weights"],
                              "biases": job["biases"], "streams": job["streams"],
                              "mismatch": mismatch, "mutant": mutant, "campaign": [seed, index]}
        break
    figures["seconds"] = time.perf_counter() - start
    return figures


def replay(path, *, simulator: str, build_root) -> dict:
    """Run a job file written by :func:`fuzz` again; return the testbench result."""
    from plasticore.sim.runner import run_streams

    job = json.loads(Path(path).read_text())
    config = CoreConfig.from_dict(job["config"], source=str(path))
    return run_streams(config, job, simulator=simulator, build_root=build_root,
                       mutant=job.get("mutant"))


def distribution(figures: dict) -> str:
    """The lines of a campaign's figures that say what it covered."""
    def counts(table):
        return ", ".join(f"{key} {value}" for key, value in sorted(table.items()))

    features = figures["features"]
    return "\n".join([
        f"cases by rule: {', '.join(f'{r} {n}' for r, n in figures['per_rule'].items())}",
        f"configurations: {figures['configs']} ({figures['distinct_configs']} distinct)",
        f"configurations by neuron layers: {counts(figures['per_depth'])}",
        f"configurations by lanes: {counts(figures['per_lanes'])}",
        f"configurations with a 1-neuron layer {features['one_neuron_layer']}, recurrent "
        f"projections {features['recurrent']}, refractory > 5 {features['refractory_over_5']}, "
        f"reset zero {features['reset_zero']}, reset subtract {features['reset_subtract']}"])


def _fuzz_command(args) -> int:
    rules = tuple(args.rules)
    figures = fuzz(args.cases, rules=rules, streams_per_config=args.streams_per_config,
                   simulator=args.simulator, build_root=args.build_dir, seed=args.seed,
                   shrink_runs=args.shrink_runs, draw_only=args.stats,
                   log=None if args.quiet else (lambda line: print(line, flush=True)))
    print(distribution(figures))
    if args.stats:
        print(f"{figures['cases']} cases drawn, none simulated (--stats)")
        return 0
    per_rule = ", ".join(f"{rule} {count}" for rule, count in figures["per_rule"].items())
    print(f"{figures['cases']} cases ({per_rule}) in {figures['configs']} configurations "
          f"({figures['distinct_configs']} distinct), {figures['ticks']} ticks, "
          f"{figures['seconds']:.0f} s on {args.simulator}: "
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
    parser.add_argument("--streams-per-config", type=_positive, default=40,
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
    parser.add_argument("--stats", action="store_true",
                        help="only draw the campaign and print what it covers (no simulation)")
    parser.set_defaults(handler=_fuzz_command)
