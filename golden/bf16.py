"""BF16 (bfloat16) conversions: the storage format of keys, values and queries in hardware.

Contract:

- ``to_bf16_bits(x)`` converts ``x`` to float32 first (the format of the datapath's FP32
  accumulators; a float64 input is therefore rounded twice, which callers who care must
  avoid by rounding to float32 themselves), then rounds to BF16 with round-to-nearest,
  ties-to-even, and returns the 16-bit patterns as ``uint16``. Finite values beyond the
  largest BF16 (``0x7F7F``) plus half an ulp become ±inf, ±inf stay ±inf, and every NaN
  becomes the canonical quiet NaN with the sign kept (``0x7FC0`` / ``0xFFC0``). Subnormal
  BF16 results are kept, not flushed: storage is exact, the MAC flushes subnormals on use
  (SPEC section 3). This is bit-identical to ``ml_dtypes.bfloat16`` on float32 input.
- ``from_bf16_bits(bits)`` is exact: a BF16 pattern is the top half of a float32.
- ``bf16_round(x)`` is ``from_bf16_bits(to_bf16_bits(x))``: float32 values that are all
  representable in BF16.

All three keep the input's shape and are vectorised.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["bf16_round", "from_bf16_bits", "to_bf16_bits"]

_EXP_MASK = np.uint32(0x7F80_0000)
_MANT_MASK = np.uint32(0x007F_FFFF)
_QUIET_NAN = np.uint16(0x7FC0)
_SIGN16 = np.uint16(0x8000)


def _as_float32(x: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"x must be a real numeric array, not dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def to_bf16_bits(x: npt.ArrayLike) -> np.ndarray:
    """BF16 bit patterns (``uint16``) of ``float32(x)``, rounded to nearest, ties to even."""
    f = _as_float32(x)
    # Work on a 1-D view: uint32 wrap-around on 0-d arrays (NaN inputs) would warn.
    u = np.ascontiguousarray(f).reshape(-1).view(np.uint32)
    # Adding 0x7FFF plus the lowest kept bit and truncating is RNE: below half rounds down,
    # above half carries into the kept bits, and an exact tie carries only if the kept LSB is
    # odd. A carry out of the mantissa correctly bumps the exponent (up to inf).
    lsb = (u >> np.uint32(16)) & np.uint32(1)
    rounded = ((u + np.uint32(0x7FFF) + lsb) >> np.uint32(16)).astype(np.uint16)
    is_nan = ((u & _EXP_MASK) == _EXP_MASK) & ((u & _MANT_MASK) != 0)
    if is_nan.any():
        # The carry above could turn a NaN into inf or a different NaN; canonicalise instead.
        sign = (u >> np.uint32(16)).astype(np.uint16) & _SIGN16
        rounded = np.where(is_nan, sign | _QUIET_NAN, rounded)
    return rounded.reshape(f.shape)


def from_bf16_bits(bits: npt.ArrayLike) -> np.ndarray:
    """float32 values of BF16 bit patterns (exact). ``bits`` must have dtype uint16."""
    arr = np.asarray(bits)
    if arr.dtype != np.uint16:
        raise ValueError(f"bits must have dtype uint16, not {arr.dtype}")
    return (arr.astype(np.uint32) << np.uint32(16)).view(np.float32)


def bf16_round(x: npt.ArrayLike) -> np.ndarray:
    """``float32(x)`` rounded to the nearest BF16 value (ties to even), as float32."""
    return from_bf16_bits(to_bf16_bits(x))
