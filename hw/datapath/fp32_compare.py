"""FP32Compare: ``a >= b`` by value for FP32 patterns; combinational.

Interface: ``a``, ``b`` (in, ``FP32``), ``ge`` (out, 1 bit), no clock; bit-exact with
``golden.fparith.fp32_ge``: subnormals are zeros, ``-0 == +0``, infinities order as usual.
NaN operands are outside the contract (the golden model rejects them). Each operand maps to
a signed key, ``±{exponent, fraction}`` (0 for a zero), and the keys are compared.
``latency = 0``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import FP32, FP32_FRAC

__all__ = ["FP32Compare"]


class FP32Compare(wiring.Component):
    """Combinational FP32 ``>=``; see the module docstring."""

    a: In(FP32)
    b: In(FP32)
    ge: Out(1)

    @property
    def latency(self) -> int:
        """Register stages: 0 (combinational)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        keys = []
        for name, x in (("a", self.a), ("b", self.b)):
            mag = Mux(x.exponent == 0, 0, Cat(x.mantissa, x.exponent))
            key = Signal(signed(FP32_FRAC + 8 + 1), name=f"key_{name}")
            m.d.comb += key.eq(Mux(x.sign, -mag, mag))
            keys.append(key)
        m.d.comb += self.ge.eq(keys[0] >= keys[1])
        return m
