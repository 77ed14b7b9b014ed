"""ClusterScorer: the clusters' selection scores of a query, streamed into the DRE's WTU."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, check_config
from ..datapath import FP32Mul, FP32ToFixed
from ..datapath import layouts as datapath_layouts
from ..datapath.layouts import FP32
from ..dre import layouts as dre_layouts

__all__ = ["ClusterScorer"]


class ClusterScorer(wiring.Component):
    """Cluster ``c``'s score: ``fixed(dot_c * w_c)``, the scoring of ``golden.core``.

    ``dot_c`` is the MAC tree's dot product of the cluster's key sum (rounded to BF16) with
    the mean query, ``w_c = 1/members_c * K_score`` its weight (a memory of the core, read
    here), and the product (``FP32Mul``) becomes the ``score_bits``-bit fixed-point log2 score
    (``FP32ToFixed``) of the DRE's ``clusters`` stream, with the cluster's member count (read
    from the DRE). Two register stages: the weight is read as the dot product enters the
    first; the product enters the second, whose fixed-point score goes to the WTU (so no path
    runs from the weight memory through the multiplier, the conversion and the WTU's bucket
    logic in one cycle: the tiny core's critical path before, 20.4 ns).

    Ports:

    - ``results`` (in stream, the MAC tree's ``result``): ``dot_c`` for ``c = 0, 1, ...``.
    - ``clusters`` (out stream, the DRE's ``clusters``): ``cluster``, ``score``, ``count``,
      ``last`` on cluster ``n_clusters - 1``.
    - ``start`` (in): the next result is cluster 0's.
    - ``n_clusters`` (in): the context's clusters.
    - ``done`` (out): ``n_clusters`` results taken and the last score is out.
    - ``weight_addr``, ``weight_en`` (out), ``weight_data`` (in): the read port of the weights
      (synchronous, ``weight_data`` holds while ``weight_en`` is low).
    - ``count_addr`` (out), ``count_data`` (in): the DRE's member counts (a synchronous
      read: ``count_data`` is the count at the previous cycle's ``count_addr``).
    """

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        C, cid = cfg.resv.max_clusters, cfg.cluster_id_bits
        super().__init__(
            {
                "results": In(stream.Signature(datapath_layouts(cfg).mac_out)),
                "clusters": Out(stream.Signature(dre_layouts(cfg).cluster_score)),
                "start": In(1),
                "n_clusters": In(range(C + 1)),
                "done": Out(1),
                "weight_addr": Out(cid),
                "weight_en": Out(1),
                "weight_data": In(FP32),
                "count_addr": Out(cid),
                "count_data": In(cfg.resv.count_bits),
            }
        )

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        m.submodules.mul = mul = FP32Mul()
        m.submodules.to_fixed = to_fixed = FP32ToFixed(frac_bits=0, width=cfg.resv.score_bits)
        res, clusters = self.results, self.clusters
        rc = Signal(range(cfg.resv.max_clusters + 1), name="result_i")  # results taken
        # Stage 1: the dot product and its cluster id; the weight is read as it enters.
        sv = Signal(name="score_valid")
        sdot = Signal(FP32, name="score_dot")
        sid = Signal(cfg.cluster_id_bits, name="score_id")
        s_adv = Signal(name="score_adv")
        # Stage 2: the weighted product; its fixed-point score and count leave from here.
        pv = Signal(name="product_valid")
        prod = Signal(FP32, name="product")
        pid = Signal(cfg.cluster_id_bits, name="product_id")
        p_adv = Signal(name="product_adv")
        m.d.comb += [
            p_adv.eq(~pv | clusters.ready),
            s_adv.eq(~sv | p_adv),
            mul.a.eq(sdot),
            mul.b.eq(self.weight_data),
            to_fixed.a.eq(prod),
            clusters.valid.eq(pv),
            clusters.payload.cluster.eq(pid),
            clusters.payload.score.eq(to_fixed.q),
            clusters.payload.count.eq(self.count_data),
            clusters.payload.last.eq(pid == self.n_clusters - 1),
            self.count_addr.eq(Mux(p_adv, sid, pid)),
            self.weight_addr.eq(rc),
            self.weight_en.eq(s_adv),
            res.ready.eq(s_adv),
            self.done.eq((rc == self.n_clusters) & ~sv & ~pv),
        ]
        with m.If(s_adv):
            m.d.sync += sv.eq(res.valid)
            with m.If(res.valid):
                m.d.sync += [sdot.eq(res.payload.value), sid.eq(rc), rc.eq(rc + 1)]
        with m.If(p_adv):
            m.d.sync += pv.eq(sv)
            with m.If(sv):
                m.d.sync += [prod.eq(mul.p), pid.eq(sid)]
        with m.If(self.start):
            m.d.sync += rc.eq(0)
        return m
