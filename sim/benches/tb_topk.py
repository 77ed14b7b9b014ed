"""cocotb regression of the generated TopKSelector Verilog (``hw.gen`` top ``topk``).

Drivers (``cmd``, ``clusters``) → monitors (``selected``, ``summary``) → golden
``topk_select`` → in-order scoreboards, random idle cycles and back-pressure; rows with
``k`` from 0 to beyond C, so single and multi-pass selections are both exercised.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from hw.dre import layouts, topk_cycles, topk_passes
from sim.benches.tb_wtu import KINDS, cluster_beats
from sim.cases.dre import (
    ScoreRow,
    env_workload,
    score_row,
    topk_expected,
)
from sim.coverage import collector, topk_row_bins
from sim.kit.cocotb_streams import (
    Scoreboard,
    StreamSink,
    StreamSource,
    config_from_env,
    make_rng,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)


async def run_rows(
    dut, rows: list[ScoreRow], *, idle: float, stall: float, exact: bool, tag: int
) -> list[int]:
    cfg = config_from_env()
    lay = layouts(cfg)
    await FallingEdge(dut.clk)
    sel_sb = Scoreboard("topk.selected", dut._log)
    sum_sb = Scoreboard("topk.summary", dut._log)
    budget = 0
    bins = [topk_row_bins(cfg, row) for row in rows]
    cov = collector()
    for row in rows:
        exp = topk_expected(row).tolist()
        for i, c in enumerate(exp):
            sel_sb.expect((c, int(i == len(exp) - 1)))
        sum_sb.expect((len(exp), topk_passes(cfg, row.scores.size, row.k), 0))
        budget += topk_cycles(cfg, row.scores.size, row.k)
    sel = StreamSink(
        dut,
        "selected",
        lay.selected,
        rng=make_rng(tag, 3),
        stall=stall,
        callback=lambda p, _t: sel_sb.check((p.cluster, p.last)),
    )

    def on_summary(p, _t):
        sum_sb.check((p.n_selected, p.passes, p.error))
        for group, name in bins[len(summ.beats) - 1]:
            cov.hit(group, name)

    summ = StreamSink(
        dut, "summary", lay.topk_summary, rng=make_rng(tag, 4), stall=stall, callback=on_summary
    )
    cmd = StreamSource(dut, "cmd", lay.topk_cmd, rng=make_rng(tag, 1), idle=idle)
    src = StreamSource(dut, "clusters", lay.cluster_score, rng=make_rng(tag, 2), idle=idle)
    sel.start()
    summ.start()
    cmd_task = cocotb.start_soon(cmd.send([{"k": r.k} for r in rows]))
    await src.send([b for r in rows for b in cluster_beats(r)])
    await cmd_task
    await summ.wait_for(len(rows), timeout_cycles=int(4 * budget / (1 - max(idle, stall))) + 500)
    for _ in range(50):
        await FallingEdge(dut.clk)
    sel.stop()
    summ.stop()
    sel_sb.assert_done()
    sum_sb.assert_done()
    cycles = [s - c + 1 for (_, s), c in zip(summ.beats, cmd.times, strict=True)]
    for row, got in zip(rows, cycles, strict=True):
        want = topk_cycles(cfg, row.scores.size, row.k)
        assert got == want if exact else got >= want, f"row cycles {got}, formula {want}"
    return cycles


def synthetic_rows(cfg, count: int, seed: int) -> list[ScoreRow]:
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
        row = score_row(cfg, n, seed=seed * 1000 + i, kind=KINDS[i % len(KINDS)])
        k = 0 if i == 2 else cfg.max_clusters if i == 3 else row.k
        rows.append(ScoreRow(scores=row.scores, counts=row.counts, coverage_q=1, k=k))
    return rows


@cocotb.test()
async def topk_synthetic_random_timing(dut):
    """Rows of every score kind, k in 0..max_clusters (multi-pass); random timing."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    idle, stall = timing_from_env()
    rows = synthetic_rows(cfg, 24, seed_from_env())
    assert any(topk_passes(cfg, r.scores.size, r.k) > 1 for r in rows)
    await run_rows(dut, rows, idle=idle, stall=stall, exact=False, tag=1)


@cocotb.test()
async def topk_exact_cycles(dut):
    """No stalls: every row takes exactly C + k' + (passes-1)(C+1) + latency cycles."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    await run_rows(
        dut, synthetic_rows(cfg, 10, seed_from_env() + 1), idle=0.0, stall=0.0, exact=True, tag=2
    )


@cocotb.test()
async def topk_video_trace(dut):
    """Scores from the TRACE file (or video-like synthetic data), k = topk_k and 3·topk_k."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    _, rows = env_workload(cfg, rows=8, seed=seed_from_env(), log=dut._log)
    rows = [
        ScoreRow(
            scores=r.scores,
            counts=r.counts,
            coverage_q=1,
            k=min(cfg.max_clusters, cfg.topk_k * (1 + 2 * (i % 2))),
        )
        for i, r in enumerate(rows)
    ]
    idle, stall = timing_from_env()
    await run_rows(dut, rows, idle=idle, stall=stall, exact=False, tag=3)
