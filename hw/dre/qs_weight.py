"""QSWeight: one lane's weight in the quick-select baseline (``hw/dre/quickselect.py``),
``(count * exp) >> shift``: a cluster's count (``resv.count_bits``) times its ``exp2`` table
entry (``lut_bits``), shifted right by the integer part of its score distance, exact,
combinational.

The quick-select adds one per lane through ``hw.shared.shared``: the generated design has
one ``QSWeight`` module instead of ``wtu_lanes`` multipliers and shifters inside the
quick-select's own module, so synthesis maps them once (at ``paper``, ABC took 23 min on
the single 100 K-gate module they were part of).
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig

__all__ = ["QSWeight"]


class QSWeight(wiring.Component):
    """``weight = (count * exp) >> shift``; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        r = cfg.resv
        super().__init__(
            {
                "count": In(r.count_bits),
                "exp": In(cfg.lut_bits),
                "shift": In(r.score_bits - r.score_frac_bits + 1),
                "weight": Out(r.count_bits + cfg.lut_bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.weight.eq((self.count * self.exp) >> self.shift)
        return m
