"""Event-camera recordings as core input: time bins, spatial downsampling, polarity channels.

A recording is a NumPy structured array with fields ``t``, ``x``, ``y`` and ``p``, the
layout tonic uses for N-MNIST and DvsGesture (``t`` in microseconds, ``p`` 0 = OFF and 1 = ON;
-1 is also accepted for OFF and booleans for either). The sensor size is given as tonic gives
it, ``(width, height, polarities)`` (``(34, 34, 2)`` for N-MNIST, ``(128, 128, 2)`` for
DvsGesture); only width and height are read from it.

An :class:`EventAdapter` turns a recording into a ``(ticks, n_inputs)`` raster (one core tick
per time bin of ``time_window`` units) and into each tick's input addresses. Input address of
an event after downsampling by ``(fx, fy)``::

    x' = x // fx,  y' = y // fy,  W' = ceil(width / fx),  H' = ceil(height / fy)
    address = (channel * H' + y') * W' + x'

with ``channel`` 0 = OFF, 1 = ON for ``polarity = "split"`` and a single channel otherwise
(``"merge"`` keeps every event, ``"on"`` / ``"off"`` keep one polarity). An event at time
``t`` falls in tick ``(t - t_start) // time_window``; events before ``t_start`` or at or after
``n_ticks`` bins are dropped (and counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["RecordingError", "EventAdapter", "check_recording", "POLARITY_MODES",
           "raster_to_addresses"]

#: How polarities map to input channels.
POLARITY_MODES = ("split", "merge", "on", "off")
REQUIRED_FIELDS = ("t", "x", "y", "p")


class RecordingError(ValueError):
    """A malformed recording: names the field, the offending value and the limit."""

    def __init__(self, field_name: str, value, limit: str):
        self.field = field_name
        self.value = value
        self.limit = limit
        super().__init__(f"{field_name} = {value!r}: {limit}")


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} = {value!r}: must be a positive integer")
    return int(value)


def check_recording(events, sensor_size) -> np.ndarray:
    """Validate a recording against the sensor; return it as a structured array.

    Raises
    ------
    RecordingError
        Not a structured array, a missing field, a non-numeric field, a non-finite or
        negative time, a coordinate outside ``[0, width)`` / ``[0, height)``, or a polarity
        other than 0/1 (or -1 for OFF, or a boolean).
    """
    width, height = _sensor(sensor_size)
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise RecordingError("events", type(events).__name__,
                             "must be a NumPy structured array with fields t, x, y, p")
    missing = [name for name in REQUIRED_FIELDS if name not in events.dtype.names]
    if missing:
        raise RecordingError(missing[0], None,
                             f"missing field; the recording has {list(events.dtype.names)}, "
                             f"needs {list(REQUIRED_FIELDS)}")
    events = events.reshape(-1)
    for name in REQUIRED_FIELDS:
        kind = events.dtype[name].kind
        if kind not in "iub" + ("f" if name == "t" else ""):
            raise RecordingError(name, str(events.dtype[name]),
                                 "must be an integer field" + (" (or float for t)" if name == "t" else ""))
    if events.size == 0:
        return events
    t = events["t"]
    if events.dtype["t"].kind == "f" and not np.isfinite(t).all():
        raise RecordingError("t", float(t[~np.isfinite(t)][0]), "must be finite")
    for name, limit in (("t", None), ("x", width), ("y", height)):
        values = events[name].astype(np.float64) if name == "t" else events[name].astype(np.int64)
        low = values.min()
        if low < 0:
            raise RecordingError(name, low.item(), "must not be negative")
        if limit is not None and values.max() >= limit:
            raise RecordingError(name, values.max().item(),
                                 f"must be below the sensor {'width' if name == 'x' else 'height'} {limit}")
    p = events["p"].astype(np.int64)
    bad = ~np.isin(p, (-1, 0, 1))
    if bad.any():
        raise RecordingError("p", p[bad][0].item(), "must be 0 or -1 (OFF) or 1 (ON)")
    return events


def _sensor(sensor_size):
    try:
        size = tuple(sensor_size)
    except TypeError:
        raise RecordingError("sensor_size", sensor_size, "must be (width, height[, polarities])") from None
    if len(size) not in (2, 3):
        raise RecordingError("sensor_size", sensor_size, "must be (width, height[, polarities])")
    for name, value in zip(("width", "height"), size[:2]):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise RecordingError(f"sensor_size.{name}", value, "must be a positive integer")
    return int(size[0]), int(size[1])


@dataclass(frozen=True)
class EventAdapter:
    """Turns event-camera recordings into per-tick core input.

    Parameters
    ----------
    sensor_size : tuple
        ``(width, height)`` or tonic's ``(width, height, polarities)``.
    time_window : int or float
        Length of one tick in the recording's time unit (1000 = 1 ms for microseconds).
    downsample : int or (int, int)
        Spatial pooling factor ``(fx, fy)``: each output pixel covers ``fx x fy`` sensor pixels.
    polarity : {"split", "merge", "on", "off"}
    n_ticks : int, optional
        Length of the raster; by default just long enough for the last event.
    t_start : int or float, optional
        Time of the start of tick 0; by default the first event's time.
    """

    sensor_size: tuple
    time_window: float = 1000
    downsample: object = 1
    polarity: str = "split"
    n_ticks: int | None = None
    t_start: float | None = None

    def __post_init__(self):
        width, height = _sensor(self.sensor_size)
        object.__setattr__(self, "sensor_size", tuple(self.sensor_size))
        if isinstance(self.time_window, bool) or not isinstance(self.time_window, (int, float, np.number)) \
                or not self.time_window > 0 or not math.isfinite(self.time_window):
            raise ValueError(f"time_window = {self.time_window!r}: must be a positive number")
        factors = self.downsample
        if isinstance(factors, (int, np.integer)) and not isinstance(factors, bool):
            factors = (factors, factors)
        factors = tuple(factors) if hasattr(factors, "__iter__") else (factors,)
        if len(factors) != 2:
            raise ValueError(f"downsample = {self.downsample!r}: must be an integer or (fx, fy)")
        fx, fy = (_positive_int("downsample", f) for f in factors)
        if fx > width or fy > height:
            raise ValueError(f"downsample = {self.downsample!r}: must not exceed the sensor size "
                             f"({width}, {height})")
        object.__setattr__(self, "downsample", (fx, fy))
        if self.polarity not in POLARITY_MODES:
            raise ValueError(f"polarity = {self.polarity!r}: must be one of {', '.join(POLARITY_MODES)}")
        if self.n_ticks is not None:
            if isinstance(self.n_ticks, bool) or not isinstance(self.n_ticks, (int, np.integer)) \
                    or self.n_ticks < 0:
                raise ValueError(f"n_ticks = {self.n_ticks!r}: must be a non-negative integer")
        if self.t_start is not None and (not isinstance(self.t_start, (int, float, np.number))
                                         or self.t_start < 0):
            raise ValueError(f"t_start = {self.t_start!r}: must be a non-negative number")

    @property
    def grid(self) -> tuple[int, int]:
        """``(W', H')``: the downsampled width and height."""
        width, height = _sensor(self.sensor_size)
        fx, fy = self.downsample
        return -(-width // fx), -(-height // fy)

    @property
    def channels(self) -> int:
        """Number of polarity channels (2 for ``"split"``, else 1)."""
        return 2 if self.polarity == "split" else 1

    @property
    def n_inputs(self) -> int:
        """Number of input addresses (``layers[0]`` of a core fed by this adapter)."""
        w, h = self.grid
        return self.channels * w * h

    def addresses(self, events):
        """Return ``(tick, address)`` of every kept event and the number dropped.

        Events are kept in recording order; events outside the time range, or of the
        polarity not selected, are dropped.
        """
        events = check_recording(events, self.sensor_size)
        if events.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
        on = events["p"].astype(np.int64) > 0
        t_start = events["t"].min() if self.t_start is None else self.t_start
        integral = all(float(v).is_integer() for v in (self.time_window, t_start)) \
            and events.dtype["t"].kind != "f"
        if integral:   # exact integer binning of integer (microsecond) time stamps
            ticks = (events["t"].astype(np.int64) - int(t_start)) // int(self.time_window)
        else:
            ticks = np.floor((events["t"].astype(np.float64) - float(t_start))
                             / float(self.time_window)).astype(np.int64)
        keep = ticks >= 0
        if self.n_ticks is not None:
            keep &= ticks < self.n_ticks
        if self.polarity == "on":
            keep &= on
        elif self.polarity == "off":
            keep &= ~on
        fx, fy = self.downsample
        w, h = self.grid
        channel = on.astype(np.int64) if self.polarity == "split" else np.zeros(len(on), np.int64)
        address = (channel * h + events["y"].astype(np.int64) // fy) * w + events["x"].astype(np.int64) // fx
        dropped = int((~keep).sum())
        return ticks[keep], address[keep], dropped

    def raster(self, events, binary: bool = True) -> np.ndarray:
        """Return the ``(ticks, n_inputs)`` raster: event counts per bin, or booleans.

        With ``binary`` an input spikes in a tick when at least one event fell in its bin
        (one spike per address per tick, which the DECOLLE core expects).
        """
        ticks, address, _ = self.addresses(events)
        n_ticks = self.n_ticks
        if n_ticks is None:
            n_ticks = int(ticks.max()) + 1 if ticks.size else 0
        counts = np.zeros((n_ticks, self.n_inputs), dtype=np.int64)
        np.add.at(counts, (ticks, address), 1)
        return counts > 0 if binary else counts

    def event_ticks(self, events, binary: bool = True) -> list[np.ndarray]:
        """Return each tick's input addresses, ascending (repeated per event unless ``binary``)."""
        return raster_to_addresses(self.raster(events, binary))


def raster_to_addresses(raster) -> list[np.ndarray]:
    """Each tick's addresses from a ``(ticks, n)`` raster; a count of c repeats the address c times."""
    raster = np.asarray(raster)
    if raster.ndim != 2:
        raise ValueError(f"raster: shape {raster.shape}, expected (ticks, n_inputs)")
    if raster.dtype == bool:
        return [np.flatnonzero(row) for row in raster]
    if raster.size and raster.min() < 0:
        raise ValueError(f"raster: count {raster.min()} must not be negative")
    return [np.repeat(np.arange(raster.shape[1]), row.astype(np.int64)) for row in raster]
