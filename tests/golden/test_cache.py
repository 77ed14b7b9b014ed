import itertools

import numpy as np
import pytest

from golden.bf16 import bf16_round
from golden.cache import StreamingCache, int8_round, with_floor
from golden.config import SPEC_RULE, preset
from golden.resv import attention, cluster_online, signatures
from golden.rope import rope
from golden.synthetic import synthetic_keys

CFG = preset("tiny").replace(**SPEC_RULE).replace(coverage=0.8)
FRAMES, TPF = 8, 6


def _stream(cfg=CFG, layers=2, heads=2, seed=0):
    k, off = synthetic_keys(
        frames=FRAMES,
        tokens_per_frame=TPF,
        head_dim=cfg.head_dim,
        redundancy=0.8,
        layers=layers,
        kv_heads=heads,
        offset=1.0,
        seed=seed,
    )
    v, _ = synthetic_keys(
        frames=FRAMES,
        tokens_per_frame=TPF,
        head_dim=cfg.head_dim,
        redundancy=0.3,
        layers=layers,
        kv_heads=heads,
        seed=seed + 1,
    )
    return k, v, off


def _filled(cfg=CFG, q_per_kv=2):
    k, v, off = _stream(cfg)
    cache = StreamingCache(cfg, layers=2, kv_heads=2, q_per_kv=q_per_kv)
    stats = [cache.ingest(k[:, :, a:b], v[:, :, a:b]) for a, b in itertools.pairwise(off)]
    return cache, k, v, stats


def test_clustering_equals_cluster_online_on_aged_tokens():
    cache, k, _, stats = _filled()
    n = FRAMES * TPF
    end = n - CFG.recent_tokens
    for l in range(2):
        for h in range(2):
            bias = bf16_round(k[l, h, :TPF].mean(axis=0, dtype=np.float64))
            sig = signatures(k[l, h] - bias, CFG.planes)  # pre-RoPE hashing, centred
            assert (cache.signatures(l, h) == sig).all()
            ref = cluster_online(
                sig[CFG.sink_tokens : end],
                threshold=CFG.threshold,
                max_clusters=CFG.max_clusters,
                count_max=CFG.count_max,
            )
            a = cache.assignment(l, h)
            assert (a[: CFG.sink_tokens] == -1).all() and (a[end:] == -1).all()
            assert a[CFG.sink_tokens : end].tolist() == ref.assign.tolist()
            assert cache.tables[l][h].counts.tolist() == ref.counts.tolist()
            keysum = np.zeros((ref.counts.size, CFG.head_dim))
            np.add.at(keysum, ref.assign, rope(k[l, h], np.arange(n))[CFG.sink_tokens : end])
            assert np.allclose(cache.representatives(l, h), keysum / ref.counts[:, None])
    assert sum(s.clustered for s in stats) == 4 * (end - CFG.sink_tokens)
    assert sum(s.joined + s.created + s.forced for s in stats) == 4 * (end - CFG.sink_tokens)


def test_post_rope_hashing_uses_rotated_keys():
    cfg = CFG.replace(hash_space="post_rope", centre_keys=False)
    cache, k, _, _ = _filled(cfg)
    sig = signatures(rope(k[1, 0], np.arange(FRAMES * TPF)), cfg.planes)
    assert (cache.signatures(1, 0) == sig).all()


def test_query_attends_over_kept_and_selected_members():
    cache, *_ = _filled()
    q = np.random.default_rng(1).standard_normal((2, 4, 1, CFG.head_dim)).astype(np.float32) * 2
    pos = np.array([cache.n_tokens])
    res = cache.query(q, pos)
    qp = rope(q, pos)
    for l in range(2):
        for h in range(2):
            r = res.retrieved[l][h]
            a = cache.assignment(l, h)
            expect = np.flatnonzero((a < 0) | np.isin(a, r.clusters))
            assert r.tokens.tolist() == expect.tolist()
            assert 0 < r.clusters.size <= r.n_clusters and r.selections == 2  # GQA group of 2
            for g in range(2):
                o = attention(
                    qp[l, 2 * h + g], cache.keys(l, h)[r.tokens], cache.values(l, h)[r.tokens]
                )
                assert np.allclose(res.outputs[l, 2 * h + g], o)
    assert cache.history[-1] is res


def test_full_coverage_exact_retrieves_everything_and_matches_full_attention():
    cache, *_ = _filled(CFG.replace(coverage=1.0, selection="exact"))
    q = np.random.default_rng(2).standard_normal((2, 4, 3, CFG.head_dim)).astype(np.float32)
    pos = np.arange(cache.n_tokens - 3, cache.n_tokens)
    res = cache.query(q, pos, kind="prefill")
    qp = rope(q, pos)
    for l in range(2):
        for h in range(2):
            assert res.retrieved[l][h].tokens.size == cache.n_tokens
            full = attention(qp[l, 2 * h], cache.keys(l, h), cache.values(l, h))
            assert np.allclose(res.outputs[l, 2 * h], full)


def test_prefill_mean_mode_runs_one_selection_per_head():
    cache, *_ = _filled(CFG.replace(prefill_mode="mean"))
    q = np.random.default_rng(3).standard_normal((2, 4, 5, CFG.head_dim)).astype(np.float32)
    res = cache.query(q, np.arange(5) + cache.n_tokens - 5, kind="prefill")
    assert res.retrieved[0][0].selections == 2
    cache_u, *_ = _filled(CFG.replace(prefill_mode="union"))
    res_u = cache_u.query(q, np.arange(5) + cache.n_tokens - 5, kind="prefill")
    assert res_u.retrieved[0][0].selections == 10


def test_full_table_forces_joins():
    cfg = CFG.replace(max_clusters=2, threshold=0)
    stats = _filled(cfg)[3]
    assert sum(s.forced for s in stats) > 0
    assert sum(s.created for s in stats) == 4 * 2


def test_bad_input():
    cache = StreamingCache(CFG, layers=1, kv_heads=2)
    with pytest.raises(ValueError, match=r"^the cache is empty: ingest a frame before querying$"):
        cache.query(np.zeros((1, 2, 1, 16)), np.array([0]))
    with pytest.raises(
        ValueError, match=r"^keys must have shape \(1, 2, n, 16\), not \(1, 3, 4, 16\)$"
    ):
        cache.ingest(np.zeros((1, 3, 4, 16)), np.zeros((1, 3, 4, 16)))
    with pytest.raises(ValueError, match=r"^keys must be finite \(found NaN or inf\)$"):
        cache.ingest(np.full((1, 2, 4, 16), np.nan), np.zeros((1, 2, 4, 16)))
    cache.ingest(np.ones((1, 2, 4, 16)), np.zeros((1, 2, 4, 16)))
    with pytest.raises(ValueError, match=r"^kind must be 'decode' or 'prefill', not 'x'$"):
        cache.query(np.zeros((1, 2, 1, 16)), np.array([4]), kind="x")
    with pytest.raises(ValueError, match=r"^q_per_kv must be a positive integer, not 0$"):
        StreamingCache(CFG, layers=1, kv_heads=1, q_per_kv=0)


# ReSV variants (README "ReSV variants") --------------------------------------------------


def test_variance_correction_adds_the_member_spread():
    cfg = CFG.replace(score_correction="variance")
    cache, k, _, _ = _filled(cfg)
    q = np.random.default_rng(4).standard_normal((3, CFG.head_dim))
    d = CFG.head_dim
    n = FRAMES * TPF
    kp = rope(k[0, 1], np.arange(n)).astype(np.float64)
    a = cache.assignment(0, 1)
    c = cache.tables[0][1].size
    members = [kp[a == i] for i in range(c)]
    v = np.array([np.mean(np.sum(m * m, axis=1)) - np.sum(m.mean(0) ** 2) for m in members]) / d
    plain = q @ np.stack([m.mean(0) for m in members]).T / np.sqrt(d)
    expect = plain + 0.5 * np.sum(q * q, axis=1)[:, None] * v[None, :] / d
    np.testing.assert_allclose(cache.scores(0, 1, q), expect, rtol=1e-9, atol=1e-9)
    assert (v >= -1e-12).all() and (v > 0).any()


def test_int8_representatives_round_per_cluster():
    rep = np.array([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0], [100.0, 3.0, -7.0]])
    got = int8_round(rep)
    np.testing.assert_array_equal(got[1], 0)
    for row, g in zip(rep[[0, 2]], got[[0, 2]], strict=True):
        scale = np.abs(row).max() / 127
        assert np.abs(g - row).max() <= 0.51 * scale * 1.01
    plain, *_ = _filled()
    small, *_ = _filled(CFG.replace(rep_format="int8"))
    np.testing.assert_array_equal(
        small.representatives(1, 0), int8_round(plain.representatives(1, 0))
    )


def test_rope_aware_representative_rotates_the_pre_rope_mean():
    cache, k, _, _ = _filled(CFG.replace(representative="rope_aware"))
    a = cache.assignment(1, 1)
    c = cache.tables[1][1].size
    pos = np.arange(FRAMES * TPF)
    for i in range(c):
        m = a == i
        expect = rope(k[1, 1][m].astype(np.float64).mean(0)[None], np.array([pos[m].mean()]))
        np.testing.assert_allclose(cache.representatives(1, 1)[i], expect[0], rtol=1e-5, atol=1e-5)


def test_page_fallback_policy_in_the_cache():
    cfg = CFG.replace(cluster_policy="page_fallback", page_tokens=4, threshold=0)
    cache, *_, stats = _filled(cfg)
    assert sum(s.paged for s in stats) > 0
    a = cache.assignment(0, 0)
    clustered = np.flatnonzero(a >= 0)
    # At most one cluster is founded per page of 4 positions.
    assert cache.tables[0][0].size <= len(set(clustered // 4))


def test_mass_prefill_and_attended_scope():
    q = np.random.default_rng(5).standard_normal((2, 4, 5, CFG.head_dim)).astype(np.float32)
    pos = np.arange(5) + FRAMES * TPF - 5
    mass, *_ = _filled(CFG.replace(prefill_mode="mass", selection="exact"))
    res = mass.query(q, pos, kind="prefill")
    assert res.retrieved[0][0].selections == 10
    # mass with coverage 1 takes every cluster.
    full, *_ = _filled(CFG.replace(prefill_mode="mass", coverage=1.0))
    assert full.query(q, pos, kind="prefill").retrieved[1][1].tokens.size == FRAMES * TPF
    # Attended scope: a query aligned with a kept key (a sink) needs no cluster.
    cache, *_ = _filled(CFG.replace(coverage_scope="attended", selection="exact"))
    sink_key = cache.keys(0, 0)[0]
    rows = np.stack([sink_key * 20, sink_key * 20])
    assert cache.select(0, 0, rows)[0].size == 0
    assert cache.select_mass(0, 0, rows).size == 0
    assert cache.free_scores(0, 0, rows).shape == (2, CFG.sink_tokens + CFG.recent_tokens)


def test_min_fraction_floor_adds_the_heaviest_clusters():
    scores = np.array([[0.0, 2.0, -1.0, 1.0]])
    counts = np.array([4, 1, 10, 5])
    none = np.zeros(0, np.int64)
    assert with_floor(none, scores, counts, 0.0).tolist() == []
    # W ranks clusters 3 (5 e^-1), 1 (1), 0 (4 e^-2), 2 (10 e^-3): 5 then 6 of 20 tokens.
    assert with_floor(none, scores, counts, 0.25).tolist() == [3]
    assert with_floor(none, scores, counts, 0.3).tolist() == [1, 3]
    assert with_floor(np.array([2]), scores, counts, 0.25).tolist() == [2]  # already 10/20
    cache, *_ = _filled(CFG.replace(min_fraction=0.5, selection="exact"))
    q = np.random.default_rng(6).standard_normal((1, CFG.head_dim)) * 4
    clusters, _, _ = cache.select(0, 0, q, coverage=0.01)
    counts = cache.tables[0][0].counts
    assert counts[clusters].sum() >= 0.5 * counts.sum()
