"""WeightedQuickSelect: the exact-WiCSum baseline of the WTU, ``wtu_lanes`` clusters per
cycle in every phase, bit-exact with ``golden.quickselect.quickselect`` (whose docstring
defines "exact on the WTU's fixed-point inputs" and the key-bisection steps).

Interface (the WTU's streams)
  ``cmd`` (in stream, ``DRELayouts.wtu_cmd``): ``coverage_q`` of the next row.
  ``clusters`` (in stream): with ``wtu_lanes = 1``, ``DRELayouts.cluster_score``: clusters
  0..C-1 in order, ``last`` on C-1; an id out of sequence or a row longer than
  ``max_clusters`` sets ``error``. With ``wtu_lanes = L > 1`` (whatever the bucket mode),
  the multi-lane WTU's ``DRELayouts.cluster_lanes``: L clusters per beat, ids ``base ..
  base + n - 1``, ``base`` = L x the beat's index, ``n < L`` only on the ``last`` beat;
  ``base`` out of sequence, ``n = 0``, ``n > L``, a short beat that is not the last or a
  row longer than ``max_clusters`` set ``error``. Such a row is still selected and ended:
  every beat but the last fills all L lanes (a short one is taken whole), the last one
  ``n`` clamped to 1..L, so the row has no holes and at least one cluster.
  ``selected`` (out stream): the exact selection in ascending id, ``last`` on the final
  beat (there is always at least one id). With ``wtu_lanes = 1``, ``DRELayouts.selected``:
  one id per beat. With ``wtu_lanes = L > 1``, ``DRELayouts.selected_lanes``: the selected
  ids of one row of L ids per beat (``base``, a mask of L lanes; ``golden.resv.emit_beats``),
  rows holding none skipped.
  ``summary`` (out stream, ``DRELayouts.quickselect_summary``): clusters selected, partition
  passes, total mass M, threshold θ, error.

Memories: the row ``O`` and the live set ``A``, each ``wtu_lanes`` banks of (key, count)
(cluster c in bank ``c mod lanes``). Phases, cycles without stalls:
  IDLE     1       accept ``cmd``
  INGEST   ceil(C/L)  one beat per cycle into ``O`` (lane j of a beat to bank j, all L
                   lanes written in the same cycle); min and max key (over the beat's lanes
                   by two trees at L > 1); at L = 1 one cluster per cycle, C cycles
  PASS i   R_i + 2 ``R_i = ceil(reads_i / lanes)`` rows through a 2-stage pipeline: keep the
                   keys of ``S_{i-1}`` (one compare with the previous pivot), weigh them
                   (exp2 table of ``2**score_frac_bits`` entries, a multiply and a shift per
                   lane), compact them in place into ``A`` (prefix count and a lane crossbar),
                   sum ``W(K > p)`` and count and bound both halves of the pivot ``p``;
                   pass 1 reads ``O``, keeps everything and also sums ``M``
  THRESH   1       after pass 1: θ = ceil(coverage_q·M / 2**coverage_frac_bits)
  DECIDE   1       per pass: take the high or the low half; stop when one key is left
  EMIT     1 + R   read ``O`` row by row in id order up to the row of the last selected
                   cluster, one cycle per row: a row's selected ids leave in one beat, a row
                   holding none sends no beat; from row 0 at L = 1 (``R = last + 1``), with
                   more lanes from the row of the first selected cluster, the lowest id of the
                   halves the passes took whole and of the threshold key (``R = last // L -
                   first // L + 1``; ``emit_row_cycles``)
  SUMMARY  1
so ``cycles = ceil(C/L) + Σ_i (ceil(reads_i / L) + 3) + emit_row_cycles +
QUICKSELECT_LATENCY`` (``L = wtu_lanes``) from the ``cmd`` handshake to the ``summary``
handshake (both included), with ``reads_i`` and ``emit_row_cycles`` from
``golden.quickselect.quickselect`` at ``lanes = L``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.quickselect import QuickSelection, exp2_lut

from ..config import HWConfig, ceil_log2, check_config
from ..shared import shared
from .bitops import popcount, tree_sum
from .layouts import lanes_beat_malformed, layouts
from .qs_weight import QSWeight

__all__ = ["QUICKSELECT_LATENCY", "WeightedQuickSelect", "quickselect_cycles"]

#: Fixed cycles of a row: cmd, threshold, the emit's first row read, summary.
QUICKSELECT_LATENCY = 4


def quickselect_cycles(cfg: HWConfig, n_clusters: int, sel: QuickSelection) -> int:
    """``ceil(C / lanes) + Σ_i (ceil(reads_i / lanes) + 3) + emit_row_cycles +
    QUICKSELECT_LATENCY`` (``lanes = wtu_lanes``; ``C`` at one lane): cycles from the ``cmd``
    handshake to the ``summary`` handshake (both included) without stalls; ``sel`` is
    ``golden.quickselect.quickselect`` of the row at ``wtu_lanes``."""
    if not 1 <= n_clusters <= cfg.max_clusters:
        raise ValueError(f"n_clusters must be in 1..{cfg.max_clusters}, not {n_clusters!r}")
    lanes = cfg.wtu_lanes
    beats = -(-n_clusters // lanes)
    passes = sum(-(-r // lanes) + 3 for r in sel.pass_reads)
    return beats + passes + sel.emit_row_cycles + QUICKSELECT_LATENCY


class WeightedQuickSelect(wiring.Component):
    """Exact fixed-point WiCSum by weighted quick-select; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lay = layouts(cfg)
        super().__init__(
            {
                "cmd": In(stream.Signature(lay.wtu_cmd)),
                "clusters": In(
                    stream.Signature(lay.cluster_lanes if cfg.wtu_lanes > 1 else lay.cluster_score)
                ),
                "selected": Out(
                    stream.Signature(lay.selected_lanes if cfg.wtu_lanes > 1 else lay.selected)
                ),
                "summary": Out(stream.Signature(lay.quickselect_summary)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Fixed cycles of a row (see ``cycles``)."""
        return QUICKSELECT_LATENCY

    @property
    def lanes(self) -> int:
        """Clusters per ``clusters`` beat: ``wtu_lanes``, whatever the bucket mode."""
        return self._cfg.wtu_lanes

    def cycles(self, n_clusters: int, sel: QuickSelection) -> int:
        """Cycles from the ``cmd`` handshake to the ``summary`` handshake, without stalls."""
        return quickselect_cycles(self._cfg, n_clusters, sel)

    def _ingest_one(self, m, o_wr, n, cur_min, cur_max, top, err):
        """One cluster per beat (``DRELayouts.cluster_score``) into ``O``; returns the
        clusters of the row after this beat."""
        cfg, r = self._cfg, self._cfg.resv
        cmax, cid = cfg.max_clusters, cfg.cluster_id_bits
        p = self.clusters.payload
        biased = p.score.as_unsigned() ^ (1 << (r.score_bits - 1))
        key = Cat(~n[:cid], biased)
        with m.If(self.clusters.valid):
            with m.If(n < cmax):
                m.d.comb += [
                    o_wr[0].addr.eq(n),
                    o_wr[0].data.key.eq(key),
                    o_wr[0].data.count.eq(p.count),
                    o_wr[0].en.eq(1),
                ]
                m.d.sync += n.eq(n + 1)
                with m.If((n == 0) | (key < cur_min)):
                    m.d.sync += cur_min.eq(key)
                with m.If((n == 0) | (key > cur_max)):
                    m.d.sync += [cur_max.eq(key), top.eq(biased)]
            with m.If((n == cmax) | (p.cluster != n)):
                m.d.sync += err.eq(1)
        return Mux(n == cmax, n, n + 1)

    def _ingest_lanes(self, m, o_wr, n, cur_min, cur_max, top, err):
        """``wtu_lanes`` clusters per beat (``DRELayouts.cluster_lanes``): lane j to bank j,
        row ``n / lanes``, in one cycle; the beat's min and max key by two trees. Returns the
        clusters of the row after this beat (malformed beats: the module docstring)."""
        cfg, r = self._cfg, self._cfg.resv
        lanes, cmax, cid = cfg.wtu_lanes, cfg.max_clusters, cfg.cluster_id_bits
        lb = ceil_log2(lanes)
        kw = cfg.quickselect_key_bits
        p = self.clusters.payload
        # Lanes this beat fills: all of them, or on the last beat n clamped to 1..lanes, so
        # that the row has no holes and is never empty whatever the beat says.
        fill = Signal(range(lanes + 1), name="lanes_filled")
        m.d.comb += fill.eq(Mux(p.last, Mux(p.n == 0, 1, Mux(p.n > lanes, lanes, p.n)), lanes))
        written = Signal(lanes, name="lane_written")
        m.d.comb += written.eq(Cat(*((j < fill) & (n + j < cmax) for j in range(lanes))))
        keys = []
        for j in range(lanes):
            key = Signal(kw, name=f"lane_key{j}")
            biased = p.score[j].as_unsigned() ^ (1 << (r.score_bits - 1))
            m.d.comb += key.eq(Cat(~(n + j)[:cid], biased))
            keys.append(key)
        mins = [Mux(written[j], keys[j], (1 << kw) - 1) for j in range(lanes)]
        maxs = [Mux(written[j], keys[j], 0) for j in range(lanes)]
        while len(mins) > 1:
            mins = [Mux(a < b, a, b) for a, b in zip(mins[::2], mins[1::2], strict=True)]
            maxs = [Mux(a > b, a, b) for a, b in zip(maxs[::2], maxs[1::2], strict=True)]
        beat_min = Signal(kw, name="beat_min")
        beat_max = Signal(kw, name="beat_max")
        m.d.comb += [beat_min.eq(mins[0]), beat_max.eq(maxs[0])]
        n_next = Signal(range(cmax + 1), name="n_clusters_next")
        m.d.comb += n_next.eq(n + popcount(written))
        with m.If(self.clusters.valid):
            # n is a multiple of lanes here (every beat but the last fills all lanes; n stops
            # at max_clusters), so position n + j is bank j, row n / lanes.
            for j in range(lanes):
                m.d.comb += [
                    o_wr[j].addr.eq(n >> lb),
                    o_wr[j].data.key.eq(keys[j]),
                    o_wr[j].data.count.eq(p.count[j]),
                    o_wr[j].en.eq(written[j]),
                ]
            m.d.sync += n.eq(n_next)
            with m.If(written.any()):
                with m.If((n == 0) | (beat_min < cur_min)):
                    m.d.sync += cur_min.eq(beat_min)
                with m.If((n == 0) | (beat_max > cur_max)):
                    m.d.sync += [cur_max.eq(beat_max), top.eq(beat_max[cid:])]
            with m.If(lanes_beat_malformed(p, n, lanes, cmax)):
                m.d.sync += err.eq(1)
        return n_next

    def elaborate(self, platform):
        cfg, r = self._cfg, self._cfg.resv
        lanes, cmax, cid = cfg.wtu_lanes, cfg.max_clusters, cfg.cluster_id_bits
        lb = ceil_log2(lanes)
        rows = -(-cmax // lanes)
        kw = cfg.quickselect_key_bits
        f = r.score_frac_bits
        wbits = r.count_bits + cfg.lut_bits
        kmax = (1 << kw) - 1
        m = Module()

        entry = data.StructLayout({"key": kw, "count": r.count_bits})
        o_rd, a_rd, o_wr, a_wr = [], [], [], []
        for j in range(lanes):
            om = Memory(shape=entry, depth=rows, init=[])
            am = Memory(shape=entry, depth=rows, init=[])
            m.submodules[f"row_mem{j}"] = om
            m.submodules[f"live_mem{j}"] = am
            o_wr.append(om.write_port())
            o_rd.append(om.read_port())
            a_wr.append(am.write_port())
            a_rd.append(am.read_port())
        lut = Array(Const(int(v), cfg.lut_bits) for v in exp2_lut(r))

        n = Signal(range(cmax + 1), name="n_clusters")
        cov_q = Signal(cfg.coverage_q_bits, name="coverage_q")
        err = Signal(name="error")
        top = Signal(r.score_bits, name="top_score")  # biased (unsigned) maximum score
        cur_min = Signal(kw, name="cur_min")
        cur_max = Signal(kw, name="cur_max")
        cur_size = Signal(range(cmax + 1), name="cur_size")
        n_read = Signal(range(cmax + 1), name="n_read")
        first = Signal(name="first_pass")
        p_prev = Signal(kw, name="p_prev")
        go_high = Signal(name="go_high")
        passes = Signal(len(self.summary.payload.passes), name="passes")
        mass = Signal(cfg.mass_bits, name="mass")
        theta = Signal(cfg.mass_bits, name="theta")
        acc = Signal(cfg.mass_bits, name="acc")
        w_high = Signal(cfg.mass_bits, name="w_high")
        n_high = Signal(range(cmax + 1), name="n_high")
        n_low = Signal(range(cmax + 1), name="n_low")
        min_high = Signal(kw, name="min_high")
        max_low = Signal(kw, name="max_low")
        n_above = Signal(range(cmax + 1), name="n_above")
        kstar = Signal(kw, name="kstar")
        # Inverted ids (2**cid - 1 - id): the high half's lowest id this pass, and the lowest
        # id of the halves taken whole so far (every key above the threshold key).
        hi_inv = Signal(cid, name="high_inv_id")
        first_inv = Signal(cid, name="first_inv_id")
        rd_row = Signal(range(rows + 1), name="rd_row")
        wp = Signal(range(cmax + lanes + 1), name="write_pointer")
        emitted = Signal(cfg.occupancy_bits, name="emitted")
        pivot = Signal(kw, name="pivot")
        m.d.comb += pivot.eq((cur_min + cur_max) >> 1)

        m.d.comb += [
            self.summary.payload.n_selected.eq(emitted),
            self.summary.payload.passes.eq(passes),
            self.summary.payload.total_mass.eq(mass),
            self.summary.payload.threshold.eq(theta),
            self.summary.payload.error.eq(err),
        ]
        for j in range(lanes):
            m.d.comb += [o_rd[j].addr.eq(rd_row), a_rd[j].addr.eq(rd_row)]
            m.d.comb += [o_rd[j].en.eq(0), a_rd[j].en.eq(0)]

        # Partition pipeline. Stage 0: the row read last cycle.
        s0_valid = Signal(name="s0_valid")
        s0_row = Signal(range(rows + 1), name="s0_row")
        s1_valid = Signal(name="s1_valid")
        s1_keep = Signal(lanes, name="s1_keep")
        s1_high = Signal(lanes, name="s1_high")
        s1_key = [Signal(kw, name=f"s1_key{j}") for j in range(lanes)]
        s1_count = [Signal(r.count_bits, name=f"s1_count{j}") for j in range(lanes)]
        s1_exp = [Signal(cfg.lut_bits, name=f"s1_exp{j}") for j in range(lanes)]
        s1_shift = [Signal(r.score_bits - f + 1, name=f"s1_shift{j}") for j in range(lanes)]
        m.d.sync += s1_valid.eq(s0_valid)
        for j in range(lanes):
            e = entry(Mux(first, o_rd[j].data.as_value(), a_rd[j].data.as_value()))
            key = e.key
            live = s0_valid & ((s0_row << lb) + j < n_read)
            kept = ~first & Mux(go_high, key > p_prev, key <= p_prev)
            d = Signal(r.score_bits, name=f"s0_dist{j}")
            m.d.comb += d.eq(top - key[cid:])
            m.d.sync += [
                s1_keep[j].eq(live & (first | kept)),
                s1_high[j].eq(key > pivot),
                s1_key[j].eq(key),
                s1_count[j].eq(e.count),
                s1_exp[j].eq(lut[d[:f]] if f else lut[0]),
                s1_shift[j].eq(d[f:]),
            ]

        # Stage 1: weigh, sum, bound and compact the kept keys.
        weights = []
        for j in range(lanes):
            qw = shared(m, f"weight{j}", QSWeight(cfg), cfg)
            w = Signal(wbits, name=f"s1_weight{j}")
            m.d.comb += [
                qw.count.eq(s1_count[j]),
                qw.exp.eq(s1_exp[j]),
                qw.shift.eq(s1_shift[j]),
                w.eq(qw.weight),
            ]
            weights.append(Mux(s1_keep[j], w, 0))
        hi_mask = s1_keep & s1_high
        lo_mask = s1_keep & ~s1_high
        sum_all = tree_sum(weights)
        sum_high = tree_sum([Mux(s1_high[j], weights[j], 0) for j in range(lanes)])
        row_min_high = Signal(kw, name="row_min_high")
        row_max_low = Signal(kw, name="row_max_low")
        mins = [Mux(hi_mask[j], s1_key[j], kmax) for j in range(lanes)]
        maxs = [Mux(lo_mask[j], s1_key[j], 0) for j in range(lanes)]
        while len(mins) > 1:
            mins = [
                Mux(mins[i] < mins[i + 1], mins[i], mins[i + 1]) if i + 1 < len(mins) else mins[i]
                for i in range(0, len(mins), 2)
            ]
            maxs = [
                Mux(maxs[i] > maxs[i + 1], maxs[i], maxs[i + 1]) if i + 1 < len(maxs) else maxs[i]
                for i in range(0, len(maxs), 2)
            ]
        m.d.comb += [row_min_high.eq(mins[0]), row_max_low.eq(maxs[0])]
        # With lanes: the lowest id of the high half (the highest inverted id, the key's low
        # bits), so that the emit can start at the row of the first selected id.
        inv_ids = [Mux(hi_mask[j], s1_key[j][:cid], 0) for j in range(lanes)]
        while len(inv_ids) > 1:
            inv_ids = [Mux(a > b, a, b) for a, b in zip(inv_ids[::2], inv_ids[1::2], strict=True)]
        row_hi_inv = Signal(cid, name="row_high_inv_id")
        m.d.comb += row_hi_inv.eq(inv_ids[0])
        with m.If(s1_valid):
            m.d.sync += hi_inv.eq(Mux(row_hi_inv > hi_inv, row_hi_inv, hi_inv))
            m.d.sync += [
                w_high.eq(w_high + sum_high),
                n_high.eq(n_high + popcount(hi_mask)),
                n_low.eq(n_low + popcount(lo_mask)),
                wp.eq(wp + popcount(s1_keep)),
                min_high.eq(Mux(row_min_high < min_high, row_min_high, min_high)),
                max_low.eq(Mux(row_max_low > max_low, row_max_low, max_low)),
            ]
            with m.If(first):
                m.d.sync += mass.eq(mass + sum_all)
            # Compaction: kept lane j goes to position wp + (kept lanes below j).
            for b in range(lanes):
                for j in range(lanes):
                    pos = wp + (popcount(s1_keep[:j]) if j else 0)
                    with m.If(s1_keep[j] & (pos[:lb] == b if lb else 1)):
                        m.d.comb += [
                            a_wr[b].addr.eq(pos >> lb),
                            a_wr[b].data.key.eq(s1_key[j]),
                            a_wr[b].data.count.eq(s1_count[j]),
                            a_wr[b].en.eq(1),
                        ]

        # Reset of the per-pass state, at the start of every pass.
        start = [
            rd_row.eq(0),
            wp.eq(0),
            s0_valid.eq(0),
            w_high.eq(0),
            n_high.eq(0),
            n_low.eq(0),
            min_high.eq(kmax),
            hi_inv.eq(0),
            max_low.eq(0),
            passes.eq(passes + 1),
        ]

        # Emit: the row of O read last; its selected lanes in one beat.
        emit_row = Signal(range(rows + 1), name="emit_row")
        sel_mask = Signal(lanes, name="sel_mask")
        m.d.comb += sel_mask.eq(
            Cat(((emit_row << lb) + j < n) & (o_rd[j].data.key >= kstar) for j in range(lanes))
        )
        emit_count = Signal(range(lanes + 1), name="emit_count")
        m.d.comb += emit_count.eq(popcount(sel_mask))
        is_last = emitted + emit_count == n_above + 1

        with m.FSM(name="quickselect_fsm"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [
                        cov_q.eq(self.cmd.payload.coverage_q),
                        n.eq(0),
                        err.eq(0),
                        mass.eq(0),
                        acc.eq(0),
                        n_above.eq(0),
                        passes.eq(0),
                        first_inv.eq(0),
                    ]
                    m.next = "INGEST"
            with m.State("INGEST"):
                m.d.comb += self.clusters.ready.eq(1)
                ingest = self._ingest_one if lanes == 1 else self._ingest_lanes
                n_next = ingest(m, o_wr, n, cur_min, cur_max, top, err)
                with m.If(self.clusters.valid & self.clusters.payload.last):
                    m.d.sync += [n_read.eq(n_next), cur_size.eq(n_next), first.eq(1), *start]
                    m.next = "PASS"
            with m.State("PASS"):
                issue = (rd_row << lb) < n_read
                m.d.sync += [s0_valid.eq(issue), s0_row.eq(rd_row)]
                for j in range(lanes):
                    m.d.comb += [o_rd[j].en.eq(issue), a_rd[j].en.eq(issue)]
                with m.If(issue):
                    m.d.sync += rd_row.eq(rd_row + 1)
                with m.If(~issue & ~s0_valid):  # stage 1 finishes the last row now
                    with m.If(first):
                        m.next = "THRESH"
                    with m.Else():
                        m.next = "DECIDE"
            with m.State("THRESH"):
                one = (1 << r.coverage_frac_bits) - 1
                m.d.sync += theta.eq((cov_q * mass + one) >> r.coverage_frac_bits)
                m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(cur_size == 1):  # a one-cluster row: nothing to split
                    m.d.sync += kstar.eq(cur_min)
                    m.next = "EMIT_FETCH"
                with m.Else():
                    high = acc + w_high >= theta
                    size = Mux(high, n_high, n_low)
                    m.d.sync += [
                        go_high.eq(high),
                        p_prev.eq(pivot),
                        first.eq(0),
                        n_read.eq(cur_size),
                        cur_size.eq(size),
                    ]
                    with m.If(high):
                        m.d.sync += cur_min.eq(min_high)
                    with m.Else():
                        m.d.sync += [
                            acc.eq(acc + w_high),
                            cur_max.eq(max_low),
                            n_above.eq(n_above + n_high),
                            first_inv.eq(Mux(hi_inv > first_inv, hi_inv, first_inv)),
                        ]
                    with m.If(size == 1):
                        m.d.sync += kstar.eq(Mux(high, min_high, cur_min))
                        m.next = "EMIT_FETCH"
                    with m.Else():
                        m.d.sync += start
                        m.next = "PASS"
            with m.State("EMIT_FETCH"):
                # With lanes, start at the row of the first selected id (the lowest id of the
                # halves taken whole and of the threshold key); one lane starts at row 0.
                first_row = Signal(range(rows), name="emit_first_row")
                if lanes > 1:
                    inv = Mux(kstar[:cid] > first_inv, kstar[:cid], first_inv)
                    m.d.comb += first_row.eq((~inv)[:cid] >> lb)
                for j in range(lanes):
                    m.d.comb += [o_rd[j].addr.eq(first_row), o_rd[j].en.eq(1)]
                m.d.sync += [emit_row.eq(first_row), emitted.eq(0)]
                m.next = "EMIT"
            with m.State("EMIT"):
                advance = Signal(name="emit_advance")
                out = self.selected.payload
                with m.If(sel_mask.any()):
                    m.d.comb += [self.selected.valid.eq(1), out.last.eq(is_last)]
                    if lanes == 1:
                        m.d.comb += out.cluster.eq(emit_row)
                    else:
                        m.d.comb += [out.base.eq(emit_row << lb), out.mask.eq(sel_mask)]
                    with m.If(self.selected.ready):
                        m.d.sync += emitted.eq(emitted + emit_count)
                        with m.If(is_last):
                            m.next = "SUMMARY"
                        with m.Else():
                            m.d.comb += advance.eq(1)
                with m.Else():  # a row holding no selected id: no beat
                    m.d.comb += advance.eq(1)
                with m.If(advance):
                    for j in range(lanes):
                        m.d.comb += [o_rd[j].addr.eq(emit_row + 1), o_rd[j].en.eq(1)]
                    m.d.sync += emit_row.eq(emit_row + 1)
            with m.State("SUMMARY"):
                m.d.comb += self.summary.valid.eq(1)
                with m.If(self.summary.ready):
                    m.next = "IDLE"
        return m
