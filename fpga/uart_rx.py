"""UartRx: 8N1 UART receiver with an ``amaranth.lib.stream`` byte output.

Interface
  ``rx`` (in): the serial line (idle high); synchronised by two flip-flops inside.
  ``data`` (out stream, 8 bits): one beat per received byte, held until taken.
  ``frame_error`` (out): one-cycle pulse when a byte's stop bit was low (the byte is dropped).
  ``overrun`` (out): one-cycle pulse when a byte completed while the previous one had not
  been taken (the new byte is dropped).

Timing: ``divisor`` clocks per bit. A falling edge on the synchronised line starts a byte;
the start bit is checked at half a bit (a glitch shorter than that is ignored) and the data
and stop bits are sampled a whole bit apart from there, in the middle of each bit. The
receiver looks for the next start bit right after sampling the stop bit, so bytes may
follow each other with no idle time.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.checks import check_int

from .config import MIN_UART_DIVISOR

__all__ = ["UartRx"]


class UartRx(wiring.Component):
    def __init__(self, *, divisor: int):
        try:
            check_int("divisor", divisor, MIN_UART_DIVISOR)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # raised before use: no unused-elaboratable warning
            raise
        self._divisor = divisor
        super().__init__(
            {
                "rx": In(1, init=1),
                "data": Out(stream.Signature(8)),
                "frame_error": Out(1),
                "overrun": Out(1),
            }
        )

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        sync1 = Signal(init=1, name="rx_sync1")
        line = Signal(init=1, name="rx_line")
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]

        timer = Signal(range(div), name="rx_timer")
        bit = Signal(range(9), name="rx_bit")
        shreg = Signal(8, name="rx_shreg")
        buf = Signal(8, name="rx_buf")
        full = Signal(name="rx_full")
        m.d.comb += [self.data.valid.eq(full), self.data.payload.eq(buf)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += full.eq(0)

        with m.FSM(name="uart_rx_fsm"):
            with m.State("IDLE"), m.If(~line):
                m.d.sync += timer.eq(div // 2 - 1)
                m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), timer.eq(div - 1)]
                    m.d.sync += bit.eq(bit + 1)
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(~line):
                        m.d.comb += self.frame_error.eq(1)
                    with m.Elif(full & ~self.data.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [buf.eq(shreg), full.eq(1)]
                    m.next = "IDLE"
        return m
