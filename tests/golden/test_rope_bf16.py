"""golden.rope's bit-exact model: frequency words and tables against math, ``rope_bf16``
bit-exact against a scalar re-implementation on exact rationals, the float-model error
bound, position 0 as the identity, and argument checking."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.bf16 import from_bf16_bits, to_bf16_bits
from golden.rope import (
    rope,
    rope_bf16,
    rope_bf16_bound,
    rope_error,
    rope_freq_words,
    rope_indices,
    rope_quarter,
    rope_quarter_lookup,
    rope_tables,
)

# Scalar reference on exact rationals -----------------------------------------------------


def exact(bits: int, man: int) -> Fraction:
    """Value of a finite BF16 (man=7) / FP32 (man=23) pattern, subnormals flushed."""
    w = man + 9
    sign, e, f = bits >> (w - 1) & 1, bits >> man & 0xFF, bits & ((1 << man) - 1)
    v = Fraction(0) if e == 0 else Fraction((1 << man) | f, 1 << man) * Fraction(2) ** (e - 127)
    return -v if sign else v


def round_to(v: Fraction, man: int, zero_sign: int) -> int:
    """RNE at ``man+1`` significand bits, FTZ below 2**-126, inf on overflow."""
    w = man + 9
    if v == 0:
        return zero_sign << (w - 1)
    sign, m = int(v < 0), abs(v)
    e = m.numerator.bit_length() - m.denominator.bit_length()
    if Fraction(2) ** e > m:
        e -= 1
    q = round(m / Fraction(2) ** (e - man))
    if q == 1 << (man + 1):
        q, e = q >> 1, e + 1
    if e < -126:
        return sign << (w - 1)
    if e > 127:
        return sign << (w - 1) | 0xFF << man
    return sign << (w - 1) | (e + 127) << man | (q - (1 << man))


def scalar_rotate(a: int, b: int, c: int, s: int) -> int:
    """bf16(a*c + b*s) with FTZ'd exact products, one FP32 rounding, one BF16 rounding."""
    prods = []
    for x, y in ((a, c), (b, s)):
        p = exact(x, 7) * exact(y, 7)
        sign = (x ^ y) >> 15 & 1
        prods.append((Fraction(0) if abs(p) < Fraction(2) ** -126 else p, sign))
    total = prods[0][0] + prods[1][0]
    both_neg_zero = all(p == 0 and sg for p, sg in prods)
    f32 = round_to(total, 23, int(both_neg_zero))
    return round_to(exact(f32, 23), 7, f32 >> 31)


def scalar_rope(x: np.ndarray, pos: list[int], base: float, lut_bits: int) -> np.ndarray:
    n, d = x.shape
    h = d // 2
    size = 1 << lut_bits
    cos_t = [int(to_bf16_bits(np.float32(math.cos(2 * math.pi * j / size)))) for j in range(size)]
    sin_t = [int(to_bf16_bits(np.float32(math.sin(2 * math.pi * j / size)))) for j in range(size)]
    y = np.zeros_like(x)
    for r in range(n):
        for i in range(h):
            f = round(base ** (-2 * i / d) / (2 * math.pi) * 2**32) % 2**32
            phase = pos[r] * f % 2**32
            j = ((phase + 2 ** (31 - lut_bits)) >> (32 - lut_bits)) % size
            c, s = cos_t[j], sin_t[j]
            a, b = int(x[r, i]), int(x[r, i + h])
            y[r, i] = scalar_rotate(a, b, c, s ^ 0x8000)
            y[r, i + h] = scalar_rotate(b, a, c, s)
    return y


def gaussian_bf16(rng, shape, spread: int = 8) -> np.ndarray:
    scale = np.exp2(rng.integers(-spread, spread + 1, (*shape[:-1], 1)))
    return to_bf16_bits((rng.standard_normal(shape) * scale).astype(np.float32))


# Tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lut_bits", range(2, 17))
def test_quarter_table_rebuilds_both_tables(lut_bits):
    """The RoPE unit's quarter ROM and boundary values give every entry of both tables."""
    cos_t, sin_t = rope_tables(lut_bits)
    quarter, cos_edges, sin_edges = rope_quarter(lut_bits)
    assert len(quarter) == len(cos_t) // 4 and cos_edges.shape == sin_edges.shape == (4,)
    cos_q, sin_q = rope_quarter_lookup(np.arange(len(cos_t)), lut_bits)
    np.testing.assert_array_equal(cos_q, cos_t)
    np.testing.assert_array_equal(sin_q, sin_t)


def test_freq_words_and_tables_match_math():
    for d, base in ((16, 10000.0), (128, 10000.0), (128, 500000.0), (2, 2.0)):
        want = [round(base ** (-2 * i / d) / (2 * math.pi) * 2**32) % 2**32 for i in range(d // 2)]
        got = rope_freq_words(d, base)
        assert got.dtype == np.uint32 and got.tolist() == want
    cos_t, sin_t = rope_tables(8)
    assert cos_t.dtype == sin_t.dtype == np.uint16 and cos_t.shape == (256,)
    assert (cos_t[0], sin_t[0], sin_t[64], cos_t[128], sin_t[192]) == (
        0x3F80,
        0x0000,
        0x3F80,
        0xBF80,
        0xBF80,
    )
    ang = 2 * np.pi * np.arange(256) / 256
    assert np.abs(from_bf16_bits(cos_t) - np.cos(ang)).max() <= 2.0**-9
    assert np.abs(from_bf16_bits(sin_t) - np.sin(ang)).max() <= 2.0**-9


def test_indices_round_to_the_nearest_entry():
    d, lb = 16, 8
    f = rope_freq_words(d).astype(np.int64)
    pos = np.array([0, 1, 2**11 - 1, 2**40 + 3])
    j = rope_indices(pos, head_dim=d, base=10000.0, lut_bits=lb)
    phase = np.array([[(int(p) * int(fi)) % 2**32 for fi in f] for p in pos])
    turns = phase / 2**32 * 2**lb
    dist = np.abs(turns - j)
    assert (np.minimum(dist, 2**lb - dist) <= 0.5).all() and (j < 2**lb).all()
    assert (j[0] == 0).all()


@pytest.mark.parametrize("lut_bits", [2, 8, 10])
def test_bit_exact_against_the_scalar_reference(lut_bits):
    rng = np.random.default_rng(lut_bits)
    x = gaussian_bf16(rng, (10, 16))
    x[0, :3] = [0x0000, 0x8000, 0x0001]  # zeros and a subnormal
    x[1, [0, 8]] = [0x8000, 0x8000]  # a pair of -0
    pos = [0, 1, 3, 2**11 - 1, 2**17 - 1, 5, 77, 1000, 2**31 + 7, 12345]
    got = rope_bf16(x, np.array(pos), lut_bits=lut_bits)
    assert got.dtype == np.uint16 and got.shape == x.shape
    assert (got == scalar_rope(x, pos, 10000.0, lut_bits)).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.integers(0, 0xFFFF).filter(lambda v: (v >> 7) & 0xFF != 0xFF), min_size=8, max_size=8
    ),
    st.integers(0, 2**33 - 1),
    st.sampled_from([4, 8, 10]),
    st.sampled_from([10000.0, 500000.0, 3.0]),
)
def test_bit_exact_any_bf16_operands(values, pos, lut_bits, base):
    x = np.array([values], np.uint16)
    got = rope_bf16(x, np.array([pos]), base=base, lut_bits=lut_bits)
    assert (got == scalar_rope(x, [pos], base, lut_bits)).all()


def test_batch_axes_and_position_zero_identity():
    rng = np.random.default_rng(3)
    x = gaussian_bf16(rng, (2, 3, 5, 16))
    pos = np.array([0, 4, 9, 0, 100])
    y = rope_bf16(x, pos, head_dim=16, lut_bits=8)
    assert y.shape == x.shape
    assert (y[..., pos == 0, :] == x[..., pos == 0, :]).all()  # normal values: exact
    assert (y[1, 2] == rope_bf16(x[1, 2], pos, lut_bits=8)).all()


@pytest.mark.parametrize("lut_bits", [8, 10])
def test_within_the_documented_bound_of_the_float_model(lut_bits):
    rng = np.random.default_rng(10 + lut_bits)
    x = gaussian_bf16(rng, (200, 32), spread=4)
    pos = rng.integers(0, 2**17, 200)
    y = from_bf16_bits(rope_bf16(x, pos, lut_bits=lut_bits)).astype(np.float64)
    ref = rope(from_bf16_bits(x).astype(np.float64), pos).astype(np.float64)
    bound = rope_bf16_bound(x, pos, lut_bits=lut_bits)
    assert (np.abs(y - ref) <= bound).all()
    # The bound is not vacuous: the worst element uses a good part of it.
    assert (np.abs(y - ref) / bound).max() > 0.2


def test_rope_error_figures():
    rng = np.random.default_rng(5)
    x = gaussian_bf16(rng, (2, 64, 16), spread=0)
    pos = np.arange(64) * 7
    e8, e10 = rope_error(x, pos, lut_bits=8), rope_error(x, pos, lut_bits=10)
    assert e8["vectors"] == 128 and e8["lut_bits"] == 8
    # Phase quantisation (pi / 2**lut_bits rad at most) dominates at 8 bits.
    assert 0 < e10["rel_mean"] < e8["rel_mean"] < 2 * math.pi / 2**9
    assert e8["rel_max"] < math.pi / 2**8 + 2**-7


def test_bad_arguments_name_the_argument():
    x = np.zeros((2, 4), np.uint16)
    pos = np.arange(2)
    with pytest.raises(TypeError, match=r"^x must have dtype uint16 \(BF16 patterns\), not float"):
        rope_bf16(x.astype(np.float32), pos, lut_bits=8)
    with pytest.raises(ValueError, match=r"^x must be \(\.\.\., n, d\), not shape \(4,\)$"):
        rope_bf16(x[0], pos, lut_bits=8)
    with pytest.raises(ValueError, match=r"^x must have an even last dimension, not 3$"):
        rope_bf16(x[:, :3], pos, lut_bits=8)
    with pytest.raises(ValueError, match=r"^head_dim must equal the last dimension of x \(4\)"):
        rope_bf16(x, pos, head_dim=8, lut_bits=8)
    with pytest.raises(ValueError, match=r"^positions must have shape \(2,\), not \(3,\)$"):
        rope_bf16(x, np.arange(3), lut_bits=8)
    with pytest.raises(TypeError, match=r"^positions must have an integer dtype, not float64$"):
        rope_bf16(x, np.zeros(2), lut_bits=8)
    with pytest.raises(ValueError, match=r"^positions must be non-negative, not -1$"):
        rope_bf16(x, np.array([0, -1]), lut_bits=8)
    with pytest.raises(ValueError, match=r"^lut_bits must be in 2\.\.16, not 1$"):
        rope_bf16(x, pos, lut_bits=1)
    with pytest.raises(TypeError, match=r"^lut_bits must be an integer, not 8\.0$"):
        rope_tables(8.0)
    with pytest.raises(ValueError, match=r"^base must be a finite number greater than 1, not 1"):
        rope_bf16(x, pos, base=1.0, lut_bits=8)
    with pytest.raises(ValueError, match=r"^head_dim must be even, not 5$"):
        rope_freq_words(5)
    with pytest.raises(ValueError, match=r"^x must hold finite BF16 values"):
        rope_bf16(np.full((2, 4), 0x7F80, np.uint16), pos, lut_bits=8)
