"""Algorithm benchmark: bytes to quality (``make bench``, golden part).

``python -m golden.bench [--quick] [-o build/bench] [--no-quality] [--streams S,...]
[--variants V,...]`` replays recorded
streams (``workloads``) through ReSV (``golden.cache``, several configurations) and the
baselines of ``golden.baselines``, and writes ``golden.json``, ``golden.md`` and PNG curves.

Streams: the real LLM (SmolLM2-135M over real clips at 2 fps and at the native rate,
``workloads.llm_stream``) and the projected-feature (synthetic-attention) workload
(``workloads.projected``). Per stream and phase (frame prefill, decode) every method's
error-vs-bytes curve (``golden.evaluate``: bytes = fetched old KV + metadata reads, as a
fraction of the old KV; sinks and the recent window free; only points whose cache holds at
least 1K tokens) and the scalars read off it: bytes for relative output error <= 0.05 and
<= 0.02, each divided by the adaptive oracle's. On the LLM stream also the model's own
answers rerun with each method in every layer (``workloads.llm_quality``): top-1 agreement
and KL divergence against full attention, and the bytes for agreement >= 99 %.

The LLM never saw such visual tokens and the projected features are not video-LLM keys:
every report says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .baselines import METHODS, Method, ReSV
from .config import SPEC_RULE, ReSVConfig, preset
from .evaluate import bytes_at, curves, evaluate, log

__all__ = ["RESV_VARIANTS", "fmt", "main", "methods_for", "run_stream", "summarise"]

TARGETS = (0.05, 0.02)
AGREEMENT = 0.99
#: Next-token KL divergence (nats) read off the answer reruns: a smoother quality target
#: than top-1 agreement over ~100 steps (where >= 99 % means no disagreement at all).
KL_TARGET = 0.01
#: The paper's retrieved-token figures (frame processing, generation).
PAPER_RETRIEVED = {"prefill": 0.327, "decode": 0.025}
#: ReSV configurations compared with the default (``ReSVConfig`` changes): the SPEC's
#: original rule and one change per option, each a config value (docs/algorithm.md).
RESV_VARIANTS: dict[str, dict[str, Any]] = {
    "resv-spec": dict(SPEC_RULE),
    "resv-no-variance": {"score_correction": "none"},
    "resv-no-floor": {"min_fraction": 0.0},
    "resv-clusters-scope": {"coverage_scope": "clusters"},
    "resv-bf16": {"rep_format": "bf16"},
    "resv-rope-aware": {"representative": "rope_aware"},
    "resv-page-fallback": {"cluster_policy": "page_fallback"},
    "resv-mean-prefill": {"prefill_mode": "mean"},
    "resv-post-rope": {"hash_space": "post_rope"},
    "resv-h64-t12": {"hash_bits": 64, "threshold": 12},
    "resv-grid": {"bucket_mode": "grid"},
    "resv-spec-grid": {**SPEC_RULE, "bucket_mode": "grid"},
}
#: Methods rerun through the LLM for answer quality, and their parameter values.
QUALITY_GRIDS: dict[str, tuple[float, ...]] = {
    "resv": (0.5, 0.8, 0.9, 0.95, 0.98, 0.99),
    "resv-spec": (0.5, 0.8, 0.9, 0.95, 0.98),
    "resv-no-variance": (0.8, 0.9, 0.95, 0.98, 0.99),
    "oracle": (0.8, 0.9, 0.95, 0.98, 0.99),
    "kmeans": (0.03, 0.05, 0.1, 0.2, 0.3),
    "quest": (0.1, 0.2, 0.3, 0.5, 0.7),
    "pages": (0.8, 0.9, 0.95, 0.98, 0.99),
    "topk": (0.02, 0.05, 0.1, 0.2),
}
#: The smoke run's (``--quick``) answer reruns: each method at the ends of its grid only.
QUICK_QUALITY_GRIDS = {name: (g[0], g[-1]) for name, g in QUALITY_GRIDS.items()}


def methods_for(cfg: ReSVConfig, variants: dict[str, dict[str, Any]]) -> list[Method]:
    """ReSV (``cfg``) and its ``variants``, then every baseline (with ``cfg``'s sinks,
    recent window, page size and WiCSum for the pages)."""
    ms: list[Method] = [ReSV(cfg, label=_resv_label("ReSV (default)", cfg))]
    for name, change in variants.items():
        c = cfg.replace(**change)
        ms.append(ReSV(c, name=name, label=_resv_label(name, c)))
    ms += [cls(cfg) for cls in METHODS.values()]
    if variants:
        # The pages ablation under the SPEC's own rule too (compare with resv-spec).
        label = "16-token pages + the SPEC rule's WiCSum (clusters scope, BF16)"
        ms.append(METHODS["pages"](cfg.replace(**SPEC_RULE), name="pages-spec", label=label))
    return ms


def _resv_label(name: str, c: ReSVConfig) -> str:
    return (
        f"{name}: coverage of {c.coverage_scope}, T={c.threshold}, {c.cluster_policy}, "
        f"{c.rep_format} {c.representative} reps, {c.score_correction} correction, "
        f"floor {c.min_fraction}, {c.prefill_mode} prefill, {c.hash_space} hashing"
    )


def summarise(cur: dict[str, Any], quality: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per phase and method: bytes at each target error, and as a multiple of the oracle's;
    with ``quality`` also the bytes for top-1 agreement >= 99 % (decode)."""
    out: dict[str, Any] = {}
    for phase, per in cur.items():
        oracle = per.get("oracle")
        out[phase] = {}
        for name, c in per.items():
            row: dict[str, Any] = {"label": c["label"]}
            for t in TARGETS:
                b = bytes_at(c, t)
                o = bytes_at(oracle, t) if oracle else None
                row[f"bytes@{t}"] = b
                row[f"x_oracle@{t}"] = b / o if b is not None and o else None
                row[f"meta@{t}"] = bytes_at(c, t, field="meta") if "meta" in c else None
            out[phase][name] = row
    if quality:
        for key, target in (("agree", AGREEMENT), ("kl", KL_TARGET)):
            o = _quality_bytes(quality.get("oracle"), key, target)
            for name, q in quality.items():
                if isinstance(q, dict) and name in out.get("decode", {}):
                    b = _quality_bytes(q, key, target)
                    out["decode"][name][f"bytes@{key}"] = b
                    out["decode"][name][f"x_oracle@{key}"] = b / o if b is not None and o else None
    return out


def _quality_bytes(q: dict[str, Any] | None, key: str, target: float) -> float | None:
    if not q or any(v is None for v in q["bytes"]):
        return None
    return bytes_at(q, target, key="agreement" if key == "agree" else "kl")


def cluster_stats(method: ReSV) -> dict[str, float]:
    """Tokens per cluster, table bytes as % of the clustered tokens' KV, forced joins."""
    cache = method.cache
    if cache is None:
        return {}
    cfg = cache.cfg
    tables = [t for row in cache.tables for t in row]
    clustered = sum(
        int((cache.assignment(l, h) >= 0).sum())
        for l in range(cache.layers)
        for h in range(cache.kv_heads)
    )
    clusters = sum(t.size for t in tables)
    return {
        "tokens_per_cluster": clustered / max(clusters, 1),
        "table_pct_of_kv": 100.0
        * clusters
        * cfg.table_bytes_per_cluster
        / max(clustered * 4 * cfg.head_dim, 1),
        "forced_joins": int(sum(t.forced for t in tables)),
        "clusters_per_context": clusters / len(tables),
    }


def run_stream(
    name: str,
    trace,
    base: ReSVConfig,
    *,
    variants: dict[str, dict[str, Any]],
    min_context: int,
    prefill_frames: int,
    decode_limit: int | None,
    quality: dict[str, tuple[float, ...]] | None,
) -> dict[str, Any]:
    """Every method on one stream: curves, scalars, cluster statistics, LLM quality (the
    answer reruns of the methods ``quality`` names, at its values; ``None``: none)."""
    cfg = base.replace(head_dim=trace.head_dim, rope_base=trace.rope_base)
    methods = methods_for(cfg, variants)
    t0 = time.perf_counter()
    log(f"[bench] {name}: {trace.summary()}")
    rec = evaluate(
        trace,
        cfg,
        methods,
        min_context=min_context,
        prefill_frames=prefill_frames,
        decode_limit=decode_limit,
        progress=lambda m: log(f"[bench] {name}: {m}"),
    )
    cur = curves(rec, methods)
    result: dict[str, Any] = {
        "trace": trace.summary(),
        "note": trace.meta.get("note", ""),
        "points": rec["points"],
        "curves": cur,
        "clusters": cluster_stats(methods[0]),
        "trace_seconds": trace.meta.get("seconds"),
        "retrieved_at_default": _retrieved_at(cur, cfg.coverage),
        "seconds": 0.0,
    }
    q = None
    if quality and trace.meta.get("workload") == "llm":
        from workloads.llama import LlamaModel
        from workloads.llm_quality import evaluate_answers

        chosen = [m for m in methods_for(cfg, variants) if m.name in quality]
        q = evaluate_answers(
            LlamaModel.load(),
            trace,
            chosen,
            quality,
            sink_tokens=cfg.sink_tokens,
            recent_tokens=cfg.recent_tokens,
            min_context=min_context,
            progress=lambda m: log(f"[bench] {name} quality: {m}"),
        )
        result["quality"] = q
    result["summary"] = summarise(cur, q)
    result["seconds"] = time.perf_counter() - t0
    return result


def _retrieved_at(cur: dict[str, Any], coverage: float) -> dict[str, Any]:
    out = {}
    for phase, per in cur.items():
        c = per.get("resv")
        if c and coverage in c["grid"]:
            i = c["grid"].index(coverage)
            out[phase] = {
                "retrieved": c["retrieved"][i],
                "bytes": c["bytes"][i],
                "error": c["error"][i],
                "paper": PAPER_RETRIEVED[phase],
            }
    return out


# --------------------------------------------------------------------------- report


def fmt(x: float | None, pct: bool = True) -> str:
    """A fraction as a percentage (or with ``pct=False`` a multiple), None as not reached."""
    if x is None:
        return "not reached"
    return f"{100 * x:.1f} %" if pct else f"{x:.2f}x"


def summary_table(res: dict[str, Any]) -> list[str]:
    quality = "quality" in res
    head = "| phase | method (budget rule) | bytes @ err <= 0.05 | of which metadata | x oracle "
    head += "| bytes @ err <= 0.02 | x oracle |"
    head += " bytes @ top-1 >= 99 % | x oracle | bytes @ KL <= 0.01 | x oracle |" if quality else ""
    lines = [head, "|---|---|---:|---:|---:|---:|---:|" + ("---:|" * 4 if quality else "")]
    for phase, per in res["summary"].items():
        for name, row in per.items():
            meta = row.get("meta@0.05")
            line = (
                f"| {phase} | `{name}`: {row['label']} | {fmt(row['bytes@0.05'])} "
                f"| {'' if meta is None else fmt(meta)} | {fmt(row['x_oracle@0.05'], False)} "
                f"| {fmt(row['bytes@0.02'])} | {fmt(row['x_oracle@0.02'], False)} |"
            )
            if quality:
                for key in ("agree", "kl"):
                    if f"bytes@{key}" in row:
                        line += (
                            f" {fmt(row[f'bytes@{key}'])} | {fmt(row[f'x_oracle@{key}'], False)} |"
                        )
                    else:
                        line += " | |"
            lines.append(line)
    return lines


def quality_table(q: dict[str, Any]) -> list[str]:
    lines = [
        f"LLM answers rerun with retrieval in every layer: {q['answers']} answers, "
        f"{q['steps']} decode steps.",
        "",
        "| method | parameter | bytes | top-1 agreement | KL (nats) |",
        "|---|---|---:|---:|---:|",
    ]
    for name, m in q.items():
        if not isinstance(m, dict):
            continue
        for p, b, a, k in zip(m["grid"], m["bytes"], m["agreement"], m["kl"], strict=True):
            lines.append(f"| `{name}` | {m['param']} {p} | {fmt(b)} | {100 * a:.1f} % | {k:.4f} |")
    return lines


def goals(report: dict[str, Any]) -> list[str]:
    """The issue's goal figures on the LLM stream, each with its measured value."""
    llm = report["streams"].get("llm-2fps")
    if not llm:
        return []
    dec, pre = llm["summary"]["decode"], llm["summary"]["prefill"]
    r = dec["resv"]
    lines = []

    def check(ok: bool | None, text: str) -> None:
        mark = "met" if ok else ("missed" if ok is not None else "not measured")
        lines.append(f"- **{mark}**: {text}")

    x = r["x_oracle@0.05"]
    check(x is not None and x <= 1.3, f"decode bytes@0.05 <= 1.3x the oracle's: {fmt(x, False)}")
    for other in ("pages", "kmeans", "topk"):
        a, b = r["bytes@0.05"], dec[other]["bytes@0.05"]
        ok = None if a is None else (b is None or a < b)
        check(ok, f"decode bytes@0.05 below `{other}`: {fmt(a)} vs {fmt(b)}")
    q = llm.get("quality", {}).get("resv")
    if q and r["bytes@0.05"] is not None:
        at = float(np.interp(r["bytes@0.05"], q["bytes"], q["agreement"]))
        check(
            at >= AGREEMENT,
            f"top-1 agreement >= 99 % at that budget: {100 * at:.1f} % at {fmt(r['bytes@0.05'])} "
            f"({llm['quality']['steps']} answer steps; ReSV reaches 99 % at "
            f"{fmt(r.get('bytes@agree'))})",
        )
        a, b = r["bytes@kl"], dec["kmeans"].get("bytes@kl")
        ok = None if a is None else (b is None or a < b)
        check(ok, f"answers' KL <= 0.01 with fewer bytes than `kmeans`: {fmt(a)} vs {fmt(b)}")
    p = pre["resv"]["bytes@0.05"]
    check(p is not None and p <= 0.5, f"prefill bytes@0.05 <= 50 % of the old KV: {fmt(p)}")
    return lines


def _plots(out: Path, report: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for name, res in report["streams"].items():
        fig, axes = plt.subplots(1, 2, figsize=(13, 5))
        for ax, phase in zip(axes, ("prefill", "decode"), strict=True):
            for i, (m, c) in enumerate(res["curves"].get(phase, {}).items()):
                style = "-o" if m in ("resv", "oracle") else "--" if m.startswith("resv-") else "-"
                ax.plot(
                    [100 * b for b in c["bytes"]],
                    c["error"],
                    style,
                    color=f"C{i % 10}",
                    markersize=3,
                    label=m,
                )
            for t in TARGETS:
                ax.axhline(t, color="grey", lw=0.5, ls=":")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("bytes moved per query (% of the old KV, metadata included)")
            ax.set_ylabel("attention output relative error (mean)")
            ax.set_title(f"{name}: {phase}")
        axes[1].legend(fontsize=6, ncol=2)
        fig.suptitle(res["note"][:160], fontsize=7)
        fig.tight_layout()
        path = f"golden_{name}.png"
        fig.savefig(out / path, dpi=110)
        plt.close(fig)
        files.append(path)
        if "quality" in res:
            fig, ax = plt.subplots(figsize=(6.5, 4.5))
            for i, (m, q) in enumerate(res["quality"].items()):
                if isinstance(q, dict):
                    ax.plot(
                        [100 * b for b in q["bytes"]],
                        [100 * a for a in q["agreement"]],
                        "-o",
                        color=f"C{i % 10}",
                        markersize=3,
                        label=m,
                    )
            ax.axhline(100 * AGREEMENT, color="grey", lw=0.5, ls=":")
            ax.set_xscale("log")
            ax.set_xlabel("bytes moved per decode step (% of the old KV)")
            ax.set_ylabel("top-1 agreement with full attention (%)")
            ax.set_title(f"{name}: answers rerun with retrieval in every layer")
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = f"golden_{name}_quality.png"
            fig.savefig(out / path, dpi=110)
            plt.close(fig)
            files.append(path)
    return files


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "golden.json").write_text(json.dumps(report, indent=1))
    files = _plots(out, report)
    md = [
        "# ReSV algorithm benchmark: bytes to quality",
        "",
        "Bytes = old KV fetched (K and V, BF16) + every metadata read (cluster table, page "
        "summaries, frame means, keys read to score), per query, as a fraction of the old KV "
        "(tokens that are neither sinks nor in the recent window, free for every method). "
        "Error = relative L2 error of the attention output against full attention, mean over "
        "layers, heads and query rows. Only points whose cache holds at least "
        f"{report['min_context']} tokens.",
        "",
        f"Default ReSV configuration: `{json.dumps(report['config'])}`",
        "",
    ]
    g = goals(report)
    if g:
        md += ["## Goals (LLM stream at 2 fps, decode unless said)", "", *g, ""]
    for name, res in report["streams"].items():
        traced = res.get("trace_seconds")
        md += [
            f"## `{name}`: {res['trace']}",
            "",
            f"> {res['note']}",
            "",
            *([f"Stream traced in {traced:.0f} s (then cached)."] if traced else []),
            "",
            f"Points: {res['points']['prefill']} prefill frames, {res['points']['decode']} "
            f"decode queries, every layer and KV head ({res['seconds']:.0f} s).",
            "",
            *summary_table(res),
            "",
        ]
        c = res["clusters"]
        if c:
            md.append(
                f"ReSV clusters: {c['tokens_per_cluster']:.1f} tokens per cluster, table "
                f"{c['table_pct_of_kv']:.2f} % of the clustered KV, "
                f"{c['clusters_per_context']:.0f} clusters per context, {c['forced_joins']} "
                "forced joins."
            )
        for phase, r in res["retrieved_at_default"].items():
            md.append(
                f"- {phase} at the default coverage: {100 * r['retrieved']:.1f} % of the old "
                f"tokens retrieved ({100 * r['bytes']:.1f} % of the old KV moved, error "
                f"{r['error']:.3f}); the paper reports {100 * r['paper']:.1f} %."
            )
        if "quality" in res:
            md += ["", *quality_table(res["quality"])]
        md.append("")
    md += [f"![{f}]({f})" for f in files]
    (out / "golden.md").write_text("\n".join(md) + "\n")


# --------------------------------------------------------------------------- main


def _streams(quick: bool) -> dict[str, Any]:
    from workloads.llm_stream import PRESETS as LLM
    from workloads.projected import PRESETS as PROJECTED

    if quick:
        return {"llm-tiny": LLM["tiny"], "synthetic-tiny": PROJECTED["tiny"]}
    return {
        "llm-2fps": LLM["bench"],
        "llm-native": LLM["bench"].replace(fps=None, clips=("bikes", "bigbuckbunny")),
        "synthetic-2fps": PROJECTED["bench"].replace(head_dim=128, layers=2, kv_heads=2),
        "synthetic-native": PROJECTED["bench-native"].replace(
            tokens_per_frame=49, max_frames=100, layers=2, kv_heads=2
        ),
    }


def _quality_grids(args: argparse.Namespace, stream: str) -> dict[str, tuple[float, ...]] | None:
    """The LLM answer reruns of ``stream``: none for the projected streams or with
    ``--no-quality``; the grid ends with ``--quick``; else ``QUALITY_GRIDS``."""
    if args.no_quality or stream not in ("llm-2fps", "llm-tiny"):
        return None
    return QUICK_QUALITY_GRIDS if args.quick else QUALITY_GRIDS


def main(argv: list[str] | None = None) -> int:
    from workloads.trace import load_or_make

    ap = argparse.ArgumentParser(prog="python -m golden.bench", description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default="build/bench", help="output directory")
    ap.add_argument("--config", default="paper", help="ReSV preset (tiny, paper, edge)")
    ap.add_argument("--quick", action="store_true", help="tiny streams (a smoke run)")
    ap.add_argument("--no-quality", action="store_true", help="skip the LLM answer reruns")
    ap.add_argument("--streams", help="comma list of the streams to run (default: all)")
    ap.add_argument("--variants", help="comma list of RESV_VARIANTS to run (default: all)")
    args = ap.parse_args(argv)
    try:
        base = preset(args.config)
    except ValueError as e:
        ap.error(f"--config: {e}")
    t0 = time.perf_counter()
    streams = _streams(args.quick)
    variants = {"resv-spec": RESV_VARIANTS["resv-spec"]} if args.quick else RESV_VARIANTS
    for flag, table in (("streams", streams), ("variants", RESV_VARIANTS)):
        wanted = getattr(args, flag)
        if wanted:
            names = wanted.split(",")
            bad = [n for n in names if n not in table]
            if bad:
                ap.error(f"--{flag} must be among {', '.join(table)}, not {', '.join(bad)}")
            if flag == "streams":
                streams = {n: streams[n] for n in names}
            else:
                variants = {n: RESV_VARIANTS[n] for n in names}
    if args.quick:
        # Tiny streams: a short recent window so that retrieval acts.
        base = base.replace(sink_tokens=2, recent_tokens=16)
        opts = {"min_context": 32, "prefill_frames": 2, "decode_limit": 8}
    else:
        opts = {"min_context": 1024, "prefill_frames": 6, "decode_limit": None}
    report: dict[str, Any] = {
        "config": asdict(base),
        "min_context": opts["min_context"],
        "streams": {},
    }
    out = Path(args.out)
    for name, spec in streams.items():
        log(f"[bench] trace {name}")
        trace = load_or_make(spec)
        report["streams"][name] = run_stream(
            name,
            trace,
            base,
            # The smoke run keeps one variant (the SPEC's rule): the code path, not the sweep.
            variants=variants,
            quality=_quality_grids(args, name),
            **opts,
        )
        write_report(out, report)  # after every stream: a long run keeps what it measured
    for name, res in report["streams"].items():
        print(f"{name}: bytes moved per query (% of the old KV) for attention error <= 0.05")
        for phase, per in res["summary"].items():
            cells = ", ".join(
                f"{m} {fmt(per[m]['bytes@0.05'])} ({fmt(per[m]['x_oracle@0.05'], False)})"
                for m in ("oracle", "resv", "resv-spec", "pages", "kmeans", "quest", "topk")
                if m in per
            )
            print(f"  {phase:7s} {cells}")
    for line in goals(report):
        print(line.replace("**", ""))
    first = next(iter(report["streams"].values()))["summary"]["decode"]["resv"]
    print(
        f"golden bench: {len(streams)} streams in {time.perf_counter() - t0:.0f} s; ReSV decode "
        f"bytes @ error 0.05 = {fmt(first['bytes@0.05'])} of the old KV "
        f"({fmt(first['x_oracle@0.05'], False)} the adaptive oracle) -> {out}/golden.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
