"""Stimuli and expected results for the DRE units, shared by the Amaranth-simulator tests,
the cocotb testbenches and the benchmark.

Expected results always come from the golden model (``golden.resv``, ``golden.topk``); this
module only arranges inputs and calls it. Stimuli are seeded (``numpy.random.default_rng``).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from golden.quickselect import quickselect
from golden.resv import (
    ClusterEvent,
    ClusterTable,
    emit_beats,
    quantize_scores,
    signatures,
    wicsum_select_bucketed,
)
from golden.synthetic import synthetic_keys, synthetic_signatures
from golden.topk import topk_select
from hw.config import HWConfig
from hw.dre.hcu import hcu_batch_cycles, hcu_result_latency, hcu_scan_rows
from hw.dre.wtu import wtu_ingest_lanes
from workloads import trace as trace_io

__all__ = [
    "SCORE_KINDS",
    "HCUBatch",
    "HCUExpected",
    "HCUStream",
    "HCUTiming",
    "ScoreRow",
    "beat_ids",
    "beat_tuple",
    "hcu_expected",
    "hcu_stream",
    "hcu_timing",
    "lane_beats",
    "quickselect_beats",
    "quickselect_expected",
    "score_row",
    "selected_beats",
    "topk_expected",
    "trace_path",
    "trace_workload",
    "video_like_workload",
    "workload_from_keys",
    "wtu_beats",
    "wtu_expected",
]


# ---------------------------------------------------------------------------------------------
# HCU


@dataclass(frozen=True)
class HCUStream:
    """Token signatures in arrival order; ``clear[t]`` starts a new context at token t."""

    sigs: np.ndarray  # (n,) uint64
    clear: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return int(self.sigs.size)


@dataclass(frozen=True)
class HCUExpected:
    """Per-token golden outputs and the table state after the stream."""

    cluster: np.ndarray
    distance: np.ndarray
    event: np.ndarray
    occupancy: int
    forced: int
    counts: np.ndarray


def hcu_stream(
    cfg: HWConfig,
    n: int,
    *,
    seed: int,
    redundancy: float = 0.85,
    sources: int | None = None,
    contexts: int = 1,
) -> HCUStream:
    """``n`` signatures with temporal redundancy from ``golden.synthetic``, split into
    ``contexts`` contexts (a clear at the first token of each; the first clear is implicit)."""
    r = cfg.resv
    sources = sources if sources is not None else max(2, r.max_clusters // 2)
    sigs = synthetic_signatures(
        n, hash_bits=r.hash_bits, redundancy=redundancy, sources=sources, seed=seed
    )
    clear = np.zeros(n, bool)
    if contexts > 1:
        rng = np.random.default_rng(seed + 1)
        clear[np.sort(rng.choice(np.arange(1, n), contexts - 1, replace=False))] = True
    return HCUStream(sigs=sigs, clear=clear)


def hcu_expected(
    cfg: HWConfig, stream: HCUStream, table: ClusterTable | None = None
) -> HCUExpected:
    """Golden clustering of ``stream`` (from an empty table unless ``table`` is given)."""
    r = cfg.resv
    if table is None:
        table = ClusterTable(
            threshold=r.threshold, max_clusters=r.max_clusters, count_max=r.count_max
        )
    cluster, distance, event = [], [], []
    starts = [0, *np.flatnonzero(stream.clear).tolist(), len(stream)]
    bounds = list(itertools.pairwise(starts))
    for lo, hi in bounds:
        if lo < len(stream) and stream.clear[lo]:
            table.clear()
        if hi > lo:
            res = table.add(stream.sigs[lo:hi])
            cluster += res.assign.tolist()
            distance += res.distance.tolist()
            event += res.event.tolist()
    return HCUExpected(
        cluster=np.array(cluster, np.int64),
        distance=np.array(distance, np.int64),
        event=np.array(event, np.int64),
        occupancy=table.size,
        forced=min(table.forced, (1 << cfg.token_id_bits) - 1),
        counts=table.counts,
    )


class HCUBatch(NamedTuple):
    """One HCU batch: its first token, its tokens, the table occupancy at its start, the
    rows it scans and the token-cluster pairs a sequential full search would compare (the
    occupancy each of its tokens sees, the clusters founded earlier in the batch included)."""

    first: int
    tokens: int
    occupancy: int
    rows: int
    compares: int


@dataclass(frozen=True)
class HCUTiming:
    """The HCU's handshakes with no stalls, from the batching rule of ``hw.dre.hcu``."""

    accepted: np.ndarray  # (n,) cycle of each token's acceptance, the first at 0
    done: np.ndarray  # (n,) cycle of each result's handshake
    batches: list[HCUBatch]

    @property
    def compares(self) -> int:
        return sum(b.compares for b in self.batches)


def hcu_timing(cfg: HWConfig, stream: HCUStream, exp: HCUExpected) -> HCUTiming:
    """Exact cycles of ``stream`` through the HCU with an always-valid source and an
    always-ready sink: batches of ``hcu_batch`` tokens, cut before every ``clear`` and at the
    end; a token's first distance-0 table cluster (the early exit) is its golden cluster
    when it joined an older cluster at distance 0 (ties go to the lowest index)."""
    n = len(stream)
    accepted, done = np.zeros(n, np.int64), np.zeros(n, np.int64)
    batches = []
    t, start, occ = 0, 0, 0
    while t < n:
        if stream.clear[t]:
            occ = 0
        k = 1
        while k < cfg.hcu_batch and t + k < n and not stream.clear[t + k]:
            k += 1
        zero = [
            int(exp.cluster[i])
            if exp.event[i] == ClusterEvent.JOINED and exp.distance[i] == 0 and exp.cluster[i] < occ
            else None
            for i in range(t, t + k)
        ]
        latency = hcu_result_latency(cfg, occ, zero)
        accepted[t : t + k] = start + np.arange(k)
        done[t : t + k] = accepted[t : t + k] + latency
        start += hcu_batch_cycles(cfg, occ, zero)
        founded = np.cumsum(exp.event[t : t + k] == ClusterEvent.CREATED)
        compares = int(k * occ + founded[:-1].sum())
        batches.append(HCUBatch(t, k, occ, hcu_scan_rows(cfg, occ, zero), compares))
        occ += int(founded[-1])
        t += k
    return HCUTiming(accepted=accepted, done=done, batches=batches)


# ---------------------------------------------------------------------------------------------
# Selectors (WTU and top-k)


@dataclass(frozen=True)
class ScoreRow:
    """One selector row: fixed-point scores and counts of clusters 0..C-1, coverage, k."""

    scores: np.ndarray  # (C,) int64, within score_bits
    counts: np.ndarray  # (C,) int64, within count_bits
    coverage_q: int
    k: int = 0


#: The row kinds of ``score_row``.
SCORE_KINDS = ("normal", "ties", "one_bucket", "extremes", "wide")


def score_row(cfg: HWConfig, n: int, *, seed: int, kind: str = "normal") -> ScoreRow:
    """A seeded row of ``n`` clusters. ``kind``:

    ``normal``  natural-log scores ~ N(0, 2.5²), counts 1..count_max skewed low;
    ``ties``    few distinct scores (many equal scores and equal buckets);
    ``one_bucket`` every score within one bucket width of the maximum;
    ``extremes`` scores at the saturation limits and counts at ``count_max`` or 0;
    ``wide``    scores spread over the whole score range (many out-of-range clusters).
    The coverage is random in 1..2**coverage_frac_bits (1.0 included), k random in 0..n+1.
    """
    r = cfg.resv
    rng = np.random.default_rng(seed)
    one = 1 << r.coverage_frac_bits
    cmax = r.count_max
    if kind == "normal":
        scores = quantize_scores(rng.normal(0.0, 2.5, n), r)
        counts = np.minimum(rng.geometric(0.25, n), cmax)
    elif kind == "ties":
        scores = rng.choice(np.array([-3, 0, 0, 5]) << r.bucket_shift, n)
        counts = rng.integers(1, min(cmax, 4) + 1, n)
    elif kind == "one_bucket":
        base = int(rng.integers(r.score_min, r.score_max - (1 << r.bucket_shift) + 2))
        scores = base + rng.integers(0, 1 << r.bucket_shift, n)
        counts = rng.integers(0, cmax + 1, n)
    elif kind == "extremes":
        scores = rng.choice(np.array([r.score_min, r.score_max, r.score_max - 1, 0]), n)
        counts = rng.choice(np.array([0, cmax, cmax, 1]), n)
    elif kind == "wide":
        scores = rng.integers(r.score_min, r.score_max + 1, n)
        counts = rng.integers(1, cmax + 1, n)
    else:
        raise ValueError(f"kind must be one of {', '.join(SCORE_KINDS)}, not {kind!r}")
    coverage_q = one if rng.random() < 0.2 else int(rng.integers(1, one + 1))
    k = int(rng.integers(0, n + 2))
    return ScoreRow(
        scores=np.asarray(scores, np.int64),
        counts=np.asarray(counts, np.int64),
        coverage_q=coverage_q,
        k=min(k, cfg.max_clusters),
    )


def wtu_expected(cfg: HWConfig, row: ScoreRow):
    """``golden.resv.wicsum_select_bucketed`` of the row at the WTU's ingest lanes
    (``hw.dre.wtu.wtu_ingest_lanes``: the emit order and ``emit_cycles``)."""
    return wicsum_select_bucketed(
        row.scores,
        row.counts,
        cfg.resv,
        coverage_q=row.coverage_q,
        lanes=wtu_ingest_lanes(cfg),
    )


def wtu_beats(cfg: HWConfig, row: ScoreRow, *, bad_id_at: int | None = None) -> list[dict]:
    """The row as beats of the WTU's ``clusters`` stream: one cluster per beat
    (``DRELayouts.cluster_score``) or, with ``wtu_ingest_lanes(cfg) = L > 1``, L per beat
    (``DRELayouts.cluster_lanes``, unused lanes of the short last beat zero). ``bad_id_at``
    (a cluster, or with lanes a beat index) gets a wrong id (or ``base``)."""
    return lane_beats(cfg, row, wtu_ingest_lanes(cfg), bad_id_at=bad_id_at)


def quickselect_beats(cfg: HWConfig, row: ScoreRow, *, bad_id_at: int | None = None) -> list[dict]:
    """The row as beats of the weighted quick-select's ``clusters`` stream: ``wtu_lanes``
    clusters per beat whatever the bucket mode (``hw.dre.WeightedQuickSelect.lanes``); as
    ``wtu_beats`` otherwise."""
    return lane_beats(cfg, row, cfg.wtu_lanes, bad_id_at=bad_id_at)


def lane_beats(
    cfg: HWConfig, row: ScoreRow, lanes: int, *, bad_id_at: int | None = None
) -> list[dict]:
    """The row as ``DRELayouts.cluster_score`` beats (``lanes = 1``) or ``cluster_lanes``
    beats of ``lanes`` clusters (``wtu_beats``)."""
    n = row.scores.size
    if lanes == 1:
        return [
            {
                "cluster": c if c != bad_id_at else (c + 1) % cfg.max_clusters,
                "score": int(s),
                "count": int(k),
                "last": int(c == n - 1),
            }
            for c, (s, k) in enumerate(zip(row.scores, row.counts, strict=True))
        ]
    beats = []
    for i, lo in enumerate(range(0, n, lanes)):
        hi = min(n, lo + lanes)
        pad = [0] * (lanes - (hi - lo))
        beats.append(
            {
                "base": lo if i != bad_id_at else (lo + lanes) % cfg.max_clusters,
                "n": hi - lo,
                "score": [int(s) for s in row.scores[lo:hi]] + pad,
                "count": [int(k) for k in row.counts[lo:hi]] + pad,
                "last": int(hi == n),
            }
        )
    return beats


def quickselect_expected(cfg: HWConfig, row: ScoreRow):
    """``golden.quickselect.quickselect`` of the row at the config's ``wtu_lanes``."""
    return quickselect(
        row.scores,
        row.counts,
        cfg.resv,
        lanes=cfg.wtu_lanes,
        id_bits=cfg.cluster_id_bits,
        coverage_q=row.coverage_q,
    )


def selected_beats(ids, lanes: int) -> list[tuple[int, ...]]:
    """The expected beats of a selector's ``selected`` stream for ``ids`` in emit order:
    ``(cluster, last)`` per id at ``lanes = 1`` (``DRELayouts.selected``), else ``(base, mask,
    last)`` per row of ``lanes`` ids holding a selected one (``DRELayouts.selected_lanes``,
    ``golden.resv.emit_beats``; ``ids`` ascending)."""
    ids = [int(c) for c in ids]
    if lanes == 1:
        return [(c, int(i == len(ids) - 1)) for i, c in enumerate(ids)]
    beats = emit_beats(np.array(ids, np.int64), lanes)
    return [(b, mask, int(i == len(beats) - 1)) for i, (b, mask) in enumerate(beats)]


def beat_tuple(p, lanes: int) -> tuple[int, ...]:
    """A ``selected`` beat (``DRELayouts.selected`` or ``selected_lanes`` payload) as the
    tuple ``selected_beats`` gives."""
    if lanes == 1:
        return (int(p.cluster), int(p.last))
    return (int(p.base), int(p.mask), int(p.last))


def beat_ids(p, lanes: int) -> list[int]:
    """The cluster ids a ``selected`` beat carries (ascending)."""
    if lanes == 1:
        return [int(p.cluster)]
    return [int(p.base) + j for j in range(lanes) if int(p.mask) >> j & 1]


def topk_expected(row: ScoreRow) -> np.ndarray:
    """``golden.topk.topk_select`` of the row."""
    return topk_select(row.scores, row.k)


# ---------------------------------------------------------------------------------------------
# Recorded traces (TRACE=path.npz)


def trace_path() -> Path | None:
    """The trace named by the ``TRACE`` environment variable, if any (``DRE_TRACE``, the
    absolute path ``sim.kit.runner`` hands to the simulator, takes precedence)."""
    value = (os.environ.get("DRE_TRACE") or os.environ.get("TRACE", "")).strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"TRACE={value!r} does not name a file")
    return path


def _load_trace(path: Path) -> dict[str, np.ndarray]:
    """Arrays of a trace, through ``workloads.trace.load``: a malformed file is an error that
    names the file and the field, never silently read some other way."""
    t = trace_io.load(path)
    return {
        "keys": t.keys,
        "queries": t.queries,
        "decode_queries": t.decode_queries,
        "frame_offsets": t.frame_offsets,
    }


def workload_from_keys(
    cfg: HWConfig,
    keys: np.ndarray,
    queries: np.ndarray | None,
    *,
    max_rows: int,
    centre_tokens: int | None = None,
) -> tuple[HCUStream, list[ScoreRow]]:
    """Keys (n, d) → golden signatures → HCU stream; the golden clustering's
    representative keys scored against ``queries`` (q, d) → one WTU/top-k row per query
    (the config's coverage, ``k = topk_k``).

    Keys are centred on the mean of their first ``centre_tokens`` (the first frame) when
    the config centres keys. The hyperplanes are the config's when ``d == head_dim``,
    otherwise ``(d, hash_bits)`` planes drawn the same way from ``plane_seed``.
    """
    r = cfg.resv
    keys = np.asarray(keys, np.float32)
    if keys.ndim != 2 or keys.shape[0] < 1:
        raise ValueError(f"keys must be a non-empty (n, d) array, not shape {keys.shape}")
    d = keys.shape[1]
    if d == r.head_dim:
        planes = r.planes
    else:
        rng = np.random.default_rng(r.plane_seed)
        planes = rng.standard_normal((d, r.hash_bits)).astype(np.float32)
    hashed = keys - keys[: centre_tokens or keys.shape[0]].mean(axis=0) if r.centre_keys else keys
    sigs = signatures(hashed, planes)
    stream = HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool))
    rows: list[ScoreRow] = []
    if queries is not None and max_rows > 0:
        table = ClusterTable(
            threshold=r.threshold, max_clusters=r.max_clusters, count_max=r.count_max
        )
        res = table.add(sigs)
        keysum = np.zeros((res.counts.size, d))
        np.add.at(keysum, res.assign, keys.astype(np.float64))
        rep = keysum / np.maximum(res.counts, 1)[:, None]
        for q in np.asarray(queries, np.float64)[:max_rows]:
            scores = quantize_scores(rep @ q / np.sqrt(d), r)
            rows.append(
                ScoreRow(scores=scores, counts=res.counts, coverage_q=r.coverage_q, k=cfg.topk_k)
            )
    return stream, rows


def video_like_workload(
    cfg: HWConfig, *, frames: int, tokens_per_frame: int, n_queries: int, seed: int
) -> tuple[HCUStream, list[ScoreRow]]:
    """Synthetic stand-in for a real-video trace: ``golden.synthetic.synthetic_keys`` with
    strong temporal redundancy and a shared offset (un-centred features), queries close to
    random keys (peaked attention)."""
    keys, _ = synthetic_keys(
        frames=frames,
        tokens_per_frame=tokens_per_frame,
        head_dim=cfg.resv.head_dim,
        redundancy=0.9,
        offset=0.5,
        seed=seed,
    )
    keys = keys[0, 0]
    rng = np.random.default_rng(seed + 7)
    picks = rng.integers(0, keys.shape[0], n_queries)
    queries = 3.0 * keys[picks] + rng.standard_normal((n_queries, keys.shape[1]))
    return workload_from_keys(cfg, keys, queries, max_rows=n_queries)


def trace_workload(
    cfg: HWConfig, path: Path, *, max_tokens: int, max_rows: int
) -> tuple[HCUStream, list[ScoreRow]]:
    """A recorded trace (``TRACE=path.npz``, ``workloads.trace`` schema) through
    ``workload_from_keys``: the pre-RoPE keys of layer 0 / KV head 0 (first ``max_tokens``),
    centred on the first frame; queries of query head 0: the decode queries first, then
    prefill queries of evenly spaced tokens."""
    data = _load_trace(path)
    if "keys" not in data:
        raise ValueError(f"trace {path} must hold a 'keys' array, found {sorted(data)}")
    keys = np.asarray(data["keys"]).reshape(-1, *data["keys"].shape[-2:])[0][:max_tokens]
    offsets = data.get("frame_offsets")
    first = int(offsets[1]) if offsets is not None and len(offsets) > 1 else None
    queries = []
    for name in ("decode_queries", "queries"):
        if name in data and data[name].size:
            q = np.asarray(data[name]).reshape(-1, *data[name].shape[-2:])[0]
            if name == "queries":
                q = q[: keys.shape[0]]
                q = q[np.linspace(0, q.shape[0] - 1, min(max_rows, q.shape[0])).astype(int)]
            queries.append(q)
    q_all = np.concatenate(queries) if queries else None
    return workload_from_keys(cfg, keys, q_all, max_rows=max_rows, centre_tokens=first)


def env_workload(
    cfg: HWConfig, *, rows: int, seed: int, log=None
) -> tuple[HCUStream, list[ScoreRow]]:
    """The workload of a regression: the ``TRACE`` file's when given, else video-like
    synthetic data from ``seed``; ``rows`` score rows (0: the HCU stream only)."""
    path = trace_path()
    if path is None:
        return video_like_workload(
            cfg,
            frames=6,
            tokens_per_frame=2 * cfg.max_clusters,
            n_queries=rows,
            seed=seed,
        )
    stream, out = trace_workload(cfg, path, max_tokens=8 * cfg.max_clusters, max_rows=rows)
    if rows and not out:
        raise ValueError(f"trace {path} has no queries to score clusters with")
    if log is not None:
        log.info("workload from trace %s: %d tokens, %d rows", path, len(stream), len(out))
    return stream, out
