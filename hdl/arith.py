"""Saturating fixed-point arithmetic, written out because Amaranth assignment truncates."""

from amaranth.hdl import Const, Mux, Value

__all__ = ["saturate", "saturate_sum", "fits_signed", "times_constant"]


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


def saturate_sum(total, width: int):
    """Clamp ``total``, a sum or difference of two values of ``signed(width)`` at most, to
    ``signed(width)``: as :func:`saturate`, but the range is left exactly when the top two
    of the sum's ``width + 1`` bits differ, one logic level instead of two comparisons.

    Returns
    -------
    (Value, Value)
        The clamped value and the flag that clamping changed it.
    """
    total = Value.cast(total)
    high = (1 << (width - 1)) - 1
    low = -(1 << (width - 1))
    too_high = ~total[width] & total[width - 1]
    too_low = total[width] & ~total[width - 1]
    clamped = Mux(too_high, high, Mux(too_low, low, total[:width].as_signed()))
    return clamped.as_signed(), too_high | too_low


def fits_signed(value, bits: int):
    """1 when the 32-bit two's complement ``value`` is representable in ``signed(bits)``."""
    value = Value.cast(value).as_signed()
    return (value >= -(1 << (bits - 1))) & (value <= (1 << (bits - 1)) - 1)


def times_constant(value, constant: int):
    """``value * constant`` (a non-negative constant) as a tree of shifted additions, one
    term per set bit of the constant: Yosys maps a product to a multiplier block, which on
    the ECP5 takes 5.4 ns on its own."""
    terms = [Value.cast(value) << bit for bit in range(constant.bit_length())
             if (constant >> bit) & 1]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        terms = [sum(terms[index:index + 2]) for index in range(0, len(terms), 2)]
    return terms[0]
