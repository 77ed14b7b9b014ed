"""Exp2: the vector unit's table-based ``2**x``; combinational.

Interface: ``x`` (in, ``FP32``) -> ``y`` (out, ``FP32``), no clock; bit-exact with
``golden.fparith.exp2q(x, frac_bits)``. ``x`` goes through ``FP32ToFixed(frac_bits=F,
width=F + 9)``; the integer part ``n`` (arithmetic, i.e. floor) gives the biased exponent
``n + 127`` and the ``F`` fraction bits ``j`` index a ROM of ``2**F`` 23-bit fraction
fields (``golden.fparith.exp2_table``) read through an asynchronous (combinational) read
port. ``n < -126`` gives ``+0``, ``n >= 128`` gives ``+inf``. ``latency = 0``.
"""

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fparith import exp2_table

from .convert import FP32ToFixed, _check_int
from .layouts import FP32, FP32_FRAC

__all__ = ["Exp2"]

_BIAS = 127
_EXP_MAX = 255
#: Integer bits of the fixed-point input (sign included): n in -256..255 covers every
#: exponent, the rest saturates.
_INT_BITS = 9


class Exp2(wiring.Component):
    """Combinational table-based ``2**x``; see the module docstring."""

    def __init__(self, *, frac_bits: int):
        _check_int(self, "frac_bits", frac_bits, 1, 16)
        self._frac_bits = frac_bits
        super().__init__({"x": In(FP32), "y": Out(FP32)})

    @property
    def frac_bits(self) -> int:
        return self._frac_bits

    @property
    def latency(self) -> int:
        """Register stages: 0 (combinational ROM read)."""
        return 0

    def elaborate(self, platform):
        m = Module()
        f = self._frac_bits
        m.submodules.fixed = fixed = FP32ToFixed(frac_bits=f, width=f + _INT_BITS)
        m.submodules.table = table = Memory(
            shape=FP32_FRAC, depth=1 << f, init=[int(v) for v in exp2_table(f)]
        )
        rd = table.read_port(domain="comb")
        n = Signal(signed(_INT_BITS))
        m.d.comb += [fixed.a.eq(self.x), n.eq(fixed.q[f:]), rd.addr.eq(fixed.q[:f])]
        exp = Signal(8)
        frac = Signal(FP32_FRAC)
        with m.If(n < 1 - _BIAS):
            m.d.comb += [exp.eq(0), frac.eq(0)]
        with m.Elif(n > _EXP_MAX - 1 - _BIAS):
            m.d.comb += [exp.eq(_EXP_MAX), frac.eq(0)]
        with m.Else():
            m.d.comb += [exp.eq(n + _BIAS), frac.eq(rd.data)]
        # One plain assignment: a constant-only comb process (the sign) would never run in
        # the generated Verilog (Verilator ALWNEVER, X in Icarus).
        m.d.comb += self.y.eq(Cat(frac, exp, Const(0, 1)))
        return m
