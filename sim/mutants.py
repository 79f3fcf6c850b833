"""Deliberately broken cores, for tests that show a checker catches a bug.

A mutant wraps a real core and changes what its ports do, so it works on whatever core
``make_core`` builds; none of this is ever synthesized for a board. Each mutation breaks
one rule that a checker claims to enforce:

``wrong_spike``
    Reports a spike of neuron 1 of layer 1 as neuron 0: an off-by-one that only a network
    with two neurons or more in its first layer, the second of them spiking, shows (what
    ``plasticore fuzz`` must find and shrink).
``unstable_output``
    Changes the output payload (its tick tag) while ``valid`` is high and ``ready`` low:
    breaks the stream rule (what the formal properties must catch).
``lost_input``
    Accepts an end-of-tick input while the host holds a request (when the core itself
    takes no input) and never passes it on: an accepted input event is lost and its tick
    never ends.
``late_ack``
    Holds a host request back for 40 cycles before the core sees it: the host is not
    acknowledged within the promised bound.

Two more break rules inside a core, for the core's own assertions (``checks=True``),
which no wrapper at the ports can reach:

``wrapping_sum`` (:data:`ELABORATION_MUTANTS`)
    The lane accumulator adds without saturating (it wraps) and never reports a clamp:
    breaks *saturating arithmetic never wraps*. The part is swapped while the core
    elaborates (:func:`elaboration_mutant`).
``double_owner`` (:data:`ELABORATION_MUTANTS`)
    The update pass claims the accumulator read port in every cycle, so it claims it
    while delivery does: breaks *no memory port driven by two owners in a cycle*.
"""

from __future__ import annotations

import contextlib

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from plasticore.hdl.interfaces import core_ports

__all__ = ["MUTANTS", "ELABORATION_MUTANTS", "NETLIST_MUTANTS", "MutantCore", "make_mutant",
           "elaboration_mutant"]

MUTANTS = ("wrong_spike", "unstable_output", "lost_input", "late_ack")

#: Mutants that swap a part the core builds: name -> (module that builds it, part's name).
ELABORATION_MUTANTS = {"wrapping_sum": ("plasticore.hdl.projection", "LaneAccumulate"),
                       "double_owner": ("plasticore.hdl.core", "UpdatePass")}

#: Mutants made by Yosys commands on the formal harness's netlist (the core is the
#: ``properties.core`` module there), run after ``prep``: none at present.
NETLIST_MUTANTS = {}


class MutantCore(wiring.Component):
    """A core with one deliberate bug at its ports (see the module docstring).

    Parameters
    ----------
    core : wiring.Component
        A core with the ports of :func:`plasticore.hdl.interfaces.core_ports`.
    mutation : str
        One of :data:`MUTANTS`.
    """

    def __init__(self, core, mutation: str):
        if mutation not in MUTANTS:
            raise ValueError(f"mutation = {mutation!r}: must be one of {', '.join(MUTANTS)}")
        self.core = core
        self.mutation = mutation
        super().__init__(core_ports(core.layout.address_bits))

    @property
    def config(self):
        return self.core.config

    @property
    def layout(self):
        return self.core.layout

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        wiring.connect(m, wiring.flipped(self.i_events), core.i_events)
        wiring.connect(m, core.o_events, wiring.flipped(self.o_events))
        wiring.connect(m, wiring.flipped(self.host), core.host)
        # Each mutation overrides one connection made above (the last assignment wins).
        if self.mutation == "wrong_spike":
            payload = core.o_events.payload
            with m.If(~payload.end_of_tick & (payload.layer == 1) & (payload.neuron == 1)):
                m.d.comb += self.o_events.payload.neuron.eq(0)
        elif self.mutation == "unstable_output":
            toggle = Signal()
            m.d.sync += toggle.eq(~toggle)
            with m.If(core.o_events.valid & ~self.o_events.ready & toggle):
                m.d.comb += self.o_events.payload.tick.eq(core.o_events.payload.tick ^ 1)
        elif self.mutation == "lost_input":
            # The core takes no input while the host holds a request (its ready is low).
            with m.If(self.i_events.valid & self.i_events.payload.end_of_tick
                      & self.host.strobe):
                m.d.comb += [self.i_events.ready.eq(1), core.i_events.valid.eq(0)]
        elif self.mutation == "late_ack":
            waited = Signal(range(41))
            with m.If(~self.host.strobe):
                m.d.sync += waited.eq(0)
            with m.Elif(waited < 40):
                m.d.sync += waited.eq(waited + 1)
            with m.If(waited < 40):
                m.d.comb += core.host.strobe.eq(0)
        return m


def make_mutant(core, mutation: str) -> MutantCore:
    """Return ``core`` wrapped with the deliberate bug ``mutation``."""
    return MutantCore(core, mutation)


def _wrapping_lane_accumulate(base):
    """A subclass of the lane accumulator ``base`` that wraps instead of saturating."""

    class WrappingLaneAccumulate(base):
        def elaborate(self, platform):
            m = Module()
            for lane in range(len(self.saturated)):
                total = self.accumulators[lane] + (self.weights[lane] << self._gain_shift)
                # Keep the low bits: the sum wraps, and no clamp is reported.
                m.d.comb += [self.sums[lane].eq(total[:len(self.sums[lane])]),
                             self.saturated[lane].eq(0)]
            return m

    return WrappingLaneAccumulate


def _greedy_update_pass(base):
    """A subclass of the update pass ``base`` that claims the accumulator read port in
    every cycle (it still drives the address only while it runs)."""

    class GreedyUpdatePass(base):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.comb += self.acc_read.valid.eq(1)
            return m

    return GreedyUpdatePass


_SWAPS = {"wrapping_sum": _wrapping_lane_accumulate, "double_owner": _greedy_update_pass}


@contextlib.contextmanager
def elaboration_mutant(mutation: str | None):
    """Within the block, cores elaborate with the part of ``mutation`` swapped (a mutation
    not in :data:`ELABORATION_MUTANTS`, or None, changes nothing)."""
    if mutation not in ELABORATION_MUTANTS:
        yield
        return
    import importlib

    module_name, part = ELABORATION_MUTANTS[mutation]
    module = importlib.import_module(module_name)
    original = getattr(module, part)
    setattr(module, part, _SWAPS[mutation](original))
    try:
        yield
    finally:
        setattr(module, part, original)
