"""8N1 UART receiver and transmitter with :mod:`amaranth.lib.stream` byte interfaces.

Both run from the ``sync`` domain with a fixed integer number of clock cycles per bit,
:func:`cycles_per_bit` of the clock and baud rate.
"""


import operator

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter", "cycles_per_bit", "BaudRateError"]

#: A receiver samples each bit in its middle; a total timing error of a few percent over a
#: 10-bit frame still lands inside the right bit.
MAX_BAUD_ERROR = 0.02


class BaudRateError(ValueError):
    """A baud rate that the clock cannot produce closely enough."""


def cycles_per_bit(clk_frequency: float, baud_rate: float) -> int:
    """Return the clock cycles per UART bit, refusing a baud rate more than 2 % off.

    Parameters
    ----------
    clk_frequency : float
        Clock of the ``sync`` domain, in Hz.
    baud_rate : float
        Bits per second on the wire.
    """
    if baud_rate <= 0 or clk_frequency <= 0:
        raise BaudRateError(f"baud_rate = {baud_rate}, clk_frequency = {clk_frequency}: "
                            "must be positive")
    divisor = round(clk_frequency / baud_rate)
    if divisor < 4:
        raise BaudRateError(f"baud_rate = {baud_rate}: needs at least 4 clock cycles per bit "
                            f"at {clk_frequency / 1e6:g} MHz (at most {clk_frequency / 4:g})")
    error = abs(clk_frequency / divisor - baud_rate) / baud_rate
    if error > MAX_BAUD_ERROR:
        raise BaudRateError(f"baud_rate = {baud_rate}: {clk_frequency / 1e6:g} MHz / "
                            f"{divisor} is {error:.1%} off, the limit is {MAX_BAUD_ERROR:.0%}")
    return divisor


class _BitTimed(wiring.Component):
    """A UART side clocked at ``divisor`` cycles per bit (validated once, for both sides)."""

    def __init__(self, divisor: int):
        self._divisor = operator.index(divisor)
        if self._divisor < 4:
            raise BaudRateError(f"divisor = {divisor}: must be at least 4 cycles per bit")
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor


class UARTReceiver(_BitTimed):
    """Receive 8N1 bytes from the ``rx`` pin.

    A byte whose stop bit is low is discarded (``framing_error`` pulses). ``o_stream``
    holds a byte until it is taken; a byte that arrives before the previous one was taken
    replaces it and ``overrun`` pulses, because a UART cannot hold the sender back.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    rx : In(1)
        The line, idle high; synchronized inside.
    o_stream : Out(stream.Signature(8))
    framing_error, overrun : Out(1)
        One-cycle pulses; ``overrun`` comes from a register, the cycle after the byte
        that replaced the one not taken.
    """

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor

        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(divisor + divisor // 2 + 1))
        bit_index = Signal(range(9))
        shift = Signal(8)

        with m.If(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        # Registered, so that the bit timer's compare reaches no further than it.
        m.d.sync += self.overrun.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    # First sample one and a half bits after the falling edge: the middle
                    # of data bit 0.
                    m.d.sync += [timer.eq(divisor + divisor // 2 - 2), bit_index.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    # LSB first: each bit enters at the top and moves down.
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bit_index.eq(bit_index + 1),
                                 timer.eq(divisor - 1)]
                    with m.If(bit_index == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.d.sync += [self.o_stream.payload.eq(shift), self.o_stream.valid.eq(1)]
                    with m.If(self.o_stream.valid & ~self.o_stream.ready):
                        m.d.sync += self.overrun.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                # Wait for the line to return high before hunting for the next start bit.
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTransmitter(_BitTimed):
    """Send the bytes of ``i_stream`` as 8N1 on the ``tx`` pin.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.
    """

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor

        timer = Signal(range(divisor))
        # Start bit, 8 data bits, stop bit, least significant first.
        frame = Signal(10, init=0x3FF)
        bits_left = Signal(range(11))

        m.d.comb += [self.tx.eq(frame[0]), self.busy.eq(bits_left != 0)]
        m.d.comb += self.i_stream.ready.eq(bits_left == 0)
        with m.If(self.i_stream.valid & self.i_stream.ready):
            m.d.sync += [frame.eq(Cat(Const(0, 1), self.i_stream.payload, Const(1, 1))), bits_left.eq(10),
                         timer.eq(divisor - 1)]
        with m.Elif(bits_left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), bits_left.eq(bits_left - 1),
                             timer.eq(divisor - 1)]
        return m
