"""workloads.features: real token features from the PP-OCRv4 models and the pixel control."""

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from workloads import features
from workloads.features import (
    GRIDS,
    PIXEL_DIM,
    REC_LAYOUT,
    det_input,
    frame_features,
    model_path,
    rec_input,
)
from workloads.video import read_frames


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return read_frames("carphone_pristine", fps=2, max_frames=3)


@pytest.fixture(scope="module")
def det196(frames):
    return frame_features(frames, source="det", tokens_per_frame=196, progress=False)


def _full_session(filename: str, extra: list[str]) -> ort.InferenceSession:
    """The unpruned model with extra graph outputs: the reference for captured tensors."""
    model = onnx.load(str(model_path(filename)))
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in extra
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _adaptive_pool_reference(grid: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Loop version of adaptive average pooling over (F, R, C, D)."""
    f, r, c, d = grid.shape
    out = np.empty((f, rows, cols, d), np.float64)
    for i in range(rows):
        r0, r1 = (i * r) // rows, math.ceil((i + 1) * r / rows)
        for j in range(cols):
            c0, c1 = (j * c) // cols, math.ceil((j + 1) * c / cols)
            out[:, i, j] = grid[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out.reshape(f, rows * cols, d)


def test_det_shapes_and_values(frames, det196):
    assert det196.tokens.shape == (3, 196, 192)
    assert det196.tokens.dtype == np.float32
    assert np.isfinite(det196.tokens).all()
    assert det196.grid == (14, 14) and det196.attn_k is None
    # Real features: tokens differ across positions, and the same patch in consecutive
    # frames is closer than a random pair (temporal redundancy).
    t = det196.tokens
    same = np.linalg.norm(t[1] - t[0], axis=-1).mean()
    other = np.linalg.norm(t[1] - np.roll(t[0], 37, axis=0), axis=-1).mean()
    assert t[0].std(axis=0).mean() > 0.05 and same < other


def test_det_matches_the_unpruned_model(frames, det196):
    session = _full_session("ch_PP-OCRv4_det_infer.onnx", ["p2o.Add.147"])
    (ref,) = session.run(["p2o.Add.147"], {"x": det_input(frames[:1])})
    assert ref.shape == (1, 192, 14, 14)
    got = det196.tokens[0].reshape(14, 14, 192).transpose(2, 0, 1)
    np.testing.assert_allclose(got, ref[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tokens_per_frame", [10, 49])
def test_pooling_follows_the_grid_table(frames, det196, tokens_per_frame):
    pooled = frame_features(frames, source="det", tokens_per_frame=tokens_per_frame, progress=False)
    rows, cols = GRIDS[tokens_per_frame]
    assert pooled.tokens.shape == (3, rows * cols, 192) and pooled.grid == (rows, cols)
    ref = _adaptive_pool_reference(det196.tokens.reshape(3, 14, 14, 192), rows, cols)
    np.testing.assert_allclose(pooled.tokens, ref, rtol=1e-4, atol=1e-5)


def test_pixels_is_the_documented_projection(frames):
    got = frame_features(frames, source="pixels", tokens_per_frame=196, seed=5, progress=False)
    x = det_input(frames)  # (F, 3, 224, 224)
    patches = x.reshape(3, 3, 14, 16, 14, 16).transpose(0, 2, 4, 1, 3, 5).reshape(3, 196, 768)
    proj = np.random.default_rng(5).standard_normal((768, PIXEL_DIM)) / math.sqrt(768)
    np.testing.assert_allclose(got.tokens, patches @ proj, rtol=1e-4, atol=1e-4)
    again = frame_features(frames, source="pixels", tokens_per_frame=196, seed=5, progress=False)
    other = frame_features(frames, source="pixels", tokens_per_frame=196, seed=6, progress=False)
    np.testing.assert_array_equal(got.tokens, again.tokens)
    assert not np.allclose(got.tokens, other.tokens)


def test_rec_captures_the_real_svtr_attention(frames):
    """Captured q and k reproduce the model's own attention probabilities in both blocks."""
    feats = frame_features(frames[:1], source="rec", tokens_per_frame=196, progress=False)
    strips, per_strip = REC_LAYOUT[196]  # 14 x 14: no pooling, so strips are intact
    for a in (feats.attn_q, feats.attn_k, feats.attn_v):
        assert a.shape == (1, 2, 8, 196, 15) and a.dtype == np.float32
        assert np.isfinite(a).all()
    assert feats.tokens.shape == (1, 196, 120)
    session = _full_session("ch_PP-OCRv4_rec_infer.onnx", ["softmax_9.tmp_0", "softmax_10.tmp_0"])
    refs = session.run(["softmax_9.tmp_0", "softmax_10.tmp_0"], {"x": rec_input(frames[0], 196)})
    for block, ref in enumerate(refs):
        assert ref.shape == (strips, 8, per_strip, per_strip)
        q = feats.attn_q[0, block].reshape(8, strips, per_strip, 15)
        k = feats.attn_k[0, block].reshape(8, strips, per_strip, 15)
        logits = q @ np.swapaxes(k, -1, -2)  # queries are already scaled by 15^-0.5
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        np.testing.assert_allclose(p.transpose(1, 0, 2, 3), ref, atol=1e-4)


def test_rec_pooling_is_exact_for_affine_maps(frames):
    """Pooled keys are the mean of the strip tokens' keys (10 tokens from 5 x 40)."""
    feats = frame_features(frames[:1], source="rec", tokens_per_frame=10, progress=False)
    assert feats.attn_k.shape == (1, 2, 8, 10, 15)
    session = _full_session("ch_PP-OCRv4_rec_infer.onnx", ["transpose_45.tmp_0"])
    (kt,) = session.run(["transpose_45.tmp_0"], {"x": rec_input(frames[0], 10)})
    assert kt.shape == (5, 8, 15, 40)
    grid = kt.transpose(1, 0, 3, 2)  # (heads, strips, tokens, 15)
    ref = _adaptive_pool_reference(grid, 2, 5)
    np.testing.assert_allclose(feats.attn_k[0, 0], ref, rtol=1e-4, atol=1e-4)


def test_sessions_are_cached_per_process():
    a = features._session("ch_PP-OCRv4_det_infer.onnx", ("p2o.Add.147",))
    b = features._session("ch_PP-OCRv4_det_infer.onnx", ("p2o.Add.147",))
    assert a is b
    assert a.get_session_options().intra_op_num_threads == 2


def test_deterministic_and_reports_progress(frames, det196, capsys):
    again = frame_features(frames, source="det", tokens_per_frame=196, label="unit")
    np.testing.assert_array_equal(again.tokens, det196.tokens)
    err = capsys.readouterr().err
    assert "unit: 3/3 frames (" in err


def test_bad_arguments(frames):
    with pytest.raises(
        ValueError, match=r"^source must be one of 'det', 'rec', 'pixels', not 'vit'$"
    ):
        frame_features(frames, source="vit", tokens_per_frame=10)
    with pytest.raises(ValueError, match=r"^tokens_per_frame must be one of 10, 49, 196, not 50$"):
        frame_features(frames, source="det", tokens_per_frame=50)
    with pytest.raises(
        ValueError, match=r"^tokens_per_frame must be one of 10, 49, 196, not True$"
    ):
        frame_features(frames, source="det", tokens_per_frame=True)
    with pytest.raises(
        ValueError,
        match=r"^frames must be a non-empty \(F, H, W, 3\) uint8 array, "
        r"not float32 \(3, 144, 176, 3\)$",
    ):
        frame_features(frames.astype(np.float32), source="det", tokens_per_frame=10)
    with pytest.raises(
        ValueError,
        match=r"^frames must be a non-empty \(F, H, W, 3\) uint8 array, not uint8 \(144, 176, 3\)$",
    ):
        frame_features(frames[0], source="det", tokens_per_frame=10)
    with pytest.raises(FileNotFoundError, match=r"^model 'nope\.onnx' not found"):
        model_path("nope.onnx")
