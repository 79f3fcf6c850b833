"""The ``plasticore train`` command: learn a data set with the core's learning rule.

::

    plasticore train CONFIG --dataset digits [--backend golden|float|rtl|board] [--epochs E]
                     [--seed S] [--init W] [--port PORT] [-o DIR] [--json FILE]

Trains online (one sample at a time), prints the train and test accuracy of every epoch,
and writes to the output directory (default ``out/train-<name>``): ``weights.npz`` (the
learned matrices, ``w0``, ``w1``, ...), ``curve.png`` (accuracy per epoch) and
``metrics.json``. ``--json FILE`` writes the same metrics to ``FILE``. ``--init W`` starts
from the weights in ``W`` (fine-tuning imported or earlier weights) instead of random ones.
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

__all__ = ["register", "run_train", "TRAINERS", "DATASETS"]

#: Trainer module of each learning rule; each offers ``fit(config, split, *, backend,
#: epochs, seed, progress, ...) -> TrainResult``.
TRAINERS = {
    "erbp": "plasticore.train_erbp",
    "decolle": "plasticore.train_decolle",
}
DATASETS = ("digits",)
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
    parser.add_argument("--dataset", choices=DATASETS, default="digits",
                        help="data set (default: digits, scikit-learn's 8x8 digits)")
    parser.add_argument("--backend", choices=BACKENDS, default="golden",
                        help="golden: the integer model; float: the float reference; "
                             "rtl: the generated hardware; board: a core on a board, over "
                             "its UART (--port) (default: golden)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="online epochs (default: the rule's `epochs` parameter)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the presentation order and spike trains (default 0)")
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


def _load_dataset(name: str):
    from .datasets import load_digits_split
    if name == "digits":
        return load_digits_split()
    raise ValueError(f"dataset = {name!r}: known data sets are {', '.join(DATASETS)}")


def _plot_curve(result, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m.epoch for m in result.epochs]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(epochs, [100 * m.train_accuracy for m in result.epochs], "o-",
              label="train (online)")
    axes.plot(epochs, [100 * m.test_accuracy for m in result.epochs], "s-", label="test")
    axes.set_xlabel("epoch")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _fit_on_rtl(config, options: dict):
    """Train on the simulated RTL (every tick checked against golden); None on a mismatch."""
    from .sim.runner import run_training
    from .training import EpochMetrics, TrainResult

    job = {name: options[name] for name in ("epochs", "seed", "limit_train", "limit_test")
           if name in options}
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
    config = load_config(args.config)
    if config.rule not in TRAINERS:
        return _fail(f"{args.config}: rule = {config.rule!r} does not learn; "
                     f"training needs rule = one of {', '.join(TRAINERS)}")
    if args.backend == "rtl" and config.rule not in RTL_TRAINING:
        return _fail(f"--backend rtl: training on the RTL is built for rule = "
                     f"{' or '.join(RTL_TRAINING)}, not {config.rule!r}; use --backend golden "
                     "(the bit-exact integer model the RTL is verified against)")
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
    split = _load_dataset(args.dataset)
    output = Path(args.output if args.output else f"out/train-{config.name}")
    output.mkdir(parents=True, exist_ok=True)

    def report(metrics):
        line = (f"epoch {metrics.epoch}: train {100 * metrics.train_accuracy:.2f} %, "
                f"test {100 * metrics.test_accuracy:.2f} % ({metrics.seconds:.1f} s training)")
        if args.no_progress:
            print(line, flush=True)
        else:
            from tqdm import tqdm
            tqdm.write(line)

    # Every trainer takes (config, split, *, backend, epochs, seed, progress); the options
    # below are passed only to trainers that accept them.
    accepted = inspect.signature(trainer.fit).parameters
    options = {"backend": args.backend, "seed": args.seed, "progress": not args.no_progress}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    if "on_epoch" in accepted:
        options["on_epoch"] = report
    if args.init is not None:
        if "init_weights" not in accepted:
            return _fail(f"--init: the {config.rule} trainer does not support it")
        from .weights_file import load_weights
        try:
            options["init_weights"] = load_weights(args.init, config)
        except ValueError as error:
            return _fail(f"--init {error}")
    for name in ("limit_train", "limit_test"):
        value = getattr(args, name)
        if value is not None:
            if name not in accepted:
                return _fail(f"--{name.replace('_', '-')}: the {config.rule} trainer does "
                             "not support it")
            options[name] = value
    start = time.perf_counter()
    if args.backend == "rtl":
        result = _fit_on_rtl(config, options)
        if result is None:
            return 1
    elif args.backend == "board":
        result = _fit_on_board(config, trainer, split, options, args)
        if result is None:
            return 1
    else:
        result = trainer.fit(config, split, **options)
    seconds = time.perf_counter() - start
    if "on_epoch" not in accepted:
        for metrics in result.epochs:
            report(metrics)

    final = result.final
    if "initial_test_accuracy" in result.extra:
        print(f"test accuracy of the --init weights before training: "
              f"{100 * result.extra['initial_test_accuracy']:.2f} %")
    metrics = {
        "rule": result.rule,
        "backend": result.backend,
        "dataset": args.dataset,
        "config": str(args.config),
        "seed": args.seed,
        "init": args.init,
        "epochs": len(result.epochs),
        "train_accuracy": final.train_accuracy,
        "test_accuracy": final.test_accuracy,
        "seconds": seconds,
        "seconds_per_epoch": float(np.mean([m.seconds for m in result.epochs])),
        "history": [{"epoch": m.epoch, "train_accuracy": m.train_accuracy,
                     "test_accuracy": m.test_accuracy, "seconds": m.seconds}
                    for m in result.epochs],
        "extra": result.extra,
    }
    from .weights_file import save_weights
    save_weights(output / "weights.npz", result.weights)
    _plot_curve(result, output / "curve.png",
                f"{result.rule} ({result.backend}) on {args.dataset}")
    text = json.dumps(metrics, indent=2, default=float)
    (output / "metrics.json").write_text(text + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(f"train accuracy {100 * final.train_accuracy:.2f} %, "
          f"test accuracy {100 * final.test_accuracy:.2f} % after {len(result.epochs)} "
          f"epoch(s), {metrics['seconds_per_epoch']:.1f} s per training epoch; "
          f"outputs in {output}")
    return 0


def main(argv=None) -> int:
    """Run ``train`` alone: ``python -m plasticore.train CONFIG ...`` (same options)."""
    from .cli import main as cli_main
    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
