import numpy as np
import pytest

from golden.baselines import full, oracle_topk, rekv_blocks, sliding_window
from golden.rope import rope
from golden.synthetic import synthetic_keys, synthetic_signatures


def test_rope_preserves_norm_and_relative_position():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((1, 16)), rng.standard_normal((1, 16))
    a = rope(q, np.array([10])) @ rope(k, np.array([3])).T
    b = rope(q, np.array([107])) @ rope(k, np.array([100])).T
    assert np.allclose(a, b, atol=1e-4)  # depends on the offset only
    x = rng.standard_normal((5, 16))
    assert np.allclose(np.linalg.norm(rope(x, np.arange(5)), axis=1), np.linalg.norm(x, axis=1))
    assert np.allclose(rope(x, np.zeros(5)), x, atol=1e-6)


def test_rope_bad_input():
    with pytest.raises(ValueError, match=r"^positions must have shape \(2,\), not \(3,\)$"):
        rope(np.zeros((2, 4)), np.arange(3))
    with pytest.raises(ValueError, match=r"^x must have an even last dimension, not 3$"):
        rope(np.zeros((2, 3)), np.arange(2))


def test_synthetic_keys_redundancy_controls_frame_similarity():
    def corr(r):
        k, off = synthetic_keys(frames=6, tokens_per_frame=20, head_dim=32, redundancy=r, seed=1)
        a, b = k[0, 0, off[2] : off[3]], k[0, 0, off[3] : off[4]]
        return np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))

    assert corr(0.99) > 0.95 and abs(corr(0.0)) < 0.2
    k1, _ = synthetic_keys(frames=2, tokens_per_frame=3, head_dim=4, redundancy=0.5, seed=7)
    k2, _ = synthetic_keys(frames=2, tokens_per_frame=3, head_dim=4, redundancy=0.5, seed=7)
    assert (k1 == k2).all() and k1.dtype == np.float32
    with pytest.raises(ValueError, match=r"^redundancy must be in \[0\.0, 1\.0\], not 1\.5$"):
        synthetic_keys(frames=2, tokens_per_frame=3, head_dim=4, redundancy=1.5)


def test_synthetic_signatures_fit_and_repeat():
    s = synthetic_signatures(200, hash_bits=12, redundancy=0.9, seed=3)
    assert s.dtype == np.uint64 and (s < 2**12).all()
    assert (s == synthetic_signatures(200, hash_bits=12, redundancy=0.9, seed=3)).all()
    near = np.bitwise_count(s[1:] ^ s[:-1])
    far = np.bitwise_count(
        synthetic_signatures(200, hash_bits=12, redundancy=0.0, seed=3)[1:] ^ s[:-1]
    )
    assert near.mean() < far.mean()


def test_oracle_takes_the_largest_mass():
    p = np.array([[0.1, 0.5, 0.05, 0.35], [0.2, 0.2, 0.1, 0.5]])
    assert oracle_topk(p, 2).tolist() == [1, 3]
    assert oracle_topk(p, 10).tolist() == [0, 1, 2, 3]
    assert full(3).tolist() == [0, 1, 2]


def test_sliding_window_keeps_sinks_and_recent():
    assert sliding_window(10, 5, sink_tokens=2).tolist() == [0, 1, 7, 8, 9]
    assert sliding_window(4, 10, sink_tokens=2).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"^budget must be a positive integer, not 0$"):
        sliding_window(4, 0, sink_tokens=1)


def test_rekv_blocks_takes_best_whole_frames_within_budget():
    keys = np.zeros((12, 2))
    keys[4:8] = [1.0, 0.0]  # frame 1 matches the query
    keys[8:12] = [0.5, 0.0]
    off = np.array([0, 4, 8, 12])
    got = rekv_blocks(np.array([1.0, 0.0]), keys, off, 6, sink_tokens=1, recent_tokens=1)
    assert got.tolist() == [0, 4, 5, 6, 7, 11]  # sink, frame 1, recent; frame 2 would overflow
