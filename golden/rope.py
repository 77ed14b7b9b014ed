"""Rotary position embedding (RoPE), Llama "rotate-half" layout.

``rope(x, positions, base=...)`` rotates the pairs ``(x[i], x[i + d/2])`` by the angle
``position * base**(-2i/d)``. Angles and products are computed in float64 and the result is
returned as float32 (the float model).

``rope_bf16`` is the bit-exact model of the hardware RoPE unit (``hw.datapath.RopeUnit``):

- Pair ``i`` (of ``d/2``) turns by a 32-bit phase, one turn = ``2**32``:
  ``phase = (p * F_i) mod 2**32`` with ``F_i = rope_freq_words(d, base)[i] =
  round(base**(-2i/d) / (2*pi) * 2**32) mod 2**32`` (float64, round half to even).
- The phase picks the nearest entry of full-circle tables of ``2**lut_bits`` BF16 values
  (``rope_tables``): ``j = ((phase + 2**(31 - lut_bits)) >> (32 - lut_bits)) mod
  2**lut_bits``, ``c = cos[j]``, ``s = sin[j]``.
- ``y[i]       = fp32_to_bf16(fp32_add(bf16_mul(x[i], c),     bf16_mul(x[i+d/2], -s)))``
  ``y[i + d/2] = fp32_to_bf16(fp32_add(bf16_mul(x[i+d/2], c), bf16_mul(x[i], s)))``
  (``golden.fparith``: exact products, one FP32 rounding, one BF16 rounding, FTZ).

Error against the float model (``rope_error``): the angle is off by at most half a table
step, ``2*pi / 2**(lut_bits+1)`` rad, plus ``p * 2**-33`` turns from rounding ``F_i``; each
table entry by at most half a BF16 ulp (``2**-9``); the result by one BF16 rounding
(``2**-9`` relative). Per element, with ``r = hypot(x[i], x[i+d/2])``:
``|y - y_float| <= r * (dtheta + 2**-8) * (1 + 2**-7) + 2**-8 * |y_float| + 2**-20 * r``
(``rope_bf16_bound``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from golden.bf16 import from_bf16_bits, to_bf16_bits
from golden.fparith import bf16_mul, fp32_add, fp32_to_bf16

__all__ = [
    "rope",
    "rope_bf16",
    "rope_bf16_bound",
    "rope_error",
    "rope_freq_words",
    "rope_indices",
    "rope_quarter",
    "rope_quarter_lookup",
    "rope_tables",
]


def rope(x: np.ndarray, positions: np.ndarray, *, base: float | None = 10000.0) -> np.ndarray:
    """Apply RoPE to ``x`` (..., n, d) at ``positions`` (n,); ``base=None``: no rotation
    (a stream without RoPE), ``x`` as float32."""
    x = np.asarray(x)
    pos = np.asarray(positions)
    if x.ndim < 2:
        raise ValueError(f"x must be (..., n, d), not shape {x.shape}")
    n, d = x.shape[-2:]
    if d % 2:
        raise ValueError(f"x must have an even last dimension, not {d}")
    if pos.shape != (n,):
        raise ValueError(f"positions must have shape ({n},), not {pos.shape}")
    if base is None:
        return x.astype(np.float32)
    inv_freq = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = pos.astype(np.float64)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    x1 = x[..., : d // 2].astype(np.float64)
    x2 = x[..., d // 2 :].astype(np.float64)
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(np.float32)


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value!r}")
    return int(value)


def _check_base(base) -> float:
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be a number, not {base!r}")
    if not (math.isfinite(base) and base > 1.0):
        raise ValueError(f"base must be a finite number greater than 1, not {base!r}")
    return float(base)


def rope_freq_words(head_dim: int, base: float = 10000.0) -> np.ndarray:
    """Per-pair phase increments ``F_i`` (``uint32``, ``head_dim // 2`` of them): one
    position advances pair ``i`` by ``F_i / 2**32`` turns (see the module docstring)."""
    d = _check_int("head_dim", head_dim, 2, 1 << 16)
    if d % 2:
        raise ValueError(f"head_dim must be even, not {head_dim!r}")
    b = _check_base(base)
    inv = b ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    words = np.rint(inv / (2 * np.pi) * 2.0**32).astype(np.uint64) % (1 << 32)
    return words.astype(np.uint32)


def rope_tables(lut_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cos_bits, sin_bits)``: BF16 patterns (``uint16``, ``2**lut_bits`` each) of
    ``cos``/``sin(2*pi*j / 2**lut_bits)``, computed in float64 and rounded by
    ``golden.bf16.to_bf16_bits`` (through float32, RNE)."""
    n = 1 << _check_int("lut_bits", lut_bits, 2, 16)
    ang = 2 * np.pi * np.arange(n, dtype=np.float64) / n
    return to_bf16_bits(np.cos(ang)), to_bf16_bits(np.sin(ang))


def rope_quarter(lut_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hardware's form of ``rope_tables``: ``(quarter, cos_edges, sin_edges)``, the
    ``2**lut_bits / 4`` first cosines and both tables at the four quadrant boundaries.

    ``rope_quarter_lookup`` rebuilds every entry of both tables from them (the tables are
    mirror images of the quarter, signs aside, except at the boundaries, where float64's
    ``cos(pi/2)`` is ``6e-17``, not 0), so the RoPE unit needs one quarter-size ROM."""
    cos_t, sin_t = rope_tables(lut_bits)
    q = len(cos_t) // 4
    return cos_t[:q], cos_t[::q].copy(), sin_t[::q].copy()


def rope_quarter_lookup(j, lut_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cos[j], sin[j])`` of ``rope_tables(lut_bits)`` from ``rope_quarter``, the way the
    RoPE unit reads them. With ``quadrant = j >> (lut_bits-2)`` and ``r`` the rest: at
    ``r == 0`` the boundary values; else ``a = quarter[r]``, ``b = quarter[q - r]`` and
    ``cos = (a, -b, -a, b)``, ``sin = (b, a, -b, -a)`` by quadrant (a sign is bit 15)."""
    quarter, cos_edges, sin_edges = rope_quarter(lut_bits)
    q = len(quarter)
    j = np.asarray(j, dtype=np.int64)
    quad, r = j // q % 4, j % q
    a, b = quarter[r], quarter[(q - r) % q]
    even = quad % 2 == 0
    cos = np.where(even, a, b) ^ np.where((quad == 1) | (quad == 2), 0x8000, 0)
    sin = np.where(even, b, a) ^ np.where(quad >= 2, 0x8000, 0)
    edge = r == 0
    cos = np.where(edge, cos_edges[quad], cos).astype(np.uint16)
    sin = np.where(edge, sin_edges[quad], sin).astype(np.uint16)
    return cos, sin


def _positions(positions, n: int) -> np.ndarray:
    pos = np.asarray(positions)
    if pos.shape != (n,):
        raise ValueError(f"positions must have shape ({n},), not {pos.shape}")
    if pos.dtype.kind not in "iu":
        raise TypeError(f"positions must have an integer dtype, not {pos.dtype}")
    if pos.size and (pos < 0).any():
        raise ValueError(f"positions must be non-negative, not {int(pos.min())!r}")
    return pos.astype(np.uint64)


def rope_indices(positions, *, head_dim: int, base: float, lut_bits: int) -> np.ndarray:
    """Table indices ``j`` (``int64``, shape ``(n, head_dim // 2)``) of every position and
    pair: the nearest table entry to ``(p * F_i) mod 2**32``."""
    lb = _check_int("lut_bits", lut_bits, 2, 16)
    freq = rope_freq_words(head_dim, base).astype(np.uint64)
    arr = np.asarray(positions)
    if arr.ndim != 1:
        raise ValueError(f"positions must have shape (n,), not {arr.shape}")
    pos = _positions(arr, arr.shape[0])
    phase = (pos[:, None] * freq[None, :]) & np.uint64(0xFFFF_FFFF)  # wraps mod 2**64 first
    j = (phase + np.uint64(1 << (31 - lb))) >> np.uint64(32 - lb)
    return (j & np.uint64((1 << lb) - 1)).astype(np.int64)


def rope_bf16(
    x,
    positions,
    *,
    head_dim: int | None = None,
    base: float = 10000.0,
    lut_bits: int,
) -> np.ndarray:
    """Bit-exact RoPE of BF16 patterns ``x`` (``uint16``, ``(..., n, d)``) at non-negative
    integer ``positions`` (``(n,)``); returns BF16 patterns of the same shape. ``head_dim``,
    when given, must equal ``d``. See the module docstring for the arithmetic."""
    x = np.asarray(x)
    if x.dtype != np.uint16:
        raise TypeError(f"x must have dtype uint16 (BF16 patterns), not {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"x must be (..., n, d), not shape {x.shape}")
    n, d = x.shape[-2:]
    if head_dim is not None and head_dim != d:
        raise ValueError(f"head_dim must equal the last dimension of x ({d}), not {head_dim!r}")
    if d % 2 or d < 2:
        raise ValueError(f"x must have an even last dimension, not {d}")
    if ((x >> 7) & 0xFF == 0xFF).any():
        raise ValueError("x must hold finite BF16 values (exponent field 255 found)")
    _positions(positions, n)
    j = rope_indices(positions, head_dim=d, base=base, lut_bits=lut_bits)
    cos_t, sin_t = rope_tables(lut_bits)
    c, s = cos_t[j], sin_t[j]  # (n, d/2)
    h = d // 2
    x1, x2 = x[..., :h], x[..., h:]
    c = np.broadcast_to(c, x1.shape)
    s = np.broadcast_to(s, x1.shape)
    y1 = fp32_to_bf16(fp32_add(bf16_mul(x1, c), bf16_mul(x2, s ^ np.uint16(0x8000))))
    y2 = fp32_to_bf16(fp32_add(bf16_mul(x2, c), bf16_mul(x1, s)))
    return np.concatenate([y1, y2], axis=-1)


def rope_bf16_bound(x, positions, *, base: float = 10000.0, lut_bits: int) -> np.ndarray:
    """Per-element bound on ``|from_bf16(rope_bf16(x)) - rope(from_bf16(x))|`` (float64,
    shape of ``x``), the formula of the module docstring."""
    xf = from_bf16_bits(np.asarray(x)).astype(np.float64)
    h = xf.shape[-1] // 2
    pos = _positions(positions, xf.shape[-2]).astype(np.float64)
    r = np.hypot(xf[..., :h], xf[..., h:])
    r = np.concatenate([r, r], axis=-1)
    dtheta = 2 * np.pi * (2.0 ** -(lut_bits + 1) + pos * 2.0**-33)[:, None]
    ref = np.abs(rope(xf, np.asarray(positions), base=base).astype(np.float64))
    return r * (dtheta + 2.0**-8) * (1 + 2.0**-7) + 2.0**-8 * ref + 2.0**-20 * r


def rope_error(x, positions, *, base: float = 10000.0, lut_bits: int) -> dict:
    """Error of ``rope_bf16`` against the float ``rope`` on the same BF16 inputs ``x``
    (``uint16``, ``(..., n, d)``): per vector ``|y - y_float| / |y_float|`` (L2 norms;
    all-zero vectors left out) as ``rel_mean``/``rel_max``, and per element the largest
    ``|y - y_float|`` divided by the vector's RMS (``elem_max``)."""
    x = np.asarray(x)
    got = from_bf16_bits(rope_bf16(x, positions, base=base, lut_bits=lut_bits))
    ref = rope(from_bf16_bits(x).astype(np.float64), np.asarray(positions), base=base)
    got, ref = got.astype(np.float64), ref.astype(np.float64)
    err = np.linalg.norm(got - ref, axis=-1)
    norm = np.linalg.norm(ref, axis=-1)
    nz = norm > 0
    rel = err[nz] / norm[nz]
    rms = norm[nz] / math.sqrt(x.shape[-1])
    elem = np.abs(got - ref).max(axis=-1)[nz] / rms
    return {
        "lut_bits": int(lut_bits),
        "vectors": int(nz.sum()),
        "rel_mean": float(rel.mean()),
        "rel_max": float(rel.max()),
        "elem_max": float(elem.max()),
    }
