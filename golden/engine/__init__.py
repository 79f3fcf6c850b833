"""The golden models at compiled speed: engines bit-exact with the NumPy specification.

Two engines compute every golden model:

- ``"numpy"``: the NumPy models of :mod:`plasticore.golden` (the specification: readable,
  one tick per call);
- ``"fast"``: Numba-compiled kernels that compute the same integers, bit for bit, and run
  whole samples (all their ticks) inside one compiled call; DECOLLE evaluates the samples
  of a batch in parallel on every CPU core. Compiled code is cached on disk, so only the
  very first run on a machine waits for the compiler.

The factories below build a model of either engine with the same API; ``engine = None``
means ``"fast"`` when Numba is installed (``pip install 'plasticore[engine]'``), otherwise
``"numpy"``.
"""

from __future__ import annotations

import importlib.util

from plasticore.config import CoreConfig

__all__ = ["ENGINES", "resolve_engine", "inference_core", "erbp_core", "decolle_model",
           "core_model"]

#: The engine names, as ``engine=`` and the CLI's ``--engine`` take them.
ENGINES = ("fast", "numpy")


def resolve_engine(engine: str | None = None) -> str:
    """Return the engine to use: ``engine`` itself, or the default for None.

    Raises
    ------
    ValueError
        For an unknown name, or ``"fast"`` without Numba installed.
    """
    have_numba = importlib.util.find_spec("numba") is not None
    if engine is None:
        return "fast" if have_numba else "numpy"
    if engine not in ENGINES:
        raise ValueError(f"engine = {engine!r}: must be one of {', '.join(ENGINES)}")
    if engine == "fast" and not have_numba:
        raise ValueError("engine = 'fast' needs numba: pip install 'plasticore[engine]' "
                         "(or use engine = 'numpy', the NumPy specification)")
    return engine


def inference_core(config: CoreConfig, weights=None, engine: str | None = None):
    """An inference core model (:class:`plasticore.golden.lif.GoldenCore`'s API)."""
    if resolve_engine(engine) == "fast":
        from .lif import FastCore
        return FastCore(config, weights)
    from plasticore.golden.lif import GoldenCore
    return GoldenCore(config, weights)


def erbp_core(config: CoreConfig, weights=None, engine: str | None = None):
    """An eRBP core model (:class:`plasticore.golden.erbp.GoldenErbpCore`'s API)."""
    if resolve_engine(engine) == "fast":
        from .lif import FastErbpCore
        return FastErbpCore(config, weights)
    from plasticore.golden.erbp import GoldenErbpCore
    return GoldenErbpCore(config, weights)


def core_model(config: CoreConfig, weights=None, engine: str | None = None):
    """The model of an inference or eRBP core, chosen by ``config.rule``."""
    if config.rule == "erbp":
        return erbp_core(config, weights, engine)
    return inference_core(config, weights, engine)


def decolle_model(config: CoreConfig, weights=None, biases=None, engine: str | None = None):
    """A DECOLLE model (:class:`plasticore.golden.decolle.GoldenDecolle`'s API)."""
    if resolve_engine(engine) == "fast":
        from .decolle import FastDecolle
        return FastDecolle(config, weights, biases)
    from plasticore.golden.decolle import GoldenDecolle
    return GoldenDecolle(config, weights, biases)
