"""MNIST-format IDX files, as distributed (MNIST, Fashion-MNIST, KMNIST, EMNIST).

An IDX file is a 4-byte magic number ``00 00 TT DD`` (``TT`` the element type, ``DD`` the
number of dimensions), ``DD`` big-endian 32-bit sizes, then the elements, big-endian, in
row-major order. The files may be gzipped (detected by their content, not their name).

A data-set directory holds four of them::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte      (or test-images-..., test-labels-...)

each possibly with ``.gz``, and with ``.idx3-`` instead of ``-idx3-`` as some mirrors name
them. Images are read as ``uint8`` and scaled to [0, 1] when presented.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .errors import DatasetError

__all__ = ["read_idx", "write_idx", "load_idx_split", "find_idx_files"]

#: IDX element types: code -> big-endian NumPy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(path, "file", str(path), f"cannot be read ({error.strerror})") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DatasetError(path, "gzip", f"{len(raw)} bytes",
                               f"is a damaged or truncated gzip stream ({error})") from None
    return raw


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into an array of its declared type and shape.

    Raises
    ------
    DatasetError
        A wrong magic number, an unknown element type, or a file shorter or longer than
        its header declares.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DatasetError(path, "size", f"{len(raw)} bytes", "is truncated: an IDX header needs 4")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DatasetError(path, "magic", "0x" + raw[:4].hex(),
                           "is not an IDX magic number (00 00 TT DD with TT one of "
                           + ", ".join(f"{k:02x}" for k in IDX_TYPES) + ")")
    dtype = np.dtype(IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(path, "header", f"{len(raw)} bytes",
                           f"is truncated: {ndim} dimensions need a {header}-byte header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DatasetError(path, "size", f"{len(raw)} bytes",
                           f"is {what}: shape {shape} of {dtype.name} needs {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array, *, compress: bool = False) -> Path:
    """Write ``array`` as an IDX file (gzipped with ``compress``); returns the path."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"dtype {array.dtype}: IDX holds only "
                         + ", ".join(np.dtype(v).name for v in IDX_TYPES.values()))
    data = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
            + array.astype(IDX_TYPES[code]).tobytes())
    path = Path(path)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def find_idx_files(directory) -> dict[str, Path]:
    """Locate the four files of an IDX data-set directory: keys ``train-images`` etc."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(directory, "directory", str(directory), "does not exist")
    found = {}
    for part, prefixes in (("train", ("train",)), ("test", ("t10k", "test"))):
        for kind, rank in (("images", 3), ("labels", 1)):
            names = [f"{prefix}-{kind}{sep}idx{rank}-ubyte{gz}" for prefix in prefixes
                     for sep in ("-", ".") for gz in ("", ".gz")]
            matches = [directory / name for name in names if (directory / name).is_file()]
            if not matches:
                raise DatasetError(directory, f"{part}-{kind}", "missing",
                                   f"needs one of {names[0]}, {names[-1]} or the like")
            found[f"{part}-{kind}"] = matches[0]
    return found


def _images_and_labels(images_path: Path, labels_path: Path):
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DatasetError(images_path, "dimensions", images.ndim, "must be 3 (count, rows, columns)")
    if labels.ndim != 1:
        raise DatasetError(labels_path, "dimensions", labels.ndim, "must be 1 (count)")
    if len(images) != len(labels):
        raise DatasetError(labels_path, "count", len(labels),
                           f"must match the {len(images)} images of {images_path.name}")
    if images.dtype != np.uint8:
        raise DatasetError(images_path, "type", images.dtype.name, "must be unsigned bytes (08)")
    if labels.size and labels.min() < 0:
        raise DatasetError(labels_path, "label", int(labels.min()), "must not be negative")
    return images, labels.astype(np.int64)


def load_idx_split(directory):
    """Read a directory of IDX files into a :class:`~plasticore.datasets.samples.Split`."""
    from .samples import ImageSamples, Split
    files = find_idx_files(directory)
    train = ImageSamples(*_images_and_labels(files["train-images"], files["train-labels"]))
    test = ImageSamples(*_images_and_labels(files["test-images"], files["test-labels"]))
    if train.shape != test.shape:
        raise DatasetError(files["test-images"], "shape", test.shape,
                           f"must match the training images' {train.shape}")
    return Split(f"idx:{directory}", train, test)
