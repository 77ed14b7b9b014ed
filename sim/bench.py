"""Hardware benchmark of the DRE units (the hardware part of ``make bench``).

    python -m sim.bench --config tiny|paper|edge [--sizes 256,512,1024,2048,4096]
                        [--lanes 16] [--batches 1,2,4,8] [--hcu-probes N]
                        [--hcu-trace-tokens N] [--rows R] [--wtu-lanes 1,4,16] [--topk-k K]
                        [--parts hcu,selectors,speed] [-o build/bench]

1. HCU token-cluster compares per cycle for every table size, lane count and batch size
   (``hcu_batch``; Verilator, a table of each size): random signatures against a full
   table, and with ``TRACE=path.npz`` the trace's tokens from an empty table.
2. Selector cycles on the same score rows at each size and each ``--wtu-lanes`` L: the WTU
   with ``relative`` buckets (single-lane whatever L, run once) and with ``grid`` buckets
   (L clusters per beat), the weighted quick-select (L clusters per beat and per partition
   cycle; the exact WiCSum of the same fixed-point inputs) and the top-k baseline with
   ``topk_k = L`` insertion slots by default (equal comparator count; one cluster per
   cycle), given the exact selection's size as ``k`` (an oracle
   k that favours the baseline: it cannot know k without sorting). Rows are synthetic
   (``sim.cases.dre.score_row``) plus, with ``TRACE=path.npz``, the clusters of the trace
   scored against its queries. The issue-12 goal (grid WTU <= 0.4x the quick-select's
   cycles and <= 0.2x the top-k's at the largest size) is checked per L.
3. Simulation speed (cycles/s) of the same small workload on the Amaranth simulator, Icarus
   and Verilator (cocotb) and the fast C++ Verilator harness (``sim.fast``, same stream, same
   cycle check), the harness on a 200 000-token chunk, plus the Verilator rates of the large
   runs.

Every simulated output is checked against the golden model and every cycle count against
the unit's formula, so the figures are measured and verified, not modelled. Writes
``hw_bench.json``, ``hw_bench.md`` and PNG plots to the output directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from golden.resv import ClusterEvent
from golden.synthetic import synthetic_signatures
from hw.config import PRESETS, HWConfig, preset
from hw.dre import quickselect_cycles, topk_cycles, wtu_cycles, wtu_unit_config
from sim.cases.dre import (
    HCUStream,
    ScoreRow,
    hcu_expected,
    quickselect_expected,
    score_row,
    trace_path,
    trace_workload,
    wtu_expected,
)
from sim.kit.runner import run_unit

__all__ = ["main"]


def _say(msg: str) -> None:
    print(f"[sim.bench] {msg}", flush=True)


def _run_cocotb(unit: str, sim: str, config: str, overrides: dict, data: dict, tag: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.json"
        np.savez(inp, **data)
        t0 = time.perf_counter()
        res = run_unit(
            unit,
            sim,
            config=config,
            overrides=overrides,
            tag=tag,
            test_module="sim.benches.tb_bench",
            env={"BENCH_IN": str(inp), "BENCH_OUT": str(out), "BENCH_UNIT": unit},
            optimize=True,
        )
        result = json.loads(out.read_text())
    result["build_seconds"] = res.build_seconds
    result["total_seconds"] = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------------------------


class TableNotFilled(ValueError):
    """The synthetic signatures cannot fill an HCU table of the asked size."""


def hcu_workload(
    cfg: HWConfig, size: int, probes: int, trace_tokens: int, seed: int
) -> tuple[HCUStream, int, int]:
    """One HCU stream per table size, in two contexts: random signatures until ``size``
    clusters exist, then ``probes`` random tokens against the full table (joins and forced
    joins, no exact copies: no early exit); then, after a clear, up to ``trace_tokens``
    tokens of the ``TRACE`` file (``trace_workload``: layer 0, KV head 0) when one is given.
    Returns the stream and where the probes and the trace start."""
    r = cfg.resv
    sized = cfg.replace(resv={"max_clusters": size})
    sigs = synthetic_signatures(
        2 * size + probes, hash_bits=r.hash_bits, redundancy=0.0, sources=8 * size, seed=seed
    )
    golden = hcu_expected(sized, HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool)))
    created = np.cumsum(golden.event == ClusterEvent.CREATED)
    full = int(np.searchsorted(created, size)) + 1  # tokens until the table is full
    if full > sigs.size - probes:
        raise TableNotFilled(
            f"HCU table {size}: {sigs.size - probes} synthetic tokens created {int(created[-1])} "
            f"clusters, not {size} (the preset's {r.hash_bits}-bit signatures at threshold "
            f"{r.threshold} hold few clusters: smaller --sizes or --config paper)"
        )
    parts = [sigs[: full + probes]]
    path = trace_path()
    if path is not None and trace_tokens > 0:
        parts.append(trace_workload(sized, path, max_tokens=trace_tokens, max_rows=0)[0].sigs)
    clear = np.zeros(sum(p.size for p in parts), bool)
    clear[[0, full + probes][: len(parts)]] = True
    return HCUStream(sigs=np.concatenate(parts), clear=clear), full, full + probes


def _hcu_figures(cfg: HWConfig, batches: list, lo: int, hi: int) -> dict:
    """Compares, cycles and rows of the batches of tokens ``lo..hi-1`` (from ``tb_bench``:
    first, tokens, occupancy, rows, compares, cycles)."""
    sel = [b for b in batches if lo <= b[0] < hi]
    tokens = sum(b[1] for b in sel)
    compares = sum(b[4] for b in sel)
    cycles = sum(b[5] for b in sel)
    full_rows = sum(-(-b[2] // cfg.hcu_lanes) for b in sel)
    return {
        "tokens": tokens,
        "compares": compares,
        "cycles": cycles,
        "compares_per_cycle": compares / cycles,
        "cycles_per_token": cycles / tokens,
        "rows_scanned_frac": sum(b[3] for b in sel) / max(1, full_rows),
        "mean_occupancy": compares / tokens,
    }


def bench_hcu(
    config: str,
    cfg: HWConfig,
    sizes: list[int],
    lanes: list[int],
    batches: list[int],
    probes: int,
    trace_tokens: int,
    seed: int,
) -> tuple[list[dict], list[str]]:
    """HCU compares per cycle for every (lanes, batch, size), on synthetic tokens against a
    full table and on the trace's tokens (Verilator; results and cycles verified). A size
    the preset's signatures cannot fill is left out, and said so (``skipped``)."""
    out, skipped = [], []
    for size in sizes:
        try:
            stream, p0, t0 = hcu_workload(cfg, size, probes, trace_tokens, seed)
        except TableNotFilled as exc:
            _say(f"skipped: {exc}")
            skipped.append(str(exc))
            continue
        for lane in lanes:
            for b in batches:
                over = {"resv": {"max_clusters": size}, "hcu_lanes": lane, "hcu_batch": b}
                sized = cfg.replace(**over)
                _say(f"HCU, table {size}, {lane} lanes, batch {b}, {len(stream)} tokens")
                res = _run_cocotb(
                    "hcu",
                    "verilator",
                    config,
                    over,
                    {"sigs": stream.sigs, "clear": stream.clear},
                    f"bench_l{lane}_b{b}_c{size}",
                )
                row = {
                    "clusters": size,
                    "lanes": lane,
                    "batch": b,
                    "synthetic": _hcu_figures(sized, res["batches"], p0, t0),
                    "forced": res["forced"],
                    "sim_cycles": res["sim_cycles"],
                    "wall_seconds": res["wall_seconds"],
                    "build_seconds": res["build_seconds"],
                }
                if t0 < len(stream):
                    row["trace"] = _hcu_figures(sized, res["batches"], t0, len(stream))
                    row["trace"]["final_occupancy"] = res["final_occupancy"]
                out.append(row)
                _say(
                    f"  synthetic {row['synthetic']['compares_per_cycle']:.1f} compares/cycle"
                    + (
                        f", trace {row['trace']['compares_per_cycle']:.1f} "
                        f"(occupancy {res['final_occupancy']}, rows scanned "
                        f"{100 * row['trace']['rows_scanned_frac']:.0f} %)"
                        if "trace" in row
                        else ""
                    )
                    + f"; {res['sim_cycles'] / res['wall_seconds']:.0f} cycles/s"
                )
    return out, skipped


def selector_rows(
    cfg: HWConfig, sizes: list[int], rows: int, seed: int
) -> list[tuple[str, ScoreRow]]:
    out = []
    for n in sizes:
        for i in range(rows):
            row = score_row(cfg, n, seed=seed + 1000 * n + i, kind="normal")
            out.append(
                (
                    f"synthetic-{n}",
                    ScoreRow(scores=row.scores, counts=row.counts, coverage_q=cfg.resv.coverage_q),
                )
            )
    path = trace_path()
    if path is not None:
        # Prefixes of the trace's stream (1/8 .. all of its tokens): tables of several sizes.
        stream, _ = trace_workload(cfg, path, max_tokens=16 * cfg.max_clusters, max_rows=0)
        for part in (8, 4, 2, 1):
            _, trace_rows = trace_workload(
                cfg, path, max_tokens=len(stream) // part, max_rows=max(rows, 2)
            )
            out += [(f"trace-{r.scores.size}", r) for r in trace_rows]
    # The top-k baseline gets the exact selection's size: the same set, sorted.
    return [
        (
            name,
            ScoreRow(
                scores=r.scores,
                counts=r.counts,
                coverage_q=r.coverage_q,
                k=int(quickselect_expected(cfg, r).selected.size),
            ),
        )
        for name, r in out
    ]


def _pack(rows: list[ScoreRow]) -> dict:
    return {
        "scores": np.concatenate([r.scores for r in rows]),
        "counts": np.concatenate([r.counts for r in rows]),
        "splits": np.cumsum([r.scores.size for r in rows])[:-1],
        "coverage_q": np.array([r.coverage_q for r in rows]),
        "k": np.array([r.k for r in rows]),
    }


#: The selectors compared (``hw.gen`` tops; ``wtu`` has relative buckets, ``wtu_grid`` grid).
SELECTORS = ("wtu", "wtu_grid", "quickselect", "topk")


def bench_selectors(
    config: str,
    cfg: HWConfig,
    named: list[tuple[str, ScoreRow]],
    relative: dict | None = None,
) -> dict:
    """Every selector of ``SELECTORS`` on the rows at ``cfg.wtu_lanes``; ``relative`` (the
    relative WTU's run, single-lane whatever ``wtu_lanes``) is reused when given."""
    rows = [r for _, r in named]
    results = {} if relative is None else {"wtu": relative}
    for name in SELECTORS:
        if name in results:
            continue
        over = {
            "resv": {"max_clusters": cfg.max_clusters},
            "topk_k": cfg.topk_k,
            "wtu_lanes": cfg.wtu_lanes,
        }
        _say(
            f"{name}, {len(rows)} rows of {sorted({r.scores.size for r in rows})} "
            f"clusters (Verilator)"
        )
        tag = f"bench_c{cfg.max_clusters}_k{cfg.topk_k}_l{cfg.wtu_lanes}"
        results[name] = _run_cocotb(name, "verilator", config, over, _pack(rows), tag)
    rel_cfg, grid_cfg = wtu_unit_config("wtu", cfg), wtu_unit_config("wtu_grid", cfg)
    table = []
    for i, (name, row) in enumerate(named):
        w, g = results["wtu"]["rows"][i], results["wtu_grid"]["rows"][i]
        q, t = results["quickselect"]["rows"][i], results["topk"]["rows"][i]
        n = row.scores.size
        grid_exp = wtu_expected(grid_cfg, row)
        table.append(
            {
                "rows": name,
                "clusters": n,
                "selected_exact": q["n_selected"],
                "selected_relative": w["n_selected"],
                "selected_grid": g["n_selected"],
                "b_star": w["b_star"],
                "b_star_grid": g["b_star"],
                "buckets_scanned_frac": (w["b_star"] + 1) / cfg.resv.n_buckets,
                "quickselect_passes": q["passes"],
                "wtu_cycles": w["cycles"],
                "wtu_grid_cycles": g["cycles"],
                "wtu_grid_emit_cycles": grid_exp.emit_cycles,
                "quickselect_cycles": q["cycles"],
                "topk_cycles": t["cycles"],
                "topk_passes": -(-max(1, row.k) // cfg.topk_k),
                "ratio_topk_over_wtu": t["cycles"] / w["cycles"],
                "ratio_grid_over_quickselect": g["cycles"] / q["cycles"],
                "ratio_grid_over_topk": g["cycles"] / t["cycles"],
                "ratio_relative_over_quickselect": w["cycles"] / q["cycles"],
                # Without an oracle k a sorter must order the whole row (k = C) before the
                # running sum can stop: the selector's verified formula at k = C.
                "sort_cycles_formula": topk_cycles(cfg, n, n),
            }
        )
        assert w["cycles"] == wtu_cycles(rel_cfg, n, w["b_star"], w["n_selected"])
        assert g["cycles"] == wtu_cycles(
            grid_cfg, n, g["b_star"], g["n_selected"], emit_cycles=grid_exp.emit_cycles
        )
        assert q["cycles"] == quickselect_cycles(cfg, n, quickselect_expected(cfg, row))
        assert t["cycles"] == topk_cycles(cfg, n, row.k)
    return {
        "wtu_lanes": cfg.wtu_lanes,
        "topk_k": cfg.topk_k,
        "rows": table,
        "runs": {u: {k: v for k, v in res.items() if k != "rows"} for u, res in results.items()},
        "relative_result": results["wtu"],
    }


def lanes_summary(by_lanes: list[dict]) -> list[dict]:
    """Per lane count and size: mean cycles of the grid WTU, the quick-select and the top-k
    over the synthetic rows and over the trace rows, their ratios and the issue-12 goal
    (grid <= 0.4x quick-select and <= 0.2x top-k)."""
    out = []
    for sel in by_lanes:
        for kind in ("synthetic", "trace"):
            rows = [r for r in sel["rows"] if r["rows"].startswith(kind)]
            sizes = sorted({r["clusters"] for r in rows}) if kind == "synthetic" else [None]
            for n in sizes:
                rs = [r for r in rows if n is None or r["clusters"] == n]
                if not rs:
                    continue
                mean = {
                    k: float(np.mean([r[k] for r in rs]))
                    for k in ("wtu_grid_cycles", "quickselect_cycles", "topk_cycles")
                }
                vs_qs = [r["ratio_grid_over_quickselect"] for r in rs]
                vs_topk = [r["ratio_grid_over_topk"] for r in rs]
                out.append(
                    {
                        "wtu_lanes": sel["wtu_lanes"],
                        "topk_k": sel["topk_k"],
                        "rows": kind,
                        "clusters": n if n is not None else [r["clusters"] for r in rs],
                        "count": len(rs),
                        **mean,
                        "grid_over_quickselect": mean["wtu_grid_cycles"]
                        / mean["quickselect_cycles"],
                        "grid_over_topk": mean["wtu_grid_cycles"] / mean["topk_cycles"],
                        "grid_over_quickselect_max": max(vs_qs),
                        "grid_over_topk_max": max(vs_topk),
                        "goal_quickselect": max(vs_qs) <= 0.4,
                        "goal_topk": max(vs_topk) <= 0.2,
                    }
                )
    return out


def bench_sim_speed(tokens: int, seed: int) -> dict:
    """The same tiny-config HCU stream on every simulator."""
    from sim.cases.dre import HCUStream

    cfg = preset("tiny")
    sigs = synthetic_signatures(
        tokens, hash_bits=cfg.resv.hash_bits, redundancy=0.8, sources=8, seed=seed
    )
    out = {}
    for sim in ("icarus", "verilator"):
        _say(f"simulation speed: HCU tiny, {tokens} tokens, {sim}")
        res = _run_cocotb("hcu", sim, "tiny", {}, {"sigs": sigs}, "bench_speed")
        out[sim] = {
            "cycles": res["sim_cycles"],
            "seconds": res["wall_seconds"],
            "cycles_per_second": res["sim_cycles"] / res["wall_seconds"],
            "build_seconds": res["build_seconds"],
        }
    _say(f"simulation speed: HCU tiny, {tokens} tokens, Amaranth simulator")
    out["amaranth"] = _amaranth_speed(cfg, HCUStream(sigs=sigs, clear=np.zeros(tokens, bool)))
    out.update(_fast_speed(cfg, HCUStream(sigs=sigs, clear=np.zeros(tokens, bool)), seed))
    return out


#: Tokens of the long fast-harness run of the speed part (its cycles/s figure).
FAST_LONG_TOKENS = 200_000


def _fast_speed(cfg: HWConfig, stream, seed: int, long_tokens: int = FAST_LONG_TOKENS) -> dict:
    """The fast C++ harness (``sim.fast``) on the same stream, no stalls: its cycles from the
    handshakes (checked against ``hcu_timing``, as the cocotb run is), and its cycles/s on
    that stream and on a ``long_tokens`` soak chunk (``sim.fast.run_chunk``, no stalls)."""
    from sim.cases.dre import hcu_timing
    from sim.fast import PROFILES, run_chunk
    from sim.fast.run import run_prepared
    from sim.fast.stimulus import hcu_stream_chunk

    _say(f"simulation speed: HCU tiny, {len(stream)} tokens, fast C++ harness (sim.fast)")
    chunk = hcu_stream_chunk(cfg, stream)
    with tempfile.TemporaryDirectory() as tmp:
        v = run_prepared(
            "hcu",
            cfg,
            chunk,
            seed,
            config="tiny",
            profile=PROFILES["none"],
            keep=Path(tmp),
            times=True,
        )
        rows = (ln.split() for ln in (Path(tmp) / "times.txt").read_text().splitlines())
        t = {r[0]: np.array(r[1:], np.int64) for r in rows}
    if not v.passed:
        raise AssertionError(f"fast harness: {v.line}")
    timing = hcu_timing(cfg, stream, chunk.golden["expected"])
    acc, done = t["tokens"], t["assign"]
    assert (acc - acc[0] == timing.accepted).all(), "fast harness: acceptances differ"
    assert (done - acc[0] == timing.done).all(), "fast harness: result cycles differ"
    cycles = int(done[-1] + 1 - acc[0])
    _say(f"simulation speed: HCU tiny, {long_tokens} tokens, fast C++ harness (sim.fast)")
    long, _ = run_chunk("hcu", cfg, long_tokens, seed, config="tiny", profile=PROFILES["none"])
    if not long.passed:
        raise AssertionError(f"fast harness: {long.line}")
    return {
        "verilator sim.fast": {
            "cycles": cycles,
            "seconds": v.seconds,
            "cycles_per_second": cycles / v.seconds,
            "workload": "HCU tiny stream",
        },
        "verilator sim.fast long": {
            "cycles": long.cycles,
            "seconds": long.seconds,
            "cycles_per_second": long.cycles_per_s,
            "workload": f"HCU tiny, {long_tokens} tokens (soak chunk)",
        },
    }


def _amaranth_speed(cfg: HWConfig, stream) -> dict:
    from hw.dre import HashClusterUnit
    from sim.cases.dre import hcu_expected
    from sim.kit.streams import Harness, run, stream_get, stream_put

    dut = HashClusterUnit(cfg)
    h = Harness(dut)
    got: dict = {}
    payloads = [
        {"token_id": i % 1024, "signature": int(s), "clear": 0} for i, s in enumerate(stream.sigs)
    ]

    async def src(ctx):
        got["acc"] = await stream_put(ctx, dut.tokens, payloads, cycle=h.cycle)

    async def dst(ctx):
        got["beats"] = await stream_get(ctx, dut.assign, cycle=h.cycle, count=len(stream))

    t0 = time.perf_counter()
    run(h, [src, dst])
    wall = time.perf_counter() - t0
    exp = hcu_expected(cfg, stream)
    assert [p.cluster for p, _ in got["beats"]] == exp.cluster.tolist()
    cycles = got["beats"][-1][1] - got["acc"][0]
    return {"cycles": int(cycles), "seconds": wall, "cycles_per_second": cycles / wall}


# ---------------------------------------------------------------------------------------------


def _plot_hcu(out_dir: Path, report: dict, plt) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (lane, b) in enumerate(sorted({(h["lanes"], h["batch"]) for h in report["hcu"]})):
        runs = [h for h in report["hcu"] if (h["lanes"], h["batch"]) == (lane, b)]
        for kind, style in (("synthetic", "o-"), ("trace", "s--")):
            xs = [h["clusters"] for h in runs if kind in h]
            ys = [h[kind]["compares_per_cycle"] for h in runs if kind in h]
            if xs:
                ax.plot(xs, ys, style, color=f"C{i}", label=f"{lane} lanes, B={b}, {kind}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("table size (clusters)")
    ax.set_ylabel("token-cluster compares per cycle")
    ax.set_title("HCU throughput (measured, Verilator)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "hcu_cycles.png", dpi=120)
    plt.close(fig)

    return "hcu_cycles.png"


def _plot_selectors(out_dir: Path, report: dict, plt) -> str:
    rows = report["selectors"]["rows"]
    synth = [r for r in rows if r["rows"].startswith("synthetic")]
    trace = [r for r in rows if r["rows"].startswith("trace")]
    sizes = sorted({r["clusters"] for r in synth})
    series = {
        "wtu_cycles": "WTU, relative buckets",
        "wtu_grid_cycles": "WTU, grid buckets",
        "quickselect_cycles": f"weighted quick-select, {report['config']['wtu_lanes']} lanes",
        "topk_cycles": f"top-k, {report['config']['topk_k']} slots, oracle k",
    }
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (key, label) in enumerate(series.items()):
        mean = [np.mean([r[key] for r in synth if r["clusters"] == n]) for n in sizes]
        ax.loglog(sizes, mean, "os^v"[i] + "-", color=f"C{i}", label=label + ", synthetic")
        if trace:
            ax.loglog(
                [r["clusters"] for r in trace],
                [r[key] for r in trace],
                "os^v"[i],
                mfc="none",
                color=f"C{i}",
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("clusters in the row")
    ax.set_ylabel("cycles per row")
    ax.set_title("Selection cycles on the same rows (Verilator; open: trace rows)")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "selector_cycles.png", dpi=120)
    plt.close(fig)
    return "selector_cycles.png"


def _plot_speed(out_dir: Path, report: dict, plt) -> str:
    speed = report["sim_speed"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = list(speed)
    ax.bar(names, [speed[n]["cycles_per_second"] for n in names])
    ax.set_yscale("log")
    ax.set_ylabel("simulated cycles / s")
    ax.set_title("Simulation speed, HCU tiny stream")
    fig.tight_layout()
    fig.savefig(out_dir / "sim_speed.png", dpi=120)
    plt.close(fig)
    return "sim_speed.png"


def _plots(out_dir: Path, report: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = {"hcu": _plot_hcu, "selectors": _plot_selectors, "sim_speed": _plot_speed}
    return [plot(out_dir, report, plt) for part, plot in parts.items() if report.get(part)]


def _markdown(report: dict, plots: list[str]) -> str:
    c = report["config"]
    # Parts not run (--parts) leave their tables empty.
    sel = report.get("selectors", {"rows": [], "runs": {}})
    lines = [
        f"# DRE hardware benchmark (config `{c['name']}`, table {c['max_clusters']})",
        "",
        "Measured in RTL simulation of the generated Verilog; every output checked against "
        "the golden model and every cycle count against the unit's formula. Synthetic "
        "signatures and scores"
        + (f", plus trace `{report['trace']}`" if report["trace"] else " (no TRACE given)")
        + "; none of these are video-LLM keys.",
        "",
        "## HCU compares per cycle",
        "",
        "Compares = token-cluster pairs a sequential full search compares (the occupancy "
        "each token sees), over the HCU's cycles with no stalls. Synthetic: random "
        "signatures against a full table (no exact copies, so no early exit); trace: the "
        "trace's tokens from an empty table (early exit where a token repeats a cluster's "
        "signature exactly).",
        "",
        "| clusters | lanes | B | synthetic compares/cycle | cycles/token | trace tokens "
        "| final occupancy | trace compares/cycle | cycles/token | rows scanned |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for h in report.get("hcu", []):
        syn, tr = h["synthetic"], h.get("trace")
        cells = (
            f"{tr['tokens']} | {tr['final_occupancy']} | {tr['compares_per_cycle']:.1f} | "
            f"{tr['cycles_per_token']:.1f} | {100 * tr['rows_scanned_frac']:.1f} %"
            if tr
            else "| | | |"
        )
        lines.append(
            f"| {h['clusters']} | {h['lanes']} | {h['batch']} | "
            f"{syn['compares_per_cycle']:.1f} | {syn['cycles_per_token']:.1f} | {cells} |"
        )
    lines += [f"\nNot measured: {note}." for note in report.get("hcu_skipped", [])]
    lines += [
        "",
        "## WTU vs the weighted quick-select and top-k (same rows)",
        "",
        f"Quick-select: {c['wtu_lanes']} lanes, the exact WiCSum of the same fixed-point "
        f"inputs. Top-k: {c['topk_k']} insertion slots, k = the exact selection's size "
        f"(oracle). The grid WTU and the quick-select ingest {c['wtu_lanes']} clusters per "
        "beat, the relative WTU and the top-k one per cycle. Cycles from command to summary "
        "handshake.",
        "",
        "| rows | clusters | selected exact / rel. / grid | b* rel. / grid | WTU rel. | WTU grid "
        "| quick-select (passes) | top-k | grid / QS | grid / top-k | rel. / QS "
        "| full sort (k = C), formula |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sel["rows"]:
        lines.append(
            f"| {r['rows']} | {r['clusters']} | {r['selected_exact']} / "
            f"{r['selected_relative']} / {r['selected_grid']} | {r['b_star']} / "
            f"{r['b_star_grid']} | {r['wtu_cycles']} | {r['wtu_grid_cycles']} | "
            f"{r['quickselect_cycles']} ({r['quickselect_passes']}) | {r['topk_cycles']} | "
            f"{r['ratio_grid_over_quickselect']:.2f} | {r['ratio_grid_over_topk']:.2f} | "
            f"{r['ratio_relative_over_quickselect']:.2f} | {r['sort_cycles_formula']} |"
        )
    sizes = sorted({r["clusters"] for r in sel["rows"]})
    lines += [
        "",
        "Mean over the rows of each size (synthetic and trace rows together):",
        "",
        "| clusters | rows | WTU rel. | WTU grid | quick-select | top-k | grid / QS "
        "| grid / top-k |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        rs = [r for r in sel["rows"] if r["clusters"] == n]
        mean = {k: float(np.mean([r[k] for r in rs])) for k in rs[0] if k.endswith("cycles")}
        lines.append(
            f"| {n} | {len(rs)} | {mean['wtu_cycles']:.0f} | {mean['wtu_grid_cycles']:.0f} | "
            f"{mean['quickselect_cycles']:.0f} | {mean['topk_cycles']:.0f} | "
            f"{mean['wtu_grid_cycles'] / mean['quickselect_cycles']:.2f} | "
            f"{mean['wtu_grid_cycles'] / mean['topk_cycles']:.2f} |"
        )
    summary = report.get("lanes_summary", [])
    if summary:
        lines += [
            "",
            "## Lanes: grid WTU vs quick-select vs top-k at equal lanes",
            "",
            "L = `wtu_lanes`: the grid WTU and the quick-select ingest L clusters per beat "
            "(the quick-select also partitions L per cycle), the top-k has `topk_k` slots "
            "(L unless --topk-k) and ingests one cluster per cycle. Mean cycles per row; the "
            "ratios' worst row in brackets; "
            "goal: grid <= 0.4x quick-select and <= 0.2x top-k on every row.",
            "",
            "| L | top-k slots | rows | clusters | grid WTU | quick-select | top-k "
            "| grid / QS (worst) | grid / top-k (worst) | goal QS | goal top-k |",
            "|---:|---:|---|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for x in summary:
            n = x["clusters"]
            where = (
                str(n)
                if isinstance(n, int)
                else f"{min(n)}–{max(n)}"
                if min(n) != max(n)
                else str(n[0])
            )
            lines.append(
                f"| {x['wtu_lanes']} | {x['topk_k']} | {x['rows']} ({x['count']}) | {where} | "
                f"{x['wtu_grid_cycles']:.0f} | {x['quickselect_cycles']:.0f} | "
                f"{x['topk_cycles']:.0f} | {x['grid_over_quickselect']:.2f} "
                f"({x['grid_over_quickselect_max']:.2f}) | {x['grid_over_topk']:.2f} "
                f"({x['grid_over_topk_max']:.2f}) | "
                f"{'met' if x['goal_quickselect'] else 'not met'} | "
                f"{'met' if x['goal_topk'] else 'not met'} |"
            )
    lines += [
        "",
        "## Simulation speed",
        "",
        "| simulator | workload | cycles | seconds | cycles/s |",
        "|---|---|---:|---:|---:|",
    ]
    for name, s in report.get("sim_speed", {}).items():
        lines.append(
            f"| {name} | {s.get('workload', 'HCU tiny stream')} | {s['cycles']} | "
            f"{s['seconds']:.3f} | {s['cycles_per_second']:.0f} |"
        )
    for lsel in report.get("selectors_by_lanes", [sel]):
        for unit, run in lsel["runs"].items():
            if unit == "wtu" and lsel is not report.get("selectors", sel):
                continue  # the relative WTU runs once (single-lane whatever wtu_lanes)
            lanes = lsel.get("wtu_lanes", c["wtu_lanes"])
            lines.append(
                f"| verilator | {unit} rows, table {c['max_clusters']}, L = {lanes} | "
                f"{run['sim_cycles']} | {run['wall_seconds']:.2f} | "
                f"{run['sim_cycles'] / run['wall_seconds']:.0f} |"
            )
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny", help=f"preset: {', '.join(PRESETS)}")
    ap.add_argument(
        "--sizes",
        default="256,512,1024,2048,4096",
        help="clusters per selector row (the table is sized to the largest)",
    )
    ap.add_argument("--lanes", default=None, help="HCU lane counts (default: the preset's)")
    ap.add_argument("--batches", default="1,2,4,8", help="HCU batch sizes (hcu_batch)")
    ap.add_argument(
        "--hcu-probes", type=int, default=256, help="synthetic HCU tokens against a full table"
    )
    ap.add_argument(
        "--hcu-trace-tokens", type=int, default=8192, help="HCU tokens taken from the TRACE"
    )
    ap.add_argument("--rows", type=int, default=2, help="synthetic rows per size")
    ap.add_argument(
        "--topk-k",
        type=int,
        default=None,
        help="insertion slots of the top-k baseline (default: --wtu-lanes, equal comparators)",
    )
    ap.add_argument(
        "--wtu-lanes",
        default=None,
        help="selector lanes, comma-separated (grid WTU clusters per beat, quick-select "
        "lanes, top-k slots unless --topk-k; default: the preset's wtu_lanes); the first "
        "one's rows fill the detailed table and the plot",
    )
    ap.add_argument(
        "--parts", default="hcu,selectors,speed", help="what to run: hcu, selectors, speed"
    )
    ap.add_argument("--speed-tokens", type=int, default=1500, help="tokens of the speed test")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "1")))
    ap.add_argument("-o", "--output", type=Path, default=Path("build/bench"))
    args = ap.parse_args(argv)
    try:
        base = preset(args.config)
        sizes = sorted(int(s) for s in args.sizes.split(","))
        lanes = [int(s) for s in args.lanes.split(",")] if args.lanes else [base.hcu_lanes]
        batches = [int(s) for s in args.batches.split(",")]
        if not sizes or sizes[0] < 1:
            raise ValueError(f"sizes must be positive integers, not {args.sizes!r}")
        wtu_lanes = (
            [int(s) for s in args.wtu_lanes.split(",")] if args.wtu_lanes else [base.wtu_lanes]
        )
        cfg = base.replace(
            resv={"max_clusters": max(sizes[-1], base.max_clusters)},
            topk_k=args.topk_k or wtu_lanes[0],
            wtu_lanes=wtu_lanes[0],
        )
        lane_cfgs = [cfg.replace(wtu_lanes=w, topk_k=args.topk_k or w) for w in wtu_lanes]
        parts = args.parts.split(",")
        if not parts or set(parts) - {"hcu", "selectors", "speed"}:
            raise ValueError(f"parts must be among hcu, selectors, speed, not {args.parts!r}")
        for lane in lanes:
            cfg.replace(hcu_lanes=lane)  # validates the lane counts up front
        for b in batches:
            cfg.replace(hcu_batch=b)
    except ValueError as exc:
        ap.error(str(exc))
    args.output.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report = {
        "config": {
            "name": args.config,
            "max_clusters": cfg.max_clusters,
            "topk_k": cfg.topk_k,
            "wtu_lanes": cfg.wtu_lanes,
            "n_buckets": cfg.resv.n_buckets,
            "hash_bits": cfg.resv.hash_bits,
        },
        "trace": str(trace_path()) if trace_path() else None,
    }
    if "hcu" in parts:
        report["hcu"], report["hcu_skipped"] = bench_hcu(
            args.config,
            cfg,
            sizes,
            lanes,
            batches,
            args.hcu_probes,
            args.hcu_trace_tokens,
            args.seed,
        )
    if "selectors" in parts:
        rows = selector_rows(cfg, sizes, args.rows, args.seed)
        by_lanes, relative = [], None
        for lane_cfg in lane_cfgs:
            res = bench_selectors(args.config, lane_cfg, rows, relative)
            relative = res.pop("relative_result")
            by_lanes.append(res)
        report["selectors"] = by_lanes[0]
        report["selectors_by_lanes"] = by_lanes
        report["lanes_summary"] = lanes_summary(by_lanes)
    if "speed" in parts:
        report["sim_speed"] = bench_sim_speed(args.speed_tokens, args.seed)
    report["seconds"] = time.perf_counter() - t0
    (args.output / "hw_bench.json").write_text(json.dumps(report, indent=1) + "\n")
    plots = _plots(args.output, report)
    md = _markdown(report, plots)
    (args.output / "hw_bench.md").write_text(md)
    print(md)
    _say(
        f"wrote {args.output}/hw_bench.json, hw_bench.md, {', '.join(plots)} "
        f"in {report['seconds']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
