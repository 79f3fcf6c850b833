"""Data sets as spike events.

The digits are scikit-learn's bundled 8x8 handwritten digits (1797 images, no download),
split exactly as every figure in this project uses them::

    X = digits.data / 16
    train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

which gives 1347 training and 450 test images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DigitsSplit", "load_digits_split", "rate_encode", "events_per_tick"]


@dataclass(frozen=True)
class DigitsSplit:
    """The project's train/test split of the 8x8 digits; pixel values in [0, 1]."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def load_digits_split() -> DigitsSplit:
    """Return the project's split of scikit-learn's digits (1347 train, 450 test)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the digits data set needs scikit-learn: "
                          "pip install 'plasticore[learning]'") from error
    digits = load_digits()
    x = digits.data / 16
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    return DigitsSplit(x_train, x_test, y_train.astype(np.int64), y_test.astype(np.int64))


def rate_encode(intensity, ticks: int, probability: float, rng: np.random.Generator) -> np.ndarray:
    """Bernoulli rate code: a boolean raster of shape ``(ticks, n)``.

    Input ``k`` spikes in each tick independently with probability
    ``probability * intensity[k]``; intensities are clipped to [0, 1].

    Parameters
    ----------
    intensity : array_like
        One value per input, in [0, 1].
    ticks : int
    probability : float
        Spike probability per tick of a fully on input, in [0, 1].
    rng : numpy.random.Generator
    """
    if not 0 <= probability <= 1:
        raise ValueError(f"probability = {probability}: must be between 0 and 1")
    if ticks < 0:
        raise ValueError(f"ticks = {ticks}: must not be negative")
    p = np.clip(np.asarray(intensity, dtype=float), 0, 1) * probability
    return rng.random((ticks, p.size)) < p


def events_per_tick(raster) -> list[np.ndarray]:
    """Turn a boolean ``(ticks, n)`` raster into each tick's input addresses, ascending."""
    return [np.flatnonzero(row) for row in np.asarray(raster, dtype=bool)]


def label_spike_train(label: int, n_classes: int, ticks: int, period: int) -> np.ndarray:
    """Regular label code: a boolean raster of shape ``(ticks, n_classes)``.

    The neuron of class ``label`` spikes at ticks ``0, period, 2 * period, ...``; the
    others are silent. eRBP feeds this to its error neurons.
    """
    if not 0 <= label < n_classes:
        raise ValueError(f"label = {label}: must be between 0 and {n_classes - 1}")
    if period < 1:
        raise ValueError(f"period = {period}: must be at least 1")
    if ticks < 0:
        raise ValueError(f"ticks = {ticks}: must not be negative")
    raster = np.zeros((ticks, n_classes), dtype=bool)
    raster[::period, label] = True
    return raster
