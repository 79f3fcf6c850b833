"""The core shell: what every core has around its datapath.

Every core (inference, eRBP, DECOLLE) has the same ports (:func:`core_ports`), the same
constructor contract (the configuration is checked before the component exists), the
same host decoder (region and offset fields, weight-address decode, register writes with
range checks, the one-cycle answer) and the same end-of-tick marker. They live here once;
a core adds only its own regions and registers.

Host access during a tick
    A tick is *open* from the first input event the core accepts until it accepts the
    ``end_of_tick`` marker; after the marker the core does not serve the host at all until
    it has sent its own end of tick. During an open tick a host **read** is answered (it
    sees the state as it is: everything a tick changes is written after the marker, except
    the ``dropped_events`` counter and the sticky flags, which count what the tick has seen
    so far), and a host **write** is refused with ``error`` and changes nothing. So every
    write takes effect between ticks, where the golden model applies it, and nothing the
    tick's arithmetic reads can change in the middle of a tick.
"""

from contextlib import contextmanager

from amaranth.hdl import Assert, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring

from plasticore.config import ConfigError, CoreConfig
from plasticore.layout import REGION_REGISTERS
from .interfaces import HOST_DATA_BITS, core_ports
from .arith import times_constant

__all__ = ["CoreShell", "HostDecoder", "SharedNames", "COUNTER_MAX", "select_constants",
           "weight_word_decoder", "host_read_data", "host_check", "host_checked_writes", "serve_memory",
           "serve_register_write", "answer_host", "send_end_of_tick", "open_tick",
           "count_saturating", "assert_one_owner", "start_pulses"]

#: 32-bit counters (tick, dropped events) stick at this value.
COUNTER_MAX = (1 << 32) - 1
#: The output event tags its layer with 8 bits, 0 meaning "no layer" (end of tick).
MAX_NEURON_LAYERS = 255


class CoreShell(wiring.Component):
    """Base of every core: ports, configuration and memory layout.

    A subclass sets ``layout_class`` and may extend :meth:`check_config`. The check runs
    in ``__new__``: a refused configuration raises before the component exists, so no
    half-built component is left behind to warn that it was never elaborated.

    Parameters
    ----------
    config : CoreConfig
        The network; the core's memory layout follows from it.
    checks : bool
        Add Amaranth ``Assert`` statements for invariants the design relies on (one owner
        per memory port per cycle, saturating arithmetic that never wraps). They fail an
        ``amaranth.sim`` run at the first violation; generated Verilog and bitstreams are
        built without them (the default). Every core's port arbiters
        (:mod:`plasticore.hdl.ports`) check ownership; the inference and eRBP core's
        delivery checks that accumulators never wrap.

    Attributes
    ----------
    i_events : In(stream)
        Input events (:data:`plasticore.hdl.interfaces.INPUT_EVENT`): data, labels of a
        learning core, out-of-range addresses (counted and dropped), ``end_of_tick``.
    o_events : Out(stream)
        Spikes and end-of-tick markers (:func:`plasticore.hdl.interfaces.output_event_layout`).
    host : In(HostSignature)
        Memory-mapped access to weights, neuron state and registers (the layout's map).
    """

    layout_class = None

    def __new__(cls, config: CoreConfig, *args, src_loc_at: int = 0, **kwargs):
        cls.check_config(config)
        return super().__new__(cls, config, *args, src_loc_at=src_loc_at + 1, **kwargs)

    def __init__(self, config: CoreConfig, *, checks: bool = False):
        self._config = config
        self._layout = self.layout_class(config)
        self._checks = bool(checks)
        super().__init__(core_ports(self._layout.address_bits))

    @classmethod
    def check_config(cls, config: CoreConfig) -> None:
        """Raise :class:`ConfigError` if this core cannot be built from ``config``."""
        if len(config.neuron_layers) > MAX_NEURON_LAYERS:
            raise ConfigError("layers", list(config.layers),
                              f"at most {MAX_NEURON_LAYERS} neuron layers "
                              "(the output event's layer tag)")

    @property
    def config(self) -> CoreConfig:
        return self._config

    @property
    def layout(self):
        return self._layout

    @property
    def checks(self) -> bool:
        return self._checks


def assert_one_owner(m: Module, port_name: str, owners) -> None:
    """Assert that at most one of the ``owners`` conditions (the parts that may drive a
    memory port) holds in any cycle.

    Checked in the ``sync`` domain, on the values a clock edge takes: a combinational check
    would also see the simulator's intermediate values within a cycle."""
    owners = list(owners)
    busy = Cat(*owners) if owners else Const(0, 1)
    m.d.sync += Assert((busy & (busy - 1)) == 0,
                       f"{port_name}: driven by more than one owner in one cycle")


class HostDecoder:
    """The host port's cycles: decode (two cycles, see :func:`weight_word_decoder`) and
    access, then answer, then ``ack``.

    Holds the address fields, the registers that carry a decoded access into the answer
    cycle, and the answer's registers: the answer cycle registers the value read (from a
    memory's read data, through the region's multiplexer) and ``error``, and ``ack``
    follows in the next cycle from a register, so that neither the memories' read data
    nor the core's phase decode reach into the host link's logic in a cycle. A core calls
    :meth:`drive` once, outside its phases.

    Parameters
    ----------
    host : the core's host port
    layout : CoreLayout
    register_shape : shape of :attr:`register`, the offset kept for the answer (a register
        number or a small index)
    """

    def __init__(self, host, layout, register_shape):
        self.host = host
        self.region = host.address[layout.offset_bits:layout.offset_bits + layout.region_bits]
        self.offset = host.address[:layout.offset_bits]
        #: The decoded access, for the answer cycle.
        self.decoded_region = Signal(layout.region_bits)
        self.register = Signal(register_shape)
        self.error = Signal()
        #: The answer, registered in the answer cycle and given with ``ack`` in the next.
        self.answer_ack = Signal()
        self.answer_error = Signal()
        self.answer_data = Signal(HOST_DATA_BITS)

    def drive(self, m: Module) -> None:
        """Drive the host port's answer from its registers (``ack`` for one cycle); call
        before the phases, whose answer cycle sets ``answer_ack``."""
        m.d.sync += self.answer_ack.eq(0)
        m.d.comb += [self.host.ack.eq(self.answer_ack), self.host.error.eq(self.answer_error),
                     self.host.read_data.eq(self.answer_data)]

    @contextmanager
    def decode(self, m: Module, tick_is_open, keep=()):
        """The decode cycle: keep the access (and the statements ``keep``) for the answer;
        refuse a write inside an open tick; otherwise switch on the region (the body adds
        one ``m.Case`` per region)."""
        m.d.sync += [
            self.decoded_region.eq(self.region),
            self.register.eq(self.offset),
            self.error.eq(0),
            *keep,
        ]
        with m.If(self.host.write & tick_is_open):
            # Writes wait for the end of the tick (see the module docstring).
            m.d.sync += self.error.eq(1)
        with m.Else():
            with m.Switch(self.region):
                yield

    def answer(self, m: Module, registers, register_values, region_values) -> None:
        """The answer cycle (:func:`answer_host`); ``ack`` follows in the next cycle, in
        which the core's phase must not look at ``strobe`` yet."""
        answer_host(m, self, self.error, self.decoded_region, self.register, registers,
                    register_values, region_values)


class SharedNames:
    """The signals and constants the parts of a core's ``elaborate`` share.

    Each part (a method that adds one piece of the datapath to the module) keeps what it
    defines; a later part takes what it uses. A name that a part defines only for some
    configurations (the eRBP signals, the recurrence) is taken as ``None`` in the others.
    """

    def keep(self, names: dict) -> None:
        """Keep the part's ``locals()`` (but the module, the component and this object)."""
        for name, value in names.items():
            if name not in ("self", "m", "ns"):
                setattr(self, name, value)

    def take(self, *names):
        """Return the values of ``names``, in order."""
        return tuple(getattr(self, name, None) for name in names)


def select_constants(m: Module, index, signals, rows) -> None:
    """Drive ``signals`` from a table of constants, one row per value of ``index``.

    When ``index == k`` each of ``signals`` takes its value in ``rows[k]`` (combinational):
    the constants of the layer (or projection) being worked on.
    """
    with m.Switch(index):
        for key, row in enumerate(rows):
            with m.Case(key):
                m.d.comb += [signal.eq(value) for signal, value in zip(signals, row, strict=True)]


def weight_word_decoder(m: Module, layout, offset, projections=None, *, stages: int = 2):
    """Decode a weight-region offset into a weight memory word, ``stages`` cycles late.

    The offset is ``(row << post_bits) | post`` with ``row`` counting presynaptic rows over
    all projections (:class:`plasticore.layout.CoreLayout`). The decode is registered, so
    that its arithmetic stays off the path into the weight memory's address: in one stage
    (row compares, a multiply by the row length and the adds), or in two (each
    projection's compares and its row offset times the row length as shifts and adds,
    then the word; a multiplier block alone takes 5.4 ns on the ECP5). The host holds its
    address from the cycle it raises ``strobe`` until ``ack``, and a core takes two cycles
    between seeing ``strobe`` and its access (a ``HOST_DECODE`` phase), so the registers
    hold the decode of the address being served.

    Returns
    -------
    word : Signal
        The weight word that holds the weight (registered).
    valid : Signal
        The offset names a weight (its row exists and ``post`` is inside the row's layer;
        registered).
    post : Value
        The postsynaptic index field (its low bits pick the lane).
    """
    assert stages in (1, 2), stages
    if projections is None:
        projections = getattr(layout, "projections", layout.layers)
    row = offset >> layout.post_bits
    post = offset[:layout.post_bits] if layout.post_bits else Const(0, 1)
    word = Signal(range(layout.weight_words + 1))
    valid = Signal()
    lane_bits = getattr(layout, "lane_bits", 0)
    post_word = post >> lane_bits
    if stages == 2:
        post_word = Signal(range(layout.weight_words + 1))
        m.d.sync += post_word.eq(post >> lane_bits)
    m.d.sync += valid.eq(0)     # unless a projection below names the offset
    for index, projection in enumerate(projections):
        named = ((row >= projection.row_base) & (row < projection.row_base + projection.n_pre)
                 & (post < projection.n_post))
        row_offset = row - projection.row_base
        if stages == 2:
            named_held = Signal(name=f"weight_row_named_{index}")
            offset_held = Signal.like(word, name=f"weight_row_offset_{index}")
            m.d.sync += [named_held.eq(named),
                         offset_held.eq(times_constant(row_offset[:len(offset_held)],
                                                       projection.row_words))]
            named, row_offset = named_held, offset_held
        else:
            row_offset = row_offset * projection.row_words
        with m.If(named):
            m.d.sync += [valid.eq(1),
                         word.eq(projection.weight_base + row_offset + post_word)]
    return word, valid, post


def host_read_data(m: Module, reads: dict, registered: bool) -> dict:
    """The data of the host's read accesses (name -> access), for the answer cycle.

    With ``registered`` each is registered as it comes, and the core answers a cycle
    later (a ``HOST_READ`` phase between the access and the answer): a block RAM's read
    data take 6 ns to come out on the ECP5, too late for the answer's multiplexers.
    """
    data = {name: access.data for name, access in reads.items()}
    if registered:
        for name, value in list(data.items()):
            data[name] = Signal.like(value, name=f"host_{name}_held")
            m.d.sync += data[name].eq(value)
    return data


def start_pulses(m: Module, passes: dict) -> dict:
    """A registered start pulse for each pass in ``passes`` (name -> pass with a ``start``
    input); returns name -> pulse.

    A phase that starts a pass sets its pulse (``m.d.sync += pulse.eq(1)``) as the phase is
    entered; the pulse lasts one cycle, the phase's first, so no phase decision reaches into
    a pass's registers in the cycle it is made. In that cycle the pass has not started yet:
    the phase does not look at its ``done``.
    """
    pulses = {}
    for name, part in passes.items():
        pulses[name] = pulse = Signal(name=f"start_{name}")
        m.d.sync += pulse.eq(0)
        m.d.comb += part.start.eq(pulse)
    return pulses


def host_check(m: Module, condition) -> Signal:
    """``condition`` on the host's address or write data, registered for the decode cycle.

    As in :func:`weight_word_decoder`: the host holds its address and data from the cycle
    it raises ``strobe`` until ``ack``, and a core takes at least a cycle between seeing
    ``strobe`` and its decode, so the register holds the check of the access being served,
    and the comparisons stay off the paths into the memories' write enables.
    """
    flag = Signal()
    m.d.sync += flag.eq(condition)
    return flag


def host_checked_writes(m: Module, writes) -> dict:
    """``writes`` (see :func:`serve_register_write`) with each ``fits`` a :func:`host_check`."""
    return {name: (fits if fits is None else host_check(m, fits), statements)
            for name, (fits, statements) in writes.items()}


def serve_memory(m: Module, host, host_error, read_port, write_port, address, valid, fits,
                 data, enable=1) -> None:
    """Serve a host access to a memory (used in the decode cycle).

    Read ``address``; on a write, write ``data`` there when the address is ``valid`` and the
    value ``fits``; otherwise answer ``error`` and change nothing. ``read_port`` is a read
    access (:func:`plasticore.hdl.ports.read_access`): a read claims it; a write answers no
    data and leaves it alone (weights in single-port SPRAM have one address per cycle).
    """
    with m.If(~host.write):
        m.d.comb += [read_port.valid.eq(1), read_port.addr.eq(address)]
    with m.If(~valid):
        m.d.sync += host_error.eq(1)
    with m.Elif(host.write):
        with m.If(fits):
            m.d.comb += [
                write_port.addr.eq(address),
                write_port.data.eq(data),
                write_port.en.eq(enable),
            ]
        with m.Else():
            m.d.sync += host_error.eq(1)


def serve_register_write(m: Module, host, host_error, offset, registers, writes) -> None:
    """Serve a host access to region 0 (used in the decode cycle).

    ``writes`` maps each writable register's name to ``(fits, statements)``: the write is
    done when ``fits`` holds (``None``: any value), else answered with ``error``. An offset
    past the last register, and a write to a register not in ``writes``, answer ``error``.
    """
    with m.If(offset >= len(registers)):
        m.d.sync += host_error.eq(1)
    with m.Elif(host.write):
        for position, (name, (fits, statements)) in enumerate(writes.items()):
            with (m.Elif if position else m.If)(offset == registers[name]):
                if fits is None:
                    m.d.sync += statements
                else:
                    with m.If(fits):
                        m.d.sync += statements
                    with m.Else():
                        m.d.sync += host_error.eq(1)
        with m.Else():
            m.d.sync += host_error.eq(1)


def answer_host(m: Module, decoder, host_error, host_region, host_register, registers,
                register_values, region_values) -> None:
    """Answer the host access decoded in the previous cycle (the answer cycle): register
    the value read and ``error`` in ``decoder``'s answer registers, and ``ack`` for the
    next cycle (:class:`HostDecoder`).

    ``register_values`` lists ``(name, value)`` of the readable registers; ``region_values``
    maps a region number (or a tuple of them) to the value a read there returns. An access
    answered with ``error`` returns 0.
    """
    read_data = Signal(HOST_DATA_BITS)
    with m.Switch(host_region):
        with m.Case(REGION_REGISTERS):
            with m.Switch(host_register):
                for name, value in register_values:
                    with m.Case(registers[name]):
                        m.d.comb += read_data.eq(value)
        for regions, value in region_values.items():
            regions = regions if isinstance(regions, tuple) else (regions,)
            with m.Case(*regions):
                m.d.comb += read_data.eq(value)
    m.d.sync += [decoder.answer_ack.eq(1), decoder.answer_error.eq(host_error),
                 decoder.answer_data.eq(Mux(host_error, 0, read_data))]


def send_end_of_tick(m: Module, o_events):
    """Offer the end-of-tick event (``layer = neuron = 0``); return the handshake's ``ready``."""
    m.d.comb += [
        o_events.valid.eq(1),
        o_events.payload.end_of_tick.eq(1),
        o_events.payload.neuron.eq(0),
        o_events.payload.layer.eq(0),
    ]
    return o_events.ready


def open_tick(m: Module, i_events) -> Signal:
    """Return a register that is set while a tick is open (see the module docstring)."""
    is_open = Signal()
    with m.If(i_events.valid & i_events.ready):
        m.d.sync += is_open.eq(~i_events.payload.end_of_tick)
    return is_open


def count_saturating(counter, maximum=COUNTER_MAX):
    """Return the statement that advances ``counter`` by one, sticking at ``maximum``."""
    return counter.eq(counter + (counter != maximum))
