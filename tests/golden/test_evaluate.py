"""golden.evaluate: evaluation points, byte and error accounting, curves and bytes_at."""

import numpy as np
import pytest

from golden.baselines import Method, Oracle, Window
from golden.bf16 import bf16_round
from golden.config import SPEC_RULE, preset
from golden.evaluate import bytes_at, curves, evaluate, full_attention, selected_output
from golden.resv import attention
from golden.rope import rope
from workloads.trace import FORMAT_VERSION, Segment, Trace

CFG = preset("tiny").replace(**SPEC_RULE).replace(sink_tokens=2, recent_tokens=4)


class Spy(Method):
    """Records what it is shown; selects nothing."""

    name, param, grid, label = "spy", "fraction", (0.5,), "spy"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.seen = []
        self.advanced = []

    def advance(self, stream, n):
        self.advanced.append(n)

    def select(self, ctx, rows, params):
        self.seen.append((rows.kind, ctx.keys_post.shape[0], ctx.lo, ctx.hi, rows.post.shape))
        return [np.zeros(0, np.int64)], 7


def _llm_like_trace(seed=0):
    """TEXT(4) FRAME(6) FRAME(6) TEXT(3) ANSWER(3) FRAME(6): decode queries = answer tokens."""
    rng = np.random.default_rng(seed)
    kinds = [Segment.TEXT, Segment.FRAME, Segment.FRAME, Segment.TEXT, Segment.ANSWER]
    kinds.append(Segment.FRAME)
    off = np.cumsum([0, 4, 6, 6, 3, 3, 6])
    n, d = int(off[-1]), CFG.head_dim
    pos = np.arange(n)

    def f(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    k, q = f(1, 2, n, d), f(1, 4, n, d)
    dec = np.arange(off[4], off[5])
    return Trace(
        keys=bf16_round(k),
        keys_post=bf16_round(rope(k, pos)),
        values=bf16_round(f(1, 2, n, d)),
        queries=bf16_round(q),
        queries_post=bf16_round(rope(q, pos)),
        decode_queries=bf16_round(q[:, :, dec]),
        decode_queries_post=bf16_round(rope(q, pos)[:, :, dec]),
        decode_positions=dec,
        decode_context=dec + 1,
        frame_offsets=off,
        segment_kind=np.array(kinds, np.int8),
        meta={"format_version": FORMAT_VERSION, "rope_base": 10000.0},
    )


def test_points_follow_the_stream_and_the_state_point_rule():
    trace = _llm_like_trace()
    spy = Spy(CFG)
    rec = evaluate(trace, CFG, [spy], min_context=8, prefill_frames=10)
    # Frames starting at >= 8 tokens: [10, 16) and [22, 28); answers at 19..21 (state 19).
    assert rec["points"] == {"prefill": 2, "decode": 3}
    assert spy.advanced == [4, 10, 16, 19, 22, 28]  # answers advance after their queries
    prefill = [s for s in spy.seen if s[0] == "prefill"]
    decode = [s for s in spy.seen if s[0] == "decode"]
    # Prefill of [10, 16): sees 16 tokens, old = [2, min(10, 16 - 4)) = [2, 10); rows 2 x 6.
    assert prefill[0] == ("prefill", 16, 2, 10, (12, CFG.head_dim))
    # Decode at answer tokens 19, 20, 21: context 20..22, old range frozen at 19 - 4 = 15.
    assert [s[1:4] for s in decode[::2]] == [(20, 2, 15), (21, 2, 15), (22, 2, 15)]
    c = curves(rec, [spy])
    assert c["decode"]["spy"]["bytes"] == [pytest.approx(7 / (13 * 4 * CFG.head_dim))]


def test_window_at_full_fraction_is_exact_and_costs_the_old_kv(random_trace):
    trace = random_trace(
        seed=1, layers=1, head_dim=16, frame_offsets=[0, 8, 16, 24, 32], decode_after=[2, 3]
    )
    methods = [Window(CFG, grid=[0.25, 1.0]), Oracle(CFG)]
    rec = evaluate(trace, CFG, methods, min_context=8, prefill_frames=3)
    assert rec["points"] == {"prefill": 3, "decode": 2}
    c = curves(rec, methods)
    for phase in ("prefill", "decode"):
        w = c[phase]["window"]
        assert w["error"][1] == pytest.approx(0, abs=1e-12)
        assert w["bytes"][1] == pytest.approx(1.0) and w["retrieved"][1] == pytest.approx(1.0)
        assert w["recall"][1] == pytest.approx(1.0)
        assert w["error"][0] > 0 and w["bytes"][0] < 1
        o = c[phase]["oracle"]
        assert o["error"] == sorted(o["error"], reverse=True)
        # Every query reaches its target recall, so the mean does too.
        assert all(r >= t - 1e-9 for r, t in zip(o["recall"], o["grid"], strict=True))


def test_full_attention_and_selected_output_match_the_reference():
    rng = np.random.default_rng(2)
    q, k, v = (
        rng.standard_normal((3, 8)),
        rng.standard_normal((10, 8)),
        rng.standard_normal((10, 8)),
    )
    a, p = full_attention(q, k, None)
    np.testing.assert_allclose(p, attention(q, k, v, return_weights=True)[1])
    a, p = full_attention(q, k, np.array([3, 5, 9]))
    assert (p[0, 4:] == 0).all() and (p[1, 6:] == 0).all() and np.allclose(p.sum(1), 1)
    mask = np.zeros(10, bool)
    mask[[0, 2, 3]] = True
    a, _ = full_attention(q, k, None)
    out = selected_output(a, v, np.stack([mask, np.ones(10, bool)]))
    np.testing.assert_allclose(out[0], attention(q, k[mask], v[mask]))
    np.testing.assert_allclose(out[1], attention(q, k, v))


def test_bytes_at_interpolates_between_the_points_around_the_target():
    c = {"bytes": [0.1, 0.2, 0.4], "error": [0.2, 0.1, 0.01], "agreement": [0.5, 0.9, 1.0]}
    c["meta"] = [0.05, 0.05, 0.15]
    assert bytes_at(c, 0.055, field="meta") == pytest.approx(0.1)
    assert bytes_at(c, 0.1) == pytest.approx(0.2)
    assert bytes_at(c, 0.055) == pytest.approx(0.3)
    assert bytes_at(c, 0.3) == pytest.approx(0.1)
    assert bytes_at(c, 0.001) is None
    assert bytes_at(c, 0.95, key="agreement") == pytest.approx(0.3)
