"""The golden models: integer NumPy models that are the specification of the hardware."""

from .lif import GoldenCore, lif_update, random_weights

__all__ = ["GoldenCore", "lif_update", "random_weights"]
