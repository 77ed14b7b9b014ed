"""golden.softmax: ``online_attention`` and the tiled order ``tiled_attention`` bit-exact
against scalar re-implementations built on exact rationals (``fractions.Fraction``, one
rounding per operation, masked tokens handled explicitly rather than through ``-inf``),
within a tolerance of float64 softmax attention, and the CLI on a tiny generated trace."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.bf16 import bf16_round, to_bf16_bits
from golden.fparith import bits_to_f32, exp2_table, f32_to_bits
from golden.softmax import (
    attention_bits,
    attention_float,
    attention_scale,
    main,
    online_attention,
    tile_step,
    tiled_attention,
    tree_max,
)

# Scalar reference: FP32 values as (sign, Fraction) with flush to zero -----------------------


def val(bits: int) -> tuple[int, Fraction]:
    sign, exp, frac = bits >> 31 & 1, bits >> 23 & 0xFF, bits & 0x7F_FFFF
    assert exp != 0xFF, "finite values only in this reference"
    if exp == 0:
        return sign, Fraction(0)
    v = Fraction((1 << 23) | frac, 1 << 23) * Fraction(2) ** (exp - 127)
    return sign, v


def signed(bits: int) -> Fraction:
    s, v = val(bits)
    return -v if s else v


def round32(x: Fraction, sign_if_zero: int) -> int:
    if x == 0:
        return sign_if_zero << 31
    sign, m = int(x < 0), abs(x)
    e = m.numerator.bit_length() - m.denominator.bit_length()
    if Fraction(2) ** e > m:
        e -= 1
    q = round(m / Fraction(2) ** (e - 23))
    if q == 1 << 24:
        q, e = q >> 1, e + 1
    if e < -126:
        return sign << 31
    assert e <= 127, "no overflow in these tests"
    return (sign << 31) | ((e + 127) << 23) | (q - (1 << 23))


def mul(a: int, b: int) -> int:
    return round32(signed(a) * signed(b), (a ^ b) >> 31 & 1)


def add(a: int, b: int) -> int:
    sa, va = val(a)
    sb, vb = val(b)
    if va == 0 and vb == 0:
        return (sa & sb) << 31
    return round32(signed(a) + signed(b), 0)


def exp2(x: int, f: int) -> int:
    xf = round(signed(x) * 2**f)  # half to even
    xf = max(-(1 << (f + 8)), min((1 << (f + 8)) - 1, xf))
    n, j = xf >> f, xf & ((1 << f) - 1)
    if n < -126:
        return 0
    return ((n + 127) << 23) | int(exp2_table(f)[j])


def scalar_attention(scores, values, f: int) -> list[int]:
    n, d = values.shape
    k = int(attention_scale(d))
    neg = 1 << 31
    m = s = 0
    o = [0] * d
    for t in range(n):
        x = mul(int(scores[t]), k)
        if t == 0:
            m_new, a = x, 0
        else:
            m_new = x if signed(x) > signed(m) else m
            a = exp2(add(m, m_new ^ neg), f)
        p = exp2(add(x, m_new ^ neg), f)
        s = add(mul(s, a), p)
        for i in range(d):
            vb = int(values[t, i]) << 16
            o[i] = add(mul(o[i], a), mul(p, vb))
        m = m_new
    r = round32(1 / signed(s), 0)
    return [mul(oi, r) for oi in o]


MASKED = 0xFF80_0000  # FP32 -inf: a causally masked score


def bf16(bits: int) -> int:
    """BF16 pattern of the FP32 pattern ``bits`` (finite, flushed), nearest, ties to even."""
    sign, v = val(bits)
    if v == 0:
        return sign << 15
    e = v.numerator.bit_length() - v.denominator.bit_length()
    if Fraction(2) ** e > v:
        e -= 1
    q = round(v / Fraction(2) ** (e - 7))
    if q == 1 << 8:
        q, e = q >> 1, e + 1
    return (sign << 15) | ((e + 127) << 7) | (q - (1 << 7))


def pairwise(xs: list, op) -> object:
    while len(xs) > 1:
        xs = [op(a, b) for a, b in zip(xs[0::2], xs[1::2], strict=True)]
    return xs[0]


def scalar_tiled(scores, values, f: int, tile: int, lanes: int) -> list[int]:
    """The tiled order of ``golden.softmax``, one value at a time; a masked token is
    ``None`` (skipped by the max, weight 0), the first tile's ``a`` is 0 by definition."""
    n, d = values.shape
    k = int(attention_scale(d))
    neg = 1 << 31

    def vmax(a, b):
        if a is None or b is None:
            return b if a is None else a
        return b if signed(b) > signed(a) else a

    m, l, o = None, 0, [0] * d
    for j in range(0, n, tile):
        toks = range(j, j + tile)
        x = [None if t >= n or scores[t] == MASKED else mul(int(scores[t]), k) for t in toks]
        mt = pairwise(x, vmax)
        m_new = vmax(m, mt)
        assert m_new is not None, "the first token is visible"
        a = 0 if m is None else exp2(add(m, m_new ^ neg), f)
        p = [0 if xi is None else exp2(add(xi, m_new ^ neg), f) for xi in x]
        l = add(mul(l, a), pairwise(p, add))
        pb = [bf16(pi) for pi in p]
        for i in range(d):
            prods = [
                mul(pb[c] << 16, int(values[t, i]) << 16) if t < n else 0
                for c, t in enumerate(toks)
            ]
            sums = [pairwise(prods[c : c + lanes], add) for c in range(0, max(tile, lanes), lanes)]
            acc = sums[0]
            for c_sum in sums[1:]:
                acc = add(acc, c_sum)
            o[i] = add(mul(o[i], a), acc)
        m = m_new
    r = round32(1 / signed(l), 0)
    return [mul(oi, r) for oi in o]


def query(draw_seed: int, n: int, d: int, scale: float):
    rng = np.random.default_rng(draw_seed)
    scores = f32_to_bits((rng.standard_normal(n) * scale).astype(np.float32))
    values = to_bf16_bits(rng.standard_normal((n, d)).astype(np.float32))
    return scores, values


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 12),
    st.sampled_from([1, 4, 8]),
    st.sampled_from([0.5, 8.0, 200.0]),
    st.sampled_from([4, 8, 10]),
)
def test_bit_exact_vs_scalar_rational_reference(seed, n, d, scale, f):
    scores, values = query(seed, n, d, scale)
    got = online_attention(scores, values, exp_frac_bits=f)
    assert got.dtype == np.uint32 and got.shape == (d,)
    assert got.tolist() == scalar_attention(scores, values, f)


def test_corner_scores_bit_exact():
    # Signed zeros, ties, a far outlier (its neighbours' weights flush to 0), tiny scores.
    s = np.array([0.0, -0.0, 1.0, 1.0, -3000.0, 3000.0, 2.0**-130, -2.5], np.float32)
    values = to_bf16_bits(np.random.default_rng(4).standard_normal((s.size, 4)))
    values[0, 0], values[1, 1] = 0x8000, 0x0001  # -0 and a subnormal (read as 0)
    scores = f32_to_bits(s)
    for f in (4, 8):
        got = online_attention(scores, values, exp_frac_bits=f)
        assert got.tolist() == scalar_attention(scores, values, f)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.sampled_from([8, 10]))
def test_close_to_float64_softmax(seed, n, f):
    rng = np.random.default_rng(seed)
    d = 16
    q = bf16_round(rng.standard_normal(d).astype(np.float32) * 2)
    k = bf16_round(rng.standard_normal((n, d)).astype(np.float32))
    v = bf16_round(rng.standard_normal((n, d)).astype(np.float32))
    got = bits_to_f32(
        attention_bits(to_bf16_bits(q), to_bf16_bits(k), to_bf16_bits(v), lanes=4, exp_frac_bits=f)
    ).astype(np.float64)
    ref = attention_float(q, k, v)
    # Each weight carries the exp2 input quantisation (~2**-(f+1) ln 2 relative, twice: its
    # own and the running max's) plus FP32 rounding; the output is a convex combination.
    tol = 4 * 2.0 ** -(f + 1) * math.log(2) + 1e-5
    assert np.abs(got - ref).max() <= tol * np.abs(v).max()


def test_rows_are_independent_queries():
    """Scores (R, n): each row is the one-row result (a prefill's rows), -inf included."""
    rng = np.random.default_rng(3)
    scores = f32_to_bits((rng.standard_normal((5, 9)) * 4).astype(np.float32))
    scores[1, 3:] = 0xFF80_0000  # a causally masked tail
    values = to_bf16_bits(rng.standard_normal((9, 8)).astype(np.float32))
    got = online_attention(scores, values, exp_frac_bits=8)
    assert got.shape == (5, 8)
    for r in range(5):
        assert got[r].tolist() == online_attention(scores[r], values, exp_frac_bits=8).tolist()
    assert got[0].tolist() == scalar_attention(scores[0], values, 8)


def test_attention_scale():
    for d in (1, 16, 64, 128):
        want = np.float32(math.log2(math.e) / math.sqrt(d))
        assert attention_scale(d) == want.view(np.uint32)
        assert isinstance(attention_scale(d), np.uint32)
    with pytest.raises(ValueError, match=r"^head_dim must be an integer in 1\.\.65536, not 0$"):
        attention_scale(0)


def test_one_token_returns_the_value():
    """One token: weight exactly 1 and 1/S = 1, so the output is the widened value."""
    v = to_bf16_bits(np.array([[1.5, -2.0, 0.0, 3.25]], np.float32))
    got = online_attention(f32_to_bits(np.array([7.0], np.float32)), v, exp_frac_bits=8)
    assert got.tolist() == [int(x) << 16 for x in v[0]]


def test_rejects_bad_arguments():
    v = np.zeros((2, 4), np.uint16)
    with pytest.raises(ValueError, match=r"^scores must be a non-empty uint32 vector"):
        online_attention(np.zeros(0, np.uint32), v[:0], exp_frac_bits=8)
    with pytest.raises(ValueError, match=r"^values must be uint16 of shape \(3, d\)"):
        online_attention(np.zeros(3, np.uint32), v, exp_frac_bits=8)
    with pytest.raises(ValueError, match=r"^exp_frac_bits must be an integer in 1\.\.16, not 0$"):
        online_attention(np.zeros(2, np.uint32), v, exp_frac_bits=0)
    with pytest.raises(ValueError, match=r"^keys must have shape \(n, 4\), not \(2, 3\)$"):
        attention_bits(
            np.zeros(4, np.uint16), np.zeros((2, 3), np.uint16), v, lanes=4, exp_frac_bits=8
        )
    with pytest.raises(ValueError, match=r"^a must not hold NaN patterns$"):  # inf score
        online_attention(np.array([0x7F80_0000], np.uint32), v[:1], exp_frac_bits=8)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 24),
    st.sampled_from([1, 4, 8]),
    st.sampled_from([0.5, 8.0, 200.0]),
    st.sampled_from([4, 10]),
    st.sampled_from([1, 2, 4, 8, 16]),
    st.sampled_from([1, 2, 4, 8]),
    st.sampled_from([0.0, 0.3, 0.9]),
)
def test_tiled_bit_exact_vs_scalar_reference(seed, n, d, scale, f, tile, lanes, masked):
    """Tiles of 1..16 tokens (partial last tiles, P x V over 1..8 array columns, so one
    chunk or several per tile), masked tokens anywhere but the first."""
    scores, values = query(seed, n, d, scale)
    hide = np.random.default_rng(seed + 1).random(n) < masked
    hide[0] = False
    scores[hide] = MASKED
    got = tiled_attention(scores, values, tile=tile, lanes=lanes, exp_frac_bits=f)
    assert got.dtype == np.uint32 and got.shape == (d,)
    assert got.tolist() == scalar_tiled(scores, values, f, tile, lanes)


def test_tiled_rows_and_corner_scores():
    """Rows are independent (each equals its own one-row call); signed zeros, ties, far
    outliers (weights flushed to 0), a masked tail; a fully masked trailing tile changes
    nothing (a = 1 exactly, weights +0)."""
    s = np.array([0.0, -0.0, 1.0, 1.0, -3000.0, 3000.0, 2.0**-130, -2.5], np.float32)
    rng = np.random.default_rng(4)
    scores = np.stack([f32_to_bits(s), f32_to_bits(s[::-1].copy())])
    scores[1, 5:] = MASKED
    values = to_bf16_bits(rng.standard_normal((s.size, 4)))
    values[0, 0], values[1, 1] = 0x8000, 0x0001  # -0 and a subnormal (read as 0)
    for tile, lanes in ((2, 2), (4, 1), (8, 4)):
        got = tiled_attention(scores, values, tile=tile, lanes=lanes, exp_frac_bits=8)
        assert got.shape == (2, 4)
        for r in range(2):
            assert got[r].tolist() == scalar_tiled(scores[r], values, 8, tile, lanes)
        more = np.concatenate([scores, np.full((2, tile), MASKED, np.uint32)], axis=1)
        vmore = np.concatenate([values, to_bf16_bits(rng.standard_normal((tile, 4)))])
        again = tiled_attention(more, vmore, tile=tile, lanes=lanes, exp_frac_bits=8)
        assert again.tolist() == got.tolist()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 70), st.sampled_from([8, 10]))
def test_tiled_close_to_float64_softmax(seed, n, f):
    """As the per-token order, plus P's rounding to BF16 (2**-9 relative per weight)."""
    rng = np.random.default_rng(seed)
    d = 16
    q = bf16_round(rng.standard_normal(d).astype(np.float32) * 2)
    k = bf16_round(rng.standard_normal((n, d)).astype(np.float32))
    v = bf16_round(rng.standard_normal((n, d)).astype(np.float32))
    got = bits_to_f32(
        attention_bits(
            to_bf16_bits(q), to_bf16_bits(k), to_bf16_bits(v), lanes=4, exp_frac_bits=f, tile=16
        )
    ).astype(np.float64)
    ref = attention_float(q, k, v)
    tol = 4 * 2.0 ** -(f + 1) * math.log(2) + 2.0**-8 + 1e-5
    assert np.abs(got - ref).max() <= tol * np.abs(v).max()


def test_tile_step_and_tree_max():
    """``tile_step`` is one tile of ``tiled_attention``: the first step from m = -inf
    gives a = +0 and l = the sum of the weights, the maximum lane's weight is exactly 1."""
    x = f32_to_bits(np.array([[1.0, 4.0, -2.0, 4.0], [0.5, 0.0, 0.25, -1.0]], np.float32))
    x[1, 3] = MASKED
    m0 = np.full(2, MASKED, np.uint32)
    m, l, a, pb = tile_step(x, m0, np.zeros(2, np.uint32), head_dim=16, exp_frac_bits=10)
    assert a.tolist() == [0, 0] and pb.dtype == np.uint16
    assert pb[0, 1] == pb[0, 3] == 0x3F80 and pb[1, 0] == 0x3F80 and pb[1, 3] == 0
    k = bits_to_f32(attention_scale(16))
    assert m.tolist() == f32_to_bits(np.array([4.0, 0.5], np.float32) * k).tolist()
    assert bits_to_f32(l)[1] > 1.0
    assert tree_max(f32_to_bits(np.array([[-0.0, 0.0, 3.0, -5.0]], np.float32))).tolist() == [
        f32_to_bits(np.float32(3.0))
    ]
    with pytest.raises(ValueError, match=r"^x must be uint32 with a power-of-two last axis"):
        tree_max(np.zeros(3, np.uint32))


def test_tiled_rejects_bad_arguments():
    v = np.zeros((2, 4), np.uint16)
    s = np.zeros(2, np.uint32)
    with pytest.raises(ValueError, match=r"^tile must be a power of two in 1\.\.4096, not 3$"):
        tiled_attention(s, v, tile=3, lanes=4, exp_frac_bits=8)
    with pytest.raises(ValueError, match=r"^tile must be an integer in 1\.\.4096, not 0$"):
        tiled_attention(s, v, tile=0, lanes=4, exp_frac_bits=8)
    with pytest.raises(ValueError, match=r"^lanes must be a power of two, not 3$"):
        tiled_attention(s, v, tile=2, lanes=3, exp_frac_bits=8)
    with pytest.raises(ValueError, match=r"^values must be uint16 of shape \(2, d\)"):
        tiled_attention(s, v[:1], tile=2, lanes=4, exp_frac_bits=8)
    with pytest.raises(ValueError, match=r"^m must be uint32 of shape \(1,\)"):
        tile_step(np.zeros((1, 2), np.uint32), s, s[:1], head_dim=4, exp_frac_bits=8)
    first_masked = np.array([MASKED, 0], np.uint32)  # the first tile hides every token
    with pytest.raises(ValueError, match=r"NaN"):
        tiled_attention(first_masked, v, tile=1, lanes=4, exp_frac_bits=8)


def test_cli_on_a_small_trace(tmp_path, capsys, random_trace):
    from workloads.trace import save

    d = 16
    path = save(
        random_trace(seed=3, layers=1, head_dim=d, frame_offsets=[0, 6, 12], decode_after=[0, 1]),
        tmp_path / "t.npz",
    )
    out = tmp_path / "err.json"
    args = ["--trace", str(path), "--lanes", "4", "--exp-frac-bits", "8", "--queries", "20"]
    assert main([*args, "--json", str(out)]) == 0
    assert "| rel_l2_max |" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["queries"] == 20 and res["head_dim"] == d
    assert 0 < res["rel_l2_max"] < 4 * res["exp2_input_bound"]
    with pytest.raises(SystemExit):
        main(["--trace", str(path), "--queries", "0"])
