"""A population's update pass: one LIF neuron per cycle, its spikes out as a stream.

The pass is the hardware of step 2b of a tick (:func:`plasticore.golden.lif.lif_update`)
for one layer. It owns no memory: the membrane, refractory and accumulator memories are
shared with delivery and the host, so the pass reaches them through read and write
accesses (:mod:`plasticore.hdl.ports`).
"""

from amaranth.hdl import Const, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .neuron import LifFire, LifIntegrate, raw_shape
from .ports import read_access, write_access
from .projection import registered_reads
from .synapse import accumulator_word_layout

__all__ = ["UpdatePass"]


class UpdatePass(wiring.Component):
    """Update the neurons of one layer, one per cycle, in four stages (five with
    registered reads).

    U1 issues the reads of neuron ``index``; U2 has its words on the read ports and forms
    the raw sum (:class:`LifIntegrate`); U3 has the raw sum in a register and fires
    (:class:`LifFire`); U4 has the new state and the spike in registers, writes the neuron
    back, clears its accumulator lane and offers its spike. With registered reads
    (:func:`~plasticore.hdl.projection.registered_reads`: the weights are in block RAM)
    U2 only registers the words, and the raw sum is formed a cycle later. A spike that is
    not taken stalls every stage (the read ports hold their data while ``en`` is low).

    Parameters
    ----------
    config, layout : CoreConfig, CoreLayout

    Attributes
    ----------
    start : In(1)
        Begin at neuron 0 (a pulse, before ``enable``).
    enable : In(1)
        The sequencer runs the pass.
    n_post, state_base, acc_base : In
        The layer's size, first state word and first accumulator word.
    busy : Out(1)
        A neuron is issued or in flight: the pass is done when ``enable`` and not ``busy``.
    spikes : Out(stream of neuron indices)
        The spikes, in ascending neuron order; a spike is committed when it is taken.
    saturated : Out(1)
        A membrane was clamped in this cycle.
    membrane_read, refractory_read, acc_read : Out(read_access)
    membrane_write, refractory_write, acc_write : Out(write_access)
    """

    def __init__(self, config, layout):
        self._config, self._layout = config, layout
        max_post = max(config.neuron_layers)
        state_bits = max(0, ceil_log2(layout.state_words))
        acc_bits = max(0, ceil_log2(layout.accumulator_words))
        membrane, refractory = signed(config.membrane_bits), unsigned(config.refractory_bits)
        acc_word = accumulator_word_layout(config)
        super().__init__({
            "start": In(1), "enable": In(1),
            "n_post": In(range(max_post + 1)),
            "state_base": In(range(layout.state_words + 1)),
            "acc_base": In(range(layout.accumulator_words + 1)),
            "busy": Out(1),
            "spikes": Out(stream.Signature(range(max_post))),
            "saturated": Out(1),
            "membrane_read": Out(read_access(state_bits, membrane)),
            "refractory_read": Out(read_access(state_bits, refractory)),
            "acc_read": Out(read_access(acc_bits, acc_word)),
            "membrane_write": Out(write_access(state_bits, membrane)),
            "refractory_write": Out(write_access(state_bits, refractory)),
            "acc_write": Out(write_access(acc_bits, acc_word, config.lanes)),
        })

    def elaborate(self, platform):
        config, lanes, lane_bits = self._config, self._config.lanes, self._layout.lane_bits
        max_post = max(config.neuron_layers)
        m = Module()
        m.submodules.integrate = integrate = LifIntegrate(config)
        m.submodules.fire = fire = LifFire(config)
        index = Signal(range(max_post + 1))   # next neuron to issue
        issue = Signal()
        u2_valid = Signal()
        u2_index = Signal(range(max_post))
        u2_lane = Signal(max(1, lane_bits))
        u3_valid = Signal()
        u3_index = Signal(range(max_post))
        u3_membrane = Signal(signed(config.membrane_bits))
        u3_refractory = Signal(unsigned(config.refractory_bits))
        u3_raw = Signal(raw_shape(config))
        # U4: the threshold's compare ends in registers, not in the spike's consumers.
        u4_valid, u4_spike, u4_saturated = Signal(), Signal(), Signal()
        u4_index = Signal(range(max_post))
        u4_membrane = Signal(signed(config.membrane_bits))
        u4_refractory = Signal(unsigned(config.refractory_bits))
        stall = Signal()
        reads = (self.acc_read, self.membrane_read, self.refractory_read)
        # The layer's last neuron has been issued: a register, so that the reads are
        # claimed only for neurons issued (a read past the layer may alias a neuron being
        # written back) without a compare in front of their addresses.
        all_issued = Signal()

        # With registered reads (registered_reads) the read data are registered as they
        # come (a block RAM's read data take 6 ns to come out on the ECP5), in a stage
        # between U2 and U3: `read_*` below.
        read_valid, read_index = u2_valid, u2_index
        read_membrane = self.membrane_read.data
        read_refractory = self.refractory_read.data
        read_acc = self.acc_read.data[u2_lane] if lanes > 1 else self.acc_read.data[0]
        held, sources = [], []
        if registered_reads(config):
            held = [Signal.like(value, name=f"held_{name}") for name, value in (
                ("valid", read_valid), ("index", read_index), ("membrane", read_membrane),
                ("refractory", read_refractory), ("acc", read_acc))]
            sources = (read_valid, read_index, read_membrane, read_refractory, read_acc)
            read_valid, read_index, read_membrane, read_refractory, read_acc = held
        m.d.comb += [
            integrate.membrane.eq(read_membrane),
            integrate.accumulator.eq(read_acc),
            fire.membrane.eq(u3_membrane),
            fire.refractory.eq(u3_refractory),
            fire.raw.eq(u3_raw),
            self.spikes.valid.eq(u4_valid & u4_spike),
            self.spikes.payload.eq(u4_index),
            stall.eq(self.spikes.valid & ~self.spikes.ready),
            issue.eq(self.enable & ~all_issued),
            self.busy.eq(issue | u2_valid | read_valid | u3_valid | u4_valid),
        ]
        # A stalled pass keeps its read data: the ports only latch when the pass advances.
        for port in reads:
            m.d.comb += port.en.eq(~stall)
        with m.If(self.start):
            m.d.sync += [index.eq(0), all_issued.eq(0)]
        with m.If(issue):
            m.d.comb += [port.valid.eq(1) for port in reads]
            m.d.comb += [
                self.membrane_read.addr.eq(self.state_base + index),
                self.refractory_read.addr.eq(self.state_base + index),
                self.acc_read.addr.eq(self.acc_base + (index >> lane_bits)),
            ]
        with m.If(self.enable):
            with m.If(~stall):
                m.d.sync += [
                    u2_valid.eq(issue), u2_index.eq(index),
                    u2_lane.eq(index if lanes > 1 else 0),
                    *(register.eq(source) for register, source in zip(held, sources)),
                    u3_valid.eq(read_valid), u3_index.eq(read_index),
                    u3_membrane.eq(read_membrane),
                    u3_refractory.eq(read_refractory),
                    u3_raw.eq(integrate.raw),
                    u4_valid.eq(u3_valid), u4_index.eq(u3_index),
                    u4_spike.eq(fire.spike), u4_saturated.eq(fire.saturated),
                    u4_membrane.eq(fire.new_membrane), u4_refractory.eq(fire.new_refractory),
                ]
                with m.If(issue):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == self.n_post - 1):
                        m.d.sync += all_issued.eq(1)

        with m.If(u4_valid & ~stall):           # U4 writes its neuron back
            state_addr = self.state_base + u4_index
            m.d.comb += [
                self.membrane_write.addr.eq(state_addr),
                self.membrane_write.data.eq(u4_membrane),
                self.membrane_write.en.eq(1),
                self.refractory_write.addr.eq(state_addr),
                self.refractory_write.data.eq(u4_refractory),
                self.refractory_write.en.eq(1),
                # Clear this neuron's accumulator lane for the next tick (the lane is read
                # once per tick, so the clear never races a read of it).
                self.acc_write.addr.eq(self.acc_base + (u4_index >> lane_bits)),
                self.acc_write.en.eq(Const(1, lanes) << u4_index[:lane_bits] if lanes > 1
                                     else 1),
                self.saturated.eq(u4_saturated),
            ]
        return m
