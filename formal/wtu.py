"""Formal harness of ``WiCSumThresholdUnit`` (WTU), ``relative`` or ``grid`` buckets.

``props="stream"`` (k-induction): ``selected`` and ``summary`` hold valid and payload until
their handshakes.

``props="model"`` (bounded): the environment sends well-formed rows (a ``cmd`` with
``1 <= coverage_q <= 2**coverage_frac_bits``, then clusters 0, 1, …, C-1 with ``last`` on
the final one, C <= ``max_clusters``). The harness keeps the row's scores and counts and
checks: every selected id is below C, not selected twice in the row and comes after the
row was ingested; no id after the one with ``last``; the summary comes after ``last`` and
counts the ids sent; ``b* < n_buckets`` (``n_buckets`` is 3 here, not a power of two, so
this is not implied by the field's width), ``buckets_scanned = b* + 1``, ``error`` low; the
selected set is exactly the clusters whose bucket (``relative``: ``(max - score) >>
bucket_shift``; ``grid``: ``(max >> bucket_shift) - (score >> bucket_shift)``) is at most
``b*``. Covers: a row with an out-of-range cluster (bucket >= n_buckets) and a row
that scans up to the last bucket.

``props="mass"`` (bounded, same environment, the summary checks but the selected set):
``total_mass`` is ``Σ count·L[bucket]`` over the in-range clusters, ``threshold`` is
``ceil(coverage_q·M / 2**coverage_frac_bits)``, the mass of buckets ``0..b*`` reaches it and
that of ``0..b*-1`` does not. A separate task because the arithmetic makes each bounded
step several times slower.

``bug``: ``"unique"`` asserts that no two selected ids ever repeat across rows (a row
selects the maximum again, so it must fail).
"""

from __future__ import annotations

from amaranth.hdl import (
    Array,
    Assert,
    Assume,
    Cat,
    Cover,
    Elaboratable,
    Module,
    Mux,
    Signal,
    signed,
)

from golden.resv import bucket_lut
from hw.config import HWConfig, preset
from hw.dre.wtu import WiCSumThresholdUnit

from .props import Env, popcount

__all__ = ["WTUHarness", "wtu_config", "wtu_grid_config"]

_PROPS = ("stream", "model", "mass")
_BUGS = (None, "unique")


def wtu_config() -> HWConfig:
    """``tiny`` cut down: 3 clusters, 4-bit scores (2 fractional bits), buckets of 2 score
    steps, 3 buckets (L = 4, 3, 2), 2-bit counts, 2-bit coverage fraction, relative buckets
    (the presets' grid buckets are ``wtu_grid_config``)."""
    return preset("tiny").replace(
        hcu_lanes=2,
        topk_k=2,
        wtu_lanes=2,
        resv={
            "bucket_mode": "relative",
            "max_clusters": 3,
            "score_frac_bits": 2,
            "score_bits": 4,
            "bucket_shift": 1,
            "n_buckets": 3,
            "count_bits": 2,
            "lut_frac_bits": 2,
            "coverage_frac_bits": 2,
        },
    )


def wtu_grid_config() -> HWConfig:
    """``wtu_config`` with ``bucket_mode = "grid"`` (one-pass histogram), one lane: the
    harness drives the one-cluster ``clusters`` stream (with ``wtu_lanes`` > 1 a grid WTU
    takes ``cluster_lanes`` beats instead, which no harness drives yet)."""
    return wtu_config().replace(wtu_lanes=1, resv={"bucket_mode": "grid"})


class WTUHarness(Elaboratable):
    def __init__(self, cfg: HWConfig | None = None, *, props: str = "stream", bug=None):
        if props not in _PROPS:
            self._MustUse__silence = True
            raise ValueError(f"props must be one of {_PROPS}, not {props!r}")
        if bug not in _BUGS:
            self._MustUse__silence = True
            raise ValueError(f"bug must be one of {_BUGS}, not {bug!r}")
        self.cfg = cfg if cfg is not None else wtu_config()
        self.props = props
        self.bug = bug

    def elaborate(self, platform):
        m = Module()
        env = Env(m)
        m.submodules.dut = dut = WiCSumThresholdUnit(self.cfg)
        env.drive_source(dut.cmd, name="cmd")
        env.drive_source(dut.clusters, name="clusters")
        env.drive_sink(dut.selected, name="selected")
        env.drive_sink(dut.summary, name="summary")
        env.assert_stable(dut.selected, name="selected")
        env.assert_stable(dut.summary, name="summary")
        if self.props != "stream":
            self._model(m, env, dut)
        return m

    def _model(self, m, env, dut):
        cfg, r = self.cfg, self.cfg.resv
        mc, nb, cf = cfg.max_clusters, r.n_buckets, r.coverage_frac_bits
        cmd, cl, sel, summ = dut.cmd, dut.clusters, dut.selected, dut.summary

        in_row = Signal(name="m_in_row")  # cmd taken, last cluster not yet
        row_done = Signal(name="m_row_done")  # last cluster taken, summary not yet
        c = Signal(range(mc + 1), name="m_n_clusters")
        cov = Signal(cfg.coverage_q_bits, name="m_coverage_q")
        score = [Signal(signed(r.score_bits), name=f"m_score{i}") for i in range(mc)]
        count = [Signal(r.count_bits, name=f"m_count{i}") for i in range(mc)]
        mask = Signal(mc, name="m_selected")
        ever = Signal(mc, name="m_ever_selected")
        n_sel = Signal(range(mc + 1), name="m_n_selected")
        seen_last = Signal(name="m_seen_last")

        m.d.comb += [
            Assume(
                ~cmd.valid | ((cmd.payload.coverage_q >= 1) & (cmd.payload.coverage_q <= 1 << cf))
            ),
            Assume(~cl.valid | (in_row & (cl.payload.cluster == c))),
            Assume(~cl.valid | (c != mc - 1) | cl.payload.last),
            Assume(~cmd.valid | (~in_row & ~row_done)),
        ]
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [
                in_row.eq(1),
                c.eq(0),
                cov.eq(cmd.payload.coverage_q),
                mask.eq(0),
                n_sel.eq(0),
                seen_last.eq(0),
            ]
        with m.If(cl.valid & cl.ready):
            m.d.sync += c.eq(c + 1)
            for i in range(mc):
                with m.If(c == i):
                    m.d.sync += [score[i].eq(cl.payload.score), count[i].eq(cl.payload.count)]
            with m.If(cl.payload.last):
                m.d.sync += [in_row.eq(0), row_done.eq(1)]
        with m.If(summ.valid & summ.ready):
            m.d.sync += row_done.eq(0)

        # The reference: maximum, buckets, mass, threshold and the cumulative masses.
        lut = Array(int(v) for v in bucket_lut(r))
        top = Signal(signed(r.score_bits), name="m_max")
        acc = score[0]
        for i in range(1, mc):
            acc = Mux((i < c) & (score[i] > acc), score[i], acc)
        m.d.comb += top.eq(acc)
        buckets, weights, live = [], [], []
        for i in range(mc):
            b = Signal(r.score_bits + 1, name=f"m_bucket{i}")
            if r.bucket_mode == "grid":  # golden.resv.bucket_of: arithmetic shifts
                sh = r.bucket_shift
                m.d.comb += b.eq(((top >> sh) - (score[i] >> sh)).as_unsigned())
            else:
                m.d.comb += b.eq((top - score[i]).as_unsigned() >> r.bucket_shift)
            ok = Signal(name=f"m_in_range{i}")
            m.d.comb += ok.eq((i < c) & (b < nb))
            w = Signal(cfg.mass_bits, name=f"m_weight{i}")
            m.d.comb += w.eq(Mux(ok, count[i] * lut[Mux(ok, b, 0)], 0))
            buckets.append(b)
            weights.append(w)
            live.append(ok)
        mass = Signal(cfg.mass_bits + 1, name="m_mass")
        m.d.comb += mass.eq(sum(weights))
        theta = Signal(cfg.mass_bits + 1, name="m_theta")
        m.d.comb += theta.eq((cov * mass + (1 << cf) - 1) >> cf)
        b_star = summ.payload.b_star

        def mass_upto(limit):
            return sum(Mux(live[i] & (buckets[i] <= limit), weights[i], 0) for i in range(mc))

        with m.If(sel.valid):
            m.d.comb += [
                Assert(row_done, "selected: an id before the row was ingested"),
                Assert(sel.payload.cluster < c, "selected: id not below the row length"),
                Assert(~mask.bit_select(sel.payload.cluster, 1), "selected: id repeated"),
                Assert(~seen_last, "selected: an id after the last one"),
            ]
            if self.bug == "unique":
                m.d.comb += Assert(~ever.bit_select(sel.payload.cluster, 1), "bug: never again")
        with m.If(sel.valid & sel.ready):
            m.d.sync += [
                mask.eq(mask | (1 << sel.payload.cluster)),
                ever.eq(ever | (1 << sel.payload.cluster)),
                n_sel.eq(n_sel + 1),
                seen_last.eq(seen_last | sel.payload.last),
            ]
        with m.If(summ.valid):
            m.d.comb += [
                Assert(seen_last, "summary: before the last selected id"),
                Assert(summ.payload.n_selected == n_sel, "summary: n_selected != ids sent"),
                Assert(b_star < nb, "summary: b* not below n_buckets"),
                Assert(summ.payload.buckets_scanned == b_star + 1, "summary: buckets_scanned"),
                Assert(~summ.payload.error, "summary: error on a well-formed row"),
            ]
            if self.props == "mass":
                m.d.comb += [
                    Assert(summ.payload.total_mass == mass, "summary: total mass"),
                    Assert(summ.payload.threshold == theta, "summary: threshold"),
                    Assert(mass_upto(b_star) >= theta, "summary: buckets 0..b* miss θ"),
                    Assert(
                        (b_star == 0) | (mass_upto(b_star - 1) < theta),
                        "summary: b* is not the first bucket reaching the threshold",
                    ),
                ]
            else:
                for i in range(mc):
                    want = (i < c) & (buckets[i] <= b_star)
                    m.d.comb += Assert(
                        mask[i] == want, f"summary: cluster {i} wrongly (un)selected"
                    )
        out_of_range = Signal(name="m_out_of_range")
        m.d.comb += out_of_range.eq(Cat(*[(i < c) & ~live[i] for i in range(mc)]).any())
        m.d.comb += [
            Cover(summ.valid & out_of_range, "out-of-range bucket"),
            Cover(
                summ.valid & (b_star == nb - 1) & (popcount(mask) >= 2), "scan to the last bucket"
            ),
        ]
