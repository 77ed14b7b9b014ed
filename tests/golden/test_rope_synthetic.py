import numpy as np
import pytest

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


def test_rope_without_a_base_is_the_identity():
    x = np.random.default_rng(1).standard_normal((3, 8))
    y = rope(x, np.arange(3), base=None)
    assert y.dtype == np.float32 and np.array_equal(y, x.astype(np.float32))


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
