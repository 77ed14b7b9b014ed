"""The core's ingest against the size of the cluster table and ``hcu_batch``: cycles per
ingested token, measured on the RTL (issue 11: HCU batches in the core).

    python -m sim.bench_ingest [--config tiny] [--set FIELD=VALUE ...] [--rows 8 32 121]
        [--batches 1 2 4 8] [--tokens 196] [-o build/bench]

When the recent ring is full, every ingested token ages the oldest ring token into the
clustered context, and the HCU searches the whole cluster table for it:
``ceil(clusters / hcu_lanes)`` table rows. The core's aging (``hw.core.aging``) sends the
tokens to the HCU ahead of the rest of their aging (the KVMU slot, the K/V write, the key
sum, the weight), up to ``B = hcu_batch`` per search, so a token costs the longer of that
rest and its share of the searches.

What it runs, for every table size ``R`` (``--rows``: table rows, i.e. ``R * hcu_lanes``
clusters) and every ``B`` (``--batches``): the core on Amaranth's simulator, no host idle,
an always-ready RAM, a context of random keys (Hamming threshold 0, no centring: every aged
token creates a cluster until the table is full, then joins one by force — a full search,
no early exit), first ingesting enough tokens to fill the table, then one frame of
``--tokens`` tokens (the paper's 196), which is measured, then one decode ``QUERY``; every
status, the output and the counters are checked against the golden model. Reported: the
frame's cycles per token, against ``R + 3`` (the HCU's search of one token, the pipelined
ingest's bound at ``B = 1``). With the first ``B`` of ``--batches``, the context is also
stored and loaded back before the frame and after it (``with_round_trips``): the store
after the frame and the load (the same tables: the key sums stay in DRAM), their cycles
and bus beats (the ``context_beats`` counter).

The default is the ``tiny`` datapath with ``axi_data_bits = 32``: an aged token's K and V
are then 16 bus beats, as at the paper preset (128 BF16 values each over 256 bits), and the
paper's 256-token recent ring (``resv.recent_tokens``: how far ahead of the new tokens the
aging may send tokens to the HCU); ``--rows 121`` is the table of the paper preset's 5
K-token cache (1 929 clusters over 16 lanes; the table's rows, not its lanes, set the
cycles). Writes ``ingest_bench.json``,
``ingest_bench.md`` and ``ingest_bench.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from golden.bf16 import to_bf16_bits
from golden.checks import int_at_least
from hw.config import HWConfig, apply_settings, parse_settings, preset
from hw.core import Op, check_core_config
from sim.cases.core import Command, Program, program_from_arrays
from sim.kit.core_sim import check, simulate

__all__ = ["PAPER_LIKE", "ROWS", "bench_config", "bench_program", "main", "measure"]

#: The default settings of the ``tiny`` preset: the paper's 16 bus beats per aged token's K
#: and V, and its 256-token recent ring (how far the aging can run ahead of the new tokens).
PAPER_LIKE = ("axi_data_bits=32", "resv.recent_tokens=256")
#: Table rows measured by default: small, medium, the paper preset's 5 K-token cache.
ROWS = (8, 32, 121)
BATCHES = (1, 2, 4, 8)


def bench_config(cfg: HWConfig, rows: int, batch: int, tokens: int) -> HWConfig:
    """``cfg`` with a table of ``rows`` HCU rows, ``hcu_batch = batch``, threshold 0, no key
    centring, and room for the run: token ids and KV chunks (a power of two) for every token."""
    clusters = rows * cfg.hcu_lanes
    r = cfg.resv
    total = r.sink_tokens + r.recent_tokens + clusters + tokens
    return cfg.replace(
        hcu_batch=batch,
        token_id_bits=max(cfg.token_id_bits, int(total).bit_length()),
        kv_chunks=max(cfg.kv_chunks, 1 << (clusters + tokens - 1).bit_length()),
        resv={"max_clusters": clusters, "threshold": 0, "centre_keys": False},
    )


def bench_program(cfg: HWConfig, tokens: int, seed: int = 1) -> Program:
    """A context of random keys: the table filled (every aged token a new cluster), then one
    frame of ``tokens`` tokens, then one decode query."""
    r = cfg.resv
    fill = r.sink_tokens + r.recent_tokens + r.max_clusters
    n, d = fill + tokens, r.head_dim
    rng = np.random.default_rng(seed)

    def bf16(*shape):
        return to_bf16_bits(rng.standard_normal(shape).astype(np.float32))

    ctx = (0, 0, bf16(n, d), bf16(n, d), bf16(1, d))
    return program_from_arrays(
        cfg,
        [ctx],
        np.array([0, fill, n]),
        np.array([1]),
        source=f"random keys, {r.max_clusters} clusters, then {tokens} tokens",
        bad_commands=False,
    )


def with_round_trips(prog: Program) -> Program:
    """``prog`` with the context stored and loaded back (``RESET_CTX 1`` stores it and starts
    context 1, ``SWITCH_CTX 0`` loads it again while it stores the empty context 1: a swap)
    before its last frame and after it, before
    the decode query, whose output checks the load; the counters are also read around the
    second trip."""
    cmds = list(prog.commands)
    frame = max(i for i, c in enumerate(cmds) if c.kind == "frame")

    def trip():
        return [
            Command(Op.RESET_CTX, 1, [], 0, "reset"),
            Command(Op.SWITCH_CTX, 0, [], 0, "switch"),
        ]

    new = [*cmds[:frame], *trip(), cmds[frame], *trip(), *cmds[frame + 1 :]]
    at = frame + 2  # the frame's index in ``new``
    reads = [(at, {}), (at + 1, {}), (at + 2, {})]  # snapshots: nothing compared
    reads += [(i + 4, want) for i, want in prog.counter_reads]
    return replace(prog, commands=new, counter_reads=reads)


def measure(cfg: HWConfig, rows: int, batch: int, tokens: int, switch: bool = False) -> dict:
    """Cycles of the measured frame of ``bench_program`` on ``bench_config``'s core; with
    ``switch``, also of the context's store after the frame and its load
    (``with_round_trips``)."""
    run_cfg = bench_config(cfg, rows, batch, tokens)
    prog = bench_program(run_cfg, tokens)
    if switch:
        prog = with_round_trips(prog)
    t0 = time.time()
    out = simulate(run_cfg, prog, timing="none", seed=1, timeout=10**6)
    check(prog, out)
    frames = [i for i, c in enumerate(prog.commands) if c.kind == "frame"]
    cycles = out["cycles"][frames[-1]]
    moved = {}
    if switch:
        at = frames[-1]
        beats = [p["context_beats"] for p in out["perf"][:3]]
        moved = {
            "store_cycles": out["cycles"][at + 1],
            "store_beats": beats[1] - beats[0],
            "load_cycles": out["cycles"][at + 2],
            "load_beats": beats[2] - beats[1],
        }
    return {
        "rows": rows,
        "clusters": run_cfg.resv.max_clusters,
        "batch": batch,
        "tokens": tokens,
        "cycles": cycles,
        "cycles_per_token": cycles / tokens,
        "search_bound": rows + 3,
        "seconds": round(time.time() - t0, 1),
        **moved,
    }


def _markdown(cfg_name: str, settings: list[str], results: list[dict]) -> str:
    batches = sorted({r["batch"] for r in results})
    by = {(r["rows"], r["batch"]): r for r in results}
    head = "| table rows (clusters) | search / token (R + 3) | " + " | ".join(
        f"B = {b}" for b in batches
    )
    lines = [
        "# Ingest: cycles per token against the table and hcu_batch",
        "",
        f"`python -m sim.bench_ingest --config {cfg_name}"
        + "".join(f" --set {s}" for s in settings)
        + "`: one frame of random keys ingested into a full table (every aged token searches "
        "all of it), Amaranth's simulator, no stalls, bit-exact with the golden model. "
        "Cycles per ingested token (the speed-up over B = 1 in brackets):",
        "",
        head + " |",
        "|" + "---:|" * (2 + len(batches)),
    ]
    for rows in sorted({r["rows"] for r in results}):
        one = by.get((rows, 1))
        cells = []
        for b in batches:
            r = by[(rows, b)]
            gain = f" ({one['cycles'] / r['cycles']:.2f}x)" if one and b != 1 else ""
            cells.append(f"{r['cycles_per_token']:.1f}{gain}")
        first = by[(rows, batches[0])]
        row = f"| {rows} ({first['clusters']}) | {first['search_bound']} | "
        lines.append(row + " | ".join(cells) + " |")
    trips = [r for r in results if "store_cycles" in r]
    if trips:
        lines += [
            "",
            "`SWITCH_CTX` at the same tables (the context stored and loaded back before the "
            "frame and after it, the decode query then checking the load): the store after "
            "the frame and the load move the same tables (the key sums stay in DRAM; the "
            "load's `SWITCH_CTX` is a swap: it stores an empty context's scalars meanwhile):",
            "",
            "| table rows (clusters) | store: cycles / beats | load: cycles / beats "
            "| cycles per beat |",
            "|---:|---:|---:|---:|",
        ]
        for r in trips:
            per = (r["store_cycles"] + r["load_cycles"]) / (r["store_beats"] + r["load_beats"])
            lines.append(
                f"| {r['rows']} ({r['clusters']}) | {r['store_cycles']} / {r['store_beats']} | "
                f"{r['load_cycles']} / {r['load_beats']} | {per:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for b in sorted({r["batch"] for r in results}):
        pts = sorted((r["rows"], r["cycles_per_token"]) for r in results if r["batch"] == b)
        ax.plot(*zip(*pts, strict=True), "o-", label=f"hcu_batch {b}")
    bound = sorted({(r["rows"], r["search_bound"]) for r in results})
    ax.plot(*zip(*bound, strict=True), "k:", label="one search per token (R + 3)")
    ax.set(xlabel="HCU table rows", ylabel="cycles per ingested token")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sim.bench_ingest", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--config", default="tiny", help="hardware preset (default tiny)")
    ap.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="change a field of the preset (default: axi_data_bits=32 resv.recent_tokens=256, "
        "the paper's 16 beats per token and recent ring)",
    )
    ap.add_argument("--rows", type=int_at_least(1), nargs="+", default=list(ROWS))
    ap.add_argument("--batches", type=int_at_least(1), nargs="+", default=list(BATCHES))
    ap.add_argument("--tokens", type=int_at_least(1), default=196, help="tokens of the frame")
    ap.add_argument("-o", "--out", type=Path, default=Path("build/bench"))
    args = ap.parse_args(argv)
    args.set = args.set if args.set is not None else list(PAPER_LIKE)
    try:
        base = apply_settings(preset(args.config), parse_settings(args.set))
    except ValueError as exc:
        ap.error(str(exc))
    for rows in args.rows:
        for batch in args.batches:
            try:
                check_core_config(bench_config(base, rows, batch, args.tokens))
            except ValueError as exc:
                ap.error(f"--rows {rows} with --batches {batch}: {exc}")
    results = []
    for rows in args.rows:
        for batch in args.batches:
            r = measure(base, rows, batch, args.tokens, switch=batch == args.batches[0])
            results.append(r)
            print(
                f"bench_ingest: {rows} rows, hcu_batch {batch}: {r['cycles_per_token']:.1f} "
                f"cycles/token ({r['seconds']} s)",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"config": args.config, "settings": args.set, "results": results}
    (args.out / "ingest_bench.json").write_text(json.dumps(summary, indent=1))
    (args.out / "ingest_bench.md").write_text(_markdown(args.config, args.set, results))
    _plot(results, args.out / "ingest_bench.png")
    best = min(results, key=lambda r: (-r["rows"], r["cycles_per_token"]))
    one = next((r for r in results if r["rows"] == best["rows"] and r["batch"] == 1), None)
    tail = f" against {one['cycles_per_token']:.1f} with hcu_batch 1" if one else ""
    print(
        f"bench_ingest: at {best['rows']} table rows, {best['cycles_per_token']:.1f} cycles per "
        f"token with hcu_batch {best['batch']}{tail}; {args.out / 'ingest_bench.md'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
