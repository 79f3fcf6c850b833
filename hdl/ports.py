"""Memory access signatures and the arbiters that share one memory port between parts.

A part of a core that reads or writes a memory it does not own alone (the accumulators are
used by delivery, the update pass, the eRBP passes and the reset clear; the neuron state
by the update pass and the host) has a :func:`read_access` or :func:`write_access` member.
An arbiter (:class:`ReadArbiter`, :class:`WriteArbiter`) connects the accesses of all its
parts to the memory's one port, so every memory port has exactly one driver, and the
question "who owns this port in this cycle" has an answer in one place.

The sequencer of a core runs one part at a time on a port; the arbiter does not schedule.
An access that does not claim the port (a read by ``valid``, a write by any bit of ``en``)
drives zeros, so the arbiter is an OR of the accesses, no wider than the multiplexer the
parts would need anyway; with ``checks = True`` it asserts that at most one access claims
the port in any cycle, and that the others are quiet.
"""

from functools import reduce

from amaranth.hdl import Assert, Cat, Const, Module, Value, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .shell import assert_one_owner

__all__ = ["NO_COLLISION_LOGIC", "UncollidedReadPort", "read_access", "write_access", "ReadArbiter", "WriteArbiter",
           "access_for", "share_port"]

#: Attributes for a memory whose read ports are not transparent and never read a word in
#: the cycle it is written (or do not use what such a read returns). Yosys then adds no
#: logic to return the old word on such a collision: the iCE40's block RAM does not do
#: that by itself, and the address compare and bypass multiplexer sit on the
#: memory's paths. The parts that use such a memory state in their docstrings why no read
#: meets a write.
NO_COLLISION_LOGIC = {"no_rw_check": 1}


class UncollidedReadPort(wiring.Component):
    """A synchronous read port, not transparent, of a memory that has
    ``attrs=NO_COLLISION_LOGIC``: a combinational read port and a data register with the
    port's enable.

    It reads as :meth:`Memory.read_port` does (the word before any write of the same cycle).
    Yosys only takes the attribute into account where it folds a register into a read
    port, so that is how the port is built: then the block RAM's own read register is the
    data register, and nothing compares addresses for a collision.

    Parameters
    ----------
    memory : amaranth.lib.memory.Memory
    write : the memory's write port, for ``checks``
    name : str
        The memory's name in the check's message.
    checks : bool
        Assert that no claimed read has the address of a write in the same cycle (the
        synthesized memory would return an undefined word there).

    Members
    -------
    addr, en, data
        As a memory read port's.
    valid : In(1)
        Some part claims the read (:class:`ReadArbiter` drives it); only the check uses it.
    """

    def __init__(self, memory, write=None, *, checks: bool = False, name: str = "memory"):
        self._port = memory.read_port(domain="comb")
        self._write, self._checks, self._name = write, checks, name
        super().__init__(wiring.Signature({
            "addr": In(ceil_log2(memory.depth)), "en": In(1, init=1), "valid": In(1),
            "data": Out(memory.shape)}))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self._port.addr.eq(self.addr)
        with m.If(self.en):
            m.d.sync += self.data.eq(self._port.data)
        if self._checks and self._write is not None:
            write = self._write
            # On the values a clock edge takes, as assert_one_owner does.
            m.d.sync += Assert(~(self.valid & self.en & write.en.any()
                                 & (self.addr == write.addr)),
                               f"{self._name}: a read meets a write of its word in one cycle")
        return m


def read_access(addr_bits: int, data_shape) -> wiring.Signature:
    """The signature of a read access, from the reading part's side.

    Members
    -------
    valid : Out(1)
        The part uses the port in this cycle (its ``addr`` is presented).
    addr : Out(addr_bits)
        Zero while ``valid`` is low: the arbiter merges the accesses by OR.
    en : Out(1, init=1)
        Low: the port keeps its last data (a stalled pipeline). Any part may hold it low.
    data : In(data_shape)
        The word read at the address of the previous cycle.
    """
    return wiring.Signature({
        "valid": Out(1),
        "addr": Out(unsigned(addr_bits)),
        "en": Out(1, init=1),
        "data": In(data_shape),
    })


def write_access(addr_bits: int, data_shape, lanes: int = 1) -> wiring.Signature:
    """The signature of a write access, from the writing part's side.

    Members
    -------
    addr : Out(addr_bits)
    data : Out(data_shape)
        Both zero while ``en`` is: the arbiter merges the accesses by OR.
    en : Out(lanes)
        One bit per lane (the port's granularity); the part writes in a cycle where any bit
        is set.
    """
    return wiring.Signature({
        "addr": Out(unsigned(addr_bits)),
        "data": Out(data_shape),
        "en": Out(lanes),
    })


def _merge(accesses, field, width):
    """OR of every access's ``field``: an access that does not claim the port drives zero
    (the contract of :func:`read_access` and :func:`write_access`), so the OR is the
    claiming one's value and no multiplexer is needed."""
    return reduce(lambda a, b: a | b,
                  (Value.cast(getattr(access, field)).as_unsigned() for access in accesses),
                  Const(0, width))


def _assert_quiet(m: Module, name: str, access, claims, fields) -> None:
    """Assert the contract: an access that does not claim the port drives only zeros."""
    quiet = Cat(*(getattr(access, field) for field in fields)) == 0
    m.d.sync += Assert(claims | quiet,
                       f"{name}: an access drives the port without claiming it")


class ReadArbiter(wiring.Component):
    """Connect ``count`` read accesses to one memory read port.

    Parameters
    ----------
    port : a memory read port (``addr``, ``en``, ``data``)
    count : int
        How many parts read the port.
    name : str
        The port's name in assertion messages.
    checks : bool
        Assert that at most one access is ``valid`` in a cycle.

    Attributes
    ----------
    requests : In(read_access).array(count)
        One access per part; ``requests[i].data`` is the port's data for every part.
    """

    def __init__(self, port, count: int, *, name: str, checks: bool = False):
        self._port, self._name, self._checks = port, name, checks
        access = read_access(len(port.addr), port.data.shape())
        super().__init__({"requests": In(access).array(count)})

    def elaborate(self, platform):
        m = Module()
        port, requests = self._port, self.requests
        claims = [request.valid for request in requests]
        m.d.comb += [
            port.addr.eq(_merge(requests, "addr", len(port.addr))),
            # A stalled reader keeps the data for everyone: only one part runs at a time.
            port.en.eq(Cat(*(request.en for request in requests)).all()),
        ]
        for request in requests:
            m.d.comb += request.data.eq(port.data)
        if "valid" in port.signature.members:
            # A single-port memory checks that no read is claimed in a cycle it writes.
            m.d.comb += port.valid.eq(Cat(*claims).any())
        if self._checks:
            assert_one_owner(m, self._name, claims)
            for request in requests:
                _assert_quiet(m, self._name, request, request.valid, ("addr",))
        return m


class WriteArbiter(wiring.Component):
    """Connect ``count`` write accesses to one memory write port.

    Parameters
    ----------
    port : a memory write port (``addr``, ``data``, ``en``)
    count : int
    name : str
    checks : bool
        Assert that at most one access writes in a cycle.

    Attributes
    ----------
    requests : In(write_access).array(count)
    """

    def __init__(self, port, count: int, *, name: str, checks: bool = False):
        self._port, self._name, self._checks = port, name, checks
        access = write_access(len(port.addr), port.data.shape(), len(port.en))
        super().__init__({"requests": In(access).array(count)})

    def elaborate(self, platform):
        m = Module()
        port, requests = self._port, self.requests
        claims = [request.en.any() for request in requests]
        m.d.comb += [
            port.addr.eq(_merge(requests, "addr", len(port.addr))),
            port.data.eq(_merge(requests, "data", len(Value.cast(port.data)))),
            port.en.eq(reduce(lambda a, b: a | b, (request.en for request in requests))),
        ]
        if self._checks:
            assert_one_owner(m, self._name, claims)
            for request, claim in zip(requests, claims):
                _assert_quiet(m, self._name, request, claim, ("addr", "data"))
        return m


def _is_write_port(port) -> bool:
    """A write port's data flows the way its address does; a read port's the other way."""
    members = port.signature.members
    return members["data"].flow == members["addr"].flow


def access_for(port, *, path: str):
    """A read or write access (by the kind of ``port``) shaped for ``port``, for a part
    that is not a component of its own (the host decoder, a sequencer phase)."""
    if _is_write_port(port):
        signature = write_access(len(port.addr), port.data.shape(), len(port.en))
    else:
        signature = read_access(len(port.addr), port.data.shape())
    return signature.create(path=(path,))


def share_port(m: Module, name: str, port, accesses, *, checks: bool = False) -> None:
    """Connect ``accesses`` (read or write, by the kind of ``port``) to ``port`` through an
    arbiter added to ``m`` as ``<name>_arbiter``."""
    arbiter_class = WriteArbiter if _is_write_port(port) else ReadArbiter
    arbiter = arbiter_class(port, len(accesses), name=name, checks=checks)
    m.submodules[name.replace(" ", "_") + "_arbiter"] = arbiter
    for access, request in zip(accesses, arbiter.requests):
        wiring.connect(m, access, request)
