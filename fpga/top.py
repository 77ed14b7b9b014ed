"""BoardTop: ``DRESystem`` on a board: PLL, reset, UART pins and status LEDs.

Clocking: the board oscillator feeds the PLL (ECP5 ``EHXPLLL``; iCE40 ``SB_PLL40_PAD`` on
the oscillator's pad), whose output is the ``sync`` clock at ``fcfg.clock_hz``. Reset:
``sync`` is held in reset (through ``amaranth.lib.cdc.ResetSynchronizer``) while the PLL is
not locked, while the reset button is held and for ~10 µs after configuration (a
counter in a reset-less domain on the same clock: iCE40 block RAMs read as zero for ~3 µs
after configuration).
LEDs, in the order of ``Board.leds``: PLL locked, then ``DRESystem.leds`` (heartbeat,
activity, error, busy).
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .boards import Board
from .config import FPGAConfig
from .pll import ecp5_pll_instance, ice40_pll_instance
from .system import DRESystem

__all__ = ["BoardTop"]

#: Time the power-on reset holds the system after configuration (iCE40 BRAMs need 3 µs).
POR_SECONDS = 10e-6


class BoardTop(Elaboratable):
    def __init__(self, board: Board, fcfg: FPGAConfig):
        pll = board.pll(board.osc_hz, fcfg.clock_hz)
        if abs(pll.fout_hz - fcfg.clock_hz) > 1e-6 * fcfg.clock_hz:
            self._MustUse__silence = True  # raised before use: no unused-elaboratable warning
            raise ValueError(
                f"fcfg.clock_hz must be a frequency the {board.name} PLL makes (the nearest "
                f"is {pll.fout_hz:.0f} Hz; see fpga.boards.board_config), not {fcfg.clock_hz!r}"
            )
        self.board, self.fcfg, self.pll = board, fcfg, pll

    def elaborate(self, platform):
        m = Module()
        clk = Signal(name="pll_clk")
        locked = Signal(name="pll_locked")
        if self.board.family == "ecp5":
            osc = platform.request(platform.default_clk, 0, dir="-")
            m.submodules.osc_buf = osc_buf = io.Buffer("i", osc)
            m.submodules.pll = ecp5_pll_instance(self.pll, osc_buf.i, clk, locked)
        else:  # the PLL takes the oscillator straight from its pad
            pad = platform.request(platform.default_clk, 0, dir="-")
            m.submodules.pll = ice40_pll_instance(self.pll, pad.io, clk, locked)
        platform.add_clock_constraint(clk, self.pll.fout_hz)

        m.domains.sync = ClockDomain("sync")
        m.domains.por = ClockDomain("por", reset_less=True)
        m.d.comb += [ClockSignal("sync").eq(clk), ClockSignal("por").eq(clk)]
        por_cycles = int(POR_SECONDS * self.pll.fout_hz) + 1
        por = Signal(range(por_cycles + 1), name="por_count")
        with m.If(por != por_cycles):
            m.d.por += por.eq(por + 1)
        m.submodules.button = button = io.Buffer("i", platform.request(*self.board.reset, dir="-"))
        m.submodules.reset_sync = ResetSynchronizer(
            (por != por_cycles) | ~locked | button.i, domain="sync"
        )

        m.submodules.system = system = DRESystem(self.fcfg)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [system.rx.eq(rx_buf.i), tx_buf.o.eq(system.tx)]
        for i, (name, num) in enumerate(self.board.leds):
            led = io.Buffer("o", platform.request(name, num, dir="-"))
            m.submodules[f"led{i}"] = led
            m.d.comb += led.o.eq(locked if i == 0 else system.leds[i - 1])
        return m
