"""golden.baselines: every method's selection rule and byte accounting on hand-made contexts."""

import itertools
import math

import numpy as np
import pytest

from golden.baselines import (
    KMEANS_CHUNK,
    METHODS,
    Context,
    KMeans,
    Oracle,
    Pages,
    Quest,
    ReKV,
    ReSV,
    Rows,
    TopK,
    Window,
    spherical_kmeans,
)
from golden.config import SPEC_RULE, preset
from golden.evaluate import Stream, full_attention

CFG = preset("tiny").replace(**SPEC_RULE).replace(sink_tokens=2, recent_tokens=4, page_tokens=4)
D = CFG.head_dim


def _context(n=40, lo=2, hi=36, seed=0, segments=None):
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((n, D)).astype(np.float32)
    v = rng.standard_normal((n, D)).astype(np.float32)
    seg = np.array(segments if segments is not None else [0, 10, 20, 30, n])
    return Context(0, 0, k, k, v, lo, hi, seg)


def _rows(ctx, q, kind="decode", heads=None, tokens=1):
    q = np.atleast_2d(np.asarray(q, np.float64))
    _, probs = full_attention(q, ctx.keys_post, None)
    return Rows(kind, q, heads or q.shape[0], tokens, probs)


def test_registry_and_labels():
    assert set(METHODS) == {"oracle", "topk", "quest", "pages", "kmeans", "rekv", "window"}
    for name, cls in METHODS.items():
        m = cls(CFG)
        assert m.name == name and m.param in ("coverage", "fraction", "recall") and m.label
        assert list(m.grid) == sorted(m.grid) and m.grid[0] > 0 and m.grid[-1] <= 1


def test_every_selection_is_old_sorted_and_nested():
    """Selections lie in [lo, hi), ascending, unique, and grow with the budget parameter."""
    ctx = _context()
    rows = _rows(ctx, np.random.default_rng(1).standard_normal((2, D)))
    for cls in METHODS.values():
        m = cls(CFG)
        sels, meta = m.select(ctx, rows, m.grid)
        assert len(sels) == len(m.grid)
        assert np.all(np.asarray(meta) >= 0)
        for s in sels:
            assert s.dtype.kind == "i" and np.all(np.diff(s) > 0)
            assert s.size == 0 or (s.min() >= ctx.lo and s.max() < ctx.hi)
        sizes = [s.size for s in sels]
        assert sizes == sorted(sizes), m.name
        if m.name != "rekv":  # greedy fill may skip a block that a larger budget takes
            for a, b in itertools.pairwise(sels):
                assert set(a) <= set(b), m.name


def test_oracle_reaches_the_recall_with_the_fewest_tokens():
    ctx = _context()
    rows = _rows(ctx, np.random.default_rng(2).standard_normal((1, D)) * 3)
    p = rows.probs[0]
    free = p.sum() - p[ctx.lo : ctx.hi].sum()
    for r, sel in zip(Oracle.grid, Oracle(CFG).select(ctx, rows, Oracle.grid)[0], strict=True):
        got = free + p[sel].sum()
        assert got >= r * p.sum() - 1e-12 or sel.size == ctx.n_old
        # One token fewer (the smallest taken) misses the target: the set is minimal.
        if sel.size:
            assert got - p[sel].min() < r * p.sum()
        assert set(np.argsort(-p[ctx.lo : ctx.hi])[: sel.size] + ctx.lo) == set(sel)


def test_topk_takes_the_fraction_and_pays_for_every_key():
    ctx = _context()
    rows = _rows(ctx, np.random.default_rng(3).standard_normal((3, D)))
    sels, meta = TopK(CFG).select(ctx, rows, [0.1, 0.5])
    assert [s.size for s in sels] == [math.ceil(0.1 * 34), 17]
    mass = rows.probs.sum(axis=0)[ctx.lo : ctx.hi]
    assert set(sels[0] - ctx.lo) == set(np.argsort(-mass)[: sels[0].size])
    # All old keys read once: unselected keys as metadata, the selected ones with their KV.
    assert meta == [(34 - s.size) * D * 2 for s in sels]


def test_window_takes_the_most_recent_old_tokens():
    ctx = _context()
    sels, meta = Window(CFG).select(ctx, _rows(ctx, np.ones(D)), [0.1, 1.0])
    np.testing.assert_array_equal(sels[0], np.arange(32, 36))
    np.testing.assert_array_equal(sels[1], np.arange(2, 36))
    assert meta == 0


def test_quest_bounds_rank_the_page_holding_the_query():
    """A query equal to one old key: that key's page has the largest bound."""
    ctx = _context()
    q = ctx.keys_post[17] * 4
    sels, meta = Quest(CFG).select(ctx, _rows(ctx, q), [0.01])
    np.testing.assert_array_equal(sels[0], np.arange(14, 18))  # page of token 17 from lo=2
    assert meta == 9 * 2 * D * 2  # 9 pages of 4 (last one 2 tokens): min and max in BF16


def test_pages_use_resv_wicsum_and_count_their_table():
    ctx = _context()
    q = ctx.keys_post[17] * 4
    m = Pages(CFG.replace(selection="exact"))
    sels, meta = m.select(ctx, _rows(ctx, q), [0.5, 1.0])
    assert 17 in sels[0]
    np.testing.assert_array_equal(sels[1], np.arange(2, 36))
    assert meta == 9 * (2 * D + 1)  # 8-bit counts at the tiny preset


def test_attended_scope_fetches_nothing_when_the_free_tokens_hold_the_mass():
    """A query that points at a sink: with coverage of all attention, nothing old is needed."""
    ctx = _context()
    q = ctx.keys_post[0] * 8
    m = Pages(CFG.replace(selection="exact", coverage_scope="attended"))
    sels, _ = m.select(ctx, _rows(ctx, q), [0.9])
    assert sels[0].size == 0
    sels, _ = Pages(CFG.replace(selection="exact")).select(ctx, _rows(ctx, q), [0.9])
    assert sels[0].size > 0


def test_rekv_fills_whole_blocks_within_the_budget():
    ctx = _context(segments=[0, 6, 20, 30, 40])
    q = ctx.keys_post[25] * 4
    sels, meta = ReKV(CFG).select(ctx, _rows(ctx, q), [0.3, 0.5])
    np.testing.assert_array_equal(sels[0], np.arange(20, 30))  # the block of token 25
    assert set(sels[1]) >= set(range(20, 30)) and sels[1].size <= 17
    assert meta == 4 * D * 2  # blocks [2,6) [6,20) [20,30) [30,36)


def test_spherical_kmeans_separates_directions_deterministically():
    rng = np.random.default_rng(4)
    centres = np.eye(3, 8) * 5
    x = np.repeat(centres, 10, axis=0) + 0.1 * rng.standard_normal((30, 8))
    a = spherical_kmeans(x, 3)
    assert len(set(a)) == 3 and all(len(set(a[i * 10 : (i + 1) * 10])) == 1 for i in range(3))
    np.testing.assert_array_equal(a, spherical_kmeans(x, 3))


def test_kmeans_clusters_chunks_of_aged_tokens():
    n = KMEANS_CHUNK + 60
    ctx = _context(n=n, lo=2, hi=n - 4)
    m = KMeans(CFG)
    sels, meta = m.select(ctx, _rows(ctx, ctx.keys_post[100] * 4), [0.01, 1.0])
    assert 100 in sels[0]
    np.testing.assert_array_equal(sels[1], np.arange(2, n - 4))
    # One full chunk of 256 tokens (64 clusters of 4) and a partial one of 54 (14 clusters).
    assert meta <= (64 + 14) * (2 * D + 1) and len(m._chunks) == 2


def test_resv_method_selects_members_of_the_caches_clusters(random_trace):
    trace = random_trace(
        seed=5, layers=1, head_dim=D, frame_offsets=[0, 8, 16, 24], decode_after=[2]
    )
    stream = Stream.of(trace)
    m = ReSV(CFG.replace(rope_base=trace.rope_base))
    m.advance(stream, 24)
    cache = m.cache
    ctx = stream.context(0, 1, 24, CFG.sink_tokens, 24 - CFG.recent_tokens)
    q = trace.decode_queries_post[0, 2:4, 0].astype(np.float64)
    sels, meta = m.select(ctx, _rows(ctx, q), [1.0])
    np.testing.assert_array_equal(sels[0], np.arange(ctx.lo, ctx.hi))  # coverage 1: all
    assert meta == cache.tables[0][1].size * CFG.table_bytes_per_cluster
    clusters, _, _ = cache.select(0, 1, q, coverage=0.5)
    sels, _ = m.select(ctx, _rows(ctx, q), [0.5])
    np.testing.assert_array_equal(
        sels[0], np.flatnonzero(np.isin(cache.assignment(0, 1), clusters))
    )
    behind = stream.context(0, 1, 30, CFG.sink_tokens, 26)
    with pytest.raises(ValueError, match=r"^the ReSV state holds 24 tokens"):
        m.select(behind, _rows(ctx, q), [0.5])
