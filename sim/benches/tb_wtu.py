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
from cocotb.triggers import FallingEdge

from hw.dre import layouts, wtu_cycles, wtu_ingest_lanes, wtu_unit_config
from sim.cases.dre import (
    SCORE_KINDS,
    ScoreRow,
    beat_tuple,
    env_workload,
    score_row,
    selected_beats,
    wtu_beats,
    wtu_expected,
)
from sim.coverage import collector, deepest_bucket, wtu_row_bins
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


async def run_rows(
    dut, rows: list[ScoreRow], *, idle: float, stall: float, exact: bool, tag: int
) -> list[int]:
    """Send the rows back to back; check every selected beat (id, or row of ids with lanes),
    flag and summary; returns the cycles of each row (cmd handshake to summary handshake,
    both included)."""
    cfg = unit_config()
    lay = layouts(cfg)
    lanes = wtu_ingest_lanes(cfg)
    await FallingEdge(dut.clk)
    sel_sb = Scoreboard("wtu.selected", dut._log)
    sum_sb = Scoreboard("wtu.summary", dut._log)
    budget = 0
    bins = []
    for row in rows:
        exp = wtu_expected(cfg, row)
        bins.append(wtu_row_bins(cfg, row, exp))
        k = exp.clusters_emitted
        for beat in selected_beats(exp.selected, lanes):
            sel_sb.expect(beat)
        sum_sb.expect((exp.b_star, exp.buckets_scanned, k, exp.total_mass, exp.threshold, 0))
        budget += row_cycles(cfg, row, exp)
    sel = StreamSink(
        dut,
        "selected",
        selected_layout(cfg),
        rng=make_rng(tag, 3),
        stall=stall,
        callback=lambda p, _t: sel_sb.check(beat_tuple(p, lanes)),
    )
    cov = collector()

    def on_summary(p, _t):
        sum_sb.check(
            (p.b_star, p.buckets_scanned, p.n_selected, p.total_mass, p.threshold, p.error)
        )
        for group, name in bins[len(summ.beats) - 1]:
            cov.hit(group, name)

    summ = StreamSink(
        dut, "summary", lay.wtu_summary, rng=make_rng(tag, 4), stall=stall, callback=on_summary
    )
    cmd = StreamSource(dut, "cmd", lay.wtu_cmd, rng=make_rng(tag, 1), idle=idle)
    src = StreamSource(dut, "clusters", clusters_layout(cfg), rng=make_rng(tag, 2), idle=idle)
    sel.start()
    summ.start()
    cmd_task = cocotb.start_soon(cmd.send([{"coverage_q": r.coverage_q} for r in rows]))
    beats = [b for r in rows for b in wtu_beats(cfg, r)]
    await src.send(beats)
    await cmd_task
    await summ.wait_for(len(rows), timeout_cycles=int(4 * budget / (1 - max(idle, stall))) + 500)
    for _ in range(50):  # anything more would be a duplicate
        await FallingEdge(dut.clk)
    sel.stop()
    summ.stop()
    sel_sb.assert_done()
    sum_sb.assert_done()
    cycles = [s - c + 1 for (_, s), c in zip(summ.beats, cmd.times, strict=True)]
    for row, got in zip(rows, cycles, strict=True):
        want = row_cycles(cfg, row, wtu_expected(cfg, row))
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
    await start_clock(dut)
    await reset(dut)
    _, rows = env_workload(cfg, rows=12, seed=seed_from_env(), log=dut._log)
    idle, stall = timing_from_env()
    await run_rows(dut, rows, idle=idle, stall=stall, exact=False, tag=4)


@cocotb.test()
async def wtu_reset_mid_row(dut):
    """A reset in the middle of a row drops it; the next row is selected from scratch."""
    cfg = unit_config()
    lay = layouts(cfg)
    await start_clock(dut)
    await reset(dut)
    first, second = synthetic_rows(cfg, 4, seed_from_env() + 2)[2:4]
    cmd = StreamSource(dut, "cmd", lay.wtu_cmd)
    src = StreamSource(dut, "clusters", clusters_layout(cfg))
    await cmd.send([{"coverage_q": first.coverage_q}])
    beats = wtu_beats(cfg, first)
    await src.send(beats[: max(1, len(beats) // 2)])
    await reset(dut, cycles=1)
    await run_rows(dut, [second], idle=0.2, stall=0.2, exact=False, tag=5)
