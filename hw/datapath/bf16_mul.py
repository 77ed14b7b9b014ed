"""BF16Mul: one BF16 × BF16 product as an FP32 pattern, combinational.

Interface: ``a``, ``b`` (in, ``BF16``), ``p`` (out, ``FP32``), no clock; bit-exact with
``golden.fparith.bf16_mul``. The 8 × 8-bit significand product has 16 bits, so it is exact
in FP32: no rounding, only renormalisation by at most one bit. Subnormal operands (exponent
field 0) are zeros; products below ``2**-126`` become zeros and those at or above
``2**128`` infinities, signed with ``a.sign ^ b.sign``. Operands with exponent field 255
are outside the contract (the golden model rejects them). ``latency = 0``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import BF16, BF16_FRAC, FP32, FP32_FRAC

__all__ = ["BF16Mul"]

_BIAS = 127
_EXP_MAX = 255


class BF16Mul(wiring.Component):
    """Combinational BF16 multiplier with an FP32 result; see the module docstring."""

    a: In(BF16)
    b: In(BF16)
    p: Out(FP32)

    @property
    def latency(self) -> int:
        """Register stages: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        a, b, p = self.a, self.b, self.p
        sig = Cat(a.mantissa, Const(1, 1)) * Cat(b.mantissa, Const(1, 1))  # in [2**14, 2**16)
        hi = sig[-1]
        exp = Signal(signed(11))
        m.d.comb += exp.eq(a.exponent + b.exponent - _BIAS + hi)
        # Drop the leading one and left-align the rest in the FP32 fraction.
        frac = Mux(
            hi, sig[:-1] << (FP32_FRAC - 2 * BF16_FRAC - 1), sig[:-2] << (FP32_FRAC - 2 * BF16_FRAC)
        )
        m.d.comb += p.sign.eq(a.sign ^ b.sign)
        with m.If((a.exponent == 0) | (b.exponent == 0) | (exp <= 0)):
            m.d.comb += [p.exponent.eq(0), p.mantissa.eq(0)]
        with m.Elif(exp >= _EXP_MAX):
            m.d.comb += [p.exponent.eq(_EXP_MAX), p.mantissa.eq(0)]
        with m.Else():
            m.d.comb += [p.exponent.eq(exp), p.mantissa.eq(frac)]
        return m
