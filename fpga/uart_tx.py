"""UartTx: 8N1 UART transmitter with an ``amaranth.lib.stream`` byte input.

Interface
  ``data`` (in stream, 8 bits): bytes to send; ``ready`` only while the line is idle, so a
  beat is taken when its transmission starts.
  ``tx`` (out): the serial line, idle high.

Timing: ``divisor`` clocks per bit, 10 bits per byte (start, 8 data bits LSB first, stop);
the next byte is taken in the last cycle of the stop bit, so back-to-back bytes leave no
gap: a byte every ``10 * divisor`` cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.checks import check_int

from .config import MIN_UART_DIVISOR

__all__ = ["UartTx"]


class UartTx(wiring.Component):
    def __init__(self, *, divisor: int):
        try:
            check_int("divisor", divisor, MIN_UART_DIVISOR)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # raised before use: no unused-elaboratable warning
            raise
        self._divisor = divisor
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        frame = Signal(10, init=0x3FF, name="tx_frame")  # bits still to send, LSB next
        left = Signal(range(11), name="tx_bits_left")
        timer = Signal(range(div), name="tx_timer")
        m.d.comb += self.tx.eq(frame[0])

        last_tick = timer == 0
        idle = (left == 0) | ((left == 1) & last_tick)
        m.d.comb += self.data.ready.eq(idle)
        with m.If(left != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(last_tick):
                m.d.sync += [
                    timer.eq(div - 1),
                    frame.eq(Cat(frame[1:], Const(1, 1))),
                    left.eq(left - 1),
                ]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [
                frame.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                left.eq(10),
                timer.eq(div - 1),
            ]
        return m
