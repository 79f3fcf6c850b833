"""Counter-based random numbers of the golden models.

The definition lives in :mod:`plasticore.threefry`, where the hardware generator's tests,
the fixed random matrices of the rules and the golden models all import it from; this
module keeps the golden models' name for it.
"""

from plasticore.threefry import threefry2x32, uniform_bits

__all__ = ["threefry2x32", "uniform_bits"]
