"""WTUBin: one histogram bin of the multi-lane grid WTU (``bucket_mode = "grid"``,
``wtu_lanes = L > 1``; ``hw/dre/wtu.py``, "Lanes").

A bin holds the bucket's cluster count (``count``, ``bucket_count_bits``), whether it has a
cluster (``nonempty``) and the ids of its first and last cluster (``head``, ``tail``). On a
cycle with ``update`` (an ingested ``clusters`` beat whose first lane is cluster ``n``) it
takes the lanes that fall in it (``hits``, one bit per lane): ``count`` becomes the masked sum
of the lanes' ``counts`` (a balanced adder tree) added to the old count, or to 0 when
``cleared`` (the row's first beat, or a rising maximum pushed the bin's bucket out of range);
``tail`` becomes ``n`` + the highest hitting lane, and ``head`` ``n`` + the lowest one when the
bin starts afresh (``cleared`` or empty). Without a hit only ``cleared`` changes it.

The WTU has ``n_buckets`` of them, all alike: it adds each through ``hw.shared.shared``, so
the generated design has one ``WTUBin`` module instanced ``n_buckets`` times instead of one
flat module, and synthesis optimises a bin once (the 16-lane ``paper`` WTU was one 215 K-cell
module, most of it its bins, that Yosys's ABC took over half an hour on).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig
from .bitops import lowest_set, tree_sum

__all__ = ["WTUBin"]


class WTUBin(wiring.Component):
    """One bin of the multi-lane grid WTU; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        self._lanes = cfg.wtu_lanes
        cid = cfg.cluster_id_bits
        super().__init__(
            {
                "update": In(1),
                "cleared": In(1),
                "hits": In(self._lanes),
                "counts": In(data.ArrayLayout(cfg.resv.count_bits, self._lanes)),
                "n": In(range(cfg.max_clusters + 1)),
                "count": Out(cfg.bucket_count_bits),
                "nonempty": Out(1),
                "head": Out(cid),
                "tail": Out(cid),
            }
        )

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        added = tree_sum([Mux(self.hits[j], self.counts[j], 0) for j in range(lanes)])
        first, hit = lowest_set(m, self.hits, name="first_lane")
        last = Signal(range(max(2, lanes)), name="last_lane")
        for j in range(lanes):  # later assignments win: the highest lane
            with m.If(self.hits[j]):
                m.d.comb += last.eq(j)
        with m.If(self.update):
            m.d.sync += [
                self.count.eq(Mux(self.cleared, 0, self.count) + added),
                self.nonempty.eq((~self.cleared & self.nonempty) | hit),
            ]
            with m.If(hit):
                m.d.sync += self.tail.eq(self.n + last)
                with m.If(self.cleared | ~self.nonempty):  # the bin starts afresh
                    m.d.sync += self.head.eq(self.n + first)
        return m
