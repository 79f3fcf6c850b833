"""Saturating fixed-point arithmetic, written out because Amaranth assignment truncates."""

from amaranth.hdl import Mux, Value

__all__ = ["saturate", "fits_signed"]


def saturate(value, width: int):
    """Clamp a signed ``value`` to ``signed(width)``.

    Returns
    -------
    (Value, Value)
        The clamped value (exactly representable in ``signed(width)``) and a 1-bit flag that
        is high when clamping changed the value.
    """
    value = Value.cast(value)
    high = (1 << (width - 1)) - 1
    low = -(1 << (width - 1))
    too_high = value > high
    too_low = value < low
    clamped = Mux(too_high, high, Mux(too_low, low, value))
    return clamped.as_signed() if clamped.shape().signed else clamped, too_high | too_low


def fits_signed(value, bits: int):
    """1 when the 32-bit two's complement ``value`` is representable in ``signed(bits)``."""
    value = Value.cast(value).as_signed()
    return (value >= -(1 << (bits - 1))) & (value <= (1 << (bits - 1)) - 1)
