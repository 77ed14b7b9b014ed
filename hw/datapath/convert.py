"""Conversions between FP32 and integers; combinational.

``FP32ToFixed(frac_bits=F, width=W)``: ``a`` (in, ``FP32``) -> ``q`` (out, ``signed(W)``),
bit-exact with ``golden.fparith.fp32_to_fixed(a, F, W)``: ``a * 2**F`` rounded to nearest,
ties to even, saturated to ``[-2**(W-1), 2**(W-1) - 1]``; subnormals give 0 and ±inf
saturate (NaN is outside the contract: it saturates like an infinity of its sign). The
24-bit significand ``M`` is scaled by ``2**s``, ``s = exponent - 150 + F``: a left shift for
``s >= 0`` (``s >= W`` always saturates), else a right shift with guard and sticky bits.

``IntToFP32(width=W)``: ``n`` (in, ``unsigned(W)``, ``W <= 24``) -> ``f`` (out, ``FP32``),
the exact FP32 value of ``n`` (``golden.fparith.int_to_fp32``): the leading one sets the
exponent, the bits below it are left-aligned in the fraction; ``0`` gives ``+0``.

Both have ``latency = 0``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import FP32, FP32_FRAC

__all__ = ["FP32ToFixed", "IntToFP32"]

_BIAS = 127
_EXP_MAX = 255
_SIG_W = FP32_FRAC + 1


def _check_int(owner, name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        owner._MustUse__silence = True
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        owner._MustUse__silence = True
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")


class FP32ToFixed(wiring.Component):
    """Combinational FP32 -> signed fixed point; see the module docstring."""

    def __init__(self, *, frac_bits: int, width: int):
        _check_int(self, "frac_bits", frac_bits, 0, 32)
        _check_int(self, "width", width, 2, 53)
        self._frac_bits, self._width = frac_bits, width
        super().__init__({"a": In(FP32), "q": Out(signed(width))})

    @property
    def frac_bits(self) -> int:
        return self._frac_bits

    @property
    def width(self) -> int:
        return self._width

    @property
    def latency(self) -> int:
        """Register stages: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        a, w = self.a, self._width
        sig = Cat(a.mantissa, Const(1, 1))
        shift = Signal(signed(11))
        m.d.comb += shift.eq(a.exponent - (_BIAS + FP32_FRAC) + self._frac_bits)

        mag = Signal(unsigned(_SIG_W + w))  # |a| * 2**F rounded, when not saturated
        sat = Signal()
        with m.If(shift >= 0):
            left = Signal(range(w + 1))
            m.d.comb += [left.eq(Mux(shift >= w, w, shift)), sat.eq(shift >= w)]
            m.d.comb += mag.eq(sig << left)
        with m.Else():
            # ``ext`` holds M * 2**(_SIG_W + 2); shifted right by -shift its low _SIG_W + 2
            # bits are the fraction (guard first) of the scaled value.
            ext_w = 2 * _SIG_W + 2
            ext = Cat(Const(0, _SIG_W + 2), sig)
            right = Signal(range(ext_w + 1))
            m.d.comb += right.eq(Mux(-shift > ext_w, ext_w, -shift))
            sh = Signal(ext_w)
            m.d.comb += sh.eq(ext >> right)
            integer = sh[_SIG_W + 2 :]
            guard = sh[_SIG_W + 1]
            sticky = sh[: _SIG_W + 1].any()
            m.d.comb += mag.eq(integer + (guard & (sticky | integer[0])))

        limit_pos = (1 << (w - 1)) - 1
        limit_neg = 1 << (w - 1)
        with m.If(a.exponent == 0):
            m.d.comb += self.q.eq(0)
        with m.Elif(a.sign):
            with m.If((a.exponent == _EXP_MAX) | sat | (mag > limit_neg)):
                m.d.comb += self.q.eq(-limit_neg)
            with m.Else():
                m.d.comb += self.q.eq(-mag)
        with m.Else():
            with m.If((a.exponent == _EXP_MAX) | sat | (mag > limit_pos)):
                m.d.comb += self.q.eq(limit_pos)
            with m.Else():
                m.d.comb += self.q.eq(mag)
        return m


class IntToFP32(wiring.Component):
    """Combinational unsigned integer -> FP32 (exact); see the module docstring."""

    def __init__(self, *, width: int):
        _check_int(self, "width", width, 1, _SIG_W)
        self._width = width
        super().__init__({"n": In(unsigned(width)), "f": Out(FP32)})

    @property
    def width(self) -> int:
        return self._width

    @property
    def latency(self) -> int:
        """Register stages: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        n, f, w = self.n, self.f, self._width
        top = Signal(range(max(2, w)))  # index of the leading one
        for i in range(w):
            with m.If(n[i]):
                m.d.comb += top.eq(i)
        left = Signal(range(FP32_FRAC + 1))
        m.d.comb += left.eq(FP32_FRAC - top)
        aligned = Signal(FP32_FRAC + 1)
        m.d.comb += aligned.eq(n << left)
        exp = Signal(8)
        m.d.comb += exp.eq(Mux(n == 0, 0, top + _BIAS))
        # One plain assignment: a constant-only comb process (the sign) would never run in
        # the generated Verilog (Verilator ALWNEVER, X in Icarus).
        m.d.comb += f.eq(Cat(aligned[:FP32_FRAC], exp, Const(0, 1)))
        return m
