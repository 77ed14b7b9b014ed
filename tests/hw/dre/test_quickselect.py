"""WeightedQuickSelect on the Amaranth simulator, bit-exact against
golden.quickselect.quickselect (itself checked against golden.quickselect.wicsum_select_exact_q
and the float golden.resv.wicsum_select in tests/golden/test_quickselect.py), at 1, 2, 4, 8
and 16 clusters per beat (``wtu_lanes``), the selected ids of a row of ``wtu_lanes`` in one
``selected`` beat."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from hw.config import preset
from hw.dre import WeightedQuickSelect, quickselect_cycles
from sim.benches.tb_wtu import synthetic_rows
from sim.cases.dre import (
    ScoreRow,
    beat_ids,
    beat_tuple,
    quickselect_beats,
    quickselect_expected,
    selected_beats,
)
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")  # 4 lanes, 16 clusters
CONFIGS = {
    "tiny": TINY,
    "one_lane": TINY.replace(wtu_lanes=1),
    # Lanes that do not divide the table, a 12-entry table.
    "odd": TINY.replace(resv={"max_clusters": 12}, wtu_lanes=8),
    "two_clusters": TINY.replace(resv={"max_clusters": 2}, hcu_lanes=2, topk_k=1, wtu_lanes=2),
    # The paper's fixed-point formats (16-bit scores and counts, 8 fractional bits).
    "paper_formats": preset("paper").replace(resv={"max_clusters": 48}, topk_k=8, wtu_lanes=4),
    # 16 lanes over a 64-entry table: rows of 1..4 beats, short last beats.
    "wide": TINY.replace(resv={"max_clusters": 64}, wtu_lanes=16),
}
LANES = [1, 2, 4, 16]


def lanes_cfg(lanes: int):
    """The tiny preset at ``lanes`` clusters per beat; 16 lanes over 64 clusters (4 beats)."""
    return CONFIGS["wide"] if lanes == 16 else TINY.replace(wtu_lanes=lanes)


def simulate(cfg, rows: list[ScoreRow], *, timing: str, seed: int, vcd, bad_id_row=None):
    dut = WeightedQuickSelect(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    out: dict = {"dut": dut}

    async def cmd_src(ctx):
        out["cmd_t"] = await stream_put(
            ctx,
            dut.cmd,
            [{"coverage_q": r.coverage_q} for r in rows],
            cycle=h.cycle,
            rng=np.random.default_rng([seed, 1]),
            idle=idle,
        )

    async def cluster_src(ctx):
        rng = np.random.default_rng([seed, 2])
        for i, r in enumerate(rows):
            # An id (with lanes a base) out of sequence in the first beat of bad_id_row.
            beats = quickselect_beats(cfg, r, bad_id_at=0 if i == bad_id_row else None)
            await stream_put(ctx, dut.clusters, beats, cycle=h.cycle, rng=rng, idle=idle)

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
        beats = await stream_get(
            ctx,
            dut.summary,
            cycle=h.cycle,
            count=len(rows),
            rng=np.random.default_rng([seed, 4]),
            stall=stall,
            timeout=40 * cfg.max_clusters + 500,
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


def check(cfg, rows, out, *, exact_cycles: bool, skip=()) -> None:
    dut = out["dut"]
    for i, row in enumerate(rows):
        if i in skip:
            continue
        exp = quickselect_expected(cfg, row)
        sel = out["selected"][i]
        lanes = cfg.wtu_lanes
        ids = [c for p in sel for c in beat_ids(p, lanes)]
        assert ids == exp.selected.tolist(), f"row {i}: selection"
        assert [beat_tuple(p, lanes) for p in sel] == selected_beats(ids, lanes), f"row {i}: beats"
        assert [p.last for p in sel] == [0] * (len(sel) - 1) + [1], f"row {i}: last flags"
        s = out["summary"][i]
        got = (s.n_selected, s.passes, s.total_mass, s.threshold, s.error)
        want = (exp.selected.size, len(exp.pass_reads), exp.total_mass, exp.threshold, 0)
        assert got == want, f"row {i}: summary"
        cycles = out["summary_t"][i] - out["cmd_t"][i] + 1
        formula = dut.cycles(row.scores.size, exp)
        if exact_cycles:
            assert cycles == formula, f"row {i}: cycles"
        else:
            assert cycles >= formula, f"row {i}: faster than the formula"


@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("timing", list(TIMINGS))
def test_quickselect_tiny(timing, lanes, tmp_path):
    cfg = lanes_cfg(lanes)
    rows = synthetic_rows(cfg, 25, 7)
    out = simulate(cfg, rows, timing=timing, seed=1, vcd=tmp_path / "qs.vcd")
    check(cfg, rows, out, exact_cycles=timing == "none")


@pytest.mark.parametrize("name", ["one_lane", "odd", "two_clusters", "paper_formats"])
def test_quickselect_configs(name, tmp_path):
    cfg = CONFIGS[name]
    rows = synthetic_rows(cfg, 10, 8)
    out = simulate(cfg, rows, timing="random", seed=2, vcd=tmp_path / "qs.vcd")
    check(cfg, rows, out, exact_cycles=False)


@pytest.mark.parametrize("lanes", LANES)
def test_quickselect_corner_rows(lanes, tmp_path):
    cfg = lanes_cfg(lanes)
    r, one = cfg.resv, 1 << cfg.resv.coverage_frac_bits
    n = cfg.max_clusters
    rows = [
        # One cluster.
        ScoreRow(scores=np.array([5]), counts=np.array([3]), coverage_q=one),
        # All ties, coverage 1.0: ties go to the lower id, so everything with mass and the
        # last id carrying mass... all clusters here carry mass.
        ScoreRow(scores=np.full(n, -7), counts=np.arange(1, n + 1), coverage_q=one),
        # All ties, half coverage: a prefix of the ids.
        ScoreRow(scores=np.full(n, 3), counts=np.ones(n, np.int64), coverage_q=one // 2),
        # Saturated scores and counts.
        ScoreRow(
            scores=np.array([r.score_max, r.score_min] * (n // 2)),
            counts=np.full(n, r.count_max),
            coverage_q=one,
        ),
        # No mass at all: theta = 0, the best cluster alone.
        ScoreRow(
            scores=np.arange(n) * (640 // n), counts=np.zeros(n, np.int64), coverage_q=one // 2
        ),
        # Every cluster but the best far out of the weights' range (weight 0).
        ScoreRow(
            scores=np.array([r.score_max] + [r.score_min] * (n - 1)),
            counts=np.ones(n, np.int64),
            coverage_q=one,
        ),
        # Ascending scores: the selection is a suffix of the ids, emitted ascending.
        ScoreRow(scores=np.arange(n) * 20, counts=np.ones(n, np.int64), coverage_q=one - 1),
        # Short last beats: one cluster past a full beat, one short of a full row.
        ScoreRow(
            scores=np.arange(cfg.wtu_lanes + 1) * -3,
            counts=np.ones(cfg.wtu_lanes + 1, np.int64),
            coverage_q=one * 3 // 4,
        ),
        ScoreRow(
            scores=(np.arange(n - 1) * 37) % 101 - 50,
            counts=np.arange(n - 1) % 7,
            coverage_q=one // 2,
        ),
        # All at the lowest score (ties), the minimum of the first lane last.
        ScoreRow(scores=np.full(n, r.score_min), counts=np.ones(n, np.int64), coverage_q=1),
        # Only the first and the last id selected: with lanes, the rows between hold none.
        ScoreRow(
            scores=np.array([500] + [-900] * (n - 2) + [500]),
            counts=np.ones(n, np.int64),
            coverage_q=one,
        ),
    ]
    exp = [quickselect_expected(cfg, x) for x in rows]
    assert exp[0].selected.tolist() == [0] and exp[0].pass_reads == (1,)
    assert exp[1].selected.tolist() == list(range(n))
    assert exp[2].selected.tolist() == list(range(n // 2))
    assert exp[4].selected.tolist() == [n - 1] and exp[4].total_mass == 0
    assert exp[5].selected.tolist() == [0]
    assert exp[6].selected.tolist() == list(range(n - exp[6].selected.size, n))
    assert exp[10].selected.tolist() == [0, n - 1]
    out = simulate(cfg, rows, timing="none", seed=3, vcd=tmp_path / "qs.vcd")
    check(cfg, rows, out, exact_cycles=True)


@pytest.mark.parametrize("lanes", [1, 4])
def test_quickselect_flags_bad_id_and_recovers(lanes, tmp_path):
    cfg = lanes_cfg(lanes)
    rows = synthetic_rows(cfg, 3, 9)
    out = simulate(cfg, rows, timing="random", seed=4, vcd=tmp_path / "qs.vcd", bad_id_row=1)
    assert [s.error for s in out["summary"]] == [0, 1, 0]
    check(cfg, rows, out, exact_cycles=False, skip=(1,))


@pytest.mark.parametrize("lanes", LANES)
def test_quickselect_reset_mid_row(lanes, tmp_path):
    cfg = lanes_cfg(lanes)
    dut = WeightedQuickSelect(cfg)
    h = Harness(dut)
    first, second = synthetic_rows(cfg, 4, 10)[2:4]  # rows of several clusters
    assert first.scores.size > lanes  # the reset does cut a row
    got: dict = {}

    async def bench(ctx):
        await stream_put(ctx, dut.cmd, [{"coverage_q": first.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, quickselect_beats(cfg, first)[:-1], cycle=h.cycle)
        ctx.set(h.rst, 1)
        await ctx.tick()
        ctx.set(h.rst, 0)
        await stream_put(ctx, dut.cmd, [{"coverage_q": second.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, quickselect_beats(cfg, second), cycle=h.cycle)
        beats = await stream_get(ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last)
        got["ids"] = [c for p, _ in beats for c in beat_ids(p, lanes)]
        ((summary, _),) = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)
        got["summary"] = summary

    run(h, [bench], vcd=tmp_path / "qs_reset.vcd", traces=[h.cycle, h.rst, dut.clusters])
    exp = quickselect_expected(cfg, second)
    assert got["ids"] == exp.selected.tolist()
    assert got["summary"].total_mass == exp.total_mass and got["summary"].error == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"n": 0},  # no valid lane
        {"n": 3, "last": 0},  # a short beat that is not the last
        {"base": 8},  # out of sequence
        {"n": 5},  # more lanes than the beat has
        "empty",  # a row of one beat with no valid lane
        "long",  # a fifth beat past the 16-entry table
    ],
)
def test_quickselect_lanes_flags_bad_beats(bad, tmp_path):
    """A malformed row of 4-lane beats sets ``error`` and still ends (one summary); the next
    row is exact."""
    cfg = TINY
    dut = WeightedQuickSelect(cfg)
    h = Harness(dut)
    row, good = synthetic_rows(cfg, 3, 12)[1:3]  # a full row (16 clusters: 4 beats), then one
    beats = quickselect_beats(cfg, row)
    assert len(beats) == 4
    if bad == "empty":
        beats = [{**beats[-1], "base": 0, "n": 0}]
    elif bad == "long":
        beats = [*beats[:-1], {**beats[-1], "last": 0}, {**beats[0], "base": 16, "last": 1}]
    else:
        beats[1] = {**beats[1], **bad}
    got: dict = {}

    async def bench(ctx):
        await stream_put(ctx, dut.cmd, [{"coverage_q": row.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, beats, cycle=h.cycle)
        await stream_get(ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last)
        ((got["bad"], _),) = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)
        await stream_put(ctx, dut.cmd, [{"coverage_q": good.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, quickselect_beats(cfg, good), cycle=h.cycle)
        sel = await stream_get(ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last)
        got["ids"] = [c for p, _ in sel for c in beat_ids(p, cfg.wtu_lanes)]
        ((got["good"], _),) = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)

    run(h, [bench], vcd=tmp_path / "qs_bad.vcd", traces=[h.cycle, dut.clusters])
    assert got["bad"].error == 1
    exp = quickselect_expected(cfg, good)
    assert got["ids"] == exp.selected.tolist()
    assert got["good"].error == 0 and got["good"].total_mass == exp.total_mass


def test_quickselect_cycles_formula():
    one = WeightedQuickSelect(TINY.replace(wtu_lanes=1))
    dut = WeightedQuickSelect(TINY)
    Fragment.get(dut, None)
    Fragment.get(one, None)  # elaborated, so no UnusedElaboratable warning at collection
    assert dut.lanes == 4 and one.lanes == 1
    row = ScoreRow(scores=np.arange(13) * 8, counts=np.ones(13, np.int64), coverage_q=2048)
    exp = quickselect_expected(TINY, row)
    reads = sum(-(-x // 4) + 3 for x in exp.pass_reads)
    # ceil(C / lanes) ingest beats: 4 for 13 clusters at 4 lanes, 13 at one lane.
    assert dut.cycles(13, exp) == 4 + reads + exp.emit_row_cycles + dut.latency
    exp1 = quickselect_expected(one.cfg, row)
    reads1 = sum(x + 3 for x in exp1.pass_reads)
    assert one.cycles(13, exp1) == 13 + reads1 + exp1.emit_row_cycles + one.latency
    assert quickselect_cycles(TINY.replace(wtu_lanes=16), 13, exp) < dut.cycles(13, exp)
    with pytest.raises(ValueError, match=r"^n_clusters must be in 1\.\.16, not 0$"):
        dut.cycles(0, exp)
