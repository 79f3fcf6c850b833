"""Labelled event recordings: N-MNIST's binary files and tonic-style structured arrays.

A recording set is a directory laid out as N-MNIST is distributed::

    PATH/Train/0/00002.bin   PATH/Train/1/...   ...   PATH/Test/9/...

(``train``/``test`` in lower case also work); the label is the name of the folder, a
non-negative integer. A recording is one file:

* ``.bin``: N-MNIST's format, 5 bytes (40 bits) per event, big-endian: bits 39-32 ``x``,
  31-24 ``y``, bit 23 polarity (1 = ON), bits 22-0 the time stamp in microseconds;
* ``.npy``: a NumPy structured array with fields ``t``, ``x``, ``y``, ``p`` (tonic's layout;
  any integer types, ``p`` 0/1, -1/1 or boolean);
* ``.npz``: the same array under the key ``events`` (or as the only array in the file).

Every recording is binned into ticks by :class:`plasticore.events.EventAdapter` with the
``[data]`` table's ``time_window``, ``polarity``, ``downsample`` and ``sensor_size``; tick 0
starts at the recording's first event.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DatasetError

__all__ = ["EVENT_DTYPE", "read_nmnist_bin", "write_nmnist_bin", "read_recording",
           "recording_files", "load_recordings", "bin_recordings", "load_event_split"]

#: Structured dtype of the recordings this module returns (tonic's fields).
EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "<i1")])
RECORDING_SUFFIXES = (".bin", ".npy", ".npz")
_PART_NAMES = {"train": ("Train", "train"), "test": ("Test", "test")}


def read_nmnist_bin(path) -> np.ndarray:
    """Read an N-MNIST ``.bin`` file (40-bit events) into an :data:`EVENT_DTYPE` array."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise DatasetError(path, "size", f"{raw.size} bytes",
                           "is truncated: N-MNIST events are 5 bytes each")
    raw = raw.reshape(-1, 5).astype(np.int64)
    events = np.empty(len(raw), dtype=EVENT_DTYPE)
    events["x"] = raw[:, 0]
    events["y"] = raw[:, 1]
    events["p"] = raw[:, 2] >> 7
    events["t"] = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    return events


def write_nmnist_bin(path, events) -> Path:
    """Write events (fields ``t``, ``x``, ``y``, ``p``) in N-MNIST's 40-bit format."""
    events = np.asarray(events)
    for name, limit in (("x", 256), ("y", 256), ("t", 1 << 23)):
        values = events[name].astype(np.int64)
        if values.size and (values.min() < 0 or values.max() >= limit):
            raise ValueError(f"{name} = {values.max() if values.max() >= limit else values.min()}: "
                             f"N-MNIST stores 0 to {limit - 1}")
    t = events["t"].astype(np.int64)
    raw = np.stack([events["x"].astype(np.int64), events["y"].astype(np.int64),
                    ((events["p"].astype(np.int64) > 0) << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF],
                   axis=1).astype(np.uint8)
    path = Path(path)
    path.write_bytes(raw.tobytes())
    return path


def read_recording(path) -> np.ndarray:
    """Read one recording (``.bin``, ``.npy`` or ``.npz``); structured, fields t, x, y, p."""
    path = Path(path)
    if path.suffix == ".bin":
        return read_nmnist_bin(path)
    try:
        if path.suffix == ".npy":
            events = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if "events" not in keys and len(keys) != 1:
                    raise DatasetError(path, "keys", keys, "need an array named 'events'")
                events = archive["events" if "events" in keys else keys[0]]
        else:
            raise DatasetError(path, "suffix", path.suffix or "(none)",
                               f"must be one of {', '.join(RECORDING_SUFFIXES)}")
    except (OSError, ValueError) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(path, "file", path.name, f"is not a NumPy file ({error})") from None
    if events.dtype.names is None:
        raise DatasetError(path, "dtype", str(events.dtype),
                           "must be a structured array with fields t, x, y, p")
    return events


def _label_folders(root: Path, part: str) -> list[tuple[int, Path]]:
    for name in _PART_NAMES[part]:
        folder = root / name
        if folder.is_dir():
            break
    else:
        raise DatasetError(root, part, "missing", f"needs a folder {' or '.join(_PART_NAMES[part])}/"
                           "with one sub-folder per label")
    labelled = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not sub.name.isdigit():
            raise DatasetError(sub, "label", sub.name, "must be a non-negative integer folder name")
        labelled.append((int(sub.name), sub))
    if not labelled:
        raise DatasetError(folder, "labels", 0, "needs at least one label folder (0/, 1/, ...)")
    return labelled


def recording_files(root, part: str) -> tuple[list[Path], np.ndarray]:
    """The recording files of ``part`` (``"train"`` or ``"test"``) under ``root`` and their
    labels, in label then file-name order."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "directory", str(root),
                           "is a file: give the directory that holds Train/<label>/ and "
                           "Test/<label>/" if root.exists() else "does not exist")
    paths, labels = [], []
    for label, folder in _label_folders(root, part):
        for path in sorted(p for p in folder.iterdir() if p.suffix in RECORDING_SUFFIXES):
            paths.append(path)
            labels.append(label)
    if not paths:
        raise DatasetError(root, part, "empty", f"no {'/'.join(RECORDING_SUFFIXES)} recordings found")
    return paths, np.asarray(labels, dtype=np.int64)


def load_recordings(root, part: str) -> tuple[list[np.ndarray], np.ndarray, list[Path]]:
    """Read every recording of ``part`` (``"train"`` or ``"test"``) under ``root``.

    Returns the recordings, their labels and their paths, in label then file-name order.
    """
    paths, labels = recording_files(root, part)
    return [read_recording(path) for path in paths], labels, paths


def bin_recordings(recordings, labels, settings, sensor_size, paths=None, t_start=None):
    """Bin recordings into :class:`~plasticore.datasets.samples.EventSamples` (one tick per
    ``settings.time_window``; tick 0 starts at ``t_start``, by default each recording's
    first event). ``recordings`` may be an iterator: each is binned and let go."""
    from plasticore.events import EventAdapter, RecordingError

    from .samples import EventSamples
    adapter = EventAdapter(sensor_size, time_window=settings.time_window,
                           downsample=settings.downsample, polarity=settings.polarity,
                           t_start=t_start)
    samples = EventSamples([], [], [], adapter.n_inputs)
    for index, events in enumerate(recordings):
        try:
            t, a, _ = adapter.addresses(events)
        except RecordingError as error:
            where = paths[index] if paths is not None else f"recording {index}"
            raise DatasetError(where, error.field, error.value, error.limit) from None
        samples.keys.append(samples.pack(t, a))
    samples.labels = np.asarray(labels, dtype=np.int64)
    if len(samples.keys) != len(samples.labels):
        raise ValueError(f"{len(samples.keys)} recordings, {len(samples.labels)} labels")
    return samples


def load_event_split(root, settings):
    """Read and bin a recording directory into a :class:`~plasticore.datasets.samples.Split`,
    one recording at a time."""
    from .samples import Split
    parts = {part: recording_files(root, part) for part in ("train", "test")}
    sensor = settings.sensor_size
    if sensor is None:   # a first pass: the largest coordinate seen, + 1
        largest = [0, 0]
        for paths, _ in parts.values():
            for path in paths:
                events = read_recording(path)
                if events.size:
                    largest = [max(largest[0], int(events["x"].max())),
                               max(largest[1], int(events["y"].max()))]
        sensor = (largest[0] + 1, largest[1] + 1)
    binned = {part: bin_recordings((read_recording(p) for p in paths), labels, settings, sensor, paths)
              for part, (paths, labels) in parts.items()}
    return Split(f"events:{root}", binned["train"], binned["test"])
