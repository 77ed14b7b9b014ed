"""Cycles per context-frame and per decode step of the core against the paper's frame budget
(issue 11): a per-command cycle model fitted to an RTL run, extrapolated over the cache size.

    python -m sim.bench_core [--report build/bench/sim_paper.json] [-o build/bench]

Input: the per-command report of ``python -m sim.run --config paper ...`` (``make bench``
runs it first): every ``INGEST``, ``PREFILL`` and ``QUERY`` with its exact cycle count
(no host idle, an always-ready RAM) and the golden model's work figures.

Model. A ``QUERY`` is a one-row ``PREFILL`` on the same engine, so both share one model
of a command's phases: a fixed cost + ``c_row * rows`` (their reception and RoPE) +
``c_cluster * clusters scored`` (one selection per command) + ``c_burst * read bursts`` +
``c_engine * engine``. The attention engine (``TiledAttention`` with double-buffered
arrays) loads a tile while the previous tile's rows stream, so its time is the larger of
two paces, not their sum: the rows' passes, ``tiles x max(rows x row_pace, tile_gap)``
(``row_pace = max(M, ceil(T / mac_lanes))`` beats per row and tile, ``M = ceil(head_dim /
mac_lanes)``: the core's engine is ``mac_lanes`` wide), and the token stream, ``2M``
cycles per kept token (its K and V beats) and ``max(2M, bus_token)`` per fetched one
(``bus_token = 2 * head_dim * 16 / axi_data_bits``, the bus cycles of its K and V), but
``2M`` for those the prefetch buffer took while the engine took the rows and the kept
tokens (``(rows + 2 kept) x M`` cycles of bus, at most ``prefetch_rows / 2M`` tokens): a
frame's many rows are bound by their passes, a decode step's few by the stream
(``hw.datapath.tiled_attention.command_cycles`` is the engine's exact count for inputs
offered every cycle). A fitted ``c_engine`` near 1 says that pace is what the run shows.
Ingest is cycles per token as fitted (``a``, in the frames that begin with the kept tokens
full, so that every new token ages one: ``a = base + join x`` the fraction of the frame's
tokens that join a cluster, whose key sum the aging reads from DRAM; a token that creates
one reads none; the extrapolation takes the fraction of the run's frame nearest in cache),
or the HCU's search of the extrapolated table if that is longer: the search for the next
tokens overlaps the aging of the current one, so the pipelined ingest is bounded by
``R + 2B + 1`` cycles per batch of ``B = hcu_batch`` tokens, ``R = ceil(clusters /
hcu_lanes)`` table rows, and, since the HCU takes a batch only once the aging has taken
all but the last result of the one before, by ``R + (B - 1) a`` (``python -m
sim.bench_ingest`` measures this on the RTL against the table size).
The coefficients are non-negative least-squares fits to the run, of the relative residuals
(a decode step weighs as much as a ``PREFILL``); the report gives the fit's largest
residual, how many costs the run determines independently, and a holdout check (fit on
the first half of the commands, predict the second half, whose caches are larger).
Extrapolation to a cache of ``N`` tokens: ``sink + recent`` kept,
``retrieval * (N - kept)`` fetched (the paper's 32.7 % by default), the run's tokens per
cluster and bytes per burst, at most ``max_clusters`` clusters.

Budget. The paper's V-Rex8 runs Llama-3-8B (32 layers x 8 KV heads = 256 contexts) at
3.9-8.3 frames/s on 8 cores at 800 MHz: ``800e6 * 8 / (fps * 256)`` core-cycles per
context-frame (6.4 M and 3.0 M), for everything including the weight streaming of the
projections and the FFN, which this core does not model. ``ratio`` = our ingest + prefill +
``SWITCH_CTX`` cycles per context-frame / that budget; the issue's goal is <= 150 K cycles at
a 5 K cache. Every frame visits every context, so each context-frame has one ``SWITCH_CTX``:
the context's tables stored to DRAM while the next one's load (a swap: the W and R
channels busy together), at their occupancy (``hw.core.contexts.region_rows``: the
extrapolated clusters, each with the run's KV chunks per cluster; the next context
as large), so each region costs the longer of its store and its load, one beat per cycle
(``hw.core.contexts.swap_beats``), and the kept tokens' move by the prefetcher (the same
rule over ``kept_regions``), counted in full, an upper bound: it runs behind the other
commands, which still wait for part of it (the README's prefetch A/B: with the clean, an
``INGEST`` 0.8 K cycles and a ``PREFILL`` its clean); the overlap a run measured is
reported. The key sums stay in DRAM: a selection
streams the clusters' BF16 representative keys (``head_dim * 16 / axi_data_bits`` beats a
cluster, in the fitted per-cluster cost: the run has the paper's beats per cluster), and
an aged token reads and writes back its cluster's sum (in the measured ingest per token).
A decode step's bus bound is the time its fetched tokens' K and V take on the bus
(``2 * head_dim * 16 / axi_data_bits`` cycles each); the goal is within 2x of it.

``--check REPORT`` (with ``--check-set``, that run's settings) sets the model's prediction
of every command of another run beside its cycles (e.g. the full-width core, or another
clip: ``make bench-goal``) and that run's last context-frames as measured.

Writes ``core_bench.json``, ``core_bench.md`` and ``core_bench.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.optimize

from hw.config import apply_settings, parse_settings, preset
from hw.core.contexts import kept_regions, region_rows, swap_beats
from hw.datapath.mac_tree import mac_latency
from hw.datapath.tiled_attention import tile_gap

__all__ = ["budget", "check", "engine_cycles", "extrapolate", "fit", "main"]

CACHES = (1024, 4096, 5120, 16384)
PAPER_FPS = (3.9, 8.3)
PAPER_CONTEXTS = 32 * 8  # Llama-3-8B: layers x KV heads
PAPER_CORES, PAPER_HZ = 8, 800e6
GOAL_CYCLES = 150_000
#: Tile sizes (``tile_tokens``) whose consequence the report predicts at a 5 K cache.
TILES = (16, 32, 64, 128)
#: ``hcu_batch`` values the report predicts the 5 K cache's ingest for.
BATCHES = (1, 2, 4, 8)
FEATURES = ("command", "rows", "clusters", "bursts", "engine")


def budget(fps: float) -> float:
    """Core-cycles per context-frame the paper's throughput leaves (module docstring)."""
    return PAPER_HZ * PAPER_CORES / (fps * PAPER_CONTEXTS)


def _vector(cfg, rows, clusters, kept, fetched, bursts) -> list[float]:
    """A ``PREFILL``'s or ``QUERY``'s (``rows`` 1) work in ``FEATURES`` order."""
    return [1, rows, clusters, bursts, engine_cycles(cfg, rows, kept, fetched)["cycles"]]


def _bus_token(cfg) -> float:
    """Bus cycles of a token's K and V (BF16) on the AXI."""
    return 2 * cfg.resv.head_dim * 16 / cfg.axi_data_bits


def engine_cycles(cfg, rows: int, kept: float, fetched: float) -> dict:
    """The attention engine's pace (module docstring) for one ``PREFILL`` of ``rows`` rows
    over ``kept`` kept and ``fetched`` fetched tokens: ``cycles``, the larger of the rows'
    passes (``passes``) and the token stream (``stream``), and the busy fractions of the
    MAC arrays and the bus."""
    lanes, tile = cfg.mac_lanes, cfg.tile_tokens
    m = math.ceil(cfg.resv.head_dim / lanes)
    row_pace = max(m, math.ceil(tile / lanes))
    tiles = math.ceil((kept + fetched) / tile)
    passes = tiles * max(rows * row_pace, tile_gap(cfg))
    # Prefetch: the reads start at the selection, so the tokens the bus delivers while the
    # engine takes the rows and the kept tokens ((rows + 2 kept) x M cycles), at most the
    # buffer's, wait there and then stream at the engine's 2M cycles each.
    bus = _bus_token(cfg)
    early = min(fetched, cfg.prefetch_rows / (2 * m), (rows + 2 * kept) * m / bus)
    stream = (kept + early) * 2 * m + (fetched - early) * max(2 * m, bus)
    cycles = max(passes, stream, 1)
    return {
        "tiles": tiles,
        "row_pace": row_pace,
        "passes": passes,
        "stream": stream,
        "cycles": cycles,
        "array_util": tiles * rows * m / cycles,
        # the bus's share of the engine's time (the prefetched tokens came before it)
        "bus_util": (fetched - early) * bus / cycles,
        "prefetched": early / fetched if fetched else 0.0,
    }


def _features(r: dict, cfg) -> list[float]:
    kept = r["attended"] - r["fetched"]
    return _vector(cfg, r.get("rows", 1), r["clusters"], kept, r["fetched"], r["bursts"])


def fit(records: list[dict], cfg) -> tuple[np.ndarray, float]:
    """Non-negative least-squares coefficients (``FEATURES`` order) of the ``PREFILL`` /
    ``QUERY`` records of a run of ``cfg`` and the largest relative residual. Every
    feature is a cost, so no coefficient may be negative: features that vary together in a
    run (the bursts with the clusters) would otherwise trade a negative cost for a larger
    one. The residuals are relative (each command's row divided by its cycles), so that a
    decode step of a thousand cycles weighs as much as a ``PREFILL`` of a hundred thousand."""
    x = np.array([_features(r, cfg) for r in records], float)
    y = np.array([r["cycles"] for r in records], float)
    # scaled columns: NNLS stops on an absolute tolerance, the features span 1 to 10^5
    scale = np.maximum(np.abs(x / y[:, None]).max(axis=0), 1e-9)
    coef, _ = scipy.optimize.nnls(x / y[:, None] / scale, np.ones_like(y), maxiter=100 * x.shape[1])
    coef = coef / scale
    return coef, float(np.max(np.abs(x @ coef - y) / y))


def _predict(coef: np.ndarray, features, rows: int, shape: dict) -> float:
    """A command's cycles: the fitted model on its work figures, plus the RoPE cycles per
    row the target adds to the fitted run's (``shape["rope_extra"]``)."""
    return float(np.dot(coef, features)) + rows * shape["rope_extra"]


def _ingest_per_token(cfg, a: float, clusters: float) -> float:
    """Ingest cycles per token at a table of ``clusters``: ``a`` as measured, or the HCU's
    search of the table per batch of B aged tokens if that is longer, R + 2B + 1 cycles
    and R + (B - 1) tokens' aging (sim.bench_ingest), which the run's small tables may not
    show."""
    B, R = cfg.hcu_batch, math.ceil(clusters / cfg.hcu_lanes)
    return max(a, (R + 2 * B + 1) / B, (R + (B - 1) * a) / B)


def extrapolate(coef: np.ndarray, cfg, shape: dict, cache: int, retrieval: float) -> dict:
    """Predicted cycles of ``cfg`` at a cache of ``cache`` tokens (``shape``: figures measured
    on the run, ``rope_extra``: RoPE cycles per vector ``cfg`` adds to the run's)."""
    r = cfg.resv
    kept = r.sink_tokens + r.recent_tokens
    aged = max(0, cache - kept)
    clusters = min(r.max_clusters, aged / shape["tokens_per_cluster"])
    fetched = retrieval * aged
    bursts = fetched / shape["tokens_per_burst"]
    g, tpf = shape["group"], shape["tokens_per_frame"]
    per_cmd = max(1, min(cfg.frame_rows // g, r.recent_tokens))  # tokens per PREFILL

    def cmd(rows):
        return _predict(coef, _vector(cfg, rows, clusters, kept, fetched, bursts), rows, shape)

    # the frame's PREFILLs: `full` of per_cmd tokens, then one of `last` (the engine figures
    # reported are the largest command's)
    full, last = divmod(tpf, per_cmd)
    sizes = [per_cmd] * min(full, 1) + [last] * bool(last)
    counts = [full] * min(full, 1) + [1] * bool(last)
    prefill = sum(c * cmd(n * g) for c, n in zip(counts, sizes, strict=True))
    tiles = sum(c * math.ceil((kept + fetched) / cfg.tile_tokens) for c in counts)
    # the join fraction of the run's steady INGEST nearest in cache
    joins = min(shape["joins"], key=lambda x: abs(x[0] - cache), default=[0, 0.0])[1]
    a = _ingest_at(shape, joins) + shape["rope_extra"] + shape["latency_extra"]
    ingest = tpf * _ingest_per_token(cfg, a, clusters)
    # The context's SWITCH_CTX (every frame visits every context): its tables stored while
    # the next context's load, a region's W and R beats together, one bus beat per cycle on
    # each channel (hw.core.contexts.swap_beats; the next context as large as this one),
    # each cluster with the run's chunks per cluster. The key sums stay in DRAM.
    kw = {
        "n_tok": cache,
        "n_clu": round(clusters),
        "ring_n": r.recent_tokens,
        "chunks": round(clusters * shape["chunks_per_cluster"]),
    }
    rows = region_rows(cfg, **kw)
    # The kept tokens move in a swap of the prefetcher's (the spare bank's context stored,
    # the next one's loaded: 256 contexts leave none on chip), behind the next context's
    # commands; counted in full, an upper bound (the commands still wait for part of it).
    prefetch = swap_beats(cfg, {**rows, "scalars": 0}, rows, kept_regions(cfg))
    switch = swap_beats(cfg, rows, rows) + prefetch
    total = ingest + prefill + switch
    return {
        "cache": cache,
        "clusters": clusters,
        "fetched": fetched,
        "prefills": full + bool(last),
        "tiles": tiles,
        "ingest": ingest,
        "prefill": prefill,
        "switch": switch,
        "prefetch": prefetch,
        "context_frame": total,
        "decode_step": g * cmd(1),
        "decode_step_grouped": cmd(g),
        "ratio": {str(f): total / budget(f) for f in PAPER_FPS},
        "engine": engine_cycles(cfg, sizes[0] * g, kept, fetched),
        # the decode step's own bound: its selected K/V over the bus
        "decode_bus_bound": fetched * _bus_token(cfg),
    }


def _ingests(recs: list[dict]) -> list[tuple[dict, dict | None, int]]:
    """Each ``INGEST`` record with its context's next ``PREFILL`` or ``QUERY`` (whose
    ``tokens`` and ``clusters`` are the cache and the table the ``INGEST`` left), or None,
    and its tokens less the clusters it created: in the steady state (every token ages one),
    the aged tokens that joined a cluster, whose key sum the aging reads from DRAM."""
    out, clusters = [], {}
    for i, r in enumerate(recs):
        if r["kind"] == "frame":
            ctx = r["context"]
            after = next(
                (
                    x
                    for x in recs[i + 1 :]
                    if x["kind"] in ("prefill", "decode") and x["context"] == ctx
                ),
                None,
            )
            before = clusters.get(ctx, 0)
            if after is not None:
                clusters[ctx] = after["clusters"]
            out.append((r, after, max(0, r["tokens"] - (clusters.get(ctx, 0) - before))))
    return out


def _blocks(recs: list[dict]) -> dict[tuple[int, int, int], dict]:
    """The ``INGEST`` records by (context, frame, block): a frame may be ingested in blocks,
    each followed by its ``PREFILL``."""
    out, seen = {}, Counter()
    for r in recs:
        if r["kind"] == "frame":
            frame = r["context"], r["frame"]
            out[(*frame, seen[frame])] = r
            seen[frame] += 1
    return out


def _steady(ingest: dict, after: dict | None, kept: int) -> bool:
    """The ingest's steady state: an ``INGEST`` that begins with the ``kept`` tokens full, so
    that every new token ages one (earlier ones age fewer and are faster)."""
    return after is not None and after["tokens"] - ingest["tokens"] >= kept


def _ingest_fit(steady: list[tuple[dict, dict, int]]) -> dict:
    """The steady-state ingest's cycles per token: ``ingest_base`` + ``ingest_join`` x the
    fraction of the tokens that joined a cluster (non-negative least squares of the relative
    residuals over the run's steady ``INGEST``s; without them, the mean only), and each
    steady ``INGEST``'s cache and join fraction (``joins``), from which :func:`extrapolate`
    takes the one nearest its cache."""
    if not steady:
        return {"ingest_base": None, "ingest_join": 0.0, "joins": []}
    cycles = np.array([float(r["cycles"]) for r, _, _ in steady])
    a = np.array([[r["tokens"], j] for r, _, j in steady], dtype=float)
    (base, join), _ = scipy.optimize.nnls(a / cycles[:, None], np.ones(len(steady)))
    return {
        "ingest_base": float(base),
        "ingest_join": float(join),
        "joins": [[after["tokens"], j / r["tokens"]] for r, after, j in steady],
    }


def _ingest_at(shape: dict, joins: float) -> float:
    """Steady-state ingest cycles per token with ``joins`` of the tokens joining a cluster
    (the run's mean for a run without a steady ``INGEST``)."""
    if shape["ingest_base"] is None:
        return shape["ingest_per_token"]
    return shape["ingest_base"] + shape["ingest_join"] * joins


def _shape(rep: dict, cfg) -> dict:
    recs = rep["records"]
    frames = [r for r in recs if r["kind"] == "frame"]
    cmds = [r for r in recs if r["kind"] in ("prefill", "decode")]
    pf = [r for r in cmds if r["kind"] == "prefill"]
    kept = cfg.resv.sink_tokens + cfg.resv.recent_tokens
    steady = [x for x in _ingests(recs) if _steady(x[0], x[1], kept)]
    late = [f for f, _, _ in steady] or frames
    last = max(cmds, key=lambda r: r["tokens"])
    aged = max(1, last["tokens"] - kept)
    tpc = aged / max(1, last["clusters"])
    last_pf = max(pf, key=lambda r: r["tokens"])
    last_pf_aged = last_pf["tokens"] - kept
    counters = [r for r in recs if r["kind"] == "counters"]
    nb = cfg.resv.head_dim // cfg.mac_lanes
    total = {k: sum(c[k] for c in counters) for k in ("cycles", "array_beats", "read_beats")}
    return {
        "group": max(r["group"] for r in pf),
        "tokens_per_frame": round(
            sum(f["tokens"] for f in frames) / len({(f["context"], f["frame"]) for f in frames})
        ),
        "ingest_per_token": sum(f["cycles"] for f in late) / sum(f["tokens"] for f in late),
        **_ingest_fit(steady),
        "tokens_per_cluster": tpc,
        # KV chunks in use per cluster: more than tpc / chunk_tokens, each list's tail chunk
        # part-full (a report from before they were recorded: that ratio, rounded up)
        "chunks_per_cluster": math.ceil(tpc / cfg.chunk_tokens)
        if last.get("chunks") is None
        else last["chunks"] / max(1, last["clusters"]),
        # what the run's largest-cache PREFILL retrieved, beside the table's assumption
        "retrieval_run": last_pf["fetched"] / max(1, last_pf_aged),
        "retrieval_run_cache": last_pf["tokens"],
        "tokens_per_burst": sum(r["fetched"] for r in cmds)
        / max(1, sum(r["bursts"] for r in cmds)),
        "array_util": total["array_beats"] / max(1, total["cycles"]),
        "bus_util": total["read_beats"] / max(1, total["cycles"]),
        "prefetched": sum(c.get("prefetched_rows", 0) for c in counters)
        / max(1, sum(c.get("tokens_fetched", 0) for c in counters) * 2 * nb),
    }


def _rope_steps(cfg) -> int:
    """The RoPE unit's compute cycles per vector (``head_dim / 2 / rope_pairs``)."""
    return cfg.resv.head_dim // 2 // cfg.rope_pairs


def _extras(cfg, target) -> dict:
    """What ``target`` adds per vector to a run of ``cfg``: RoPE compute cycles and MAC-tree
    levels (:func:`run`)."""
    return {
        "rope_extra": max(0, _rope_steps(target) - _rope_steps(cfg)),
        "latency_extra": max(0, mac_latency(target) - mac_latency(cfg)),
    }


def prefetch_overlap(rep: dict) -> dict | None:
    """The run's prefetcher (``PREFETCH_CTX``): its beats, busy cycles, those a command waited
    for, and ``hidden``, the share of its busy cycles behind other commands; None if it
    never moved."""
    counters = [r for r in rep["records"] if r["kind"] == "counters"]
    busy = sum(c.get("prefetch_busy", 0) for c in counters)
    if not busy:
        return None
    wait = sum(c.get("prefetch_wait", 0) for c in counters)
    beats = sum(c.get("prefetch_beats", 0) for c in counters)
    return {"beats": beats, "busy": busy, "wait": wait, "hidden": 1 - wait / busy}


def run(rep: dict, cfg, retrieval: float, target=None, overlap: dict | None = None) -> dict:
    """The model of ``rep`` (a run of ``cfg``), extrapolated for ``target`` (default ``cfg``):
    a run may use a narrower datapath with the same beats per vector, whose commands take
    the same cycles but for RoPE, ``rope_pairs`` pairs per cycle: the target's extra compute
    cycles per vector are added to every rotated vector, an upper bound (the rows of a
    ``PREFILL`` stream through the unit at ``max(h / rope_pairs + 3, beats)`` cycles each,
    and an ingested key's RoPE overlaps its V beats and the aging of the oldest token). Its
    MAC trees are shallower too (``hw.datapath.mac_tree.mac_latency``): an ingested token
    waits for its signature, so the target's extra tree levels are added to every ingested
    token (``latency_extra``; measured on the full-width paper core: 2 cycles a token, its
    first frame's ``INGEST`` 3335 cycles against the quarter width's 2943). The kept tokens'
    prefetch is reported at the overlap measured on ``rep`` (:func:`prefetch_overlap`), else
    ``overlap`` (another run's)."""
    target = target or cfg
    overlap = prefetch_overlap(rep) or overlap
    if target.resv.head_dim // target.mac_lanes != cfg.resv.head_dim // cfg.mac_lanes:
        raise ValueError(
            "the run's beats per vector (head_dim / mac_lanes) must equal the target's: "
            f"{cfg.resv.head_dim // cfg.mac_lanes} != {target.resv.head_dim // target.mac_lanes}"
        )
    cmds = [r for r in rep["records"] if r["kind"] in ("prefill", "decode")]
    if not any(r["kind"] == "prefill" for r in cmds):
        raise ValueError("the report has no PREFILL commands: rerun python -m sim.run")
    if not any(r["bursts"] for r in cmds):
        raise ValueError(
            "the report's commands fetched nothing from DRAM (no read bursts: the cache never "
            "outgrew the kept tokens): rerun python -m sim.run with more --frames (make bench: 4)"
        )
    coef, resid = fit(cmds, cfg)
    x = np.array([_features(r, cfg) for r in cmds], float)
    rank = int(np.linalg.matrix_rank(x))
    half = len(cmds) // 2
    c1, _ = fit(cmds[:half], cfg)
    hold = [
        abs(float(np.dot(c1, _features(r, cfg))) - r["cycles"]) / r["cycles"] for r in cmds[half:]
    ]
    shape = _shape(rep, cfg) | _extras(cfg, target)
    return {
        "source": rep["source"],
        "commands_fitted": len(cmds),
        "coefficients": dict(zip(FEATURES, map(float, coef), strict=True)),
        "fit_max_rel_residual": resid,
        # fewer independent columns than FEATURES: some costs are only known as a sum (e.g.
        # every PREFILL of the run had the same rows), split by least norm
        "fit_rank": rank,
        "holdout_max_rel_error": float(max(hold)),
        "holdout_mean_rel_error": float(np.mean(hold)),
        "largest_cache_run": max(r["tokens"] for r in cmds),
        "retrieval": retrieval,
        "hcu_batch": target.hcu_batch,
        "shape": shape,
        "budget": {str(f): budget(f) for f in PAPER_FPS},
        "goal_cycles": GOAL_CYCLES,
        "prefetch_overlap": overlap,
        "rows": [extrapolate(coef, target, shape, n, retrieval) for n in CACHES],
        "by_tile": [
            extrapolate(coef, target.replace(tile_tokens=t), shape, 5120, retrieval)
            | {"tile_tokens": t}
            for t in TILES
            if t <= target.resv.head_dim
        ],
        "by_batch": [
            extrapolate(coef, target.replace(hcu_batch=b), shape, 5120, retrieval)
            | {"hcu_batch": b}
            for b in BATCHES
        ],
    }


def check(s: dict, run_rep: dict, target_rep: dict, run_cfg, target) -> dict:
    """The model of :func:`run` (``s``, fitted to ``run_rep``, a run of ``run_cfg``) against
    another run (``target_rep``, of ``target``: the preset itself, e.g. the full-width paper
    core, or the fitted configuration over more frames): every ``PREFILL`` and ``QUERY``
    predicted from its own work figures, an ``INGEST`` of a frame the fitted run (of the
    same clip) has by that run's cycles for the same frame, context and block plus the RoPE
    and MAC-tree extras per token, and one of another frame that begins with the kept
    tokens full as :func:`extrapolate` predicts it (the fitted cycles per token in that
    steady state at the ``INGEST``'s own fraction of tokens joining a cluster, or the
    HCU's search of the table the frame leaves), and a ``SWITCH_CTX`` by
    its swap's bus beats (``swap_beats`` in its record: one beat per cycle on each channel,
    what :func:`extrapolate` assumes). ``beyond`` repeats the sums for the commands at
    caches larger than any the model was fitted on."""
    coef = np.array([s["coefficients"][f] for f in FEATURES])
    shape = s["shape"] | _extras(run_cfg, target)
    extra = shape["rope_extra"] + shape["latency_extra"]
    # the fitted run's INGEST cycles, block by block of each frame: for a run of the same clip
    ingest = _blocks(run_rep["records"]) if run_rep["source"] == target_rep["source"] else {}
    recs = target_rep["records"]
    blocks = {r["i"]: k for k, r in _blocks(recs).items()}
    afters = {r["i"]: (after, joins) for r, after, joins in _ingests(recs)}
    kept = target.resv.sink_tokens + target.resv.recent_tokens
    rows = []
    for r in recs:
        if r["kind"] in ("prefill", "decode"):
            pred = _predict(coef, _features(r, target), r.get("rows", 1), shape)
            cache = r["tokens"]
        elif r["kind"] == "switch" and "swap_beats" in r:
            # and the kept tokens' swap if the switch moves them itself (not prefetched)
            pred, cache = r["swap_beats"] + r.get("kept_beats", 0), r["tokens"]
        elif r["kind"] == "frame":
            after, joins = afters[r["i"]]
            if blocks[r["i"]] in ingest:
                pred = ingest[blocks[r["i"]]]["cycles"] + r["tokens"] * extra
            elif _steady(r, after, kept):
                a = _ingest_at(shape, joins / r["tokens"]) + extra
                pred = r["tokens"] * _ingest_per_token(target, a, after["clusters"])
            else:
                continue
            cache = after["tokens"] if after is not None else 0
        else:
            continue
        rows.append(
            {
                "i": r["i"],
                "kind": r["kind"],
                "cache": cache,
                "measured": r["cycles"],
                "predicted": pred,
            }
        )
    if not rows:
        raise ValueError(
            "the checked report has no INGEST, PREFILL, QUERY or SWITCH_CTX the model predicts"
        )
    fitted = s["largest_cache_run"]
    frames = _context_frames(recs, kept)
    last = max((f["frame"] for f in frames), default=None)
    return {
        "source": target_rep["source"],
        "commands": rows,
        "by_kind": _errors(rows),
        "beyond": _errors([x for x in rows if x["cache"] > fitted]),
        "last_frames": [f for f in frames if f["frame"] == last],
    }


def _context_frames(recs: list[dict], kept: int) -> list[dict]:
    """The run's context-frames as measured: a context's ``INGEST``s of a frame with the
    ``SWITCH_CTX`` into the context just before the first (if any) and the context's
    ``PREFILL``s among them (decode steps are not part of it); ``cache`` is the cache the
    last ``PREFILL`` saw, ``retrieval`` the fraction of its clustered tokens it fetched."""
    frames, current, switch = {}, {}, {}
    for r in recs:
        ctx = r.get("context")
        if r["kind"] == "switch":
            switch[ctx] = r["cycles"]
        elif r["kind"] == "frame":
            key = (ctx, r["frame"])
            f = frames.setdefault(
                key, {"context": ctx, "frame": r["frame"], "switch": 0, "ingest": 0, "prefill": 0}
            )
            f["switch"] += switch.pop(ctx, 0)
            f["ingest"] += r["cycles"]
            current[ctx] = f
        elif r["kind"] == "prefill" and ctx in current:
            f = current[ctx]
            f["prefill"] += r["cycles"]
            f["cache"] = r["tokens"]
            f["retrieval"] = r["fetched"] / max(1, r["tokens"] - kept)
    out = [f for f in frames.values() if "cache" in f]
    for f in out:
        f["cycles"] = f["switch"] + f["ingest"] + f["prefill"]
    return out


def _errors(rows: list[dict]) -> dict:
    """Per command kind: the measured and predicted cycles' sums and the errors."""
    kinds = {}
    for kind in ("frame", "prefill", "decode", "switch"):
        sel = [x for x in rows if x["kind"] == kind]
        if sel:
            measured = sum(x["measured"] for x in sel)
            predicted = sum(x["predicted"] for x in sel)
            kinds[kind] = {
                "commands": len(sel),
                "measured": measured,
                "predicted": predicted,
                "error": predicted / measured - 1,
                "max_abs_error": max(abs(x["predicted"] / x["measured"] - 1) for x in sel),
            }
    return kinds


def _prefetch_note(s: dict) -> str:
    five = next(r for r in s["rows"] if r["cache"] == 5120)
    o = s.get("prefetch_overlap")
    moved = f"{five['prefetch'] / 1e3:.1f} K cycles at a 5 K cache"
    if o is None:
        return f"{moved}; no run here measured its overlap"
    return (
        f"{moved}; on {o['source']} {100 * o['hidden']:.2f} % of its {o['busy']} busy "
        f"cycles ran behind other commands, {o['wait']} were waited for"
    )


def render(s: dict) -> str:
    c, sh = s["coefficients"], s["shape"]
    lines = [
        f"## Core cycles per context-frame — model fitted to a `{s['config']}` run on "
        f"{s['source']}",
        "",
        f"Fit: {s['commands_fitted']} PREFILL/QUERY commands of the RTL run (caches up to "
        f"{s['largest_cache_run']} tokens), largest residual "
        f"{100 * s['fit_max_rel_residual']:.1f} %; fitted on the first half, the second half "
        f"predicted within {100 * s['holdout_max_rel_error']:.1f} % (mean "
        f"{100 * s['holdout_mean_rel_error']:.1f} %).",
        f"Cycles per PREFILL (a QUERY: one row): {c['command']:.0f} + {c['rows']:.1f}/row + "
        f"{c['clusters']:.2f}/cluster + {c['bursts']:.2f}/burst + {c['engine']:.3f} x the "
        "engine's pace (the larger of the rows' passes over the tiles and the token stream). "
        "Ingest "
        + (
            f"{sh['ingest_base']:.1f} + {sh['ingest_join']:.1f} x the fraction of tokens that "
            f"join a cluster (its key sum read) cycles/token in the steady state, "
            f"{sh['ingest_per_token']:.1f} on the run"
            if sh["ingest_base"] is not None
            else f"{sh['ingest_per_token']:.1f} cycles/token"
        )
        + " (or the HCU's search of a larger table: "
        f"R + 2B + 1 cycles and R + (B - 1) tokens per batch of B = {s['hcu_batch']}). "
        f"{sh['tokens_per_frame']} tokens/frame, "
        f"GQA group {sh['group']}, {sh['tokens_per_cluster']:.2f} tokens and "
        f"{sh['chunks_per_cluster']:.2f} KV chunks per cluster, "
        f"{sh['tokens_per_burst']:.1f} tokens/burst; MAC array busy "
        f"{100 * sh['array_util']:.1f} %, "
        f"AXI read beats on {100 * sh['bus_util']:.1f} % of cycles; "
        f"{100 * sh['prefetched']:.1f} % of the fetched rows prefetched (in the buffer before "
        "the engine's turn).",
        f"Extrapolated to `{s['target']}` with {100 * s['retrieval']:.1f} % of the clustered "
        f"tokens retrieved (`--retrieval`; the run's last PREFILL, at a "
        f"{sh['retrieval_run_cache']}-token cache, retrieved "
        f"{100 * sh['retrieval_run']:.1f} %); RoPE adds at most {sh['rope_extra']} cycles per "
        f"rotated vector there, the deeper MAC trees {sh['latency_extra']} per ingested token.",
        "",
        "SWITCH_CTX: the context's tables stored to DRAM while the next context's load, every "
        "frame (`hw.core.contexts.swap_beats`: at their occupancy, each region the longer of "
        "its store and its load, one beat per cycle on each channel; the key sums stay in "
        "DRAM, and a selection streams the representative keys: in the per-cluster cost). "
        "The kept tokens' K and V move in the prefetcher's swap, behind the next context's "
        f"commands ({_prefetch_note(s)}); the column counts it in full, an upper bound: the "
        "commands it overlaps still wait for part of it (the README's prefetch A/B).",
        "",
        "| cache | clusters | fetched | PREFILLs / tiles | ingest | prefill | SWITCH_CTX "
        "| per context-frame | decode "
        "step: G QUERYs | one G-row PREFILL | / its bus bound | / budget @ 3.9 fps "
        "| / budget @ 8.3 fps |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['cache']} | {r['clusters']:.0f} | {r['fetched']:.0f} | "
            f"{r['prefills']} / {r['tiles']} | "
            f"{r['ingest'] / 1e3:.1f} K | {r['prefill'] / 1e3:.0f} K | "
            f"{r['switch'] / 1e3:.1f} K | "
            f"**{r['context_frame'] / 1e3:.0f} K** | {r['decode_step'] / 1e3:.1f} K | "
            f"{r['decode_step_grouped'] / 1e3:.1f} K | "
            f"{r['decode_step_grouped'] / max(1.0, r['decode_bus_bound']):.2f}x | "
            f"{r['ratio']['3.9']:.2f} | {r['ratio']['8.3']:.2f} |"
        )
    lines += [
        "",
        "The same model at a 5 K cache with other tile sizes (`tile_tokens`: fewer tiles, "
        "each row passes every tile; a prediction, not a run"
        + (
            f"; the run's commands determine only {s['fit_rank']} of the {len(FEATURES)} "
            "costs independently, so costs that never varied apart in the run (e.g. a "
            "PREFILL's fixed cost when every PREFILL had the same rows) stay lumped together"
            if s["fit_rank"] < len(FEATURES)
            else ""
        )
        + "):",
        "",
        "| tile_tokens | tiles per frame | per context-frame | / 150 K goal |",
        "|---:|---:|---:|---:|",
    ]
    for r in s["by_tile"]:
        lines.append(
            f"| {r['tile_tokens']} | {r['tiles']} | {r['context_frame'] / 1e3:.0f} K | "
            f"{r['context_frame'] / s['goal_cycles']:.2f}x |"
        )
    lines += [
        "",
        "With the aging in HCU batches (`hcu_batch`: one table search per batch, "
        "`python -m sim.bench_ingest`), at a 5 K cache, a prediction:",
        "",
        "| hcu_batch | ingest | per context-frame | / 150 K goal |",
        "|---:|---:|---:|---:|",
    ]
    for r in s["by_batch"]:
        lines.append(
            f"| {r['hcu_batch']} | {r['ingest'] / 1e3:.1f} K | {r['context_frame'] / 1e3:.0f} K | "
            f"{r['context_frame'] / s['goal_cycles']:.2f}x |"
        )
    lines += [
        "",
        f"The engine at `{s['target']}` (`tile_tokens` {s['tile_tokens']}, `mac_lanes` "
        f"{s['mac_lanes']}; its pace in the model, the largest PREFILL of a frame):",
        "",
        "| cache | tiles | rows' passes / token stream | array busy | bus busy | prefetched |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        a = r["engine"]
        lines.append(
            f"| {r['cache']} | {a['tiles']} | {a['passes'] / 1e3:.1f} K / "
            f"{a['stream'] / 1e3:.1f} K | {100 * a['array_util']:.0f} % | "
            f"{100 * a['bus_util']:.0f} % | {100 * a['prefetched']:.0f} % |"
        )
    if s.get("check"):
        k = s["check"]
        lines += [
            "",
            f"The model checked against a run of `{k['config']}` ({k['source']}; "
            "`--check`): each command's cycles as the model predicts them from its work "
            "figures, beside the run's (an `INGEST`: the fitted run's cycles for the same "
            "frame of the same clip, or the model's steady-state ingest at its own fraction "
            "of tokens joining a cluster and the table it leaves); "
            f'"beyond": the commands at caches above the fitted run\'s {s["largest_cache_run"]} '
            "tokens:",
            "",
            "| commands | count | measured | predicted | error of the sum | largest error |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        names = {
            "frame": "INGEST",
            "prefill": "PREFILL",
            "decode": "decode (QUERY)",
            "switch": "SWITCH_CTX (its swap's beats)",
        }
        for group, label in (("by_kind", ""), ("beyond", ", beyond")):
            for kind, v in k[group].items():
                lines.append(
                    f"| {names[kind]}{label} | {v['commands']} | {v['measured']} | "
                    f"{v['predicted']:.0f} | {100 * v['error']:+.1f} % | "
                    f"{100 * v['max_abs_error']:.1f} % |"
                )
        if k["last_frames"]:
            lines += [
                "",
                "Its last context-frames as measured (the `SWITCH_CTX` into the context, its "
                "`INGEST` and its `PREFILL`s; the goal: <= "
                f"{s['goal_cycles'] / 1e3:.0f} K cycles at a 5 K cache retrieving 32.7 %):",
                "",
                "| context | frame | cache | retrieved | SWITCH_CTX | ingest | prefill "
                "| per context-frame | / goal |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
        for f in k["last_frames"]:
            lines.append(
                f"| {f['context']} | {f['frame']} | {f['cache']} | "
                f"{100 * f['retrieval']:.1f} % | {f['switch']} | {f['ingest']} | "
                f"{f['prefill']} | **{f['cycles']}** | {f['cycles'] / s['goal_cycles']:.2f}x |"
            )
    b = s["budget"]
    lines += [
        "",
        f"Budget (paper: Llama-3-8B, 256 contexts, 8 cores at 800 MHz, 3.9-8.3 fps): "
        f"{b['3.9'] / 1e6:.1f} M / {b['8.3'] / 1e6:.1f} M core-cycles per context-frame for "
        f"everything (weight streaming included). Goal of issue 11: <= "
        f"{s['goal_cycles'] / 1e3:.0f} K cycles at a 5 K cache.",
        "",
    ]
    return "\n".join(lines)


def _plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["cache"] for r in s["rows"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, [r["context_frame"] for r in s["rows"]], "o-", label="per context-frame (model)")
    ax.plot(x, [r["switch"] for r in s["rows"]], "s--", label="of which SWITCH_CTX")
    for f, v in s["budget"].items():
        ax.axhline(v, ls="--", lw=1, label=f"paper budget @ {f} fps")
    ax.axhline(s["goal_cycles"], ls=":", color="k", label="issue-11 goal")
    ax.set(xscale="log", yscale="log", xlabel="cache tokens", ylabel="cycles per context-frame")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _name(config: str, settings: dict) -> str:
    return config + "".join(f" {k}={v}" for k, v in settings.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.bench_core", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="paper", help="preset of the run and the prediction")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="the run's settings (sim.run --set); the prediction is for the preset itself",
    )
    p.add_argument("--report", default="build/bench/sim_paper.json", help="sim.run report")
    p.add_argument("--retrieval", type=float, default=0.327, help="fraction retrieved")
    p.add_argument(
        "--check",
        default=None,
        metavar="REPORT",
        help="a sim.run report (of the preset itself, or with --check-set): the model's "
        "predictions of its commands beside their measured cycles",
    )
    p.add_argument(
        "--check-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="the --check run's settings (default: none, the preset itself); repeatable",
    )
    p.add_argument("-o", "--out", default="build/bench")
    args = p.parse_args(argv)
    if not 0 < args.retrieval <= 1:
        p.error(f"--retrieval must be in (0, 1], not {args.retrieval}")
    path = Path(args.report)
    if not path.is_file():
        p.error(
            f"--report {path} does not exist: run python -m sim.run --config paper --frames 8 "
            "--layers 1 --heads 1 -o build/bench first"
        )
    if args.check is not None and not Path(args.check).is_file():
        p.error(f"--check {args.check} does not exist: a python -m sim.run report")
    try:
        settings = parse_settings(args.set)
        run_cfg = apply_settings(preset(args.config), settings)
        rep = json.loads(path.read_text())
        checked = None if args.check is None else json.loads(Path(args.check).read_text())
        overlap = None if checked is None else prefetch_overlap(checked)
        if overlap is not None:
            overlap["source"] = f"the --check run ({checked['source']})"
        s = run(rep, run_cfg, args.retrieval, preset(args.config), overlap)
        if s["prefetch_overlap"] is not None and "source" not in s["prefetch_overlap"]:
            s["prefetch_overlap"]["source"] = f"the fitted run ({rep['source']})"
        if checked is not None:
            check_settings = parse_settings(args.check_set)
            check_cfg = apply_settings(preset(args.config), check_settings)
            s["check"] = check(s, rep, checked, run_cfg, check_cfg) | {
                "config": _name(args.config, check_settings)
            }
    except ValueError as exc:
        p.error(str(exc))
    s["config"] = _name(args.config, settings)
    s["target"] = args.config
    target = preset(args.config)
    s["tile_tokens"], s["mac_lanes"] = target.tile_tokens, target.mac_lanes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "core_bench.json").write_text(json.dumps(s, indent=2))
    md = render(s)
    (out / "core_bench.md").write_text(md)
    _plot(s, out / "core_bench.png")
    print(md)
    five = next(r for r in s["rows"] if r["cache"] == 5120)
    print(
        f"sim.bench_core: {five['context_frame'] / 1e3:.0f} K cycles per context-frame at a 5 K "
        f"cache ({five['context_frame'] / GOAL_CYCLES:.1f}x the 150 K goal, "
        f"{five['ratio']['3.9']:.2f}x the paper's 3.9 fps budget); decode step "
        f"{five['decode_step_grouped'] / max(1.0, five['decode_bus_bound']):.2f}x its bus "
        f"bound; {out / 'core_bench.md'}"
    )
    for f in s.get("check", {}).get("last_frames", []):
        print(
            f"sim.bench_core: measured, context {f['context']}'s last context-frame at a "
            f"{f['cache']}-token cache retrieving {100 * f['retrieval']:.1f} %: "
            f"{f['cycles'] / 1e3:.1f} K cycles ({f['cycles'] / GOAL_CYCLES:.2f}x the goal; "
            f"SWITCH_CTX {f['switch']}, INGEST {f['ingest']}, PREFILL {f['prefill']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
