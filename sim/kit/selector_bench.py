"""The cocotb driver the three selector benches share (``tb_wtu``, ``tb_topk``,
``tb_quickselect``): rows of cluster scores in, selected ids and a summary out.

A bench describes its selector with a ``Selector`` (its layouts, how a row becomes a
``cmd`` beat and ``clusters`` beats, and the golden expectation of a row: the selected
beats, the summary tuple, the row's cycles and its coverage bins); ``run_rows`` sends rows
back to back with random idle cycles and back-pressure, checks every ``selected`` beat and
summary in order against the expectation and each row's cycles (command handshake to
summary handshake, both included) against the formula: equal without stalls (``exact``),
at least with them. Two whole test bodies: ``video_trace`` (rows from a real trace or
video-like keys) and ``reset_mid_row`` (a reset half-way through one row, then the next
row selected from scratch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cocotb
from cocotb.triggers import FallingEdge

from sim.cases.dre import ScoreRow, beat_tuple, env_workload, selected_beats
from sim.coverage import collector
from sim.kit.cocotb_streams import (
    Scoreboard,
    StreamSink,
    StreamSource,
    make_rng,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)

__all__ = ["Expected", "Selector", "reset_mid_row", "run_rows", "video_trace"]


@dataclass(frozen=True)
class Expected:
    """The golden answer to one row."""

    ids: list[int]  #: the selected cluster ids, in emit order
    summary: tuple  #: the summary beat, as ``Selector.summary`` reads it
    cycles: int  #: the row's cycles without stalls
    bins: list[tuple[str, str]]  #: the coverage bins the row hits


@dataclass(frozen=True)
class Selector:
    """What ``run_rows`` needs to know about one selector."""

    name: str  #: scoreboard prefix
    cmd_layout: Any
    clusters_layout: Any
    selected_layout: Any
    summary_layout: Any
    lanes: int  #: ids per ``selected`` beat (1: ``(cluster, last)`` beats)
    cmd: Callable[[ScoreRow], dict]  #: a row's ``cmd`` beat
    beats: Callable[[ScoreRow], list[dict]]  #: a row's ``clusters`` beats
    expect: Callable[[ScoreRow], Expected]
    summary: Callable[[Any], tuple]  #: a ``summary`` payload as a tuple


async def run_rows(
    dut, sel: Selector, rows: list[ScoreRow], *, idle: float, stall: float, exact: bool, tag: int
) -> list[int]:
    """Send ``rows`` back to back and check them (see the module docstring); returns each
    row's cycles."""
    await FallingEdge(dut.clk)
    sel_sb = Scoreboard(f"{sel.name}.selected", dut._log)
    sum_sb = Scoreboard(f"{sel.name}.summary", dut._log)
    exps = [sel.expect(row) for row in rows]
    for exp in exps:
        for beat in selected_beats(exp.ids, sel.lanes):
            sel_sb.expect(beat)
        sum_sb.expect(exp.summary)
    cov = collector()
    out = StreamSink(
        dut,
        "selected",
        sel.selected_layout,
        rng=make_rng(tag, 3),
        stall=stall,
        callback=lambda p, _t: sel_sb.check(beat_tuple(p, sel.lanes)),
    )

    def on_summary(p, _t):
        sum_sb.check(sel.summary(p))
        for group, name in exps[len(summ.beats) - 1].bins:
            cov.hit(group, name)

    summ = StreamSink(
        dut, "summary", sel.summary_layout, rng=make_rng(tag, 4), stall=stall, callback=on_summary
    )
    cmd = StreamSource(dut, "cmd", sel.cmd_layout, rng=make_rng(tag, 1), idle=idle)
    src = StreamSource(dut, "clusters", sel.clusters_layout, rng=make_rng(tag, 2), idle=idle)
    out.start()
    summ.start()
    cmd_task = cocotb.start_soon(cmd.send([sel.cmd(r) for r in rows]))
    await src.send([b for r in rows for b in sel.beats(r)])
    await cmd_task
    budget = sum(exp.cycles for exp in exps)
    await summ.wait_for(len(rows), timeout_cycles=int(4 * budget / (1 - max(idle, stall))) + 500)
    for _ in range(50):  # anything more would be a duplicate
        await FallingEdge(dut.clk)
    out.stop()
    summ.stop()
    sel_sb.assert_done()
    sum_sb.assert_done()
    cycles = [s - c + 1 for (_, s), c in zip(summ.beats, cmd.times, strict=True)]
    for exp, got in zip(exps, cycles, strict=True):
        want = exp.cycles
        assert got == want if exact else got >= want, f"row cycles {got}, formula {want}"
    return cycles


async def video_trace(dut, sel: Selector, cfg, *, rows: int = 12, row_map=None) -> None:
    """Reset, then ``rows`` rows of cluster scores from the ``TRACE`` file (or video-like
    synthetic keys: ``sim.cases.dre.env_workload``), ``row_map`` applied to each, under the
    run's timing (``TIMING``)."""
    await start_clock(dut)
    await reset(dut)
    _, got = env_workload(cfg, rows=rows, seed=seed_from_env(), log=dut._log)
    if row_map is not None:
        got = [row_map(i, r) for i, r in enumerate(got)]
    idle, stall = timing_from_env()
    await run_rows(dut, sel, got, idle=idle, stall=stall, exact=False, tag=4)


async def reset_mid_row(dut, sel: Selector, first: ScoreRow, second: ScoreRow) -> None:
    """Reset, half of ``first``'s beats, a one-cycle reset, then ``second`` alone, checked: a
    reset in the middle of a row drops it and the next row is selected from scratch."""
    await start_clock(dut)
    await reset(dut)
    cmd = StreamSource(dut, "cmd", sel.cmd_layout)
    src = StreamSource(dut, "clusters", sel.clusters_layout)
    await cmd.send([sel.cmd(first)])
    beats = sel.beats(first)
    await src.send(beats[: max(1, len(beats) // 2)])
    await reset(dut, cycles=1)
    await run_rows(dut, sel, [second], idle=0.2, stall=0.2, exact=False, tag=5)
