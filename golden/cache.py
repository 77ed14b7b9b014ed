"""Streaming ReSV KV cache: many layers and KV heads, frame ingest, prefill and decode queries.

Contract (shared/SPEC.md section 2):

- ``ingest(keys, values)`` appends one frame, keys pre-RoPE ``(L, Hkv, n, d)``. Positions
  advance by one per token. Keys are rotated (RoPE) for attention and scoring; the hashing
  space is ``cfg.hash_space``; with ``cfg.centre_keys`` a per-head BF16 bias (the mean
  hashing-space key of the first frame) is subtracted before hashing.
- Always-kept tokens (the first ``sink_tokens`` and the last ``recent_tokens``) are attended
  directly. A token is clustered (HCU order = arrival order) when it ages out of the recent
  window; sinks are never clustered.
- ``query(q, positions, kind=...)`` scores every cluster (``scores``: ``q . rep_c / sqrt(d)``,
  plus ``|q|^2 v_c / (2d)`` with ``score_correction = "variance"``), selects with the bucketed
  (bit-exact) or exact WiCSum, takes the union over the GQA group (and, for frame prefill in
  ``union`` mode, over the block's tokens; in ``mean`` mode one selection from the block's
  mean query; in ``mass`` mode one exact WiCSum on the block's summed per-row cluster
  probabilities), and attends over always-kept tokens plus members of the selected clusters.
  Every query is logged in ``history``.

Representatives (``representatives``): ``mean`` is the mean post-RoPE member key (so ``q .
rep_c`` is the members' mean score); ``rope_aware`` is the mean pre-RoPE member key rotated
to the members' mean position (one rotation at query time, no cancellation between members
at different positions). With ``rep_format = "int8"`` the representative is stored as int8
with a per-cluster BF16 scale ``max|rep| / 127`` and scored in that form. ``v_c`` is
``(sum |k|^2 / n_c - |mean k|^2) / d`` over the post-RoPE member keys (one ``sum |k|^2``
accumulator per cluster). The ``page_fallback`` policy is ``golden.resv.ClusterTable``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .bf16 import bf16_round
from .config import ReSVConfig
from .resv import (
    ClusterEvent,
    ClusterTable,
    attention,
    quantize_scores,
    signatures,
    wicsum_select,
    wicsum_select_bucketed,
)
from .rope import rope

INT8_MAX = 127


def int8_round(rep: np.ndarray) -> np.ndarray:
    """Rows of ``rep`` (C, d) as int8 with a per-row BF16 scale ``max|row| / 127``, decoded:
    ``rint(row / scale)`` clipped to +-127, times the scale (float64)."""
    rep = np.asarray(rep, np.float64)
    scale = bf16_round(np.abs(rep).max(axis=1) / INT8_MAX).astype(np.float64)
    safe = np.where(scale > 0, scale, 1.0)[:, None]
    q = np.clip(np.rint(rep / safe), -INT8_MAX, INT8_MAX)
    return q * np.where(scale > 0, scale, 0.0)[:, None]


__all__ = [
    "IngestStats",
    "QueryResult",
    "Retrieval",
    "StreamingCache",
    "int8_round",
    "unit_mass",
    "wicsum_mass",
    "wicsum_union",
    "with_floor",
]

QueryKind = Literal["decode", "prefill"]


@dataclass(frozen=True)
class IngestStats:
    """Work of one ``ingest`` summed over layers and KV heads."""

    tokens: int  #: tokens appended (per layer/head)
    clustered: int  #: tokens hashed and clustered (summed over layers/heads)
    joined: int
    created: int
    forced: int
    paged: int = 0  #: joined their page's fallback cluster (``page_fallback``)


@dataclass(frozen=True)
class Retrieval:
    """What one query retrieved for one layer and KV head."""

    tokens: np.ndarray  #: retrieved token ids, ascending (always-kept + cluster members)
    clusters: np.ndarray  #: selected cluster ids, ascending (union over the selections)
    n_cache: int  #: tokens in the cache
    n_clusters: int  #: clusters in the table (all of them are scored)
    selections: int  #: WiCSum selections run (group heads x block tokens, or group heads)
    buckets_scanned: int  #: summed over selections (bucketed selection only)
    clusters_emitted: int  #: summed over selections


@dataclass(frozen=True)
class QueryResult:
    kind: str
    outputs: np.ndarray  #: (L, Hq, m, d) float64 attention outputs over the retrieved set
    retrieved: list[list[Retrieval]] = field(repr=False)  #: [layer][kv_head]


def wicsum_union(
    scores: np.ndarray, counts: np.ndarray, cfg: ReSVConfig, free: np.ndarray | None = None
) -> tuple[np.ndarray, int, int]:
    """Union over the rows of ``scores`` (r, C) of their WiCSum selections (``cfg.selection``,
    ``cfg.coverage``): (unit ids ascending, buckets scanned, units emitted) summed over rows.

    ``free`` (r, F): the rows' scores of the tokens attended anyway, used when
    ``cfg.coverage_scope == "attended"``.
    """
    chosen = np.zeros(scores.shape[1], bool)
    scanned = emitted = 0
    attended = cfg.coverage_scope == "attended" and free is not None
    for i, row in enumerate(scores):
        f = free[i] if attended else None
        if cfg.selection == "bucketed":
            fq = None if f is None else quantize_scores(f, cfg)
            r = wicsum_select_bucketed(quantize_scores(row, cfg), counts, cfg, free_q=fq)
            chosen[r.selected] = True
            scanned += r.buckets_scanned
            emitted += r.clusters_emitted
        else:
            ids = wicsum_select(row, counts, coverage=cfg.coverage, free_scores=f)
            chosen[ids] = True
            emitted += ids.size
    return np.flatnonzero(chosen), scanned, emitted


def wicsum_mass(
    scores: np.ndarray, counts: np.ndarray, coverage: float, free: np.ndarray | None = None
) -> np.ndarray:
    """Prefill ``mass`` mode: unit ids (ascending) taken by the exact WiCSum rule on
    ``W_c = sum_r p_rc``, ``p_rc`` the per-row normalised ``count_c exp(s_rc - max)``
    (descending W, ties to the lower id, shortest prefix reaching ``coverage * sum W``).

    With ``free`` (r, F) (scope ``attended``) each row is normalised over the units and its
    free tokens, and the free share ``sum_r F_r`` starts the running sum (target: ``coverage``
    times the number of rows).
    """
    has_free = free is not None and free.size > 0
    top = scores.max(axis=1, keepdims=True)
    if has_free:
        top = np.maximum(top, free.max(axis=1, keepdims=True))
    w = counts[None, :] * np.exp(scores - top)
    f = np.exp(free - top).sum(axis=1) if has_free else np.zeros(len(w))
    norm = w.sum(axis=1) + f
    mass = (w / norm[:, None]).sum(axis=0)
    free_share = float((f / norm).sum())
    order = np.argsort(-mass, kind="stable")
    cum = free_share + np.cumsum(mass[order])
    target = coverage * cum[-1]  # coverage x rows: every row is normalised to 1
    if free_share >= target:
        return np.zeros(0, np.int64)
    k = int(np.searchsorted(cum, target, side="left")) + 1
    return np.sort(order[: min(k, order.size)])


def _scatter_add(target: np.ndarray, index: np.ndarray, x: np.ndarray) -> None:
    """``target[index] += x`` with repeated indices summed (rows of ``x`` in order)."""
    order = np.argsort(index, kind="stable")
    idx = index[order]
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    target[idx[starts]] += np.add.reduceat(x[order], starts, axis=0)


def unit_mass(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``W_c = sum_r p_rc``: per row the WiCSum weights ``count_c exp(s_rc - max)`` normalised
    over the units, summed over the rows of ``scores`` (r, C)."""
    w = counts[None, :] * np.exp(scores - scores.max(axis=1, keepdims=True))
    return (w / w.sum(axis=1, keepdims=True)).sum(axis=0)


def with_floor(
    units: np.ndarray, scores: np.ndarray, counts: np.ndarray, fraction: float
) -> np.ndarray:
    """``units`` (ascending ids) extended, if they hold fewer than ``fraction`` of all the
    units' tokens, by the units ranked by ``W_c = sum_r p_rc`` (``wicsum_mass``'s weight:
    per-row normalised ``count exp(s - max)``, summed; ties to the lower id) until they do."""
    total = int(counts.sum())
    if fraction <= 0 or int(counts[units].sum()) >= fraction * total:
        return units
    order = np.argsort(-unit_mass(scores, counts), kind="stable")
    k = int(np.searchsorted(np.cumsum(counts[order]), fraction * total, side="left")) + 1
    return np.union1d(units, order[:k])


class _Grow:
    """An array that grows along axis 2 with amortised doubling."""

    def __init__(self, lead: tuple[int, int], tail: tuple[int, ...], dtype, fill=0):
        self._a = np.full((*lead, 64, *tail), fill, dtype)
        self.n = 0
        self._fill = fill

    def append(self, x: np.ndarray) -> None:
        need = self.n + x.shape[2]
        if need > self._a.shape[2]:
            cap = max(need, 2 * self._a.shape[2])
            a = np.full((*self._a.shape[:2], cap, *self._a.shape[3:]), self._fill, self._a.dtype)
            a[:, :, : self.n] = self._a[:, :, : self.n]
            self._a = a
        self._a[:, :, self.n : need] = x
        self.n = need

    @property
    def data(self) -> np.ndarray:
        return self._a[:, :, : self.n]


class StreamingCache:
    """ReSV state for ``layers`` x ``kv_heads`` contexts with ``q_per_kv`` query heads each."""

    def __init__(self, cfg: ReSVConfig, *, layers: int, kv_heads: int, q_per_kv: int = 1):
        for name, v in (("layers", layers), ("kv_heads", kv_heads), ("q_per_kv", q_per_kv)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.cfg = cfg
        self.layers, self.kv_heads, self.q_per_kv = layers, kv_heads, q_per_kv
        d, lh = cfg.head_dim, (layers, kv_heads)
        page = cfg.page_tokens if cfg.cluster_policy == "page_fallback" else None
        self.tables = [
            [
                ClusterTable(
                    threshold=cfg.threshold,
                    max_clusters=cfg.max_clusters,
                    count_max=cfg.count_max,
                    page_tokens=page,
                )
                for _ in range(kv_heads)
            ]
            for _ in range(layers)
        ]
        self._k = _Grow(lh, (d,), np.float32)  # post-RoPE keys
        self._kpre = _Grow(lh, (d,), np.float32)  # pre-RoPE keys
        self._v = _Grow(lh, (d,), np.float32)
        self._sig = _Grow(lh, (), np.uint64)
        self._assign = _Grow(lh, (), np.int64, fill=-1)
        self.keysum = np.zeros((*lh, cfg.max_clusters, d), np.float64)
        self.members = np.zeros((*lh, cfg.max_clusters), np.int64)  # unsaturated counts
        self.keysq = np.zeros((*lh, cfg.max_clusters), np.float64)  # sum |k_post|^2
        self.keysum_pre = np.zeros((*lh, cfg.max_clusters, d), np.float64)
        self.possum = np.zeros((*lh, cfg.max_clusters), np.float64)  # sum of positions
        self.bias: np.ndarray | None = None
        self.frame_offsets = [0]
        self._clustered = 0  # tokens before this index are clustered (or sinks)
        self.history: list[QueryResult] = []

    # ----------------------------------------------------------------------------- state

    @property
    def n_tokens(self) -> int:
        return self._k.n

    def keys(self, layer: int, head: int) -> np.ndarray:
        """Post-RoPE keys (n, d) of one context."""
        return self._k.data[layer, head]

    def values(self, layer: int, head: int) -> np.ndarray:
        return self._v.data[layer, head]

    def signatures(self, layer: int, head: int) -> np.ndarray:
        return self._sig.data[layer, head]

    def assignment(self, layer: int, head: int) -> np.ndarray:
        """Cluster of each token, -1 for tokens not clustered (sinks, recent window)."""
        return self._assign.data[layer, head]

    def representatives(self, layer: int, head: int) -> np.ndarray:
        """(C, d) representative key of each cluster, as scored (module docstring)."""
        c = self.tables[layer][head].size
        n = np.maximum(self.members[layer, head, :c], 1)
        if self.cfg.representative == "mean":
            rep = self.keysum[layer, head, :c] / n[:, None]
        else:
            mean_pre = self.keysum_pre[layer, head, :c] / n[:, None]
            pos = self.possum[layer, head, :c] / n
            rep = rope(mean_pre[None], pos, base=self.cfg.rope_base)[0].astype(np.float64)
        if self.cfg.rep_format == "int8":
            rep = int8_round(rep)
        return rep

    def variances(self, layer: int, head: int) -> np.ndarray:
        """(C,) mean per-dimension variance ``v_c`` of each cluster's post-RoPE member keys."""
        c = self.tables[layer][head].size
        n = np.maximum(self.members[layer, head, :c], 1)
        mean = self.keysum[layer, head, :c] / n[:, None]
        v = self.keysq[layer, head, :c] / n - np.sum(mean * mean, axis=1)
        return np.maximum(v, 0.0) / self.cfg.head_dim

    # ----------------------------------------------------------------------------- ingest

    def _check(self, name: str, x: np.ndarray, heads: int) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or x.shape[:2] != (self.layers, heads) or x.shape[3] != self.cfg.head_dim:
            raise ValueError(
                f"{name} must have shape ({self.layers}, {heads}, n, {self.cfg.head_dim}), "
                f"not {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} must be finite (found NaN or inf)")
        return x

    def ingest(self, keys: np.ndarray, values: np.ndarray) -> IngestStats:
        """Append one frame: pre-RoPE ``keys`` and ``values`` of shape (L, Hkv, n, d)."""
        keys = self._check("keys", keys, self.kv_heads)
        values = self._check("values", values, self.kv_heads)
        if values.shape != keys.shape:
            raise ValueError(f"values must have the shape of keys {keys.shape}, not {values.shape}")
        n0, n = self.n_tokens, keys.shape[2]
        k_post = rope(keys, np.arange(n0, n0 + n), base=self.cfg.rope_base)
        k_hash = k_post if self.cfg.hash_space == "post_rope" else keys
        if self.cfg.centre_keys:
            if self.bias is None:
                self.bias = bf16_round(k_hash.mean(axis=2, dtype=np.float64))
            k_hash = k_hash - self.bias[:, :, None, :]
        planes = self.cfg.planes
        sig = np.stack(
            [
                np.stack([signatures(k_hash[l, h], planes) for h in range(self.kv_heads)])
                for l in range(self.layers)
            ]
        )
        self._k.append(k_post)
        self._kpre.append(keys)
        self._v.append(values)
        self._sig.append(sig)
        self._assign.append(np.full(sig.shape, -1, np.int64))
        self.frame_offsets.append(self.n_tokens)
        return self._cluster_aged()

    def _cluster_aged(self) -> IngestStats:
        start = max(self._clustered, self.cfg.sink_tokens)
        end = self.n_tokens - self.cfg.recent_tokens
        counts = np.zeros(len(ClusterEvent), np.int64)
        if end > start:
            k, kpre, sig, assign = self._k.data, self._kpre.data, self._sig.data, self._assign.data
            pos = np.arange(start, end)
            for l in range(self.layers):
                for h in range(self.kv_heads):
                    res = self.tables[l][h].add(sig[l, h, start:end], pos)
                    a = res.assign
                    assign[l, h, start:end] = a
                    kk = k[l, h, start:end].astype(np.float64)
                    _scatter_add(self.keysum[l, h], a, kk)
                    _scatter_add(self.members[l, h], a, np.ones(a.size, np.int64))
                    _scatter_add(self.keysq[l, h], a, np.sum(kk * kk, axis=1))
                    _scatter_add(self.keysum_pre[l, h], a, kpre[l, h, start:end])
                    _scatter_add(self.possum[l, h], a, pos.astype(np.float64))
                    counts += np.bincount(res.event, minlength=len(ClusterEvent))
            self._clustered = end
        return IngestStats(
            tokens=self.n_tokens - self.frame_offsets[-2],
            clustered=int(counts.sum()),
            joined=int(counts[ClusterEvent.JOINED]),
            created=int(counts[ClusterEvent.CREATED]),
            forced=int(counts[ClusterEvent.FORCED]),
            paged=int(counts[ClusterEvent.PAGED]),
        )

    # ----------------------------------------------------------------------------- query

    def scores(self, layer: int, head: int, q_post: np.ndarray) -> np.ndarray:
        """(r, C) natural-log cluster scores of the rows of ``q_post`` (r, d) (module doc)."""
        q = np.asarray(q_post, np.float64)
        s = q @ self.representatives(layer, head).T / math.sqrt(self.cfg.head_dim)
        if self.cfg.score_correction == "variance":
            qq = np.sum(q * q, axis=1)[:, None]
            s += 0.5 * qq * self.variances(layer, head)[None, :] / self.cfg.head_dim
        return s

    def select(
        self, layer: int, head: int, q_post: np.ndarray, *, coverage: float | None = None
    ) -> tuple[np.ndarray, int, int]:
        """Union of the WiCSum selections of the rows of ``q_post`` (r, d) in one context.

        ``coverage`` overrides ``cfg.coverage``. Returns (cluster ids ascending, buckets
        scanned, clusters emitted) summed over rows.
        """
        table = self.tables[layer][head]
        if table.size == 0:
            return np.zeros(0, np.int64), 0, 0
        cfg = self.cfg if coverage is None else self.cfg.replace(coverage=coverage)
        free = self.free_scores(layer, head, q_post)
        scores = self.scores(layer, head, q_post)
        units, scanned, emitted = wicsum_union(scores, table.counts, cfg, free)
        return with_floor(units, scores, table.counts, cfg.min_fraction), scanned, emitted

    def free_scores(self, layer: int, head: int, q_post: np.ndarray) -> np.ndarray | None:
        """(r, F) scores ``q . k / sqrt(d)`` of the kept tokens (sinks, recent window) with
        ``coverage_scope = "attended"``; None otherwise."""
        if self.cfg.coverage_scope != "attended":
            return None
        kept = self.keys(layer, head)[self.assignment(layer, head) < 0].astype(np.float64)
        return np.asarray(q_post, np.float64) @ kept.T / math.sqrt(self.cfg.head_dim)

    def select_mass(
        self, layer: int, head: int, q_post: np.ndarray, *, coverage: float | None = None
    ) -> np.ndarray:
        """Prefill ``mass`` mode: clusters (ascending) selected by the exact WiCSum rule on
        ``W_c = sum_r p_rc``, ``p_rc`` the per-row normalised ``count_c exp(s_rc - max)``."""
        table = self.tables[layer][head]
        if table.size == 0:
            return np.zeros(0, np.int64)
        cov = self.cfg.coverage if coverage is None else coverage
        free = self.free_scores(layer, head, q_post)
        scores = self.scores(layer, head, q_post)
        units = wicsum_mass(scores, table.counts, cov, free)
        return with_floor(units, scores, table.counts, self.cfg.min_fraction)

    def query(
        self, q: np.ndarray, positions: np.ndarray, *, kind: QueryKind = "decode"
    ) -> QueryResult:
        """Answer queries ``q`` (L, Hq, m, d), pre-RoPE, at ``positions`` (m,)."""
        if kind not in ("decode", "prefill"):
            raise ValueError(f"kind must be 'decode' or 'prefill', not {kind!r}")
        if self.n_tokens == 0:
            raise ValueError("the cache is empty: ingest a frame before querying")
        q = self._check("q", q, self.kv_heads * self.q_per_kv)
        positions = np.asarray(positions)
        if positions.shape != (q.shape[2],):
            raise ValueError(f"positions must have shape ({q.shape[2]},), not {positions.shape}")
        q_post = rope(q, positions, base=self.cfg.rope_base)
        g = self.q_per_kv
        outputs = np.zeros(q.shape, np.float64)
        retrieved: list[list[Retrieval]] = []
        for l in range(self.layers):
            row: list[Retrieval] = []
            for h in range(self.kv_heads):
                group = q_post[l, h * g : (h + 1) * g]  # (g, m, d)
                if kind == "prefill" and self.cfg.prefill_mode == "mean":
                    sel_rows = group.mean(axis=1)
                else:
                    sel_rows = group.reshape(-1, group.shape[-1])
                if kind == "prefill" and self.cfg.prefill_mode == "mass":
                    clusters, scanned, emitted = self.select_mass(l, h, sel_rows), 0, 0
                    emitted = int(clusters.size)
                else:
                    clusters, scanned, emitted = self.select(l, h, sel_rows)
                assign = self.assignment(l, h)
                tokens = np.flatnonzero((assign < 0) | np.isin(assign, clusters))
                k, v = self.keys(l, h)[tokens], self.values(l, h)[tokens]
                outputs[l, h * g : (h + 1) * g] = attention(group, k, v)
                row.append(
                    Retrieval(
                        tokens=tokens,
                        clusters=clusters,
                        n_cache=self.n_tokens,
                        n_clusters=self.tables[l][h].size,
                        selections=sel_rows.shape[0],
                        buckets_scanned=scanned,
                        clusters_emitted=emitted,
                    )
                )
            retrieved.append(row)
        result = QueryResult(kind=kind, outputs=outputs, retrieved=retrieved)
        self.history.append(result)
        return result
