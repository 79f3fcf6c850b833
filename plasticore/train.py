"""The ``plasticore train`` command: learn a data set with the core's learning rule.

::

    plasticore train CONFIG [--dataset SPEC] [--backend golden|float|rtl|board] [--epochs E]
                     [--seed S | --seeds S [S ...]] [--init W] [--port PORT] [-o DIR]
                     [--json FILE]

``SPEC`` is ``digits``, ``idx:DIR``, ``events:DIR``, ``saccades:digits`` or
``saccades:idx:DIR`` (:mod:`plasticore.datasets`). A stratified, seeded share of the
training set (the config's ``[data] validation_fraction``) is held out as validation data.

Trains online (one sample at a time), prints the train, validation and test accuracy of
every epoch, and writes to the output directory (default ``out/train-<name>``):
``weights.npz`` (the learned matrices, ``w0``, ``w1``, ...), ``curve.png`` (accuracy per
epoch), ``raster.png`` (one test sample through every layer), ``weights.png`` (weight
histograms before and after) and ``metrics.json``. With ``--seeds``, each seed trains
afresh (its own presentation order, training and test spike draws) into ``seed-<S>/`` and
the top-level ``metrics.json`` gives the last epoch's test and validation accuracy as mean
and standard deviation over the seeds. ``--json FILE`` writes the same metrics to ``FILE``.
``--init W`` starts from the weights in ``W`` (fine-tuning imported or earlier weights)
instead of random ones.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

from .config import load_config
from .datasets import DATASET_FORMS
from .golden.engine import ENGINES

__all__ = ["register", "run_train", "TRAINERS", "DATASETS"]

#: Trainer module of each learning rule; each offers ``fit(config, split, *, backend,
#: epochs, seed, progress, ...) -> TrainResult``.
TRAINERS = {
    "erbp": "plasticore.train_erbp",
    "decolle": "plasticore.train_decolle",
}
#: The ``--dataset`` forms: the data-set layer's own list.
DATASETS = DATASET_FORMS
BACKENDS = ("golden", "float", "rtl", "board")
#: Rules whose trainer runs on the simulated RTL (``--backend rtl``) and on a board
#: (``--backend board``).
RTL_TRAINING = ("erbp",)


def register(subparsers) -> None:
    """Add the ``train`` command to the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "train", help="train a learning core on a data set (online)",
        description="Train the core's learning rule online on a data set; print the train "
                    "and test accuracy; save weights, learning curve and metrics.")
    parser.add_argument("config", help="TOML configuration with rule = \"erbp\" or \"decolle\"")
    parser.add_argument("--dataset", default="digits", metavar="SPEC",
                        help="data set: " + " | ".join(DATASETS) + " (default: digits, "
                             "scikit-learn's 8x8 digits; see docs/datasets.md)")
    parser.add_argument("--backend", choices=BACKENDS, default="golden",
                        help="golden: the integer model; float: the float reference; "
                             "rtl: the generated hardware; board: a core on a board, over "
                             "its UART (--port) (default: golden)")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="golden model engine: fast (compiled, the default when numba is "
                             "installed) or numpy (the specification); same results")
    parser.add_argument("--epochs", type=int, default=None,
                        help="online epochs (default: the rule's `epochs` parameter)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0,
                       help="seed of the presentation order and spike trains (default 0)")
    seeds.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                       help="train once per seed; report mean and sd of the last epoch")
    parser.add_argument("-o", "--output", default=None,
                        help="output directory (default: out/train-<name>)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the metrics as JSON to FILE")
    parser.add_argument("--init", default=None, metavar="W",
                        help="start from these weights (.npz of w0, w1, ..., as `import` and "
                             "`train` write) instead of random ones: fine-tuning")
    board = parser.add_argument_group("training on a board (--backend board)")
    board.add_argument("--port", default=None,
                       help="the board's serial port (/dev/ttyUSB1, COM3) or a pyserial URL "
                            "(socket://host:port)")
    board.add_argument("--baudrate", type=int, default=115200, help="default 115200")
    board.add_argument("--timeout", type=float, default=2.0,
                       help="seconds to wait for a reply (default 2)")
    board.add_argument("--check-golden", action="store_true",
                       help="run the golden model in lockstep: compare spikes every tick and "
                            "every weight after every training sample (slow; for bring-up and tests)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    # For quick checks and tests: train and test on the first N samples only.
    parser.add_argument("--limit-train", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--limit-test", type=int, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run_train)


def _fail(message: str) -> int:
    print(f"plasticore train: {message}", file=sys.stderr)
    return 2


def _fit_on_rtl(config, options: dict):
    """Train on the simulated RTL (every tick checked against golden); None on a mismatch."""
    from .sim.runner import run_training
    from .training import EpochMetrics, TrainResult

    job = {name: options[name] for name in ("epochs", "seed", "limit_train", "limit_test",
                                            "engine") if name in options}
    if options.get("init_weights") is not None:
        job["init_weights"] = [np.asarray(w).tolist() for w in options["init_weights"]]
    outcome = run_training(config, job)
    if outcome["mismatch"] is not None:
        fields = ", ".join(f"{k} {v}" for k, v in outcome["mismatch"].items())
        print(f"plasticore train: the RTL differs from golden: {fields}", file=sys.stderr)
        return None
    epochs = [EpochMetrics(**metrics) for metrics in outcome["epochs"]]
    if "on_epoch" in options:
        for metrics in epochs:
            options["on_epoch"](metrics)
    return TrainResult(rule=config.rule, backend="rtl", epochs=epochs,
                       weights=[np.array(w, dtype=np.int64) for w in outcome["weights"]],
                       extra=outcome["extra"])


def _fit_on_board(config, trainer, split, options: dict, args):
    """Train the core on a board through :class:`plasticore.host.BoardCore`; None on a
    link error or (with ``--check-golden``) a difference from golden."""
    from .board_training import BoardErbpModel, BoardMismatch
    from .host import BoardCore, LinkError

    options = dict(options)
    weights = options.pop("init_weights", None)
    try:
        with BoardCore.open(config, args.port, baudrate=args.baudrate, timeout=args.timeout,
                            run_timeout=max(10.0, args.timeout)) as board:
            model = BoardErbpModel(board, config, weights, check_golden=args.check_golden)
            return trainer.fit(config, split, model=model, evaluate_start=weights is not None,
                               **options)
    except (LinkError, BoardMismatch) as error:
        print(f"plasticore train: on the board at {args.port}: {error}", file=sys.stderr)
        return None


def run_train(args) -> int:
    """Handle ``plasticore train``; return the exit code."""
    from .datasets import DatasetError, load_training_split
    config = load_config(args.config)
    if config.rule not in TRAINERS:
        return _fail(f"{args.config}: rule = {config.rule!r} does not learn; "
                     f"training needs rule = one of {', '.join(TRAINERS)}")
    if args.backend == "rtl" and config.rule not in RTL_TRAINING:
        return _fail(f"--backend rtl: training on the RTL is built for rule = "
                     f"{' or '.join(RTL_TRAINING)}, not {config.rule!r}; use --backend golden "
                     "(the bit-exact integer model the RTL is verified against)")
    if args.backend == "rtl" and (args.dataset != "digits" or args.seeds):
        return _fail("--backend rtl: trains on --dataset digits with one --seed only")
    if args.backend == "board" and config.rule not in RTL_TRAINING:
        return _fail(f"--backend board: training on a board is built for rule = "
                     f"{' or '.join(RTL_TRAINING)}, not {config.rule!r}")
    if (args.backend == "board") != (args.port is not None):
        return _fail("--backend board needs --port PORT (and --port needs --backend board)")
    if args.epochs is not None and args.epochs < 1:
        return _fail(f"--epochs {args.epochs}: must be at least 1")
    for flag, value in (("--limit-train", args.limit_train), ("--limit-test", args.limit_test)):
        if value is not None and value < 1:
            return _fail(f"{flag} {value}: must be at least 1")
    trainer = importlib.import_module(TRAINERS[config.rule])
    accepted = inspect.signature(trainer.fit).parameters
    for name in ("limit_train", "limit_test", "engine"):
        if getattr(args, name, None) is not None and name not in accepted:
            return _fail(f"--{name.replace('_', '-')}: the {config.rule} trainer does not support it")
    init_weights = None
    if args.init is not None:
        if "init_weights" not in accepted:
            return _fail(f"--init: the {config.rule} trainer does not support it")
        from .weights_file import load_weights
        try:
            init_weights = load_weights(args.init, config)
        except ValueError as error:
            return _fail(f"--init {error}")
    try:
        split = None if args.backend == "rtl" else load_training_split(args.dataset, config)
    except DatasetError as error:
        return _fail(str(error))
    if split is not None and split.n_inputs != config.n_inputs:
        return _fail(f"{args.config} with --dataset {args.dataset}: the data has "
                     f"{split.n_inputs} inputs per sample, the config {config.n_inputs} (layers[0])")
    if split is not None and split.n_classes > config.layers[-1]:
        return _fail(f"{args.config} with --dataset {args.dataset}: the data has labels up to "
                     f"{split.n_classes - 1}, the last layer {config.layers[-1]} neurons")
    output = Path(args.output if args.output else f"out/train-{config.name}")
    output.mkdir(parents=True, exist_ok=True)
    seeds = args.seeds if args.seeds else [args.seed]
    if len(set(seeds)) != len(seeds):
        return _fail(f"--seeds {' '.join(map(str, seeds))}: every seed must differ")
    runs = []
    for seed in seeds:
        place = output if len(seeds) == 1 else output / f"seed-{seed}"
        outcome = _train_one(args, config, trainer, accepted, split, seed, place, init_weights)
        if outcome is None:
            return 1
        runs.append(outcome)
    if len(seeds) > 1:
        _summarize(args, config, runs, output)
    return 0


def _epoch_line(metrics, seed=None) -> str:
    validation = ("" if metrics.validation_accuracy is None
                  else f"validation {100 * metrics.validation_accuracy:.2f} %, ")
    prefix = "" if seed is None else f"seed {seed} "
    return (f"{prefix}epoch {metrics.epoch}: train {100 * metrics.train_accuracy:.2f} %, "
            f"{validation}test {100 * metrics.test_accuracy:.2f} % "
            f"({metrics.seconds:.1f} s training)")


def _metrics_dict(args, result, seed, seconds) -> dict:
    final = result.final
    return {
        "rule": result.rule,
        "backend": result.backend,
        "dataset": args.dataset,
        "config": str(args.config),
        "seed": seed,
        "init": args.init,
        "epochs": len(result.epochs),
        "train_accuracy": final.train_accuracy,
        "validation_accuracy": final.validation_accuracy,
        "test_accuracy": final.test_accuracy,
        "seconds": seconds,
        "seconds_per_epoch": float(np.mean([m.seconds for m in result.epochs])),
        "history": [{"epoch": m.epoch, "train_accuracy": m.train_accuracy,
                     "validation_accuracy": m.validation_accuracy,
                     "test_accuracy": m.test_accuracy, "seconds": m.seconds}
                    for m in result.epochs],
        "extra": result.extra,
    }


def _write_json(args, metrics: dict, output: Path) -> None:
    text = json.dumps(metrics, indent=2, default=float)
    (output / "metrics.json").write_text(text + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")


def _train_one(args, config, trainer, accepted, split, seed: int, output: Path,
               init_weights=None):
    """Train once with ``seed``; write weights, pictures and metrics to ``output``."""
    from .train_plots import plot_curve, plot_raster, plot_weight_histograms
    output.mkdir(parents=True, exist_ok=True)

    def report(metrics):
        line = _epoch_line(metrics, seed if args.seeds else None)
        if args.no_progress:
            print(line, flush=True)
        else:
            from tqdm import tqdm
            tqdm.write(line)

    # Every trainer takes (config, split, *, backend, epochs, seed, progress); the options
    # below are passed only to trainers that accept them.
    options = {"backend": args.backend, "seed": seed, "progress": not args.no_progress}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    if getattr(args, "engine", None) is not None:
        options["engine"] = args.engine
    if "on_epoch" in accepted:
        options["on_epoch"] = report
    if init_weights is not None:
        options["init_weights"] = init_weights
    for name in ("limit_train", "limit_test"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    start = time.perf_counter()
    if args.backend == "rtl":
        result = _fit_on_rtl(config, options)
        if result is None:
            return None
    elif args.backend == "board":
        result = _fit_on_board(config, trainer, split, options, args)
        if result is None:
            return None
    else:
        result = trainer.fit(config, split, **options)
    seconds = time.perf_counter() - start
    if "on_epoch" not in accepted:
        for metrics in result.epochs:
            report(metrics)

    if "initial_test_accuracy" in result.extra:
        print(f"test accuracy of the --init weights before training: "
              f"{100 * result.extra['initial_test_accuracy']:.2f} %")
    metrics = _metrics_dict(args, result, seed, seconds)
    if split is not None and split.train.kind == "events":
        # Binned input spikes after a sample's window are not presented: say how many.
        learning = config.learning
        test_ticks = getattr(learning, "test_ticks_per_sample", learning.ticks_per_sample)
        metrics["spikes_beyond_window"] = {
            "train": split.train.spikes_beyond(learning.ticks_per_sample),
            "test": split.test.spikes_beyond(test_ticks)}
    from .weights_file import save_weights
    save_weights(output / "weights.npz", result.weights)
    title = f"{result.rule} ({result.backend}) on {args.dataset}"
    plot_curve([result.epochs], output / "curve.png", title)
    if result.initial_weights is not None:
        plot_weight_histograms(result.initial_weights, result.weights, output / "weights.png", title)
    raster_model = result.model
    if args.backend == "board":
        # A board's core is not stepped tick by tick from here: its golden twin, bit-exact
        # with it, runs the learned weights instead.
        raster_model = trainer.make_model(config, "golden", weights=result.weights)
    if raster_model is not None and hasattr(trainer, "record_layers") and split is not None:
        ticks = getattr(config.learning, "test_ticks_per_sample", config.learning.ticks_per_sample)
        sample = split.test.raster(0, ticks, config.learning.input_rate,
                                   np.random.default_rng([seed, 2]))
        plot_raster(trainer.record_layers(raster_model, sample), output / "raster.png",
                    f"{title}: test sample 0 (label {int(split.test.labels[0])}), learning off")
    _write_json(args, metrics, output)
    final = result.final
    validation = ("" if final.validation_accuracy is None
                  else f"validation accuracy {100 * final.validation_accuracy:.2f} %, ")
    print(f"{'seed %d: ' % seed if args.seeds else ''}train accuracy "
          f"{100 * final.train_accuracy:.2f} %, {validation}"
          f"test accuracy {100 * final.test_accuracy:.2f} % after {len(result.epochs)} "
          f"epoch(s), {metrics['seconds_per_epoch']:.1f} s per training epoch; "
          f"outputs in {output}")
    return metrics, result


def _summarize(args, config, runs, output: Path) -> None:
    """Mean and sd over seeds of the last epoch; the combined curve; the summary JSON."""
    from .train_plots import plot_curve
    metrics = [m for m, _ in runs]
    summary = {key: metrics[0][key] for key in ("rule", "backend", "dataset", "config", "epochs")}
    summary["seeds"] = [m["seed"] for m in metrics]
    for key in ("train_accuracy", "validation_accuracy", "test_accuracy"):
        values = [m[key] for m in metrics]
        if None in values:
            continue
        summary[key + "_mean"] = float(np.mean(values))
        summary[key + "_sd"] = float(np.std(values, ddof=1))
        summary[key + "_per_seed"] = values
    summary["seconds"] = float(sum(m["seconds"] for m in metrics))
    summary["runs"] = metrics
    first = runs[0][1]
    plot_curve([result.epochs for _, result in runs], output / "curve.png",
               f"{first.rule} ({first.backend}) on {args.dataset}")
    _write_json(args, summary, output)
    parts = [f"{name} {100 * summary[key + '_mean']:.2f} +- {100 * summary[key + '_sd']:.2f} %"
             for name, key in (("validation", "validation_accuracy"), ("test", "test_accuracy"))
             if key + "_mean" in summary]
    print(f"last epoch over seeds {' '.join(map(str, summary['seeds']))}: "
          + ", ".join(parts) + f"; outputs in {output}")


def main(argv=None) -> int:
    """Run ``train`` alone: ``python -m plasticore.train CONFIG ...`` (same options)."""
    from .cli import main as cli_main
    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
