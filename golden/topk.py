"""Reference of the conventional top-k cluster selector (``hw.dre.TopKSelector``).

``topk_select(scores_q, k)`` returns the ``min(k, C)`` cluster ids with the highest
fixed-point scores, in descending score order, ties to the lower id. Counts play no part:
that is what distinguishes a top-k selector from WiCSum.
"""

from __future__ import annotations

import numpy as np

__all__ = ["topk_select"]


def topk_select(scores_q: np.ndarray, k: int) -> np.ndarray:
    """Ids (int64) of the ``min(k, C)`` best clusters: descending score, ties lowest id."""
    s = np.asarray(scores_q)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores_q must be a non-empty 1-D array, not shape {s.shape}")
    if not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"scores_q must be integers (fixed point), not dtype {s.dtype}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be a non-negative integer, not {k!r}")
    order = np.lexsort((np.arange(s.size), -s.astype(np.int64)))
    return order[: min(int(k), s.size)].astype(np.int64)
