"""plasticore: spiking cores that learn on chip, described once in Python.

Subpackages: :mod:`plasticore.golden` (the NumPy integer model, the specification),
:mod:`plasticore.hdl` (Amaranth components), :mod:`plasticore.sim` (cocotb verification of
the generated Verilog), :mod:`plasticore.boards` (FPGA builds).
"""

from .config import ConfigError, CoreConfig, load_config

__all__ = ["ConfigError", "CoreConfig", "load_config"]
__version__ = "0.1.0"
