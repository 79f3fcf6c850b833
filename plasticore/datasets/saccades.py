"""A simulated event camera looking at still images, as N-MNIST was recorded.

N-MNIST was made by moving an event camera in front of each MNIST digit in three quick
saccades along a triangle; the camera reports an event whenever a pixel's log intensity
has moved by more than a contrast threshold since its last event, ON when it grew, OFF
when it fell. This module does the same in software:

1. The sensor is ``ceil(A)`` pixels wider and taller than the image (``A`` =
   ``saccade_amplitude``); the image is drawn on it at a sub-pixel offset (bilinear
   interpolation) that moves along the triangle ``(0, 0) -> (A, A/2) -> (0, A) -> (0, 0)``
   (in x, y), one saccade per side, each ``saccade_us`` long, rendered at ``saccade_steps``
   evenly spaced times.
2. Each pixel keeps the log intensity ``log(log_epsilon + I)`` of its last event (at the
   start, of the first frame). At every step, a pixel whose log intensity differs from it by
   ``n`` whole thresholds emits ``n`` events of that sign and moves its level by ``n``
   thresholds. Thresholds vary per pixel (relative sd ``threshold_spread``), as real
   sensors' do.
3. Event times are spread uniformly within the step that produced them.

Everything random comes from ``numpy.random.default_rng([saccade_seed, part, index])``:
a sample's events are the same on every run and do not depend on the other samples.
The events come out as tonic-style structured arrays and are binned like recordings.
"""

from __future__ import annotations

import math

import numpy as np

from .recordings import EVENT_DTYPE, bin_recordings

__all__ = ["saccade_path", "simulate_saccades", "saccade_split", "sensor_size"]

_PARTS = {"train": 0, "test": 1}
_BATCH = 500   # images simulated side by side


def sensor_size(image_shape, amplitude: float) -> tuple[int, int]:
    """``(width, height)`` of the simulated sensor for ``(height, width)`` images."""
    height, width = image_shape
    margin = math.ceil(amplitude)
    return width + margin, height + margin


def saccade_path(amplitude: float, steps: int) -> np.ndarray:
    """``(3 * steps + 1, 2)`` offsets ``(x, y)`` of the image along the three saccades."""
    corners = np.array([(0.0, 0.0), (amplitude, amplitude / 2), (0.0, amplitude), (0.0, 0.0)])
    fraction = np.arange(steps) / steps
    path = [corners[k] + fraction[:, None] * (corners[k + 1] - corners[k]) for k in range(3)]
    return np.vstack(path + [corners[-1:]])


def _render(images: np.ndarray, offset, shape) -> np.ndarray:
    """``(n, h, w)`` images drawn on zero canvases of ``shape`` at sub-pixel ``offset`` (x, y),
    bilinear."""
    canvas = np.zeros((len(images),) + tuple(shape))
    h, w = images.shape[1:]
    ix, iy = int(math.floor(offset[0])), int(math.floor(offset[1]))
    fx, fy = offset[0] - ix, offset[1] - iy
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            if wx * wy == 0:
                continue
            y0, x0 = iy + dy, ix + dx
            rows, cols = min(h, shape[0] - y0), min(w, shape[1] - x0)
            canvas[:, y0:y0 + rows, x0:x0 + cols] += wx * wy * images[:, :rows, :cols]
    return canvas


def simulate_saccades(images, settings, rngs) -> list[np.ndarray]:
    """Events of still ``(n, height, width)`` images in [0, 1] (see the module docstring).

    Parameters
    ----------
    images : array_like
        ``(n, height, width)`` (or one ``(height, width)`` image).
    settings : plasticore.datasets.settings.DataSettings
    rngs : list of numpy.random.Generator
        One per image: its threshold mismatch and event times.

    Returns
    -------
    list of numpy.ndarray
        Per image, :data:`~plasticore.datasets.recordings.EVENT_DTYPE` events sorted by
        time; ``t`` in microseconds from the start of the first saccade.
    """
    images = np.clip(np.asarray(images, dtype=float), 0, 1)
    if images.ndim == 2:
        images = images[None]
    if len(rngs) != len(images):
        raise ValueError(f"rngs: {len(rngs)} generators for {len(images)} images")
    width, height = sensor_size(images.shape[1:], settings.saccade_amplitude)
    steps = settings.saccade_steps
    path = saccade_path(settings.saccade_amplitude, steps)
    step_us = settings.saccade_us / steps
    spread = np.stack([rng.standard_normal((height, width)) for rng in rngs])
    threshold = settings.contrast_threshold * np.maximum(0.1, 1 + settings.threshold_spread * spread)
    level = np.log(settings.log_epsilon + _render(images, path[0], (height, width)))
    found = []   # per step: (sample, y, x, signed count)
    for step in range(1, len(path)):
        log_now = np.log(settings.log_epsilon + _render(images, path[step], (height, width)))
        crossings = np.trunc((log_now - level) / threshold).astype(np.int64)
        sample, y, x = np.nonzero(crossings)
        n = crossings[sample, y, x]
        level[sample, y, x] += n * threshold[sample, y, x]
        found.append((np.full(len(n), step - 1), sample, y, x, n))
    step_of, sample, y, x, n = (np.concatenate(parts) for parts in zip(*found))
    count = np.abs(n)
    recordings = []
    for index, rng in enumerate(rngs):
        mine = sample == index
        repeat = count[mine]
        events = np.empty(int(repeat.sum()), dtype=EVENT_DTYPE)
        events["x"] = np.repeat(x[mine], repeat)
        events["y"] = np.repeat(y[mine], repeat)
        events["p"] = np.repeat(n[mine] > 0, repeat)
        start = np.repeat(step_of[mine], repeat) * step_us
        events["t"] = np.floor(start + rng.random(events.size) * step_us).astype(np.int64)
        recordings.append(events[np.argsort(events["t"], kind="stable")])
    return recordings


def _part_recordings(samples, settings, part: str):
    """Yield the simulated recordings of an image part, simulated ``_BATCH`` at a time."""
    for start in range(0, len(samples), _BATCH):
        batch = samples.subset(np.arange(start, min(start + _BATCH, len(samples)))).images_2d()
        yield from simulate_saccades(batch, settings, [
            np.random.default_rng([settings.saccade_seed, _PARTS[part], start + i])
            for i in range(len(batch))])


def saccade_split(split, settings, source_name: str):
    """Turn an image :class:`~plasticore.datasets.samples.Split` into simulated saccade events
    (binned as they are made: the raw events of MNIST's 70,000 images are never all held)."""
    from .samples import Split
    parts = {}
    for part in ("train", "test"):
        samples = getattr(split, part)
        shape = samples.subset([0]).images_2d().shape[1:]
        sensor = sensor_size(shape, settings.saccade_amplitude)
        # Tick 0 is the start of the first saccade, not the first event.
        parts[part] = bin_recordings(_part_recordings(samples, settings, part), samples.labels,
                                     settings, sensor, t_start=0)
    return Split(f"saccades:{source_name}", parts["train"], parts["test"])
