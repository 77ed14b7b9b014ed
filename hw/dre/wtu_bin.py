"""WTUBin: what one histogram bin of the multi-lane grid WTU takes from one ``clusters`` beat.

Combinational. Given the lanes that fall in the bin (``hits``, one bit per lane) and every
lane's count, it gives the masked sum of the counts (``added``, a balanced adder tree, exact:
``count_bits + ceil(log2 lanes)`` bits) and the lowest and highest lane that hit
(``first_lane``, ``last_lane``; 0 when none does), from which the WTU sets the bin's head and
tail cluster ids.

The WTU has ``n_buckets`` of them, all alike: it adds each through ``hw.shared.shared``, so the
generated design has one ``WTUBin`` module instanced ``n_buckets`` times instead of one flat
module. Synthesis then optimises a bin once (the 16-lane `paper` WTU's bins were most of a
215 K-cell flat module that Yosys's ABC took over half an hour on).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import ceil_log2
from .bitops import lowest_set

__all__ = ["WTUBin"]


class WTUBin(wiring.Component):
    """One bin's masked count sum and first and last hitting lane; see the module docstring."""

    def __init__(self, lanes: int, count_bits: int):
        if lanes < 1 or count_bits < 1:
            raise ValueError(
                f"lanes and count_bits must be at least 1, not lanes={lanes!r}, "
                f"count_bits={count_bits!r}"
            )
        self._lanes = lanes
        super().__init__(
            {
                "hits": In(lanes),
                "counts": In(data.ArrayLayout(count_bits, lanes)),
                "added": Out(count_bits + ceil_log2(lanes)),
                "first_lane": Out(range(max(2, lanes))),
                "last_lane": Out(range(max(2, lanes))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        terms = [Mux(self.hits[j], self.counts[j], 0) for j in range(lanes)]
        while len(terms) > 1:
            terms = [
                terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                for i in range(0, len(terms), 2)
            ]
        m.d.comb += self.added.eq(terms[0])
        first, _ = lowest_set(m, self.hits, name="first")
        last = Signal(range(max(2, lanes)), name="last")
        for j in range(lanes):  # later assignments win: the highest lane
            with m.If(self.hits[j]):
                m.d.comb += last.eq(j)
        m.d.comb += [self.first_lane.eq(first), self.last_lane.eq(last)]
        return m
