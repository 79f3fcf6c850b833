"""Recurrent projections: a layer's spikes kept until the end of the tick.

The golden model (:mod:`plasticore.golden.lif`, step 3) delivers the spikes of a tick along
each recurrent projection after the last layer's update, into accumulators that the next
tick starts from. The core keeps each recurrent source layer's spikes in a
:class:`SpikeList` while the layer is updated, and replays the list through the row walker
once per recurrent projection from that layer.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SpikeList"]


class SpikeList(wiring.Component):
    """The spiking neurons of one layer in one tick, in the order they were written.

    Written while the layer is updated (ascending neuron order), read back from the start
    as often as needed. Its memory has this one owner.

    Parameters
    ----------
    size : int
        Neurons in the layer (the most spikes a tick can hold).

    Attributes
    ----------
    w_en, w_data : In
        Append ``w_data`` (a neuron index).
    clear : In(1)
        Empty the list (the end of a tick); wins over ``w_en``.
    rewind : In(1)
        Present entry 0 from the next cycle on.
    take : In(1)
        The presented entry is used: present the next one from the next cycle on.
    valid, data : Out
        An entry is presented, and its neuron index. ``data`` is read one cycle after the
        address, so an entry written in the same cycle as a ``rewind`` is not seen until
        the next ``rewind``: rewind after the last write.
    """

    def __init__(self, size: int):
        self._size = size
        bits = max(1, (size - 1).bit_length())
        super().__init__({
            "w_en": In(1), "w_data": In(unsigned(bits)), "clear": In(1),
            "rewind": In(1), "take": In(1),
            "valid": Out(1), "data": Out(unsigned(bits)),
        })

    @property
    def size(self) -> int:
        return self._size

    def elaborate(self, platform):
        m = Module()
        size = self._size
        m.submodules.entries = entries = Memory(shape=self.data.shape(), depth=size, init=[])
        entries_wr = entries.write_port()
        entries_rd = entries.read_port()
        count = Signal(range(size + 1))
        position = Signal(range(size + 1))
        next_position = Signal(range(size + 1))
        m.d.comb += next_position.eq(Mux(self.rewind, 0, position + self.take))
        m.d.sync += position.eq(next_position)
        m.d.comb += [
            # Past the last entry nothing is presented: the address stays inside the memory.
            entries_rd.addr.eq(next_position),
            entries_rd.en.eq(next_position < size),
            self.valid.eq(position < count),
            self.data.eq(entries_rd.data),
        ]
        with m.If(self.clear):
            m.d.sync += count.eq(0)
        with m.Elif(self.w_en & (count < size)):
            m.d.comb += [
                entries_wr.addr.eq(count),
                entries_wr.data.eq(self.w_data),
                entries_wr.en.eq(1),
            ]
            m.d.sync += count.eq(count + 1)
        return m
