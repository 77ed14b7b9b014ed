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

from hw.dre import layouts, quickselect_cycles
from sim.benches.tb_wtu import synthetic_rows
from sim.cases.dre import (
    ScoreRow,
    quickselect_beats,
    quickselect_expected,
)
from sim.coverage import quickselect_row_bins
from sim.kit import selector_bench
from sim.kit.cocotb_streams import (
    config_from_env,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)
from sim.kit.selector_bench import Expected, Selector


def clusters_layout(cfg):
    """The ``clusters`` payload of the quick-select of ``cfg`` (``wtu_lanes`` per beat)."""
    lay = layouts(cfg)
    return lay.cluster_lanes if cfg.wtu_lanes > 1 else lay.cluster_score


def selected_layout(cfg):
    """The ``selected`` payload of the quick-select of ``cfg`` (one id, or a row of
    ``wtu_lanes``)."""
    lay = layouts(cfg)
    return lay.selected_lanes if cfg.wtu_lanes > 1 else lay.selected


def selector(cfg) -> Selector:
    """The quick-select of ``cfg`` for ``sim.kit.selector_bench``."""
    lay = layouts(cfg)

    def expect(row: ScoreRow) -> Expected:
        exp = quickselect_expected(cfg, row)
        summary = (exp.selected.size, len(exp.pass_reads), exp.total_mass, exp.threshold, 0)
        cycles = quickselect_cycles(cfg, row.scores.size, exp)
        return Expected(exp.selected, summary, cycles, quickselect_row_bins(cfg, row, exp))

    return Selector(
        name="quickselect",
        cmd_layout=lay.wtu_cmd,
        clusters_layout=clusters_layout(cfg),
        selected_layout=selected_layout(cfg),
        summary_layout=lay.quickselect_summary,
        lanes=cfg.wtu_lanes,
        cmd=lambda r: {"coverage_q": r.coverage_q},
        beats=lambda r: quickselect_beats(cfg, r),
        expect=expect,
        summary=lambda p: (p.n_selected, p.passes, p.total_mass, p.threshold, p.error),
    )


async def run_rows(
    dut, rows: list[ScoreRow], *, idle: float, stall: float, exact: bool, tag: int
) -> list[int]:
    """``sim.kit.selector_bench.run_rows`` on the quick-select of the run's configuration."""
    return await selector_bench.run_rows(
        dut, selector(config_from_env()), rows, idle=idle, stall=stall, exact=exact, tag=tag
    )


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
    await selector_bench.video_trace(dut, selector(cfg), cfg)


@cocotb.test()
async def quickselect_reset_mid_row(dut):
    """A reset in the middle of a row drops it; the next row is selected from scratch."""
    cfg = config_from_env()
    first, second = synthetic_rows(cfg, 4, seed_from_env() + 2)[2:4]
    await selector_bench.reset_mid_row(dut, selector(cfg), first, second)
