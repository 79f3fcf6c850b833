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


def _render(image: np.ndarray, offset, shape) -> np.ndarray:
    """``image`` drawn on a zero canvas of ``shape`` at sub-pixel ``offset`` (x, y), bilinear."""
    canvas = np.zeros(shape)
    h, w = image.shape
    ix, iy = int(math.floor(offset[0])), int(math.floor(offset[1]))
    fx, fy = offset[0] - ix, offset[1] - iy
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            if wx * wy == 0:
                continue
            y0, x0 = iy + dy, ix + dx
            rows, cols = min(h, shape[0] - y0), min(w, shape[1] - x0)
            canvas[y0:y0 + rows, x0:x0 + cols] += wx * wy * image[:rows, :cols]
    return canvas


def simulate_saccades(image, settings, rng: np.random.Generator) -> np.ndarray:
    """Events of one still ``(height, width)`` image in [0, 1] (see the module docstring).

    Returns
    -------
    numpy.ndarray
        :data:`~plasticore.datasets.recordings.EVENT_DTYPE` events sorted by time; ``t`` in
        microseconds from the start of the first saccade.
    """
    image = np.clip(np.asarray(image, dtype=float), 0, 1)
    width, height = sensor_size(image.shape, settings.saccade_amplitude)
    steps = settings.saccade_steps
    path = saccade_path(settings.saccade_amplitude, steps)
    step_us = settings.saccade_us / steps
    threshold = settings.contrast_threshold * np.maximum(
        0.1, 1 + settings.threshold_spread * rng.standard_normal((height, width)))
    level = np.log(settings.log_epsilon + _render(image, path[0], (height, width)))
    chunks = []
    for step in range(1, len(path)):
        log_now = np.log(settings.log_epsilon + _render(image, path[step], (height, width)))
        crossings = np.trunc((log_now - level) / threshold).astype(np.int64)
        y, x = np.nonzero(crossings)
        if y.size:
            n = crossings[y, x]
            level[y, x] += n * threshold[y, x]
            count = np.abs(n)
            events = np.empty(int(count.sum()), dtype=EVENT_DTYPE)
            events["x"] = np.repeat(x, count)
            events["y"] = np.repeat(y, count)
            events["p"] = np.repeat(n > 0, count)
            start = (step - 1) * step_us
            events["t"] = np.floor(start + rng.random(events.size) * step_us).astype(np.int64)
            chunks.append(events)
    if not chunks:
        return np.zeros(0, dtype=EVENT_DTYPE)
    events = np.concatenate(chunks)
    return events[np.argsort(events["t"], kind="stable")]


def saccade_split(split, settings, source_name: str):
    """Turn an image :class:`~plasticore.datasets.samples.Split` into simulated saccade events."""
    from .samples import Split
    parts = {}
    for part in ("train", "test"):
        samples = getattr(split, part)
        images = samples.images_2d()
        recordings = [simulate_saccades(img, settings,
                                        np.random.default_rng([settings.saccade_seed, _PARTS[part], i]))
                      for i, img in enumerate(images)]
        sensor = sensor_size(images.shape[1:], settings.saccade_amplitude)
        # Tick 0 is the start of the first saccade, not the first event.
        parts[part] = bin_recordings(recordings, samples.labels, settings, sensor, t_start=0)
    return Split(f"saccades:{source_name}", parts["train"], parts["test"])

