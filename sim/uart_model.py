"""A cocotb model of the host's end of an 8N1 serial line.

:class:`UartHost` drives the design's ``rx`` pin and decodes its ``tx`` pin. Bits are timed
with :class:`cocotb.triggers.Timer` (one wake-up per bit, not per clock) so that long
transfers stay cheap. The receiver samples in the middle of each bit, like the gateware.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, FallingEdge, Timer


class UartHost:
    """Both directions of the serial line, seen from the host.

    Parameters
    ----------
    rx_pin : handle
        The design's receive input (the model drives it).
    tx_pin : handle
        The design's transmit output (the model decodes it).
    bit_time_ps : int
        One bit, in picoseconds.
    """

    def __init__(self, rx_pin, tx_pin, bit_time_ps: int):
        self.rx_pin = rx_pin
        self.tx_pin = tx_pin
        self.bit_time_ps = int(bit_time_ps)
        self.received: Queue[int] = Queue()
        self.framing_errors = 0
        self.rx_pin.value = 1
        self._monitor = cocotb.start_soon(self._receive())

    async def send(self, data: bytes, gap_bits: int = 0) -> None:
        """Send ``data`` on the line, optionally idling ``gap_bits`` between bytes."""
        for byte in bytes(data):
            for level in [0] + [(byte >> bit) & 1 for bit in range(8)] + [1]:
                self.rx_pin.value = level
                await Timer(self.bit_time_ps, unit="ps")
            if gap_bits:
                await Timer(gap_bits * self.bit_time_ps, unit="ps")

    async def idle(self, bits: int) -> None:
        """Leave the line idle for ``bits`` bit times."""
        self.rx_pin.value = 1
        await Timer(bits * self.bit_time_ps, unit="ps")

    async def _receive(self) -> None:
        half = self.bit_time_ps // 2
        while True:
            await FallingEdge(self.tx_pin)
            await Timer(half, unit="ps")
            if int(self.tx_pin.value) != 0:
                continue                  # a glitch, not a start bit
            byte = 0
            for bit in range(8):
                await Timer(self.bit_time_ps, unit="ps")
                byte |= int(self.tx_pin.value) << bit
            await Timer(self.bit_time_ps, unit="ps")
            if int(self.tx_pin.value) != 1:
                self.framing_errors += 1
                continue
            self.received.put_nowait(byte)

    async def read(self, count: int, timeout_bits: int = 100_000) -> bytes:
        """Return the next ``count`` received bytes; fail after ``timeout_bits`` of silence."""
        from cocotb.triggers import with_timeout
        data = bytearray()
        for _ in range(count):
            data.append(await with_timeout(self.received.get(), timeout_bits * self.bit_time_ps,
                                           "ps"))
        return bytes(data)

    def pending(self) -> bytes:
        """Return (and remove) the bytes received so far without waiting."""
        data = bytearray()
        while not self.received.empty():
            data.append(self.received.get_nowait())
        return bytes(data)


async def start_board(dut, clk_ps: int, divisor: int) -> UartHost:
    """Start the clock of a board top (``clk``, ``rst``, ``rx``, ``tx``), reset it, and
    return the host's end of its serial line (``divisor`` clock cycles per bit)."""
    Clock(dut.clk, clk_ps, unit="ps").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)
    return UartHost(dut.rx, dut.tx, clk_ps * divisor)
