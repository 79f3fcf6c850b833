"""Data sets as spike rasters, with one interface for every source.

``load_dataset(spec, settings)`` reads what ``plasticore train --dataset SPEC`` names:

=====================  =====================================================================
``digits``             scikit-learn's bundled 8x8 digits (:mod:`.digits`), rate-coded
``idx:DIR``            MNIST-format IDX files (:mod:`.idx`), rate-coded
``events:DIR``         labelled event recordings, N-MNIST ``.bin`` or tonic-style ``.npy`` /
                       ``.npz`` (:mod:`.recordings`), binned into ticks
``saccades:SOURCE``    a simulated event camera making three saccades over the still images
                       of ``digits`` or ``idx:DIR`` (:mod:`.saccades`), binned into ticks
=====================  =====================================================================

Each gives a :class:`~.samples.Split` whose parts answer ``raster(index, ticks, rate, rng)``
(:mod:`.samples`). A bad file raises :class:`DatasetError` with a one-line message.
"""

from __future__ import annotations

from .digits import DigitsSplit, events_per_tick, label_spike_train, load_digits_split, rate_encode
from .errors import DatasetError
from .samples import EventSamples, ImageSamples, Samples, Split, stratified_holdout

__all__ = ["DigitsSplit", "load_digits_split", "rate_encode", "events_per_tick",
           "label_spike_train", "DatasetError", "Samples", "ImageSamples", "EventSamples",
           "Split", "stratified_holdout", "as_split", "load_dataset", "load_training_split",
           "DATASET_FORMS"]

#: The forms ``--dataset`` accepts.
DATASET_FORMS = ("digits", "idx:DIR", "events:DIR", "saccades:digits", "saccades:idx:DIR")


def as_split(data, name: str = "digits") -> Split:
    """A :class:`Split` from a Split or from a :class:`DigitsSplit`-like object of arrays."""
    if isinstance(data, Split):
        return data
    return Split(name, ImageSamples(data.x_train, data.y_train), ImageSamples(data.x_test, data.y_test))


def load_dataset(spec: str, settings=None) -> Split:
    """Load the data set ``spec`` (one of :data:`DATASET_FORMS`); see the module docstring.

    Parameters
    ----------
    spec : str
    settings : plasticore.datasets.settings.DataSettings, optional
        Binning and saccade settings (the config's ``[data]`` table); defaults otherwise.

    Raises
    ------
    DatasetError
        An unknown form, a missing directory or a malformed file.
    """
    from .settings import DataSettings
    settings = DataSettings() if settings is None else settings
    kind, _, rest = spec.partition(":")
    if spec == "digits":
        return as_split(load_digits_split())
    if kind == "idx" and rest:
        from .idx import load_idx_split
        return load_idx_split(rest)
    if kind == "events" and rest:
        from .recordings import load_event_split
        return load_event_split(rest, settings)
    if kind == "saccades" and rest and not rest.startswith("saccades") and not rest.startswith("events"):
        from .saccades import saccade_split
        return saccade_split(load_dataset(rest, settings), settings, rest)
    raise DatasetError("--dataset", "dataset", repr(spec), f"must be one of {', '.join(DATASET_FORMS)}")


def load_training_split(spec: str, config) -> Split:
    """Load ``spec`` as ``plasticore train`` does: with the validation part held out.

    The share and seed of the stratified validation split come from the config's ``[data]``
    table (defaults otherwise). Every backend (golden, float, the simulated RTL, a board)
    trains on this split, so their results can be compared sample for sample.
    """
    from .settings import DataSettings
    settings = config.data if config.data is not None else DataSettings()
    split = load_dataset(spec, settings)
    return split.with_validation(settings.validation_fraction, settings.validation_seed)
