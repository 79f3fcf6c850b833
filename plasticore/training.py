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


@dataclass
class TrainResult:
    """The outcome of a training run.

    ``weights`` holds the learned matrices (integers for fixed-point backends, floats for
    float references); ``extra`` holds rule-specific figures worth reporting.
    """

    rule: str
    backend: str
    epochs: list[EpochMetrics]
    weights: list[np.ndarray]
    extra: dict = field(default_factory=dict)

    @property
    def final(self) -> EpochMetrics:
        return self.epochs[-1]
