"""The weights file every command reads and writes: a NumPy ``.npz`` of one matrix per projection.

``w0`` holds projection 1 (inputs to the first neuron layer), ``w1`` the next, and so on;
matrix ``w{l}`` has shape ``(layers[l], layers[l+1])`` (presynaptic rows, postsynaptic
columns). ``plasticore train`` writes learned weights in this format, ``plasticore import``
writes imported ones, and ``verify --weights``, ``train --init`` and ``export`` read it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .golden.lif import check_weights

__all__ = ["save_weights", "load_weights"]


def save_weights(path, weights) -> None:
    """Write ``weights`` (one matrix per projection) to ``path`` as ``w0``, ``w1``, ..."""
    np.savez(Path(path), **{f"w{i}": np.asarray(w) for i, w in enumerate(weights)})


def load_weights(path, config=None, *, integer: bool = True) -> list[np.ndarray]:
    """Read a weights file.

    Parameters
    ----------
    path : str or Path
    config : CoreConfig, optional
        When given, the count, shapes and (for integer weights) the range are checked
        against the core.
    integer : bool
        Require integer values (a core's weights); False also accepts float weights (a
        float reference's, for ``export``).

    Raises
    ------
    ValueError
        Naming the file and what is wrong: a missing or extra matrix, a wrong shape, a
        fractional value where integers are required, a value out of the weight range.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a weights file (.npz of w0, w1, ...): {error}") from None
    with archive:
        names = sorted(archive.files, key=lambda name: (len(name), name))
        expected = [f"w{i}" for i in range(len(names))]
        if names != expected:
            raise ValueError(f"{path}: holds {', '.join(names) or 'nothing'}; a weights file "
                             f"holds w0, w1, ... (one matrix per projection)")
        weights = [archive[name] for name in names]
    for index, matrix in enumerate(weights):
        if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
            raise ValueError(f"{path}: w{index} is not a numeric matrix "
                             f"(shape {matrix.shape}, dtype {matrix.dtype})")
        if integer and not np.issubdtype(matrix.dtype, np.integer):
            if not np.all(np.isfinite(matrix)) or np.any(matrix != np.round(matrix)):
                raise ValueError(f"{path}: w{index} holds fractional values; a core's weights "
                                 "are integers (import a float network with "
                                 "`plasticore import`, which quantizes it)")
    if config is None:
        return [w.astype(np.int64) if integer else w for w in weights]
    if not integer:
        if len(weights) != len(config.layers) - 1:
            raise ValueError(f"{path}: {len(weights)} matrices, the core has "
                             f"{len(config.layers) - 1} projections")
        for index, (matrix, shape) in enumerate(zip(weights, zip(config.layers,
                                                                 config.layers[1:]))):
            if matrix.shape != shape:
                raise ValueError(f"{path}: w{index} has shape {matrix.shape}, expected {shape}")
        return [np.asarray(w, dtype=np.float64) for w in weights]
    try:
        return check_weights(config, weights)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
