"""Streaming ReSV KV cache: many layers and KV heads, frame ingest, prefill and decode queries.

Contract (shared/SPEC.md section 2):

- ``ingest(keys, values)`` appends one frame, keys pre-RoPE ``(L, Hkv, n, d)``. Positions
  advance by one per token. Keys are rotated (RoPE) for attention and scoring; the hashing
  space is ``cfg.hash_space``; with ``cfg.centre_keys`` a per-head BF16 bias (the mean
  hashing-space key of the first frame) is subtracted before hashing.
- Always-kept tokens (the first ``sink_tokens`` and the last ``recent_tokens``) are attended
  directly. A token is clustered (HCU order = arrival order) when it ages out of the recent
  window; sinks are never clustered.
- ``query(q, positions, kind=...)`` scores every cluster with ``q . rep_c / sqrt(d)`` (rep =
  mean post-RoPE key), selects with the bucketed (bit-exact) or exact WiCSum, takes the union
  over the GQA group (and, for frame prefill in ``union`` mode, over the block's tokens; in
  ``mean`` mode one selection from the block's mean query), and attends over always-kept
  tokens plus members of the selected clusters. Every query is logged in ``history``.
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

__all__ = ["IngestStats", "QueryResult", "Retrieval", "StreamingCache"]

QueryKind = Literal["decode", "prefill"]


@dataclass(frozen=True)
class IngestStats:
    """Work of one ``ingest`` summed over layers and KV heads."""

    tokens: int  #: tokens appended (per layer/head)
    clustered: int  #: tokens hashed and clustered (summed over layers/heads)
    joined: int
    created: int
    forced: int


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
        self.tables = [
            [
                ClusterTable(
                    threshold=cfg.threshold, max_clusters=cfg.max_clusters, count_max=cfg.count_max
                )
                for _ in range(kv_heads)
            ]
            for _ in range(layers)
        ]
        self._k = _Grow(lh, (d,), np.float32)  # post-RoPE keys
        self._v = _Grow(lh, (d,), np.float32)
        self._sig = _Grow(lh, (), np.uint64)
        self._assign = _Grow(lh, (), np.int64, fill=-1)
        self.keysum = np.zeros((*lh, cfg.max_clusters, d), np.float64)
        self.members = np.zeros((*lh, cfg.max_clusters), np.int64)  # unsaturated counts
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
        """(C, d) mean post-RoPE key of each cluster."""
        c = self.tables[layer][head].size
        return self.keysum[layer, head, :c] / np.maximum(self.members[layer, head, :c], 1)[:, None]

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
        self._v.append(values)
        self._sig.append(sig)
        self._assign.append(np.full(sig.shape, -1, np.int64))
        self.frame_offsets.append(self.n_tokens)
        return self._cluster_aged()

    def _cluster_aged(self) -> IngestStats:
        start = max(self._clustered, self.cfg.sink_tokens)
        end = self.n_tokens - self.cfg.recent_tokens
        counts = np.zeros(3, np.int64)
        if end > start:
            k, sig, assign = self._k.data, self._sig.data, self._assign.data
            for l in range(self.layers):
                for h in range(self.kv_heads):
                    res = self.tables[l][h].add(sig[l, h, start:end])
                    assign[l, h, start:end] = res.assign
                    np.add.at(self.keysum[l, h], res.assign, k[l, h, start:end])
                    np.add.at(self.members[l, h], res.assign, 1)
                    counts += np.bincount(res.event, minlength=3)
            self._clustered = end
        return IngestStats(
            tokens=self.n_tokens - self.frame_offsets[-2],
            clustered=int(counts.sum()),
            joined=int(counts[ClusterEvent.JOINED]),
            created=int(counts[ClusterEvent.CREATED]),
            forced=int(counts[ClusterEvent.FORCED]),
        )

    # ----------------------------------------------------------------------------- query

    def select(self, layer: int, head: int, q_post: np.ndarray) -> tuple[np.ndarray, int, int]:
        """Union of the WiCSum selections of the rows of ``q_post`` (r, d) in one context.

        Returns (cluster ids ascending, buckets scanned, clusters emitted) summed over rows.
        """
        table = self.tables[layer][head]
        if table.size == 0:
            return np.zeros(0, np.int64), 0, 0
        scores = q_post.astype(np.float64) @ self.representatives(layer, head).T
        scores /= math.sqrt(self.cfg.head_dim)
        counts = table.counts
        chosen = np.zeros(table.size, bool)
        scanned = emitted = 0
        for row in scores:
            if self.cfg.selection == "bucketed":
                r = wicsum_select_bucketed(quantize_scores(row, self.cfg), counts, self.cfg)
                chosen[r.selected] = True
                scanned += r.buckets_scanned
                emitted += r.clusters_emitted
            else:
                ids = wicsum_select(row, counts, coverage=self.cfg.coverage)
                chosen[ids] = True
                emitted += ids.size
        return np.flatnonzero(chosen), scanned, emitted

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
