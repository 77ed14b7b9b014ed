"""WTUMass: one scan lane's bucket mass of the multi-lane grid WTU, ``count * weight``
(``hw/dre/wtu.py``, "Lanes"): the bucket's cluster count (``bucket_count_bits``) times its
``exp2`` table weight (``lut_bits``), exact, combinational.

The WTU adds one per scan lane through ``hw.shared.shared``: the generated design has one
``WTUMass`` module instead of ``wtu_scan_group`` multipliers inside the WTU's own module (at
the ``paper`` preset 16 multipliers of 28 x 17 bits, over half of that module's cells), so
synthesis maps the multiplier once.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig

__all__ = ["WTUMass"]


class WTUMass(wiring.Component):
    """``mass = count * weight``; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        super().__init__(
            {
                "count": In(cfg.bucket_count_bits),
                "weight": In(cfg.lut_bits),
                "mass": Out(cfg.bucket_count_bits + cfg.lut_bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.mass.eq(self.count * self.weight)
        return m
