"""WeightedQuickSelect on the Amaranth simulator, bit-exact against
golden.quickselect.quickselect (itself checked against golden.quickselect.wicsum_select_exact_q
and the float golden.resv.wicsum_select in tests/golden/test_quickselect.py)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from hw.config import preset
from hw.dre import WeightedQuickSelect
from sim.dre_data import ScoreRow, quickselect_expected
from sim.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put
from sim.tb_wtu import cluster_beats, synthetic_rows

TINY = preset("tiny")  # 4 lanes, 16 clusters
CONFIGS = {
    "tiny": TINY,
    "one_lane": TINY.replace(wtu_lanes=1),
    # Lanes that do not divide the table, a 12-entry table.
    "odd": TINY.replace(resv={"max_clusters": 12}, wtu_lanes=8),
    "two_clusters": TINY.replace(resv={"max_clusters": 2}, hcu_lanes=2, topk_k=1, wtu_lanes=2),
    # The paper's fixed-point formats (16-bit scores and counts, 8 fractional bits).
    "paper_formats": preset("paper").replace(resv={"max_clusters": 48}, topk_k=8, wtu_lanes=4),
}


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
            beats = cluster_beats(r)
            if i == bad_id_row:  # an id out of sequence
                beats[0]["cluster"] = 1 % cfg.max_clusters
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
        assert [p.cluster for p in sel] == exp.selected.tolist(), f"row {i}: selection"
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


@pytest.mark.parametrize("timing", list(TIMINGS))
def test_quickselect_tiny(timing, tmp_path):
    rows = synthetic_rows(TINY, 25, 7)
    out = simulate(TINY, rows, timing=timing, seed=1, vcd=tmp_path / "qs.vcd")
    check(TINY, rows, out, exact_cycles=timing == "none")


@pytest.mark.parametrize("name", ["one_lane", "odd", "two_clusters", "paper_formats"])
def test_quickselect_configs(name, tmp_path):
    cfg = CONFIGS[name]
    rows = synthetic_rows(cfg, 10, 8)
    out = simulate(cfg, rows, timing="random", seed=2, vcd=tmp_path / "qs.vcd")
    check(cfg, rows, out, exact_cycles=False)


def test_quickselect_corner_rows(tmp_path):
    cfg = TINY
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
        ScoreRow(scores=np.arange(n) * 40, counts=np.zeros(n, np.int64), coverage_q=one // 2),
        # Every cluster but the best far out of the weights' range (weight 0).
        ScoreRow(
            scores=np.array([r.score_max] + [r.score_min] * (n - 1)),
            counts=np.ones(n, np.int64),
            coverage_q=one,
        ),
        # Ascending scores: the selection is a suffix of the ids, emitted ascending.
        ScoreRow(scores=np.arange(n) * 20, counts=np.ones(n, np.int64), coverage_q=one - 1),
    ]
    exp = [quickselect_expected(cfg, x) for x in rows]
    assert exp[0].selected.tolist() == [0] and exp[0].pass_reads == (1,)
    assert exp[1].selected.tolist() == list(range(n))
    assert exp[2].selected.tolist() == list(range(n // 2))
    assert exp[4].selected.tolist() == [n - 1] and exp[4].total_mass == 0
    assert exp[5].selected.tolist() == [0]
    assert exp[6].selected.tolist() == list(range(n - exp[6].selected.size, n))
    out = simulate(cfg, rows, timing="none", seed=3, vcd=tmp_path / "qs.vcd")
    check(cfg, rows, out, exact_cycles=True)


def test_quickselect_flags_bad_id_and_recovers(tmp_path):
    cfg = TINY
    rows = synthetic_rows(cfg, 3, 9)
    out = simulate(cfg, rows, timing="random", seed=4, vcd=tmp_path / "qs.vcd", bad_id_row=1)
    assert [s.error for s in out["summary"]] == [0, 1, 0]
    check(cfg, rows, out, exact_cycles=False, skip=(1,))


def test_quickselect_reset_mid_row(tmp_path):
    cfg = TINY
    dut = WeightedQuickSelect(cfg)
    h = Harness(dut)
    first, second = synthetic_rows(cfg, 4, 10)[2:4]  # rows of several clusters
    got: dict = {}

    async def bench(ctx):
        await stream_put(ctx, dut.cmd, [{"coverage_q": first.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, cluster_beats(first)[:-1], cycle=h.cycle)
        ctx.set(h.rst, 1)
        await ctx.tick()
        ctx.set(h.rst, 0)
        await stream_put(ctx, dut.cmd, [{"coverage_q": second.coverage_q}], cycle=h.cycle)
        await stream_put(ctx, dut.clusters, cluster_beats(second), cycle=h.cycle)
        beats = await stream_get(ctx, dut.selected, cycle=h.cycle, until=lambda p: p.last)
        got["ids"] = [p.cluster for p, _ in beats]
        ((summary, _),) = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)
        got["summary"] = summary

    run(h, [bench], vcd=tmp_path / "qs_reset.vcd", traces=[h.cycle, h.rst, dut.clusters])
    assert first.scores.size > 1  # the reset does cut a row
    exp = quickselect_expected(cfg, second)
    assert got["ids"] == exp.selected.tolist()
    assert got["summary"].total_mass == exp.total_mass and got["summary"].error == 0


def test_quickselect_cycles_formula():
    dut = WeightedQuickSelect(TINY)
    Fragment.get(dut, None)
    row = ScoreRow(scores=np.arange(16) * 8, counts=np.ones(16, np.int64), coverage_q=2048)
    exp = quickselect_expected(TINY, row)
    reads = sum(-(-x // 4) + 3 for x in exp.pass_reads)
    assert dut.cycles(16, exp) == 16 + reads + exp.emit_row_cycles + dut.latency
    with pytest.raises(ValueError, match=r"^n_clusters must be in 1\.\.16, not 0$"):
        dut.cycles(0, exp)
