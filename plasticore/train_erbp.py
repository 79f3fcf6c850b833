"""Online eRBP training on the digits: one sample at a time, as the chip learns.

Each training sample is a Bernoulli rate code of its pixels (``input_rate`` per tick for a
full pixel) presented for ``ticks_per_sample`` ticks together with a regular label spike
train (:func:`plasticore.datasets.label_spike_train`); learning is on after the burn-in.
The class is the prediction neuron with the most spikes after the burn-in (ties go to the
lowest index). The training accuracy is measured online, during the training pass, with
the weights changing as it goes; the test accuracy after each epoch, with learning off and
the same test spike trains every epoch. With ``learning_rate_decay_epochs`` the learning
rate halves every so many epochs (the host rewrites the core's shift register).
"""

from __future__ import annotations

import time

import numpy as np

from plasticore.config import CoreConfig
from plasticore.datasets import Split, as_split, label_spike_train
from plasticore.rules import rule_params
from plasticore.training import EpochMetrics, TrainResult

__all__ = ["BACKENDS", "fit", "make_model", "evaluate", "record_layers"]

BACKENDS = ("golden", "float")


def make_model(config: CoreConfig, backend: str, engine: str | None = None, weights=None):
    """Return a fresh eRBP model of the given backend (``golden`` or ``float``), starting
    from ``weights`` (default: the rule's random initial weights); the golden model runs on
    ``engine`` (:mod:`plasticore.golden.engine`, default the fastest)."""
    if backend == "golden":
        from plasticore.golden.engine import erbp_core
        return erbp_core(config, weights, engine=engine)
    if backend == "float":
        from plasticore.golden.erbp_float import FloatErbpNetwork
        return FloatErbpNetwork(config, weights)
    raise ValueError(f"backend = {backend!r}: eRBP trains on one of {', '.join(BACKENDS)}")


def _progress(iterable, enabled: bool, **options):
    if not enabled:
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, **options)


#: Test samples drawn and evaluated at a time by the fast engine (bounds the rasters held:
#: 100 MNIST samples of 800 ticks are 63 MB).
_EVALUATION_CHUNK = 100


def evaluate(model, samples, *, seed: int, progress: bool = False, desc: str = "test",
             stream: int = 0) -> float:
    """Return the accuracy of ``model`` on ``samples`` with learning off.

    The spike trains are drawn from ``numpy.random.default_rng([seed, stream])``: the same
    for every call with the same seed (stream 0 is the test part, 1 the validation part).
    """
    params = model.params
    rng = np.random.default_rng([seed, stream])
    correct = 0
    if hasattr(model, "run_samples"):
        # The fast engine spreads a chunk of samples over the CPU cores, with the results
        # of running them one after the other (FastErbpCore.run_samples).
        chunk = _EVALUATION_CHUNK
        bar = _progress(range(0, len(samples), chunk), progress, desc=desc, leave=False)
        for start in bar:
            indices = range(start, min(start + chunk, len(samples)))
            rasters = [samples.raster(index, params.test_ticks_per_sample, params.input_rate,
                                      rng) for index in indices]
            for index, counts in zip(indices, model.run_samples(rasters)):
                correct += int(np.argmax(counts) == samples.labels[index])
        return correct / max(1, len(samples))
    for index in _progress(range(len(samples)), progress, total=len(samples), desc=desc, leave=False):
        raster = samples.raster(index, params.test_ticks_per_sample, params.input_rate, rng)
        counts = model.run_sample(raster, None, learn=False)
        correct += int(np.argmax(counts) == samples.labels[index])
    return correct / max(1, len(samples))


def record_layers(model, raster) -> list[np.ndarray]:
    """Present ``raster`` with learning off; return each layer's ``(ticks, n)`` spikes, inputs first."""
    from plasticore.golden.erbp import sample_events
    sizes = model.config.layers
    layers = [np.asarray(raster, dtype=bool)] + [np.zeros((len(raster), n), bool) for n in sizes[1:]]
    model.start_sample()
    model.learning_enabled = False
    for t, events in enumerate(sample_events(sizes[0], raster)):
        for layer, spikes in enumerate(model.tick(events)[:len(sizes) - 1], 1):
            layers[layer][t, spikes] = True
    return layers


def fit(config: CoreConfig, split: Split, *, backend: str = "golden",
        epochs: int | None = None, seed: int = 0, progress: bool = True,
        limit_train: int | None = None, limit_test: int | None = None,
        on_epoch=None, model=None, engine: str | None = None,
        init_weights=None, evaluate_start: bool | None = None) -> TrainResult:
    """Train an eRBP network online on ``split``; evaluate on its test part after each epoch.

    Parameters
    ----------
    config : CoreConfig
        ``rule = "erbp"``; its last layer has one neuron per class.
    split : plasticore.datasets.Split or DigitsSplit
        Its ``validation`` part, when present, is evaluated after every epoch too.
    backend : {"golden", "float"}
        The integer model (the hardware's specification) or the float reference.
    epochs : int, optional
        Default ``config.learning.epochs``.
    seed : int
        Seeds the presentation order and the spike trains (the network's own random
        numbers come from the config).
    progress : bool
        Show tqdm progress bars.
    limit_train, limit_test : int, optional
        Use only the first samples of each part (for quick checks).
    on_epoch : callable, optional
        Called with each :class:`EpochMetrics` as soon as it is known.
    model : object, optional
        A ready model to train instead of a new one of ``backend``: the RTL core in a
        simulation (:class:`plasticore.sim.train_tb.RtlErbpModel`) is trained this way.
    engine : {"fast", "numpy"}, optional
        The golden model's engine (:mod:`plasticore.golden.engine`); the results are the
        same bit for bit. Default: ``"fast"`` when Numba is installed.
    init_weights : list of array_like, optional
        Start from these weights (fine-tuning, ``train --init``) instead of the rule's
        random initial weights; for a new model only (a ready ``model`` holds its own).
    evaluate_start : bool, optional
        Measure the test accuracy before training (``extra["initial_test_accuracy"]``);
        default: when ``init_weights`` is given. A ready model that was given starting
        weights passes True, so that it runs the same ticks as a new one.
    """
    params = rule_params(config, "erbp", "eRBP training")
    n_classes = config.layers[-1]
    split = as_split(split).limited(limit_train, limit_test)
    if split.n_inputs != config.n_inputs:
        raise ValueError(f"the data has {split.n_inputs} inputs per sample, "
                         f"the config {config.n_inputs} (layers[0])")
    if split.n_classes > n_classes:
        raise ValueError(f"the data has labels up to {split.n_classes - 1}, the config's "
                         f"last layer only {n_classes} neurons")
    epochs = params.epochs if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs = {epochs}: must be at least 1")
    train, y_train = split.train, split.train.labels

    initial_weights = None   # a model passed in (the RTL in a simulation) is not read twice
    if model is None:
        model = make_model(config, backend, engine, init_weights)
        initial_weights = [np.array(w) for w in model.read_weights()]
    elif init_weights is not None:
        raise ValueError("init_weights: give them to the ready model, not to fit()")
    extra = {}
    if init_weights is not None if evaluate_start is None else evaluate_start:
        # What fine-tuning starts from: the test accuracy of the given weights, untrained.
        extra["initial_test_accuracy"] = evaluate(model, split.test, seed=seed,
                                                  progress=progress)
    history = []
    for epoch in range(1, epochs + 1):
        model.learning_rate_shift = params.learning_rate_shift_at(epoch)
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(y_train))
        correct = 0
        start = time.perf_counter()
        bar = _progress(order, progress, desc=f"epoch {epoch}/{epochs}", leave=False)
        for seen, index in enumerate(bar, 1):
            label = int(y_train[index])
            raster = train.raster(index, params.ticks_per_sample, params.input_rate, rng)
            labels = label_spike_train(label, n_classes, params.ticks_per_sample,
                                       params.label_period)
            counts = model.run_sample(raster, labels, learn=True)
            correct += int(np.argmax(counts) == label)
            if progress and seen % 50 == 0:
                bar.set_postfix(train=f"{correct / seen:.3f}")
        seconds = time.perf_counter() - start
        test_accuracy = evaluate(model, split.test, seed=seed, progress=progress)
        validation_accuracy = None if split.validation is None else evaluate(
            model, split.validation, seed=seed, progress=progress, desc="validation", stream=1)
        metrics = EpochMetrics(epoch=epoch, train_accuracy=correct / max(1, len(y_train)),
                               test_accuracy=test_accuracy, seconds=seconds,
                               validation_accuracy=validation_accuracy)
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)

    extra.update({
        "ticks_per_sample": params.ticks_per_sample,
        "test_ticks_per_sample": params.test_ticks_per_sample,
        "burn_in_ticks": params.burn_in_ticks,
        "n_train": int(len(y_train)),
        "n_test": int(len(split.test)),
        "n_validation": 0 if split.validation is None else int(len(split.validation)),
        "seed": seed,
    })
    if backend in ("golden", "rtl", "board"):
        extra["flags"] = int(model.flags)
    return TrainResult(rule="erbp", backend=backend, epochs=history,
                       weights=model.read_weights(), extra=extra,
                       initial_weights=initial_weights, model=model)
