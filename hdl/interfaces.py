"""The core's interfaces: input and output event streams, and the host port.

Input events (``i_events``, an :mod:`amaranth.lib.stream` of :data:`INPUT_EVENT`)
    ``address`` is an input neuron; ``end_of_tick`` closes the tick (its address is
    ignored). Addresses are 16-bit so that an out-of-range address can be represented,
    counted and dropped.
Output events (``o_events``, a stream of :func:`output_event_layout`)
    One per spike, ``layer`` counting neuron layers from 1, then one with
    ``end_of_tick = 1`` (and ``layer = neuron = 0``) after the last spike of each tick.
    ``tick`` is the tick the event belongs to, modulo ``2**32``.
Host port (:class:`HostSignature`, seen from the host)
    The host holds ``strobe`` with ``address``, ``write`` and ``write_data`` until the core
    answers with ``ack`` for one cycle; on a read ``read_data`` is valid with ``ack``. An
    address that names nothing answers ``ack`` with ``error`` and changes nothing. The core
    serves the host only between events, never in the middle of a tick's work, and refuses
    a write (``error``) while a tick is open (:mod:`plasticore.hdl.shell`). The memory
    map is :class:`plasticore.layout.CoreLayout`.
"""

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["INPUT_EVENT", "ADDRESS_BITS", "TICK_BITS", "LAYER_BITS", "HOST_DATA_BITS",
           "output_event_layout", "input_stream_signature", "output_stream_signature",
           "HostSignature", "core_ports"]

ADDRESS_BITS = 16
TICK_BITS = 32
LAYER_BITS = 8
HOST_DATA_BITS = 32

INPUT_EVENT = data.StructLayout({
    "address": ADDRESS_BITS,
    "end_of_tick": 1,
})


def output_event_layout() -> data.StructLayout:
    """Return the layout of an output event."""
    return data.StructLayout({
        "neuron": ADDRESS_BITS,
        "layer": LAYER_BITS,
        "tick": TICK_BITS,
        "end_of_tick": 1,
    })


def input_stream_signature() -> stream.Signature:
    """Return the signature of the input event stream (seen from the producer)."""
    return stream.Signature(INPUT_EVENT)


def output_stream_signature() -> stream.Signature:
    """Return the signature of the output event stream (seen from the producer)."""
    return stream.Signature(output_event_layout())


class HostSignature(wiring.Signature):
    """A simple memory-mapped port, seen from the host (the initiator).

    The host raises ``strobe`` and holds ``address``, ``write`` and ``write_data`` until the
    cycle in which the core answers with ``ack`` (and ``error``, and ``read_data`` for a
    read). A core may decode the address in the cycle after it sees ``strobe``, so these
    must not change while ``strobe`` is high.

    Parameters
    ----------
    address_bits : int
        Width of a word address (``CoreLayout.address_bits``).
    """

    def __init__(self, address_bits: int):
        self._address_bits = address_bits
        super().__init__({
            "address": Out(address_bits),
            "write": Out(1),
            "write_data": Out(HOST_DATA_BITS),
            "strobe": Out(1),
            "ack": In(1),
            "error": In(1),
            "read_data": In(HOST_DATA_BITS),
        })

    @property
    def address_bits(self) -> int:
        return self._address_bits

    def __eq__(self, other):
        return isinstance(other, HostSignature) and other.address_bits == self.address_bits

    def __repr__(self):
        return f"HostSignature({self.address_bits})"


def core_ports(address_bits: int) -> dict:
    """Return the ports every core has (its component signature members): input events,
    output events and a host port of ``address_bits`` address bits."""
    return {
        "i_events": In(input_stream_signature()),
        "o_events": Out(output_stream_signature()),
        "host": In(HostSignature(address_bits)),
    }
