"""Bit-exact model of the V-Rex core (``hw/core.py``): one (layer, KV head) context at a time.

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

Query (pre-RoPE BF16 ``q`` at ``position``):

1. ``q_post = rope_bf16(q, position)``.
2. Every cluster ``c`` (``C`` = clusters in the table, all scored):
   ``score_c = fp32_to_fixed(fp32_mul(dot(bf16(keysum_c), q_post), w_c), 0, score_bits)``,
   i.e. ``q . rep_c / sqrt(d)`` in log2 units with ``score_frac_bits`` fractional bits.
3. ``wicsum_select_bucketed(score, counts)`` (the WTU); the KVMU fetches the selected
   clusters' tokens (``KVMemory.tokens``: selection order, chunk list order, slot order).
4. Attention order: always-kept tokens (sinks, then the ring, oldest first), then the
   fetched tokens. ``scores_t = dot(k_post_t, q_post)``, then the vector unit's online
   softmax ``golden.softmax.online_attention`` → FP32 output ``(d,)``.

``CoreModel.counters`` mirrors the core's performance counters that count work (not
cycles); the regressions compare them register by register.
"""

from __future__ import annotations

import math
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
from .softmax import online_attention

__all__ = ["WORK_COUNTERS", "CoreModel", "QueryOutcome", "score_scale_bits"]

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
)


def score_scale_bits(head_dim: int, score_frac_bits: int) -> np.uint32:
    """``K_score``: FP32 (nearest) of ``log2(e) / sqrt(head_dim) * 2**score_frac_bits``."""
    k = math.log2(math.e) / math.sqrt(head_dim) * (1 << score_frac_bits)
    return np.uint32(f32_to_bits(np.float32(k)))


@dataclass(frozen=True)
class QueryOutcome:
    """What one query computed (all bit patterns)."""

    output: np.ndarray  #: (d,) uint32 FP32 attention output
    q_post: np.ndarray  #: (d,) uint16
    scores: np.ndarray  #: (C,) int64 fixed-point cluster scores fed to the WTU
    selected: np.ndarray  #: cluster ids in WTU emit order
    order: np.ndarray  #: token ids in attention order (kept, then fetched)
    fetched: int  #: tokens fetched from memory
    bursts: int
    beats: int
    buckets_scanned: int


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
        if event == ClusterEvent.CREATED:
            self.keysum[c] = 0
            self.members[c] = 0
        self.keysum[c] = fp32_add(self.keysum[c], self.k_post[t].astype(np.uint32) << np.uint32(16))
        self.members[c] += 1
        recip = fp32_recip(int_to_fp32(np.uint32(self.members[c])))
        self.w[c] = fp32_mul(recip, self.k_score)

    # ------------------------------------------------------------------------- query

    def query(self, q: np.ndarray, position: int) -> QueryOutcome:
        """``QUERY``: attention of pre-RoPE BF16 ``q`` (d,) at ``position``."""
        q = self._vec("q", q)
        if self.n_tokens == 0:
            raise ValueError("the context is empty: ingest tokens before querying")
        r = self.cfg.resv
        qp = self._rope(q, position)
        C = self.n_clusters
        selected = np.zeros(0, np.int64)
        scores = np.zeros(0, np.int64)
        scanned = 0
        if C:
            reps = fp32_to_bf16(self.keysum[:C])
            dots = dot(reps, np.broadcast_to(qp, reps.shape), self.lanes)
            scores = fp32_to_fixed(fp32_mul(dots, self.w[:C]), 0, r.score_bits)
            sel = wicsum_select_bucketed(scores, self.table.counts, r)
            selected, scanned = sel.selected, sel.buckets_scanned
        fetched = self.memory.tokens(selected)
        bursts = self.memory.bursts(selected)
        order = np.concatenate([self.window.kept(), np.array(fetched, np.int64)])
        keys = np.stack([self.k_post[t] for t in order])
        vals = np.stack([self.v[t] for t in order])
        att = dot(keys, np.broadcast_to(qp, keys.shape), self.lanes)
        out = online_attention(att, vals, exp_frac_bits=self.cfg.exp_frac_bits)
        beats = sum(b.beats for b in bursts)
        c = self.counters
        c["queries"] += 1
        c["clusters_scored"] += C
        c["buckets_scanned"] += scanned
        c["clusters_selected"] += len(selected)
        c["tokens_attended"] += len(order)
        c["tokens_fetched"] += len(fetched)
        c["read_bursts"] += len(bursts)
        c["read_beats"] += beats
        return QueryOutcome(
            output=out,
            q_post=qp,
            scores=scores,
            selected=np.asarray(selected, np.int64),
            order=order,
            fetched=len(fetched),
            bursts=len(bursts),
            beats=beats,
            buckets_scanned=scanned,
        )
