"""Pick the core that a configuration asks for."""

from plasticore.config import CoreConfig

__all__ = ["make_core"]


def make_core(config: CoreConfig):
    """Return the core component for ``config``.

    ``rule = "none"`` and ``"erbp"`` build :class:`plasticore.hdl.core.Core` (with or
    without the eRBP plasticity hardware), ``"decolle"`` builds
    :class:`plasticore.hdl.decolle_core.DecolleCore`. Every core has the same ports:
    ``i_events``, ``o_events`` and ``host``.
    """
    if config.rule == "decolle":
        from .decolle_core import DecolleCore
        return DecolleCore(config)
    from .core import Core
    return Core(config)
