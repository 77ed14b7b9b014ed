"""TopKSelector: the conventional baseline the WTU is measured against (SpAtten-style).

A parallel insertion sorter of ``P = topk_k`` slots keeps the best clusters seen so far in
descending score order (ties: lower id first); each arriving cluster is compared with every
slot at once and inserted in one cycle. When ``k > P`` the row is kept in a score memory and
re-read: every further pass takes the next ``P`` clusters strictly after the last one
emitted in (descending score, ascending id) order. The reference is
``golden.topk.topk_select``.

Interface (the same streams as the WTU)
  ``cmd`` (in stream, ``DRELayouts.topk_cmd``): ``k`` of the next row (0..max_clusters).
  ``clusters`` (in stream, ``DRELayouts.cluster_score``): clusters 0..C-1 in order, ``last``
  on the final one; ``count`` is ignored (a top-k selector does not weigh by count).
  ``selected`` (out stream, ``DRELayouts.selected``): ``min(k, C)`` ids, descending score,
  ``last`` on the final one (no beat at all for ``k = 0``).
  ``summary`` (out stream, ``DRELayouts.topk_summary``): clusters selected, passes, error.

Cycles without stalls, from the ``cmd`` handshake to the ``summary`` handshake included,
with ``k' = min(k, C)`` and ``p = max(1, ceil(k' / P))`` passes:
  1 (cmd) + C (ingest = pass 1) + k' (emit) + (p - 1)·(C + 1) (re-read passes) + 1 (summary).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, check_config
from .layouts import layouts

__all__ = ["TOPK_LATENCY", "TopKSelector", "topk_cycles", "topk_passes"]

#: Fixed cycles of a row: the cmd and the summary beats.
TOPK_LATENCY = 2


def topk_passes(cfg: HWConfig, n_clusters: int, k: int) -> int:
    """Passes over the row: ``max(1, ceil(min(k, C) / topk_k))``."""
    return max(1, -(-min(k, n_clusters) // cfg.topk_k))


def topk_cycles(cfg: HWConfig, n_clusters: int, k: int) -> int:
    """``C + k' + (passes - 1)·(C + 1) + TOPK_LATENCY`` with ``k' = min(k, C)``: cycles from
    the ``cmd`` handshake to the ``summary`` handshake (both included) without stalls."""
    if not 1 <= n_clusters <= cfg.max_clusters:
        raise ValueError(f"n_clusters must be in 1..{cfg.max_clusters}, not {n_clusters!r}")
    if not 0 <= k <= cfg.max_clusters:
        raise ValueError(f"k must be in 0..{cfg.max_clusters}, not {k!r}")
    extra = (topk_passes(cfg, n_clusters, k) - 1) * (n_clusters + 1)
    return n_clusters + min(k, n_clusters) + extra + TOPK_LATENCY


class TopKSelector(wiring.Component):
    """Exact top-k by score with a ``topk_k``-slot insertion sorter; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lay = layouts(cfg)
        super().__init__(
            {
                "cmd": In(stream.Signature(lay.topk_cmd)),
                "clusters": In(stream.Signature(lay.cluster_score)),
                "selected": Out(stream.Signature(lay.selected)),
                "summary": Out(stream.Signature(lay.topk_summary)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Fixed cycles of a row (cmd and summary beats); see ``cycles``."""
        return TOPK_LATENCY

    def passes(self, n_clusters: int, k: int) -> int:
        """Passes over the row (see ``topk_passes``)."""
        return topk_passes(self._cfg, n_clusters, k)

    def cycles(self, n_clusters: int, k: int) -> int:
        """Cycles from the ``cmd`` handshake to the ``summary`` handshake, without stalls."""
        return topk_cycles(self._cfg, n_clusters, k)

    def elaborate(self, platform):
        cfg, r = self._cfg, self._cfg.resv
        slots, cmax, cid = cfg.topk_k, cfg.max_clusters, cfg.cluster_id_bits
        multipass = slots < cmax  # with P >= C one pass always suffices: no memory
        m = Module()

        k = Signal(cfg.occupancy_bits, name="k")
        n = Signal(range(cmax + 1), name="n_clusters")
        k_eff = Signal(cfg.occupancy_bits, name="k_eff")
        err = Signal(name="error")
        emitted = Signal(cfg.occupancy_bits, name="emitted")
        pass_emitted = Signal(range(slots + 1), name="pass_emitted")
        passes = Signal(cfg.topk_passes_bits, name="passes")
        bounded = Signal(name="bounded")
        bound_score = Signal(signed(r.score_bits), name="bound_score")
        bound_id = Signal(cid, name="bound_id")
        valid = Array(Signal(name=f"slot{j}_valid") for j in range(slots))
        score = Array(Signal(signed(r.score_bits), name=f"slot{j}_score") for j in range(slots))
        ident = Array(Signal(cid, name=f"slot{j}_id") for j in range(slots))

        # Insertion of one candidate (``cand_*``) into the sorted slots.
        cand_valid = Signal(name="cand_valid")
        cand_score = Signal(signed(r.score_bits), name="cand_score")
        cand_id = Signal(cid, name="cand_id")
        after_bound = (
            ~bounded
            | (cand_score < bound_score)
            | ((cand_score == bound_score) & (cand_id > bound_id))
        )
        insert = cand_valid & after_bound
        # Candidates arrive in ascending id order, so an equal score already in a slot wins.
        beats = Signal(slots, name="beats")
        m.d.comb += beats.eq(Cat(valid[j] & (score[j] >= cand_score) for j in range(slots)))
        with m.If(insert):
            # ``beats`` is a prefix mask: the candidate lands on its first zero, the slots
            # below move down by one and the last one falls off.
            for j in range(slots):
                with m.If(~beats[j] & (beats[j - 1] if j else 1)):
                    m.d.sync += [valid[j].eq(1), score[j].eq(cand_score), ident[j].eq(cand_id)]
                if j:
                    with m.Elif(~beats[j]):
                        m.d.sync += [
                            valid[j].eq(valid[j - 1]),
                            score[j].eq(score[j - 1]),
                            ident[j].eq(ident[j - 1]),
                        ]

        if multipass:
            m.submodules.score_mem = score_mem = Memory(
                shape=signed(r.score_bits), depth=cmax, init=[]
            )
            score_wr, score_rd = score_mem.write_port(), score_mem.read_port()
            rd_i = Signal(range(cmax + 1), name="rd_index")
            s1_valid, s1_id = Signal(name="s1_valid"), Signal(cid, name="s1_id")
            m.d.comb += score_rd.addr.eq(rd_i)

        m.d.comb += [
            self.summary.payload.n_selected.eq(emitted),
            self.summary.payload.passes.eq(passes),
            self.summary.payload.error.eq(err),
        ]

        with m.FSM(name="topk_fsm"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [
                        k.eq(self.cmd.payload.k),
                        n.eq(0),
                        err.eq(0),
                        emitted.eq(0),
                        pass_emitted.eq(0),
                        passes.eq(1),
                        bounded.eq(0),
                    ]
                    m.d.sync += [v.eq(0) for v in valid]
                    m.next = "INGEST"
            with m.State("INGEST"):
                p = self.clusters.payload
                m.d.comb += [
                    self.clusters.ready.eq(1),
                    cand_valid.eq(self.clusters.valid & (n < cmax)),
                    cand_score.eq(p.score),
                    cand_id.eq(n),
                ]
                with m.If(self.clusters.valid):
                    with m.If(n < cmax):
                        m.d.sync += n.eq(n + 1)
                        if multipass:
                            m.d.comb += [
                                score_wr.addr.eq(n),
                                score_wr.data.eq(p.score),
                                score_wr.en.eq(1),
                            ]
                    with m.If((n == cmax) | (p.cluster != n)):
                        m.d.sync += err.eq(1)
                    with m.If(p.last):
                        total = Mux(n == cmax, n, n + 1)
                        m.d.sync += k_eff.eq(Mux(k < total, k, total))
                        with m.If(k == 0):
                            m.next = "SUMMARY"
                        with m.Else():
                            m.next = "EMIT"
            with m.State("EMIT"):
                last = emitted + 1 == k_eff
                m.d.comb += [
                    self.selected.valid.eq(1),
                    self.selected.payload.cluster.eq(ident[0]),
                    self.selected.payload.last.eq(last),
                ]
                with m.If(~valid[0]):
                    m.d.sync += err.eq(1)  # cannot happen: k' <= C keeps the slots filled
                with m.If(self.selected.ready):
                    # Shift the slots up by one; the emitted cluster becomes the bound.
                    for j in range(slots):
                        if j + 1 < slots:
                            m.d.sync += [
                                valid[j].eq(valid[j + 1]),
                                score[j].eq(score[j + 1]),
                                ident[j].eq(ident[j + 1]),
                            ]
                        else:
                            m.d.sync += valid[j].eq(0)
                    m.d.sync += [
                        emitted.eq(emitted + 1),
                        pass_emitted.eq(pass_emitted + 1),
                        bound_score.eq(score[0]),
                        bound_id.eq(ident[0]),
                        bounded.eq(1),
                    ]
                    with m.If(last):
                        m.next = "SUMMARY"
                    if multipass:
                        with m.Elif(pass_emitted + 1 == slots):
                            m.d.sync += [rd_i.eq(0), s1_valid.eq(0), pass_emitted.eq(0)]
                            m.d.sync += passes.eq(passes + 1)
                            m.next = "PASS"
            if multipass:
                with m.State("PASS"):
                    issue = rd_i < n
                    m.d.sync += [s1_valid.eq(issue), s1_id.eq(rd_i)]
                    with m.If(issue):
                        m.d.sync += rd_i.eq(rd_i + 1)
                    m.d.comb += [
                        cand_valid.eq(s1_valid),
                        cand_score.eq(score_rd.data),
                        cand_id.eq(s1_id),
                    ]
                    with m.If(~issue):
                        m.next = "EMIT"
            with m.State("SUMMARY"):
                m.d.comb += self.summary.valid.eq(1)
                with m.If(self.summary.ready):
                    m.next = "IDLE"
        return m
