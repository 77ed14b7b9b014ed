"""cocotb regression of the generated TopKSelector Verilog (``hw.gen`` top ``topk``).

Drivers (``cmd``, ``clusters``) → monitors (``selected``, ``summary``) → golden
``topk_select`` → in-order scoreboards, random idle cycles and back-pressure; rows with
``k`` from 0 to beyond C, so single and multi-pass selections are both exercised.
"""

from __future__ import annotations

import cocotb

from hw.dre import layouts, topk_cycles, topk_passes
from sim.benches import tb_wtu
from sim.benches.tb_wtu import cluster_beats
from sim.cases.dre import (
    ScoreRow,
    topk_expected,
)
from sim.coverage import topk_row_bins
from sim.kit import selector_bench
from sim.kit.cocotb_streams import (
    config_from_env,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)
from sim.kit.selector_bench import Expected, Selector


def selector(cfg) -> Selector:
    """The top-k selector of ``cfg`` for ``sim.kit.selector_bench``."""
    lay = layouts(cfg)

    def expect(row: ScoreRow) -> Expected:
        ids = topk_expected(row).tolist()
        n = row.scores.size
        summary = (len(ids), topk_passes(cfg, n, row.k), 0)
        return Expected(ids, summary, topk_cycles(cfg, n, row.k), topk_row_bins(cfg, row))

    return Selector(
        name="topk",
        cmd_layout=lay.topk_cmd,
        clusters_layout=lay.cluster_score,
        selected_layout=lay.selected,
        summary_layout=lay.topk_summary,
        lanes=1,
        cmd=lambda r: {"k": r.k},
        beats=cluster_beats,
        expect=expect,
        summary=lambda p: (p.n_selected, p.passes, p.error),
    )


async def run_rows(
    dut, rows: list[ScoreRow], *, idle: float, stall: float, exact: bool, tag: int
) -> list[int]:
    """``sim.kit.selector_bench.run_rows`` on the top-k selector of the run's configuration."""
    return await selector_bench.run_rows(
        dut, selector(config_from_env()), rows, idle=idle, stall=stall, exact=exact, tag=tag
    )


def synthetic_rows(cfg, count: int, seed: int) -> list[ScoreRow]:
    """The WTU regression's rows (``tb_wtu.synthetic_rows``) with coverage 1 and ``k``: 0 in
    the third, ``max_clusters`` in the fourth, the row's own otherwise."""
    rows = tb_wtu.synthetic_rows(cfg, count, seed)
    ks = [0 if i == 2 else cfg.max_clusters if i == 3 else r.k for i, r in enumerate(rows)]
    return [
        ScoreRow(scores=r.scores, counts=r.counts, coverage_q=1, k=k)
        for r, k in zip(rows, ks, strict=True)
    ]


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

    def with_k(i: int, r: ScoreRow) -> ScoreRow:
        k = min(cfg.max_clusters, cfg.topk_k * (1 + 2 * (i % 2)))
        return ScoreRow(scores=r.scores, counts=r.counts, coverage_q=1, k=k)

    await selector_bench.video_trace(dut, selector(cfg), cfg, rows=8, row_map=with_k)
