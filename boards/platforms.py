"""The boards plasticore builds for: platform, clock, pins and the device's resources.

Each :class:`BoardSpec` wraps an amaranth-boards platform. The serial link uses the board's
USB-serial bridge where it has one (iCEBreaker, ULX3S); the OrangeCrab has none, so its
UART is put on the Feather header pins ``0`` (RX, into the FPGA) and ``1`` (TX), for a
3.3 V USB-serial adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BoardSpec", "BOARDS", "get_board", "BoardError"]


class BoardError(ValueError):
    """An unknown board name, or a board that cannot host a configuration."""


@dataclass(frozen=True)
class BoardSpec:
    """What plasticore needs to know about one board.

    Attributes
    ----------
    name : str
        As given to ``plasticore build --board``.
    title : str
    family : {"ice40", "ecp5"}
    device : str
    input_clock_hz : float
        The oscillator on the board.
    clock_hz : float
        The clock the design runs at (through a PLL when it differs from the input).
    resources : dict
        Resources of the device (datasheet counts): ``LUT`` (iCE40 logic cells or ECP5
        LUT4s), ``FF``, ``BRAM`` (iCE40 4 kbit EBR, ECP5 18 kbit DP16KD), ``SPRAM``
        (iCE40UP 256 kbit single-port blocks), ``DSP``.
    led_names : tuple
        Status outputs in order: heartbeat, busy, error, events lost (fewer on boards with
        fewer LEDs; see :class:`plasticore.boards.top.BoardTop`).
    baud_rate : int
        Default serial speed.
    event_buffer_depth : int
        Output events buffered by the host link.
    """

    name: str
    title: str
    family: str
    device: str
    input_clock_hz: float
    clock_hz: float
    resources: dict = field(default_factory=dict)
    baud_rate: int = 115200
    event_buffer_depth: int = 256

    def platform(self):
        """Return a fresh amaranth-boards platform instance for this board."""
        return _PLATFORMS[self.name]()

    @property
    def block_ram_bits(self) -> int:
        return 4096 if self.family == "ice40" else 18432


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return ICEBreakerPlatform()


def _without_tools(base, dropped):
    """Subclass an ECP5 platform without programming-only tools (no board is attached)."""

    class Platform(base):
        @property
        def required_tools(self):
            return [tool for tool in super().required_tools if tool not in dropped]

        @property
        def command_templates(self):
            return [template for template in super().command_templates
                    if not any(tool in template for tool in dropped)]

    Platform.__name__ = base.__name__
    return Platform


def _ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    return _without_tools(ULX3S_85F_Platform, ("openFPGALoader",))()


def _orangecrab_25f():
    from amaranth.build import Attrs
    from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform
    from amaranth_boards.resources import UARTResource
    platform = _without_tools(OrangeCrabR0_2_25FPlatform, ("dfu-suffix",))()
    platform.add_resources([UARTResource(0, rx="0", tx="1", conn=("io", 0),
                                         attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))])
    return platform


_PLATFORMS = {
    "icebreaker": _icebreaker,
    "ulx3s-85f": _ulx3s_85f,
    "orangecrab": _orangecrab_25f,
}

BOARDS = {
    "icebreaker": BoardSpec(
        name="icebreaker", title="1BitSquared iCEBreaker", family="ice40",
        device="iCE40UP5K-SG48", input_clock_hz=12e6, clock_hz=12e6,
        resources={"LUT": 5280, "FF": 5280, "BRAM": 30, "SPRAM": 4, "DSP": 8},
        event_buffer_depth=256),
    "ulx3s-85f": BoardSpec(
        name="ulx3s-85f", title="Radiona ULX3S (ECP5-85F)", family="ecp5",
        device="LFE5U-85F-6BG381C", input_clock_hz=25e6, clock_hz=50e6,
        resources={"LUT": 83640, "FF": 83640, "BRAM": 208, "SPRAM": 0, "DSP": 156},
        event_buffer_depth=1024),
    "orangecrab": BoardSpec(
        name="orangecrab", title="Good Stuff Department OrangeCrab r0.2 (ECP5-25F)",
        family="ecp5", device="LFE5U-25F-8MG285C", input_clock_hz=48e6, clock_hz=48e6,
        resources={"LUT": 24288, "FF": 24288, "BRAM": 56, "SPRAM": 0, "DSP": 28},
        event_buffer_depth=1024),
}


def get_board(name: str) -> BoardSpec:
    """Return the board called ``name``; the error lists the known boards."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(f"board = {name!r}: not supported; boards: "
                         f"{', '.join(BOARDS)}") from None
