"""Online DECOLLE training on any data set, with the integer model or the float reference.

``fit`` is what ``plasticore train CONFIG --backend golden|float`` calls for
``rule = "decolle"``. ``python -m plasticore.train_decolle CONFIG --epochs E [--backend B] [--engine E]
[--set FIELD=VALUE ...]`` runs the same ``fit`` with ``[decolle]`` fields overridden, for
measuring what an approximation costs, and prints one line per epoch (on the whole digits
training set, without a validation split, as the earlier measurements in docs/decolle.md).

Protocol: each epoch presents the training samples once, in a fresh random order, one at a
time (online: weights change every tick from ``burn_in`` on); images as a new Bernoulli
raster of ``ticks_per_sample`` ticks with spike probability ``input_rate * pixel``, event
data as their binned events. After each epoch the epoch's training rasters, the validation
and the test samples (one raster each, drawn once per run from the seed) are run with
learning off; the prediction is the top layer's spike count from
``burn_in`` on (ties: larger membrane sum, then lower index). Seconds per epoch count the
training presentations only.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from plasticore.config import CoreConfig, load_config
from plasticore.datasets import as_split, load_digits_split
from plasticore.golden.decolle import initial_parameters, predict, readout_matrices
from plasticore.golden.engine import ENGINES, decolle_model
from plasticore.golden.decolle_float import FloatDecolle
from plasticore.rules import rule_params
from plasticore.rules.decolle import RANDOM_DRAW_BITS
from plasticore.training import EpochMetrics, TrainResult

__all__ = ["fit", "BACKENDS", "build_model", "main", "record_layers"]

BACKENDS = ("golden", "float")
_TEST_STREAM = 0x7E57
_BATCH = 150   # samples drawn (and evaluated side by side) at a time


def build_model(config: CoreConfig, backend: str, engine: str | None = None):
    """Return a fresh :class:`GoldenDecolle` or a :class:`FloatDecolle` with the same start.

    The float model starts from the integer initial weights and readouts divided by
    ``2**unit_bits``, so the two backends differ only by how they compute. The golden
    model runs on ``engine`` (:mod:`plasticore.golden.engine`; the same results).
    """
    if backend == "golden":
        return decolle_model(config, engine=engine)
    if backend == "float":
        params = config.learning
        scale = float(1 << params.unit_bits)
        weights, biases = initial_parameters(config)
        readouts = [None if r is None else (r[0] / scale, r[1] / scale)
                    for r in readout_matrices(config)]
        return FloatDecolle([w / scale for w in weights], [b / scale for b in biases], readouts,
                            **params.float_constants(config))
    raise ValueError(f"backend = {backend!r}: must be one of {', '.join(BACKENDS)}")


def _run(model, backend, raster, label=None, learn=False, burn_in=0):
    if backend == "golden":
        return model.run_sample(raster, label, learn)
    return model.run_sample(raster, label, learn, burn_in)


def record_layers(model, raster) -> list[np.ndarray]:
    """Present ``raster`` with learning off; return each layer's ``(ticks, n)`` spikes, inputs first."""
    raster = np.asarray(raster, dtype=bool)
    model.reset_state(1)
    # The integer models (either engine) step with tick, the float reference with step.
    step = model.tick if hasattr(model, "tick") else model.step
    layers = [[] for _ in range(len(model.weights))]
    for t in range(len(raster)):
        for layer, (_, spikes) in enumerate(step(raster[t])):
            layers[layer].append(np.asarray(spikes, dtype=bool)[0])
    return [raster] + [np.array(spikes).reshape(len(raster), -1) for spikes in layers]


def draw_batches(samples, indices, ticks: int, rate: float, rng, batch: int = _BATCH):
    """Yield ``(positions, rasters)`` of ``samples[indices]``, ``batch`` samples at a time.

    ``rng`` is a generator (drawn from, advanced) or a saved ``bit_generator.state`` (a
    fresh generator restored to it: the same rasters at every call). The bits are those
    of one draw of all the rasters at once, but only one batch is in memory: an MNIST-size
    epoch would not fit otherwise.
    """
    if isinstance(rng, dict):
        state, rng = rng, np.random.default_rng()
        rng.bit_generator.state = state
    for start in range(0, len(indices), batch):
        yield slice(start, start + batch), samples.rasters(indices[start:start + batch], ticks, rate, rng)


def evaluate(model, backend: str, batches, labels, burn_in: int) -> float:
    """Accuracy with learning off over ``(positions, rasters)`` batches run side by side."""
    correct = 0
    for where, rasters in batches:
        counts, sums = _run(model, backend, rasters, burn_in=burn_in)
        correct += int((predict(counts, sums) == labels[where]).sum())
    return correct / len(labels)


def fit(config, split=None, *, backend: str = "golden", epochs: int | None = None, seed: int = 0,
        progress: bool = False, on_epoch=None, limit_train: int | None = None,
        limit_test: int | None = None, model=None, engine: str | None = None) -> TrainResult:
    """Train a DECOLLE core online on the digits.

    Parameters
    ----------
    config : CoreConfig or path
        With ``rule = "decolle"``; ``layers[0]`` must be 64 and ``layers[-1]`` 10.
    split : plasticore.datasets.Split or DigitsSplit, optional
        Defaults to :func:`plasticore.datasets.load_digits_split`. Its ``validation`` part,
        when present, is evaluated after every epoch too.
    backend : {"golden", "float"}
    epochs : int, optional
        Defaults to the ``[decolle]`` table's ``epochs``.
    seed : int
        Seeds the sample order and the input rasters (weights come from ``config.seed``).
    progress : bool
        Show a tqdm progress bar over each epoch's samples.
    on_epoch : callable, optional
        Called with each :class:`EpochMetrics` as soon as the epoch is evaluated.
    limit_train, limit_test : int, optional
        Use only the first N training / test images (quick checks).
    model : object, optional
        A ready model of ``backend`` to train instead of a new one (the ablations of
        :mod:`plasticore.decolle_ablation` pass variants of the float reference).
    engine : {"fast", "numpy"}, optional
        The golden model's engine (:mod:`plasticore.golden.engine`); the results are the
        same bit for bit. Default: ``"fast"`` when Numba is installed.

    Returns
    -------
    TrainResult
    """
    config = load_config(config)
    rule_params(config, "decolle", "DECOLLE training")
    if backend not in BACKENDS:
        raise ValueError(f"backend = {backend!r}: must be one of {', '.join(BACKENDS)}")
    if epochs is None:
        epochs = config.learning.epochs
    if epochs < 0:
        raise ValueError(f"epochs = {epochs}: must not be negative")
    if split is None:
        split = load_digits_split()
    split = as_split(split).limited(limit_train, limit_test)
    n_classes = split.n_classes
    if config.layers[0] != split.n_inputs or config.layers[-1] != n_classes:
        raise ValueError(f"layers = {list(config.layers)}: the data set needs "
                         f"{split.n_inputs} inputs and {n_classes} outputs")
    params = config.learning
    ticks, rate, burn_in = params.ticks_per_sample, params.input_rate, params.burn_in
    model = build_model(config, backend, engine) if model is None else model
    initial_weights = [np.vstack([w, b[None, :]]) for w, b in zip(model.weights, model.biases)]
    rng = np.random.default_rng(seed)
    # Test and validation rasters: one draw per run, redrawn batch by batch when evaluated.
    test_state = np.random.default_rng([seed, _TEST_STREAM]).bit_generator.state
    validation = split.validation
    validation_state = np.random.default_rng([seed, _TEST_STREAM, 1]).bit_generator.state
    history = []
    cpu_seconds = []   # CPU time of each epoch's training: wall time misleads on a shared machine
    base_rates = None if backend == "golden" else model.learning_rates
    for epoch in range(1, epochs + 1):
        halvings = (epoch - 1) // params.lr_halving_epochs if params.lr_halving_epochs else 0
        if backend == "golden":
            model.set_lr_shifts([min(RANDOM_DRAW_BITS, s + halvings) for s in params.lr_shifts])
        else:
            model.learning_rates = tuple(
                lr * 2.0 ** -(min(RANDOM_DRAW_BITS, s + halvings) - s)
                for lr, s in zip(base_rates, params.lr_shifts))
        order = rng.permutation(len(split.train))
        labels = split.train.labels[order]
        train_state = rng.bit_generator.state   # this epoch's rasters are drawn from here
        start = time.perf_counter()
        cpu_start = time.process_time()
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(labels), desc=f"epoch {epoch}/{epochs}", leave=False)
        for where, rasters in draw_batches(split.train, order, ticks, rate, rng):
            for raster, label in zip(rasters, labels[where]):
                _run(model, backend, raster, int(label), True, burn_in)
                if bar is not None:
                    bar.update()
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        cpu_seconds.append(time.process_time() - cpu_start)
        # Accuracy with learning off: while a sample is being learned, its own error drives
        # the right output up, so the online prediction says little about generalization.
        train_accuracy = evaluate(model, backend, draw_batches(split.train, order, ticks, rate,
                                                               train_state), labels, burn_in)
        test_indices = np.arange(len(split.test))
        test_accuracy = evaluate(model, backend, draw_batches(split.test, test_indices, ticks, rate,
                                                              test_state), split.test.labels, burn_in)
        validation_accuracy = None if validation is None else evaluate(
            model, backend, draw_batches(validation, np.arange(len(validation)), ticks, rate,
                                         validation_state), validation.labels, burn_in)
        metrics = EpochMetrics(epoch, train_accuracy, test_accuracy, seconds, validation_accuracy)
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    if backend == "golden":
        weights = [np.vstack([w, b[None, :]]) for w, b in zip(model.weights, model.biases)]
        extra = {"flags": model.flags, "ticks": model.tick_count}
    else:
        weights = [np.vstack([w, b[None, :]]) for w, b in zip(model.weights, model.biases)]
        extra = {"learning_rates": list(model.learning_rates), "surrogate": model.surrogate}
    extra.update(ticks_per_sample=ticks, burn_in=burn_in, input_rate=rate,
                 weights_layout="each matrix is (n_pre + 1, n_post): the bias is the last row",
                 seconds_per_epoch=(float(np.mean([m.seconds for m in history])) if history else 0.0),
                 cpu_seconds_per_epoch=float(np.mean(cpu_seconds)) if cpu_seconds else 0.0)
    return TrainResult("decolle", backend, history, weights, extra,
                       initial_weights=initial_weights, model=model)


def main(argv=None) -> int:
    """``python -m plasticore.train_decolle CONFIG --epochs E [--backend B] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m plasticore.train_decolle",
                                     description="Train a DECOLLE core online on the digits.")
    parser.add_argument("config")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--backend", choices=BACKENDS, default="golden")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="golden model engine (default: fast when numba is installed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a [decolle] field (TOML value), e.g. --set lr_shifts=[6,12]")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.set:
        import tomllib
        table = config.learning.to_dict()
        for item in args.set:
            key, _, value = item.partition("=")
            table[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        data = config.to_dict()
        data["decolle"] = table
        config = CoreConfig.from_dict(data, source=args.config)
    def line(metrics):
        print(f"epoch {metrics.epoch:3d}  train {metrics.train_accuracy:.4f}  "
              f"test {metrics.test_accuracy:.4f}  {metrics.seconds:.1f} s", flush=True)

    result = fit(config, backend=args.backend, epochs=args.epochs, seed=args.seed, on_epoch=line,
                 engine=args.engine)
    final = result.final if result.epochs else None
    if final is not None:
        last = result.epochs[-5:]
        print(f"final test {final.test_accuracy:.4f}  mean of last {len(last)} "
              f"{np.mean([m.test_accuracy for m in last]):.4f}  "
              f"{result.extra['seconds_per_epoch']:.1f} s per epoch, "
              f"{result.extra['cpu_seconds_per_epoch']:.1f} s CPU ({args.backend})")
        largest = [float(np.abs(w).max()) for w in result.weights]
        print(f"largest |weight| per layer {largest}"
              + (f", saturation flags {result.extra['flags']:#x}" if "flags" in result.extra else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
