"""TopKSelector on the Amaranth simulator, bit-exact against golden.topk.topk_select."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.topk import topk_select
from hw.config import preset
from hw.dre import TopKSelector
from sim.cases.dre import ScoreRow, score_row, topk_expected
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")  # 4 slots, 16 clusters: up to 4 passes
CONFIGS = {
    "tiny": TINY,
    "one_slot": TINY.replace(topk_k=1),
    "single_pass": TINY.replace(topk_k=16),  # slots >= table: no score memory
    "three_clusters": TINY.replace(resv={"max_clusters": 3}, hcu_lanes=2, topk_k=2),
}
KINDS = ["normal", "ties", "one_bucket", "extremes", "wide"]


def simulate(cfg, rows: list[ScoreRow], *, timing: str, seed: int, vcd):
    dut = TopKSelector(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    out: dict = {"dut": dut}

    async def cmd_src(ctx):
        rng = np.random.default_rng([seed, 1])
        out["cmd_t"] = await stream_put(
            ctx, dut.cmd, [{"k": r.k} for r in rows], cycle=h.cycle, rng=rng, idle=idle
        )

    async def cluster_src(ctx):
        rng = np.random.default_rng([seed, 2])
        for r in rows:
            n = r.scores.size
            beats = [
                {"cluster": c, "score": int(s), "count": int(k), "last": int(c == n - 1)}
                for c, (s, k) in enumerate(zip(r.scores, r.counts, strict=True))
            ]
            await stream_put(ctx, dut.clusters, beats, cycle=h.cycle, rng=rng, idle=idle)

    async def sel_sink(ctx):
        rng = np.random.default_rng([seed, 3])
        out["selected"] = []
        for r in rows:
            want = min(r.k, r.scores.size)
            beats = (
                await stream_get(
                    ctx,
                    dut.selected,
                    cycle=h.cycle,
                    count=want,
                    rng=rng,
                    stall=stall,
                    timeout=20 * cfg.max_clusters**2,
                )
                if want
                else []
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
            timeout=20 * cfg.max_clusters**2,
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
        exp = topk_expected(row)
        sel = out["selected"][i]
        assert [p.cluster for p in sel] == exp.tolist(), f"row {i}: selection"
        assert [p.last for p in sel] == ([0] * (len(sel) - 1) + [1] if sel else []), f"row {i}"
        s = out["summary"][i]
        n = row.scores.size
        assert (s.n_selected, s.passes, s.error) == (exp.size, dut.passes(n, row.k), 0), f"row {i}"
        cycles = out["summary_t"][i] - out["cmd_t"][i] + 1
        if exact_cycles:
            assert cycles == dut.cycles(n, row.k), f"row {i}: cycles"
        else:
            assert cycles >= dut.cycles(n, row.k), f"row {i}: faster than the formula"


def make_rows(cfg, seed: int, count: int) -> list[ScoreRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        n = (
            1
            if i == 0
            else cfg.max_clusters
            if i == 1
            else int(rng.integers(1, cfg.max_clusters + 1))
        )
        row = score_row(cfg, n, seed=seed * 100 + i, kind=KINDS[i % len(KINDS)])
        if i == 2:  # k = 0 and k > C are legal
            row = ScoreRow(scores=row.scores, counts=row.counts, coverage_q=row.coverage_q, k=0)
        rows.append(row)
    return rows


@pytest.mark.parametrize("timing", list(TIMINGS))
def test_topk_tiny(timing, tmp_path):
    cfg = TINY
    rows = make_rows(cfg, 5, 20)
    assert any(r.k > cfg.topk_k for r in rows)  # multi-pass rows are present
    out = simulate(cfg, rows, timing=timing, seed=1, vcd=tmp_path / "topk.vcd")
    check(cfg, rows, out, exact_cycles=timing == "none")


@pytest.mark.parametrize("name", ["one_slot", "single_pass", "three_clusters"])
def test_topk_configs(name, tmp_path):
    cfg = CONFIGS[name]
    rows = make_rows(cfg, 6, 10)
    out = simulate(cfg, rows, timing="random", seed=2, vcd=tmp_path / "topk.vcd")
    check(cfg, rows, out, exact_cycles=False)


def test_topk_all_ties_multipass(tmp_path):
    cfg = TINY
    n = cfg.max_clusters
    rows = [
        ScoreRow(scores=np.zeros(n, np.int64), counts=np.ones(n, np.int64), coverage_q=1, k=n),
        ScoreRow(
            scores=np.array([3, 1] * (n // 2)), counts=np.ones(n, np.int64), coverage_q=1, k=11
        ),
    ]
    assert topk_expected(rows[0]).tolist() == list(range(n))
    out = simulate(cfg, rows, timing="none", seed=3, vcd=tmp_path / "topk.vcd")
    check(cfg, rows, out, exact_cycles=True)


def test_golden_topk_reference():
    s = np.array([5, 7, 7, -1, 5])
    assert topk_select(s, 3).tolist() == [1, 2, 0]
    assert topk_select(s, 9).tolist() == [1, 2, 0, 4, 3]
    assert topk_select(s, 0).tolist() == []
    with pytest.raises(ValueError, match=r"^k must be a non-negative integer, not -1$"):
        topk_select(s, -1)
    with pytest.raises(
        ValueError, match=r"^scores_q must be a non-empty 1-D array, not shape \(0,\)$"
    ):
        topk_select(np.array([], np.int64), 1)


def test_topk_cycles_formula():
    dut = TopKSelector(TINY)
    Fragment.get(dut, None)
    assert dut.passes(16, 9) == 3
    assert dut.cycles(16, 9) == 16 + 9 + 2 * 17 + dut.latency
    assert dut.cycles(5, 0) == 5 + dut.latency
    with pytest.raises(ValueError, match=r"^k must be in 0\.\.16, not 17$"):
        dut.cycles(16, 17)
