"""WiCSumThresholdUnit on the Amaranth simulator, bit-exact against
golden.resv.wicsum_select_bucketed (grid buckets at 1, 2, 4, 8 and 16 lanes too: L clusters
per ingest beat, the selected ids of a row of L in one ``selected`` beat)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.resv import bucket_lut
from hw.config import preset
from hw.dre import WiCSumThresholdUnit, wtu_cycles, wtu_ingest_lanes, wtu_scan_group
from sim.cases.dre import (
    ScoreRow,
    beat_ids,
    beat_tuple,
    score_row,
    selected_beats,
    wtu_beats,
    wtu_expected,
)
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

# The SPEC's relative buckets (the presets use grid buckets; ``GRID`` and ``mode_cfg``).
RELATIVE = {"bucket_mode": "relative"}
TINY = preset("tiny").replace(resv=RELATIVE)
CONFIGS = {
    "tiny": TINY,
    # Non-power-of-two bucket count and table, unit-wide buckets.
    "odd": TINY.replace(resv={"max_clusters": 12, "n_buckets": 12, "bucket_shift": 0}),
    # A single bucket and a two-entry table.
    "one_bucket": TINY.replace(resv={"max_clusters": 2, "n_buckets": 1}, topk_k=1, hcu_lanes=2),
    # The paper's fixed-point formats (16-bit scores and counts, 64 buckets), small table.
    "paper_formats": preset("paper").replace(resv={**RELATIVE, "max_clusters": 48}, topk_k=8),
}
# Grid buckets (single pass) on the same configurations, one cluster per beat.
GRID = {name: c.replace(resv={"bucket_mode": "grid"}, wtu_lanes=1) for name, c in CONFIGS.items()}
# (mode, wtu_lanes): relative buckets are single-lane whatever wtu_lanes.
MODES = [("relative", 4), ("grid", 1), ("grid", 2), ("grid", 4), ("grid", 16)]
KINDS = ["normal", "ties", "one_bucket", "extremes", "wide"]


def row_beats(cfg, row: ScoreRow, *, bad_id_at: int | None = None):
    return wtu_beats(cfg, row, bad_id_at=bad_id_at)


def mode_cfg(base, mode: str, lanes: int):
    """``base`` with ``mode`` buckets and ``lanes``; 16 grid lanes over a 64-entry table
    (rows of 1..4 beats)."""
    if mode == "grid" and lanes == 16 and base.max_clusters < 64:
        base = base.replace(resv={"max_clusters": 64})
    return base.replace(resv={"bucket_mode": mode}, wtu_lanes=lanes)


def simulate(cfg, rows: list[ScoreRow], *, timing: str, seed: int, vcd, bad_id_row=None):
    dut = WiCSumThresholdUnit(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    out: dict = {"dut": dut}

    async def cmd_src(ctx):
        rng = np.random.default_rng([seed, 1])
        out["cmd_t"] = await stream_put(
            ctx,
            dut.cmd,
            [{"coverage_q": r.coverage_q} for r in rows],
            cycle=h.cycle,
            rng=rng,
            idle=idle,
        )

    async def cluster_src(ctx):
        rng = np.random.default_rng([seed, 2])
        for i, r in enumerate(rows):
            bad = 0 if i == bad_id_row else None
            await stream_put(
                ctx,
                dut.clusters,
                row_beats(cfg, r, bad_id_at=bad),
                cycle=h.cycle,
                rng=rng,
                idle=idle,
            )

    async def sel_sink(ctx):
        rng = np.random.default_rng([seed, 3])
        out["selected"] = []
        for _ in rows:
            beats = await stream_get(
                ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last, rng=rng, stall=stall
            )
            out["selected"].append([p for p, _ in beats])
        await assert_idle(ctx, dut.selected, 50)

    async def sum_sink(ctx):
        rng = np.random.default_rng([seed, 4])
        beats = await stream_get(
            ctx,
            dut.summary,
            cycle=h.cycle,
            count=len(rows),
            rng=rng,
            stall=stall,
            timeout=20 * cfg.max_clusters + 500,
        )
        out["summary"] = [p for p, _ in beats]
        out["summary_t"] = [t for _, t in beats]
        await assert_idle(ctx, dut.summary, 50)

    run(
        h,
        [cmd_src, cluster_src, sel_sink, sum_sink],
        vcd=vcd,
        traces=[h.cycle, dut.cmd, dut.clusters, dut.selected, dut.summary],
    )
    return out


def check(cfg, rows, out, *, exact_cycles: bool) -> None:
    dut = out["dut"]
    for i, row in enumerate(rows):
        exp = wtu_expected(cfg, row)
        sel = out["selected"][i]
        lanes = wtu_ingest_lanes(cfg)
        ids = [c for p in sel for c in beat_ids(p, lanes)]
        assert ids == exp.selected.tolist(), f"row {i}: selection"
        assert [beat_tuple(p, lanes) for p in sel] == selected_beats(ids, lanes), f"row {i}: beats"
        assert [p.last for p in sel] == [0] * (len(sel) - 1) + [1], f"row {i}: last flags"
        s = out["summary"][i]
        got = (s.b_star, s.buckets_scanned, s.n_selected, s.total_mass, s.threshold, s.error)
        want = (
            exp.b_star,
            exp.buckets_scanned,
            exp.clusters_emitted,
            exp.total_mass,
            exp.threshold,
            0,
        )
        assert got == want, f"row {i}: summary"
        cycles = out["summary_t"][i] - out["cmd_t"][i] + 1
        formula = dut.cycles(
            row.scores.size, exp.b_star, exp.clusters_emitted, emit_cycles=exp.emit_cycles
        )
        if exact_cycles:
            assert cycles == formula, f"row {i}: cycles"
        else:
            assert cycles >= formula, f"row {i}: faster than the formula"


def make_rows(cfg, seed: int, count: int) -> list[ScoreRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        n = int(rng.integers(1, cfg.max_clusters + 1))
        n = 1 if i == 0 else cfg.max_clusters if i == 1 else n
        rows.append(score_row(cfg, n, seed=seed * 100 + i, kind=KINDS[i % len(KINDS)]))
    return rows


@pytest.mark.parametrize(("mode", "lanes"), MODES)
@pytest.mark.parametrize("timing", list(TIMINGS))
def test_wtu_tiny(timing, mode, lanes, tmp_path):
    cfg = mode_cfg(TINY, mode, lanes)
    rows = make_rows(cfg, 7, 25)
    out = simulate(cfg, rows, timing=timing, seed=1, vcd=tmp_path / "wtu.vcd")
    check(cfg, rows, out, exact_cycles=timing == "none")


@pytest.mark.parametrize(("mode", "lanes"), [("relative", 1), ("grid", 1), ("grid", 4)])
@pytest.mark.parametrize("name", ["odd", "one_bucket", "paper_formats"])
def test_wtu_configs(name, mode, lanes, tmp_path):
    cfg = CONFIGS[name] if mode == "relative" else GRID[name].replace(wtu_lanes=lanes)
    rows = make_rows(cfg, 8, 8)
    out = simulate(cfg, rows, timing="random", seed=2, vcd=tmp_path / "wtu.vcd")
    check(cfg, rows, out, exact_cycles=False)


@pytest.mark.parametrize(("mode", "lanes"), MODES)
def test_wtu_corner_rows(mode, lanes, tmp_path):
    cfg = mode_cfg(TINY, mode, lanes)
    r, one = cfg.resv, 1 << cfg.resv.coverage_frac_bits
    n = cfg.max_clusters
    width = 1 << r.bucket_shift  # one bucket, in score LSBs
    rows = [
        # One cluster, coverage 1.0.
        ScoreRow(scores=np.array([5]), counts=np.array([3]), coverage_q=one),
        # All clusters in one bucket (equal scores), coverage 1.0: everything, in id order.
        ScoreRow(scores=np.full(n, -7), counts=np.arange(1, n + 1), coverage_q=one),
        # Counts at the maximum width, scores at the saturation limits.
        ScoreRow(
            scores=np.array([r.score_max, r.score_min] * (n // 2)),
            counts=np.full(n, r.count_max),
            coverage_q=one,
        ),
        # All counts zero: no mass, theta = 0, b* = 0.
        ScoreRow(scores=np.arange(n) * 40, counts=np.zeros(n, np.int64), coverage_q=one // 2),
        # Smallest coverage: b* = 0 whenever the top bucket has any mass.
        ScoreRow(scores=np.arange(n) * 3, counts=np.ones(n, np.int64), coverage_q=1),
        # Ascending scores: selected ids come out in bucket order, not id order.
        ScoreRow(scores=np.arange(n) * 20, counts=np.ones(n, np.int64), coverage_q=one - 1),
        # The top rises by half the range at a time: the grid drops half its bins each time.
        ScoreRow(
            scores=(np.arange(n) // 3) * (r.n_buckets // 2) * width - 900,
            counts=np.arange(n) % 5 + 1,
            coverage_q=one,
        ),
        # A low start, a jump past the whole range, then clusters below the range.
        ScoreRow(
            scores=np.array([-1000, -990, 900] + [-1000 + 7 * j for j in range(n - 3)]),
            counts=np.full(n, 2),
            coverage_q=one,
        ),
        # Every bucket filled, then rises of 3 and 7 cells: the grid must empty exactly the
        # bins that leave the range (stale counts would add mass).
        ScoreRow(
            scores=np.resize([0, -2, -4, -6, -8, -10, -12, -14, 3, -11, -9, 10, -1, -5, -3, 1], n)
            * width
            + 3,
            counts=np.arange(n) % 3 + 1,
            coverage_q=one,
        ),
        # Negative scores around grid-cell edges (floor shifts).
        ScoreRow(
            scores=np.resize([-1, -width, -width - 1, 0, width - 1, -2 * width], n),
            counts=np.ones(n, np.int64),
            coverage_q=one * 3 // 4,
        ),
        # Only the first and the last id selected: with lanes, the rows between hold none.
        ScoreRow(
            scores=np.array([500] + [-900] * (n - 2) + [500]),
            counts=np.ones(n, np.int64),
            coverage_q=one // 2,
        ),
    ]
    # 64 clusters at 16 lanes: keep the ramps in the score range.
    rows = [replace(x, scores=np.clip(x.scores, r.score_min, r.score_max)) for x in rows]
    exp = [wtu_expected(cfg, x) for x in rows]
    assert exp[1].selected.tolist() == list(range(n))
    assert exp[2].selected.tolist() == list(range(0, n, 2))
    assert exp[3].total_mass == 0 and exp[3].b_star == 0
    top = list(range(n - 1, n - 1 - exp[5].selected.size, -1))
    # Bucket order with one lane per beat, ascending id with more.
    assert exp[5].selected.tolist() == (top if lanes == 1 or mode == "relative" else top[::-1])
    assert exp[5].selected.size > 2
    assert exp[10].selected.tolist() == [0, n - 1]
    out = simulate(cfg, rows, timing="none", seed=3, vcd=tmp_path / "wtu.vcd")
    check(cfg, rows, out, exact_cycles=True)


@pytest.mark.parametrize("lanes", [1, 4])
def test_wtu_flags_bad_id_and_recovers(lanes, tmp_path):
    cfg = TINY if lanes == 1 else mode_cfg(TINY, "grid", lanes)
    rows = make_rows(cfg, 9, 3)
    out = simulate(cfg, rows, timing="random", seed=4, vcd=tmp_path / "wtu.vcd", bad_id_row=1)
    assert [s.error for s in out["summary"]] == [0, 1, 0]
    good = [rows[0], rows[2]]
    check(
        cfg,
        good,
        {
            **out,
            **{k: [out[k][0], out[k][2]] for k in ("selected", "summary", "summary_t", "cmd_t")},
        },
        exact_cycles=False,
    )


@pytest.mark.parametrize(("mode", "lanes"), MODES)
def test_wtu_reset_mid_row(mode, lanes, tmp_path):
    cfg = mode_cfg(TINY, mode, lanes)
    dut = WiCSumThresholdUnit(cfg)
    h = Harness(dut)
    first, second = make_rows(cfg, 10, 4)[2:4]  # rows of several clusters
    assert first.scores.size > lanes  # the reset does cut a row
    got: dict = {}

    async def bench(ctx):
        await stream_put(ctx, dut.cmd, [{"coverage_q": first.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, row_beats(cfg, first)[:-1], cycle=h.cycle)
        ctx.set(h.rst, 1)
        await ctx.tick()
        ctx.set(h.rst, 0)
        await stream_put(ctx, dut.cmd, [{"coverage_q": second.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, row_beats(cfg, second), cycle=h.cycle)
        beats = await stream_get(ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last)
        got["ids"] = [c for p, _ in beats for c in beat_ids(p, wtu_ingest_lanes(cfg))]
        ((summary, _),) = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)
        got["summary"] = summary

    run(h, [bench], vcd=tmp_path / "wtu_reset.vcd", traces=[h.cycle, h.rst, dut.clusters])
    exp = wtu_expected(cfg, second)
    assert got["ids"] == exp.selected.tolist()
    assert got["summary"].total_mass == exp.total_mass and got["summary"].error == 0


def test_wtu_cycles_formula():
    dut = WiCSumThresholdUnit(TINY)
    Fragment.get(dut, None)
    assert dut.cycles(16, 3, 5) == 2 * 16 + 3 + 5 + dut.latency
    with pytest.raises(ValueError, match=r"^n_clusters must be in 1\.\.16, not 0$"):
        dut.cycles(0, 0, 0)


def test_wtu_lanes_cycles_formula():
    cfg = mode_cfg(TINY, "grid", 4)
    dut = WiCSumThresholdUnit(cfg)
    Fragment.get(dut, None)
    assert dut.lanes == 4
    nb = cfg.resv.n_buckets
    assert nb == 16 and wtu_scan_group(cfg) == 4
    # ceil(C/L) + n_buckets/L + b* div L + E + 5 (L buckets per mass and scan cycle).
    assert dut.cycles(13, 3, 5, emit_cycles=6) == 4 + 4 + 0 + 6 + dut.latency == 19
    assert dut.cycles(13, 4, 5, emit_cycles=6) == 4 + 4 + 1 + 6 + 5
    assert dut.cycles(13, 15, 5, emit_cycles=6) == 4 + 4 + 3 + 6 + 5
    # One lane: C + n_buckets + b* + k + 5, as before.
    assert wtu_cycles(mode_cfg(TINY, "grid", 1), 13, 3, 5) == 13 + nb + 3 + 5 + 5
    # More lanes than buckets: one group of all n_buckets.
    wide = TINY.replace(resv={"bucket_mode": "grid", "n_buckets": 12}, wtu_lanes=16)
    assert wtu_scan_group(wide) == 12
    assert wtu_cycles(wide, 16, 11, 5, emit_cycles=1) == 1 + 1 + 0 + 1 + 5
    assert wtu_ingest_lanes(TINY) == 1  # relative buckets: single-lane whatever wtu_lanes
    with pytest.raises(ValueError, match=r"^emit_cycles must be given with wtu_lanes=4"):
        dut.cycles(13, 3, 5)


def test_wtu_lanes_bucket_groups_unaligned():
    """n_buckets not a multiple of L: ceil(n_buckets / L) mass cycles, the last group short."""
    cfg = TINY.replace(resv={"bucket_mode": "grid", "n_buckets": 12}, wtu_lanes=8)
    assert wtu_scan_group(cfg) == 8
    assert wtu_cycles(cfg, 16, 7, 5, emit_cycles=1) == 2 + 2 + 0 + 1 + 5
    assert wtu_cycles(cfg, 16, 11, 5, emit_cycles=2) == 2 + 2 + 1 + 2 + 5
    # Relative buckets and one lane have no groups.
    assert wtu_scan_group(cfg.replace(resv={"bucket_mode": "relative"})) == 1
    assert wtu_scan_group(cfg.replace(wtu_lanes=1)) == 1


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("lanes", [8, 16])
def test_wtu_wide_lanes(lanes, timing, tmp_path):
    """8 lanes, and 16 (the whole tiny row in one beat, and rows of 1..4 beats over a
    64-entry table)."""
    one_beat = TINY.replace(resv={"bucket_mode": "grid"}, wtu_lanes=lanes)
    for cfg in [one_beat] + ([mode_cfg(TINY, "grid", lanes)] if lanes == 16 else []):
        rows = make_rows(cfg, 11, 10)
        out = simulate(cfg, rows, timing=timing, seed=5, vcd=tmp_path / "wtu.vcd")
        check(cfg, rows, out, exact_cycles=timing == "none")


@pytest.mark.parametrize(
    "bad",
    [
        {"n": 0},  # no valid lane
        {"n": 3, "last": 0},  # a short beat that is not the last
        {"base": 8},  # out of sequence
        "empty",  # a row of one beat with no valid lane
    ],
)
def test_wtu_lanes_flags_bad_beats(bad, tmp_path):
    cfg = mode_cfg(TINY, "grid", 4)
    dut = WiCSumThresholdUnit(cfg)
    h = Harness(dut)
    row, good = make_rows(cfg, 12, 3)[1:3]  # a full row (16 clusters: 4 beats), then one
    beats = row_beats(cfg, row)
    if bad == "empty":
        beats = [{**beats[-1], "base": 0, "n": 0}]
    else:
        beats[1] = {**beats[1], **bad}
    got: dict = {}

    async def bench(ctx):
        await stream_put(ctx, dut.cmd, [{"coverage_q": row.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, beats, cycle=h.cycle)
        await stream_get(ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last)
        ((got["bad"], _),) = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)
        await stream_put(ctx, dut.cmd, [{"coverage_q": good.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, row_beats(cfg, good), cycle=h.cycle)
        sel = await stream_get(ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last)
        got["ids"] = [c for p, _ in sel for c in beat_ids(p, 4)]
        ((got["good"], _),) = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)

    run(h, [bench], vcd=tmp_path / "wtu_bad.vcd", traces=[h.cycle, dut.clusters])
    assert got["bad"].error == 1
    exp = wtu_expected(cfg, good)
    assert got["ids"] == exp.selected.tolist()
    assert got["good"].error == 0 and got["good"].total_mass == exp.total_mass


def _bucket_row(cfg, buckets, counts, order) -> ScoreRow:
    """Clusters in the given grid buckets (below the top cell), arriving in ``order``."""
    r = cfg.resv
    top = r.score_max >> r.bucket_shift
    scores = (top - np.asarray(buckets)) << r.bucket_shift
    return ScoreRow(scores=scores[order], counts=np.asarray(counts)[order], coverage_q=1)


@pytest.mark.parametrize(
    ("name", "lanes"),
    [
        ("tiny", 2),
        ("tiny", 4),
        ("tiny", 8),
        ("tiny64", 16),
        ("odd", 4),  # 12 buckets in 3 groups of 4
        ("odd48", 16),  # 12 buckets, one group of 12 (not a power of two); 3 beats a row
        ("odd", 8),  # 12 buckets in groups of 8: the last group short
        ("three", 2),  # 3 buckets in groups of 2 (the formal harness's sizes)
        ("one_bucket", 4),  # one bucket: groups of 1
    ],
)
def test_wtu_lanes_scan_groups(name, lanes, tmp_path):
    """L buckets per mass and scan cycle: b* at every reachable bucket (the first and the last
    group, every position in a group, the crossing in the middle of one), with the grid's
    base moved by the arrival order, and all the mass in one bucket of the last group;
    exact cycles."""
    if name == "tiny64":
        cfg = mode_cfg(TINY, "grid", 16)
    elif name == "odd48":
        cfg = GRID["odd"].replace(resv={"max_clusters": 48})
    elif name == "three":
        cfg = GRID["odd"].replace(resv={"max_clusters": 6, "n_buckets": 3})
    else:
        cfg = GRID[name]
    cfg = cfg.replace(wtu_lanes=lanes)
    r, n = cfg.resv, cfg.max_clusters
    one, group = 1 << r.coverage_frac_bits, wtu_scan_group(cfg)
    lut = bucket_lut(r)
    reach = int(np.flatnonzero(lut > 0).max())  # later buckets weigh nothing
    buckets = np.arange(n) % (reach + 1)
    counts = np.clip(lut[0] // np.maximum(lut[buckets], 1), 1, r.count_max)
    rng = np.random.default_rng(13)
    rows = []
    for order in (np.arange(n), np.arange(n)[::-1], rng.permutation(n)):
        base = _bucket_row(cfg, buckets, counts, order)

        def b_star(q, base=base):
            return wtu_expected(cfg, replace(base, coverage_q=q)).b_star

        for target in range(reach + 1):
            lo, hi = 1, one  # the smallest coverage with b* >= target
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (mid + 1, hi) if b_star(mid) < target else (lo, mid)
            if b_star(lo) == target:
                rows.append(replace(base, coverage_q=lo))
    # All the mass in the last reachable bucket (the top cluster weighs nothing).
    last = np.full(n, reach)
    last[0] = 0
    rows.append(
        replace(
            _bucket_row(cfg, last, np.r_[0, np.full(n - 1, 3)], np.arange(n)),
            coverage_q=one // 2,
        )
    )
    exp = [wtu_expected(cfg, x) for x in rows]
    assert exp[-1].b_star == reach
    got = {e.b_star for e in exp}
    assert {0, reach} <= got
    if group > 1:
        assert {b % group for b in got} >= {0, min(group - 1, reach), min(group // 2, reach)}
    assert len(got) == reach + 1  # every reachable bucket is a b*
    out = simulate(cfg, rows, timing="none", seed=6, vcd=tmp_path / "wtu.vcd")
    check(cfg, rows, out, exact_cycles=True)
