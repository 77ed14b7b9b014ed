"""golden.core.CoreModel: the bit-exact model of the core against the float model of SPEC
section 2 (golden.cache.StreamingCache) and its own contract."""

from __future__ import annotations

import numpy as np
import pytest

from golden.bf16 import from_bf16_bits, to_bf16_bits
from golden.cache import StreamingCache
from golden.core import WORK_COUNTERS, CoreModel, sum_reuse
from golden.fparith import bits_to_f32
from golden.synthetic import synthetic_keys
from hw.config import preset

TINY = preset("tiny")


def stream(seed=0, frames=4, tpf=8):
    keys, offsets = synthetic_keys(
        frames=frames, tokens_per_frame=tpf, head_dim=16, redundancy=0.8, offset=0.3, seed=seed
    )
    rng = np.random.default_rng(seed)
    k = to_bf16_bits(keys[0, 0])
    v = to_bf16_bits(rng.standard_normal(keys[0, 0].shape).astype(np.float32))
    q = to_bf16_bits((2 * keys[0, 0][rng.integers(0, k.shape[0], 6)]).astype(np.float32))
    return k, v, q, offsets


def run_both(cfg, seed=0):
    k, v, q, offsets = stream(seed)
    model = CoreModel(cfg)
    cache = StreamingCache(cfg.resv, layers=1, kv_heads=1)
    first = int(offsets[1])
    bias = to_bf16_bits(from_bf16_bits(k[:first]).mean(axis=0, dtype=np.float64).astype(np.float32))
    model.set_bias(bias)
    model.ingest(k, v)
    cache.ingest(from_bf16_bits(k)[None, None], from_bf16_bits(v)[None, None])
    out = []
    for qi in q:
        pos = model.n_tokens
        res = model.query(qi, pos)
        ref = cache.query(from_bf16_bits(qi)[None, None, None], np.array([pos]))
        out.append((res, ref))
    return model, cache, out


def test_matches_the_float_model_closely():
    model, cache, out = run_both(TINY)
    for res, ref in out:
        got = bits_to_f32(res.output).astype(np.float64)
        want = ref.outputs[0, 0, 0]
        assert np.linalg.norm(got - want) <= 0.05 * np.linalg.norm(want)
        # same tokens attended in the large majority of queries (hashing differs only by
        # rounding near a hyperplane)
    same = sum(set(res.order) == set(ref.retrieved[0][0].tokens) for res, ref in out)
    assert same >= len(out) - 2
    assert model.n_clusters == cache.tables[0][0].size


@pytest.mark.parametrize(("lut_bits", "tol"), [(8, 0.03), (12, 0.015)])
def test_everything_kept_is_softmax_over_all_tokens(lut_bits, tol):
    """With a recent window covering the stream nothing is clustered: the output is the
    attention over every token, within the RoPE table's and BF16's precision of float64
    (these queries are peaked, q = 2 k, so logit errors are amplified)."""
    cfg = TINY.replace(resv={"recent_tokens": 64}, rope_lut_bits=lut_bits)
    model, _, out = run_both(cfg)
    assert model.n_clusters == 0
    for res, ref in out:
        assert res.fetched == 0 and len(res.order) == model.n_tokens
        got = bits_to_f32(res.output).astype(np.float64)
        want = ref.outputs[0, 0, 0]
        assert np.linalg.norm(got - want) <= tol * np.linalg.norm(want)


def test_counters_and_attention_order():
    model, _, out = run_both(TINY)
    c = model.counters
    assert set(c) == set(WORK_COUNTERS)
    assert c["tokens_ingested"] == model.n_tokens == 32
    assert c["tokens_clustered"] == 32 - TINY.resv.sink_tokens - TINY.resv.recent_tokens
    assert (
        c["clusters_created"] + c["clusters_joined"] + c["clusters_forced"] == c["tokens_clustered"]
    )
    assert c["queries"] == len(out)
    assert c["tokens_attended"] == sum(len(r.order) for r, _ in out)
    kept = model.window.kept()
    for res, _ in out:
        assert list(res.order[: kept.size]) == list(kept)
        assert c["write_beats"] == c["tokens_clustered"] * model.layout.beats_per_token


def test_same_inputs_same_bits():
    a = run_both(TINY, seed=3)[2]
    b = run_both(TINY, seed=3)[2]
    for (x, _), (y, _) in zip(a, b, strict=True):
        assert np.array_equal(x.output, y.output)


def test_bad_inputs():
    model = CoreModel(TINY)
    with pytest.raises(ValueError, match="the context is empty"):
        model.query(np.zeros(16, np.uint16), 0)
    with pytest.raises(ValueError, match=r"keys must be uint16 BF16 of shape \(2, 16\)"):
        model.ingest(np.zeros((2, 16), np.float32), np.zeros((2, 16), np.uint16))
    with pytest.raises(ValueError, match=r"q must be uint16 BF16 of shape \(16,\)"):
        model.query(np.zeros(8, np.uint16), 0)
    with pytest.raises(ValueError, match="values must have the shape of keys"):
        model.ingest(np.zeros((2, 16), np.uint16), np.zeros((3, 16), np.uint16))


def _ingested(seed=1, tokens=26, cfg=TINY):
    k, v, _, _ = stream(seed)
    model = CoreModel(cfg)
    model.ingest(k[:tokens], v[:tokens])
    return model, k, v


@pytest.mark.parametrize("group", [1, 2, 4])
def test_prefill_row_is_tiled_attention_with_the_causal_mask(group):
    """A prefill row is the tiled order over the attention order with -inf for the kept
    tokens newer than the row (built here from the scores of every token, masked by id),
    with the block's own mean-query selection; it stays within the tiled order's error of
    the per-token order over the tokens the row may see."""
    from golden.fparith import bits_to_f32, dot
    from golden.softmax import online_attention, tiled_attention

    model, k, _ = _ingested()
    rows = k[:4] ^ np.uint16(0x8000)  # any BF16 rows
    p0 = model.n_tokens - 3
    res = model.prefill(rows, p0, group)
    n_kept = len(model.window.kept())
    keys, vals = model._attention(res.order)
    masked = 0
    for r in range(4):
        pos = p0 + r // group
        hide = np.array([j < n_kept and t > pos for j, t in enumerate(res.order)])
        masked += int(hide.sum())
        qp = model._rope(rows[r], pos)
        att = dot(keys, np.broadcast_to(qp, keys.shape), TINY.mac_lanes)
        att = np.where(hide, np.uint32(0xFF80_0000), att).astype(np.uint32)
        want = tiled_attention(
            att, vals, tile=TINY.tile_tokens, lanes=TINY.mac_lanes, exp_frac_bits=8
        )
        assert np.array_equal(res.output[r], want)
        per_token = online_attention(att[~hide], vals[~hide], exp_frac_bits=8)
        err = np.abs(bits_to_f32(res.output[r]) - bits_to_f32(per_token)).max()
        assert err <= 2.0**-6 * np.abs(bits_to_f32(vals[~hide].astype(np.uint32) << 16)).max()
    assert masked > 0
    assert res.output.shape == (4, 16) and model.counters["prefill_rows"] == 4


def test_query_is_a_one_row_prefill_without_the_causal_mask():
    """QUERY is a one-row PREFILL whose row sees every token: at the newest position it is
    that prefill bit for bit (selection, order, output); at an older position the prefill
    masks the newer kept tokens and the query does not."""
    from golden.fparith import dot
    from golden.softmax import tiled_attention

    model, k, _ = _ingested()
    q = k[3]
    got = model.prefill(q[None], model.n_tokens, 1)
    want = model.query(q, model.n_tokens)
    assert np.array_equal(got.selected, want.selected) and np.array_equal(got.q_post, want.q_post)
    assert np.array_equal(got.order, want.order)
    assert np.array_equal(got.output[0], want.output)
    old = model.n_tokens - 4  # kept tokens newer than this row exist
    res = model.query(q, old)
    keys, vals = model._attention(res.order)
    att = dot(keys, np.broadcast_to(model._rope(q, old), keys.shape), TINY.mac_lanes)
    tiled = tiled_attention(att, vals, tile=TINY.tile_tokens, lanes=TINY.mac_lanes, exp_frac_bits=8)
    assert np.array_equal(res.output, tiled)
    masked = model.prefill(q[None], old, 1).output[0]
    assert not np.array_equal(masked, res.output)


def test_query_selects_with_the_one_row_mean():
    """The selection query is the one-row mean: a ``-0`` element of q_post becomes ``+0``
    (the FP32 sum from ``+0``), every other element stays."""
    model, k, _ = _ingested()
    q = k[5].copy()
    q[:2] = 0x8000  # -0 stays -0 through RoPE at position 0
    res = model.query(q, 0)
    qp = model._rope(q, 0)
    assert qp[:2].tolist() == [0x8000, 0x8000] and res.q_post[:2].tolist() == [0, 0]
    keep = qp != 0x8000
    assert np.array_equal(res.q_post[keep], qp[keep]) and not res.q_post[~keep].any()


def test_prefill_reads_the_selection_once():
    """9 rows: one selection, its tokens streamed (and fetched) once for all the rows."""
    model, k, _ = _ingested()
    rows = np.concatenate([k[:5], k[:4]]) ^ np.uint16(0x8000)
    before = dict(model.counters)
    res = model.prefill(rows, model.n_tokens - 2, 3)
    diff = {n: model.counters[n] - before[n] for n in before}
    assert res.fetched > 0
    assert diff["tokens_attended"] == len(res.order)
    assert diff["tokens_fetched"] == res.fetched
    assert diff["read_bursts"] == res.bursts and diff["read_beats"] == res.beats
    assert diff["clusters_scored"] == model.n_clusters and diff["prefills"] == 1


def test_prefill_errors():
    model = CoreModel(TINY)
    q = np.zeros((1, 16), np.uint16)
    with pytest.raises(ValueError, match="the context is empty"):
        model.prefill(q, 0, 1)
    model, _, _ = _ingested()
    n, aged = model.n_tokens, model.newest_aged
    assert aged > 0
    for rows, group, p0, msg in [
        (0, 1, n, r"rows must be in 1..frame_rows \(16\), not 0"),
        (17, 1, n, r"rows must be in 1..frame_rows \(16\), not 17"),
        (2, 3, n, r"group must be in 1..rows \(2\), not 3"),
        (1, 1, aged - 1, "must not precede the newest clustered token"),
        (2, 1, (1 << 11) - 1, "must fit in token_id_bits"),
    ]:
        assert msg and model.prefill_error(rows, group, p0) is not None
        with pytest.raises(ValueError, match=msg):
            model.prefill(np.zeros((max(rows, 1), 16), np.uint16)[:rows], p0, group)


def test_aged_clusters_and_their_reuse_in_a_frame():
    model, _, _ = run_both(TINY)
    r = TINY.resv
    assert len(model.aged) == model.counters["tokens_clustered"]
    # a token ages when the ring is full: the token that ages it is recent_tokens later
    ids = [t for t, _ in model.aged]
    assert ids == list(range(r.sink_tokens + r.recent_tokens, model.n_tokens))
    assert {c for _, c in model.aged} == set(range(model.n_clusters))
    # by hand: frames start at tokens 0 and 3, so the buffer is emptied before token 3;
    # at 2 clusters the least recently used goes (first-in first-out would give 2 / 8)
    aged = [(0, 5), (1, 5), (2, 6), (3, 5), (4, 6), (5, 5), (6, 7), (7, 5)]
    offsets = np.array([0, 3, 8])
    assert sum_reuse(aged, offsets, (1, 2, 8)) == {1: 1 / 8, 2: 3 / 8, 8: 3 / 8}
