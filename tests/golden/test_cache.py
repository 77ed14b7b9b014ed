import itertools

import numpy as np
import pytest

from golden.bf16 import bf16_round
from golden.cache import StreamingCache
from golden.config import preset
from golden.resv import attention, cluster_online, signatures
from golden.rope import rope
from golden.synthetic import synthetic_keys

CFG = preset("tiny").replace(coverage=0.8)
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
