"""The one description every part of the flow reads: :class:`CoreConfig`.

A configuration is frozen and validated when it is built. An impossible value is refused
with a :class:`ConfigError` that names the field, the value and the limit, so that a typo in
a TOML file never reaches synthesis.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "CoreConfig", "RESET_MODES", "LEARNING_RULES", "WEIGHT_MEMORIES",
           "load_config", "check_label_addresses", "MAX_FLOW_SYNAPSES", "MAX_NEURON_LAYERS"]

#: How a neuron's membrane is reset after it spikes.
RESET_MODES = ("zero", "subtract")
#: Learning rules a core can carry. Each rule other than ``none`` has its parameters in a
#: TOML table of the same name, parsed by ``plasticore.rules.<rule>.Params``.
LEARNING_RULES = ("none", "erbp", "decolle")
#: Where the weights live: block RAM, or the iCE40UP's single-port SPRAM.
WEIGHT_MEMORIES = ("bram", "spram")
#: SPRAM blocks of the largest device that has them (iCE40UP5K: 4 x 16384 x 16 bits).
MAX_SPRAM_BLOCKS = 4

# Limits that follow from the hardware, not from taste.
MAX_NEURONS_PER_LAYER = 1 << 16   # AER addresses and host offsets are 16-bit
MAX_WEIGHT_BITS = 16
MAX_MEMBRANE_BITS = 32            # the host port moves 32-bit words
MAX_REFRACTORY_TICKS = 255
ALLOWED_LANES = (1, 2, 4, 8, 16)
MAX_NEURON_LAYERS = 255           # the output event tags its layer in 8 bits, 0 unused
#: Largest network the flow builds or simulates: generating, simulating or synthesizing a core
#: holds every weight in memory several times over (Python lists, int64 arrays, Verilog
#: text), so a bigger one is refused before anything is allocated. 2**22 synapses is over
#: ten times what the largest supported FPGA holds.
MAX_FLOW_SYNAPSES = 1 << 22


class ConfigError(ValueError):
    """An impossible configuration value: names the field, the value and the limit."""

    def __init__(self, field_name: str, value: Any, limit: str):
        self.field = field_name
        self.value = value
        self.limit = limit
        super().__init__(f"{field_name} = {value!r}: {limit}")


def _require_int(name: str, value: Any) -> int:
    # bool is an int subclass; `lanes = true` in a TOML file is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, value, "must be an integer")
    return value


def _require_range(name: str, value: Any, low: int, high: int) -> int:
    value = _require_int(name, value)
    if not low <= value <= high:
        raise ConfigError(name, value, f"must be between {low} and {high}")
    return value


@dataclass(frozen=True)
class CoreConfig:
    """A fully connected feedforward spiking core, validated on construction.

    Parameters
    ----------
    layers : tuple of int
        Population sizes, inputs first: ``(64, 32, 10)`` is 64 inputs, a hidden layer of 32
        LIF neurons and 10 output neurons. At least two entries.
    weight_bits : int
        Width of a signed weight, 2 to 16.
    membrane_bits : int
        Width of the signed membrane potential and of the per-neuron synaptic accumulator,
        from ``weight_bits + 1`` to 32.
    leak_shift : int
        The leak is ``v -= v >> leak_shift`` once per tick (arithmetic shift); 0 disables it.
    threshold : int
        A neuron spikes when its membrane is ``>= threshold``; positive and representable.
    reset : {"zero", "subtract"}
        After a spike the membrane becomes 0, or ``v - threshold``.
    refractory_ticks : int
        Ticks after a spike during which a neuron ignores its input and holds its membrane.
    lanes : int
        Weights per memory word, delivered in parallel: 1, 2, 4, 8 or 16.
    seed : int
        Seed for everything random that belongs to the network (initial weights).
    rule : {"none", "erbp", "decolle"}
        Learning rule.
    learning : object or None
        The rule's parameters (``plasticore.rules.<rule>.Params``), None for ``"none"``.
    name : str
        A label used in generated file names.
    data : DataSettings or None
        The ``[data]`` table (``plasticore.datasets.settings.DataSettings``): validation
        split and how event data become ticks; None means every default.
    weight_memory : {"bram", "spram"}
        Where the weights live. ``"spram"`` puts them in the iCE40UP's single-port SPRAM
        (4 blocks of 16384 x 16 bits on the UP5K) instead of block RAM; only for
        ``rule = "none"``, and only on a board that has SPRAM (the board build checks).
    projections : tuple of (int, int)
        Every weight matrix as ``(source, target)`` populations, numbered as in ``layers``
        (0 is the inputs). Empty (the default) means the feedforward chain ``layers``
        implies: ``(0, 1), (1, 2), ...``. A list must hold that whole chain and may add
        *recurrent* projections, ``target <= source`` (a layer onto itself or onto an
        earlier layer), whose spikes arrive at the start of the next tick
        (:mod:`plasticore.golden.lif`). Only ``rule = "none"`` accepts them.
    """

    layers: tuple[int, ...]
    weight_bits: int = 8
    membrane_bits: int = 16
    leak_shift: int = 4
    threshold: int = 256
    reset: str = "zero"
    refractory_ticks: int = 0
    lanes: int = 1
    seed: int = 0
    rule: str = "none"
    learning: Any = None
    name: str = "core"
    data: Any = None
    projections: tuple[tuple[int, int], ...] = ()
    weight_memory: str = "bram"

    def __post_init__(self):
        layers = self.layers
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise ConfigError("layers", layers, "must be a list of population sizes")
        layers = tuple(layers)
        object.__setattr__(self, "layers", layers)
        if len(layers) < 2:
            raise ConfigError("layers", list(layers),
                              "needs at least two entries (inputs, then one neuron layer)")
        for index, size in enumerate(layers):
            _require_range(f"layers[{index}]", size, 1, MAX_NEURONS_PER_LAYER)
        if len(layers) - 1 > MAX_NEURON_LAYERS:
            raise ConfigError("layers", f"<{len(layers)} entries>",
                              f"{len(layers) - 1} neuron layers; at most {MAX_NEURON_LAYERS} "
                              "(the output event tags its layer in 8 bits)")

        _require_range("weight_bits", self.weight_bits, 2, MAX_WEIGHT_BITS)
        _require_range("membrane_bits", self.membrane_bits, self.weight_bits + 1,
                       MAX_MEMBRANE_BITS)
        _require_range("leak_shift", self.leak_shift, 0, self.membrane_bits - 1)
        _require_range("threshold", self.threshold, 1, (1 << (self.membrane_bits - 1)) - 1)
        if self.reset not in RESET_MODES:
            raise ConfigError("reset", self.reset, f"must be one of {', '.join(RESET_MODES)}")
        _require_range("refractory_ticks", self.refractory_ticks, 0, MAX_REFRACTORY_TICKS)
        _require_int("lanes", self.lanes)
        if self.lanes not in ALLOWED_LANES:
            raise ConfigError("lanes", self.lanes,
                              f"must be one of {', '.join(map(str, ALLOWED_LANES))}")
        _require_range("seed", self.seed, 0, (1 << 32) - 1)
        if self.rule not in LEARNING_RULES:
            raise ConfigError("rule", self.rule,
                              f"must be one of {', '.join(LEARNING_RULES)}")
        if self.rule == "none" and self.learning is not None:
            raise ConfigError("learning", self.learning, 'must be absent when rule = "none"')
        if self.rule != "none":
            self._validate_learning()
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ConfigError("name", self.name,
                              "must be a Python-identifier-like label (letters, digits, _)")
        object.__setattr__(self, "projections", self._check_projections())
        self._check_weight_memory()

    def _check_projections(self) -> tuple[tuple[int, int], ...]:
        """Validate ``projections``; return it in canonical form (empty: no recurrence)."""
        projections = self.projections
        if isinstance(projections, (str, bytes)) or not hasattr(projections, "__iter__"):
            raise ConfigError("projections", projections,
                              "must be a list of [source, target] population pairs")
        n_layers = len(self.layers) - 1
        chain = [(source, source + 1) for source in range(n_layers)]
        if not projections:
            return ()
        pairs = []
        for index, entry in enumerate(projections):
            name = f"projections[{index}]"
            if isinstance(entry, (str, bytes)) or not hasattr(entry, "__len__") or len(entry) != 2:
                raise ConfigError(name, entry, "must be a [source, target] pair")
            source = _require_range(f"{name}[0] (source)", entry[0], 0, n_layers)
            target = _require_range(f"{name}[1] (target)", entry[1], 1, n_layers)
            if target > source + 1:
                raise ConfigError(name, list(entry),
                                  "skips a layer: a projection is feedforward "
                                  "(target = source + 1) or recurrent (target <= source)")
            if (source, target) in pairs:
                raise ConfigError(name, list(entry), "appears twice")
            pairs.append((source, target))
        missing = [pair for pair in chain if pair not in pairs]
        if missing:
            raise ConfigError("projections", [list(p) for p in projections],
                              f"must hold the whole feedforward chain of layers; "
                              f"{list(missing[0])} is missing")
        recurrent = tuple(pair for pair in pairs if pair not in chain)
        if recurrent and self.rule != "none":
            raise ConfigError("projections", [list(p) for p in projections],
                              f'recurrent projections need rule = "none" (the {self.rule} '
                              "core is feedforward)")
        return tuple(chain) + recurrent if recurrent else ()

    def _check_weight_memory(self) -> None:
        """``weight_memory``: a known memory; SPRAM within 4 blocks."""
        if self.weight_memory not in WEIGHT_MEMORIES:
            raise ConfigError("weight_memory", self.weight_memory,
                              f"must be one of {', '.join(WEIGHT_MEMORIES)}")
        if self.weight_memory != "spram":
            return
        from plasticore.hdl.spram import SpramGeometry
        words = sum(self.layers[s] * -(-self.layers[t] // self.lanes)
                    for s, t in self.projection_pairs)
        geometry = SpramGeometry(self.lanes, self.weight_bits, words)
        if geometry.blocks > MAX_SPRAM_BLOCKS:
            raise ConfigError("weight_memory", self.weight_memory,
                              f"{self.n_synapses} weights of {self.weight_bits} bits in "
                              f"words of {self.lanes} need {geometry.blocks} SPRAM blocks "
                              f"of 16384 x 16 bits; at most {MAX_SPRAM_BLOCKS} (the "
                              "iCE40UP5K's 4 x 256 kbit)")

    def _validate_learning(self) -> None:
        # Every construction path (the constructor, from_dict, replace) checks the rule's
        # parameters against the core they now belong to: replace(membrane_bits=9) must not
        # keep a soma_gain_shift that no longer fits.
        import importlib
        params_type = importlib.import_module(f"plasticore.rules.{self.rule}").Params
        if self.learning is None:
            object.__setattr__(self, "learning", params_type())
        elif not isinstance(self.learning, params_type):
            raise ConfigError("learning", type(self.learning).__name__,
                              f"must be plasticore.rules.{self.rule}.Params for "
                              f"rule = {self.rule!r}")
        self.learning.validate(self)

    def check_size(self, limit: int = MAX_FLOW_SYNAPSES) -> None:
        """Refuse a network too large for the flow, before anything is allocated.

        Raises
        ------
        ConfigError
            Naming ``layers``, the number of synapses and the limit.
        """
        if self.n_synapses > limit:
            raise ConfigError("layers", list(self.layers),
                              f"too large: {self.n_synapses} synapses "
                              f"(~{self.n_synapses * 8 / 2**30:.1f} GiB as int64 weights); "
                              f"the flow builds and simulates at most {limit} synapses")

    # Derived quantities that every part (golden, hdl, host map) shares.

    @property
    def n_inputs(self) -> int:
        """Number of input addresses."""
        return self.layers[0]

    @property
    def neuron_layers(self) -> tuple[int, ...]:
        """Sizes of the layers that hold LIF neurons (every layer but the inputs)."""
        return self.layers[1:]

    @property
    def n_neurons(self) -> int:
        """Number of LIF neurons in the core."""
        return sum(self.neuron_layers)

    @property
    def recurrent(self) -> tuple[tuple[int, int], ...]:
        """The recurrent projections as ``(source, target)`` layers, in config order."""
        return self.projections[len(self.layers) - 1:]

    @property
    def projection_pairs(self) -> tuple[tuple[int, int], ...]:
        """Every projection as ``(source, target)``: the feedforward chain, then the
        recurrent ones. Weight matrices are listed in this order everywhere."""
        chain = tuple((source, source + 1) for source in range(len(self.layers) - 1))
        return chain + self.recurrent

    @property
    def n_synapses(self) -> int:
        """Number of weights in the core."""
        return sum(self.layers[s] * self.layers[t] for s, t in self.projection_pairs)

    @property
    def weight_range(self) -> tuple[int, int]:
        """Smallest and largest representable weight."""
        return -(1 << (self.weight_bits - 1)), (1 << (self.weight_bits - 1)) - 1

    @property
    def membrane_range(self) -> tuple[int, int]:
        """Smallest and largest representable membrane (and accumulator) value."""
        return -(1 << (self.membrane_bits - 1)), (1 << (self.membrane_bits - 1)) - 1

    @property
    def refractory_bits(self) -> int:
        """Width of the refractory counter (at least one bit, so that memories are never empty)."""
        return max(1, math.ceil(math.log2(self.refractory_ticks + 1)))

    def replace(self, **changes) -> "CoreConfig":
        """Return a copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> "CoreConfig":
        """Build a configuration from a mapping (such as a parsed TOML file).

        Unknown keys are refused: a misspelt field would otherwise silently keep its default.
        """
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)} - {"learning"}
        rule = data.get("rule", "none")
        if rule in LEARNING_RULES and rule != "none":
            known.add(rule)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], data[unknown[0]],
                              f"is not a field of {source}; known fields: {', '.join(sorted(known))}")
        if "layers" not in data:
            raise ConfigError("layers", None, f"is required in {source}")
        table = data.pop(rule, {}) if rule != "none" else None
        if data.get("data") is not None:   # the [data] table: split and binning settings
            from plasticore.datasets.settings import DataSettings
            data["data"] = DataSettings.from_dict(data["data"])
        if table is not None and not isinstance(table, dict):
            raise ConfigError(rule, table, f"must be a table of {rule} parameters")
        if table:
            # The table is parsed against the core's shape: check the core's own fields
            # first, then let the rule see it with its rule name (an interim object that
            # only the parser sees), and build the result through the constructor, which
            # validates the whole again.
            shape = cls(**dict(data, rule="none"))
            object.__setattr__(shape, "rule", rule)
            import importlib
            params = importlib.import_module(f"plasticore.rules.{rule}").Params
            return cls(**dict(data, learning=params.from_dict(table, shape)))
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path) -> "CoreConfig":
        """Load a configuration from a TOML file whose top-level keys are the fields."""
        path = Path(path)
        with path.open("rb") as file:
            try:
                data = tomllib.load(file)
            except tomllib.TOMLDecodeError as error:
                raise ConfigError("toml", str(path), f"is not valid TOML: {error}") from None
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict:
        """Return the fields as plain TOML/JSON-friendly values."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["layers"] = list(self.layers)
        settings = data.pop("data")
        if settings is not None:
            data["data"] = settings.to_dict()
        data["projections"] = [list(pair) for pair in self.projections]
        if not data["projections"]:
            del data["projections"]    # the feedforward shorthand: the file reads as before
        if data["weight_memory"] == "bram":
            del data["weight_memory"]  # the default: the file reads as before
        learning = data.pop("learning")
        if learning is not None:
            data[self.rule] = learning.to_dict()
        return data


def check_label_addresses(config: CoreConfig) -> None:
    """Refuse a learning core whose label addresses ``n_inputs + k`` (one per output class
    ``k``) do not fit the 16-bit input event address."""
    n_classes = config.layers[-1]
    if config.n_inputs + n_classes > MAX_NEURONS_PER_LAYER:
        raise ConfigError("layers", list(config.layers),
                          f"n_inputs + classes = {config.n_inputs + n_classes}: the label "
                          f"addresses n_inputs + k of rule = {config.rule!r} must stay below "
                          f"{MAX_NEURONS_PER_LAYER} (16-bit input addresses)")


def load_config(path_or_config) -> CoreConfig:
    """Return ``path_or_config`` if it is a :class:`CoreConfig`, else load it from TOML."""
    if isinstance(path_or_config, CoreConfig):
        return path_or_config
    return CoreConfig.from_toml(path_or_config)
