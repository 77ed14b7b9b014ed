"""cocotb regression of the generated WeightedQuickSelect Verilog (``hw.gen`` top
``quickselect``).

Drivers (``cmd``, ``clusters``) → monitors (``selected``, ``summary``) → golden
``golden.quickselect.quickselect`` → in-order scoreboards, random idle cycles and
back-pressure; the rows of the WTU's regression (``sim.benches.tb_wtu``), so both selectors see the
same inputs. The ``clusters`` stream carries ``wtu_lanes`` clusters per beat
(``DRELayouts.cluster_lanes``; one cluster, ``cluster_score``, at ``wtu_lanes = 1``; the
run's configuration from ``config_from_env``). Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from hw.dre import layouts, quickselect_cycles
from sim.benches.tb_wtu import synthetic_rows
from sim.cases.dre import (
    ScoreRow,
    beat_tuple,
    env_workload,
    quickselect_beats,
    quickselect_expected,
    selected_beats,
)
from sim.coverage import collector, quickselect_row_bins
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


def clusters_layout(cfg):
    """The ``clusters`` payload of the quick-select of ``cfg`` (``wtu_lanes`` per beat)."""
    lay = layouts(cfg)
    return lay.cluster_lanes if cfg.wtu_lanes > 1 else lay.cluster_score


def selected_layout(cfg):
    """The ``selected`` payload of the quick-select of ``cfg`` (one id, or a row of
    ``wtu_lanes``)."""
    lay = layouts(cfg)
    return lay.selected_lanes if cfg.wtu_lanes > 1 else lay.selected


async def run_rows(
    dut, rows: list[ScoreRow], *, idle: float, stall: float, exact: bool, tag: int
) -> list[int]:
    """Send the rows back to back; check every selected id, flag and summary and each row's
    cycles against ``quickselect_cycles`` (equal without stalls, at least with them)."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await FallingEdge(dut.clk)
    sel_sb = Scoreboard("quickselect.selected", dut._log)
    sum_sb = Scoreboard("quickselect.summary", dut._log)
    want, bins = [], []
    cov = collector()
    for row in rows:
        exp = quickselect_expected(cfg, row)
        bins.append(quickselect_row_bins(cfg, row, exp))
        k = exp.selected.size
        for beat in selected_beats(exp.selected, cfg.wtu_lanes):
            sel_sb.expect(beat)
        sum_sb.expect((k, len(exp.pass_reads), exp.total_mass, exp.threshold, 0))
        want.append(quickselect_cycles(cfg, row.scores.size, exp))
    sel = StreamSink(
        dut,
        "selected",
        selected_layout(cfg),
        rng=make_rng(tag, 3),
        stall=stall,
        callback=lambda p, _t: sel_sb.check(beat_tuple(p, cfg.wtu_lanes)),
    )

    def on_summary(p, _t):
        sum_sb.check((p.n_selected, p.passes, p.total_mass, p.threshold, p.error))
        for group, name in bins[len(summ.beats) - 1]:
            cov.hit(group, name)

    summ = StreamSink(
        dut,
        "summary",
        lay.quickselect_summary,
        rng=make_rng(tag, 4),
        stall=stall,
        callback=on_summary,
    )
    cmd = StreamSource(dut, "cmd", lay.wtu_cmd, rng=make_rng(tag, 1), idle=idle)
    src = StreamSource(dut, "clusters", clusters_layout(cfg), rng=make_rng(tag, 2), idle=idle)
    sel.start()
    summ.start()
    cmd_task = cocotb.start_soon(cmd.send([{"coverage_q": r.coverage_q} for r in rows]))
    await src.send([b for r in rows for b in quickselect_beats(cfg, r)])
    await cmd_task
    budget = sum(want)
    await summ.wait_for(len(rows), timeout_cycles=int(4 * budget / (1 - max(idle, stall))) + 500)
    for _ in range(50):  # anything more would be a duplicate
        await FallingEdge(dut.clk)
    sel.stop()
    summ.stop()
    sel_sb.assert_done()
    sum_sb.assert_done()
    cycles = [s - c + 1 for (_, s), c in zip(summ.beats, cmd.times, strict=True)]
    for got, formula in zip(cycles, want, strict=True):
        assert got == formula if exact else got >= formula, f"cycles {got}, formula {formula}"
    return cycles


@cocotb.test()
async def quickselect_synthetic_random_timing(dut):
    """The WTU regression's rows (ties, one bucket, saturated scores and counts, wide
    ranges), 1..max_clusters clusters, random coverage; random gaps and back-pressure."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    idle, stall = timing_from_env()
    rows = synthetic_rows(cfg, 30, seed_from_env())
    await run_rows(dut, rows, idle=idle, stall=stall, exact=False, tag=1)


@cocotb.test()
async def quickselect_exact_cycles(dut):
    """No stalls: every row takes exactly ``quickselect_cycles`` cycles."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    rows = synthetic_rows(cfg, 10, seed_from_env() + 1)
    await run_rows(dut, rows, idle=0.0, stall=0.0, exact=True, tag=2)


@cocotb.test()
async def quickselect_corner_rows(dut):
    """One cluster, all ties (coverage 1 and 1/2), saturated scores and counts, no mass,
    everything but the best cluster out of the weights' range, ascending scores (coverage
    just below 1, and one LSB)."""
    cfg = config_from_env()
    r = cfg.resv
    one, n = 1 << r.coverage_frac_bits, cfg.max_clusters
    rows = [
        ScoreRow(scores=np.array([r.score_min]), counts=np.array([r.count_max]), coverage_q=one),
        ScoreRow(scores=np.full(n, 3), counts=np.arange(n) % (r.count_max + 1), coverage_q=one),
        ScoreRow(scores=np.full(n, -9), counts=np.ones(n, np.int64), coverage_q=one // 2),
        ScoreRow(
            scores=np.resize([r.score_max, r.score_min], n),
            counts=np.full(n, r.count_max),
            coverage_q=one,
        ),
        ScoreRow(scores=np.arange(n) * 7, counts=np.zeros(n, np.int64), coverage_q=one // 3),
        ScoreRow(
            scores=np.array([r.score_max] + [r.score_min] * (n - 1)),
            counts=np.ones(n, np.int64),
            coverage_q=one,
        ),
        ScoreRow(scores=np.arange(n) * 5, counts=np.ones(n, np.int64), coverage_q=one - 1),
        ScoreRow(scores=np.arange(n) * 5, counts=np.ones(n, np.int64), coverage_q=1),
    ]
    await start_clock(dut)
    await reset(dut)
    await run_rows(dut, rows, idle=0.25, stall=0.25, exact=False, tag=3)


@cocotb.test()
async def quickselect_video_trace(dut):
    """Cluster scores of the TRACE file, or of video-like synthetic keys (sim.cases.dre)."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    _, rows = env_workload(cfg, rows=12, seed=seed_from_env(), log=dut._log)
    idle, stall = timing_from_env()
    await run_rows(dut, rows, idle=idle, stall=stall, exact=False, tag=4)


@cocotb.test()
async def quickselect_reset_mid_row(dut):
    """A reset in the middle of a row drops it; the next row is selected from scratch."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await start_clock(dut)
    await reset(dut)
    first, second = synthetic_rows(cfg, 4, seed_from_env() + 2)[2:4]
    cmd = StreamSource(dut, "cmd", lay.wtu_cmd)
    src = StreamSource(dut, "clusters", clusters_layout(cfg))
    await cmd.send([{"coverage_q": first.coverage_q}])
    beats = quickselect_beats(cfg, first)
    await src.send(beats[: max(1, len(beats) // 2)])
    await reset(dut, cycles=1)
    await run_rows(dut, [second], idle=0.2, stall=0.2, exact=False, tag=5)
