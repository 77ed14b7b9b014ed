"""FP32Mul: one IEEE binary32 multiplication, round to nearest even, flush to zero;
combinational.

Interface: ``a``, ``b`` (in, ``FP32``), ``p`` (out, ``FP32``), no clock; bit-exact with
``golden.fparith.fp32_mul``:

- subnormal operands are zeros; the sign of every zero or infinite result is
  ``a.sign ^ b.sign``;
- a NaN operand or ``0 * inf`` gives the canonical NaN ``0x7FC00000``; otherwise an infinite
  operand gives an infinity;
- the 24 × 24-bit significand product (48 bits) is normalised by at most one position and
  rounded to 24 bits (nearest, ties to even, guard + sticky) with an unbounded exponent; a
  rounding carry bumps the exponent; then a biased exponent ``<= 0`` gives a zero and one
  ``>= 255`` an infinity.

``latency = 0``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import FP32, FP32_FRAC

__all__ = ["FP32Mul"]

_BIAS = 127
_EXP_MAX = 255
_QNAN_FRAC = 1 << (FP32_FRAC - 1)


class FP32Mul(wiring.Component):
    """Combinational FP32 multiplier; see the module docstring."""

    a: In(FP32)
    b: In(FP32)
    p: Out(FP32)

    @property
    def latency(self) -> int:
        """Register stages: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        a, b, p = self.a, self.b, self.p
        sig_w = FP32_FRAC + 1
        prod = Signal(2 * sig_w)
        m.d.comb += prod.eq(Cat(a.mantissa, Const(1, 1)) * Cat(b.mantissa, Const(1, 1)))
        hi = prod[-1]  # product in [2, 4): one position more
        # 24 significand bits, guard, sticky of the normalised product.
        top = Signal(sig_w)
        guard = Signal()
        sticky = Signal()
        with m.If(hi):
            m.d.comb += [
                top.eq(prod[sig_w:]),
                guard.eq(prod[sig_w - 1]),
                sticky.eq(prod[: sig_w - 1].any()),
            ]
        with m.Else():
            m.d.comb += [
                top.eq(prod[sig_w - 1 : -1]),
                guard.eq(prod[sig_w - 2]),
                sticky.eq(prod[: sig_w - 2].any()),
            ]
        rounded = Signal(sig_w + 1)
        m.d.comb += rounded.eq(top + (guard & (sticky | top[0])))
        exp = Signal(signed(11))
        m.d.comb += exp.eq(a.exponent + b.exponent - _BIAS + hi + rounded[sig_w])

        def kind(x):
            zero = x.exponent == 0
            top_exp = x.exponent == _EXP_MAX
            return zero, top_exp & (x.mantissa == 0), top_exp & (x.mantissa != 0)

        a_zero, a_inf, a_nan = kind(a)
        b_zero, b_inf, b_nan = kind(b)
        sign = a.sign ^ b.sign
        with m.If(a_nan | b_nan | (a_inf & b_zero) | (b_inf & a_zero)):
            m.d.comb += [p.sign.eq(0), p.exponent.eq(_EXP_MAX), p.mantissa.eq(_QNAN_FRAC)]
        with m.Elif(a_inf | b_inf | (exp >= _EXP_MAX)):
            m.d.comb += [p.sign.eq(sign), p.exponent.eq(_EXP_MAX), p.mantissa.eq(0)]
        with m.Elif(a_zero | b_zero | (exp <= 0)):
            m.d.comb += [p.sign.eq(sign), p.exponent.eq(0), p.mantissa.eq(0)]
        with m.Else():
            # A rounding carry leaves rounded == 2**24, whose fraction bits are all zero.
            m.d.comb += [
                p.sign.eq(sign),
                p.exponent.eq(exp),
                p.mantissa.eq(Mux(rounded[sig_w], 0, rounded[:FP32_FRAC])),
            ]
        return m
