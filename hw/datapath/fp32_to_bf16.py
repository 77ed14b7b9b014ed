"""FP32ToBF16: FP32 → BF16 rounding, round to nearest even, flush to zero; combinational.

Interface: ``a`` (in, ``FP32``), ``b`` (out, ``BF16``), no clock; bit-exact with
``golden.fparith.fp32_to_bf16``:

- a subnormal operand (exponent field 0) is a zero of its sign (``+0``/``-0`` out);
- a NaN operand gives the canonical BF16 quiet NaN ``0x7FC0`` (sign 0), ±inf stays ±inf;
- otherwise the upper 16 bits are rounded to nearest, ties to even, on the lower 16
  (``round = bit 15``, ``sticky = bits 14..0``); a carry out of the fraction increments the
  exponent, up to ±inf on overflow. A normal operand never rounds below ``2**-126``.

``latency = 0``.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import BF16, FP32

__all__ = ["FP32ToBF16"]

_EXP_MAX = 255
_QNAN16 = 0x7FC0


class FP32ToBF16(wiring.Component):
    """Combinational FP32 → BF16 rounding; see the module docstring."""

    a: In(FP32)
    b: Out(BF16)

    @property
    def latency(self) -> int:
        """Register stages: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b
        bits = a.as_value()
        upper = bits[16:]
        round_bit = bits[15]
        sticky = bits[:15].any()
        up = round_bit & (sticky | upper[0])
        with m.If(a.exponent == 0):
            m.d.comb += b.as_value().eq(a.sign << 15)
        with m.Elif((a.exponent == _EXP_MAX) & (a.mantissa != 0)):
            m.d.comb += b.as_value().eq(_QNAN16)
        with m.Else():
            # Infinities have a zero fraction, so they never round up.
            m.d.comb += b.as_value().eq(upper + up)
        return m
