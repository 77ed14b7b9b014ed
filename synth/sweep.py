"""``make sweep``: design-space sweep of the DRE units on Dask, resumable from a cache.

    python -m synth.sweep --config tiny|paper|edge [--mode ofat|grid]
        [--lanes 1,2,4] [--hash-bits 8,16] [--buckets 8,16] [--max-clusters 16,64]
        [--units hcu,wtu] [--scheduler ADDR] [--workers N] [--clock-ns N]

Axes: HCU lanes (``hcu_lanes``), hash bits (``resv.hash_bits``), WTU buckets
(``resv.n_buckets``) and table size (``resv.max_clusters``), around the preset. ``ofat``
(default) varies one axis at a time from the preset's values; ``grid`` takes the full
product. Each point synthesises the selected units (Yosys + OpenSTA, no power) and records
per unit: area (µm²), fmax (MHz), the analytical model's area (:mod:`synth.area_model`)
and cycles from the units' documented cycle formulas (HCU ``batch_cycles`` per token at a
full table, WTU ``cycles(C, b*, k)`` and top-k ``cycles(C, k)`` on a seeded synthetic row of C =
``max_clusters`` clusters selected by ``golden.resv.wicsum_select_bucketed``).

Points run in parallel on Dask distributed: a ``LocalCluster`` by default, or the scheduler
at ``--scheduler ADDR`` (every worker needs this repository, the venv and the liberty at the
same path). Each finished point is written to ``build/sweep/cache/<key>.json``, ``key`` =
SHA-256 of the point, units, clock, SRAM cut-off, liberty contents and flow version; a rerun
(or an interrupted sweep restarted) only computes the points without a cache file. Results:
``build/sweep/<config>/sweep.json``, ``sweep.md`` and Pareto-front plots (area vs cycles
and area vs latency = cycles / fmax) per unit.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golden.sweep import dask_client
from synth.sram import DEFAULT_SRAM_MIN_BITS
from synth.tools import (
    ROOT,
    FlowError,
    MissingToolError,
    check_positive_int,
    find_liberty,
    sta_command,
    yosys_command,
)

__all__ = [
    "AXES",
    "DEFAULT_GRIDS",
    "SweepOptions",
    "evaluate_point",
    "main",
    "pareto_front",
    "point_config",
    "point_key",
    "points",
    "run_sweep",
    "unit_cycles",
]

#: Version of the per-point computation; bump it to invalidate cached points.
SWEEP_VERSION = 1

#: Sweep axis -> where it lives in ``HWConfig`` ("hw" field or "resv" field).
AXES: dict[str, tuple[str, str]] = {
    "hcu_lanes": ("hw", "hcu_lanes"),
    "hash_bits": ("resv", "hash_bits"),
    "n_buckets": ("resv", "n_buckets"),
    "max_clusters": ("resv", "max_clusters"),
}

#: Default values per axis for each preset.
DEFAULT_GRIDS: dict[str, dict[str, list[int]]] = {
    "tiny": {
        "hcu_lanes": [1, 2, 4, 8],
        "hash_bits": [8, 16, 32],
        "n_buckets": [8, 16, 32],
        "max_clusters": [16, 32, 64],
    },
    "edge": {
        "hcu_lanes": [4, 8, 16, 32],
        "hash_bits": [16, 32, 64],
        "n_buckets": [32, 64, 128],
        "max_clusters": [256, 512, 1024],
    },
    "paper": {
        "hcu_lanes": [4, 8, 16, 32, 64],
        "hash_bits": [16, 32, 64],
        "n_buckets": [32, 64, 128],
        "max_clusters": [1024, 2048, 4096],
    },
}


@dataclass
class SweepOptions:
    """Options of one sweep (see ``python -m synth.sweep --help``)."""

    preset: str = "tiny"
    grid: dict[str, list[int]] = field(default_factory=dict)
    mode: str = "ofat"
    units: list[str] = field(default_factory=lambda: ["hcu", "wtu"])
    clock_ns: float = 10.0
    sram_min_bits: int = DEFAULT_SRAM_MIN_BITS
    scheduler: str | None = None
    workers: int = 2
    cache_dir: Path | None = None
    out_dir: Path | None = None
    work_dir: Path | None = None
    liberty: Path | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("ofat", "grid"):
            raise ValueError(f"mode must be 'ofat' or 'grid', not {self.mode!r}")
        for axis in self.grid:
            if axis not in AXES:
                raise ValueError(f"axis must be one of {', '.join(map(repr, AXES))}, not {axis!r}")
        check_positive_int("workers", self.workers)
        if not self.clock_ns > 0:
            raise ValueError(f"clock_ns must be positive, not {self.clock_ns!r}")

    @property
    def cache(self) -> Path:
        return self.cache_dir or ROOT / "build" / "sweep" / "cache"

    @property
    def directory(self) -> Path:
        return self.out_dir or ROOT / "build" / "sweep" / self.preset

    @property
    def work(self) -> Path:
        return self.work_dir or ROOT / "build" / "sweep" / "work"


def _say(opts: SweepOptions, msg: str) -> None:
    if not opts.quiet:
        print(f"[sweep] {msg}", flush=True)


def point_config(preset: str, point: dict[str, int]) -> Any:
    """The ``HWConfig`` of ``point`` (axis -> value) on top of ``preset``; validated."""
    from hw.config import preset as hw_preset

    cfg = hw_preset(preset)
    hw_changes: dict[str, Any] = {}
    resv_changes: dict[str, Any] = {}
    for axis, value in point.items():
        where, name = AXES[axis]
        (hw_changes if where == "hw" else resv_changes)[name] = value
    if "hash_bits" in resv_changes:  # keep the threshold legal for narrow signatures
        resv_changes.setdefault("threshold", min(cfg.resv.threshold, resv_changes["hash_bits"]))
    if resv_changes:
        hw_changes["resv"] = resv_changes
    return cfg.replace(**hw_changes)


def points(preset: str, grid: dict[str, list[int]], mode: str) -> list[dict[str, int]]:
    """The sweep points: the preset's own values changed one axis at a time, or the grid."""
    from hw.config import preset as hw_preset

    cfg = hw_preset(preset)
    base = {
        "hcu_lanes": cfg.hcu_lanes,
        "hash_bits": cfg.resv.hash_bits,
        "n_buckets": cfg.resv.n_buckets,
        "max_clusters": cfg.resv.max_clusters,
    }
    out: list[dict[str, int]] = []
    if mode == "grid":
        axes = list(grid)
        for values in itertools.product(*(grid[a] for a in axes)):
            out.append({**base, **dict(zip(axes, values, strict=True))})
    else:
        out.append(dict(base))
        for axis, values in grid.items():
            for v in values:
                p = {**base, axis: v}
                if p not in out:
                    out.append(p)
    valid = []
    for p in out:
        try:
            point_config(preset, p)
        except (ValueError, TypeError):
            continue  # e.g. more lanes than clusters
        valid.append(p)
    return valid


def _liberty_digest(liberty: Path) -> str:
    return hashlib.sha256(Path(liberty).read_bytes()).hexdigest()[:16]


def point_key(point: dict[str, int], opts: SweepOptions, liberty_digest: str) -> str:
    """Cache key of ``point`` under ``opts``: SHA-256 of everything its result depends on."""
    blob = json.dumps(
        {
            "version": SWEEP_VERSION,
            "preset": opts.preset,
            "point": dict(sorted(point.items())),
            "units": sorted(opts.units),
            "clock_ns": opts.clock_ns,
            "sram_min_bits": opts.sram_min_bits,
            "liberty": liberty_digest,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def unit_cycles(unit: str, cfg: Any, seed: int = 0) -> dict[str, Any]:
    """Cycles of ``unit`` from its documented cycle formula on a representative input.

    The formulas are the units' own module functions (``hcu_batch_cycles``, ``wtu_cycles``,
    ``topk_cycles``), so no unit is instantiated (and none is left unelaborated).
    """
    import numpy as np

    from golden.resv import quantize_scores, wicsum_select_bucketed
    from hw.dre import dre_wtu_config, hcu, topk, wtu

    c = cfg.max_clusters
    if unit == "hcu":
        b = cfg.hcu_batch
        return {
            "metric": "cycles per token at a full table",
            "cycles": hcu.hcu_batch_cycles(cfg, c, [None] * b) / b,
            "formula": f"(ceil({c}/{cfg.hcu_lanes}) + 2*{b} + 1) / {b}",
        }
    rng = np.random.default_rng(seed)
    scores = quantize_scores(rng.normal(0.0, 2.0, c), cfg.resv)
    counts = rng.integers(1, min(cfg.resv.count_max, 64) + 1, c)
    if unit in ("wtu", "dre_wtu"):
        # ``wtu``: the hw.gen top (relative buckets); ``dre_wtu``: the DRE's one-lane WTU at
        # the config's bucket mode.
        wcfg = wtu.wtu_unit_config(unit, cfg) if unit == "wtu" else dre_wtu_config(cfg)
        sel = wicsum_select_bucketed(scores, counts, wcfg.resv)
        formula = (
            f"C + n_buckets + b* + k + {wtu.WTU_GRID_LATENCY}"
            if wcfg.resv.bucket_mode == "grid"
            else f"2*C + b* + k + {wtu.WTU_LATENCY}"
        )
        return {
            "metric": f"cycles per row of {c} clusters",
            "cycles": wtu.wtu_cycles(wcfg, c, sel.b_star, sel.clusters_emitted),
            "formula": formula,
            "b_star": sel.b_star,
            "selected": sel.clusters_emitted,
        }
    if unit == "topk":
        k = min(c, cfg.topk_k)
        return {
            "metric": f"cycles per row of {c} clusters, k={k}",
            "cycles": topk.topk_cycles(cfg, c, k),
        }
    if unit == "dre":
        return {
            "metric": "HCU cycles per token + WTU cycles per row",
            "cycles": unit_cycles("hcu", cfg)["cycles"] + unit_cycles("dre_wtu", cfg)["cycles"],
        }
    raise ValueError(f"unit must be one of 'hcu', 'wtu', 'dre_wtu', 'topk', 'dre', not {unit!r}")


def evaluate_point(
    point: dict[str, int],
    preset: str,
    units: list[str],
    clock_ns: float,
    sram_min_bits: int,
    liberty: str,
    work_root: str,
    key: str,
) -> dict[str, Any]:
    """Synthesise and time every unit at ``point`` (runs on a Dask worker)."""
    from hw.gen import generate_rtlil
    from synth.area_model import estimate_area
    from synth.sta import run_sta
    from synth.yosys import synthesize

    t0 = time.perf_counter()
    cfg = point_config(preset, point)
    result: dict[str, Any] = {"key": key, "point": point, "units": {}, "status": "ok"}
    for unit in units:
        wd = Path(work_root) / key / unit
        try:
            res = synthesize(
                generate_rtlil(unit, cfg, initial_state=False),
                unit,
                wd,
                Path(liberty),
                clock_ns=clock_ns,
                sram_min_bits=sram_min_bits,
            )
            sta = run_sta(res.netlist, unit, res.liberties, wd, clock_ns)
            result["units"][unit] = {
                "area_um2": res.total.total_area,
                "std_cell_um2": res.total.std_area,
                "macro_um2": res.total.macro_area,
                "cells": res.total.cells,
                "flops": res.total.flops,
                "fmax_mhz": sta.fmax_mhz,
                "model_area_um2": estimate_area(unit, cfg, sram_min_bits=sram_min_bits),
                **unit_cycles(unit, cfg),
            }
        except FlowError as exc:
            result["status"] = "failed"
            result["units"][unit] = {"error": str(exc)}
    result["runtime_s"] = round(time.perf_counter() - t0, 3)
    return result


def pareto_front(rows: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated when minimising both coordinates."""
    front = []
    for i, (a, b) in enumerate(rows):
        dominated = any(
            (a2 <= a and b2 <= b) and (a2 < a or b2 < b)
            for j, (a2, b2) in enumerate(rows)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _plots(opts: SweepOptions, results: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for unit in opts.units:
        rows = [
            (r["point"], r["units"][unit])
            for r in results
            if unit in r["units"] and "area_um2" in r["units"][unit]
        ]
        if not rows:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, metric in zip(axes, ("cycles", "latency_ns"), strict=True):
            xs, ys, labels = [], [], []
            for p, u in rows:
                cyc = u["cycles"]
                val = (
                    cyc
                    if metric == "cycles"
                    else cyc * 1000.0 / u["fmax_mhz"]
                    if u["fmax_mhz"]
                    else None
                )
                if val is None:
                    continue
                xs.append(u["area_um2"] * 1e-6)
                ys.append(val)
                labels.append(", ".join(f"{k.split('_')[0]}={v}" for k, v in p.items()))
            front = pareto_front(list(zip(xs, ys, strict=True)))
            ax.scatter(xs, ys, color="tab:blue", label="points")
            fr = sorted(front, key=lambda i: xs[i])
            ax.plot(
                [xs[i] for i in fr],
                [ys[i] for i in fr],
                "o-",
                color="tab:red",
                label="Pareto front",
            )
            for i in fr:
                ax.annotate(labels[i], (xs[i], ys[i]), fontsize=6)
            ax.set_xlabel("area, mm² (0.18 µm)")
            ax.set_ylabel("cycles" if metric == "cycles" else "latency, ns (cycles / fmax)")
            ax.set_yscale("log")
            ax.legend(fontsize=8)
        fig.suptitle(f"{unit}: {rows[0][1].get('metric', '')} — preset {opts.preset}")
        fig.tight_layout()
        path = opts.directory / f"pareto_{unit}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def run_sweep(opts: SweepOptions) -> dict[str, Any]:
    """Run (or resume) the sweep; returns the summary also written to ``sweep.json``."""
    from distributed import as_completed

    liberty = find_liberty(opts.liberty)
    yosys_command()
    sta_command()
    grid = opts.grid or DEFAULT_GRIDS.get(opts.preset, DEFAULT_GRIDS["tiny"])
    pts = points(opts.preset, grid, opts.mode)
    digest = _liberty_digest(liberty)
    opts.cache.mkdir(parents=True, exist_ok=True)
    keyed = [(point_key(p, opts, digest), p) for p in pts]
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for key, p in keyed:
        f = opts.cache / f"{key}.json"
        if f.is_file():
            results[key] = json.loads(f.read_text())
        else:
            todo.append((key, p))
    _say(
        opts,
        f"preset {opts.preset}, {len(pts)} points ({opts.mode}), {len(results)} cached, "
        f"{len(todo)} to run; units {', '.join(opts.units)}",
    )
    computed = 0
    if todo:
        client, cluster = dask_client(opts.scheduler, opts.workers)
        try:
            _say(
                opts,
                f"Dask scheduler {client.scheduler.address}, "
                f"{len(client.scheduler_info()['workers'])} worker(s)",
            )
            work_root = str(opts.work)
            futures = [
                client.submit(
                    evaluate_point,
                    p,
                    opts.preset,
                    opts.units,
                    opts.clock_ns,
                    opts.sram_min_bits,
                    str(liberty),
                    work_root,
                    key,
                    key=f"sweep-{key}",
                    pure=False,
                )
                for key, p in todo
            ]
            for fut in as_completed(futures):
                res = fut.result()
                (opts.cache / f"{res['key']}.json").write_text(json.dumps(res, indent=1) + "\n")
                results[res["key"]] = res
                computed += 1
                summary = ", ".join(
                    f"{u} {v['area_um2'] * 1e-6:.4f} mm² {v['fmax_mhz'] or 0:.0f} MHz "
                    f"{v['cycles']} cyc"
                    for u, v in res["units"].items()
                    if "area_um2" in v
                )
                _say(
                    opts,
                    f"{computed}/{len(todo)} {res['point']}: {summary} ({res['runtime_s']:.0f} s)",
                )
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    ordered = [results[k] for k, _ in keyed]
    opts.directory.mkdir(parents=True, exist_ok=True)
    plots = _plots(opts, ordered)
    fronts = {}
    for unit in opts.units:
        rows = [
            (r["units"][unit]["area_um2"], r["units"][unit]["cycles"])
            for r in ordered
            if "area_um2" in r["units"].get(unit, {})
        ]
        fronts[unit] = pareto_front(rows)
    summary = {
        "kind": "vrex-sweep",
        "preset": opts.preset,
        "mode": opts.mode,
        "grid": grid,
        "units": opts.units,
        "clock_ns": opts.clock_ns,
        "sram_min_bits": opts.sram_min_bits,
        "points": ordered,
        "computed": computed,
        "cached": len(ordered) - computed,
        "pareto_area_cycles": fronts,
        "plots": [str(p) for p in plots],
    }
    (opts.directory / "sweep.json").write_text(json.dumps(summary, indent=1) + "\n")
    _write_md(opts, summary)
    _table(opts, summary)
    return summary


def _write_md(opts: SweepOptions, s: dict[str, Any]) -> None:
    lines = [
        f"# Design-space sweep — preset `{s['preset']}` ({s['mode']})",
        "",
        f"Clock {s['clock_ns']} ns, SRAM macros from {s['sram_min_bits']} bits, OSU 0.18 µm. "
        "Cycles from the units' cycle formulas; model = synth/area_model.py.",
        "",
        "| point | unit | area mm² | model mm² | model err | fmax MHz | cycles |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in s["points"]:
        for unit, u in r["units"].items():
            if "area_um2" not in u:
                lines.append(
                    f"| {r['point']} | {unit} | failed: {u.get('error', '')[:60]} | | | | |"
                )
                continue
            err = (u["model_area_um2"] - u["area_um2"]) / u["area_um2"]
            lines.append(
                f"| {r['point']} | {unit} | {u['area_um2'] * 1e-6:.4f} | "
                f"{u['model_area_um2'] * 1e-6:.4f} | {err * 100:+.0f} % | "
                f"{(u['fmax_mhz'] or 0):.1f} | {u['cycles']} |"
            )
    lines += ["", *[f"![{Path(p).stem}]({Path(p).name})" for p in s["plots"]], ""]
    (opts.directory / "sweep.md").write_text("\n".join(lines) + "\n")


def _table(opts: SweepOptions, s: dict[str, Any]) -> None:
    if opts.quiet:
        return
    print(f"\n{'point':<62} {'unit':<5} {'mm²':>8} {'model':>8} {'MHz':>6} {'cycles':>7}")
    for r in s["points"]:
        pt = " ".join(f"{k}={v}" for k, v in r["point"].items())
        for unit, u in r["units"].items():
            if "area_um2" in u:
                print(
                    f"{pt:<62} {unit:<5} {u['area_um2'] * 1e-6:>8.4f} "
                    f"{u['model_area_um2'] * 1e-6:>8.4f} {(u['fmax_mhz'] or 0):>6.0f} "
                    f"{u['cycles']:>7}"
                )
    print(f"\n{s['computed']} computed, {s['cached']} from cache; {opts.directory / 'sweep.md'}")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, not {text!r}"
        ) from None


def main(argv: list[str] | None = None) -> int:
    from hw.config import PRESETS

    ap = argparse.ArgumentParser(prog="python -m synth.sweep", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="tiny", help=f"base preset: {', '.join(PRESETS)}")
    ap.add_argument(
        "--mode",
        default="ofat",
        choices=["ofat", "grid"],
        help="one axis at a time, or the full grid",
    )
    ap.add_argument("--lanes", type=_ints, help="HCU lanes values")
    ap.add_argument("--hash-bits", type=_ints, help="hash bits values")
    ap.add_argument("--buckets", type=_ints, help="WTU bucket counts")
    ap.add_argument("--max-clusters", type=_ints, help="table sizes")
    ap.add_argument("--units", default="hcu,wtu", help="units to synthesise (default hcu,wtu)")
    ap.add_argument("--clock-ns", type=float, default=10.0)
    ap.add_argument("--sram-min-bits", type=int, default=DEFAULT_SRAM_MIN_BITS)
    ap.add_argument("--scheduler", help="Dask scheduler address (default: a LocalCluster)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    args = ap.parse_args(argv)
    grid = {}
    for axis, vals in (
        ("hcu_lanes", args.lanes),
        ("hash_bits", args.hash_bits),
        ("n_buckets", args.buckets),
        ("max_clusters", args.max_clusters),
    ):
        if vals:
            grid[axis] = vals
    try:
        if args.config not in PRESETS:
            raise ValueError(
                f"config must be one of {', '.join(map(repr, PRESETS))}, not {args.config!r}"
            )
        opts = SweepOptions(
            preset=args.config,
            grid=grid,
            mode=args.mode,
            units=[u for u in args.units.split(",") if u],
            clock_ns=args.clock_ns,
            sram_min_bits=args.sram_min_bits,
            scheduler=args.scheduler,
            workers=args.workers,
        )
        s = run_sweep(opts)
    except MissingToolError as exc:
        print(f"synth.sweep: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"synth.sweep: error: {exc}", file=sys.stderr)
        return 2
    return 0 if all(r["status"] == "ok" for r in s["points"]) else 1


if __name__ == "__main__":
    sys.exit(main())
