"""The ``generate``, ``verify`` and ``bench`` commands: Verilog out, proof of equivalence, figures."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

from .config import load_config
from .golden.engine import ENGINES

__all__ = ["register", "describe_ports", "make_case", "verify", "benchmark", "benchmark_decolle",
           "make_decolle_case"]


#: Ticks per row of ``plasticore bench`` for a DECOLLE core (each tick visits every synapse).
DECOLLE_BENCH_TICKS = 20


def describe_ports(core) -> list[dict]:
    """Return the Verilog ports of ``core`` (flattened member names, direction, width, fields)."""
    from amaranth.hdl import Shape
    from amaranth.lib import data
    from amaranth.lib.wiring import Flow

    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    for path, member in core.signature.members.flatten():
        if not member.is_port:
            continue
        shape = member.shape
        port = {
            "name": "__".join(str(part) for part in path),
            "direction": "input" if member.flow == Flow.In else "output",
            "width": Shape.cast(shape).width,
        }
        if isinstance(shape, data.StructLayout):
            port["fields"] = {name: {"offset": field.offset, "width": Shape.cast(field.shape).width}
                              for name, field in shape}
        ports.append(port)
    return ports


def generate(config, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<name>.v`` and ``<name>.json`` (ports and host memory map) into ``out_dir``."""
    from amaranth.back import verilog

    from plasticore.hdl.cores import make_core

    config.check_size()
    core = make_core(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    top = f"plasticore_{config.name}"
    verilog_path = out_dir / f"{config.name}.v"
    verilog_path.write_text(verilog.convert(core, name=top, emit_src=False))
    description = {
        "top": top,
        "clock": "clk",
        "reset": "rst (synchronous, active high)",
        "config": config.to_dict(),
        "ports": describe_ports(core),
        "memory_map": core.layout.describe(),
    }
    json_path = out_dir / f"{config.name}.json"
    json_path.write_text(json.dumps(description, indent=2) + "\n")
    return verilog_path, json_path


def make_case(config, *, ticks: int, seed: int, activity: float, ready_probability: float,
              out_of_range: float = 0.03, learning: bool | None = None) -> dict:
    """Draw random weights and input events for a verification run, reproducibly from ``seed``.

    For an eRBP core the events include labels, and the host writes learning registers:
    with ``learning = None`` a random session (learning switched on and off, samples
    restarting, the learning rate changing); with True or False, learning on (from the
    first tick, no burn-in) or off for the whole run.
    """
    from plasticore.sim.random_case import (case_weights, random_erbp_session,
                                            random_event_ticks)

    rng = np.random.default_rng(seed)
    case = {"weights": case_weights(config, rng), "ready_probability": ready_probability,
            "seed": seed}
    if config.rule == "erbp" and learning is None:
        session = random_erbp_session(config, rng, ticks, activity)
        case["event_ticks"] = [events for _, events in session]
        case["register_writes"] = [writes for writes, _ in session]
        return case
    case["event_ticks"] = random_event_ticks(config, rng, ticks, activity, out_of_range)
    if config.rule == "erbp":
        case["register_writes"] = ([[("learning_enabled", int(learning)), ("burn_in_ticks", 0)]]
                                   + [[] for _ in range(ticks - 1)])
    return case


def make_decolle_case(config, *, ticks: int, seed: int, activity: float, learn: bool,
                      label: int | None = None) -> dict:
    """One sample of ``ticks`` ticks from the golden model's initial weights: each input
    spikes with probability ``activity`` per tick, the label (``n_inputs + label``) comes
    every tick, learning is on from the first tick (burn-in 0) when ``learn``."""
    from plasticore.golden.decolle import initial_parameters

    rng = np.random.default_rng(seed)
    weights, biases = initial_parameters(config)
    n_inputs, n_classes = config.n_inputs, config.layers[-1]
    label = int(rng.integers(0, n_classes)) if label is None else label
    script = [["write", "learn", int(learn)], ["write", "burn_in", 0], ["sample"]]
    for _ in range(ticks):
        events = [int(j) for j in np.flatnonzero(rng.random(n_inputs) < activity)]
        script.append(["tick", events + [n_inputs + label]])
    return {"weights": weights, "biases": biases, "script": script, "ready_probability": 1.0,
            "seed": seed}


def verify(config, *, simulator: str, ticks: int, seed: int, activity: float,
           ready_probability: float, build_root, weights=None,
           engine: str | None = None) -> dict:
    """Run golden (on ``engine``, :mod:`plasticore.golden.engine`) and RTL on the same
    random input; return the testbench result.

    ``weights`` (one integer matrix per projection, such as imported ones) replaces the
    random weights of the case.
    """
    from plasticore.sim.runner import run_case

    if weights is not None and config.rule == "decolle":
        raise ValueError("--weights: a DECOLLE core also has biases; verify it with its "
                         "random weights")
    if config.rule == "decolle":
        from plasticore.sim.decolle_case import random_case
        from plasticore.sim.runner import run_decolle_case

        case = random_case(config, np.random.default_rng(seed), ticks, activity=activity)
        case.update(ready_probability=ready_probability, seed=seed, engine=engine)
        return run_decolle_case(config, case, simulator=simulator, build_root=build_root)

    case = make_case(config, ticks=ticks, seed=seed, activity=activity,
                     ready_probability=ready_probability)
    if weights is not None:
        case["weights"] = [np.asarray(w, dtype=np.int64) for w in weights]
    case["engine"] = engine
    return run_case(config, case, simulator=simulator, build_root=build_root)


def format_verdict(result: dict) -> str:
    """Return the one-line verdict of a verification result."""
    if result["mismatch"] is None:
        return (f"bit-exact: {result['ticks']} ticks, {result['spikes']} spikes, "
                f"{result['state_words']} state words compared")
    fields = ", ".join(f"{k} {v}" for k, v in result["mismatch"].items())
    return f"MISMATCH after {result['ticks']} bit-exact ticks: {fields}"


def benchmark(config, *, simulator: str, ticks: int, seed: int, activities, build_root,
              burst_events: int = 512) -> dict:
    """Measure cycles per tick and per synaptic event on the RTL.

    The output is always ready, so the figures are the core's own. ``burst`` runs one tick
    with ``burst_events`` input events: delivery dominates and its cost per synaptic event
    approaches the steady state of one word (``lanes`` synapses) per cycle.
    """
    from plasticore.sim.random_case import case_weights
    from plasticore.sim.runner import run_case

    # A learning core is measured with learning off and on, on the same input.
    learning_modes = (False, True) if config.rule == "erbp" else (None,)
    rows = []
    for activity, learning in itertools.product(activities, learning_modes):
        case = make_case(config, ticks=ticks, seed=seed, activity=activity,
                         ready_probability=1.0, out_of_range=0.0, learning=learning)
        case["check_weights"] = False
        result = run_case(config, case, simulator=simulator, build_root=build_root)
        if result["mismatch"] is not None:
            raise RuntimeError(format_verdict(result))
        cycles = sum(result["tick_cycles"])
        synaptic = sum(result["synaptic_events"])
        rows.append({
            "activity": activity,
            "learning": learning,
            "input_events_per_tick": sum(result["input_events"]) / ticks,
            "spikes_per_tick": result["spikes"] / ticks,
            "synaptic_events_per_tick": synaptic / ticks,
            "cycles_per_tick": cycles / ticks,
            "cycles_per_synaptic_event": cycles / synaptic if synaptic else None,
        })
    bursts = []
    for learning in learning_modes:
        rng = np.random.default_rng(seed)
        burst = {"weights": case_weights(config, rng),
                 "event_ticks": [rng.integers(0, config.n_inputs, size=burst_events)],
                 "ready_probability": 1.0, "seed": seed, "check_weights": False}
        if learning is not None:
            burst["register_writes"] = [[("learning_enabled", int(learning)),
                                         ("burn_in_ticks", 0)]]
        result = run_case(config, burst, simulator=simulator, build_root=build_root)
        if result["mismatch"] is not None:
            raise RuntimeError(format_verdict(result))
        bursts.append({
            "learning": learning,
            "input_events": burst_events,
            "synaptic_events": result["synaptic_events"][0],
            "cycles": result["tick_cycles"][0],
            "cycles_per_synaptic_event": result["tick_cycles"][0] / result["synaptic_events"][0],
            "ideal_cycles_per_synaptic_event": 1 / config.lanes,
        })
    return {"config": config.name, "lanes": config.lanes, "simulator": simulator,
            "ticks": ticks, "activity": rows, "bursts": bursts}


def benchmark_decolle(config, *, simulator: str, ticks: int, seed: int, activities,
                      build_root) -> dict:
    """Measure the DECOLLE core's cycles per tick against input activity, learning off and on.

    Each row is one sample of ``ticks`` ticks from the initial weights, checked bit for bit
    against golden tick by tick (the final state is not read back). The output is always
    ready, so the figures are the core's own.
    """
    from plasticore.sim.runner import run_decolle_case

    rows = []
    for learn in (False, True):
        for activity in activities:
            case = make_decolle_case(config, ticks=ticks, seed=seed, activity=activity, learn=learn)
            case["check_state"] = False
            result = run_decolle_case(config, case, simulator=simulator, build_root=build_root,
                                      optimize=True)
            if result["mismatch"] is not None:
                raise RuntimeError(format_verdict(result))
            cycles = np.array(result["tick_cycles"])
            rows.append({
                "learning": learn,
                "activity": activity,
                "input_events_per_tick": sum(result["input_events"]) / ticks,
                "spikes_per_tick": result["spikes"] / ticks,
                "cycles_per_tick": float(cycles.mean()),
                "cycles_min": int(cycles.min()),
                "cycles_max": int(cycles.max()),
            })
    return {"config": config.name, "rule": "decolle", "simulator": simulator, "ticks": ticks,
            "synapses": config.n_synapses, "lanes": config.lanes, "activity": rows}


def _print_decolle_benchmark(figures: dict) -> None:
    print(f"{figures['config']}: DECOLLE core, {figures['synapses']} synapses, "
          f"{figures['lanes']} per cycle (lanes); "
          f"{figures['ticks']} ticks per row (one sample, label every tick), RTL on "
          f"{figures['simulator']}")
    print(f"{'learning':>8} {'activity':>8} {'in ev/tick':>10} {'spikes/tick':>11} "
          f"{'cycles/tick':>11} {'min':>7} {'max':>7}")
    for row in figures["activity"]:
        print(f"{'on' if row['learning'] else 'off':>8} {row['activity']:>8.3f} "
              f"{row['input_events_per_tick']:>10.2f} {row['spikes_per_tick']:>11.2f} "
              f"{row['cycles_per_tick']:>11.1f} {row['cycles_min']:>7} {row['cycles_max']:>7}")


def _print_benchmark(figures: dict) -> None:
    print(f"{figures['config']}: lanes {figures['lanes']}, {figures['ticks']} ticks per activity "
          f"level, RTL on {figures['simulator']}")
    def learning_label(learning):
        return "" if learning is None else (" learning" if learning else " inference")

    print(f"{'activity':>8} {'learning':>8} {'in ev/tick':>10} {'spikes/tick':>11} "
          f"{'syn ev/tick':>11} {'cycles/tick':>11} {'cycles/syn ev':>13}")
    for row in figures["activity"]:
        per_event = row["cycles_per_synaptic_event"]
        learning = {None: "-", False: "off", True: "on"}[row["learning"]]
        print(f"{row['activity']:>8.3f} {learning:>8} {row['input_events_per_tick']:>10.2f} "
              f"{row['spikes_per_tick']:>11.2f} {row['synaptic_events_per_tick']:>11.1f} "
              f"{row['cycles_per_tick']:>11.1f} "
              f"{(f'{per_event:.3f}' if per_event else '-'):>13}")
    for burst in figures["bursts"]:
        print(f"burst{learning_label(burst['learning'])}: {burst['input_events']} input events "
              f"in one tick, {burst['synaptic_events']} synaptic events in {burst['cycles']} "
              f"cycles = {burst['cycles_per_synaptic_event']:.3f} cycles per synaptic event "
              f"(one word per cycle would be {burst['ideal_cycles_per_synaptic_event']:.3f})")


def load_buildable(path):
    """Load a configuration and refuse it if it is too large for the flow (before any
    weight is allocated)."""
    config = load_config(path)
    config.check_size()
    return config


def _generate_command(args) -> int:
    config = load_buildable(args.config)
    verilog_path, json_path = generate(config, Path(args.output))
    print(f"wrote {verilog_path} and {json_path}")
    return 0


def _verify_command(args) -> int:
    from plasticore.sim.runner import SimulatorError

    if args.config.endswith(".json"):
        return _replay_command(args)
    config = load_buildable(args.config)
    weights = None
    if args.weights:
        from .weights_file import load_weights
        try:
            weights = load_weights(args.weights, config)
        except ValueError as error:
            print(f"plasticore verify: {error}", file=sys.stderr)
            return 2
    try:
        result = verify(config, simulator=args.simulator, ticks=args.ticks, seed=args.seed,
                        activity=args.activity, ready_probability=args.ready,
                        build_root=args.build_dir, weights=weights, engine=args.engine)
    except (SimulatorError, ValueError) as error:
        print(f"plasticore: {error}", file=sys.stderr)
        return 2
    print(format_verdict(result))
    return 0 if result["mismatch"] is None else 1


def _replay_command(args) -> int:
    """``plasticore verify CASE.json``: replay a case written by ``plasticore fuzz``."""
    from plasticore.fuzz import replay
    from plasticore.sim.runner import SimulatorError

    try:
        result = replay(args.config, simulator=args.simulator, build_root=args.build_dir)
    except SimulatorError as error:
        print(f"plasticore: {error}", file=sys.stderr)
        return 2
    if result["mismatch"] is None:
        print(f"bit-exact: {result['streams']} streams, {result['ticks']} ticks, "
              f"{result['spikes']} spikes, {result['state_checks']} state checks")
        return 0
    fields = ", ".join(f"{k} {v}" for k, v in result["mismatch"].items())
    print(f"MISMATCH after {result['ticks']} bit-exact ticks: {fields}")
    return 1


def _read_build_report(report_path) -> dict:
    """A build's ``report.json``, refused with the missing field if it is not one."""
    try:
        report = json.loads(Path(report_path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--report {report_path}: cannot read a build report ({error})")
    for key in ("clock_requested_mhz", "fmax_mhz", "board", "utilization"):
        if key not in report:
            raise ValueError(f"--report {report_path}: not a plasticore build report "
                             f"(no field {key!r})")
    return report


#: The resources a build report lists, in the order they are printed.
REPORT_RESOURCES = ("LUT", "FF", "BRAM", "SPRAM", "DSP")


def bench_resources(report_path) -> str:
    """One line of what a build used of its device: used/available of each resource
    (``BRAM`` the block RAMs, ``SPRAM`` the iCE40UP's single-port RAM blocks)."""
    report = _read_build_report(report_path)
    utilization = report["utilization"]
    parts = [f"{name} {utilization[name]['used']}/{utilization[name]['available']}"
             for name in REPORT_RESOURCES if name in utilization]
    return f"{report['board']} build uses {', '.join(parts)}"


def bench_clocks(report_path=None, clock_mhz=None) -> list[tuple[str, float]]:
    """The clocks to quote throughput at: ``(label, MHz)``.

    From a build's ``report.json``: the clock the bitstream was built for (timing met or
    not, the report says) and nextpnr's Fmax (what a build at that clock would do); and a
    clock given by hand.
    """
    clocks = []
    if report_path is not None:
        report = _read_build_report(report_path)
        met = "met" if report.get("timing_met") else "NOT met"
        clocks.append((f"{report['board']} build clock (timing {met})",
                       float(report["clock_requested_mhz"])))
        if report["fmax_mhz"] is not None:
            clocks.append((f"{report['board']} Fmax", float(report["fmax_mhz"])))
    if clock_mhz is not None:
        if not clock_mhz > 0:
            raise ValueError(f"--clock {clock_mhz}: must be a clock above 0 MHz")
        clocks.append(("given clock", float(clock_mhz)))
    return clocks


def throughput_rows(figures: dict, clocks) -> list[dict]:
    """Synaptic events per second at each clock: synaptic events per cycle times the clock.

    For the event-driven cores a synaptic event is one weight added into one accumulator
    (with learning on, also rewritten); for the DECOLLE core, whose tick is dense, it is
    one synapse visited by the tick's membrane pass (every synapse every tick).
    """
    rows = []
    for label, mhz in clocks:
        for row in figures["activity"]:
            if "synaptic_events_per_tick" in row:
                per_tick = row["synaptic_events_per_tick"]
            else:
                per_tick = figures["synapses"]
            rows.append({"clock": label, "mhz": mhz, "kind": "activity",
                         "activity": row["activity"], "learning": row["learning"],
                         "synaptic_events_per_second": per_tick / row["cycles_per_tick"]
                         * mhz * 1e6})
        for burst in figures.get("bursts", []):
            rows.append({"clock": label, "mhz": mhz, "kind": "burst",
                         "learning": burst["learning"],
                         "synaptic_events_per_second":
                             mhz * 1e6 / burst["cycles_per_synaptic_event"]})
    return rows


def _print_throughput(rows) -> None:
    for row in rows:
        learning = {None: "", False: ", learning off", True: ", learning on"}[row["learning"]]
        what = (f"burst{learning}" if row["kind"] == "burst"
                else f"activity {row['activity']:.3f}{learning}")
        print(f"throughput at {row['mhz']:.2f} MHz ({row['clock']}), {what}: "
              f"{row['synaptic_events_per_second'] / 1e6:.2f} M synaptic events/s")


def _bench_command(args) -> int:
    from plasticore.golden.engine.bench import compare, format_rows

    config = load_buildable(args.config)
    try:
        clocks = bench_clocks(args.report, args.clock)
    except ValueError as error:
        print(f"plasticore bench: {error}", file=sys.stderr)
        return 2
    if clocks and args.golden_only:
        # Throughput comes from the RTL's cycle counts, which --golden-only skips.
        print("plasticore bench: --report and --clock need the RTL measurement; "
              "drop --golden-only", file=sys.stderr)
        return 2
    if args.layers:
        # The same core at another size (an MNIST-size network from the digits example).
        from .config import CoreConfig
        config = CoreConfig.from_dict({**config.to_dict(), "layers": list(args.layers)},
                                      source=f"{args.config} with --layers")
        config.check_size()
    figures = {"config": config.name, "layers": list(config.layers)}
    if args.golden_only:
        figures["rtl"] = None
    elif config.rule == "decolle":
        # A dense tick costs every synapse: fewer ticks per row by default.
        figures = benchmark_decolle(config, simulator=args.simulator,
                                    ticks=args.ticks or DECOLLE_BENCH_TICKS, seed=args.seed,
                                    activities=args.activity, build_root=args.build_dir)
        _print_decolle_benchmark(figures)
    else:
        figures = benchmark(config, simulator=args.simulator, ticks=args.ticks or 100,
                            seed=args.seed, activities=args.activity, build_root=args.build_dir,
                            burst_events=args.burst)
        _print_benchmark(figures)
    if clocks:
        figures["throughput"] = throughput_rows(figures, clocks)
        _print_throughput(figures["throughput"])
    if args.report is not None:
        figures["resources"] = bench_resources(args.report)
        print(figures["resources"])
    # The golden model on both engines, on the same work (see plasticore.golden.engine.bench).
    figures["golden"] = compare(config, ticks=args.golden_ticks, numpy_ticks=args.numpy_ticks,
                                activity=args.golden_activity, seed=args.seed)
    print("\n".join(format_rows(figures["golden"])))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(f"{value} is not between 0 and 1")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} is not positive")
    return value


def register(subparsers) -> None:
    """Add the ``generate``, ``verify`` and ``bench`` commands."""
    from plasticore.sim.runner import DEFAULT_BUILD_ROOT, SIMULATORS

    generate_parser = subparsers.add_parser(
        "generate", help="write the Verilog of a core and a JSON description of its ports")
    generate_parser.add_argument("config", help="core configuration (TOML)")
    generate_parser.add_argument("-o", "--output", required=True, help="output directory")
    generate_parser.set_defaults(handler=_generate_command)

    def simulation_options(parser):
        parser.add_argument("config", help="core configuration (TOML); for verify also a "
                                           "case written by plasticore fuzz (.json)")
        parser.add_argument("--simulator", choices=SIMULATORS, default="verilator")
        parser.add_argument("--seed", type=int, default=0, help="seed of weights and events")
        parser.add_argument("--build-dir", default=str(DEFAULT_BUILD_ROOT),
                            help="where compiled simulations are cached")

    verify_parser = subparsers.add_parser(
        "verify", help="run random input through golden and RTL, compare every tick")
    simulation_options(verify_parser)
    verify_parser.add_argument("--ticks", type=_positive, default=200)
    verify_parser.add_argument("--activity", type=_probability, default=0.2,
                               help="mean fraction of inputs that spike per tick")
    verify_parser.add_argument("--ready", type=_probability, default=0.8,
                               help="probability that the output is ready in a cycle")
    verify_parser.add_argument("--weights", default=None, metavar="W",
                               help="weights file (.npz of w0, w1, ..., as `import` and "
                                    "`train` write) instead of random weights")
    verify_parser.add_argument("--engine", choices=ENGINES, default=None,
                               help="golden model engine: fast (compiled, the default when "
                                    "numba is installed) or numpy (the specification)")
    verify_parser.set_defaults(handler=_verify_command)

    bench_parser = subparsers.add_parser(
        "bench", help="measure RTL cycles per tick and per synaptic event, golden speed")
    simulation_options(bench_parser)
    bench_parser.add_argument("--ticks", type=_positive, default=None,
                              help="ticks per activity level (default 100; DECOLLE: "
                                   f"{DECOLLE_BENCH_TICKS})")
    bench_parser.add_argument("--activity", type=_probability, nargs="+",
                              default=[0.05, 0.1, 0.2, 0.4])
    bench_parser.add_argument("--burst", type=_positive, default=512,
                              help="input events in the one-tick burst measurement")
    bench_parser.add_argument("--golden-only", action="store_true",
                              help="measure the golden model only (no RTL simulation)")
    bench_parser.add_argument("--golden-ticks", type=_positive, default=20_000,
                              help="ticks for the golden model's fast engine (default 20000)")
    bench_parser.add_argument("--numpy-ticks", type=_positive, default=1_000,
                              help="ticks for the NumPy specification (default 1000)")
    bench_parser.add_argument("--layers", type=_positive, nargs="+", default=None,
                              help="measure the config at these layer sizes instead, e.g. "
                                   "784 200 10 (same depth)")
    bench_parser.add_argument("--golden-activity", type=_probability, default=None,
                              help="inputs spiking per tick in the golden measurement (default: "
                                   "a learning core's input_rate times the digits' mean "
                                   "intensity, 0.2 for an inference core)")
    bench_parser.add_argument("--report", default=None,
                              help="a build's report.json (plasticore build): also give "
                                   "synaptic events per second at its clock and its Fmax")
    bench_parser.add_argument("--clock", type=float, default=None, metavar="MHZ",
                              help="also give synaptic events per second at this clock")
    bench_parser.add_argument("--json", help="also write the figures to this JSON file")
    bench_parser.set_defaults(handler=_bench_command)
