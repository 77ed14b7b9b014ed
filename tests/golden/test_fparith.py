"""golden.fparith against an independent exact reference: every product and every sum is
computed in ``fractions.Fraction`` and rounded once (to 24 significant bits, ties to even,
then flushed / overflowed) by the integer routine below, in the documented tree order."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.bf16 import to_bf16_bits
from golden.fparith import (
    QNAN32,
    bf16_mul,
    bits_to_f32,
    dot,
    dot_float,
    fp32_add,
    mac_array,
    tree_sum,
)

INF, NINF = 0x7F80_0000, 0xFF80_0000


def value(bits: int, width: int):
    """Exact value of a BF16 (16) or FP32 (32) pattern with subnormals flushed; ``None`` for
    NaN, ``±math.inf`` for infinities; zeros as ``(sign, 0)`` to keep their sign."""
    man = 7 if width == 16 else 23
    sign = bits >> (width - 1) & 1
    exp = bits >> man & 0xFF
    frac = bits & ((1 << man) - 1)
    if exp == 0xFF:
        return None if frac else (-math.inf if sign else math.inf)
    if exp == 0:
        return (sign, 0)
    v = Fraction((1 << man) | frac, 1 << man) * Fraction(2) ** (exp - 127)
    return -v if sign else v


def round32(x, sign_if_zero: int) -> int:
    """FP32 pattern of the exact value ``x``: RNE at 24 bits, FTZ below 2**-126, inf at
    or above 2**128 after rounding."""
    if x == 0:
        return sign_if_zero << 31
    sign = int(x < 0)
    m = abs(x)
    e = m.numerator.bit_length() - m.denominator.bit_length()
    if Fraction(2) ** e > m:
        e -= 1
    q = round(m / Fraction(2) ** (e - 23))  # Fraction rounds half to even
    if q == 1 << 24:
        q, e = q >> 1, e + 1
    if e < -126:
        return sign << 31
    if e > 127:
        return (sign << 31) | INF
    return (sign << 31) | ((e + 127) << 23) | (q - (1 << 23))


def ref_mul(a: int, b: int) -> int:
    sign = (a ^ b) >> 15 & 1
    va, vb = value(a, 16), value(b, 16)
    if isinstance(va, tuple) or isinstance(vb, tuple):
        return sign << 31
    return round32(va * vb, sign)


def ref_add(a: int, b: int) -> int:
    va, vb = value(a, 32), value(b, 32)
    if va is None or vb is None:
        return int(QNAN32)
    inf_a, inf_b = va in (math.inf, -math.inf), vb in (math.inf, -math.inf)
    if inf_a and inf_b:
        return (INF if va > 0 else NINF) if va == vb else int(QNAN32)
    if inf_a or inf_b:
        return INF if (va if inf_a else vb) > 0 else NINF
    za, zb = isinstance(va, tuple), isinstance(vb, tuple)
    if za and zb:
        return (va[0] & vb[0]) << 31
    if za:
        return round32(vb, 0)
    if zb:
        return round32(va, 0)
    s = va + vb
    return round32(s, 0)  # exact cancellation gives +0 under round to nearest


def ref_dot(a: list[int], b: list[int], lanes: int) -> int:
    n = len(a)
    chunks = max(1, -(-n // lanes))
    a = a + [0] * (chunks * lanes - n)
    b = b + [0] * (chunks * lanes - n)
    sums = []
    for c in range(chunks):
        level = [
            ref_mul(x, y)
            for x, y in zip(a[c * lanes :][:lanes], b[c * lanes :][:lanes], strict=True)
        ]
        while len(level) > 1:
            level = [ref_add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        sums.append(level[0])
    acc = sums[0]
    for t in sums[1:]:
        acc = ref_add(acc, t)
    return acc


finite_bf16 = st.integers(0, 0xFFFF).filter(lambda x: (x >> 7) & 0xFF != 0xFF)
# Exponents near the middle (normal sums) or near the ends (overflow and flushing).
small_exp_bf16 = st.builds(
    lambda s, e, m: s << 15 | e << 7 | m,
    st.integers(0, 1),
    st.sampled_from([*range(0, 4), *range(120, 135), *range(250, 255)]),
    st.integers(0, 127),
)
bf16 = st.one_of(finite_bf16, small_exp_bf16)
any32 = st.one_of(
    st.integers(0, 0xFFFF_FFFF),
    st.sampled_from([0, 0x8000_0000, INF, NINF, 0x7FC0_0000, 0x7F80_0001, 0x0000_0001]),
    # Pairs close in magnitude: cancellation and ties.
    st.builds(
        lambda s, e, m: s << 31 | e << 23 | m,
        st.integers(0, 1),
        st.integers(125, 130),
        st.sampled_from([0, 1, 2, 3, 0x7FFFFF, 0x400000, 0x7FFFFE]),
    ),
)


@settings(max_examples=1500, deadline=None)
@given(bf16, bf16)
def test_mul_matches_exact_reference(a, b):
    got = int(bf16_mul(np.uint16(a), np.uint16(b)))
    assert got == ref_mul(a, b), (hex(a), hex(b), hex(got))


@settings(max_examples=2000, deadline=None)
@given(any32, any32)
def test_add_matches_exact_reference(a, b):
    got = int(fp32_add(np.uint32(a), np.uint32(b)))
    assert got == ref_add(a, b), (hex(a), hex(b), hex(got))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(bf16, bf16), min_size=1, max_size=40), st.sampled_from([1, 2, 4, 8]))
def test_dot_matches_exact_reference_in_tree_order(pairs, lanes):
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    got = int(dot(np.array(a, np.uint16), np.array(b, np.uint16), lanes))
    want = ref_dot(a, b, lanes)
    assert got == want, (hex(got), hex(want))


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        (0x0000_0000, 0x8000_0000, 0x0000_0000),  # +0 + -0 = +0
        (0x8000_0000, 0x8000_0000, 0x8000_0000),  # -0 + -0 = -0
        (0x3F80_0000, 0xBF80_0000, 0x0000_0000),  # x - x = +0
        (0x0080_0001, 0x8080_0000, 0x0000_0000),  # subnormal difference flushed to +0
        (0x8080_0001, 0x0080_0000, 0x8000_0000),  # ... keeping the sign
        (0x0000_0001, 0x3F80_0000, 0x3F80_0000),  # subnormal operand read as 0
        (0x7F7F_FFFF, 0x7F7F_FFFF, INF),  # overflow
        (0x3F80_0000, 0x3380_0000, 0x3F80_0000),  # 1 + 2**-24: tie, stays even
        (0x3F80_0001, 0x3380_0000, 0x3F80_0002),  # tie from an odd LSB rounds up
        (INF, NINF, int(QNAN32)),
        (INF, 0x3F80_0000, INF),
        (0xFFC0_0000, 0x3F80_0000, int(QNAN32)),
    ],
)
def test_add_corner_cases(a, b, want):
    assert int(fp32_add(np.uint32(a), np.uint32(b))) == want


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 12),
    st.sampled_from([1, 2, 4, 8]),
    st.data(),
)
def test_mac_array_is_the_dot_of_every_row_and_key(rows, keys, n, cols, draw):
    q = np.array(draw.draw(st.lists(bf16, min_size=rows * n, max_size=rows * n)), np.uint16)
    k = np.array(draw.draw(st.lists(bf16, min_size=keys * n, max_size=keys * n)), np.uint16)
    q, k = q.reshape(rows, n), k.reshape(keys, n)
    got = mac_array(q, k, cols)
    assert got.shape == (keys, rows) and got.dtype == np.uint32
    for t in range(keys):
        for r in range(rows):
            assert int(got[t, r]) == ref_dot(q[r].tolist(), k[t].tolist(), cols), (t, r)


def test_mac_array_pads_rows_with_zeros_and_validates():
    q = np.full((2, 4), 0xBF80, np.uint16)  # -1: the products of a +0 key are -0
    k = np.zeros((1, 4), np.uint16)
    assert mac_array(q, k, 2).tolist() == [[0x8000_0000, 0x8000_0000]]
    assert mac_array(q, k, 2, rows=4).tolist() == [[0x8000_0000, 0x8000_0000, 0, 0]]
    with pytest.raises(ValueError, match=r"^rows must be an integer in 2\.\.1048576, not 1$"):
        mac_array(q, k, 2, rows=1)
    with pytest.raises(ValueError, match=r"^queries and keys must be \(R, n\) and \(T, n\)"):
        mac_array(q, np.zeros((1, 3), np.uint16), 2)
    with pytest.raises(ValueError, match=r"^queries and keys must not be empty, not"):
        mac_array(q, np.zeros((0, 4), np.uint16), 2)
    with pytest.raises(ValueError, match=r"^keys must have dtype uint16, not float32$"):
        mac_array(q, np.zeros((1, 4), np.float32), 2)


def test_mul_corner_cases():
    one, two = 0x3F80, 0x4000
    assert int(bf16_mul(np.uint16(one), np.uint16(two))) == 0x4000_0000
    assert int(bf16_mul(np.uint16(0x8000), np.uint16(one))) == 0x8000_0000  # -0 * 1
    assert int(bf16_mul(np.uint16(0x0001), np.uint16(0x7F00))) == 0  # subnormal in -> 0
    assert int(bf16_mul(np.uint16(0x7F7F), np.uint16(0x7F7F))) == INF  # overflow
    assert int(bf16_mul(np.uint16(0x0080), np.uint16(0x3F00))) == 0  # 2**-127 flushed
    with pytest.raises(ValueError, match=r"^a must hold finite BF16 values"):
        bf16_mul(np.uint16(0x7F80), np.uint16(one))


def test_tree_sum_and_dot_validation():
    with pytest.raises(ValueError, match=r"power-of-two length, not 3$"):
        tree_sum(np.zeros(3, np.uint32))
    with pytest.raises(ValueError, match=r"^lanes must be a power of two, not 3$"):
        dot(np.zeros(4, np.uint16), np.zeros(4, np.uint16), 3)
    with pytest.raises(ValueError, match=r"^a and b must have a non-empty last axis, not"):
        dot(np.zeros(0, np.uint16), np.zeros(0, np.uint16), 4)
    with pytest.raises(ValueError, match=r"^a must have dtype uint16, not float32$"):
        dot(np.zeros(4, np.float32), np.zeros(4, np.uint16), 4)


def test_bf16_conversion_agrees_with_ml_dtypes_and_dot_float_is_close():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 100)) * 4).astype(np.float32)
    y = rng.standard_normal((64, 100)).astype(np.float32)
    assert np.array_equal(to_bf16_bits(x), x.astype(ml_dtypes.bfloat16).view(np.uint16))
    got = dot_float(x, y, 8).astype(np.float64)
    xb = x.astype(ml_dtypes.bfloat16).astype(np.float64)
    yb = y.astype(ml_dtypes.bfloat16).astype(np.float64)
    exact = (xb * yb).sum(axis=-1)
    scale = (np.abs(xb * yb)).sum(axis=-1)
    # FP32 accumulation of 100 terms: error bounded by ~n * 2**-24 of the absolute sum.
    assert np.all(np.abs(got - exact) <= 100 * 2.0**-24 * scale)
    assert np.array_equal(bits_to_f32(dot(to_bf16_bits(x), to_bf16_bits(y), 8)), got)


def test_qk_error_cli_on_a_small_trace(tmp_path, capsys, random_trace):
    from golden.fparith import main, qk_error
    from workloads.trace import save

    d, lanes = 40, 4
    path = save(
        random_trace(seed=3, layers=1, head_dim=d, frame_offsets=[0, 12], decode_after=[0, 0]),
        tmp_path / "t.npz",
    )
    res = qk_error(str(path), lanes=lanes, pairs=300)
    # Classic bound: |error| <= depth * 2**-24 * sum |q_i k_i| (to first order), with depth
    # = log2(lanes) tree levels + (chunks - 1) sequential adds.
    depth = 2 + (-(-d // lanes) - 1)
    assert 0 < res["norm_max"] <= depth * 2.0**-24 * 1.01
    assert res["rel_mean"] < 1e-5
    assert main(["--trace", str(path), "--lanes", "4", "--pairs", "50"]) == 0
    assert "| rel_max |" in capsys.readouterr().out


# fp32_to_bf16 -------------------------------------------------------------------------------


def ref_to_bf16(a: int) -> int:
    """BF16 pattern of FP32 pattern ``a`` from its exact value: FTZ operand, RNE at 8
    significand bits, inf at or above 2**128 after rounding, NaN -> 0x7FC0."""
    v = value(a, 32)
    if v is None:
        return 0x7FC0
    if isinstance(v, tuple):
        return v[0] << 15
    sign = int(v < 0)
    if math.isinf(v):
        return sign << 15 | 0x7F80
    m = abs(v)
    e = m.numerator.bit_length() - m.denominator.bit_length()
    if Fraction(2) ** e > m:
        e -= 1
    q = round(m / Fraction(2) ** (e - 7))  # Fraction rounds half to even
    if q == 1 << 8:
        q, e = q >> 1, e + 1
    assert e >= -126  # a normal operand never rounds below the smallest normal
    if e > 127:
        return sign << 15 | 0x7F80
    return sign << 15 | (e + 127) << 7 | (q - (1 << 7))


# Half of the draws with the low 16 bits at or next to a tie.
to_bf16_operand = st.one_of(
    any32,
    st.builds(
        lambda hi, lo: hi << 16 | lo,
        st.integers(0, 0xFFFF),
        st.sampled_from([0x7FFF, 0x8000, 0x8001, 0x0000, 0xFFFF]),
    ),
)


@settings(max_examples=3000, deadline=None)
@given(to_bf16_operand)
def test_fp32_to_bf16_matches_exact_reference(a):
    from golden.fparith import fp32_to_bf16

    got = int(fp32_to_bf16(np.uint32(a)))
    assert got == ref_to_bf16(a), (hex(a), hex(got))


def test_fp32_to_bf16_corners_and_validation():
    from golden.fparith import fp32_to_bf16

    cases = {
        0x0000_0001: 0x0000,  # subnormal: +0
        0x807F_FFFF: 0x8000,  # subnormal: -0
        0x3F80_8000: 0x3F80,  # tie to even (down)
        0x3F81_8000: 0x3F82,  # tie to even (up)
        0x3FFF_8000: 0x4000,  # carry into the exponent
        0x7F7F_8000: 0x7F80,  # overflow to inf
        0xFF7F_FFFF: 0xFF80,
        0xFF80_0000: 0xFF80,
        0xFFC0_0000: 0x7FC0,  # every NaN: canonical, sign 0
        0x7F80_0001: 0x7FC0,
    }
    a = np.array(list(cases), np.uint32)
    assert fp32_to_bf16(a).tolist() == list(cases.values())
    assert fp32_to_bf16(a.reshape(2, 5)).shape == (2, 5)
    # Agrees with golden.bf16 (RNE) on finite normal float32 values.
    f = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    assert (fp32_to_bf16(f.view(np.uint32)) == to_bf16_bits(f)).all()
    with pytest.raises(ValueError, match=r"^a must have dtype uint32, not float32$"):
        fp32_to_bf16(np.zeros(2, np.float32))


# FP32 primitives of the vector unit ------------------------------------------------------

u32 = st.integers(0, (1 << 32) - 1)
#: Positive normal finite FP32 patterns.
pos_normal = st.integers(0x0080_0000, 0x7F7F_FFFF)


def ref_mul32(a: int, b: int) -> int:
    """Exact FP32 x FP32 product rounded once (``round32``), with the NaN/inf policy."""
    va, vb = value(a, 32), value(b, 32)
    sign = (a ^ b) >> 31 & 1
    if va is None or vb is None:
        return int(QNAN32)
    inf_a, inf_b = va in (math.inf, -math.inf), vb in (math.inf, -math.inf)
    za, zb = isinstance(va, tuple), isinstance(vb, tuple)
    if (inf_a and zb) or (inf_b and za):
        return int(QNAN32)
    if inf_a or inf_b:
        return (sign << 31) | INF
    if za or zb:
        return sign << 31
    return round32(va * vb, sign)


@settings(max_examples=3000, deadline=None)
@given(u32, u32)
def test_fp32_mul_matches_exact_rounding(a, b):
    from golden.fparith import fp32_mul

    assert int(fp32_mul(np.uint32(a), np.uint32(b))) == ref_mul32(a, b)


@settings(max_examples=1000, deadline=None)
@given(st.integers(1, 254), st.integers(0, (1 << 23) - 1), st.integers(0, (1 << 23) - 1))
def test_fp32_mul_near_flush_boundary(ea, ma, mb):
    """Operand pairs whose product lands around 2**-126, where rounding decides flushing."""
    from golden.fparith import fp32_mul

    eb = min(254, max(1, 127 - ea + (ma & 3) - 1))
    a, b = (ea << 23) | ma, (eb << 23) | (0x7F_FFFF - (mb & 7) if mb & 8 else mb)
    assert int(fp32_mul(np.uint32(a), np.uint32(b))) == ref_mul32(a, b)


def test_fp32_mul_specials():
    from golden.fparith import fp32_mul

    u = lambda *x: np.array(x, np.uint32)  # noqa: E731
    got = fp32_mul(
        u(INF, INF, 0x8000_0000, 0x7F7F_FFFF, 0x0080_0000, 0x0000_0001, 0x3F80_0000),
        u(
            0x0000_0000,
            0xBF80_0000,
            0x3F80_0000,
            0x4000_0000,
            0x3F00_0000,
            0x7F7F_FFFF,
            0x7FC1_0000,
        ),
    )
    assert got.tolist() == [int(QNAN32), NINF, 0x8000_0000, INF, 0, 0, int(QNAN32)]
    with pytest.raises(ValueError, match=r"^bits must have dtype uint32, not float64$"):
        fp32_mul(np.zeros(1), np.zeros(1, np.uint32))


@settings(max_examples=1000, deadline=None)
@given(u32, u32)
def test_fp32_ge_and_max_by_value(a, b):
    from golden.fparith import fp32_ge, fp32_max

    va, vb = value(a, 32), value(b, 32)
    if va is None or vb is None:
        with pytest.raises(ValueError, match=r"^[ab] must not hold NaN patterns$"):
            fp32_ge(np.uint32(a), np.uint32(b))
        return
    fa = 0 if isinstance(va, tuple) else va
    fb = 0 if isinstance(vb, tuple) else vb
    assert bool(fp32_ge(np.uint32(a), np.uint32(b))) == (fa >= fb)
    assert int(fp32_max(np.uint32(a), np.uint32(b))) == (b if fb > fa else a)


def test_fp32_max_keeps_the_first_of_equal_zeros():
    from golden.fparith import fp32_max

    assert int(fp32_max(np.uint32(0), np.uint32(0x8000_0000))) == 0
    assert int(fp32_max(np.uint32(0x8000_0000), np.uint32(0))) == 0x8000_0000


@settings(max_examples=500, deadline=None)
@given(st.integers(0, (1 << 24) - 1))
def test_int_to_fp32_exact(n):
    from golden.fparith import int_to_fp32

    assert value(int(int_to_fp32(np.array([n]))[0]), 32) in ((0, 0), Fraction(n))


def test_int_to_fp32_rejects_out_of_range():
    from golden.fparith import int_to_fp32

    with pytest.raises(ValueError, match=r"^n must be in 0\.\.16777215, not 0\.\.16777216$"):
        int_to_fp32(np.array([0, 1 << 24]))
    with pytest.raises(TypeError, match=r"^n must have an integer dtype, not float64$"):
        int_to_fp32(np.array([1.0]))


@settings(max_examples=2000, deadline=None)
@given(pos_normal)
def test_fp32_recip_correctly_rounded(a):
    from golden.fparith import fp32_recip

    assert int(fp32_recip(np.uint32(a))) == round32(1 / value(a, 32), 0)


def test_fp32_recip_powers_of_two_and_rejects():
    from golden.fparith import fp32_recip

    u = lambda *x: np.array(x, np.uint32)  # noqa: E731
    assert fp32_recip(u(0x3F80_0000, 0x4000_0000, 0x7E80_0000, 0x7F00_0000)).tolist() == [
        0x3F80_0000,
        0x3F00_0000,
        0x0080_0000,
        0,
    ]
    for bad in (0, 0x8000_0000, 0x0000_0001, 0xBF80_0000, INF, 0x7FC0_0000):
        with pytest.raises(ValueError, match=r"^a must hold positive normal finite FP32"):
            fp32_recip(u(bad))


@settings(max_examples=2000, deadline=None)
@given(u32, st.integers(0, 16), st.integers(2, 40))
def test_fp32_to_fixed_vs_fraction(a, frac_bits, width):
    from golden.fparith import fp32_to_fixed

    v = value(a, 32)
    if v is None:
        with pytest.raises(ValueError, match=r"^a must not hold NaN patterns$"):
            fp32_to_fixed(np.uint32(a), frac_bits, width)
        return
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if isinstance(v, tuple):
        want = 0
    elif v in (math.inf, -math.inf):
        want = hi if v > 0 else lo
    else:
        want = min(hi, max(lo, round(v * 2**frac_bits)))  # Fraction: half to even
    assert int(fp32_to_fixed(np.uint32(a), frac_bits, width)) == want


def test_fp32_to_fixed_rejects_bad_arguments():
    from golden.fparith import fp32_to_fixed

    with pytest.raises(ValueError, match=r"^width must be an integer in 2\.\.53, not 54$"):
        fp32_to_fixed(np.uint32(0), 4, 54)
    with pytest.raises(TypeError, match=r"^frac_bits must be an integer, not '4'$"):
        fp32_to_fixed(np.uint32(0), "4", 8)


@pytest.mark.parametrize("frac_bits", [1, 4, 8])
def test_exp2_table_is_correctly_rounded(frac_bits):
    """Entry t of j is right iff (2**23 + t - 1/2)**N < 2**(23N + j) < (2**23 + t + 1/2)**N
    (N = 2**frac_bits), checked in exact integers."""
    from golden.fparith import exp2_table

    n = 1 << frac_bits
    table = exp2_table(frac_bits)
    assert table.dtype == np.uint32 and table.size == n and table[0] == 0
    for j, t in enumerate(table.tolist()):
        mid = 2 * ((1 << 23) + t)
        target = 1 << (24 * n + j)  # 2**(23N + j) scaled by 2**N for the halves
        assert (mid - 1) ** n < target < (mid + 1) ** n, j


def test_exp2_table_paper_size_vs_float64():
    from golden.fparith import exp2_table

    j = np.arange(1024)
    ref = (np.exp2(j / 1024) - 1) * 2**23
    assert np.all(np.abs(exp2_table(10) - ref) <= 0.5 + 1e-6)


@settings(max_examples=1500, deadline=None)
@given(st.floats(-140, 140, width=32), st.sampled_from([4, 8, 10]))
def test_exp2q_error_bound(x, frac_bits):
    from golden.fparith import exp2q

    got = float(bits_to_f32(exp2q(f32_to_bits_1(x), frac_bits)))
    xq = round(Fraction(x) * 2**frac_bits) / 2**frac_bits
    n = math.floor(xq)
    if n < -126:
        assert got == 0.0
    elif n >= 128:
        assert got == math.inf
    else:
        bound = (2.0 ** (2.0 ** -(frac_bits + 1)) - 1) + 2.0**-24 + 1e-12
        assert abs(got / 2.0**x - 1) <= bound * 1.0001
    assert int(exp2q(f32_to_bits_1(0.0), frac_bits)) == 0x3F80_0000
    assert int(exp2q(f32_to_bits_1(-0.0), frac_bits)) == 0x3F80_0000


def f32_to_bits_1(x: float) -> np.uint32:
    return np.array([x], np.float32).view(np.uint32)[0]
