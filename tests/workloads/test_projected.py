"""workloads.projected: K/V/Q traces from real-frame features under seeded projections."""

import math

import numpy as np
import pytest

from golden.bf16 import bf16_round
from golden.rope import rope
from workloads.features import frame_features
from workloads.projected import PRESETS, WorkloadConfig, make_trace, orthonormal_lift, preset
from workloads.trace import NOT_LLM_KEYS, Trace
from workloads.video import read_frames

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny() -> Trace:
    return make_trace(TINY, progress=False)


@pytest.fixture(scope="module")
def tiny_rec() -> Trace:
    return make_trace(PRESETS["tiny-rec"], progress=False)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_presets():
    assert {"tiny", "tiny-rec", "tiny-pixels", "bench", "bench-native"} <= set(PRESETS)
    for name, cfg in PRESETS.items():
        assert isinstance(cfg, WorkloadConfig) and preset(name) is cfg
    assert (TINY.clip, TINY.kv_heads, TINY.head_dim) == ("carphone_pristine", 2, 16)
    assert PRESETS["bench"].head_dim == 128
    with pytest.raises(ValueError, match=r"^preset must be one of 'tiny', .*, not 'huge'$"):
        preset("huge")


def test_tiny_trace_shapes(tiny):
    L, H, G, d, T, F = 2, 2, 2, 16, 49, 4
    assert tiny.keys.shape == tiny.values.shape == (L, H, F * T, d)
    assert tiny.queries.shape == (L, H * G, F * T, d)
    assert tiny.decode_queries.shape == (L, H * G, 4, d)
    np.testing.assert_array_equal(tiny.frame_offsets, np.arange(F + 1) * T)
    np.testing.assert_array_equal(tiny.decode_after, [0, 1, 2, 3])
    for a in (tiny.keys, tiny.values, tiny.queries, tiny.decode_queries):
        assert a.dtype == np.float32 and np.isfinite(a).all()
        np.testing.assert_array_equal(bf16_round(a), a)  # stored in the hardware format
    meta = tiny.meta
    assert NOT_LLM_KEYS in meta["note"]
    assert (meta["clip"], meta["fps"], meta["features"], meta["tokens_per_frame"]) == (
        "carphone_pristine",
        None,
        "det",
        49,
    )
    assert meta["seed"] == 0 and meta["config"]["head_dim"] == 16
    assert meta["native_fps"] == pytest.approx(29.97, abs=0.01)


def test_deterministic_and_seeded(tiny):
    again = make_trace(TINY, progress=False)
    for name in ("keys", "values", "queries", "decode_queries", "decode_after"):
        np.testing.assert_array_equal(getattr(again, name), getattr(tiny, name))
    other = make_trace(TINY.replace(seed=1), progress=False)
    assert not np.array_equal(other.keys, tiny.keys)


def test_a_shorter_stream_has_the_same_keys(tiny):
    """Keys and values do not depend on the stream's length; the query scale does (it is
    calibrated over the whole stream)."""
    short = make_trace(TINY.replace(max_frames=2), progress=False)
    n = short.n_tokens
    assert n == 98
    for name in ("keys", "keys_post", "values"):
        np.testing.assert_array_equal(getattr(short, name), getattr(tiny, name)[:, :, :n])


def test_post_rope_arrays_are_the_rotated_pre_rope_ones(tiny):
    pos = np.arange(tiny.n_tokens)
    for pre, post, at in (
        (tiny.keys, tiny.keys_post, pos),
        (tiny.queries, tiny.queries_post, pos),
        (tiny.decode_queries, tiny.decode_queries_post, tiny.decode_positions),
    ):
        # Both come from the same float32 vectors, rounded to BF16 before or after the
        # rotation: per vector, within a couple of BF16 steps (2**-8 relative).
        ref = rope(pre, at, base=TINY.rope_base)
        rel = np.linalg.norm(post - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
        assert rel.max() < 2**-7
        assert not np.allclose(post, pre, rtol=1e-2)  # the rotation is there
    np.testing.assert_array_equal(tiny.decode_positions, tiny.decode_context)
    assert tiny.rope_base == TINY.rope_base == 500000.0


def test_queries_point_at_content_similar_keys(tiny):
    """Wq = Wk + noise: a token's own key (same content) wins within its frame."""
    G = tiny.q_per_kv
    sl = tiny.frame_slice(0)
    for layer in range(tiny.layers):
        for hq in range(tiny.q_heads):
            logits = tiny.queries[layer, hq, sl] @ tiny.keys[layer, hq // G, sl].T
            # Percentile of a token's own key among the frame's keys, for its query: high
            # (with d = 16 similar neighbouring patches often score as high as itself).
            own = (logits < np.diag(logits)[:, None]).mean(axis=1)
            assert np.median(own) > 0.8


def test_logit_std_is_calibrated_over_the_stream_after_rope(tiny):
    """The median over the stream's query tokens (from frame 1 on) of the std of their causal
    post-RoPE logits is logit_std (the same sampling rule as the generator's)."""
    G, d, n = tiny.q_per_kv, tiny.head_dim, tiny.n_tokens
    picks = np.unique(np.linspace(49, n - 1, 256).astype(int))
    for layer in range(tiny.layers):
        for hq in range(tiny.q_heads):
            q = tiny.queries_post[layer, hq].astype(np.float64)
            k = tiny.keys_post[layer, hq // G].astype(np.float64)
            spread = [np.std(k[: t + 1] @ q[t]) / math.sqrt(d) for t in picks]
            # BF16 rounding of the stored arrays moves it by well under 1 %.
            assert np.median(spread) == pytest.approx(TINY.logit_std, rel=0.01)


def test_decode_queries_ask_about_seen_tokens(tiny):
    picked = tiny.meta["decode_tokens"]
    assert len(picked) == tiny.n_decode
    for j, t in enumerate(picked):
        assert t < tiny.frame_offsets[tiny.decode_after[j] + 1]  # already seen
        base = tiny.queries[:, :, t]
        assert (_cos(tiny.decode_queries[:, :, j], base) > 0.5).all()
        # Noise norm: decode_noise x the head's mean query norm (chi with d = 16 dof).
        mean_norm = np.linalg.norm(tiny.queries, axis=-1).mean(axis=-1)
        ratio = np.linalg.norm(tiny.decode_queries[:, :, j] - base, axis=-1) / mean_norm
        assert np.all((ratio > 0.5 * TINY.decode_noise) & (ratio < 1.6 * TINY.decode_noise))
    exact = make_trace(TINY.replace(decode_noise=0.0), progress=False)
    np.testing.assert_array_equal(exact.decode_queries, exact.queries[:, :, picked])


def test_decode_after_is_spread_evenly():
    cfg = TINY.replace(decode_queries=6, layers=1)
    trace = make_trace(cfg, progress=False)
    np.testing.assert_array_equal(
        trace.decode_after, [0, 0, 1, 1, 2, 3]
    )  # max(floor((j+1)*4/6)-1, 0)
    none = make_trace(TINY.replace(decode_queries=0), progress=False)
    assert none.decode_queries.shape == (2, 4, 0, 16) and none.n_decode == 0


def test_orthonormal_lift_preserves_dot_products():
    rng = np.random.default_rng(3)
    m = orthonormal_lift(rng, 15, 128)
    assert m.shape == (15, 128) and m.dtype == np.float32
    np.testing.assert_allclose(m @ m.T, np.eye(15), atol=1e-6)
    x, y = rng.standard_normal((2, 100, 15))
    np.testing.assert_allclose((x @ m) @ (y @ m).T, x @ y.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m, orthonormal_lift(np.random.default_rng(3), 15, 128))
    with pytest.raises(ValueError, match=r"^k must be in 1\.\.8 \(d\), not 9$"):
        orthonormal_lift(rng, 9, 8)


def test_rec_logits_are_the_models_own(tiny_rec):
    """Query head g = 0 of each group reproduces the SVTR block's logits q_model . k_model."""
    cfg = PRESETS["tiny-rec"]
    frames = read_frames(cfg.clip, fps=cfg.fps, max_frames=cfg.max_frames)
    feats = frame_features(
        frames, source="rec", tokens_per_frame=cfg.tokens_per_frame, progress=False
    )
    G, d = tiny_rec.q_per_kv, tiny_rec.head_dim
    for layer in range(cfg.layers):
        for h in range(cfg.kv_heads):
            q = feats.attn_q[:, layer, h].reshape(-1, 15)
            k = feats.attn_k[:, layer, h].reshape(-1, 15)
            ref = q @ k.T
            got = tiny_rec.queries[layer, h * G] @ tiny_rec.keys[layer, h].T / math.sqrt(d)
            # BF16 storage: each factor carries 2^-9 relative error.
            tol = 2.0**-7 * np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(k, axis=1))
            assert (np.abs(got - ref) <= tol + 1e-6).all()
            # Values are lifted with the same map, so their Gram matrix is preserved too.
            v = feats.attn_v[:, layer, h].reshape(-1, 15)
            vv = tiny_rec.values[layer, h]
            np.testing.assert_allclose(
                vv @ vv.T, v @ v.T, rtol=0.02, atol=0.02 * np.abs(v).max() ** 2
            )
            # The group's other query head is a perturbed, still correlated copy.
            c = _cos(tiny_rec.queries[layer, h * G + 1], tiny_rec.queries[layer, h * G])
            assert 0.5 < np.median(c) < 0.999


def test_pixels_control_makes_a_trace():
    trace = make_trace(PRESETS["tiny-pixels"], progress=False)
    assert trace.keys.shape == (2, 2, 196, 16) and trace.meta["features"] == "pixels"


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {"tokens_per_frame": 50},
            ValueError,
            "tokens_per_frame must be one of 10, 49, 196, not 50",
        ),
        (
            {"features": "vit"},
            ValueError,
            "features must be one of 'det', 'rec', 'pixels', not 'vit'",
        ),
        ({"clip": "nope"}, ValueError, "clip must be one of 'bigbuckbunny', .*, not 'nope'"),
        ({"fps": 0}, ValueError, "fps must be a positive number, not 0"),
        ({"fps": "2"}, TypeError, "fps must be a number, not '2'"),
        ({"max_frames": 0}, ValueError, "max_frames must be at least 1, not 0"),
        ({"layers": 0}, ValueError, "layers must be at least 1, not 0"),
        ({"kv_heads": 2.0}, TypeError, "kv_heads must be an integer, not 2.0"),
        ({"q_per_kv": True}, TypeError, "q_per_kv must be an integer, not True"),
        ({"head_dim": 15}, ValueError, r"head_dim must be even \(RoPE rotates pairs\), not 15"),
        ({"decode_queries": -1}, ValueError, "decode_queries must be at least 0, not -1"),
        ({"query_noise": -0.1}, ValueError, "query_noise must be a non-negative number, not -0.1"),
        ({"logit_std": 0.0}, ValueError, "logit_std must be a positive number, not 0.0"),
        ({"seed": -1}, ValueError, "seed must be at least 0, not -1"),
        (
            {"features": "rec", "layers": 3},
            ValueError,
            r"layers must be at most 2 with features 'rec' \(its SVTR blocks\), not 3",
        ),
        (
            {"features": "rec", "kv_heads": 9},
            ValueError,
            r"kv_heads must be at most 8 with features 'rec' \(its attention heads\), not 9",
        ),
        (
            {"features": "rec", "head_dim": 14},
            ValueError,
            r"head_dim must be at least 15 with features 'rec' \(its head dimension\), not 14",
        ),
    ],
)
def test_config_validation(changes, error, message):
    with pytest.raises(error, match=rf"^{message}$"):
        TINY.replace(**changes)


def test_make_trace_checks_its_input():
    with pytest.raises(TypeError, match=r"^cfg must be a WorkloadConfig, not dict$"):
        make_trace({"clip": "bikes"})
    with pytest.raises(
        ValueError, match=r"^fps must be at most the native rate 29\.97 .*, not 60\.0$"
    ):
        make_trace(TINY.replace(fps=60.0), progress=False)
