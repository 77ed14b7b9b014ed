"""Retrieval baselines at a given token budget (shared/SPEC.md section 6).

Each function returns the ascending token ids a method would attend to, given the same
budget (number of tokens) that ReSV retrieved, so that accuracy and traffic compare at equal
cost. ``full`` is the reference itself.

- ``full``: every token.
- ``oracle_topk``: the ``budget`` tokens with the largest true attention probability summed
  over the query vectors (GQA group, prefill block): a Quest/ReKV-like upper bound that no
  real method reaches, since it needs every score.
- ``rekv_blocks``: ReKV-like frame-block retrieval: sinks and the recent window, then whole
  frames in descending ``mean query . mean key`` order while they fit in the budget.
- ``sliding_window``: StreamingLLM-like: the sink tokens plus the most recent tokens.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BASELINES", "full", "oracle_topk", "rekv_blocks", "sliding_window"]


def _check_budget(budget: int, n: int) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 1:
        raise ValueError(f"budget must be a positive integer, not {budget!r}")
    return min(int(budget), n)


def full(n: int) -> np.ndarray:
    return np.arange(n)


def oracle_topk(probs: np.ndarray, budget: int) -> np.ndarray:
    """Top-``budget`` tokens by ``probs`` (r, n) summed over rows; ties to the older token."""
    p = np.atleast_2d(np.asarray(probs, np.float64)).sum(axis=0)
    b = _check_budget(budget, p.size)
    return np.sort(np.argsort(-p, kind="stable")[:b])


def sliding_window(n: int, budget: int, *, sink_tokens: int) -> np.ndarray:
    b = _check_budget(budget, n)
    sinks = np.arange(min(sink_tokens, b, n))
    recent = np.arange(max(n - (b - sinks.size), sinks.size), n)
    return np.union1d(sinks, recent)


def rekv_blocks(
    q_mean: np.ndarray,
    keys: np.ndarray,
    frame_offsets: np.ndarray,
    budget: int,
    *,
    sink_tokens: int,
    recent_tokens: int,
) -> np.ndarray:
    """Frame blocks scored by ``q_mean . mean(block keys)``, filled greedily into ``budget``."""
    keys = np.asarray(keys, np.float64)
    n = keys.shape[0]
    b = _check_budget(budget, n)
    kept = np.zeros(n, bool)
    kept[: min(sink_tokens, n)] = True
    kept[max(n - recent_tokens, 0) :] = True
    off = np.asarray(frame_offsets)
    off = off[off <= n]
    starts, ends = off[:-1], off[1:]
    means = np.stack([keys[s:e].mean(axis=0) for s, e in zip(starts, ends, strict=True)])
    used = int(kept.sum())
    for f in np.argsort(-(means @ np.asarray(q_mean, np.float64)), kind="stable"):
        new = ~kept[starts[f] : ends[f]]
        if used + int(new.sum()) > b:
            continue
        kept[starts[f] : ends[f]] = True
        used += int(new.sum())
    return np.flatnonzero(kept)


BASELINES = ("full", "oracle_topk", "rekv_blocks", "sliding_window")
