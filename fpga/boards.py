"""The boards ``make fpga BOARD=...`` builds for: amaranth-boards platform, PLL target, pins.

``BOARDS`` is the one registry (build, sweep, host client and tests iterate it);
``board_config(board, config)`` is the ``FPGAConfig`` of a build: the ``hw`` preset, the
system clock the PLL actually makes (not the target) and the UART baud rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from golden.checks import lookup
from hw.config import HWConfig, preset

from .config import FPGAConfig
from .pll import PllSettings, ecp5_pll, ice40_pll

__all__ = ["BOARDS", "Board", "board_config"]


@dataclass(frozen=True)
class Board:
    name: str
    #: amaranth-boards platform class.
    platform: type
    #: "ecp5" or "ice40": the nextpnr flavour, the PLL primitive and the bitstream packer.
    family: str
    #: Oscillator frequency (the platform's default clock) in Hz.
    osc_hz: float
    #: System clock the PLL is asked for, in Hz (the measured fmax of the tiny build with
    #: margin, README "FPGA builds").
    target_hz: float
    #: Reset button resource (name, number): held, it resets the system.
    reset: tuple[str, int]
    #: LED resources (name, number) for: PLL locked, heartbeat, activity, error, busy.
    leds: tuple[tuple[str, int], ...]
    #: Extra resources to add to the platform (e.g. a break-off PMOD with LEDs).
    extra_resources: str = ""
    #: Device label for the reports.
    device: str = ""

    @property
    def pll(self) -> Callable[[float, float], PllSettings]:
        return ecp5_pll if self.family == "ecp5" else ice40_pll

    def make_platform(self) -> Any:
        plat = self.platform()
        if self.extra_resources:
            plat.add_resources(getattr(plat, self.extra_resources))
        return plat


BOARDS: dict[str, Board] = {
    # Radiona ULX3S with the LFE5U-85F (the 12F/25F/45F differ only in size).
    "ulx3s": Board(
        name="ulx3s",
        platform=ULX3S_85F_Platform,
        family="ecp5",
        osc_hz=25e6,
        target_hz=45e6,
        reset=("button_fire", 0),
        leds=tuple(("led", i) for i in range(5)),
        device="LFE5U-85F-6BG381C",
    ),
    # 1BitSquared iCEBreaker (iCE40UP5K) with its break-off PMOD of 5 LEDs and 3 buttons.
    "icebreaker": Board(
        name="icebreaker",
        platform=ICEBreakerPlatform,
        family="ice40",
        osc_hz=12e6,
        target_hz=16e6,
        reset=("button", 0),
        leds=(("led", 2), ("led_g", 0), ("led", 3), ("led_r", 0), ("led", 4)),
        extra_resources="break_off_pmod",
        device="iCE40UP5K-SG48",
    ),
}


def get_board(name: str) -> Board:
    """``BOARDS[name]``; ``ValueError`` listing the boards for an unknown name."""
    return lookup("board", BOARDS, name)


def board_config(
    board: str | Board,
    config: str | HWConfig,
    *,
    target_hz: float | None = None,
    baud: int = 115200,
) -> FPGAConfig:
    """The ``FPGAConfig`` of ``config`` (a ``hw`` preset name or an ``HWConfig``) on
    ``board``, clocked at the PLL frequency closest to ``target_hz`` (the board's target by
    default)."""
    b = board if isinstance(board, Board) else get_board(board)
    hw = preset(config) if isinstance(config, str) else config
    pll = b.pll(b.osc_hz, target_hz or b.target_hz)
    return FPGAConfig(hw=hw, clock_hz=pll.fout_hz, baud=baud)
