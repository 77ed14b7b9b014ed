"""Retrieval methods compared by the bytes-to-quality benchmark (README "Algorithm benchmark").

At one point of a stream and for one (layer, KV head) context, a method decides which *old*
tokens — neither the first ``sink_tokens`` nor the last ``recent_tokens`` (nor, in frame
prefill, the frame's own tokens), which every method attends for free — the query rows
attend to. It does so for every value of its budget parameter at once and reports the
metadata bytes it read to decide. ``golden.evaluate`` turns that into error-vs-bytes curves.

Methods and their budget rules (each labelled so in every report):

=================  ===========  ================================================================
method             parameter    rule
=================  ===========  ================================================================
``resv``           coverage     ReSV (``golden.cache.StreamingCache``, any ``ReSVConfig``): hash
                                clusters scored by their representative, WiCSum selection;
                                reads the whole cluster table (``table_bytes_per_cluster``)
``oracle``         recall       adaptive oracle: per query, the fewest old tokens of highest
                                true attention probability (summed over the rows) that bring
                                the attended mass to ``recall`` of the total; reads nothing
``topk``           fraction     exact top-k: the ``fraction`` of old tokens of highest summed
                                probability; reads every old key to score them
``quest``          fraction     Quest-like: pages of ``page_tokens`` arrival-order tokens,
                                ranked by the upper bound ``sum_i max(q_i min_i, q_i max_i)``
                                from per-page min/max keys; pages taken until ``fraction``
``pages``          coverage     the same pages with a mean-key representative and a count,
                                scored and selected by ReSV's own WiCSum: the ablation that
                                tells whether hash clustering earns its table
``kmeans``         fraction     ClusterKV-like: spherical k-means (cosine) over the post-RoPE
                                keys, in chunks of ``KMEANS_CHUNK`` aged tokens at
                                ``page_tokens`` tokens per cluster (the incomplete last chunk is
                                re-clustered as it grows); centroids scored; clusters taken
                                until ``fraction``
``rekv``           fraction     ReKV-like frame blocks: one block per stream segment, scored by
                                its mean key, whole blocks filled greedily into ``fraction``
``window``         fraction     sliding window: the most recent ``fraction`` of the old tokens
=================  ===========  ================================================================

Unit-based methods rank units by the summed (over rows) softmax of their scores weighted by
their token counts, the WiCSum weight; ``topk`` and ``oracle`` rank tokens by their summed
true probability. "Until ``fraction``": units in rank order until they hold at least
``fraction`` of the old tokens (``rekv`` skips blocks that would overflow instead).
Bytes: every fetched old token costs its K and V in BF16 (``4 d``); ``topk`` also reads the
keys of the tokens it does not fetch (``2 d`` each).
"""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .cache import StreamingCache, unit_mass, wicsum_mass, wicsum_union, with_floor
from .config import ReSVConfig

__all__ = [
    "KMEANS_CHUNK",
    "METHODS",
    "Context",
    "KMeans",
    "Method",
    "Oracle",
    "Pages",
    "Quest",
    "ReKV",
    "ReSV",
    "Rows",
    "TopK",
    "Window",
    "spherical_kmeans",
]

BF16 = 2
#: Aged tokens clustered together by the k-means baseline.
KMEANS_CHUNK = 256
COVERAGES = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9998, 0.9999, 1.0)
FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
RECALLS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Context:
    """One (layer, KV head) context at one point of the stream: its keys and values so far
    (views of the trace) and the old-token range ``[lo, hi)``."""

    layer: int
    head: int
    keys_post: np.ndarray  #: (ctx, d) post-RoPE keys
    keys_pre: np.ndarray  #: (ctx, d) pre-RoPE keys
    values: np.ndarray  #: (ctx, d)
    lo: int
    hi: int
    segments: np.ndarray  #: stream segment offsets (for frame blocks)

    @property
    def n_old(self) -> int:
        return self.hi - self.lo

    @property
    def old_bytes(self) -> int:
        """Bytes of the old tokens' K and V in BF16."""
        return self.n_old * 2 * self.keys_post.shape[1] * BF16

    def moved(self, sels: Sequence[np.ndarray], meta) -> tuple[np.ndarray, np.ndarray]:
        """Bytes a method moved for each selection of ``sels`` — K and V of every fetched old
        token plus its metadata ``meta`` (one figure, or one per selection) — and the metadata
        alone, both as fractions of ``old_bytes``."""
        meta = np.broadcast_to(np.asarray(meta, np.float64), (len(sels),))
        fetched = np.array([s.size for s in sels], np.float64)
        kv = 2 * self.keys_post.shape[1] * BF16
        return (fetched * kv + meta) / self.old_bytes, meta / self.old_bytes


@dataclass(frozen=True)
class Rows:
    """The query rows of one context: ``heads`` query heads x ``tokens`` tokens (head-major).

    ``probs`` are the true attention probabilities (r, ctx) under full attention (causal for
    prefill rows): only the oracles read them.
    """

    kind: str  #: "decode" or "prefill"
    post: np.ndarray  #: (r, d) post-RoPE rows, float64
    heads: int
    tokens: int
    probs: np.ndarray


class Method(abc.ABC):
    """A retrieval method with its budget parameter (module docstring)."""

    name: str
    label: str
    param: str
    grid: tuple[float, ...]

    def __init__(
        self,
        cfg: ReSVConfig,
        *,
        grid: Sequence[float] | None = None,
        name: str | None = None,
        label: str | None = None,
    ):
        self.cfg = cfg
        if grid is not None:
            self.grid = tuple(float(g) for g in grid)
        if name is not None:
            self.name = name
        if label is not None:
            self.label = label

    def advance(self, stream, n: int) -> None:  # noqa: B027 - most methods keep no state
        """The stream now holds ``n`` tokens (called in order); stateful methods catch up."""

    @abc.abstractmethod
    def select(
        self, ctx: Context, rows: Rows, params: Sequence[float]
    ) -> tuple[list[np.ndarray], int]:
        """Per parameter value, the selected old token ids (ascending, in ``[lo, hi)``); and
        the metadata bytes read (independent of the parameter)."""

    # helpers --------------------------------------------------------------------------------

    def _rows_for_units(self, rows: Rows) -> np.ndarray:
        """The rows a unit scorer sees: the block's per-head mean in ``mean`` prefill mode."""
        if rows.kind == "prefill" and self.cfg.prefill_mode == "mean":
            return rows.post.reshape(rows.heads, rows.tokens, -1).mean(axis=1)
        return rows.post


def _take_until(order: np.ndarray, sizes: np.ndarray, budget: float) -> np.ndarray:
    """Units of ``order`` in rank order until their sizes sum to at least ``budget``."""
    if budget <= 0:
        return order[:0]
    cum = np.cumsum(sizes[order])
    k = int(np.searchsorted(cum, budget, side="left")) + 1
    return order[: min(k, order.size)]


def _tokens_of(units: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    if units.size == 0:
        return np.zeros(0, np.int64)
    return np.concatenate([np.arange(starts[u], ends[u]) for u in np.sort(units)])


def _pages(ctx: Context, page: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrival-order pages of the old range: page ``i`` starts at ``lo + i * page``."""
    starts = np.arange(ctx.lo, ctx.hi, page)
    return starts, np.minimum(starts + page, ctx.hi)


def _page_reduce(x: np.ndarray, ctx: Context, page: int, op) -> np.ndarray:
    starts, _ = _pages(ctx, page)
    return op.reduceat(x[ctx.lo : ctx.hi], starts - ctx.lo, axis=0)


def _free_scores(cfg: ReSVConfig, ctx: Context, q: np.ndarray) -> np.ndarray | None:
    """Scores of the free tokens (everything visible but the old range) for the rows ``q``
    when the WiCSum coverage covers all the attention (``coverage_scope = "attended"``)."""
    if cfg.coverage_scope != "attended":
        return None
    k = ctx.keys_post
    free = np.concatenate([k[: ctx.lo], k[ctx.hi :]]).astype(np.float64)
    return q @ free.T / math.sqrt(k.shape[1])


@functools.lru_cache(maxsize=256)
def _with_coverage(cfg: ReSVConfig, coverage: float) -> ReSVConfig:
    """``cfg`` at another WiCSum coverage (memoised: a benchmark asks for the same few
    thousands of times, and ``replace`` re-validates the whole configuration)."""
    return cfg.replace(coverage=coverage)


def _select_units(cfg, rows, scores, counts, free, params) -> list[np.ndarray]:
    """ReSV's WiCSum over units (clusters or pages) for every coverage in ``params``, with
    the ``min_fraction`` floor."""
    out = []
    for p in params:
        if rows.kind == "prefill" and cfg.prefill_mode == "mass":
            units = wicsum_mass(scores, counts, p, free)
        else:
            units = wicsum_union(scores, counts, _with_coverage(cfg, p), free)[0]
        out.append(with_floor(units, scores, counts, cfg.min_fraction))
    return out


class ReSV(Method):
    """ReSV through ``golden.cache.StreamingCache`` (all layers and KV heads of the stream)."""

    name, param, grid = "resv", "coverage", COVERAGES

    def __init__(self, cfg: ReSVConfig, *, grid=None, name: str = "resv", label: str = ""):
        label = label or f"ReSV (WiCSum coverage; T={cfg.threshold}, {cfg.cluster_policy})"
        super().__init__(cfg, grid=grid, name=name, label=label)
        self.cache: StreamingCache | None = None

    def advance(self, stream, n: int) -> None:
        # The first ingest covers the first frame (the centring bias is its mean key).
        first = stream.first_frame_end
        if self.cache is None:
            if n < first:
                return
            self.cache = StreamingCache(
                self.cfg, layers=stream.layers, kv_heads=stream.kv_heads, q_per_kv=stream.q_per_kv
            )
        have = self.cache.n_tokens
        if n > have:
            self.cache.ingest(stream.keys[:, :, have:n], stream.values[:, :, have:n])

    def select(self, ctx, rows, params):
        cache = self.cache
        empty = [np.zeros(0, np.int64) for _ in params]
        if cache is None or ctx.n_old <= 0:
            return empty, 0
        if cache.n_tokens - self.cfg.recent_tokens < ctx.hi:
            raise ValueError(
                f"the ReSV state holds {cache.n_tokens} tokens, so its old range ends at "
                f"{cache.n_tokens - self.cfg.recent_tokens}, before the context's {ctx.hi}"
            )
        table = cache.tables[ctx.layer][ctx.head]
        if table.size == 0:
            return empty, 0
        assign = cache.assignment(ctx.layer, ctx.head)[: ctx.hi]
        q = self._rows_for_units(rows)
        units = _select_units(
            self.cfg,
            rows,
            cache.scores(ctx.layer, ctx.head, q),
            table.counts,
            _free_scores(self.cfg, ctx, q),
            params,
        )
        out = [np.flatnonzero(np.isin(assign, u)) for u in units]
        return out, table.size * self.cfg.table_bytes_per_cluster


class Oracle(Method):
    name, param, grid = "oracle", "recall", RECALLS
    label = "adaptive oracle (target recall, reads nothing)"

    def select(self, ctx, rows, params):
        mass = rows.probs.sum(axis=0)
        total = mass.sum()
        old = mass[ctx.lo : ctx.hi]
        free = total - old.sum()
        order = np.argsort(-old, kind="stable")
        cum = free + np.cumsum(old[order])
        out = []
        for r in params:
            k = int(np.searchsorted(cum, r * total, side="left")) + 1 if free < r * total else 0
            out.append(np.sort(order[: min(k, order.size)]) + ctx.lo)
        return out, 0


class TopK(Method):
    name, param, grid = "topk", "fraction", FRACTIONS
    label = "exact top-k (fixed fraction, reads every old key)"

    def select(self, ctx, rows, params):
        old = rows.probs[:, ctx.lo : ctx.hi].sum(axis=0)
        order = np.argsort(-old, kind="stable")
        out = [np.sort(order[: math.ceil(f * ctx.n_old)]) + ctx.lo for f in params]
        d = ctx.keys_post.shape[1]
        # Every old key is read to score; the fetched tokens' keys are not read twice.
        return out, [ctx.n_old * d * BF16 - s.size * d * BF16 for s in out]


class Quest(Method):
    name, param, grid = "quest", "fraction", FRACTIONS

    def __init__(self, cfg, **kw):
        kw.setdefault(
            "label", f"Quest-like {cfg.page_tokens}-token pages, min/max bounds (fraction)"
        )
        super().__init__(cfg, **kw)

    def select(self, ctx, rows, params):
        page = self.cfg.page_tokens
        starts, ends = _pages(ctx, page)
        k = ctx.keys_post.astype(np.float64)
        lo_k, hi_k = _page_reduce(k, ctx, page, np.minimum), _page_reduce(k, ctx, page, np.maximum)
        q = self._rows_for_units(rows)
        bound = (np.maximum(q[:, None, :] * lo_k[None], q[:, None, :] * hi_k[None])).sum(-1)
        sizes = ends - starts
        rank = np.argsort(-unit_mass(bound / math.sqrt(k.shape[1]), sizes), kind="stable")
        out = [_tokens_of(_take_until(rank, sizes, f * ctx.n_old), starts, ends) for f in params]
        return out, starts.size * 2 * k.shape[1] * BF16


class Pages(Method):
    name, param, grid = "pages", "coverage", COVERAGES

    def __init__(self, cfg, **kw):
        kw.setdefault("label", f"{cfg.page_tokens}-token pages + ReSV's WiCSum (coverage)")
        super().__init__(cfg, **kw)

    def select(self, ctx, rows, params):
        page = self.cfg.page_tokens
        starts, ends = _pages(ctx, page)
        sizes = ends - starts
        d = ctx.keys_post.shape[1]
        rep = _page_reduce(ctx.keys_post.astype(np.float64), ctx, page, np.add) / sizes[:, None]
        q = self._rows_for_units(rows)
        scores = q @ rep.T / math.sqrt(d)
        units = _select_units(self.cfg, rows, scores, sizes, _free_scores(self.cfg, ctx, q), params)
        out = [_tokens_of(u, starts, ends) for u in units]
        return out, starts.size * (2 * d + math.ceil(self.cfg.count_bits / 8))


def spherical_kmeans(x: np.ndarray, k: int, *, iterations: int = 8) -> np.ndarray:
    """Cluster ids (n,) of the rows of ``x`` by k-means on the unit sphere (cosine).

    Deterministic: the initial centres are ``k`` evenly spaced rows; an emptied cluster keeps
    its previous centre.
    """
    n = x.shape[0]
    k = max(1, min(k, n))
    u = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    centres = u[np.linspace(0, n - 1, k).astype(int)]
    assign = np.zeros(n, np.int64)
    for _ in range(iterations):
        assign = np.argmax(u @ centres.T, axis=1)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, u)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centres = np.where(norms > 0, sums / np.maximum(norms, 1e-30), centres)
    return assign


class KMeans(Method):
    name, param, grid = "kmeans", "fraction", FRACTIONS

    def __init__(self, cfg, **kw):
        kw.setdefault(
            "label", f"ClusterKV-like k-means ({cfg.page_tokens} tokens/cluster, fraction)"
        )
        super().__init__(cfg, **kw)
        self._chunks: dict[tuple[int, int, int, int], np.ndarray] = {}

    def _assign(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """(cluster id per old token, number of clusters), chunk by chunk."""
        ids, base = [], 0
        for a in range(ctx.lo, ctx.hi, KMEANS_CHUNK):
            b = min(a + KMEANS_CHUNK, ctx.hi)
            key = (ctx.layer, ctx.head, a, b)
            if key not in self._chunks:
                if b - a < KMEANS_CHUNK:  # only the latest partial chunk of each context
                    self._chunks = {
                        k: v for k, v in self._chunks.items() if k[:3] != key[:3] or k[3] != b
                    }
                k = math.ceil((b - a) / self.cfg.page_tokens)
                self._chunks[key] = spherical_kmeans(ctx.keys_post[a:b].astype(np.float64), k)
            local = self._chunks[key]
            ids.append(local + base)
            base += int(local.max()) + 1
        return np.concatenate(ids), base

    def select(self, ctx, rows, params):
        if ctx.n_old <= 0:
            return [np.zeros(0, np.int64) for _ in params], 0
        assign, c = self._assign(ctx)
        d = ctx.keys_post.shape[1]
        sizes = np.bincount(assign, minlength=c)
        cent = np.zeros((c, d))
        np.add.at(cent, assign, ctx.keys_post[ctx.lo : ctx.hi].astype(np.float64))
        cent /= np.maximum(sizes, 1)[:, None]
        scores = self._rows_for_units(rows) @ cent.T / math.sqrt(d)
        rank = np.argsort(-unit_mass(scores, np.maximum(sizes, 1)), kind="stable")
        out = []
        for f in params:
            units = _take_until(rank, sizes, f * ctx.n_old)
            out.append(np.flatnonzero(np.isin(assign, units)) + ctx.lo)
        return out, int((sizes > 0).sum()) * (2 * d + math.ceil(self.cfg.count_bits / 8))


class ReKV(Method):
    name, param, grid = "rekv", "fraction", FRACTIONS
    label = "ReKV-like frame blocks (mean key, filled to a fixed fraction)"

    def select(self, ctx, rows, params):
        seg = ctx.segments
        starts = np.clip(seg[:-1], ctx.lo, ctx.hi)
        ends = np.clip(seg[1:], ctx.lo, ctx.hi)
        keep = ends > starts
        starts, ends = starts[keep], ends[keep]
        sizes = ends - starts
        d = ctx.keys_post.shape[1]
        k = ctx.keys_post.astype(np.float64)
        means = np.stack([k[a:b].mean(axis=0) for a, b in zip(starts, ends, strict=True)])
        scores = self._rows_for_units(rows) @ means.T / math.sqrt(d)
        rank = np.argsort(-unit_mass(scores, sizes), kind="stable")
        out = []
        for f in params:
            budget, used, take = f * ctx.n_old, 0, []
            for u in rank:
                if used + sizes[u] <= budget:
                    take.append(u)
                    used += sizes[u]
            out.append(_tokens_of(np.array(take, np.int64), starts, ends))
        return out, starts.size * d * BF16


class Window(Method):
    name, param, grid = "window", "fraction", FRACTIONS
    label = "sliding window (most recent fixed fraction)"

    def select(self, ctx, rows, params):
        out = [np.arange(ctx.hi - math.ceil(f * ctx.n_old), ctx.hi) for f in params]
        return [o[o >= ctx.lo] for o in out], 0


#: The baselines by name (ReSV is built per configuration by the benchmark).
METHODS: dict[str, type[Method]] = {
    m.name: m for m in (Oracle, TopK, Quest, Pages, KMeans, ReKV, Window)
}
