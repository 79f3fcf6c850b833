"""Board tops: clock, reset, serial pins and status LEDs around :class:`LinkTop`.

Clock
    The board oscillator drives the ``sync`` domain directly, or through the device PLL
    (iCE40 ``SB_PLL40_PAD``, ECP5 ``EHXPLLL``) when the board's ``clock_hz`` differs from
    its input clock. The PLL output gets its own clock constraint, so nextpnr's Fmax report
    is checked against the clock the design really runs at.
Reset
    Held for about 10 us after configuration (iCE40 block RAMs read as zero for ~3 us after
    configuration) and while the PLL is not locked; released synchronously.
LEDs
    heartbeat (about 1 Hz, proves the clock runs), busy (a frame in progress), error (the
    last reply was not OK), events lost (output buffer overflowed since the last read).
"""

from __future__ import annotations

import math

from amaranth.hdl import ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from plasticore.hdl.host_link import LinkTop

from .platforms import BoardSpec

__all__ = ["BoardTop", "ice40_pll_params", "ecp5_pll_params"]


#: A PLL setting further than this from the requested clock is refused.
PLL_TOLERANCE = 0.01


def _closest(family, best, input_hz, output_hz):
    if best is None or best[0] > PLL_TOLERANCE * output_hz:
        nearest = "" if best is None else \
            f" (nearest: {best[1]['frequency'] / 1e6:.4g} MHz)"
        raise ValueError(f"no {family} PLL setting makes {output_hz / 1e6:g} MHz from "
                         f"{input_hz / 1e6:g} MHz within {PLL_TOLERANCE:.0%}{nearest}")
    return best[1]


def ice40_pll_params(input_hz: float, output_hz: float) -> dict:
    """Return SB_PLL40 dividers closest to ``output_hz`` (the search icepll does).

    f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ), with the phase detector input
    f_in / (DIVR + 1) in 10-133 MHz and the VCO f_in * (DIVF + 1) / (DIVR + 1) in 533-1066 MHz.
    """
    best = None
    for divr in range(16):
        pfd = input_hz / (divr + 1)
        if not 10e6 <= pfd <= 133e6:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not 533e6 <= vco <= 1066e6:
                continue
            for divq in range(1, 7):
                out = vco / 2 ** divq
                error = abs(out - output_hz)
                if best is None or error < best[0]:
                    filter_range = next(i for i, limit in enumerate(
                        (17e6, 26e6, 44e6, 66e6, 101e6, 133e6)) if pfd < limit) + 1
                    best = (error, dict(DIVR=divr, DIVF=divf, DIVQ=divq,
                                        FILTER_RANGE=filter_range, frequency=out))
    return _closest("iCE40", best, input_hz, output_hz)


def ecp5_pll_params(input_hz: float, output_hz: float) -> dict:
    """Return EHXPLLL dividers closest to ``output_hz`` (the search ecppll does).

    VCO = f_in / CLKI_DIV * CLKFB_DIV * CLKOP_DIV in 400-800 MHz, f_out = VCO / CLKOP_DIV.
    """
    best = None
    for clki in range(1, 129):
        pfd = input_hz / clki
        if not 3.125e6 <= pfd <= 400e6:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            if out > 400e6:
                break
            # The VCO nearest the middle of its 400-800 MHz range.
            clkop = min(128, max(1, round(600e6 / out)))
            vco = out * clkop
            if 400e6 <= vco <= 800e6:
                error = abs(out - output_hz)
                if best is None or error < best[0]:
                    best = (error, dict(CLKI_DIV=clki, CLKFB_DIV=clkfb, CLKOP_DIV=clkop,
                                        CLKOP_CPHASE=clkop - 1, frequency=out))
    return _closest("ECP5", best, input_hz, output_hz)


def board_pll(board: BoardSpec, clock_hz: float | None = None) -> dict | None:
    """The PLL settings that make ``clock_hz`` (default: the board's design clock) from the
    board's oscillator, or None when the oscillator is the clock.

    Raises
    ------
    ValueError
        The PLL cannot make a clock close enough to ``clock_hz``.
    """
    clock_hz = clock_hz or board.clock_hz
    if clock_hz == board.input_clock_hz:
        return None
    settings = ice40_pll_params if board.family == "ice40" else ecp5_pll_params
    return settings(board.input_clock_hz, clock_hz)


class BoardTop(Elaboratable):
    """The top of a board build: one :class:`LinkTop` wired to the board's pins.

    Parameters
    ----------
    config : CoreConfig
    board : BoardSpec
    baud_rate : int, optional
        Defaults to the board's.
    clock_hz : float, optional
        Design clock; defaults to the board's. A clock other than the oscillator's is made
        by the PLL (the nearest frequency it can make).
    core_factory : callable, optional
        Passed to :class:`LinkTop` (tests and the placeholder core).
    """

    def __new__(cls, config, board: BoardSpec, *, clock_hz: float | None = None, **kwargs):
        # A clock the PLL cannot make is refused before the top exists, so that no
        # never-elaborated top is left behind.
        board_pll(board, clock_hz)
        return super().__new__(cls)

    def __init__(self, config, board: BoardSpec, *, baud_rate: int | None = None,
                 clock_hz: float | None = None, core_factory=None):
        self.config = config
        self.board = board
        self.baud_rate = baud_rate or board.baud_rate
        self.core_factory = core_factory
        self.pll = board_pll(board, clock_hz)
        self.clock_hz = self.pll["frequency"] if self.pll else board.clock_hz

    def _clock(self, m, platform):
        """Drive ``sync`` from the board clock or its PLL; return the not-locked signal."""
        board = self.board
        resource = platform.default_clk
        m.domains.sync = sync = ClockDomain("sync")
        if self.pll is None:
            m.submodules.clk_buffer = clk = io.Buffer("i", platform.request(resource, 0, dir="-"))
            m.d.comb += ClockSignal("sync").eq(clk.i)
            return Const(0, 1)
        # The PLL drives the domain's clock net itself, so that the constraint below lands on
        # a net that survives synthesis under this name.
        pll_clock = sync.clk
        locked = Signal()
        params = self.pll
        if board.family == "ice40":
            pad = platform.request(resource, 0, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
                p_DIVR=params["DIVR"], p_DIVF=params["DIVF"], p_DIVQ=params["DIVQ"],
                p_FILTER_RANGE=params["FILTER_RANGE"],
                i_PACKAGEPIN=pad.io, i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=pll_clock, o_LOCK=locked)
        else:
            m.submodules.clk_buffer = clk = io.Buffer("i", platform.request(resource, 0, dir="-"))
            m.submodules.pll = Instance(
                "EHXPLLL",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=params["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_DIV=params["CLKOP_DIV"], p_CLKOP_CPHASE=params["CLKOP_CPHASE"],
                p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=params["CLKFB_DIV"],
                i_CLKI=clk.i, i_CLKFB=pll_clock, i_RST=Const(0), i_STDBY=Const(0),
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(0),
                i_PHASESTEP=Const(0), i_PHASELOADREG=Const(0), i_PLLWAKESYNC=Const(0),
                i_ENCLKOP=Const(0), o_CLKOP=pll_clock, o_LOCK=locked,
                a_FREQUENCY_PIN_CLKI=f"{board.input_clock_hz / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{self.clock_hz / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2")
        platform.add_clock_constraint(pll_clock, self.clock_hz)
        return ~locked

    def elaborate(self, platform):
        m = Module()
        not_locked = self._clock(m, platform)

        # Power-on reset, counted in a domain that is never reset itself.
        m.domains.por = ClockDomain("por", reset_less=True)
        m.d.comb += ClockSignal("por").eq(ClockSignal("sync"))
        por_cycles = max(16, math.ceil(self.clock_hz * 10e-6))
        por_count = Signal(range(por_cycles + 1))
        por_done = Signal()
        m.d.comb += por_done.eq(por_count == por_cycles)
        with m.If(~por_done):
            m.d.por += por_count.eq(por_count + 1)
        m.submodules.reset_sync = ResetSynchronizer(~por_done | not_locked, domain="sync")

        link = LinkTop(self.config, clk_frequency=self.clock_hz, baud_rate=self.baud_rate,
                       event_buffer_depth=self.board.event_buffer_depth,
                       core_factory=self.core_factory)
        m.submodules.link = link
        # Every subsignal raw: some boards' UART resource also carries RTS/DTR (unused here).
        uart_resource = platform.lookup("uart", 0)
        uart = platform.request("uart", 0, dir={io_.name: "-" for io_ in uart_resource.ios})
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]

        heartbeat = Signal()
        half_second = Signal(range(max(2, int(self.clock_hz // 2))))
        with m.If(half_second == int(self.clock_hz // 2) - 1):
            m.d.sync += [half_second.eq(0), heartbeat.eq(~heartbeat)]
        with m.Else():
            m.d.sync += half_second.eq(half_second + 1)
        self._leds(m, platform, [heartbeat, link.busy, link.error, link.spikes_lost])
        return m

    def _leds(self, m, platform, status):
        heartbeat, busy, error, lost = status

        def drive(name, port, signal):
            buffer = io.Buffer("o", port)
            m.submodules[name] = buffer
            m.d.comb += buffer.o.eq(signal)

        if self.board.name == "orangecrab":
            rgb = platform.request("rgb_led", 0, dir={"r": "-", "g": "-", "b": "-"})
            drive("led_green", rgb.g, heartbeat & ~busy)
            drive("led_blue", rgb.b, busy)
            drive("led_red", rgb.r, error | lost)
        elif self.board.name == "icebreaker":
            # Two LEDs: green blinks (and goes dark while busy), red shows any trouble.
            drive("led_green", platform.request("led_g", 0, dir="-"), heartbeat & ~busy)
            drive("led_red", platform.request("led_r", 0, dir="-"), error | lost)
        else:
            for index, signal in enumerate(status):
                drive(f"led_{index}", platform.request("led", index, dir="-"), signal)
