"""Where the DECOLLE example differs from decolle-public, one difference at a time.

``python -m plasticore.decolle_ablation CONFIG --variant NAME [--variant NAME ...]
[--epochs E] [--seed S] [--dataset SPEC]`` trains the float reference of ``CONFIG`` with each
named change towards the reference code and prints, per variant, the last epoch's
validation and test accuracy (validation carved from the training set as ``plasticore
train`` does). Variants (``as_configured`` is the example itself):

=======================  ==================================================================
``as_configured``        the configuration unchanged
``reference_init``       weights ``U(+-1/sqrt(fan_in))`` (the reference's default, without
                         its data-driven LSUV pass): ``init_scale = 1``
``fast_sigmoid``         decolle-public HEAD's surrogate ``1/(10|U|+1)^2`` (dense updates)
``learn_bias``           biases learn, as every parameter does in the reference
``dropout``              dropout 0.5 on the spikes entering each readout while learning
``vote``                 prediction by majority vote over the ticks after burn-in of the
                         top layer's per-tick argmax (ticks with no top spike abstain)
``random_top_readout``   the top layer also learns through a fixed random readout
                         ``U(+-lc_ampl/sqrt(K))`` with the hidden layers' rate rule, and the
                         prediction is the vote of that readout's argmax (the reference's
                         top layer)
=======================  ==================================================================

Not covered: the reference's optimizer (Adamax on mini-batches of 32, one update per
batch and tick) has no online, one-sample-at-a-time counterpart here.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from plasticore.config import CoreConfig, load_config
from plasticore.golden.decolle_float import FloatDecolle

__all__ = ["VARIANTS", "VotingDecolle", "variant", "main"]

VARIANTS = ("as_configured", "reference_init", "fast_sigmoid", "learn_bias", "dropout", "vote",
            "random_top_readout")


class VotingDecolle(FloatDecolle):
    """The float reference, predicting by majority vote of a readout's per-tick argmax.

    ``run_sample`` without learning returns ``(votes, zeros)``, so that the trainer's
    ``predict`` (most counts first) picks the class with the most votes, ties to the lower
    index. With ``top_readout`` None the vote is the argmax of the top spikes, and ticks
    with no top spike abstain.
    """

    top_readout = None

    def run_sample(self, raster, label=None, learn: bool = False, burn_in: int = 0):
        if learn:
            return super().run_sample(raster, label, learn, burn_in)
        raster = np.asarray(raster, dtype=bool)
        raster = raster[None] if raster.ndim == 2 else raster
        batch, ticks, _ = raster.shape
        self.reset_state(batch)
        n_classes = self.weights[-1].shape[1] if self.top_readout is None else self.top_readout[0].shape[1]
        votes = np.zeros((batch, n_classes))
        for t in range(ticks):
            top = self.step(raster[:, t])[-1][1]
            if t < burn_in:
                continue
            if self.top_readout is None:
                voting = top.any(axis=1)
                votes[np.flatnonzero(voting), top[voting].argmax(axis=1)] += 1
            else:
                G, g = self.top_readout
                votes[np.arange(batch), (top @ G + g).argmax(axis=1)] += 1
        return votes, np.zeros_like(votes)


def variant(config: CoreConfig, name: str, seed: int = 0, top_rate_scale: float | None = None):
    """Return ``(config, model)`` of variant ``name`` (see the module docstring).

    ``top_rate_scale`` multiplies the top layer's learning rate in ``random_top_readout``
    (default ``2**unit_bits``, the hidden layers' rule for a random readout).
    """
    from plasticore.train_decolle import build_model
    if name not in VARIANTS:
        raise ValueError(f"variant = {name!r}: must be one of {', '.join(VARIANTS)}")
    changes = {"reference_init": {"init_scale": 1.0}, "fast_sigmoid": {"surrogate": "fast_sigmoid"},
               "learn_bias": {"learn_bias": True}}.get(name, {})
    if changes:
        data = config.to_dict()
        data["decolle"] = {**config.learning.to_dict(), **changes}
        config = CoreConfig.from_dict(data)
    model = build_model(config, "float")
    if name == "dropout":
        model.readout_dropout = 0.5
        model._dropout_rng = np.random.default_rng([seed, 0xD0])
    if name in ("vote", "random_top_readout"):
        model.__class__ = VotingDecolle   # same state, only the prediction differs
    if name == "random_top_readout":
        params, n_classes = config.learning, config.layers[-1]
        rng = np.random.default_rng([params.readout_seed, 0x70])
        amplitude = params.readout_amplitude / np.sqrt(n_classes)
        readout = (rng.uniform(-amplitude, amplitude, (n_classes, n_classes)),
                   rng.uniform(-amplitude, amplitude, n_classes))
        model.readouts[-1] = readout
        model.top_readout = readout
        rates = list(model.learning_rates)
        # By default the hidden layers' rule for a random readout.
        rates[-1] *= float(1 << params.unit_bits) if top_rate_scale is None else top_rate_scale
        model.learning_rates = tuple(rates)
    return config, model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticore.decolle_ablation",
                                     description="Train DECOLLE variants towards decolle-public.")
    parser.add_argument("config")
    parser.add_argument("--variant", action="append", choices=VARIANTS, required=True)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--top-rate-scale", type=float, default=None,
                        help="random_top_readout: factor on the top layer's learning rate")
    args = parser.parse_args(argv)
    from plasticore.datasets import load_training_split
    from plasticore.train_decolle import fit
    config = load_config(args.config)
    split = load_training_split(args.dataset, config)
    for name in args.variant:
        changed, model = variant(config, name, args.seed, args.top_rate_scale)
        result = fit(changed, split, backend="float", epochs=args.epochs, seed=args.seed, model=model)
        curve = " ".join(f"{100 * m.validation_accuracy:.2f}/{100 * m.test_accuracy:.2f}"
                         for m in result.epochs)
        final = result.final
        print(f"{name}: last epoch validation {100 * final.validation_accuracy:.2f} %, "
              f"test {100 * final.test_accuracy:.2f} % (per epoch validation/test: {curve})",
              flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
