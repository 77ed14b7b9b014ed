"""Bit-exact model of the V-Rex core (``hw/core/``): one (layer, KV head) context at a time.

This is the contract the core's regressions check bit for bit (SPEC sections 2-3, with the
datapath's number formats). It follows the float model (``golden.cache.StreamingCache``)
step by step, with every arithmetic operation replaced by the datapath's:

Ingest (one token at a time, position = token id in the context, pre-RoPE BF16 ``k``, ``v``):

1. ``k_post = rope_bf16(k, t)`` (``golden.rope``: phase accumulator + cos/sin tables).
2. Hash space ``k_h`` = ``k`` (``pre_rope``) or ``k_post``. Signature bit ``j`` =
   ``fp32_ge(dot(k_h, P_j), theta_j)`` with ``P = bf16(planes)`` and the MAC tree's
   ``dot``; ``theta_j = dot(bias, P_j)`` after ``set_bias(bias)`` (key centring folded into a
   per-plane threshold register), ``+0`` otherwise.
3. Always-kept tokens (``golden.kvmu.RecentWindow``): the first ``sink_tokens`` stay, the
   ring holds the ``recent_tokens`` most recent; the token leaving the ring is clustered
   (``ClusterTable``, counts saturating at ``count_max``), gets a KV slot
   (``golden.kvmu.KVMemory``; nothing is stored when the pool is full) and updates its
   cluster's representative: ``keysum_c = fp32_add(keysum_c, widen(k_post))`` per element
   (``+0`` start on creation), ``members_c += 1`` and
   ``w_c = fp32_mul(fp32_recip(int_to_fp32(members_c)), K_score)`` with
   ``K_score = f32(log2(e) / sqrt(d) * 2**score_frac_bits)``.

Prefill (``R`` pre-RoPE BF16 rows, row ``r`` at ``position + r // group``):

1. ``q_post_r = rope_bf16(q_r, position_r)``; the selection query is their mean
   ``bf16(sum_r q_post_r * (1/R))`` (an FP32 sum in row order from ``+0``, ``1/R =
   fp32_recip(int_to_fp32(R))``).
2. Every cluster ``c`` (``C`` = clusters in the table, all scored):
   ``score_c = fp32_to_fixed(fp32_mul(dot(bf16(keysum_c), mean), w_c), 0, score_bits)``,
   i.e. ``q . rep_c / sqrt(d)`` in log2 units with ``score_frac_bits`` fractional bits.
3. ``wicsum_select_bucketed(score, counts)`` (the WTU); the KVMU fetches the selected
   clusters' tokens (``KVMemory.tokens``: selection order, chunk list order, slot order).
4. Attention order: always-kept tokens (sinks, then the ring, oldest first), then the
   fetched tokens. Row ``r``'s scores are ``dot(k_post_t, q_post_r)``, ``-inf`` for a kept
   token newer than the row (the causal mask); every row attends in the tiled order
   (``golden.softmax.tiled_attention``) → FP32 output ``(R, d)``.

Query (decode: one pre-RoPE BF16 ``q`` at ``position``): a one-row prefill **without the
causal mask** (every token of the context is visible) → FP32 output ``(d,)``. Its
selection query is the one-row mean, i.e. ``q_post`` except where the FP32 sum from ``+0``
changes it (``-0`` becomes ``+0``).

``CoreModel.counters`` mirrors the core's performance counters that count work (not
cycles); the regressions compare them register by register. The core keeps the key sums in
DRAM, so two of them count its traffic: ``sum_beats``, per clustered token a token's bus
beats read (unless its cluster is new) and 1.5 tokens' written (the FP32 sum and its BF16
rounding), and ``rep_beats``, per selection half a token's beats per cluster scored.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .bf16 import to_bf16_bits
from .fparith import (
    dot,
    f32_to_bits,
    fp32_add,
    fp32_ge,
    fp32_mul,
    fp32_recip,
    fp32_to_bf16,
    fp32_to_fixed,
    int_to_fp32,
)
from .kvmu import KVLayout, KVMemory, RecentWindow
from .resv import ClusterEvent, ClusterTable, wicsum_select_bucketed
from .rope import rope_bf16
from .softmax import NEG_INF, tiled_attention

__all__ = [
    "NEG_INF",
    "WORK_COUNTERS",
    "CoreModel",
    "QueryOutcome",
    "mean_query",
    "score_scale_bits",
    "sum_reuse",
]

#: Work counters of the core (``hw.core.PERF`` has these plus cycle counters), in order.
WORK_COUNTERS = (
    "tokens_ingested",
    "tokens_clustered",
    "clusters_created",
    "clusters_joined",
    "clusters_forced",
    "kv_dropped",
    "queries",
    "clusters_scored",
    "buckets_scanned",
    "clusters_selected",
    "tokens_attended",
    "tokens_fetched",
    "read_bursts",
    "read_beats",
    "write_beats",
    "prefills",
    "prefill_rows",
    "sum_beats",
    "rep_beats",
)


def score_scale_bits(head_dim: int, score_frac_bits: int) -> np.uint32:
    """``K_score``: FP32 (nearest) of ``log2(e) / sqrt(head_dim) * 2**score_frac_bits``."""
    k = math.log2(math.e) / math.sqrt(head_dim) * (1 << score_frac_bits)
    return np.uint32(f32_to_bits(np.float32(k)))


def mean_query(rows: np.ndarray) -> np.ndarray:
    """The mean query of BF16 rows ``(R, d)`` (uint16 bits), the query a block's clusters are
    scored with (``hw.core.MeanQuery``): their FP32 sum from ``+0`` in row order, times
    ``fp32_recip(R)``, rounded to BF16."""
    acc = np.zeros(rows.shape[1], np.uint32)
    for row in rows:
        acc = fp32_add(acc, row.astype(np.uint32) << np.uint32(16))
    inv = fp32_recip(int_to_fp32(np.uint32(len(rows))))
    return fp32_to_bf16(fp32_mul(acc, np.broadcast_to(inv, acc.shape)))


@dataclass(frozen=True)
class QueryOutcome:
    """What one query computed (all bit patterns)."""

    output: np.ndarray  #: (d,) uint32 FP32 attention output; (R, d) for a prefill
    q_post: np.ndarray  #: (d,) uint16; a prefill's BF16 mean (selection) query
    scores: np.ndarray  #: (C,) int64 fixed-point cluster scores fed to the WTU
    selected: np.ndarray  #: cluster ids in WTU emit order
    order: np.ndarray  #: token ids in attention order (kept, then fetched)
    fetched: int  #: tokens fetched from memory
    bursts: int
    beats: int
    buckets_scanned: int


def sum_reuse(
    aged: list[tuple[int, int]], frame_offsets: np.ndarray, sizes: tuple[int, ...]
) -> dict[int, float]:
    """For each ``n`` of ``sizes``: the share of the aged tokens (``CoreModel.aged``) whose
    cluster was among the ``n`` clusters aged most recently in the same frame (the frame of
    the token whose ingest aged it; ``frame_offsets``: each frame's first token id). It is
    the hit rate a write-back buffer of ``n`` key sums would have if it were emptied at every
    frame, as a context switch every frame would empty it (least recently used replaced)."""
    out = {}
    frames = np.searchsorted(frame_offsets, [t for t, _ in aged], side="right")
    for n in sizes:
        hits, lru, frame = 0, OrderedDict(), None
        for f, (_, c) in zip(frames, aged, strict=True):
            if f != frame:
                lru.clear()
                frame = f
            if c in lru:
                hits += 1
                lru.move_to_end(c)
            else:
                lru[c] = None
                if len(lru) > n:
                    lru.popitem(last=False)
        out[n] = hits / max(1, len(aged))
    return out


@dataclass
class CoreModel:
    """State of one context of the core; ``cfg`` is an ``hw.config.HWConfig``."""

    cfg: object
    counters: dict = field(init=False)

    def __post_init__(self) -> None:
        r = self.cfg.resv
        self.d = r.head_dim
        self.lanes = self.cfg.mac_lanes
        self.planes = to_bf16_bits(r.planes.T)  # (H, d) BF16
        self.k_score = score_scale_bits(r.head_dim, r.score_frac_bits)
        self.layout = KVLayout.from_hw(self.cfg)
        self.counters = dict.fromkeys(WORK_COUNTERS, 0)
        self.theta = np.zeros(r.hash_bits, np.uint32)
        self.reset()

    # ------------------------------------------------------------------------- context

    def reset(self) -> None:
        """``RESET_CTX``: a new (layer, head) context; the bias thresholds are kept."""
        r = self.cfg.resv
        self.table = ClusterTable(
            threshold=r.threshold, max_clusters=r.max_clusters, count_max=r.count_max
        )
        self.window = RecentWindow(sink_tokens=r.sink_tokens, recent_tokens=r.recent_tokens)
        self.memory = KVMemory(self.layout, r.max_clusters)
        self.keysum = np.zeros((r.max_clusters, self.d), np.uint32)
        self.members = np.zeros(r.max_clusters, np.int64)
        self.w = np.zeros(r.max_clusters, np.uint32)
        self.k_post: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.sig: list[int] = []
        #: every aged token's cluster, in the order aged, with the id of the token whose
        #: ingest aged it: (ingested token id, cluster)
        self.aged: list[tuple[int, int]] = []

    def set_bias(self, bias: np.ndarray) -> None:
        """``SET_BIAS``: ``theta_j = dot(bias, P_j)`` (BF16 ``bias`` of shape (d,))."""
        self.theta = self._plane_dots(self._vec("bias", bias))

    def _plane_dots(self, x: np.ndarray) -> np.ndarray:
        """``dot(x, P_j)`` for every hyperplane ``j`` (the MAC tree's FP32 results)."""
        return dot(np.broadcast_to(x, self.planes.shape), self.planes, self.lanes)

    def _rope(self, x: np.ndarray, position: int) -> np.ndarray:
        """The RoPE unit's BF16 rotation of ``x`` (d,) at ``position``."""
        r = self.cfg.resv
        pos = np.array([position])
        return rope_bf16(x[None], pos, base=r.rope_base, lut_bits=self.cfg.rope_lut_bits)[0]

    def _vec(self, name: str, x: np.ndarray, rows: bool = False) -> np.ndarray:
        x = np.asarray(x)
        want = (x.shape[0], self.d) if rows and x.ndim == 2 else (self.d,)
        if x.dtype != np.uint16 or x.shape != want:
            raise ValueError(f"{name} must be uint16 BF16 of shape {want}, not {x.dtype} {x.shape}")
        return x

    @property
    def n_tokens(self) -> int:
        return len(self.k_post)

    @property
    def n_clusters(self) -> int:
        return self.table.size

    # ------------------------------------------------------------------------- ingest

    def signature(self, k_hash: np.ndarray) -> int:
        bits = fp32_ge(self._plane_dots(k_hash), self.theta)
        return int(sum(1 << j for j in np.flatnonzero(bits)))

    def ingest(self, keys: np.ndarray, values: np.ndarray) -> int:
        """``INGEST``: tokens (n, d) of pre-RoPE BF16 keys and BF16 values, in order.

        A context holds at most ``2**token_id_bits`` tokens: later ones are dropped (the
        core answers ``FULL``). Returns the number of tokens dropped. An aged token that
        finds the KV chunk pool exhausted is clustered but its K/V is not stored: the
        ``kv_dropped`` counter counts it and the core answers ``FULL`` as well."""
        keys = self._vec("keys", keys, rows=True)
        values = self._vec("values", values, rows=True)
        if keys.shape != values.shape:
            raise ValueError(f"values must have the shape of keys {keys.shape}, not {values.shape}")
        r = self.cfg.resv
        dropped = 0
        for k, v in zip(keys, values, strict=True):
            t = self.n_tokens
            if t == 1 << self.cfg.token_id_bits:
                dropped += 1
                continue
            kp = self._rope(k, t)
            self.k_post.append(kp)
            self.v.append(v)
            self.sig.append(self.signature(k if r.hash_space == "pre_rope" else kp))
            self.counters["tokens_ingested"] += 1
            aged = self.window.push(t)
            if aged is not None:
                self._cluster(aged)
        return dropped

    def _cluster(self, t: int) -> None:
        res = self.table.add(np.array([self.sig[t]], np.uint64))
        c, event = int(res.assign[0]), int(res.event[0])
        self.counters["tokens_clustered"] += 1
        name = {
            ClusterEvent.JOINED: "clusters_joined",
            ClusterEvent.CREATED: "clusters_created",
            ClusterEvent.FORCED: "clusters_forced",
        }[ClusterEvent(event)]
        self.counters[name] += 1
        slot = self.memory.append(t, c, event)
        if slot.full:
            self.counters["kv_dropped"] += 1
        else:
            self.counters["write_beats"] += self.layout.beats_per_token
        # The key sum lives in DRAM: read (unless the cluster is new), written back in FP32
        # and as the BF16 representative key (half the beats).
        bpt = self.layout.beats_per_token
        self.counters["sum_beats"] += bpt * (event != ClusterEvent.CREATED) + bpt + bpt // 2
        if event == ClusterEvent.CREATED:
            self.keysum[c] = 0
            self.members[c] = 0
        self.keysum[c] = fp32_add(self.keysum[c], self.k_post[t].astype(np.uint32) << np.uint32(16))
        self.members[c] += 1
        self.aged.append((self.n_tokens - 1, c))
        recip = fp32_recip(int_to_fp32(np.uint32(self.members[c])))
        self.w[c] = fp32_mul(recip, self.k_score)

    # ------------------------------------------------------------------------- query

    def _retrieve(self, q_sel: np.ndarray) -> tuple:
        """Score every cluster against the BF16 selection query ``q_sel``, select (WTU) and
        fetch (KVMU): (scores, selected, buckets scanned, fetched token ids, bursts)."""
        r = self.cfg.resv
        C = self.n_clusters
        selected = np.zeros(0, np.int64)
        scores = np.zeros(0, np.int64)
        scanned = 0
        if C:
            reps = fp32_to_bf16(self.keysum[:C])
            dots = dot(reps, np.broadcast_to(q_sel, reps.shape), self.lanes)
            scores = fp32_to_fixed(fp32_mul(dots, self.w[:C]), 0, r.score_bits)
            sel = wicsum_select_bucketed(scores, self.table.counts, r)
            selected, scanned = np.asarray(sel.selected, np.int64), sel.buckets_scanned
        fetched = np.array(self.memory.tokens(selected), np.int64)
        return scores, selected, scanned, fetched, self.memory.bursts(selected)

    def _outcome(self, out, q_post, retrieved, order) -> QueryOutcome:
        """The counters of one selection and its attention stream (kept tokens, then the
        fetched ones, read from memory once)."""
        scores, selected, scanned, fetched, bursts = retrieved
        beats = sum(b.beats for b in bursts)
        c = self.counters
        c["clusters_scored"] += self.n_clusters
        c["rep_beats"] += self.n_clusters * (self.layout.beats_per_token // 2)
        c["buckets_scanned"] += scanned
        c["clusters_selected"] += len(selected)
        c["tokens_attended"] += len(order)
        c["tokens_fetched"] += len(fetched)
        c["read_bursts"] += len(bursts)
        c["read_beats"] += beats
        return QueryOutcome(
            output=out,
            q_post=q_post,
            scores=scores,
            selected=selected,
            order=order,
            fetched=len(fetched),
            bursts=len(bursts),
            beats=beats,
            buckets_scanned=scanned,
        )

    def _attention(self, order: np.ndarray):
        keys = np.stack([self.k_post[t] for t in order])
        vals = np.stack([self.v[t] for t in order])
        return keys, vals

    def query(self, q: np.ndarray, position: int) -> QueryOutcome:
        """``QUERY``: attention of pre-RoPE BF16 ``q`` (d,) at ``position``: a one-row
        ``PREFILL`` without the causal mask (module docstring); ``output`` is (d,)."""
        q = self._vec("q", q)
        if self.n_tokens == 0:
            raise ValueError("the context is empty: ingest tokens before querying")
        out, mean, got, order = self._rows(q[None], np.array([position]), causal=False)
        self.counters["queries"] += 1
        return self._outcome(out[0], mean, got, order)

    # ------------------------------------------------------------------------- prefill

    def prefill_error(self, rows: int, group: int, position: int) -> str | None:
        """Why ``PREFILL`` refuses a block of ``rows`` query vectors, ``group`` rows per
        position, the first at ``position`` (``None``: accepted). The core answers ``EMPTY``
        for an empty context and ``BAD_ARG`` for everything else; the vectors are consumed."""
        if self.n_tokens == 0:
            return "the context is empty: ingest tokens before a prefill"
        if not 1 <= rows <= self.cfg.frame_rows:
            return f"rows must be in 1..frame_rows ({self.cfg.frame_rows}), not {rows}"
        if not 1 <= group <= rows:
            return f"group must be in 1..rows ({rows}), not {group}"
        if position < self.newest_aged:
            return (
                f"position ({position}) must not precede the newest clustered token "
                f"({self.newest_aged}): it is fetched without a causal mask"
            )
        if position + rows - 1 >= 1 << (self.cfg.token_id_bits + 1):
            return f"position + rows - 1 ({position + rows - 1}) must fit in token_id_bits + 1"
        return None

    @property
    def newest_aged(self) -> int:
        """Id of the newest token that left the recent window (clustered), -1 if none."""
        return self.ring_base - 1 if self.ring_base > len(self.window.sinks) else -1

    @property
    def ring_base(self) -> int:
        """Token id of the oldest token of the recent ring (``n_tokens`` if it is empty)."""
        return self.n_tokens - len(self.window.ring)

    def prefill(self, q: np.ndarray, position: int, group: int) -> QueryOutcome:
        """``PREFILL``: pre-RoPE BF16 query rows ``q`` (R, d), at most ``frame_rows``; row
        ``r`` is at position ``position + r // group`` (a frame's tokens x the GQA group's
        heads, token major). ``output`` is (R, d).

        Selection: one for all the rows, from their mean query ``bf16(sum_r q_post_r *
        (1/R))`` (``sum`` an FP32 sum in row order from ``+0``, ``1/R =
        fp32_recip(int_to_fp32(R))``), scored, selected and fetched as a ``QUERY``.
        Attention: every row over the same order (kept, then fetched) with its own scores
        ``dot(k_t, q_post_r)``; a kept token newer than the row (causal mask: id > the
        row's position) gets the score ``-inf``; the rows attend in the **tiled order**
        (``golden.softmax.tiled_attention``, ``tile_tokens`` tokens per tile, ``P x V`` on
        ``mac_lanes`` columns): the core's ``TiledAttention`` engine takes every row and
        reads the selected tokens once."""
        q = self._vec("q", q, rows=True)
        why = self.prefill_error(q.shape[0], group, position)
        if why is not None:
            raise ValueError(why)
        pos = position + np.arange(q.shape[0]) // group
        out, mean, got, order = self._rows(q, pos, causal=True)
        self.counters["prefills"] += 1
        self.counters["prefill_rows"] += q.shape[0]
        return self._outcome(out, mean, got, order)

    def _rows(self, q: np.ndarray, pos: np.ndarray, causal: bool) -> tuple:
        """Rows ``q`` (R, d) at positions ``pos`` (R,): RoPE, one selection from their mean
        query, the tiled attention of every row over the kept and fetched tokens (kept
        tokens newer than a row masked if ``causal``): (output (R, d), mean, the
        retrieval, the attention order)."""
        qp = np.stack([self._rope(row, int(p)) for row, p in zip(q, pos, strict=True)])
        mean = mean_query(qp)
        got = self._retrieve(mean)
        kept = self.window.kept()
        order = np.concatenate([kept, got[3]])
        keys, vals = self._attention(order)
        att = np.stack([dot(keys, np.broadcast_to(row, keys.shape), self.lanes) for row in qp])
        if causal:  # fetched tokens are older than every row
            ids = np.concatenate([kept, np.full(len(got[3]), -1, np.int64)])
            att = np.where(ids[None] > pos[:, None], NEG_INF, att).astype(np.uint32)
        out = tiled_attention(
            att,
            vals,
            tile=self.cfg.tile_tokens,
            lanes=self.lanes,
            exp_frac_bits=self.cfg.exp_frac_bits,
        )
        return out, mean, got, order
