"""ReSV golden model: hashing, online Hamming clustering and WiCSum selection.

This module is the contract between ``golden/``, ``hw/`` and ``tests/`` (shared/SPEC.md
sections 2 and 7). Every function validates its inputs and raises ``ValueError`` naming the
argument; nothing here depends on floating-point summation order except the float-only
``wicsum_select`` and ``attention``.

Cycle-free but hardware-shaped: ``ClusterTable`` is the state of one HCU context,
``wicsum_select_bucketed`` is bit-exact with the WTU and returns the work it did.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from .config import ReSVConfig

__all__ = [
    "BucketedSelection",
    "ClusterEvent",
    "ClusterResult",
    "ClusterTable",
    "attention",
    "bucket_lut",
    "bucket_of",
    "cluster_online",
    "emit_beats",
    "hamming",
    "quantize_scores",
    "representative_keys",
    "signatures",
    "wicsum_select",
    "wicsum_select_bucketed",
]


# ---------------------------------------------------------------------------------------------
# Hashing


def _as_2d_float(name: str, x: object) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, not shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be numeric, not dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return a


def signatures(keys: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """H-bit signatures of ``keys`` (n, d) against ``planes`` (d, H), H <= 64.

    Bit j is 1 iff ``k . planes[:, j] >= 0`` (bit 0 = LSB = plane 0). Projections are
    computed in float32, the precision of the keys.
    """
    keys = _as_2d_float("keys", keys)
    planes = _as_2d_float("planes", planes)
    if keys.shape[1] != planes.shape[0]:
        raise ValueError(
            f"keys and planes must agree on d: keys is {keys.shape}, planes is {planes.shape}"
        )
    h = planes.shape[1]
    if not 1 <= h <= 64:
        raise ValueError(f"planes must have 1..64 columns (hash bits), not {h}")
    bits = (keys.astype(np.float32) @ planes.astype(np.float32)) >= 0
    weights = np.left_shift(np.uint64(1), np.arange(h, dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """``popcount(a XOR b)`` element-wise on uint64 signatures."""
    return np.bitwise_count(np.bitwise_xor(np.uint64(a), np.uint64(b))).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Online clustering


class ClusterEvent(enum.IntEnum):
    """What clustering did with a token (the HCU's output ``event`` field)."""

    JOINED = 0  #: distance <= threshold: joined the nearest cluster
    CREATED = 1  #: founded a new cluster (table had room)
    FORCED = 2  #: table full: joined the nearest cluster although distance > threshold
    PAGED = 3  #: page_fallback: joined its page's fallback cluster (distance > threshold)


@dataclass(frozen=True)
class ClusterResult:
    """Outcome of clustering a token stream (one table)."""

    #: (n,) cluster index of each token.
    assign: np.ndarray
    #: (C,) uint64 signature of each cluster (that of its founding token).
    signatures: np.ndarray
    #: (C,) token count of each cluster.
    counts: np.ndarray
    #: number of forced joins.
    forced: int
    #: (n,) Hamming distance of each token to its cluster's signature (0 when it founded it).
    distance: np.ndarray
    #: (n,) ``ClusterEvent`` of each token.
    event: np.ndarray


def _check_sigs(sigs: object, hash_bits: int | None = None) -> np.ndarray:
    a = np.asarray(sigs)
    if a.ndim != 1:
        raise ValueError(f"sigs must be a 1-D array, not shape {a.shape}")
    if a.size and not (np.issubdtype(a.dtype, np.integer) or a.dtype == object):
        raise ValueError(f"sigs must be unsigned integers, not dtype {a.dtype}")
    if a.size and np.issubdtype(a.dtype, np.signedinteger) and (a < 0).any():
        raise ValueError("sigs must be non-negative")
    a = a.astype(np.uint64)
    if hash_bits is not None and hash_bits < 64 and a.size and (a >> np.uint64(hash_bits)).any():
        raise ValueError(f"sigs must fit in hash_bits={hash_bits} bits")
    return a


class ClusterTable:
    """One online clustering context (one layer and KV head): the state of an HCU table.

    Tokens are added in arrival order with ``add``; the rules are SPEC section 2: nearest
    cluster by Hamming distance, ties to the lowest index, join when ``<= threshold``, else
    create while fewer than ``max_clusters`` entries exist, else force-join the nearest.
    ``count_max`` (optional) saturates counts, as a ``count_bits``-wide counter does.

    ``page_tokens`` (the ``page_fallback`` policy) changes only the "else" branch: a token
    at position ``p`` that joins nothing within the threshold joins the fallback cluster of
    its page ``p // page_tokens`` (event ``PAGED``) when the page already has one; otherwise
    it founds a cluster as above, which becomes its page's fallback cluster (and, like any
    cluster, can be joined within the threshold of its founder's signature by later tokens).
    Positions must then increase; at most one cluster per page is founded.
    """

    _CHUNK = 512  # tokens compared against the table in one vectorised step

    def __init__(
        self,
        *,
        threshold: int,
        max_clusters: int,
        count_max: int | None = None,
        page_tokens: int | None = None,
    ):
        if isinstance(threshold, bool) or not isinstance(threshold, int | np.integer):
            raise ValueError(f"threshold must be a non-negative integer, not {threshold!r}")
        if threshold < 0:
            raise ValueError(f"threshold must be a non-negative integer, not {threshold!r}")
        if isinstance(max_clusters, bool) or not isinstance(max_clusters, int | np.integer):
            raise ValueError(f"max_clusters must be a positive integer, not {max_clusters!r}")
        if max_clusters < 1:
            raise ValueError(f"max_clusters must be a positive integer, not {max_clusters!r}")
        if count_max is not None and count_max < 1:
            raise ValueError(f"count_max must be a positive integer, not {count_max!r}")
        if page_tokens is not None and (
            isinstance(page_tokens, bool)
            or not isinstance(page_tokens, int | np.integer)
            or page_tokens < 1
        ):
            raise ValueError(f"page_tokens must be a positive integer or None, not {page_tokens!r}")
        self.threshold = int(threshold)
        self.max_clusters = int(max_clusters)
        self.count_max = count_max
        self.page_tokens = page_tokens
        self.clear()

    def clear(self) -> None:
        """Empty the table (a new context)."""
        self._sigs = np.zeros(self.max_clusters, np.uint64)
        self._counts = np.zeros(self.max_clusters, np.int64)
        self.size = 0
        self.forced = 0
        self._page = (-1, -1)  # (page index, its fallback cluster) of the last founding
        self._last_position = -1

    @property
    def signatures(self) -> np.ndarray:
        return self._sigs[: self.size].copy()

    @property
    def counts(self) -> np.ndarray:
        return self._counts[: self.size].copy()

    def add(self, sigs: np.ndarray, positions: np.ndarray | None = None) -> ClusterResult:
        """Cluster ``sigs`` in order; returns assignments of these tokens and the table.

        ``positions`` (increasing token positions) are needed by the ``page_tokens`` policy.
        """
        sigs = _check_sigs(sigs)
        n = sigs.size
        pages = None
        if self.page_tokens is not None:
            if positions is None:
                raise ValueError("positions must be given with page_tokens (page_fallback)")
            pos = np.asarray(positions, np.int64)
            if pos.shape != (n,):
                raise ValueError(f"positions must have shape ({n},), not {pos.shape}")
            if n and (pos[0] <= self._last_position or np.any(np.diff(pos) <= 0)):
                raise ValueError("positions must increase across add calls")
            if n:
                self._last_position = int(pos[-1])
            pages = pos // self.page_tokens
        assign = np.empty(n, np.int64)
        distance = np.empty(n, np.int64)
        event = np.empty(n, np.int8)
        for lo in range(0, n, self._CHUNK):
            hi = min(n, lo + self._CHUNK)
            page = None if pages is None else pages[lo:hi]
            self._add_chunk(sigs[lo:hi], assign[lo:hi], distance[lo:hi], event[lo:hi], page)
        return ClusterResult(
            assign=assign,
            signatures=self.signatures,
            counts=self.counts,
            forced=self.forced,
            distance=distance,
            event=event,
        )

    def _add_chunk(self, sigs, assign, distance, event, pages) -> None:
        # Distances to the clusters that existed before the chunk are computed in one step;
        # clusters founded inside the chunk are few and are checked token by token. Old
        # clusters have lower indices, so a new one wins only when strictly closer.
        c0 = self.size
        if c0:
            d_old = np.bitwise_count(sigs[:, None] ^ self._sigs[None, :c0])
            best_old_i = d_old.argmin(axis=1)
            best_old_d = d_old[np.arange(sigs.size), best_old_i].astype(np.int64)
        t, cmax, sat = self.threshold, self.max_clusters, self.count_max
        for i, s in enumerate(sigs):
            if c0:
                bi, bd = int(best_old_i[i]), int(best_old_d[i])
            else:
                bi, bd = -1, 1 << 30
            if self.size > c0:
                d_new = np.bitwise_count(self._sigs[c0 : self.size] ^ s)
                j = int(d_new.argmin())
                if int(d_new[j]) < bd:
                    bi, bd = c0 + j, int(d_new[j])
            if bi >= 0 and bd <= t:
                ev = ClusterEvent.JOINED
            elif pages is not None and self._page[0] == pages[i]:
                bi = self._page[1]
                bd, ev = int(np.bitwise_count(self._sigs[bi] ^ s)), ClusterEvent.PAGED
            elif self.size < cmax:
                bi, bd, ev = self.size, 0, ClusterEvent.CREATED
                self._sigs[bi] = s
                self.size += 1
                if pages is not None:
                    self._page = (int(pages[i]), bi)
            else:
                ev = ClusterEvent.FORCED
                self.forced += 1
            c = self._counts[bi] + 1
            self._counts[bi] = c if sat is None else min(c, sat)
            assign[i], distance[i], event[i] = bi, bd, ev


def cluster_online(
    sigs: np.ndarray, *, threshold: int, max_clusters: int, count_max: int | None = None
) -> ClusterResult:
    """Cluster a signature stream from an empty table (SPEC section 2)."""
    return ClusterTable(threshold=threshold, max_clusters=max_clusters, count_max=count_max).add(
        sigs
    )


def representative_keys(keysum: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``rep_c = keysum_c / count_c`` (float64); clusters with count 0 get a zero key."""
    keysum = np.asarray(keysum, np.float64)
    counts = np.asarray(counts)
    if keysum.ndim != 2 or counts.shape != (keysum.shape[0],):
        raise ValueError(
            f"keysum must be (C, d) and counts (C,), not {keysum.shape} and {counts.shape}"
        )
    return keysum / np.maximum(counts, 1)[:, None]


# ---------------------------------------------------------------------------------------------
# WiCSum selection


def _check_scores_counts(scores: object, counts: object) -> tuple[np.ndarray, np.ndarray]:
    s, c = np.asarray(scores), np.asarray(counts)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, not shape {s.shape}")
    if c.shape != s.shape:
        raise ValueError(f"counts must have the shape of scores {s.shape}, not {c.shape}")
    if not np.issubdtype(c.dtype, np.integer) and (
        not np.issubdtype(c.dtype, np.floating) or np.any(c != np.round(c))
    ):
        raise ValueError(f"counts must be integers, not dtype {c.dtype}")
    if np.any(c < 0):
        raise ValueError("counts must be non-negative")
    return s, c.astype(np.int64)


def wicsum_select(
    scores: np.ndarray,
    counts: np.ndarray,
    *,
    coverage: float,
    free_scores: np.ndarray | None = None,
) -> np.ndarray:
    """Exact float WiCSum: cluster ids in selection order (descending score, ties low id).

    ``w_c = count_c * exp(s_c - m)``; the shortest prefix of the score order whose sum
    reaches ``coverage`` of the total is selected. With ``free_scores`` (the scores of tokens
    attended anyway, scope ``attended``) their mass ``F = sum exp(f - m)`` counts too: the
    prefix is the shortest with ``F + sum w >= coverage * (F + total)``, empty when ``F``
    alone reaches it; ``m`` is then the maximum over clusters and free tokens.
    """
    s, c = _check_scores_counts(scores, counts)
    if not np.issubdtype(s.dtype, np.number) or not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite numbers")
    if isinstance(coverage, bool) or not isinstance(coverage, int | float | np.floating):
        raise ValueError(f"coverage must be a number in (0, 1], not {coverage!r}")
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], not {coverage!r}")
    s = s.astype(np.float64)
    f = np.zeros(0) if free_scores is None else np.asarray(free_scores, np.float64).ravel()
    if not np.all(np.isfinite(f)):
        raise ValueError("free_scores must be finite")
    top = max(s.max(), f.max()) if f.size else s.max()
    order = np.argsort(-s, kind="stable")
    w = c[order] * np.exp(s[order] - top)
    free = float(np.exp(f - top).sum())
    cum = free + np.cumsum(w)
    target = coverage * cum[-1]
    if free >= target:
        return order[:0]
    # The total is the last partial sum, so coverage 1.0 always ends inside the array.
    k = int(np.searchsorted(cum, target, side="left")) + 1
    return order[: min(k, s.size)]


def quantize_scores(scores: np.ndarray, cfg: ReSVConfig) -> np.ndarray:
    """Natural-log scores to the WTU's fixed-point log2 scores (int64, saturated).

    ``round-half-even(s * log2(e) * 2**score_frac_bits)`` clipped to ``score_bits`` signed.
    """
    s = np.asarray(scores, np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    q = np.rint(s * math.log2(math.e) * (1 << cfg.score_frac_bits))
    return np.clip(q, cfg.score_min, cfg.score_max).astype(np.int64)


def bucket_lut(cfg: ReSVConfig) -> np.ndarray:
    """``L[b] = round(2**(-b * 2**bucket_shift / 2**score_frac_bits) * 2**lut_frac_bits)``."""
    b = np.arange(cfg.n_buckets, dtype=np.float64)
    e = -b * (1 << cfg.bucket_shift) / (1 << cfg.score_frac_bits)
    return np.rint(np.exp2(e) * (1 << cfg.lut_frac_bits)).astype(np.int64)


def bucket_of(scores_q: np.ndarray, top: int, cfg: ReSVConfig) -> np.ndarray:
    """Bucket of each fixed-point score under the maximum ``top`` (``cfg.bucket_mode``):
    ``relative`` ``(top - s) >> bucket_shift``, ``grid`` ``(top >> bucket_shift) -
    (s >> bucket_shift)`` (arithmetic shifts); ``>= n_buckets`` is out of range."""
    s = np.asarray(scores_q, np.int64)
    if cfg.bucket_mode == "grid":
        return (np.int64(top) >> cfg.bucket_shift) - (s >> cfg.bucket_shift)
    return (np.int64(top) - s) >> cfg.bucket_shift


@dataclass(frozen=True)
class BucketedSelection:
    """Result and work of the bucketed WiCSum (what the WTU emits and does)."""

    #: (k,) selected cluster ids in emit order: bucket order, ascending id within a bucket
    #: (``lanes == 1``); ascending id (``lanes > 1``).
    selected: np.ndarray
    #: (C,) bucket of each cluster; ``>= n_buckets`` means out of range (no mass).
    bucket: np.ndarray
    #: (n_buckets,) mass ``M_b = cnt_b * L[b]`` of each bucket.
    bucket_mass: np.ndarray
    #: last bucket taken.
    b_star: int
    #: total mass ``M``.
    total_mass: int
    #: threshold ``theta = ceil(coverage_q * M / 2**coverage_frac_bits)``.
    threshold: int
    #: buckets the early-exit scan touched (``b_star + 1``).
    buckets_scanned: int
    #: clusters emitted (``len(selected)``).
    clusters_emitted: int
    #: cycles of the emit after its first read: ``k`` for ``lanes == 1`` (one list entry per
    #: cycle); for ``lanes > 1`` one per row of ``lanes`` ids from the row of the first
    #: selected id to that of the last, ``last // lanes - first // lanes + 1`` (a row holding
    #: selected ids is one beat of ``emit_beats``, a row holding none an idle cycle).
    emit_cycles: int = 0


def wicsum_select_bucketed(
    scores_q: np.ndarray,
    counts: np.ndarray,
    cfg: ReSVConfig,
    *,
    coverage_q: int | None = None,
    free_q: np.ndarray | None = None,
    lanes: int = 1,
) -> BucketedSelection:
    """Bucketed WiCSum of SPEC section 2, bit-exact with the WTU.

    ``scores_q`` are fixed-point log2 scores (``quantize_scores``), ``counts`` the cluster
    token counts; ``coverage_q`` defaults to ``cfg.coverage_q``. Buckets follow
    ``cfg.bucket_mode`` (``bucket_of``).

    ``lanes`` (the WTU's ``wtu_lanes`` clusters per beat; 1..256) changes only the emit
    order and ``emit_cycles``: with one lane the selected ids come in bucket order, ascending
    id within a bucket (the WTU walks per-bucket lists); with more the selection is the same
    set in ascending id (the WTU re-reads its banked row ``lanes`` ids at a time and emits
    the selected ids of a row in one beat, ``emit_beats``).

    ``free_q`` (scope ``attended``; the WTU does not implement it): fixed-point scores of the
    tokens attended anyway. They take part in the maximum ``m``, are bucketed like clusters
    of count 1 and their in-range mass ``F`` joins the total, ``theta = ceil(coverage_q (F +
    M) / 2**coverage_frac_bits)``; the scan starts from ``F``: ``b*`` is the first bucket with
    ``F + sum_{b <= b*} M_b >= theta``, or -1 (nothing selected, no bucket scanned) when
    ``F >= theta``. ``total_mass`` stays the clusters' ``M``.
    """
    s, c = _check_scores_counts(scores_q, counts)
    if not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"scores_q must be integers (fixed point), not dtype {s.dtype}")
    s = s.astype(np.int64)
    if s.min() < cfg.score_min or s.max() > cfg.score_max:
        raise ValueError(
            f"scores_q must fit in score_bits={cfg.score_bits} signed bits "
            f"({cfg.score_min}..{cfg.score_max}), found {s.min()}..{s.max()}"
        )
    if c.max() > cfg.count_max:
        raise ValueError(f"counts must fit in count_bits={cfg.count_bits}, found {c.max()}")
    if isinstance(lanes, bool) or not isinstance(lanes, int | np.integer) or not 1 <= lanes <= 256:
        raise ValueError(f"lanes must be an integer in 1..256, not {lanes!r}")
    one = 1 << cfg.coverage_frac_bits
    cq = cfg.coverage_q if coverage_q is None else coverage_q
    if isinstance(cq, bool) or not isinstance(cq, int | np.integer) or not 1 <= cq <= one:
        raise ValueError(f"coverage_q must be an integer in 1..{one}, not {cq!r}")

    top = s.max()
    free_mass = 0
    if free_q is not None:  # scope "attended" (golden only)
        f = np.asarray(free_q, np.int64).ravel()
        if f.size:
            top = max(top, int(f.max()))
            fb = bucket_of(f, top, cfg)
            free_mass = int(bucket_lut(cfg)[fb[fb < cfg.n_buckets]].sum())
    bucket = bucket_of(s, top, cfg)
    in_range = bucket < cfg.n_buckets
    cnt = np.zeros(cfg.n_buckets, np.int64)
    np.add.at(cnt, bucket[in_range], c[in_range])
    mass = cnt * bucket_lut(cfg)
    total = int(mass.sum())
    theta = (int(cq) * (total + free_mass) + one - 1) >> cfg.coverage_frac_bits
    if free_q is not None and free_mass >= theta:
        b_star = -1
    else:
        b_star = int(np.searchsorted(free_mass + np.cumsum(mass), theta, side="left"))
    sel = np.flatnonzero(bucket <= b_star)
    if lanes == 1:
        sel = sel[np.argsort(bucket[sel], kind="stable")]
        emit = int(sel.size)
    elif sel.size:
        emit = int(sel[-1]) // lanes - int(sel[0]) // lanes + 1
    else:
        emit = 0
    return BucketedSelection(
        selected=sel,
        bucket=bucket,
        bucket_mass=mass,
        b_star=b_star,
        total_mass=total,
        threshold=theta,
        buckets_scanned=b_star + 1,
        clusters_emitted=int(sel.size),
        emit_cycles=emit,
    )


def emit_beats(selected: np.ndarray, lanes: int) -> list[tuple[int, int]]:
    """The L-wide emit of ascending ``selected`` ids (``lanes = L > 1``; the
    ``DRELayouts.selected_lanes`` stream of the multi-lane WTU and quick-select): one beat
    ``(base, mask)`` per row of L ids ``base .. base + L - 1`` (``base`` a multiple of L) that
    holds a selected id, bit j of ``mask`` set when ``base + j`` is selected; rows holding
    none have no beat. The last beat carries ``last``."""
    ids = np.asarray(selected, np.int64).ravel()
    if ids.size and np.any(np.diff(ids) <= 0):
        raise ValueError("selected must be ascending and unique")
    beats: dict[int, int] = {}
    for c in ids.tolist():
        base = c - c % lanes
        beats[base] = beats.get(base, 0) | 1 << (c - base)
    return list(beats.items())


# ---------------------------------------------------------------------------------------------
# Attention


def attention(
    q: np.ndarray, keys: np.ndarray, values: np.ndarray, *, return_weights: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Softmax attention in float64: ``q`` (..., d) over ``keys``/``values`` (n, d).

    Logits are ``q . k / sqrt(d)``. With ``return_weights`` also the (..., n) probabilities.
    """
    q = np.asarray(q, np.float64)
    keys = np.asarray(keys, np.float64)
    values = np.asarray(values, np.float64)
    if keys.ndim != 2 or values.ndim != 2 or keys.shape[0] != values.shape[0]:
        raise ValueError(f"keys and values must be (n, d) alike, not {keys.shape}, {values.shape}")
    if keys.shape[0] == 0:
        raise ValueError("keys must hold at least one token")
    if q.shape[-1] != keys.shape[1]:
        raise ValueError(f"q must end in d={keys.shape[1]}, not shape {q.shape}")
    logits = q @ keys.T / math.sqrt(keys.shape[1])
    logits -= logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=-1, keepdims=True)
    out = p @ values
    return (out, p) if return_weights else out
