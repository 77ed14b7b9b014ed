"""FP32Add: one IEEE binary32 addition, round to nearest even, flush to zero; combinational.

Interface: ``a``, ``b`` (in, ``FP32``), ``s`` (out, ``FP32``), no clock; bit-exact with
``golden.fparith.fp32_add``:

- subnormal operands are zeros; ``+0 + -0 = +0``, ``-0 + -0 = -0``, ``x + (-x) = +0``;
- a NaN operand, or ``inf + (-inf)``, gives the canonical NaN ``0x7FC00000``; otherwise an
  infinite operand gives that infinity;
- results below ``2**-126`` become zeros of the result's sign, overflow gives ±inf.

Algorithm (classic three-extra-bit adder): order the operands by magnitude
(``{exponent, fraction}``), append guard, round and sticky bits to both 24-bit significands,
shift the smaller right by the exponent difference (capped at 27; every bit shifted out is
ORed into the sticky bit), add or subtract, then normalise: one right shift on a carry out
(folding the lost bit into sticky), else a left shift by the leading-zero count (more than
one position only when the exponents differ by at most one, where nothing was shifted out
and the shift is exact). Round to nearest, ties to even, on guard/round/sticky; a carry out
of the rounding increments the exponent. ``latency = 0``: the MAC tree puts a register
after each adder.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import FP32, FP32_FRAC

__all__ = ["FP32Add"]

_EXP_MAX = 255
_QNAN_FRAC = 1 << (FP32_FRAC - 1)
#: Guard, round and sticky bits below the significand.
_GRS = 3


class FP32Add(wiring.Component):
    """Combinational FP32 adder; see the module docstring."""

    a: In(FP32)
    b: In(FP32)
    s: Out(FP32)

    @property
    def latency(self) -> int:
        """Register stages: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        a, b, s = self.a, self.b, self.s
        sig_w = FP32_FRAC + 1  # significand with its hidden one
        ext_w = sig_w + _GRS  # ... plus guard, round, sticky

        def special(x):
            top = x.exponent == _EXP_MAX
            return top & (x.mantissa == 0), top & (x.mantissa != 0)

        a_inf, a_nan = special(a)
        b_inf, b_nan = special(b)

        swap = Cat(b.mantissa, b.exponent) > Cat(a.mantissa, a.exponent)
        big = FP32(Signal(32, name="big"))
        small = FP32(Signal(32, name="small"))
        m.d.comb += [big.eq(Mux(swap, b, a)), small.eq(Mux(swap, a, b))]

        # Alignment of the smaller significand, with sticky.
        diff = Signal(8)
        m.d.comb += diff.eq(big.exponent - small.exponent)
        shift = Signal(range(ext_w + 1))
        m.d.comb += shift.eq(Mux(diff > ext_w, ext_w, diff))
        ma = Cat(Const(0, _GRS), big.mantissa, Const(1, 1))
        mb = Cat(Const(0, _GRS), small.mantissa, Const(1, 1))
        lost_mask = Signal(ext_w)
        m.d.comb += lost_mask.eq((Const(1, ext_w + 1) << shift) - 1)
        aligned = Signal(ext_w)
        m.d.comb += aligned.eq((mb >> shift) | (mb & lost_mask).any())

        subtract = big.sign ^ small.sign
        raw = Signal(ext_w + 1)
        with m.If(subtract):
            m.d.comb += raw.eq(ma - aligned)  # >= 0: |big| >= |small|
        with m.Else():
            m.d.comb += raw.eq(ma + aligned)

        # Leading-zero count of the ext_w low bits (the highest set bit wins).
        lzc = Signal(range(ext_w + 1))
        m.d.comb += lzc.eq(ext_w)
        for i in range(ext_w):
            with m.If(raw[i]):
                m.d.comb += lzc.eq(ext_w - 1 - i)

        norm = Signal(ext_w)
        exp_n = Signal(signed(11))
        carry = raw[ext_w]
        with m.If(carry):
            m.d.comb += [norm.eq(raw[1:] | raw[0]), exp_n.eq(big.exponent + 1)]
        with m.Else():
            m.d.comb += [norm.eq((raw[:ext_w] << lzc)[:ext_w]), exp_n.eq(big.exponent - lzc)]

        # Round to nearest, ties to even.
        lsb, guard = norm[_GRS], norm[_GRS - 1]
        rest = norm[: _GRS - 1].any()
        up = guard & (rest | lsb)
        rounded = Signal(sig_w + 1)
        m.d.comb += rounded.eq(norm[_GRS:] + up)
        exp_r = Signal(signed(11))
        m.d.comb += exp_r.eq(exp_n + rounded[sig_w])

        with m.If(a_nan | b_nan | (a_inf & b_inf & subtract)):
            m.d.comb += [s.sign.eq(0), s.exponent.eq(_EXP_MAX), s.mantissa.eq(_QNAN_FRAC)]
        with m.Elif(a_inf | b_inf):
            m.d.comb += s.eq(big)  # the infinity has the larger magnitude
        with m.Elif(big.exponent == 0):  # both operands are (flushed) zeros
            m.d.comb += [s.sign.eq(a.sign & b.sign), s.exponent.eq(0), s.mantissa.eq(0)]
        with m.Elif(small.exponent == 0):
            m.d.comb += s.eq(big)
        with m.Elif(raw == 0):  # exact cancellation
            m.d.comb += [s.sign.eq(0), s.exponent.eq(0), s.mantissa.eq(0)]
        with m.Elif(exp_r <= 0):
            m.d.comb += [s.sign.eq(big.sign), s.exponent.eq(0), s.mantissa.eq(0)]
        with m.Elif(exp_r >= _EXP_MAX):
            m.d.comb += [s.sign.eq(big.sign), s.exponent.eq(_EXP_MAX), s.mantissa.eq(0)]
        with m.Else():
            m.d.comb += [
                s.sign.eq(big.sign),
                s.exponent.eq(exp_r),
                s.mantissa.eq(rounded[:FP32_FRAC]),
            ]
        return m
