"""DRESystem: what goes on the board between the pins, and what the cocotb bench simulates.

UART receiver → ``HostBridge`` → UART transmitter, the bridge driving the DRE
(``hw.dre.DynamicRetrievalEngine``, used through its public ports only). No clock
generation here: the board top (``fpga.top``) adds the PLL, the reset and the pins.

Ports: ``rx`` (in, serial line from the host), ``tx`` (out, to the host) and ``leds``:
  0 heartbeat: toggles every ``2**(ceil(log2(clock_hz)) - 1)`` cycles (~1 Hz blink);
  1 activity: lit for ~1/16 s after each byte received or sent;
  2 error (sticky until reset): a request was refused or a byte was received with a bad
    stop bit or lost by overrun;
  3 busy: a run is in progress (microseconds: on a board, it shows a hung run).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.config import ceil_log2
from hw.dre import DynamicRetrievalEngine

from .bridge import HostBridge
from .config import FPGAConfig
from .uart_rx import UartRx
from .uart_tx import UartTx

__all__ = ["N_LEDS", "DRESystem"]

N_LEDS = 4


class DRESystem(wiring.Component):
    """See the module docstring."""

    def __init__(self, fcfg: FPGAConfig):
        if not isinstance(fcfg, FPGAConfig):
            self._MustUse__silence = True
            raise TypeError(f"fcfg must be an FPGAConfig, not {fcfg!r}")
        self._fcfg = fcfg
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(N_LEDS)})

    @property
    def fcfg(self) -> FPGAConfig:
        return self._fcfg

    def elaborate(self, platform):
        fcfg = self._fcfg
        m = Module()
        m.submodules.uart_rx = rx = UartRx(divisor=fcfg.uart_divisor)
        m.submodules.uart_tx = tx = UartTx(divisor=fcfg.uart_divisor)
        m.submodules.bridge = bridge = HostBridge(fcfg)
        m.submodules.dre = dre = DynamicRetrievalEngine(fcfg.hw)
        wiring.connect(m, rx.data, bridge.rx)
        wiring.connect(m, bridge.tx, tx.data)
        wiring.connect(m, bridge.dre, dre)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        # Status LEDs (see the module docstring).
        bits = max(6, ceil_log2(fcfg.clock_hz))
        heartbeat = Signal(bits, name="heartbeat")
        activity = Signal(bits - 4, name="activity")
        line_error = Signal(name="line_error")
        m.d.sync += heartbeat.eq(heartbeat + 1)
        with m.If((rx.data.valid & rx.data.ready) | (tx.data.valid & tx.data.ready)):
            m.d.sync += activity.eq(~0)
        with m.Elif(activity != 0):
            m.d.sync += activity.eq(activity - 1)
        with m.If(rx.frame_error | rx.overrun):
            m.d.sync += line_error.eq(1)
        m.d.comb += self.leds.eq(
            Cat(heartbeat[-1], activity != 0, bridge.error | line_error, bridge.busy)
        )
        return m
