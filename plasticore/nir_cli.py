"""The ``import`` and ``export`` commands: networks in and out of the core as NIR graphs.

::

    plasticore import MODEL.nir -o DIR [--dt SECONDS] [--weight-bits B] [--membrane-bits B]
                      [--template CONFIG] [--name NAME]
    plasticore export CONFIG --weights W.npz -o MODEL.nir [--dt SECONDS]

``import`` writes ``DIR/<name>.toml``, ``DIR/weights.npz`` and ``DIR/import-report.txt``
(what each quantization cost, also printed). A graph the core cannot express is refused in
one line naming the node and why (exit code 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["register"]


def _fail(command: str, message: str) -> int:
    print(f"plasticore {command}: {message}", file=sys.stderr)
    return 2


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"{value} is not positive")
    return value


def _import_command(args) -> int:
    import tomli_w

    from .config import load_config
    from .nir_io import DEFAULT_DT, NirImportError, default_core_name, import_graph, read_graph
    from .weights_file import save_weights

    model = Path(args.model)
    template = load_config(args.template) if args.template else None
    try:
        graph = read_graph(model)
        dt = args.dt
        if dt is None:
            dt = float((graph.metadata or {}).get("plasticore_dt", DEFAULT_DT))
        name = args.name or (template.name if template else default_core_name(model.stem))
        result = import_graph(graph, dt=dt, weight_bits=args.weight_bits,
                              membrane_bits=args.membrane_bits, template=template, name=name)
    except NirImportError as error:
        return _fail("import", f"{model}: {error}")
    config = result.config
    if args.name and config.name != args.name:
        config = config.replace(name=args.name)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    toml_path = output / f"{config.name}.toml"
    header = (f"# Imported from {model.name} by `plasticore import` (dt = {dt:g} s per tick);\n"
              f"# weights in weights.npz, quantization costs in import-report.txt.\n")
    toml_path.write_text(header + tomli_w.dumps(config.to_dict()))
    save_weights(output / "weights.npz", result.weights)
    report = [f"imported {model} -> {toml_path}, {output / 'weights.npz'}",
              f"core: layers {list(config.layers)}, weight_bits {config.weight_bits}, "
              f"membrane_bits {config.membrane_bits}, leak_shift {config.leak_shift}, "
              f"threshold {config.threshold}, rule {config.rule}", *result.report]
    (output / "import-report.txt").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    return 0


def _export_command(args) -> int:
    import nir

    from .config import load_config
    from .nir_io import DEFAULT_DT, export_graph, export_losses, parse_graph
    from .weights_file import load_weights

    config = load_config(args.config)
    dt = DEFAULT_DT if args.dt is None else args.dt
    try:
        weights = load_weights(args.weights, config, integer=False)
        graph = export_graph(config, weights, dt=dt)
    except ValueError as error:
        return _fail("export", str(error))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    nir.write(output, graph)
    # Read it back: what was written must be a graph the importer accepts.
    parse_graph(nir.read(output), dt)
    for loss in export_losses(config):
        print(f"plasticore export: note: not expressible in NIR, kept in the graph metadata "
              f"for plasticore only: {loss}", file=sys.stderr)
    print(f"wrote {output}: {len(config.neuron_layers)} layer(s), "
          f"{sum(w.size for w in weights)} weights, dt = {dt:g} s per tick")
    return 0


def register(subparsers) -> None:
    """Add the ``import`` and ``export`` commands."""
    importer = subparsers.add_parser(
        "import", help="turn a NIR graph into a core configuration and integer weights",
        description="Import a NIR graph (Input, Affine/Linear, LIF/IF/CubaLIF, Output) as a "
                    "core: writes DIR/<name>.toml, DIR/weights.npz and a report of what "
                    "each quantization costs.")
    importer.add_argument("model", help="NIR file (.nir, HDF5)")
    importer.add_argument("-o", "--output", required=True, help="output directory")
    importer.add_argument("--dt", type=_positive_float, default=None,
                          help="seconds per tick (default: the graph's plasticore metadata, "
                               "else 1e-4, what snnTorch and Norse write)")
    importer.add_argument("--weight-bits", type=int, default=8,
                          help="weight width of the new core (default 8)")
    importer.add_argument("--membrane-bits", type=int, default=16,
                          help="membrane width of the new core (default 16)")
    importer.add_argument("--template", default=None, metavar="CONFIG",
                          help="take widths, threshold, reset, refractory and learning rule "
                               "from this core (same layers) and quantize for it")
    importer.add_argument("--name", default=None, help="name of the new core")
    importer.set_defaults(handler=_import_command)

    exporter = subparsers.add_parser(
        "export", help="write a core and its weights as a NIR graph",
        description="Export a core (rule none or erbp) and its weights as a NIR graph that "
                    "snnTorch, Norse and other NIR readers load.")
    exporter.add_argument("config", help="core configuration (TOML)")
    exporter.add_argument("--weights", required=True, metavar="W",
                          help="weights file (.npz of w0, w1, ...; integers, or floats from "
                               "a float reference)")
    exporter.add_argument("-o", "--output", required=True, help="NIR file to write")
    exporter.add_argument("--dt", type=_positive_float, default=None,
                          help="seconds per tick written into the graph (default 1e-4)")
    exporter.set_defaults(handler=_export_command)
