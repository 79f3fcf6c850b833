"""The scoreboard: everything the host can observe of a core, against the golden model.

After every tick
    the tick's output events, **in order**, exactly as the golden model's tick docstring
    states them: the spikes of layer 1 in ascending neuron order, then those of layer 2,
    ..., each tagged with the tick, then one end-of-tick event (``layer = neuron = 0``);
    then the counters and the sticky flags (``tick``, ``dropped_events``, ``flags`` and a
    learning core's ``sample_tick``) read through the host port. Flags are compared after
    every tick, so a wrong raise is seen in the tick it happens, not only the first one.
At chosen ticks and at the end
    every word of state: weights, membranes, refractory counters, a learning core's
    dendrites, error neurons, biases, spikes and traces, and every register.

The checks raise :class:`Mismatch` at the first difference, naming what, where, the
expected and the observed value. The functions here know the golden models and the memory
map; the cocotb benches only provide ``host_read``.
"""

from __future__ import annotations

from itertools import zip_longest

from plasticore.layout import CORE_MAGIC

__all__ = ["Mismatch", "expected_outputs", "check_outputs", "tick_registers",
           "all_registers", "state_words", "Scoreboard"]

TICK_MASK = (1 << 32) - 1


class Mismatch(Exception):
    """The RTL and the golden model disagree."""

    def __init__(self, **fields):
        self.fields = fields
        super().__init__(", ".join(f"{k} {v}" for k, v in fields.items()))

    def as_json(self) -> dict:
        """The fields, with values JSON cannot hold as text."""
        return {k: (v if isinstance(v, (int, str, list, type(None))) else str(v))
                for k, v in self.fields.items()}


def expected_outputs(tick: int, spikes) -> list[tuple[int, int, int, int]]:
    """Return the output events of a tick tagged ``tick`` whose golden spikes (per layer,
    ascending) are ``spikes``: ``(tick, layer, neuron, end_of_tick)`` in stream order."""
    tag = tick & TICK_MASK
    events = [(tag, layer, int(neuron), 0)
              for layer, neurons in enumerate(spikes, 1) for neuron in neurons]
    return events + [(tag, 0, 0, 1)]


def check_outputs(tick: int, outputs, spikes) -> None:
    """Compare a tick's output events, in order, with what golden's ``spikes`` give.

    Raises
    ------
    Mismatch
        At the first event that differs (or is missing, or extra), with its position.
    """
    expected = expected_outputs(tick, spikes)
    for index, (want, have) in enumerate(zip_longest(expected, [tuple(e) for e in outputs])):
        if want != have:
            # Name the layer and neuron of the event that should have come (or came).
            layer, neuron = (want or have)[1:3]
            raise Mismatch(tick=tick, what="output event", layer=layer, neuron=neuron,
                           position=index,
                           expected=list(want) if want else None,
                           got=list(have) if have else None,
                           expected_spikes=[[int(n) for n in s] for s in spikes])


def tick_registers(golden) -> dict[str, int]:
    """The counters and flags compared after every tick."""
    values = {"tick": golden.tick_count & TICK_MASK, "dropped_events": golden.dropped_events,
              "flags": golden.flags}
    if golden.config.rule != "none":
        values["sample_tick"] = golden.sample_tick
    return values


def all_registers(golden) -> dict[str, int]:
    """Every register of the core's memory map with the value golden says it reads."""
    config = golden.config
    values = {"magic": CORE_MAGIC, "layers": len(config.neuron_layers),
              "neurons": config.n_neurons, **tick_registers(golden)}
    if config.rule == "erbp":
        values.update(learning_enabled=int(golden.learning_enabled),
                      burn_in_ticks=golden.burn_in_ticks,
                      learning_rate_shift=golden.learning_rate_shift)
    elif config.rule == "decolle":
        values.update(learn=int(golden.learning), burn_in=golden.burn_in)
        values.update({f"lr_shift_{index}": shift
                       for index, shift in enumerate(golden.lr_shifts, 1)})
    return values


def state_words(golden, layout, *, weights: bool = True):
    """Yield ``(what, where, address, expected)`` for every word of state the host can read.

    ``where`` is a dict naming the word (layer, neuron, pre, post, ...).
    """
    config = golden.config
    if weights:
        # Every projection, feedforward then recurrent, in the golden weight list's order.
        for index, lay in enumerate(layout.projections):
            matrix = golden.weights[index]
            for pre in range(lay.n_pre):
                for post in range(lay.n_post):
                    yield ("weight", {"layer": lay.index, "source": lay.source, "pre": pre,
                                      "post": post},
                           layout.projection_address(index, pre, post), int(matrix[pre, post]))
    if config.rule == "decolle":
        from plasticore.sim.decolle_case import golden_state
        from plasticore.sim.decolle_pysim import STATE_REGIONS

        state = golden_state(golden)
        for name, region in STATE_REGIONS.items():
            for index, lay in enumerate(layout.layers):
                base, count = ((lay.row_base, lay.n_pre) if name.startswith("trace")
                               else (lay.state_base, lay.n_post))
                for k in range(count):
                    yield (name, {"layer": lay.index, "index": k},
                           layout.address(region, base + k), int(state[name][index][k]))
        return
    per_neuron = [("membrane", layout.membrane_address, golden.membrane),
                  ("refractory", layout.refractory_address, golden.refractory)]
    if config.rule == "erbp":
        per_neuron.append(("dendrite", layout.dendrite_address, golden.dendrite))
    for what, address_of, values in per_neuron:
        for index, lay in enumerate(layout.layers):
            for neuron in range(lay.n_post):
                yield (what, {"layer": lay.index, "neuron": neuron},
                       address_of(lay.index, neuron), int(values[index][neuron]))
    if config.rule == "erbp":
        for sign in (0, 1):
            for k in range(config.layers[-1]):
                yield ("error neuron", {"sign": "+-"[sign], "k": k},
                       layout.error_address(sign, k), int(golden.error_state[sign, k]))


class Scoreboard:
    """Checks a running core against its golden model through a bench's host port.

    Parameters
    ----------
    bench
        Offers ``async host_read(address) -> int`` (signed 32-bit).
    golden
        The golden model the bench runs in lockstep.
    layout
        The core's memory map.
    """

    def __init__(self, bench, golden, layout):
        self.bench = bench
        self.golden = golden
        self.layout = layout
        self.words = 0           # state and register words compared so far

    async def _compare_registers(self, tick, values: dict) -> None:
        for name, want in values.items():
            have = (await self.bench.host_read(self.layout.register_address(name))) & TICK_MASK
            if have != want:
                raise Mismatch(tick=tick, what=f"register {name}", expected=want, got=have)
            self.words += 1

    async def after_tick(self, tick: int, outputs, spikes) -> None:
        """Check tick ``tick``'s output events in order, then the counters and flags."""
        check_outputs(tick, outputs, spikes)
        await self._compare_registers(tick, tick_registers(self.golden))

    async def check_state(self, tick, *, weights: bool = True) -> None:
        """Read every word of state and every register; ``tick`` labels a mismatch."""
        for what, where, address, want in state_words(self.golden, self.layout,
                                                      weights=weights):
            have = await self.bench.host_read(address)
            if have != want:
                raise Mismatch(tick=tick, what=what, **where, expected=want, got=have)
            self.words += 1
        await self._compare_registers(tick, all_registers(self.golden))

