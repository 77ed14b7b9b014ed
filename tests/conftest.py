"""Fixtures shared by the test folders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from golden.bf16 import bf16_round
from golden.rope import rope
from workloads.trace import FORMAT_VERSION, Segment, Trace

ROPE_BASE = 10000.0


def _random_trace(
    *,
    seed: int,
    layers: int,
    head_dim: int,
    frame_offsets: Sequence[int],
    decode_after: Sequence[int],
) -> Trace:
    """A hand-made trace of BF16-rounded N(0, 1) arrays: ``layers`` layers, 2 KV heads of 2
    query heads each, the frames ``frame_offsets``, an external decode query after each
    frame of ``decode_after``; post-RoPE arrays by ``golden.rope.rope`` (base 1e4)."""
    rng = np.random.default_rng(seed)
    n, nd, d = frame_offsets[-1], len(decode_after), head_dim
    offsets = np.array(frame_offsets, np.int64)
    context = offsets[np.array(decode_after, np.int64) + 1]

    def f(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    keys, queries, dq = f(layers, 2, n, d), f(layers, 4, n, d), f(layers, 4, nd, d)
    pos = np.arange(n)
    return Trace(
        keys=bf16_round(keys),
        keys_post=bf16_round(rope(keys, pos, base=ROPE_BASE)),
        values=bf16_round(f(layers, 2, n, d)),
        queries=bf16_round(queries),
        queries_post=bf16_round(rope(queries, pos, base=ROPE_BASE)),
        decode_queries=bf16_round(dq),
        decode_queries_post=bf16_round(rope(dq, context, base=ROPE_BASE)),
        decode_positions=context,
        decode_context=context,
        frame_offsets=offsets,
        segment_kind=np.full(len(offsets) - 1, Segment.FRAME, np.int8),
        meta={
            "format_version": FORMAT_VERSION,
            "rope_base": ROPE_BASE,
            "clip": "synthetic",
            "note": "unit test",
        },
    )


@pytest.fixture
def random_trace():
    """The factory ``random_trace(seed=, layers=, head_dim=, frame_offsets=, decode_after=)``."""
    return _random_trace


def pytest_configure(config: pytest.Config) -> None:
    """In CI (``CI`` set) without a user ``SEED``, draw one random seed for the session's
    cocotb runs (``sim.kit.runner.run_seed``); it is inherited by the xdist workers, printed in
    the session header and quoted with a replay command by every failing run."""
    import os
    import secrets

    from sim.kit.runner import SESSION_SEED

    if os.environ.get("CI") and not os.environ.get("SEED") and SESSION_SEED not in os.environ:
        os.environ[SESSION_SEED] = str(secrets.randbelow(2**31 - 1) + 1)


def pytest_report_header(config: pytest.Config) -> str:
    from sim.kit.runner import run_seed

    seed, source = run_seed()
    return f"cocotb SEED={seed} ({source})"


def pytest_collection_modifyitems(config, items):
    """Start the ``slow`` tests first: with ``--dist worksteal`` (``make test``) their worker
    runs them first while the other takes the short tests and steals, so no long test starts
    last and keeps one worker busy while the other idles. The ``late`` tests go last: they
    reuse a build a slow test makes, so they find it done instead of waiting for it."""

    def rank(item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        return 2 if item.get_closest_marker("late") else 1

    items.sort(key=rank)
