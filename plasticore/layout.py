"""Where every weight, accumulator and neuron lives: the memory layout and host memory map.

The golden model, the hardware, the host driver and the generated JSON all read this one
layout, so an address means the same thing everywhere.

Weight memory
    One memory for every projection. A word holds ``lanes`` weights. Projection ``l``
    (layer ``l-1`` to layer ``l``, ``l >= 1``) owns ``n_pre * row_words`` words from
    ``weight_base``; presynaptic neuron ``j`` owns the row of ``row_words`` consecutive
    words from ``weight_base + j * row_words``, and postsynaptic neuron ``i`` sits in word
    ``i // lanes`` of that row, lane ``i % lanes``. Lanes past the layer's end are padding:
    zero, never written. Recurrent projections (``config.recurrent``) follow the
    feedforward ones in config order, laid out the same way (rows of the source layer,
    words of the target layer).
Accumulator memory
    One word of ``lanes`` accumulators per ``lanes`` neurons, layer ``l`` from
    ``accumulator_base``.
State memory
    One word per neuron (membrane and refractory counter), layer ``l`` from ``state_base``.

Host memory map (32-bit data, word addresses)
    The top two address bits pick a region, the rest is an offset into it:

    ========  ===========  ===================================================
    region    name         offset
    ========  ===========  ===================================================
    0         registers    see :data:`REGISTERS`
    1         weights      ``(row << post_bits) | post``, one weight per address;
                           ``row = row_base + pre`` counts presynaptic rows over
                           all projections (feedforward, then recurrent),
                           ``post_bits`` fits the widest layer
    2         membrane     global neuron index (layer 1 first)
    3         refractory   global neuron index
    ========  ===========  ===================================================

    A core with ``rule = "erbp"`` has three region bits, the registers of
    :data:`ERBP_REGISTERS` after those of :data:`REGISTERS`, and two more regions:

    ========  ===========  ===================================================
    4         dendrite     global neuron index
    5         error        error neuron: ``k`` for E+ of class ``k``, ``N_L + k``
                           for its E-
    ========  ===========  ===================================================

    A DECOLLE core (``rule = "decolle"``) has :class:`DecolleLayout`: the same four regions
    at the same addresses (its membrane region holds the last tick's membranes ``U``, its
    refractory region the refractory states ``R``, signed), more registers in region 0, and
    four more regions behind a third region bit. :func:`layout_for` picks the layout of a
    configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import CoreConfig

__all__ = ["LayerLayout", "CoreLayout", "REGISTERS", "REGION_REGISTERS", "REGION_WEIGHTS",
           "REGION_MEMBRANE", "REGION_REFRACTORY", "REGION_DENDRITE", "REGION_ERROR",
           "ERBP_REGISTERS", "FLAG_WEIGHT_SATURATED", "FLAG_DENDRITE_SATURATED",
           "FLAG_ERROR_SATURATED", "CORE_MAGIC", "HostAddressError",
           "DecolleLayout", "DECOLLE_REGISTERS", "REGION_BIAS", "REGION_SPIKES",
           "REGION_TRACE_Q", "REGION_TRACE_P", "DECOLLE_FLAG_MEMBRANE_SATURATED",
           "DECOLLE_FLAG_WEIGHT_SATURATED", "layout_for"]

REGION_REGISTERS = 0
REGION_WEIGHTS = 1
REGION_MEMBRANE = 2
REGION_REFRACTORY = 3
REGION_DENDRITE = 4        # eRBP cores only
REGION_ERROR = 5           # eRBP cores only

#: Register offsets in region 0, with what reading and writing them does.
REGISTERS = {
    "magic": 0,            # read: CORE_MAGIC
    "tick": 1,             # read: ticks completed since reset
    "dropped_events": 2,   # read: input events dropped (address out of range); write: clear
    "flags": 3,            # read: sticky saturation flags; write 1s: clear those bits
    "layers": 4,           # read: number of neuron layers
    "neurons": 5,          # read: number of neurons
}
#: Registers an eRBP core has after :data:`REGISTERS` (all read and write).
ERBP_REGISTERS = {
    "learning_enabled": 6,     # 0 or 1
    "sample_tick": 7,          # ticks since the sample started; write 0 to start a sample
    "burn_in_ticks": 8,        # learning is active from sample_tick >= burn_in_ticks on
    "learning_rate_shift": 9,  # s, 1 to 32: expected weight change u * 2**-s
}
#: Bits of the ``flags`` register.
FLAG_ACCUMULATOR_SATURATED = 1 << 0
FLAG_MEMBRANE_SATURATED = 1 << 1
FLAG_WEIGHT_SATURATED = 1 << 2       # eRBP: a learned weight was clamped
FLAG_DENDRITE_SATURATED = 1 << 3     # eRBP: a dendrite or its feedback sum was clamped
FLAG_ERROR_SATURATED = 1 << 4        # eRBP: an error neuron or its input sum was clamped

#: Read from register ``magic``: ASCII "PLC" and layout version 1.
CORE_MAGIC = 0x504C4301


class HostAddressError(ValueError):
    """A host address that names nothing in the core."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class LayerLayout:
    """Placement of one projection and of the neuron layer it feeds.

    ``CoreLayout.layers[l - 1]`` is neuron layer ``l`` with its feedforward projection
    (``source = l - 1``); ``CoreLayout.recurrent`` holds the recurrent projections, whose
    ``index`` is their target layer and whose accumulator and state bases are the
    target's.
    """

    index: int              # the target layer: 1 for the first neuron layer
    n_pre: int              # size of the layer feeding it
    row_base: int           # global index of its first presynaptic row (host addresses)
    n_post: int             # number of neurons in it
    row_words: int          # weight words per presynaptic row
    weight_base: int        # first weight word of the projection
    accumulator_base: int   # first accumulator word
    state_base: int         # first state word (= global index of neuron 0)
    source: int             # the presynaptic population (0: the inputs)

    @property
    def weight_words(self) -> int:
        return self.n_pre * self.row_words


class CoreLayout:
    """Memory layout and host memory map of a core built from ``config``."""

    #: Width of the region field at the top of a host address.
    region_bits = 2

    def __init__(self, config: CoreConfig):
        self.config = config
        self.lanes = config.lanes
        layers = []
        weight_base = accumulator_base = state_base = row_base = 0
        for index, (n_pre, n_post) in enumerate(zip(config.layers, config.layers[1:]), 1):
            row_words = _ceil_div(n_post, self.lanes)
            layer = LayerLayout(index, n_pre, row_base, n_post, row_words, weight_base,
                                accumulator_base, state_base, index - 1)
            layers.append(layer)
            row_base += n_pre
            weight_base += layer.weight_words
            accumulator_base += row_words
            state_base += n_post
        self.layers = tuple(layers)
        recurrent = []
        for source, target in config.recurrent:
            lay = self.layers[target - 1]
            projection = LayerLayout(target, config.layers[source], row_base, lay.n_post,
                                     lay.row_words, weight_base, lay.accumulator_base,
                                     lay.state_base, source)
            recurrent.append(projection)
            row_base += projection.n_pre
            weight_base += projection.weight_words
        #: The recurrent projections, in config order.
        self.recurrent = tuple(recurrent)
        #: Every projection, in weight-list order (``config.projection_pairs``).
        self.projections = self.layers + self.recurrent
        self.rows = row_base
        self.weight_words = weight_base
        self.accumulator_words = accumulator_base
        self.state_words = state_base
        self.lane_bits = (self.lanes - 1).bit_length()
        self.post_bits = (max(config.neuron_layers) - 1).bit_length()
        self.erbp = config.rule == "erbp"
        self.registers = {**REGISTERS, **ERBP_REGISTERS} if self.erbp else dict(REGISTERS)
        self.error_neurons = 2 * config.layers[-1] if self.erbp else 0
        if self.erbp:
            self.region_bits = 3
        offsets = max(self.rows << self.post_bits, self.state_words, len(self.registers),
                      self.error_neurons)
        self.offset_bits = max(1, (offsets - 1).bit_length())
        self.address_bits = self.offset_bits + self.region_bits

    def region_sizes(self) -> tuple[int, ...]:
        """Return the offset bound of each region, in region order.

        The weight region has holes (``post`` past the end of a row's layer), inside this
        bound.
        """
        sizes = (len(self.registers), self.rows << self.post_bits, self.state_words,
                 self.state_words)
        if self.erbp:
            sizes += (self.state_words, self.error_neurons)
        return sizes

    def layer(self, index: int) -> LayerLayout:
        """Return the layout of neuron layer ``index`` (1 for the first)."""
        if not 1 <= index <= len(self.layers):
            raise HostAddressError(f"layer {index} does not exist: the core has neuron "
                                   f"layers 1 to {len(self.layers)}")
        return self.layers[index - 1]

    # Host addresses

    def address(self, region: int, offset: int) -> int:
        """Return the host address of ``offset`` in ``region``."""
        regions = len(self.region_sizes())
        if not 0 <= region < regions:
            raise HostAddressError(f"region = {region}: must be between 0 and {regions - 1}")
        if not 0 <= offset < (1 << self.offset_bits):
            raise HostAddressError(f"offset = {offset}: must be below 2**{self.offset_bits} "
                                   f"(the core's offset field)")
        return (region << self.offset_bits) | offset

    def weight_address(self, layer: int, pre: int, post: int) -> int:
        """Return the host address of the weight from ``pre`` (layer-1) to ``post`` (layer)."""
        return self._projection_address(self.layer(layer), pre, post)

    def projection_address(self, projection: int, pre: int, post: int) -> int:
        """Return the host address of weight ``(pre, post)`` of projection ``projection``
        (0-based, in :attr:`projections` order: feedforward, then recurrent)."""
        if not 0 <= projection < len(self.projections):
            raise HostAddressError(f"projection {projection} does not exist: the core has "
                                   f"projections 0 to {len(self.projections) - 1}")
        return self._projection_address(self.projections[projection], pre, post)

    def _projection_address(self, lay: LayerLayout, pre: int, post: int) -> int:
        if not 0 <= pre < lay.n_pre:
            raise HostAddressError(f"pre = {pre}: layer {lay.source} has {lay.n_pre} neurons")
        if not 0 <= post < lay.n_post:
            raise HostAddressError(f"post = {post}: layer {lay.index} has {lay.n_post} neurons")
        return self.address(REGION_WEIGHTS, ((lay.row_base + pre) << self.post_bits) | post)

    def neuron_index(self, layer: int, neuron: int) -> int:
        """Return the global index of ``neuron`` of ``layer`` (its state word)."""
        lay = self.layer(layer)
        if not 0 <= neuron < lay.n_post:
            raise HostAddressError(f"neuron = {neuron}: layer {layer} has {lay.n_post} neurons")
        return lay.state_base + neuron

    def membrane_address(self, layer: int, neuron: int) -> int:
        """Return the host address of the membrane of ``neuron`` in ``layer``."""
        return self.address(REGION_MEMBRANE, self.neuron_index(layer, neuron))

    def refractory_address(self, layer: int, neuron: int) -> int:
        """Return the host address of the refractory counter of ``neuron`` in ``layer``."""
        return self.address(REGION_REFRACTORY, self.neuron_index(layer, neuron))

    def dendrite_address(self, layer: int, neuron: int) -> int:
        """Return the host address of the dendrite of ``neuron`` in ``layer`` (eRBP)."""
        if not self.erbp:
            raise HostAddressError("dendrites exist only in a core with rule = \"erbp\"")
        return self.address(REGION_DENDRITE, self.neuron_index(layer, neuron))

    def error_address(self, sign: int, k: int) -> int:
        """Return the host address of error neuron E+ (``sign = 0``) or E- (1) of class ``k``."""
        if not self.erbp:
            raise HostAddressError("error neurons exist only in a core with rule = \"erbp\"")
        classes = self.config.layers[-1]
        if sign not in (0, 1):
            raise HostAddressError(f"sign = {sign}: must be 0 (E+) or 1 (E-)")
        if not 0 <= k < classes:
            raise HostAddressError(f"k = {k}: the core has {classes} classes")
        return self.address(REGION_ERROR, sign * classes + k)

    def register_address(self, name: str) -> int:
        """Return the host address of register ``name``."""
        if name not in self.registers:
            raise HostAddressError(f"register {name!r} does not exist; registers: "
                                   f"{', '.join(self.registers)}")
        return self.address(REGION_REGISTERS, self.registers[name])

    def describe(self) -> dict:
        """Return the memory map as JSON-friendly data."""
        description = self._describe_inference()
        if self.erbp:
            regions = description["regions"]
            regions["registers"]["registers"] = dict(self.registers)
            regions["registers"]["flags"].update({
                "weight_saturated": FLAG_WEIGHT_SATURATED,
                "dendrite_saturated": FLAG_DENDRITE_SATURATED,
                "error_saturated": FLAG_ERROR_SATURATED})
            regions["dendrite"] = {"region": REGION_DENDRITE,
                                   "base": self.address(REGION_DENDRITE, 0),
                                   "words": self.state_words,
                                   "address": "base + state_base + neuron"}
            regions["error"] = {"region": REGION_ERROR, "base": self.address(REGION_ERROR, 0),
                                "words": self.error_neurons,
                                "address": "base + k (E+) or base + classes + k (E-)"}
        return description

    def _describe_inference(self) -> dict:
        description = {
            "address_bits": self.address_bits,
            "data_bits": 32,
            "offset_bits": self.offset_bits,
            "lanes": self.lanes,
            "regions": {
                "registers": {"region": REGION_REGISTERS, "base": self.address(REGION_REGISTERS, 0),
                              "registers": dict(REGISTERS), "magic": CORE_MAGIC,
                              "flags": {"accumulator_saturated": FLAG_ACCUMULATOR_SATURATED,
                                        "membrane_saturated": FLAG_MEMBRANE_SATURATED}},
                "weights": {"region": REGION_WEIGHTS, "base": self.address(REGION_WEIGHTS, 0),
                            "post_bits": self.post_bits,
                            "address": "base + ((row_base + pre) << post_bits | post)"},
                "membrane": {"region": REGION_MEMBRANE, "base": self.address(REGION_MEMBRANE, 0),
                             "words": self.state_words, "address": "base + state_base + neuron"},
                "refractory": {"region": REGION_REFRACTORY,
                               "base": self.address(REGION_REFRACTORY, 0),
                               "words": self.state_words, "address": "base + state_base + neuron"},
            },
            "layers": [
                {"layer": lay.index, "n_pre": lay.n_pre, "row_base": lay.row_base,
                 "n_post": lay.n_post,
                 "row_words": lay.row_words, "weight_base": lay.weight_base,
                 "accumulator_base": lay.accumulator_base, "state_base": lay.state_base}
                for lay in self.layers
            ],
        }
        if self.recurrent:
            description["recurrent"] = [
                {"source": lay.source, "target": lay.index, "n_pre": lay.n_pre,
                 "row_base": lay.row_base, "n_post": lay.n_post, "row_words": lay.row_words,
                 "weight_base": lay.weight_base}
                for lay in self.recurrent
            ]
        return description


# DECOLLE

REGION_BIAS = 4        # global neuron index: the bias (weight format, read/write)
REGION_SPIKES = 5      # global neuron index: the spike of the last tick (0 or 1)
REGION_TRACE_Q = 6     # row_base + pre: the presynaptic trace Q of input ``pre`` of a layer
REGION_TRACE_P = 7     # row_base + pre: the presynaptic trace P

#: Region 0 of a DECOLLE core: the inference core's registers, then the learning controls,
#: then ``lr_shift_<l>`` for each neuron layer ``l = 1, 2, ...`` from offset 9.
DECOLLE_REGISTERS = dict(REGISTERS, **{
    "learn": 6,            # read/write 0 or 1: learning on (ticks with a label, from burn_in)
    "burn_in": 7,          # read/write 0..65535: ticks of each sample that do not learn
    "sample_tick": 8,      # read: ticks since the sample started; write (any value): start a
                           # new sample (traces, refractory states, spikes, membranes zero)
})
#: Bits of a DECOLLE core's ``flags`` register (those of :mod:`plasticore.golden.decolle`).
DECOLLE_FLAG_MEMBRANE_SATURATED = 1 << 0
DECOLLE_FLAG_WEIGHT_SATURATED = 1 << 1


class DecolleLayout(CoreLayout):
    """Memory layout and host memory map of a DECOLLE core.

    Regions 0 to 3 mean what they mean in :class:`CoreLayout` (membrane: ``U`` of the last
    tick; refractory: ``R``, signed), regions 4 to 7 are :data:`REGION_BIAS`,
    :data:`REGION_SPIKES`, :data:`REGION_TRACE_Q` and :data:`REGION_TRACE_P`. The offset
    field is as wide as the inference core's unless the registers need more (only for
    networks with fewer than 16 weight addresses), so weight addresses are the same.
    """

    region_bits = 3

    def __init__(self, config: CoreConfig):
        super().__init__(config)
        registers = dict(DECOLLE_REGISTERS)
        first = len(registers)
        for lay in self.layers:
            registers[f"lr_shift_{lay.index}"] = first + lay.index - 1
        self.registers = registers
        offsets = max(self.rows << self.post_bits, self.state_words, len(registers))
        self.offset_bits = max(1, (offsets - 1).bit_length())
        self.address_bits = self.offset_bits + self.region_bits

    def region_sizes(self) -> tuple[int, ...]:
        return super().region_sizes() + (self.state_words, self.state_words, self.rows,
                                         self.rows)

    def bias_address(self, layer: int, neuron: int) -> int:
        """Return the host address of the bias of ``neuron`` in ``layer``."""
        return self.address(REGION_BIAS, self.neuron_index(layer, neuron))

    def spike_address(self, layer: int, neuron: int) -> int:
        """Return the host address of the last spike of ``neuron`` in ``layer``."""
        return self.address(REGION_SPIKES, self.neuron_index(layer, neuron))

    def trace_address(self, layer: int, pre: int, which: str) -> int:
        """Return the host address of trace ``which`` ("q" or "p") of input ``pre`` of ``layer``."""
        lay = self.layer(layer)
        if which not in ("q", "p"):
            raise HostAddressError(f"trace {which!r} does not exist: \"q\" or \"p\"")
        if not 0 <= pre < lay.n_pre:
            raise HostAddressError(f"pre = {pre}: layer {layer - 1} has {lay.n_pre} neurons")
        region = REGION_TRACE_Q if which == "q" else REGION_TRACE_P
        return self.address(region, lay.row_base + pre)

    def describe(self) -> dict:
        description = super().describe()
        regions = description["regions"]
        regions["registers"]["flags"] = {"membrane_saturated": DECOLLE_FLAG_MEMBRANE_SATURATED,
                                         "weight_saturated": DECOLLE_FLAG_WEIGHT_SATURATED}
        regions["registers"]["registers"] = dict(self.registers)
        regions["membrane"]["content"] = "U of the last tick"
        regions["refractory"]["content"] = "R, signed"
        for name, region, words, address in (
                ("bias", REGION_BIAS, self.state_words, "base + state_base + neuron"),
                ("spikes", REGION_SPIKES, self.state_words, "base + state_base + neuron"),
                ("trace_q", REGION_TRACE_Q, self.rows, "base + row_base + pre"),
                ("trace_p", REGION_TRACE_P, self.rows, "base + row_base + pre")):
            regions[name] = {"region": region, "base": self.address(region, 0), "words": words,
                             "address": address}
        description["region_bits"] = self.region_bits
        return description


def layout_for(config: CoreConfig) -> CoreLayout:
    """Return the layout of the core ``config`` builds (:class:`DecolleLayout` for DECOLLE)."""
    return DecolleLayout(config) if config.rule == "decolle" else CoreLayout(config)
