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

__all__ = ["DigitsSplit", "load_digits_split", "rate_encode", "events_per_tick",
           "label_spike_train", "upsample_images", "write_digits_idx"]


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


def upsample_images(images, box: int = 20, size: int = 28) -> np.ndarray:
    """Bilinear upsampling of square images to ``box x box``, centred on ``size x size``.

    With the defaults an 8x8 digit becomes an MNIST-like 28x28 image (MNIST's digits are
    drawn in a 20x20 box centred in 28x28). Returns ``uint8`` in 0-255 (input in [0, 1]).
    """
    images = np.clip(np.asarray(images, dtype=float), 0, 1)
    n, side = len(images), int(round(images[0].size ** 0.5))
    images = images.reshape(n, side, side)
    # Sample points of the box in the source's pixel-centre coordinates.
    points = (np.arange(box) + 0.5) * side / box - 0.5
    low = np.clip(np.floor(points).astype(int), 0, side - 1)
    high = np.clip(low + 1, 0, side - 1)
    frac = np.clip(points - low, 0, 1)
    rows = images[:, low, :] * (1 - frac)[None, :, None] + images[:, high, :] * frac[None, :, None]
    boxed = rows[:, :, low] * (1 - frac) + rows[:, :, high] * frac
    out = np.zeros((n, size, size))
    start = (size - box) // 2
    out[:, start:start + box, start:start + box] = boxed
    return np.round(out * 255).astype(np.uint8)


def write_digits_idx(directory, *, compress: bool = False, box: int = 20, size: int = 28):
    """Write the digits split, upsampled to MNIST's size, as MNIST-format IDX files.

    Gives a data set in MNIST's format (``train-images-idx3-ubyte`` and the like in
    ``directory``) made without a download, for trying ``--dataset idx:DIR``.
    """
    from pathlib import Path

    from .idx import write_idx
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    split = load_digits_split()
    suffix = ".gz" if compress else ""
    for prefix, x, y in (("train", split.x_train, split.y_train), ("t10k", split.x_test, split.y_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", upsample_images(x, box, size),
                  compress=compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", y.astype(np.uint8),
                  compress=compress)
    return directory
