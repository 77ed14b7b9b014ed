"""golden.bf16 against an independent reference (ml_dtypes.bfloat16) and hand-made cases."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from golden.bf16 import bf16_round, from_bf16_bits, to_bf16_bits


def _bits32(*patterns: int) -> np.ndarray:
    return np.array(patterns, np.uint32).view(np.float32)


def _reference_bits(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # ml_dtypes warns when casting NaN
        return x.astype(ml_dtypes.bfloat16).view(np.uint16)


def test_every_bf16_pattern_decodes_like_ml_dtypes():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    ours = from_bf16_bits(bits)
    ref = bits.view(ml_dtypes.bfloat16).astype(np.float32)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32))
    # Every non-NaN pattern survives a round trip unchanged.
    keep = ~np.isnan(ours)
    np.testing.assert_array_equal(to_bf16_bits(ours)[keep], bits[keep])


def test_random_float32_patterns_match_ml_dtypes_including_nan():
    rng = np.random.default_rng(1)
    u = rng.integers(0, 1 << 32, 300_000, dtype=np.uint64).astype(np.uint32)
    x = u.view(np.float32)
    np.testing.assert_array_equal(to_bf16_bits(x), _reference_bits(x))


@pytest.mark.parametrize(
    ("f32", "bf16"),
    [
        (0x3F808000, 0x3F80),  # 1 + 2^-8: a tie, kept LSB even → down
        (0x3F818000, 0x3F82),  # tie with odd kept LSB → up to even
        (0x3F808001, 0x3F81),  # just above the tie → up
        (0x3F807FFF, 0x3F80),  # just below the tie → down
        (0xBF808000, 0xBF80),  # negative tie → magnitude to even
        (0xBF818000, 0xBF82),
        (0x3FFF8000, 0x4000),  # tie that carries into the exponent
        (0x7F7F7FFF, 0x7F7F),  # largest value that stays finite
        (0x7F7F8000, 0x7F80),  # tie above the largest BF16 → +inf
        (0xFF7F8000, 0xFF80),  # → -inf
        (0x7F800000, 0x7F80),  # +inf
        (0xFF800000, 0xFF80),  # -inf
        (0x00008000, 0x0000),  # subnormal tie → even (zero)
        (0x00018000, 0x0002),  # subnormal tie → even, kept (not flushed)
        (0x80000000, 0x8000),  # -0 keeps its sign
        (0x7F800001, 0x7FC0),  # signalling NaN → canonical quiet NaN
        (0x7FFFFFFF, 0x7FC0),  # NaN whose rounding would carry
        (0xFFC12345, 0xFFC0),  # negative NaN keeps the sign
    ],
)
def test_round_to_nearest_even_cases(f32, bf16):
    x = _bits32(f32)
    assert int(to_bf16_bits(x)[0]) == bf16
    assert int(_reference_bits(x)[0]) == bf16  # the reference agrees with the table


def test_scalar_nan_and_shapes():
    assert to_bf16_bits(np.float32("nan")).shape == ()
    assert int(to_bf16_bits(np.float32("nan"))) == 0x7FC0
    assert int(to_bf16_bits(1.0)) == 0x3F80
    assert to_bf16_bits(np.zeros((2, 0, 3), np.float32)).shape == (2, 0, 3)
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)[:, ::2]  # non-contiguous view
    np.testing.assert_array_equal(from_bf16_bits(to_bf16_bits(x)), x)


def test_float64_input_is_rounded_to_float32_first():
    # 1 + 2^-8 + 2^-30 is above the BF16 tie, but float32 rounds it onto the tie, which
    # then goes to even: the documented double rounding.
    x = 1.0 + 2.0**-8 + 2.0**-30
    assert int(to_bf16_bits(np.float64(x))) == 0x3F80
    assert bf16_round(np.float64(x)).dtype == np.float32


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_bf16_round_is_nearest_and_idempotent(v):
    x = np.float32(v)
    r = bf16_round(x)
    assert bf16_round(r) == r
    if np.isinf(r):  # only at or beyond the tie above the largest BF16 (0x7F7F)
        assert abs(x) >= _bits32(0x7F7F8000)[0]
    elif abs(x) >= np.finfo(np.float32).tiny:  # normal range: half an ulp ≤ 2^-8 relative
        assert abs(float(r) - float(x)) <= abs(float(x)) * 2.0**-8


def test_bad_dtypes():
    with pytest.raises(ValueError, match=r"^bits must have dtype uint16, not int32$"):
        from_bf16_bits(np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"^x must be a real numeric array, not dtype <U3$"):
        to_bf16_bits(np.array(["abc"]))
    with pytest.raises(ValueError, match=r"^x must be a real numeric array, not dtype complex64$"):
        bf16_round(np.zeros(2, np.complex64))
