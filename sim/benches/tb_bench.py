"""cocotb workload runner for ``sim.bench`` (not a regression: the regressions are
the ``tb_hcu``, ``tb_wtu``, ``tb_quickselect`` and ``tb_topk`` benches).

Reads its workload from ``BENCH_IN`` (an ``.npz`` written by ``sim.bench``), streams it
through the DUT with no idle cycles and no back-pressure, still checks every output against
the golden model and every cycle count against the unit's formula, and writes cycles and
wall time to ``BENCH_OUT`` (JSON).
"""

from __future__ import annotations

import json
import os
import time
from functools import partial

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from hw.dre import (
    WTU_TOPS,
    layouts,
    quickselect_cycles,
    topk_cycles,
    wtu_ingest_lanes,
    wtu_unit_config,
)
from sim.benches.tb_wtu import cluster_beats, clusters_layout, row_cycles
from sim.cases.dre import (
    HCUStream,
    ScoreRow,
    beat_ids,
    hcu_expected,
    hcu_timing,
    quickselect_beats,
    quickselect_expected,
    topk_expected,
    wtu_beats,
    wtu_expected,
)
from sim.kit.cocotb_streams import (
    Scoreboard,
    StreamSink,
    StreamSource,
    config_from_env,
    reset,
    start_clock,
)


def _write(result: dict) -> None:
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(result, f)


async def _hcu(dut, data) -> dict:
    cfg = config_from_env()
    lay = layouts(cfg)
    sigs = data["sigs"].astype(np.uint64)
    clear = data["clear"].astype(bool) if "clear" in data else np.zeros(sigs.size, bool)
    stream = HCUStream(sigs=sigs, clear=clear)
    exp = hcu_expected(cfg, stream)
    sb = Scoreboard("hcu.assign", dut._log)
    for t in range(len(stream)):
        sb.expect((int(exp.cluster[t]), int(exp.event[t])))
    sink = StreamSink(
        dut,
        "assign",
        lay.assign,
        fast=True,
        callback=lambda p, _t: sb.check((p.cluster, p.event.value)),
    )
    src = StreamSource(dut, "tokens", lay.token, fast=True)
    sink.start()
    t0 = time.perf_counter()
    await src.send(
        [
            {"token_id": i % (1 << cfg.token_id_bits), "signature": int(s), "clear": int(c)}
            for i, (s, c) in enumerate(zip(stream.sigs, stream.clear, strict=True))
        ]
    )
    while len(sink.beats) < len(stream):
        await RisingEdge(dut.clk)
    wall = time.perf_counter() - t0
    sink.stop()
    sb.assert_done()
    acc = np.array(src.times)
    done = np.array([t for _, t in sink.beats])
    timing = hcu_timing(cfg, stream, exp)
    assert (acc - acc[0] == timing.accepted).all(), "HCU acceptances differ from the formula"
    assert (done - acc[0] == timing.done).all(), "HCU result cycles differ from the formula"
    return {
        # per batch: first token, tokens, occupancy at its start, rows scanned, compares
        # and its cycles (first acceptance to the next batch's, the last to its last result)
        "batches": [
            [*map(int, b), int(nxt - acc[b.first])]
            for b, nxt in zip(
                timing.batches,
                [*(acc[b.first] for b in timing.batches[1:]), done[-1] + 1],
                strict=True,
            )
        ],
        "forced": exp.forced,
        "final_occupancy": exp.occupancy,
        "sim_cycles": int(done[-1] + 1 - acc[0]),
        "wall_seconds": wall,
    }


async def _selector(dut, data, unit: str) -> dict:
    cfg = wtu_unit_config(unit, config_from_env())
    kind = "wtu" if unit in WTU_TOPS else unit  # wtu, wtu_grid: the WTU at its bucket mode
    lay = layouts(cfg)
    rows = [
        ScoreRow(scores=s, counts=c, coverage_q=int(q), k=int(k))
        for s, c, q, k in zip(
            np.split(data["scores"], data["splits"]),
            np.split(data["counts"], data["splits"]),
            data["coverage_q"],
            data["k"],
            strict=True,
        )
    ]
    sel_sb = Scoreboard(f"{unit}.selected", dut._log)
    want_cycles, extra = [], []
    for row in rows:
        if kind == "wtu":
            exp = wtu_expected(cfg, row)
            ids = exp.selected.tolist()
            want_cycles.append(row_cycles(cfg, row, exp))
            extra.append({"b_star": exp.b_star, "n_selected": len(ids)})
        elif kind == "quickselect":
            exp = quickselect_expected(cfg, row)
            ids = exp.selected.tolist()
            want_cycles.append(quickselect_cycles(cfg, row.scores.size, exp))
            extra.append({"passes": len(exp.pass_reads), "n_selected": len(ids)})
        else:
            ids = topk_expected(row).tolist()
            want_cycles.append(topk_cycles(cfg, row.scores.size, row.k))
            extra.append({"n_selected": len(ids)})
        for c in ids:
            sel_sb.expect(c)
    summary_layout = {
        "wtu": lay.wtu_summary,
        "quickselect": lay.quickselect_summary,
        "topk": lay.topk_summary,
    }[kind]
    cmd_layout = lay.topk_cmd if kind == "topk" else lay.wtu_cmd
    # Selected ids: one per beat, or a row of ``lanes`` ids per beat (``selected_lanes``).
    lanes = {"wtu": wtu_ingest_lanes(cfg), "quickselect": cfg.wtu_lanes, "topk": 1}[kind]

    def on_selected(p, _t):
        for c in beat_ids(p, lanes):
            sel_sb.check(c)

    sel_layout = lay.selected_lanes if lanes > 1 else lay.selected
    sel = StreamSink(dut, "selected", sel_layout, fast=True, callback=on_selected)
    summ = StreamSink(dut, "summary", summary_layout, fast=True)
    cmd = StreamSource(dut, "cmd", cmd_layout, fast=True)
    if kind == "wtu":
        src_layout, beats_of = clusters_layout(cfg), partial(wtu_beats, cfg)
    elif kind == "quickselect":  # wtu_lanes clusters per beat whatever the bucket mode
        src_layout = lay.cluster_lanes if cfg.wtu_lanes > 1 else lay.cluster_score
        beats_of = partial(quickselect_beats, cfg)
    else:  # the top-k: one cluster per beat
        src_layout, beats_of = lay.cluster_score, cluster_beats
    src = StreamSource(dut, "clusters", src_layout, fast=True)
    sel.start()
    summ.start()
    cmds = [{"k": r.k} if kind == "topk" else {"coverage_q": r.coverage_q} for r in rows]
    t0 = time.perf_counter()
    cmd_task = cocotb.start_soon(cmd.send(cmds))
    await src.send([b for r in rows for b in beats_of(r)])
    await cmd_task
    while len(summ.beats) < len(rows):
        await RisingEdge(dut.clk)
    wall = time.perf_counter() - t0
    sel.stop()
    summ.stop()
    sel_sb.assert_done()
    cycles = [s - c + 1 for (_, s), c in zip(summ.beats, cmd.times, strict=True)]
    assert cycles == want_cycles, f"{unit} cycles {cycles} differ from the formula {want_cycles}"
    return {
        "rows": [
            {"n": r.scores.size, "k": r.k, "cycles": c, **e}
            for r, c, e in zip(rows, cycles, extra, strict=True)
        ],
        "sim_cycles": int(summ.beats[-1][1] - cmd.times[0]),
        "wall_seconds": wall,
    }


@cocotb.test()
async def bench_run(dut):
    """Run the ``BENCH_IN`` workload on the DUT (hcu, wtu, quickselect or topk) and report
    cycles."""
    unit = os.environ["BENCH_UNIT"]
    await start_clock(dut)
    await reset(dut)
    with np.load(os.environ["BENCH_IN"]) as z:
        data = {k: z[k] for k in z.files}
    result = await (_hcu(dut, data) if unit == "hcu" else _selector(dut, data, unit))
    _write(result)
