"""cocotb regression of the generated WiCSumThresholdUnit Verilog (``hw.gen`` top ``wtu``).

Drivers (``cmd``, ``clusters``) → monitors (``selected``, ``summary``) → golden
``wicsum_select_bucketed`` → in-order scoreboards, random idle cycles and back-pressure.
Configuration from ``config_from_env`` (``bucket_mode = "grid"`` for the ``wtu_grid`` top,
whose ``clusters`` stream carries ``wtu_lanes`` clusters per beat), seed from ``SEED``,
cluster scores from ``TRACE`` when given (golden clustering of the trace keys scored against
its queries), otherwise a video-like synthetic workload. Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import cocotb
import numpy as np

from hw.dre import layouts, wtu_cycles, wtu_ingest_lanes, wtu_unit_config
from sim.cases.dre import (
    SCORE_KINDS,
    ScoreRow,
    score_row,
    wtu_beats,
    wtu_expected,
)
from sim.coverage import deepest_bucket, wtu_row_bins
from sim.kit import selector_bench
from sim.kit.cocotb_streams import (
    config_from_env,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)
from sim.kit.selector_bench import Expected, Selector

KINDS = SCORE_KINDS


def unit_config():
    """``config_from_env()`` with the top's bucket mode (``wtu``: relative, ``wtu_grid``:
    grid; ``hw.dre.wtu_unit_config``)."""
    return wtu_unit_config(cocotb.top._name, config_from_env())


def clusters_layout(cfg):
    """The ``clusters`` payload of the WTU of ``cfg`` (one cluster or ``wtu_lanes``)."""
    lay = layouts(cfg)
    return lay.cluster_lanes if wtu_ingest_lanes(cfg) > 1 else lay.cluster_score


def selected_layout(cfg):
    """The ``selected`` payload of the WTU of ``cfg`` (one id, or a row of ``wtu_lanes``)."""
    lay = layouts(cfg)
    return lay.selected_lanes if wtu_ingest_lanes(cfg) > 1 else lay.selected


def row_cycles(cfg, row: ScoreRow, exp) -> int:
    return wtu_cycles(
        cfg, row.scores.size, exp.b_star, exp.clusters_emitted, emit_cycles=exp.emit_cycles
    )


def cluster_beats(row: ScoreRow) -> list[dict]:
    n = row.scores.size
    return [
        {"cluster": c, "score": int(s), "count": int(k), "last": int(c == n - 1)}
        for c, (s, k) in enumerate(zip(row.scores, row.counts, strict=True))
    ]


def selector(cfg) -> Selector:
    """The WTU of ``cfg`` for ``sim.kit.selector_bench``."""
    lay = layouts(cfg)

    def expect(row: ScoreRow) -> Expected:
        exp = wtu_expected(cfg, row)
        summary = (
            *(exp.b_star, exp.buckets_scanned, exp.clusters_emitted),
            *(exp.total_mass, exp.threshold, 0),
        )
        return Expected(
            exp.selected, summary, row_cycles(cfg, row, exp), wtu_row_bins(cfg, row, exp)
        )

    return Selector(
        name="wtu",
        cmd_layout=lay.wtu_cmd,
        clusters_layout=clusters_layout(cfg),
        selected_layout=selected_layout(cfg),
        summary_layout=lay.wtu_summary,
        lanes=wtu_ingest_lanes(cfg),
        cmd=lambda r: {"coverage_q": r.coverage_q},
        beats=lambda r: wtu_beats(cfg, r),
        expect=expect,
        summary=lambda p: (
            *(p.b_star, p.buckets_scanned, p.n_selected),
            *(p.total_mass, p.threshold, p.error),
        ),
    )


async def run_rows(
    dut, rows: list[ScoreRow], *, idle: float, stall: float, exact: bool, tag: int
) -> list[int]:
    """``sim.kit.selector_bench.run_rows`` on the WTU of the run's configuration."""
    return await selector_bench.run_rows(
        dut, selector(unit_config()), rows, idle=idle, stall=stall, exact=exact, tag=tag
    )


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
        rows.append(score_row(cfg, n, seed=seed * 1000 + i, kind=KINDS[i % len(KINDS)]))
    return rows


@cocotb.test()
async def wtu_synthetic_random_timing(dut):
    """Rows of every score kind (ties, one bucket, saturated scores and counts, wide
    ranges), 1..max_clusters clusters, random coverage; random gaps and back-pressure."""
    cfg = unit_config()
    await start_clock(dut)
    await reset(dut)
    idle, stall = timing_from_env()
    await run_rows(
        dut, synthetic_rows(cfg, 30, seed_from_env()), idle=idle, stall=stall, exact=False, tag=1
    )


@cocotb.test()
async def wtu_exact_cycles(dut):
    """No stalls: every row takes exactly its formula's cycles (``wtu_cycles``)."""
    cfg = unit_config()
    await start_clock(dut)
    await reset(dut)
    await run_rows(
        dut, synthetic_rows(cfg, 10, seed_from_env() + 1), idle=0.0, stall=0.0, exact=True, tag=2
    )


@cocotb.test()
async def wtu_corner_rows(dut):
    """One cluster, all clusters in one bucket (all ties), counts at max width with saturated
    scores, zero mass, all but the last cluster out of range, smallest coverage and coverage
    1.0; every bucket filled and then the top rising by 3 and 7 buckets (the grid empties
    exactly the bins that leave the range)."""
    cfg = unit_config()
    r = cfg.resv
    one, n = 1 << r.coverage_frac_bits, cfg.max_clusters
    rows = [
        ScoreRow(scores=np.array([r.score_min]), counts=np.array([r.count_max]), coverage_q=one),
        ScoreRow(scores=np.full(n, 3), counts=np.arange(n) % (r.count_max + 1), coverage_q=one),
        ScoreRow(
            scores=np.resize([r.score_max, r.score_min], n),
            counts=np.full(n, r.count_max),
            coverage_q=one,
        ),
        ScoreRow(scores=np.arange(n) * 7, counts=np.zeros(n, np.int64), coverage_q=one // 3),
        # Everything before the last cluster falls out of range when it arrives at the top.
        ScoreRow(
            scores=np.array([r.score_min + j for j in range(n - 1)] + [r.score_max]),
            counts=np.full(n, 2),
            coverage_q=one,
        ),
        ScoreRow(scores=np.arange(n) * 5, counts=np.ones(n, np.int64), coverage_q=1),
        ScoreRow(
            scores=np.arange(n) << r.bucket_shift, counts=np.ones(n, np.int64), coverage_q=one - 1
        ),
        ScoreRow(
            scores=(
                np.resize([0, -2, -4, -6, -8, -10, -12, -14, 3, -11, -9, 10, -1, -5, -3, 1], n)
                << r.bucket_shift
            )
            + 3,
            counts=np.arange(n) % 3 + 1,
            coverage_q=one,
        ),
    ]
    # b* at the deepest bucket of nonzero weight (coverage 1.0, a cluster there).
    deep = deepest_bucket(cfg)
    for off in (deep, deep - 1, deep + 1):
        row = ScoreRow(
            scores=np.array([100, 100 - (off << r.bucket_shift), 90]),
            counts=np.array([1, r.count_max, 2]),
            coverage_q=one,
        )
        if wtu_expected(cfg, row).b_star == deep:
            rows.append(row)
            break
    await start_clock(dut)
    await reset(dut)
    await run_rows(dut, rows, idle=0.25, stall=0.25, exact=False, tag=3)


@cocotb.test()
async def wtu_video_trace(dut):
    """Cluster scores from real-video-like data: the TRACE file when given, else synthetic
    redundant frames clustered by the golden model and scored against peaked queries."""
    cfg = unit_config()
    await selector_bench.video_trace(dut, selector(cfg), cfg)


@cocotb.test()
async def wtu_reset_mid_row(dut):
    """A reset in the middle of a row drops it; the next row is selected from scratch."""
    cfg = unit_config()
    first, second = synthetic_rows(cfg, 4, seed_from_env() + 2)[2:4]
    await selector_bench.reset_mid_row(dut, selector(cfg), first, second)
