"""Networks in and out of the core through NIR, the Neuromorphic Intermediate Representation.

:func:`import_graph` turns a NIR graph (a chain ``Input -> Affine/Linear -> LIF/IF/CubaLIF
-> Affine/Linear -> ... -> Output``) into a :class:`~plasticore.config.CoreConfig` and
integer weights, with a report of what each quantization costs; :func:`export_graph` does
the reverse. :func:`simulate_graph` runs a supported graph in float (forward Euler, one
step of ``dt`` per tick), the reference the imported core is compared with.

How a graph maps onto the core (``docs/nir.md`` says the same for users)
-----------------------------------------------------------------------
NIR neurons are continuous-time; one core tick is one forward-Euler step of ``dt`` seconds.

- ``LIF``: ``v += dt/tau * (v_leak - v + r I)``. The core leaks by ``v -= v >> leak_shift``,
  a decay of ``1 - 2**-leak_shift`` per tick, so ``leak_shift = round(log2(tau / dt))``;
  every neuron of every layer must round to the same shift (the core has one), and the
  shift must be at least 1 (``tau >= 2 dt`` or so). ``v_leak`` and ``v_reset`` must be 0.
  The input gain is ``r dt / tau``.
- ``IF``: ``v += dt r I``: ``leak_shift = 0`` (no leak), gain ``r dt``.
- ``CubaLIF``: the core's synaptic input lasts one tick (accumulators restart at zero), so
  only ``tau_syn == dt`` is expressible (then ``I = w_in * input``); gain ``w_in r dt / tau_mem``.
- ``Affine`` / ``Linear``: ``weight`` has shape ``(n_post, n_pre)``; a bias must be zero
  (the core has none).
- Thresholds: NIR spikes when ``v > v_threshold``, the core when ``v >= threshold``.
  Each neuron's column of weights is scaled by ``(T - 1/2) / v_threshold[i]`` so that
  every neuron of the core shares the integer threshold ``T``: per-neuron thresholds
  cost nothing. ``T`` is chosen as large as the weight width allows (finest weights),
  at most ``2**(membrane_bits - 2)`` (headroom for the membrane).
- Weights of a core with ``rule = "erbp"`` are delivered as ``w << soma_gain_shift``; the
  import divides by ``2**soma_gain_shift`` before rounding.

When the effective weights are already integers and every threshold is the same, the
import is exact (scale 1): an exported core imports back to the same weights.

Refused, each with the node's name and the reason: any other node type, a nested graph,
branches and skip connections, recurrence (a cycle), several inputs, a non-zero bias,
``v_leak`` or ``v_reset``, a non-positive threshold or gain, time constants that do not
share one leak shift, and a ``CubaLIF`` whose synaptic current outlives a tick.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import CoreConfig

__all__ = ["DEFAULT_DT", "NirImportError", "NirImport", "read_graph", "parse_graph",
           "import_graph", "export_graph", "export_losses", "simulate_graph", "soma_gain_shift",
           "default_core_name"]

#: Seconds per tick when none is given: what snnTorch and Norse write into NIR graphs.
DEFAULT_DT = 1e-4
#: A synaptic time constant this close to ``dt`` (relative) counts as "one tick".
_TAU_SYN_TOLERANCE = 1e-6
NEURON_NODES = ("LIF", "IF", "CubaLIF")
WEIGHT_NODES = ("Affine", "Linear")
#: Graph metadata key holding the exporting core's configuration (JSON).
CONFIG_METADATA = "plasticore_config"


class NirImportError(ValueError):
    """A graph the core cannot express; the message names the node and why."""

    def __init__(self, node: str | None, kind: str | None, reason: str):
        self.node = node
        self.reason = reason
        where = f"node {node!r} ({kind}): " if node is not None else ""
        super().__init__(where + reason)


def _require_nir():
    try:
        import nir
    except ImportError:  # pragma: no cover - the nir extra is installed by ensure-env
        raise ImportError("NIR support needs the 'nir' package: pip install "
                          "'plasticore[nir]'") from None
    return nir


def soma_gain_shift(config: CoreConfig) -> int:
    """Return the shift a weight is delivered with (``soma_gain_shift`` of eRBP, else 0)."""
    return config.learning.soma_gain_shift if config.rule == "erbp" else 0


def read_graph(path):
    """Read a NIR file (HDF5, as ``nir.write`` writes it)."""
    nir = _require_nir()
    path = Path(path)
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError) as error:
        raise NirImportError(None, None, f"not a readable NIR file: {error!r}") from None


@dataclass
class GraphLayer:
    """One projection and the neuron layer it feeds, as read from the graph."""

    weight_name: str
    weight_node: object
    neuron_name: str
    neuron_node: object
    weight: np.ndarray              # (n_pre, n_post): the graph's weight, transposed
    bias: np.ndarray                # (n_post,)
    gain: np.ndarray = field(default=None)        # input current -> membrane per tick
    threshold: np.ndarray = field(default=None)
    leak_shift: int = 0
    decay: np.ndarray = field(default=None)       # requested decay per tick (1 for IF)

    @property
    def kind(self) -> str:
        return type(self.neuron_node).__name__

    @property
    def effective_weight(self) -> np.ndarray:
        """What one input spike adds to the membrane, column ``i`` for neuron ``i``."""
        return self.weight * self.gain[None, :]


def _node_kind(node) -> str:
    return type(node).__name__


def _array(node_name, kind, name, value, n) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    try:
        value = np.broadcast_to(value, (n,)).astype(np.float64)
    except ValueError:
        raise NirImportError(node_name, kind, f"{name} has shape {value.shape}, the layer "
                             f"has {n} neurons") from None
    if not np.all(np.isfinite(value)):
        raise NirImportError(node_name, kind, f"{name} holds non-finite values")
    return value


def _chain(graph) -> list[str]:
    """Return the node names from the Input to the last node, refusing anything else."""
    nir = _require_nir()
    nodes = graph.nodes
    successors = {name: [] for name in nodes}
    predecessors = {name: [] for name in nodes}
    for source, target in graph.edges:
        for end in (source, target):
            if end not in nodes:
                raise NirImportError(None, None, f"edge {source!r} -> {target!r} names "
                                     f"{end!r}, which is not a node of the graph")
        successors[source].append(target)
        predecessors[target].append(source)
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise NirImportError(name, "NIRGraph", "a nested graph (such as a recurrent "
                                 "layer exported by snnTorch); the core takes a flat chain "
                                 "of layers, and recurrent projections are not supported yet")
    loop = _find_loop(successors)
    if loop:
        raise NirImportError(loop[0], _node_kind(nodes[loop[0]]), f"is on the loop "
                             f"{' -> '.join(loop + loop[:1])}: recurrent graphs are not "
                             "supported yet")
    inputs = [name for name, node in nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise NirImportError(None, None, f"the graph has {len(inputs)} Input nodes; the core "
                             "takes exactly one")
    order = [inputs[0]]
    seen = {inputs[0]}
    while successors[order[-1]]:
        here = order[-1]
        following = successors[here]
        if len(following) > 1:
            raise NirImportError(here, _node_kind(nodes[here]), f"feeds {len(following)} "
                                 f"nodes ({', '.join(following)}); the core is a chain of "
                                 "layers without branches or skip connections")
        nxt = following[0]
        if len(predecessors[nxt]) > 1:
            raise NirImportError(nxt, _node_kind(nodes[nxt]), f"has {len(predecessors[nxt])} "
                                 f"inputs ({', '.join(predecessors[nxt])}); the core is a "
                                 "chain of layers (recurrence and merges are not supported)")
        order.append(nxt)
        seen.add(nxt)
    unreached = sorted(set(nodes) - seen)
    if unreached:
        name = unreached[0]
        raise NirImportError(name, _node_kind(nodes[name]), "is not on the path from the "
                             "Input (a recurrent loop or a second branch?); the core is one "
                             "chain of layers")
    return order


def _find_loop(successors: dict) -> list[str] | None:
    """Return the nodes of one directed cycle, in order, or None."""
    state = {}                      # 1: on the current path, 2: finished
    path = []

    def visit(name):
        state[name] = 1
        path.append(name)
        for nxt in successors[name]:
            if state.get(nxt) == 1:
                return path[path.index(nxt):]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[name] = 2
        path.pop()
        return None

    for name in successors:
        if name not in state:
            found = visit(name)
            if found:
                return list(found)
    return None


def _leak_shift(name, kind, tau, dt):
    """Leak shift of time constants ``tau`` (per neuron) and the decay they ask for."""
    if np.any(tau <= 0):
        raise NirImportError(name, kind, f"time constant {float(tau.min())} s is not positive")
    ratio = tau / dt
    if np.any(ratio < 1.5):
        raise NirImportError(name, kind, f"tau = {float(tau.min()):g} s is below 1.5 dt "
                             f"(dt = {dt:g} s): a decay of {1 - 1 / float(ratio.min()):.3f} "
                             "per tick; the core's smallest leak is a halving per tick "
                             "(tau = 2 dt); pass a smaller --dt")
    shifts = np.rint(np.log2(ratio)).astype(int)
    if len(set(shifts.tolist())) > 1:
        raise NirImportError(name, kind, f"its time constants round to leak shifts "
                             f"{sorted(set(shifts.tolist()))}; the core has one leak shift "
                             "for every neuron")
    return int(shifts[0]), 1 - 1 / ratio


def parse_graph(graph, dt: float = DEFAULT_DT) -> tuple[int, list[GraphLayer]]:
    """Check that the core can express ``graph``; return its input count and layers.

    Raises
    ------
    NirImportError
        Naming the first node the core cannot express, and why.
    """
    nir = _require_nir()
    if not dt > 0:
        raise NirImportError(None, None, f"dt = {dt}: must be positive")
    order = _chain(graph)
    nodes = graph.nodes
    input_name = order[0]
    shape = np.asarray(nodes[input_name].input_type["input"]).reshape(-1)
    if shape.size != 1:
        raise NirImportError(input_name, "Input", f"shape {shape.tolist()}: the core takes a "
                             "flat vector of inputs (flatten the data first)")
    n_inputs = int(shape[0])
    layers = []
    n_pre = n_inputs
    pending = None                  # (name, node) of a weight node awaiting its neurons
    for name in order[1:]:
        node = nodes[name]
        kind = _node_kind(node)
        if kind in WEIGHT_NODES:
            if pending is not None:
                raise NirImportError(name, kind, f"follows {pending[0]!r} directly; every "
                                     "projection must feed a layer of LIF, IF or CubaLIF neurons")
            weight = np.asarray(node.weight, dtype=np.float64)
            if weight.ndim != 2 or weight.shape[1] != n_pre:
                raise NirImportError(name, kind, f"weight shape {weight.shape}, expected "
                                     f"(n_post, {n_pre}) for its {n_pre} inputs")
            if not np.all(np.isfinite(weight)):
                raise NirImportError(name, kind, "weight holds non-finite values")
            pending = (name, node)
        elif kind in NEURON_NODES:
            if pending is None:
                raise NirImportError(name, kind, "is not fed by an Affine or Linear node; "
                                     "the core's neurons receive weighted input only")
            weight_name, weight_node = pending
            weight = np.asarray(weight_node.weight, dtype=np.float64)
            n_post = weight.shape[0]
            bias = np.zeros(n_post)
            if isinstance(weight_node, nir.Affine):
                bias = _array(weight_name, "Affine", "bias", weight_node.bias, n_post)
                if np.any(bias != 0):
                    raise NirImportError(weight_name, "Affine", f"bias is non-zero (largest "
                                         f"|b| = {float(np.abs(bias).max()):g}); the core's "
                                         "neurons have no bias (use Linear or a zero bias)")
            layer = GraphLayer(weight_name, weight_node, name, node, weight.T.copy(), bias)
            _neuron_parameters(layer, dt, n_post)
            layers.append(layer)
            n_pre = n_post
            pending = None
        elif isinstance(node, nir.Output):
            if pending is not None:
                raise NirImportError(pending[0], _node_kind(pending[1]), "feeds the Output "
                                     "directly; the core's outputs are neuron spikes")
        else:
            raise NirImportError(name, kind, "not supported: the core takes Input, "
                                 "Affine/Linear, LIF/IF/CubaLIF and Output nodes")
    if pending is not None:
        raise NirImportError(pending[0], _node_kind(pending[1]), "ends the graph without a "
                             "neuron layer after it")
    if not layers:
        raise NirImportError(input_name, "Input", "no neuron layer follows the Input")
    shifts = {layer.leak_shift for layer in layers}
    if len(shifts) > 1:
        first = layers[0]
        other = next(layer for layer in layers if layer.leak_shift != first.leak_shift)
        raise NirImportError(other.neuron_name, other.kind, f"leak shift {other.leak_shift} "
                             f"(from its time constant at dt = {dt:g} s) differs from "
                             f"{first.neuron_name!r}'s {first.leak_shift}; the core has one "
                             "leak shift for every layer")
    return n_inputs, layers


def _neuron_parameters(layer: GraphLayer, dt: float, n: int) -> None:
    """Fill the layer's gain, threshold, leak shift and decay from its neuron node."""
    node, name, kind = layer.neuron_node, layer.neuron_name, layer.kind

    def get(attribute):
        return _array(name, kind, attribute, getattr(node, attribute), n)

    threshold = get("v_threshold")
    if np.any(threshold <= 0):
        raise NirImportError(name, kind, f"v_threshold {float(threshold.min()):g} is not "
                             "positive; the core's threshold is a positive integer")
    if np.any(get("v_reset") != 0):
        raise NirImportError(name, kind, "v_reset is non-zero; the core resets the membrane "
                             "to zero")
    r = get("r")
    if kind == "IF":
        layer.leak_shift, layer.decay = 0, np.ones(n)
        gain = r * dt
    else:
        if np.any(get("v_leak") != 0):
            raise NirImportError(name, kind, "v_leak is non-zero; the core's membrane "
                                 "decays towards zero")
        tau = get("tau" if kind == "LIF" else "tau_mem")
        layer.leak_shift, layer.decay = _leak_shift(name, kind, tau, dt)
        gain = r * dt / tau
        if kind == "CubaLIF":
            tau_syn = get("tau_syn")
            if np.any(np.abs(tau_syn - dt) > _TAU_SYN_TOLERANCE * dt):
                worst = float(tau_syn[np.argmax(np.abs(tau_syn - dt))])
                raise NirImportError(name, kind, f"tau_syn = {worst:g} s keeps the synaptic "
                                     f"current for more than one tick (decay "
                                     f"{1 - dt / worst:.3f} per tick at dt = {dt:g} s); the "
                                     "core's synaptic input lasts one tick (tau_syn = dt)")
            gain = gain * get("w_in")
    if np.any(gain <= 0):
        raise NirImportError(name, kind, "its input gain (r dt / tau) is not positive")
    layer.gain, layer.threshold = gain, threshold


@dataclass
class NirImport:
    """The outcome of an import: the core, its integer weights and the quantization report."""

    config: CoreConfig
    weights: list[np.ndarray]
    report: list[str]
    layers: list[GraphLayer]
    dt: float


def _graph_metadata_config(graph):
    metadata = getattr(graph, "metadata", None) or {}
    text = metadata.get(CONFIG_METADATA)
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf8")
    return CoreConfig.from_dict(json.loads(str(text)), source="the graph's plasticore metadata")


def default_core_name(name: str) -> str:
    name = re.sub(r"\W", "_", name)
    return name if name and name.isidentifier() else f"imported_{name}"


def import_graph(graph, *, dt: float = DEFAULT_DT, weight_bits: int = 8,
                 membrane_bits: int = 16, template: CoreConfig | None = None,
                 name: str = "imported") -> NirImport:
    """Turn a NIR graph into a core configuration and integer weights.

    Parameters
    ----------
    graph : nir.NIRGraph
    dt : float
        Seconds per tick.
    weight_bits, membrane_bits : int
        Widths of the new core (ignored with ``template``).
    template : CoreConfig, optional
        Take every field the graph does not set from this core (widths, threshold, reset,
        refractory ticks, lanes, learning rule and its parameters), so that the weights are
        quantized for it: how to import a network into a learning core to fine-tune it.
        Its layers must be the graph's. Without one, a graph exported by plasticore
        brings its own (graph metadata).
    name : str
        The new core's name (ignored with ``template``).

    Raises
    ------
    NirImportError
        The graph holds something the core cannot express.
    """
    n_inputs, layers = parse_graph(graph, dt)
    sizes = (n_inputs, *(layer.weight.shape[1] for layer in layers))
    report = []
    if template is None:
        template = _graph_metadata_config(graph)
        if template is not None:
            report.append(f"core fields (widths, threshold, reset, refractory ticks, rule) "
                          f"restored from the graph's plasticore metadata ({template.name})")
    leak_shift = layers[0].leak_shift
    if template is not None:
        if tuple(template.layers) != sizes:
            raise NirImportError(None, None, f"the graph's layers {list(sizes)} differ from "
                                 f"the template's {list(template.layers)}")
        weight_bits, membrane_bits = template.weight_bits, template.membrane_bits
        if template.leak_shift != leak_shift:
            report.append(f"leak_shift: the template's {template.leak_shift} replaced by the "
                          f"graph's {leak_shift}")
    gain_shift = soma_gain_shift(template) if template is not None else 0
    w_max = (1 << (weight_bits - 1)) - 1
    membrane_max = (1 << (membrane_bits - 1)) - 1
    effective = [layer.effective_weight for layer in layers]
    thresholds = np.concatenate([layer.threshold for layer in layers])
    units = 1 << gain_shift

    threshold, scales, exact = _choose_threshold(effective, layers, thresholds, units, w_max,
                                                 membrane_max, template)
    if template is None:
        config = CoreConfig(layers=sizes, weight_bits=weight_bits, membrane_bits=membrane_bits,
                            leak_shift=leak_shift, threshold=threshold, name=name)
    else:
        config = template.replace(leak_shift=leak_shift, threshold=threshold)

    report += _leak_report(layers, dt, leak_shift)
    report.append(f"threshold: NIR fires when v > v_threshold, the core when v >= "
                  f"{threshold}; {'exact (integer weights, one threshold: scale 1)' if exact else 'each neuron scaled by (T - 1/2) / v_threshold'}"
                  f" ({len(np.unique(thresholds))} distinct threshold(s) in the graph)")
    weights = []
    w_low, w_high = config.weight_range
    for index, (layer, matrix, scale) in enumerate(zip(layers, effective, scales), 1):
        target = matrix * scale[None, :] / units
        rounded = np.rint(target)
        clipped = int(((rounded < w_low) | (rounded > w_high)).sum())
        integer = np.clip(rounded, w_low, w_high).astype(np.int64)
        weights.append(integer)
        error = integer - target
        rms = float(np.sqrt(np.mean(target ** 2))) if target.size else 0.0
        rms_error = float(np.sqrt(np.mean(error ** 2))) if target.size else 0.0
        lost = int(((integer == 0) & (matrix != 0)).sum())
        line = (f"projection {index} ({layer.weight_name} -> {layer.neuron_name}, "
                f"{layer.kind}): {matrix.size} weights, ")
        if exact:
            line += "exact"
        else:
            line += (f"scale {float(scale.min()):.4g}"
                     + (f" to {float(scale.max()):.4g}" if scale.max() != scale.min() else "")
                     + f" per membrane unit, largest |w| {int(np.abs(integer).max())} of "
                     f"{w_max}, RMS rounding error {rms_error:.3g} = "
                     f"{100 * rms_error / rms if rms else 0:.2f} % of the RMS weight, "
                     f"{lost} non-zero weight(s) rounded to 0")
        if clipped:
            line += f", {clipped} weight(s) CLIPPED to [{w_low}, {w_high}]"
        report.append(line)
        column_push = (np.clip(integer, 0, None).sum(axis=0) * units).max(initial=0)
        if threshold + column_push > membrane_max:
            report.append(f"  note: a tick in which every input of layer {index} spikes can "
                          f"lift a membrane to {threshold + int(column_push)}, past "
                          f"{membrane_max} (membrane_bits = {membrane_bits}): the core "
                          "saturates there and sets its membrane_saturated flag")
    return NirImport(config=config, weights=weights, report=report, layers=layers, dt=dt)


def _choose_threshold(effective, layers, thresholds, units, w_max, membrane_max, template):
    """Return the integer threshold, each layer's per-neuron scale and whether it is exact."""
    first = float(thresholds[0])
    candidate = math.floor(first) + 1
    integral = all(np.array_equal(m / units, np.rint(m / units)) for m in effective)
    if (integral and np.all(thresholds == first)
            and all(np.abs(m / units).max(initial=0) <= w_max for m in effective)
            and candidate <= membrane_max
            and (template is None or template.threshold == candidate)):
        return candidate, [np.ones(layer.threshold.size) for layer in layers], True
    if template is not None:
        threshold = template.threshold
    else:
        ratio = max(float((np.abs(m).max(axis=0) / layer.threshold).max(initial=0))
                    for m, layer in zip(effective, layers))
        cap = max(1, membrane_max // 2)
        threshold = cap if ratio == 0 else int(min(cap, math.floor(w_max * units / ratio + 0.5)))
        if threshold < 1:
            threshold = 1
    return threshold, [(threshold - 0.5) / layer.threshold for layer in layers], False


def _leak_report(layers, dt, leak_shift) -> list[str]:
    if leak_shift == 0:
        return [f"leak: none (IF neurons): leak_shift 0"]
    decay = np.concatenate([layer.decay for layer in layers])
    realized = 1 - 2.0 ** -leak_shift
    wanted = np.unique(np.round(decay, 12))
    error = float(np.max(np.abs(np.log2(1 - decay) + leak_shift)))
    text = "exact" if error < 1e-9 else (f"time constant off by up to "
                                         f"{100 * (2 ** error - 1):.3g} %")
    return [f"leak: decay per tick {', '.join(f'{d:.6g}' for d in wanted[:4])}"
            f"{' ...' if wanted.size > 4 else ''} (dt = {dt:g} s) -> leak_shift {leak_shift}, "
            f"v -= v >> {leak_shift}, decay {realized:.6g} ({text}); the shift floors, so a "
            f"membrane below {2 ** leak_shift} does not decay"]


def export_graph(config: CoreConfig, weights, *, dt: float = DEFAULT_DT):
    """Return the NIR graph of a core and its weights.

    Weights may be integers (a core's) or floats (the float reference's, in the same units).
    A weight ``w`` of an eRBP core becomes ``w * 2**soma_gain_shift`` (what it adds to the
    membrane). Each layer becomes ``Linear`` then ``LIF`` (``tau = 2**leak_shift dt``,
    ``r = tau / dt``, so that one tick is one forward-Euler step) or ``IF`` when
    ``leak_shift = 0`` (``r = 1 / dt``), with ``v_threshold = threshold - 1/2`` (the core
    fires at ``v >= threshold``). What NIR cannot say (refractory ticks, subtractive reset,
    the learning rule) is kept in the graph metadata for a later ``plasticore import``;
    :func:`export_losses` lists it.
    """
    nir = _require_nir()
    if config.rule not in ("none", "erbp"):
        raise ValueError(f"rule = {config.rule!r}: only LIF cores (rule = \"none\" or "
                         "\"erbp\") export to NIR; a DECOLLE neuron is not a NIR node")
    if len(weights) != len(config.layers) - 1:
        raise ValueError(f"weights: {len(weights)} matrices, the core has "
                         f"{len(config.layers) - 1} projections")
    units = float(1 << soma_gain_shift(config))
    nodes = {"input": nir.Input(input_type={"input": np.array([config.n_inputs])})}
    edges = []
    previous = "input"
    for index, (matrix, n_post) in enumerate(zip(weights, config.neuron_layers), 1):
        matrix = np.asarray(matrix, dtype=np.float64)
        linear, neurons = f"linear{index}", f"lif{index}"
        nodes[linear] = nir.Linear(weight=matrix.T * units)
        threshold = np.full(n_post, config.threshold - 0.5)
        if config.leak_shift == 0:
            nodes[neurons] = nir.IF(r=np.full(n_post, 1 / dt), v_threshold=threshold,
                                    v_reset=np.zeros(n_post))
        else:
            tau = np.full(n_post, dt * 2.0 ** config.leak_shift)
            nodes[neurons] = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n_post),
                                     v_threshold=threshold, v_reset=np.zeros(n_post))
        edges += [(previous, linear), (linear, neurons)]
        previous = neurons
    nodes["output"] = nir.Output(output_type={"output": np.array([config.layers[-1]])})
    edges.append((previous, "output"))
    metadata = {CONFIG_METADATA: json.dumps(config.to_dict()), "plasticore_dt": float(dt)}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def export_losses(config: CoreConfig) -> list[str]:
    """Return what a NIR reader other than plasticore will not see of this core."""
    losses = []
    if config.refractory_ticks:
        losses.append(f"refractory_ticks = {config.refractory_ticks}: NIR neurons have no "
                      "refractory period")
    if config.reset == "subtract":
        losses.append("reset = \"subtract\": NIR neurons reset to v_reset (exported as 0)")
    if config.rule != "none":
        losses.append(f"rule = {config.rule!r}: NIR carries no learning rule")
    return losses


def simulate_graph(graph, event_ticks, dt: float = DEFAULT_DT) -> list[list[np.ndarray]]:
    """Run a supported graph in float, one forward-Euler step of ``dt`` per tick.

    ``event_ticks`` holds each tick's input addresses (as for the golden model); the
    result holds, per tick, each neuron layer's spiking neurons (ascending), as
    :meth:`plasticore.golden.lif.GoldenCore.run` returns them. The semantics are NIR's:
    ``v > v_threshold`` fires and resets to ``v_reset`` in the same step.
    """
    n_inputs, layers = parse_graph(graph, dt)
    names = {"IF": ("r", "v_reset"), "LIF": ("tau", "r", "v_leak", "v_reset"),
             "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_reset", "w_in")}
    # Every parameter as a per-neuron array (parse_graph has checked their shapes).
    parameters = [{name: _array(layer.neuron_name, layer.kind, name,
                                getattr(layer.neuron_node, name), layer.threshold.size)
                   for name in names[layer.kind]} for layer in layers]
    membrane = [np.zeros(layer.threshold.size) for layer in layers]
    current = [np.zeros(layer.threshold.size) for layer in layers]
    result = []
    for events in event_ticks:
        presynaptic = np.bincount(np.asarray(events, dtype=np.int64).reshape(-1),
                                  minlength=n_inputs)[:n_inputs].astype(np.float64)
        spikes_per_layer = []
        for index, (layer, p) in enumerate(zip(layers, parameters)):
            drive = presynaptic @ layer.weight + layer.bias
            v = membrane[index]
            if layer.kind == "IF":
                v = v + dt * p["r"] * drive
            elif layer.kind == "LIF":
                v = v + dt / p["tau"] * (p["v_leak"] - v + p["r"] * drive)
            else:
                current[index] += dt / p["tau_syn"] * (p["w_in"] * drive - current[index])
                v = v + dt / p["tau_mem"] * (p["v_leak"] - v + p["r"] * current[index])
            fired = v > layer.threshold
            membrane[index] = np.where(fired, p["v_reset"], v)
            spikes = np.flatnonzero(fired)
            spikes_per_layer.append(spikes)
            presynaptic = fired.astype(np.float64)
        result.append(spikes_per_layer)
    return result
