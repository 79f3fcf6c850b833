"""One interface for every data set: labelled samples that become ``(ticks, n_inputs)`` rasters.

A :class:`Split` holds a ``train``, a ``test`` and (after :meth:`Split.with_validation`) a
``validation`` part. Each part is a :class:`Samples` object that the trainers ask for
boolean spike rasters, whatever the source:

* :class:`ImageSamples` (digits, IDX files): pixel intensities in [0, 1], rate-coded afresh
  at every request (Bernoulli, ``rate * pixel`` per tick), from the caller's generator;
* :class:`EventSamples` (recordings, simulated saccades): events already binned into
  ticks; the raster is the same at every request (the generator is not used). A raster
  shorter than the recording ends the sample early: the spikes after it are not presented
  (:meth:`EventSamples.spikes_beyond` counts them); a longer one ends in silence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["Samples", "ImageSamples", "EventSamples", "Split", "stratified_holdout"]


class Samples:
    """Labelled samples of one part of a data set (the interface the trainers use)."""

    labels: np.ndarray
    n_inputs: int
    kind: str

    def __len__(self) -> int:
        return len(self.labels)

    def raster(self, index: int, ticks: int, rate: float, rng: np.random.Generator) -> np.ndarray:
        """Boolean ``(ticks, n_inputs)`` input spikes of sample ``index``."""
        raise NotImplementedError

    def rasters(self, indices, ticks: int, rate: float, rng: np.random.Generator) -> np.ndarray:
        """Boolean ``(len(indices), ticks, n_inputs)`` rasters of several samples."""
        raise NotImplementedError

    def subset(self, indices) -> "Samples":
        """The samples ``indices`` (in that order), as a new part."""
        raise NotImplementedError


class ImageSamples(Samples):
    """Still images, rate-coded on request.

    Parameters
    ----------
    images : numpy.ndarray
        ``(n, n_inputs)`` intensities, or ``(n, height, width)`` (flattened row by row);
        ``uint8`` arrays are read as ``value / 255`` (kept as bytes to save memory).
    labels : numpy.ndarray
        ``(n,)`` class indices.
    """

    kind = "images"

    def __init__(self, images, labels):
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int64)
        if len(images) != len(labels):
            raise ValueError(f"images: {len(images)} samples, labels: {len(labels)}")
        self.shape = images.shape[1:]
        self.images = images.reshape(len(images), -1)
        self.labels = labels
        self.n_inputs = self.images.shape[1]

    def intensities(self, indices=slice(None)) -> np.ndarray:
        """Pixel values in [0, 1] of the samples ``indices``."""
        x = self.images[indices]
        return x / 255.0 if x.dtype == np.uint8 else x

    def images_2d(self) -> np.ndarray:
        """``(n, height, width)`` intensities (square images when the shape was flat)."""
        if len(self.shape) == 2:
            return self.intensities().reshape(len(self), *self.shape)
        side = int(round(self.n_inputs ** 0.5))
        if side * side != self.n_inputs:
            raise ValueError(f"{self.n_inputs} inputs per sample are not a square image")
        return self.intensities().reshape(len(self), side, side)

    def raster(self, index, ticks, rate, rng):
        from .digits import rate_encode
        return rate_encode(self.intensities(index), ticks, rate, rng)

    def rasters(self, indices, ticks, rate, rng):
        x = self.intensities(np.asarray(indices))
        return rng.random((len(x), ticks, self.n_inputs)) < np.clip(x, 0, 1)[:, None, :] * rate

    def subset(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        part = ImageSamples(self.images[indices], self.labels[indices])
        part.shape = self.shape
        return part


class EventSamples(Samples):
    """Event recordings already binned into ticks, stored sparsely.

    Each sample keeps the distinct ``(tick, input)`` pairs that hold at least one event, as
    one integer ``tick * n_inputs + input`` each (an input spikes at most once per tick):
    N-MNIST's 70,000 recordings fit in a few hundred megabytes.

    Parameters
    ----------
    ticks, addresses : list of numpy.ndarray
        Per sample, the tick and the input address of every kept event.
    labels : numpy.ndarray
    n_inputs : int
    """

    kind = "events"

    def __init__(self, ticks, addresses, labels, n_inputs: int):
        if not len(ticks) == len(addresses) == len(labels):
            raise ValueError(f"{len(ticks)} tick lists, {len(addresses)} address lists, "
                             f"{len(labels)} labels")
        self.n_inputs = int(n_inputs)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.keys = [self.pack(t, a) for t, a in zip(ticks, addresses)]

    def pack(self, ticks, addresses) -> np.ndarray:
        """The distinct ``tick * n_inputs + address`` of some events, ascending."""
        keys = np.unique(np.asarray(ticks, np.int64) * self.n_inputs + np.asarray(addresses, np.int64))
        small = keys.size == 0 or keys[-1] < np.iinfo(np.int32).max
        return keys.astype(np.int32 if small else np.int64)

    def spikes(self, index: int):
        """``(ticks, addresses)`` of sample ``index``'s input spikes."""
        keys = self.keys[index].astype(np.int64)
        return keys // self.n_inputs, keys % self.n_inputs

    def length(self, index: int) -> int:
        """Ticks from the first bin to the last spike of sample ``index``."""
        keys = self.keys[index]
        return int(keys[-1]) // self.n_inputs + 1 if keys.size else 0

    def spikes_beyond(self, ticks: int) -> int:
        """Input spikes, over all samples, in ticks at or after ``ticks`` (not presented)."""
        return int(sum(int((k.astype(np.int64) >= ticks * self.n_inputs).sum()) for k in self.keys))

    def raster(self, index, ticks, rate=None, rng=None):
        raster = np.zeros((ticks, self.n_inputs), dtype=bool)
        t, a = self.spikes(index)
        keep = t < ticks
        raster[t[keep], a[keep]] = True
        return raster

    def rasters(self, indices, ticks, rate=None, rng=None):
        return np.stack([self.raster(int(i), ticks) for i in indices]) if len(indices) else \
            np.zeros((0, ticks, self.n_inputs), dtype=bool)

    def subset(self, indices):
        part = EventSamples([], [], [], self.n_inputs)
        part.keys = [self.keys[int(i)] for i in indices]
        part.labels = self.labels[np.asarray(indices, dtype=np.int64)]
        return part


def stratified_holdout(labels, fraction: float, seed: int):
    """Indices ``(keep, held_out)``: ``fraction`` of each class held out, seeded.

    Each class contributes ``round(fraction * count)`` samples (at least one when the
    fraction is positive and the class has two or more), chosen by
    ``numpy.random.default_rng(seed)``; both index lists are ascending.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(fraction * len(members)))
        if fraction > 0 and len(members) > 1:
            count = min(max(count, 1), len(members) - 1)
        held.append(rng.permutation(members)[:count])
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), held)
    return keep, held


@dataclass(frozen=True)
class Split:
    """A data set's parts; ``validation`` is None until :meth:`with_validation`."""

    name: str
    train: Samples
    test: Samples
    validation: Samples | None = None

    @property
    def n_inputs(self) -> int:
        return self.train.n_inputs

    @property
    def n_classes(self) -> int:
        """Largest label of any part + 1."""
        parts = [p for p in (self.train, self.test, self.validation) if p is not None and len(p)]
        return int(max(int(p.labels.max()) for p in parts)) + 1

    def with_validation(self, fraction: float, seed: int) -> "Split":
        """Hold out a stratified, seeded ``fraction`` of the training set for validation."""
        if fraction <= 0:
            return self
        keep, held = stratified_holdout(self.train.labels, fraction, seed)
        return replace(self, train=self.train.subset(keep), validation=self.train.subset(held))

    def limited(self, train: int | None = None, test: int | None = None) -> "Split":
        """The first ``train`` / ``test`` samples of each part (quick checks)."""
        def first(part, n):
            return part if part is None or n is None else part.subset(np.arange(min(n, len(part))))
        return replace(self, train=first(self.train, train), test=first(self.test, test),
                       validation=first(self.validation, test))
