"""The iCE40UP single-port RAM (SB_SPRAM256KA) as a weight memory.

The UP5K has four SPRAM blocks of 16384 x 16 bits, one port each (one address for a read
or a write in a cycle, a write mask of one bit per 4-bit nibble). :class:`SpramGeometry`
lays a weight word of ``lanes`` weights out over them; :class:`SpramBlock` is one block: the
``SB_SPRAM256KA`` primitive when the platform is an iCE40UP, a behavioural single-port
memory otherwise (``amaranth.sim``, cocotb on the generated Verilog, the resource
estimate), so the same design runs everywhere.

Layout of a weight word:

- each weight takes ``lane_bits`` bits, its width rounded up to whole nibbles, so that a
  write of one lane (the host writes one weight at a time) is a write mask, not a
  read-modify-write;
- a block word holds ``slot_lanes = 16 // lane_bits`` such lanes; a weight word of fewer
  lanes is packed ``pack`` words to a block word (a power of two, so the word address
  splits into block address and slot by bits); a word of more lanes spans ``columns``
  blocks side by side;
- a memory deeper than 16384 block words is cascaded over ``rows`` blocks by address.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Instance, Module, Mux, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "SpramGeometry", "SpramBlock", "has_spram"]

#: Words and bits of one SB_SPRAM256KA.
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16


def has_spram(platform) -> bool:
    """True when ``platform`` builds for an iCE40UP device (the only one with SPRAM)."""
    return (platform is not None and getattr(platform, "family", None) == "iCE40"
            and str(getattr(platform, "device", "")).startswith("iCE40UP"))


@dataclass(frozen=True)
class SpramGeometry:
    """How ``depth`` words of ``lanes`` weights of ``weight_bits`` bits sit in SPRAM blocks.

    Parameters
    ----------
    lanes : int
    weight_bits : int
        2 to 16.
    depth : int
        Weight words.
    """

    lanes: int
    weight_bits: int
    depth: int

    @property
    def lane_bits(self) -> int:
        """Bits one weight takes: its width rounded up to whole nibbles (the write mask)."""
        return -(-self.weight_bits // 4) * 4

    @property
    def slot_lanes(self) -> int:
        """Weights in one 16-bit block word."""
        return SPRAM_WIDTH // self.lane_bits

    @property
    def pack(self) -> int:
        """Weight words per block word (a power of two; 1 when a word spans columns)."""
        pack = 1
        while 2 * pack * self.lanes <= self.slot_lanes:
            pack *= 2
        return pack

    @property
    def columns(self) -> int:
        """Blocks side by side that hold one word."""
        return -(-self.lanes // self.slot_lanes)

    @property
    def block_words(self) -> int:
        """Block words used (per column)."""
        return -(-max(1, self.depth) // self.pack)

    @property
    def rows(self) -> int:
        """Blocks cascaded by address."""
        return -(-self.block_words // SPRAM_DEPTH)

    @property
    def blocks(self) -> int:
        """SB_SPRAM256KA blocks needed."""
        return self.rows * self.columns

    def position(self, slot: int, lane: int) -> tuple[int, int]:
        """The column and the bit offset in that column's block word of ``lane`` of the
        word in ``slot``."""
        index = slot * self.lanes + lane
        return index // self.slot_lanes, (index % self.slot_lanes) * self.lane_bits


class SpramBlock(wiring.Component):
    """One single-port 16384 x 16 block: SB_SPRAM256KA on an iCE40UP, a model elsewhere.

    The port follows the primitive: with ``select`` high, ``write`` high writes the
    nibbles of ``data_in`` that ``mask`` enables at ``addr``, ``write`` low reads ``addr``
    into ``data_out`` at the clock edge; with ``select`` low, ``data_out`` holds. After a
    write ``data_out`` is undefined on the device (the model holds it): a user must not
    read in the cycle it writes.

    Parameters
    ----------
    depth : int
        Words the model holds (at most :data:`SPRAM_DEPTH`; the primitive always has all).

    Attributes
    ----------
    addr : In(14)
    data_in : In(16)
    mask : In(4)
    write : In(1)
    select : In(1)
    data_out : Out(16)
    """

    def __new__(cls, depth: int = SPRAM_DEPTH, *, src_loc_at: int = 0):
        # Refused before the component exists (nothing left unelaborated).
        if not 1 <= depth <= SPRAM_DEPTH:
            raise ValueError(f"depth = {depth}: must be between 1 and {SPRAM_DEPTH}")
        return super().__new__(cls, src_loc_at=src_loc_at + 1)

    def __init__(self, depth: int = SPRAM_DEPTH):
        self._depth = depth
        super().__init__({
            "addr": In(unsigned(14)), "data_in": In(SPRAM_WIDTH), "mask": In(4),
            "write": In(1), "select": In(1), "data_out": Out(SPRAM_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        if has_spram(platform):
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr, i_DATAIN=self.data_in, i_MASKWREN=self.mask,
                i_WREN=self.write, i_CHIPSELECT=self.select, i_CLOCK=ClockSignal("sync"),
                i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                o_DATAOUT=self.data_out)
            return m
        m.submodules.memory = memory = Memory(shape=SPRAM_WIDTH, depth=self._depth, init=[])
        write = memory.write_port(granularity=4)
        read = memory.read_port()
        # One address for both: this is a single-port memory.
        addr = self.addr[:max(1, (self._depth - 1).bit_length())] if self._depth > 1 else 0
        m.d.comb += [
            write.addr.eq(addr), write.data.eq(self.data_in),
            write.en.eq(Mux(self.select & self.write, self.mask, 0)),
            read.addr.eq(addr), read.en.eq(self.select & ~self.write),
            self.data_out.eq(read.data),
        ]
        return m
