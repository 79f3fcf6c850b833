"""The ``[data]`` table of a configuration: how a data set becomes ticks of core input.

Every field has a default, so a configuration without a ``[data]`` table (every TOML file
written before this table existed) loads unchanged and trains as before, except that a
validation split is now carved from the training set.

::

    [data]
    validation_fraction = 0.15   # stratified share of the training set held out
    validation_seed = 0          # seeds that split (the same for every training seed)
    time_window = 1000           # event recordings: one tick = 1000 time units (1 ms in us)
    polarity = "split"           # split | merge | on | off
    downsample = 1               # spatial pooling (fx, fy) of event coordinates
    sensor_size = [34, 34]       # optional; default: the recordings' largest coordinate + 1
    saccade_amplitude = 2.0      # simulated event camera (saccades:SOURCE), in image pixels
    saccade_us = 100000          # each of the three saccades lasts 100 ms
    saccade_steps = 50           # simulation steps per saccade
    contrast_threshold = 0.25    # events where log intensity moves this much
    threshold_spread = 0.03      # per-pixel threshold mismatch (relative sd)
    log_epsilon = 0.1            # log(epsilon + intensity): dark pixels stay finite
    saccade_seed = 0             # seeds the simulated sensor (mismatch, time stamps)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from plasticore.config import ConfigError
from plasticore.events import POLARITY_MODES

__all__ = ["DataSettings"]

_PREFIX = "data."


def _number(name: str, value: Any, low: float, high: float, *, integer: bool = False,
            low_open: bool = False):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise ConfigError(_PREFIX + name, value, "must be an integer" if integer else "must be a number")
    if value < low or value > high or (low_open and value == low):
        bound = f"above {low}" if low_open else f"at least {low}"
        raise ConfigError(_PREFIX + name, value, f"must be {bound} and at most {high}")
    return value


def _pair(name: str, value: Any, low: int, high: int):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or len(tuple(value)) != 2:
        raise ConfigError(_PREFIX + name, value, "must be an integer or a pair [x, y]")
    return tuple(_number(f"{name}[{i}]", v, low, high, integer=True) for i, v in enumerate(value))


@dataclass(frozen=True)
class DataSettings:
    """How samples are split and binned into ticks; see the module docstring for the TOML.

    Parameters
    ----------
    validation_fraction : float
        Share of the training set held out, stratified by class, for every tuning choice;
        0 trains on the whole training set (then no validation accuracy is reported).
    validation_seed : int
        Seed of the split; it does not change with the training seed, so that every
        training seed is judged on the same held-out samples.
    time_window : float
        Length of one tick in the recording's time unit (microseconds for N-MNIST and tonic).
    polarity : {"split", "merge", "on", "off"}
        ON and OFF events on separate inputs, on the same inputs, or one polarity only.
    downsample : (int, int)
        Spatial pooling: input pixel ``(x // fx, y // fy)``.
    sensor_size : (int, int) or None
        Width and height of the sensor; None takes the largest coordinate seen + 1.
    saccade_amplitude : float
        Extent of the simulated sensor's movement, in image pixels; the simulated sensor is
        ``ceil(amplitude)`` pixels wider and taller than the image.
    saccade_us : int
        Duration of each of the three saccades, in microseconds.
    saccade_steps : int
        Rendering steps per saccade (the time resolution of the simulation).
    contrast_threshold : float
        A pixel emits an event each time its log intensity moves this far from its last
        event's level.
    threshold_spread : float
        Relative standard deviation of the per-pixel thresholds (sensor mismatch).
    log_epsilon : float
        Offset of the log: ``log(log_epsilon + intensity)``.
    saccade_seed : int
        Seed of the simulated sensor; sample ``i`` of a part uses ``[seed, part, i]``.
    """

    validation_fraction: float = 0.15
    validation_seed: int = 0
    time_window: float = 1000
    polarity: str = "split"
    downsample: tuple = (1, 1)
    sensor_size: tuple | None = None
    saccade_amplitude: float = 2.0
    saccade_us: int = 100_000
    saccade_steps: int = 50
    contrast_threshold: float = 0.25
    threshold_spread: float = 0.03
    log_epsilon: float = 0.1
    saccade_seed: int = 0

    def __post_init__(self):
        _number("validation_fraction", self.validation_fraction, 0, 0.5)
        _number("validation_seed", self.validation_seed, 0, (1 << 32) - 1, integer=True)
        _number("time_window", self.time_window, 0, 1e12, low_open=True)
        if self.polarity not in POLARITY_MODES:
            raise ConfigError(_PREFIX + "polarity", self.polarity,
                              f"must be one of {', '.join(POLARITY_MODES)}")
        object.__setattr__(self, "downsample", _pair("downsample", self.downsample, 1, 1 << 16))
        if self.sensor_size is not None:
            object.__setattr__(self, "sensor_size", _pair("sensor_size", self.sensor_size, 1, 1 << 16))
        _number("saccade_amplitude", self.saccade_amplitude, 0, 64, low_open=True)
        _number("saccade_us", self.saccade_us, 1, 10 ** 9, integer=True)
        _number("saccade_steps", self.saccade_steps, 1, 10_000, integer=True)
        _number("contrast_threshold", self.contrast_threshold, 0, 10, low_open=True)
        _number("threshold_spread", self.threshold_spread, 0, 1)
        _number("log_epsilon", self.log_epsilon, 0, 10, low_open=True)
        _number("saccade_seed", self.saccade_seed, 0, (1 << 32) - 1, integer=True)

    @classmethod
    def from_dict(cls, table, core=None) -> "DataSettings":
        """Build from a ``[data]`` table; unknown keys are refused with the known ones listed."""
        if not isinstance(table, dict):
            raise ConfigError("data", table, "must be a table of data settings")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(_PREFIX + unknown[0], table[unknown[0]],
                              f"is not a data setting; known: {', '.join(sorted(known))}")
        return cls(**table)

    def to_dict(self) -> dict:
        """The fields as TOML-friendly values (None fields left out)."""
        data = dataclasses.asdict(self)
        data["downsample"] = list(self.downsample)
        if self.sensor_size is None:
            del data["sensor_size"]
        else:
            data["sensor_size"] = list(self.sensor_size)
        return data
