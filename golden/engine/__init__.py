"""The golden models at compiled speed: engines bit-exact with the NumPy specification.

Two engines compute every golden model:

- ``"numpy"``: the NumPy models of :mod:`plasticore.golden` (the specification: readable,
  one tick per call);
- ``"fast"``: Numba-compiled kernels that compute the same integers, bit for bit, and run
  whole samples (all their ticks) inside one compiled call; DECOLLE evaluates the samples
  of a batch in parallel on every CPU core. Compiled code is cached on disk, so only the
  very first run on a machine waits for the compiler.

The factories below build a model of either engine with the same API; ``engine = None``
means ``"fast"`` when Numba is installed (``pip install 'plasticore[engine]'``) and the
engine implements every field of the configuration, otherwise ``"numpy"``.
"""

from __future__ import annotations

import importlib.util
import warnings

from plasticore.config import CoreConfig

__all__ = ["ENGINES", "resolve_engine", "unsupported_fields", "inference_core", "erbp_core",
           "decolle_model", "core_model"]

#: The engine names, as ``engine=`` and the CLI's ``--engine`` take them.
ENGINES = ("fast", "numpy")

#: The configuration fields the compiled kernels implement (top level, then per rule
#: table). A configuration with another field, a later feature of the specification, is
#: not run on the fast engine until its kernels implement it.
SUPPORTED_FIELDS = {
    # ``data`` (the [data] table) says how samples are loaded and split, not how the core
    # computes: the engine runs whatever ticks it is given.
    # ``weight_memory`` says where the hardware keeps the weights; no result depends on it.
    None: {"layers", "weight_bits", "membrane_bits", "leak_shift", "threshold", "reset",
           "refractory_ticks", "lanes", "seed", "rule", "name", "erbp", "decolle", "data",
           "weight_memory"},
    "erbp": {"burn_in_ticks", "dendrite_leak_shift", "epochs", "error_input_weight",
             "error_threshold", "feedback_hidden_scale", "feedback_output_weight",
             "feedback_seed", "gate_high", "gate_low", "initial_weight_range", "input_rate",
             "label_period", "learning_rate_decay_epochs", "learning_rate_shift",
             "prng_rounds", "rounding_seed", "soma_gain_shift", "test_ticks_per_sample",
             "ticks_per_sample"},
    "decolle": {"burn_in", "epochs", "error_bits", "error_shifts", "init_scale", "input_rate",
                "learn_bias", "lr_halving_epochs", "lr_shifts", "p_shifts", "prng_rounds",
                "q_shifts", "r_shifts", "readout_amplitude", "readout_seed",
                "refractory_weight", "stochastic_rounding", "surrogate", "surrogate_window",
                "ticks_per_sample", "trace_bits", "unit_bits"},
}


def unsupported_fields(config: CoreConfig) -> list[str]:
    """The fields of ``config`` that the fast engine does not implement (empty if none)."""
    data = config.to_dict()
    fields = [name for name in data if name not in SUPPORTED_FIELDS[None]]
    table = data.get(config.rule)
    if isinstance(table, dict):
        fields += [f"{config.rule}.{name}" for name in table
                   if name not in SUPPORTED_FIELDS.get(config.rule, set())]
    return sorted(fields)


def resolve_engine(engine: str | None = None, config: CoreConfig | None = None) -> str:
    """Return the engine to use: ``engine`` itself, or the default for None.

    The default is ``"fast"`` when Numba is installed and the fast engine implements every
    field of ``config``; otherwise ``"numpy"`` (with a warning naming the fields).

    Raises
    ------
    ValueError
        For an unknown name, or ``"fast"`` without Numba installed or for a configuration
        it does not implement.
    """
    have_numba = importlib.util.find_spec("numba") is not None
    missing = unsupported_fields(config) if config is not None else []
    if engine is None:
        if have_numba and missing:
            warnings.warn(f"the fast engine does not implement {', '.join(missing)}: "
                          "running the NumPy specification", stacklevel=3)
        return "fast" if have_numba and not missing else "numpy"
    if engine not in ENGINES:
        raise ValueError(f"engine = {engine!r}: must be one of {', '.join(ENGINES)}")
    if engine == "fast" and not have_numba:
        raise ValueError("engine = 'fast' needs numba: pip install 'plasticore[engine]' "
                         "(or use engine = 'numpy', the NumPy specification)")
    if engine == "fast" and missing:
        raise ValueError(f"engine = 'fast': the fast engine does not implement "
                         f"{', '.join(missing)}; use engine = 'numpy'")
    return engine


def inference_core(config: CoreConfig, weights=None, engine: str | None = None):
    """An inference core model (:class:`plasticore.golden.lif.GoldenCore`'s API)."""
    if resolve_engine(engine, config) == "fast":
        from .lif import FastCore
        return FastCore(config, weights)
    from plasticore.golden.lif import GoldenCore
    return GoldenCore(config, weights)


def erbp_core(config: CoreConfig, weights=None, engine: str | None = None):
    """An eRBP core model (:class:`plasticore.golden.erbp.GoldenErbpCore`'s API)."""
    if resolve_engine(engine, config) == "fast":
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
    if resolve_engine(engine, config) == "fast":
        from .decolle import FastDecolle
        return FastDecolle(config, weights, biases)
    from plasticore.golden.decolle import GoldenDecolle
    return GoldenDecolle(config, weights, biases)
