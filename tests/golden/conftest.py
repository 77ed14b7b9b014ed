"""Fixtures shared by the golden-model tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from golden.bf16 import bf16_round
from golden.trace import FORMAT_VERSION, Trace


def _random_trace(
    *,
    seed: int,
    layers: int,
    head_dim: int,
    frame_offsets: Sequence[int],
    decode_after: Sequence[int],
) -> Trace:
    """A hand-made trace of BF16-rounded N(0, 1) arrays: ``layers`` layers, 2 KV heads of 2
    query heads each, the frames ``frame_offsets``, a decode query per ``decode_after``."""
    rng = np.random.default_rng(seed)
    n, nd, d = frame_offsets[-1], len(decode_after), head_dim

    def f(*shape):
        return bf16_round(rng.standard_normal(shape).astype(np.float32))

    return Trace(
        keys=f(layers, 2, n, d),
        values=f(layers, 2, n, d),
        queries=f(layers, 4, n, d),
        decode_queries=f(layers, 4, nd, d),
        decode_after=np.array(decode_after, np.int64),
        frame_offsets=np.array(frame_offsets, np.int64),
        meta={"format_version": FORMAT_VERSION, "clip": "synthetic", "note": "unit test"},
    )


@pytest.fixture
def random_trace():
    """The factory ``random_trace(seed=, layers=, head_dim=, frame_offsets=, decode_after=)``."""
    return _random_trace
