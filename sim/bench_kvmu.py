"""KVMU benchmark: bytes per burst and bus utilisation of cluster-contiguous retrieval vs
the token-granular gather of the same selection.

    python -m sim.bench_kvmu [--tokens 4000] [-o build/bench]

1. Golden model (``golden.kvmu``) on the ``tiny``, ``edge`` and ``paper`` layouts: tokens
   clustered by ``golden.resv.cluster_online`` on synthetic signatures, a random selection
   of 10 %, 30 % and 60 % of the clusters; bursts, bytes per burst and the utilisation
   ``beats / (beats + overhead * bursts)`` for an assumed per-burst overhead of 0 (fully
   pipelined) and 8 cycles (address phase and memory latency not hidden; an assumption, not
   a measurement).
2. RTL (Verilator, cocotb ``kvmu_bus_utilisation`` against cocotbext-axi's ``AxiRamRead``,
   no stalls): the ``tiny`` preset (4-token chunks) against the same workload stored with
   1-token chunks, i.e. one AXI request per token (the token-granular gather), measured as
   data beats / cycles from the first AR to the last R beat, with an ideal RAM (an AR
   every cycle) and a command-rate-limited one (at most one AR every 16 cycles). Every
   run is checked against the golden bursts and its scoreboard.

3. Chunk size (golden, real trace): the paper preset's KV layout with ``chunk_tokens`` 4,
   8, 16 and 32 on the ``bench`` projected trace (the one ``make sim --config paper``
   runs: bikes, 196 tokens/frame, every (layer, KV head) context). Every token past the
   sinks and the recent window is clustered by the paper's HCU rule and appended to its
   cluster; reported: chunks allocated, the off-device footprint (chunks x chunk bytes)
   against the bytes actually stored (occupancy), and the bursts and bytes per burst of
   retrieving the 32.7 % of clusters (the paper's retrieval ratio) with the most members.

Writes ``kvmu_bench.json`` and ``kvmu_bench.md`` to the output directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from golden.kvmu import KVLayout, KVMemory, bus_figures, token_gather
from golden.resv import cluster_online
from golden.synthetic import synthetic_signatures
from hw.config import preset
from sim.cases.dre import workload_from_keys
from sim.kit.runner import UNIT_TESTBENCH, run_unit
from workloads import projected
from workloads.trace import load_or_make

__all__ = ["chunk_rows", "golden_rows", "main", "rtl_rows"]

OVERHEADS = (0, 8)
CHUNK_SIZES = (4, 8, 16, 32)
#: The paper's fraction of the cache retrieved per query.
PAPER_RETRIEVAL = 0.327
FRACTIONS = (0.1, 0.3, 0.6)
#: RTL runs: the RAM accepts one AR per cycle (0) or at most one every 16 cycles.
AR_GAPS = (0, 16)


def golden_rows(tokens: int, seed: int = 0) -> list[dict]:
    rows = []
    for name in ("tiny", "edge", "paper"):
        cfg = preset(name)
        r = cfg.resv
        sigs = synthetic_signatures(
            tokens, hash_bits=r.hash_bits, redundancy=0.8, sources=64, seed=seed
        )
        res = cluster_online(sigs, threshold=r.threshold, max_clusters=cfg.max_clusters)
        chunks = -(-tokens // cfg.chunk_tokens) + len(res.counts)
        layout = KVLayout.from_hw(cfg.replace(kv_chunks=1 << (chunks - 1).bit_length()))
        mem = KVMemory(layout, cfg.max_clusters)
        for t, c in enumerate(res.assign):
            mem.append(t, int(c))
        rng = np.random.default_rng(seed + 1)
        for frac in FRACTIONS:
            k = max(1, round(frac * len(res.counts)))
            sel = [int(c) for c in rng.permutation(len(res.counts))[:k]]
            row = {
                "config": name,
                "token_bytes": layout.token_bytes,
                "chunk_tokens": layout.chunk_tokens,
                "bus_bytes": layout.bus_bytes,
                "max_burst": layout.max_burst,
                "clusters": len(res.counts),
                "selected": k,
                "tokens": len(mem.tokens(sel)),
            }
            for kind, bursts in (("contig", mem.bursts(sel)), ("gather", token_gather(mem, sel))):
                for ov in OVERHEADS:
                    f = bus_figures(bursts, layout, overhead=ov)
                    row[f"{kind}_bursts"] = f.bursts
                    row[f"{kind}_bytes_per_burst"] = round(f.bytes_per_burst, 1)
                    row[f"{kind}_util_ov{ov}"] = round(f.utilisation, 4)
            rows.append(row)
    return rows


def chunk_rows(keys: np.ndarray, first_frame: int, *, source: str) -> list[dict]:
    """Footprint and bursts per ``chunk_tokens`` (see the module docstring, item 3) for the
    pre-RoPE keys ``(contexts, n, head_dim)`` of a trace, at the paper preset; keys are
    centred on their first frame's mean, as the core's ``SET_BIAS`` does."""
    base = preset("paper")
    r = base.resv
    # The clustering of each context's aged tokens does not depend on the chunk size.
    clustered = []
    for ctx_keys in keys:
        stream = workload_from_keys(base, ctx_keys, None, max_rows=0, centre_tokens=first_frame)[0]
        aged = stream.sigs[r.sink_tokens : len(ctx_keys) - r.recent_tokens]
        clustered.append(cluster_online(aged, threshold=r.threshold, max_clusters=r.max_clusters))
    rows = []
    for chunk in CHUNK_SIZES:
        chunks = stored = n_clusters = 0
        bursts: list = []
        for res in clustered:
            n = len(res.assign)
            pool = 1 << (n + len(res.counts) - 1).bit_length()
            cfg = base.replace(chunk_tokens=chunk, kv_chunks=pool)
            layout = KVLayout.from_hw(cfg)
            mem = KVMemory(layout, cfg.max_clusters)
            for t, c in enumerate(res.assign):
                mem.append(t, int(c))
            chunks += mem.free
            stored += n
            n_clusters += len(res.counts)
            top = np.argsort(-res.counts, kind="stable")
            bursts += mem.bursts(top[: max(1, round(PAPER_RETRIEVAL * len(top)))].tolist())
        f = bus_figures(bursts, layout)
        rows.append(
            {
                "source": source,
                "chunk_tokens": chunk,
                "contexts": len(keys),
                "tokens_stored": stored,
                "clusters": n_clusters,
                "chunks": chunks,
                "footprint_kib": round(chunks * layout.chunk_bytes / 1024, 1),
                "stored_kib": round(stored * layout.token_bytes / 1024, 1),
                "occupancy": round(stored / (chunks * chunk), 3),
                "retrieval_bursts": f.bursts,
                "bytes_per_burst": round(f.bytes_per_burst, 1),
            }
        )
        print(f"[bench_kvmu] chunk_tokens {chunk}: {rows[-1]}", flush=True)
    return rows


def rtl_rows() -> list[dict]:
    rows = []
    cases = {"contig (4-token chunks)": {}, "gather (1-token chunks)": {"chunk_tokens": 1}}
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.dict(UNIT_TESTBENCH, {"kvmu": "sim.benches.tb_kvmu"}),
    ):
        for i, (gap, (label, over)) in enumerate(itertools.product(AR_GAPS, cases.items())):
            report = Path(tmp) / f"r{i}.json"
            env = {"KVMU_REPORT": str(report), "KVMU_AR_GAP": str(gap)}
            if over:
                over = {**over, "kv_chunks": 128}
            t0 = time.perf_counter()
            run_unit(
                "kvmu",
                "verilator",
                config="tiny",
                env=env,
                tag=f"bench{int(bool(over))}",
                testcase="kvmu_bus_utilisation",
                overrides=over,
            )
            fig = json.loads(report.read_text())
            fig["case"] = label
            fig["wall_s"] = round(time.perf_counter() - t0, 1)
            rows.append(fig)
            print(f"[bench_kvmu] RTL {label}: {fig}", flush=True)
    return rows


def _md_table(rows: list[dict], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=4000, help="tokens of the golden workload")
    ap.add_argument("--no-rtl", action="store_true", help="golden figures only")
    ap.add_argument("-o", "--out", type=Path, default=Path("build/bench"))
    args = ap.parse_args(argv)
    if args.tokens < 1:
        raise SystemExit(f"--tokens must be a positive integer, not {args.tokens!r}")
    gold = golden_rows(args.tokens)
    wl = projected.PRESETS["bench"]
    trace = load_or_make(wl)
    keys = trace.keys.reshape(-1, *trace.keys.shape[-2:])
    first = int(trace.frame_offsets[1])
    chunk = chunk_rows(keys, first, source=f"{wl.clip} ({keys.shape[0]} contexts)")
    rtl = [] if args.no_rtl else rtl_rows()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kvmu_bench.json").write_text(
        json.dumps({"golden": gold, "chunk_size": chunk, "rtl": rtl}, indent=1)
    )
    gcols = [
        "config",
        "token_bytes",
        "bus_bytes",
        "max_burst",
        "selected",
        "tokens",
        "contig_bursts",
        "contig_bytes_per_burst",
        "contig_util_ov0",
        "contig_util_ov8",
        "gather_bursts",
        "gather_bytes_per_burst",
        "gather_util_ov8",
    ]
    rcols = [
        "case",
        "ar_gap",
        "tokens",
        "bursts",
        "beats",
        "bytes",
        "cycles_first_ar_to_last_beat",
        "utilisation",
        "cycles_select_to_summary",
    ]
    md = [
        "# KVMU: cluster-contiguous retrieval vs token-granular gather",
        "",
        f"Golden model, {args.tokens} synthetic tokens per config; utilisation = beats / "
        "(beats + overhead x bursts), overhead 0 or 8 cycles per burst (assumed).",
        "",
        _md_table(gold, gcols),
        "",
        f"Chunk size at the paper preset on the real trace {chunk[0]['source']}: footprint = "
        "chunks x chunk bytes, occupancy = stored tokens / chunk slots; retrieval of the "
        f"{PAPER_RETRIEVAL:.1%} largest clusters.",
        "",
        _md_table(chunk, [c for c in chunk[0] if c != "source"]),
    ]
    if rtl:
        md += [
            "",
            "RTL (Verilator, cocotbext-axi AxiRamRead, no stalls, tiny preset; ar_gap: the RAM "
            "accepts at most one AR every ar_gap cycles): utilisation = data beats / cycles "
            "from first AR to last R beat.",
            "",
            _md_table(rtl, rcols),
        ]
    (args.out / "kvmu_bench.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
