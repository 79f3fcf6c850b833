"""Pipelined Threefry-2x32: the counter-based random numbers of the learning rules.

The golden counterpart is :func:`plasticore.threefry.threefry2x32`. The key is fixed
when the core is built (it comes from the configuration's seeds), so the key injections
are additions of constants. One draw enters every cycle and leaves ``latency`` cycles
later; the pipeline never stalls, so a caller delays whatever goes with the draw by the
same number of cycles (:func:`delayed`).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Threefry2x32", "delayed"]

_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = 0x1BD11BDA
_MASK = 0xFFFFFFFF


def _rotl(value, amount):
    return Cat(value[32 - amount:], value[:32 - amount])


def delayed(m: Module, value, cycles: int, name: str = "delayed"):
    """Return ``value`` delayed by ``cycles`` registers (``value`` itself for 0)."""
    for stage in range(cycles):
        register = Signal.like(value, name=f"{name}_{stage + 1}")
        m.d.sync += register.eq(value)
        value = register
    return value


class Threefry2x32(wiring.Component):
    """Threefry-2x32 with a build-time key, ``rounds_per_stage`` rounds per pipeline stage.

    Parameters
    ----------
    key : tuple of int
        The two 32-bit key words.
    rounds : int
        Mixing rounds (1 to 32), as in the golden model.
    rounds_per_stage : int
        Rounds between pipeline registers: fewer gives a higher clock, more a shorter
        latency and fewer flip-flops.

    Attributes
    ----------
    counter0, counter1 : In(32)
        The counter of the draw entering this cycle.
    word0, word1 : Out(32)
        The output words of the draw that entered ``latency`` cycles ago.
    latency : int
    """

    def __new__(cls, key, rounds: int = 13, rounds_per_stage: int = 2, *, src_loc_at=0):
        # Refused parameters raise before the component exists: nothing is left behind
        # to warn that it was never elaborated.
        if not 1 <= rounds <= 32:
            raise ValueError(f"rounds = {rounds}: must be between 1 and 32")
        if not 1 <= rounds_per_stage <= rounds:
            raise ValueError(f"rounds_per_stage = {rounds_per_stage}: must be between 1 and "
                             f"rounds ({rounds})")
        return super().__new__(cls, key, rounds, rounds_per_stage, src_loc_at=src_loc_at + 1)

    def __init__(self, key, rounds: int = 13, rounds_per_stage: int = 2):
        key0, key1 = (int(k) & _MASK for k in key)
        self._keys = (key0, key1, key0 ^ key1 ^ _PARITY)
        self._rounds = rounds
        self._rounds_per_stage = rounds_per_stage
        self.latency = -(-rounds // rounds_per_stage)
        super().__init__({
            "counter0": In(32), "counter1": In(32),
            "word0": Out(32), "word1": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        keys = self._keys
        x0 = (self.counter0 + keys[0])[:32]
        x1 = (self.counter1 + keys[1])[:32]
        for round_index in range(self._rounds):
            x0 = (x0 + x1)[:32]
            x1 = _rotl(x1, _ROTATIONS[round_index % 8]) ^ x0
            if round_index % 4 == 3:
                injection = round_index // 4 + 1
                x0 = (x0 + keys[injection % 3])[:32]
                x1 = (x1 + ((keys[(injection + 1) % 3] + injection) & _MASK))[:32]
            if (round_index + 1) % self._rounds_per_stage == 0 or round_index == self._rounds - 1:
                stage = (round_index + self._rounds_per_stage) // self._rounds_per_stage
                r0, r1 = Signal(32, name=f"x0_{stage}"), Signal(32, name=f"x1_{stage}")
                m.d.sync += [r0.eq(x0), r1.eq(x1)]
                x0, x1 = r0, r1
        m.d.comb += [self.word0.eq(x0), self.word1.eq(x1)]
        return m
