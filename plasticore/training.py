"""What every learning rule's trainer returns, so that one CLI reports them all."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["EpochMetrics", "TrainResult"]


@dataclass
class EpochMetrics:
    """Accuracy after one epoch of online training."""

    epoch: int
    train_accuracy: float
    test_accuracy: float
    seconds: float          # wall time of this epoch's training (not evaluation)
    validation_accuracy: float | None = None   # on the held-out part of the training set


@dataclass
class TrainResult:
    """The outcome of a training run.

    ``weights`` holds the learned matrices (integers for fixed-point backends, floats for
    float references); ``extra`` holds rule-specific figures worth reporting;
    ``initial_weights`` the matrices before training and ``model`` the trained model
    (for the plots ``plasticore train`` draws), when the trainer provides them.
    """

    rule: str
    backend: str
    epochs: list[EpochMetrics]
    weights: list[np.ndarray]
    extra: dict = field(default_factory=dict)
    initial_weights: list | None = None
    model: object = field(default=None, repr=False)

    @property
    def final(self) -> EpochMetrics:
        return self.epochs[-1]
