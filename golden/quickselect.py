"""Exact WiCSum on the WTU's fixed-point inputs, and the weighted quick-select that finds it
(the reference of ``hw.dre.WeightedQuickSelect``, the WTU's fair baseline).

**Exact on the same fixed-point inputs.** The WTU and this baseline get the same row:
fixed-point log2 scores ``s_c`` (``score_bits`` signed, ``score_frac_bits`` fractional; the
output of ``golden.resv.quantize_scores``), token counts ``count_c`` and ``coverage_q``.
``wicsum_select_exact_q`` is ``golden.resv.wicsum_select`` on those inputs with the only
rounding a fixed-point unit needs, in the weights: with ``m = max s`` and ``d_c = m - s_c``,

    w_c = (count_c * E[d_c mod 2**score_frac_bits]) >> (d_c >> score_frac_bits)
    E[j] = round(2**(-j / 2**score_frac_bits) * 2**lut_frac_bits)

i.e. ``count_c * 2**(-d_c / 2**score_frac_bits)`` at ``lut_frac_bits`` fractional bits, the
score's full resolution (no buckets; clusters far below ``m`` weigh 0 once the shift
empties the product). ``M = sum w``, ``theta = ceil(coverage_q * M / 2**coverage_frac_bits)``
(as the WTU's), clusters in descending score, ties to the lower id, and the selection is the
shortest prefix whose running sum reaches ``theta`` (at least one cluster). It differs from
the float ``wicsum_select`` of the same scores only when the weights' rounding moves a
partial sum across the threshold.

**The quick-select** orders clusters by the unique key ``K_c = (s_c - score_min) <<
cluster_id_bits | (2**cluster_id_bits - 1 - c)`` (higher score first, then lower id) and
looks for the threshold key ``K* = max{x : acc + W(K >= x) >= theta}``: the selection is
every cluster with ``K_c >= K*``. Each step splits the live set ``S`` (``|S| >= 2``) at the
midrange pivot ``p = (min K + max K) >> 1`` of ``S`` into ``H = {K > p}`` and ``L = {K <=
p}`` (both non-empty: the keys are unique); if ``acc + W(H) >= theta`` then ``S = H``, else
``acc += W(H)`` and ``S = L``; it stops when one key is left. The midrange pivot (the min
and max of both halves are tracked while partitioning) bounds the steps by the key width and
has no adversarial input order, unlike a first-element pivot.

Hardware schedule (``hw.dre.WeightedQuickSelect``): the ingest takes the row ``lanes``
clusters per beat (``ceil(C / lanes)`` cycles), pass 1 reads the whole row, computes
``M`` and splits ``S_0`` (all clusters); pass ``i >= 2`` reads ``S_{i-2}`` (compacted in
place), keeps ``S_{i-1}`` and splits it. ``QuickSelection.pass_reads`` lists the clusters
each pass reads; the emit pass then scans the row in id order, ``lanes`` clusters per row,
one row per cycle (its selected ids in one beat).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ReSVConfig
from .resv import _check_scores_counts

__all__ = [
    "QuickSelection",
    "cluster_keys",
    "exact_weights",
    "exp2_lut",
    "quickselect",
    "wicsum_select_exact_q",
]


def exp2_lut(cfg: ReSVConfig) -> np.ndarray:
    """``E[j] = round(2**(-j / 2**score_frac_bits) * 2**lut_frac_bits)``, j < 2**frac."""
    j = np.arange(1 << cfg.score_frac_bits, dtype=np.float64)
    return np.rint(np.exp2(-j / (1 << cfg.score_frac_bits)) * (1 << cfg.lut_frac_bits)).astype(
        np.int64
    )


def _check_row(scores_q, counts, cfg: ReSVConfig, coverage_q) -> tuple[np.ndarray, np.ndarray, int]:
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
    if s.size > cfg.max_clusters:
        raise ValueError(f"scores_q must hold at most max_clusters={cfg.max_clusters} clusters")
    one = 1 << cfg.coverage_frac_bits
    cq = cfg.coverage_q if coverage_q is None else coverage_q
    if isinstance(cq, bool) or not isinstance(cq, int | np.integer) or not 1 <= cq <= one:
        raise ValueError(f"coverage_q must be an integer in 1..{one}, not {cq!r}")
    return s, c, int(cq)


def exact_weights(scores_q: np.ndarray, counts: np.ndarray, cfg: ReSVConfig) -> np.ndarray:
    """``w_c = (count_c * E[d_c mod 2**f]) >> (d_c >> f)`` with ``d_c = max s - s_c``."""
    s = np.asarray(scores_q, np.int64)
    c = np.asarray(counts, np.int64)
    d = s.max() - s
    f = cfg.score_frac_bits
    shift = np.minimum(d >> f, 63)
    return (c * exp2_lut(cfg)[d & ((1 << f) - 1)]) >> shift


def _threshold(total: int, coverage_q: int, cfg: ReSVConfig) -> int:
    return (coverage_q * total + (1 << cfg.coverage_frac_bits) - 1) >> cfg.coverage_frac_bits


def wicsum_select_exact_q(
    scores_q: np.ndarray, counts: np.ndarray, cfg: ReSVConfig, *, coverage_q: int | None = None
) -> np.ndarray:
    """Exact WiCSum on fixed-point inputs (module docstring): ids in descending score, ties
    to the lower id, the shortest prefix reaching ``theta``."""
    s, c, cq = _check_row(scores_q, counts, cfg, coverage_q)
    w = exact_weights(s, c, cfg)
    order = np.lexsort((np.arange(s.size), -s))
    cum = np.cumsum(w[order])
    theta = _threshold(int(cum[-1]), cq, cfg)
    k = int(np.searchsorted(cum, theta, side="left")) + 1
    return order[:k]


@dataclass(frozen=True)
class QuickSelection:
    """Result and work of the weighted quick-select (what ``WeightedQuickSelect`` emits)."""

    #: (k,) selected cluster ids, ascending (the emit order).
    selected: np.ndarray
    #: threshold key ``K*`` (the last cluster of the exact order that is selected).
    key: int
    #: total mass ``M``.
    total_mass: int
    #: ``theta = ceil(coverage_q * M / 2**coverage_frac_bits)``.
    threshold: int
    #: clusters read by each partition pass (pass 1 first).
    pass_reads: tuple[int, ...]
    #: rows of ``lanes`` clusters the emit pass reads, up to the one holding the last id:
    #: from row 0 at ``lanes = 1``, from the row of the first selected id with more lanes.
    emit_rows: int
    #: cycles the emit pass spends on those rows: one per row (``emit_rows``; the selected
    #: ids of a row leave in one beat, ``golden.resv.emit_beats``, or one id per row at
    #: ``lanes = 1``).
    emit_row_cycles: int


def cluster_keys(scores_q: np.ndarray, cfg: ReSVConfig, id_bits: int) -> np.ndarray:
    """``K_c = (s_c - score_min) << id_bits | (2**id_bits - 1 - c)``."""
    s = np.asarray(scores_q, np.int64)
    ids = np.arange(s.size, dtype=np.int64)
    return ((s - cfg.score_min) << id_bits) | ((1 << id_bits) - 1 - ids)


def quickselect(
    scores_q: np.ndarray,
    counts: np.ndarray,
    cfg: ReSVConfig,
    *,
    lanes: int,
    id_bits: int,
    coverage_q: int | None = None,
) -> QuickSelection:
    """The weighted quick-select of the module docstring, step by step as the hardware
    does it; ``id_bits`` is the cluster id width of the key (``HWConfig.cluster_id_bits``)."""
    s, c, cq = _check_row(scores_q, counts, cfg, coverage_q)
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
    if s.size > 1 << id_bits:
        raise ValueError(f"id_bits must hold {s.size} cluster ids, not {id_bits!r}")
    w = exact_weights(s, c, cfg)
    key = cluster_keys(s, cfg, id_bits)
    total = int(w.sum())
    theta = _threshold(total, cq, cfg)
    live = np.ones(s.size, bool)  # S_j, the set the next step splits
    reads = [s.size]  # pass 1 reads the row; the pass splitting S_j (j >= 1) reads S_{j-1}
    acc = 0
    while live.sum() > 1:
        p = (int(key[live].min()) + int(key[live].max())) >> 1
        high = live & (key > p)
        w_high = int(w[high].sum())
        size = int(live.sum())
        if acc + w_high >= theta:
            live = high
        else:
            acc += w_high
            live = live & (key <= p)
        if live.sum() > 1:
            reads.append(size)
    k_star = int(key[live][0])
    sel = np.flatnonzero(key >= k_star)
    # One lane reads from row 0; more lanes from the row of the first selected id.
    rows = int(sel[-1]) // lanes + 1 - (int(sel[0]) // lanes if lanes > 1 else 0)
    return QuickSelection(
        selected=sel,
        key=k_star,
        total_mass=total,
        threshold=theta,
        pass_reads=tuple(reads),
        emit_rows=rows,
        emit_row_cycles=rows,
    )
