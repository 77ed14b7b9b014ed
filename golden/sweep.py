"""``make sweep-algo``: bytes-to-quality sweeps of ReSV and the baselines on Dask, resumable.

    python -m golden.sweep [--streams llm,synthetic] [--axes fps,tokens_per_frame,...]
        [--quick] [--scheduler ADDR] [--workers N] [-o build/sweep-algo]

One axis at a time around a base stream: the LLM stream (SmolLM2 over real clips,
``workloads.llm_stream`` preset ``bench``: 4K tokens, 2 fps, 49 tokens per frame) and the
projected-feature workload (``workloads.projected``, synthetic attention: vtest at 2 fps, 80
frames of 49 tokens, one layer, 2 KV heads). Axes (``AXES``):

==================  ==========================  =============================================
axis                values                      applies to
==================  ==========================  =============================================
``logit_std``       1, 2, 3, 4, 5               synthetic: the calibrated logit spread
``rope_base``       none, 5e5, 1e4              synthetic: RoPE of the stream (and of ReSV)
``tokens_per_frame``  10, 49, 196               both
``fps``             2, 5, native                both (native: the clips' own rate; the
                                                synthetic stream plays vtest, 10 fps)
``stream_tokens``   1K, 2K, 4K, 8K              both (the LLM: ``max_tokens``; synthetic:
                                                frames of vtest at 5 fps)
``group``           1, 2, 3 (LLM) / 1, 2, 4     both: query heads per KV head (the LLM keeps
                                                its 3 and evaluates the first 1 or 2)
``threshold``       3, 5, 7, 9                  both: ReSV's T, with its table bytes
``bucket_mode``     relative, grid              both: the WTU's buckets (ReSV and the SPEC
                                                rule; golden.resv.bucket_of)
==================  ==========================  =============================================

Every point evaluates ReSV (the default configuration, and the SPEC's rule), the adaptive
oracle, 16-token pages with WiCSum, the k-means clusters and Quest pages (``golden.evaluate``
on every 3rd layer of the LLM, at most 32 decode queries and 3 prefill frames) and records
bytes at error 0.05 and 0.02 per phase and method, ReSV's tokens per cluster and table size.

Points run on Dask distributed: a ``LocalCluster`` by default, or the scheduler at
``--scheduler ADDR`` (every worker needs this repository and venv at the same path). A
finished point is written to ``<out>/cache/<key>.json`` (key = SHA-256 of the point and
``SWEEP_VERSION``); an interrupted sweep resumes with the points not yet cached. Results:
``<out>/sweep.json``, ``sweep.md`` and ``sweep.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .baselines import METHODS as BASELINES
from .baselines import ReSV
from .bench import cluster_stats, fmt, summarise
from .config import SPEC_RULE, preset
from .evaluate import curves, evaluate

__all__ = ["AXES", "SWEEP_VERSION", "dask_client", "evaluate_point", "main", "point_key", "points"]

#: Version of the per-point computation; bump it to invalidate cached points.
SWEEP_VERSION = 1
NATIVE = "native"
AXES: dict[str, dict[str, list[Any]]] = {
    "logit_std": {"synthetic": [1.0, 2.0, 3.0, 4.0, 5.0]},
    "rope_base": {"synthetic": [None, 500000.0, 10000.0]},
    "tokens_per_frame": {"llm": [10, 49, 196], "synthetic": [10, 49, 196]},
    "fps": {"llm": [2.0, 5.0, NATIVE], "synthetic": [2.0, 5.0, NATIVE]},
    "stream_tokens": {"llm": [1024, 2048, 4096, 8192], "synthetic": [1024, 2048, 4096, 8192]},
    "group": {"llm": [1, 2, 3], "synthetic": [1, 2, 4]},
    "threshold": {"llm": [3, 5, 7, 9], "synthetic": [3, 5, 7, 9]},
    "bucket_mode": {"llm": ["relative", "grid"], "synthetic": ["relative", "grid"]},
}
METHODS = ("resv", "resv-spec", "oracle", "pages", "kmeans", "quest")


def _stream(kind: str, axis: str, value: Any, quick: bool):
    """The workload configuration of one point."""
    from workloads.llm_stream import PRESETS as LLM
    from workloads.projected import PRESETS as PROJECTED

    fps = None if value == NATIVE else value
    if kind == "llm":
        base = LLM["tiny"] if quick else LLM["bench"]
        change = {
            "tokens_per_frame": {"tokens_per_frame": value},
            "fps": {"fps": fps},
            "stream_tokens": {"max_tokens": value},
        }.get(axis, {})
        return base.replace(**change)
    # vtest (79 s) gives 80 frames at every rate from 2 fps to its native 10 fps.
    base = PROJECTED["tiny"]
    if not quick:
        base = PROJECTED["bench"].replace(
            clip="vtest", tokens_per_frame=49, layers=1, kv_heads=2, head_dim=128, max_frames=80
        )
    if axis == "stream_tokens":
        frames = max(1, value // base.tokens_per_frame)
        return base.replace(max_frames=frames, fps=None if quick else 5.0)
    change = {
        "logit_std": {"logit_std": value},
        "rope_base": {"rope_base": value},
        "tokens_per_frame": {"tokens_per_frame": value},
        "fps": {"fps": fps},
        "group": {"q_per_kv": value},
    }.get(axis, {})
    return base.replace(**change)


def points(streams: list[str], axes: list[str]) -> list[dict[str, Any]]:
    """Every (stream, axis, value) of the one-axis-at-a-time sweep."""
    return [
        {"stream": kind, "axis": axis, "value": v}
        for axis in axes
        for kind in streams
        for v in AXES[axis].get(kind, [])
    ]


def point_key(point: dict[str, Any], quick: bool) -> str:
    """Cache key: the point, its stream's whole configuration and ``SWEEP_VERSION``."""
    stream = _stream(point["stream"], point["axis"], point["value"], quick)
    blob = json.dumps(
        {"v": SWEEP_VERSION, "quick": quick, "stream": asdict(stream), **point}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def evaluate_point(point: dict[str, Any], quick: bool, root: str) -> dict[str, Any]:
    """Make (or load) the point's trace and evaluate the methods on it."""
    import os

    os.chdir(root)  # Dask workers: the trace cache and the repository live here
    from workloads.trace import load_or_make

    t0 = time.perf_counter()
    trace = load_or_make(_stream(point["stream"], point["axis"], point["value"], quick))
    cfg = preset("paper").replace(head_dim=trace.head_dim, rope_base=trace.rope_base)
    if quick:
        cfg = cfg.replace(sink_tokens=2, recent_tokens=16)
    if point["axis"] in ("threshold", "bucket_mode"):
        cfg = cfg.replace(**{point["axis"]: point["value"]})
    resv = ReSV(cfg)
    methods = [resv, ReSV(cfg.replace(**SPEC_RULE), name="resv-spec")]
    methods += [BASELINES[m](cfg) for m in METHODS[2:]]
    group = point["value"] if point["axis"] == "group" and point["stream"] == "llm" else None
    rec = evaluate(
        trace,
        cfg,
        methods,
        min_context=32 if quick else 1024,
        prefill_frames=3,
        decode_limit=32,
        layers=None if quick or trace.layers < 6 else range(0, trace.layers, 3),
        group=group,
    )
    return {
        "point": point,
        "tokens": trace.n_tokens,
        "points": rec["points"],
        "summary": summarise(curves(rec, methods)),
        "clusters": cluster_stats(resv),
        "seconds": time.perf_counter() - t0,
    }


def dask_client(scheduler: str | None, workers: int):
    """(client, cluster): the scheduler at ``scheduler``, or a ``LocalCluster`` of
    ``workers`` single-threaded processes (``cluster`` is then closed by the caller)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: parallel clusters (tests) never collide
        silence_logs=40,
    )
    return Client(cluster), cluster


def run(
    streams: list[str],
    axes: list[str],
    out: Path,
    *,
    quick: bool,
    scheduler: str | None,
    workers: int,
) -> dict[str, Any]:
    from distributed import as_completed

    pts = points(streams, axes)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for p in pts:
        f = cache / f"{point_key(p, quick)}.json"
        if f.is_file():
            results[point_key(p, quick)] = json.loads(f.read_text())
        else:
            todo.append(p)
    print(f"sweep-algo: {len(pts)} points, {len(results)} cached, {len(todo)} to run", flush=True)
    if todo:
        client, cluster = dask_client(scheduler, workers)
        try:
            root = str(Path.cwd())
            futures = {client.submit(evaluate_point, p, quick, root, pure=False): p for p in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                res = fut.result()
                key = point_key(res["point"], quick)
                (cache / f"{key}.json").write_text(json.dumps(res, indent=1) + "\n")
                results[key] = res
                d = res["summary"].get("decode", {}).get("resv", {}).get("bytes@0.05")
                print(
                    f"sweep-algo: {i}/{len(todo)} {res['point']}: {res['tokens']} tokens, ReSV "
                    f"decode bytes@0.05 {fmt(d)} ({res['seconds']:.0f} s)",
                    flush=True,
                )
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    ordered = [results[point_key(p, quick)] for p in pts]
    summary = {"streams": streams, "axes": axes, "quick": quick, "points": ordered}
    (out / "sweep.json").write_text(json.dumps(summary, indent=1) + "\n")
    _write_md(out, summary)
    _plot(out, summary)
    return summary


def _write_md(out: Path, s: dict[str, Any]) -> None:
    md = [
        "# ReSV sweeps: bytes to reach relative error <= 0.05",
        "",
        "Bytes as % of the old KV, metadata included (see README). The LLM never saw such "
        "visual tokens; the synthetic keys are not video-LLM keys.",
        "",
        "| stream | axis | value | tokens | phase | "
        + " | ".join(f"`{m}`" for m in METHODS)
        + " | tokens/cluster | table % of KV |",
        "|---|---|---|---:|---|" + "---:|" * (len(METHODS) + 2),
    ]
    for r in s["points"]:
        p, c = r["point"], r["clusters"]
        for phase in ("prefill", "decode"):
            row = r["summary"].get(phase, {})
            cells = " | ".join(fmt(row.get(m, {}).get("bytes@0.05")) for m in METHODS)
            md.append(
                f"| {p['stream']} | {p['axis']} | {p['value']} | {r['tokens']} | {phase} | "
                f"{cells} | {c.get('tokens_per_cluster', 0):.1f} | "
                f"{c.get('table_pct_of_kv', 0):.2f} |"
            )
    md.append("\n![sweep](sweep.png)\n")
    (out / "sweep.md").write_text("\n".join(md))


def _plot(out: Path, s: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["point"]["stream"], r["point"]["axis"]) for r in s["points"]})
    if not keys:
        return
    cols = 4
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, (stream, axis) in zip(axes.flat, keys, strict=False):
        pts = [
            r for r in s["points"] if (r["point"]["stream"], r["point"]["axis"]) == (stream, axis)
        ]
        labels = [str(r["point"]["value"]) for r in pts]
        for i, m in enumerate(METHODS):
            y = [r["summary"]["decode"].get(m, {}).get("bytes@0.05") for r in pts]
            ax.plot(
                labels,
                [100 * v if v is not None else float("nan") for v in y],
                "-o",
                color=f"C{i}",
                markersize=3,
                label=m,
            )
        ax.set_title(f"{stream}: {axis} (decode)", fontsize=8)
        ax.set_ylabel("bytes @ err 0.05 (% old KV)", fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m golden.sweep", description=__doc__.split("\n")[0])
    ap.add_argument("--streams", default="llm,synthetic", help="llm, synthetic or both")
    ap.add_argument("--axes", default=",".join(AXES), help=f"comma list of {', '.join(AXES)}")
    ap.add_argument("--quick", action="store_true", help="tiny streams (a smoke run)")
    ap.add_argument("--scheduler", help="Dask scheduler address (default: a LocalCluster)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    ap.add_argument("-o", "--out", type=Path, default=Path("build/sweep-algo"))
    args = ap.parse_args(argv)
    streams = [x for x in args.streams.split(",") if x]
    axes = [x for x in args.axes.split(",") if x]
    for s in streams:
        if s not in ("llm", "synthetic"):
            ap.error(f"--streams must list 'llm' and/or 'synthetic', not {s!r}")
    for a in axes:
        if a not in AXES:
            ap.error(f"--axes must list values of {', '.join(AXES)}, not {a!r}")
    if args.workers < 1:
        ap.error(f"--workers must be at least 1, not {args.workers}")
    t0 = time.perf_counter()
    s = run(
        streams, axes, args.out, quick=args.quick, scheduler=args.scheduler, workers=args.workers
    )
    print(
        f"sweep-algo: {len(s['points'])} points in {time.perf_counter() - t0:.0f} s -> "
        f"{args.out}/sweep.md"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
