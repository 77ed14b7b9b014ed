"""Bit-exact model of the datapath arithmetic (SPEC section 3, "Datapath"): BF16 × BF16
products, FP32 accumulation, a fixed reduction order. ``hw.datapath`` matches it bit for bit.

Number formats and policy:

- Operands are BF16 bit patterns (``uint16``), results FP32 bit patterns (``uint32``).
- **Flush to zero.** A subnormal operand (exponent field 0) is read as a zero of its sign;
  a result whose magnitude is below ``2**-126`` becomes a zero of the exact result's sign.
- **Products** ``bf16_mul``: exact (8-bit × 8-bit significands give 16 bits, which FP32's
  24 hold), then flushed when below ``2**-126`` and ±inf when at or above ``2**128``.
  The sign of a zero product is the XOR of the operand signs.
- **Sums** ``fp32_add``: IEEE 754 binary32 addition, round to nearest, ties to even, of the
  flushed operands, result flushed; ``x + (-x) = +0``, ``(-0) + (-0) = -0``. Overflow
  gives ±inf. inf + finite = inf, inf + inf = inf, inf + (-inf) and anything with a NaN give
  the canonical quiet NaN ``0x7FC00000`` (sign 0).
- **Operands must be finite**: ``bf16_mul``/``dot`` raise ``ValueError`` on an exponent
  field of 255 (the hardware's behaviour there is undefined). Infinities and NaN only ever
  arise from overflowing products or sums, and then follow the rules above.

Reduction order (``dot``), for vectors of ``n`` elements and ``lanes`` MAC lanes (a power of
two): the vectors are zero-padded (BF16 ``+0`` in both operands, so a ``+0`` product) to
``m = max(1, ceil(n / lanes))`` chunks of ``lanes`` elements. Chunk ``c`` holds elements
``c*lanes .. c*lanes + lanes - 1``. Its products ``p_0 .. p_{lanes-1}`` are summed by a
pairwise tree: level 1 forms ``p_0+p_1, p_2+p_3, …``, level 2 adds neighbouring level-1
sums, and so on for ``log2(lanes)`` levels; each ``+`` is one ``fp32_add`` (left operand =
lower index). The chunk sums ``t_0 .. t_{m-1}`` are then accumulated sequentially,
``((t_0 + t_1) + t_2) + … + t_{m-1}``; the accumulator starts from ``t_0`` itself, not from
a ``+0`` (so a dot product of one chunk is exactly its tree sum).

The MAC array (``mac_array``) keeps that order: row ``r`` of an array of ``cols`` columns
is such a tree of ``cols`` lanes, so its score for K vector ``t`` is exactly
``dot(queries[r], keys[t], cols)``; every row reduces the same K beat at the same time.

All functions are vectorised over leading axes.

CLI: the float-model error of the datapath on the q·k dot products of a recorded trace
(every ``workloads.trace`` query against keys of its KV head, sampled), against the exact
(``math.fsum``) dot product of the same BF16 values::

    python -m golden.fparith --trace build/traces/x.npz --lanes 16 --pairs 20000
"""

from __future__ import annotations

import argparse
import decimal
import functools
import json
import math
import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from golden.bf16 import to_bf16_bits

__all__ = [
    "QNAN32",
    "bf16_mul",
    "bits_to_f32",
    "dot",
    "dot_float",
    "exp2_table",
    "exp2q",
    "f32_to_bits",
    "fp32_add",
    "fp32_ge",
    "fp32_max",
    "fp32_mul",
    "fp32_recip",
    "fp32_to_bf16",
    "fp32_to_fixed",
    "ftz32",
    "int_to_fp32",
    "mac_array",
    "main",
    "print_figures",
    "qk_error",
    "tree_sum",
]

#: Canonical quiet NaN of every NaN result.
QNAN32 = np.uint32(0x7FC0_0000)
_EXP32 = np.uint32(0x7F80_0000)
_SIGN32 = np.uint32(0x8000_0000)
_MANT32 = np.uint32(0x007F_FFFF)


def f32_to_bits(x: npt.ArrayLike) -> np.ndarray:
    """FP32 bit patterns (``uint32``) of ``float32`` values."""
    arr = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint32).reshape(arr.shape)


def bits_to_f32(bits: npt.ArrayLike) -> np.ndarray:
    """``float32`` values of FP32 bit patterns."""
    arr = np.asarray(bits, dtype=np.uint32)
    return np.ascontiguousarray(arr).reshape(-1).view(np.float32).reshape(arr.shape)


def _uint(bits: npt.ArrayLike, dtype, name: str) -> np.ndarray:
    arr = np.asarray(bits)
    if arr.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype).name}, not {arr.dtype}")
    return arr


def ftz32(bits: npt.ArrayLike) -> np.ndarray:
    """FP32 patterns with subnormals replaced by zeros of their sign; NaNs canonicalised."""
    u = _uint(bits, np.uint32, "bits")
    exp = u & _EXP32
    out = np.where(exp == 0, u & _SIGN32, u)
    is_nan = (exp == _EXP32) & ((u & _MANT32) != 0)
    return np.where(is_nan, QNAN32, out).astype(np.uint32)


def bf16_mul(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """FP32 patterns of the products of BF16 patterns ``a`` and ``b`` (see the module doc)."""
    a = _uint(a, np.uint16, "a").astype(np.uint32)
    b = _uint(b, np.uint16, "b").astype(np.uint32)
    for name, x in (("a", a), ("b", b)):
        if ((x >> np.uint32(7)) & np.uint32(0xFF) == 0xFF).any():
            raise ValueError(f"{name} must hold finite BF16 values (exponent field 255 found)")
    fa = bits_to_f32(ftz32(a << np.uint32(16))).astype(np.float64)
    fb = bits_to_f32(ftz32(b << np.uint32(16))).astype(np.float64)
    p = fa * fb  # exact: 16 significant bits, exponent within float64's range
    sign = ((a ^ b) & np.uint32(0x8000)) << np.uint32(16)
    mag = np.abs(p)
    with np.errstate(over="ignore"):
        out = f32_to_bits(mag.astype(np.float32))  # exact unless >= 2**128 (-> inf)
    out = np.where(mag < 2.0**-126, np.uint32(0), out)
    return (out | sign).astype(np.uint32)


def fp32_add(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """FP32 patterns of ``a + b`` (RNE, flush to zero, NaN/inf policy of the module doc)."""
    fa = bits_to_f32(ftz32(a))
    fb = bits_to_f32(ftz32(b))
    with np.errstate(over="ignore", invalid="ignore"):
        s = (fa + fb).astype(np.float32)  # IEEE binary32 addition, round to nearest even
    return ftz32(f32_to_bits(s))


def fp32_to_bf16(a: npt.ArrayLike) -> np.ndarray:
    """BF16 patterns (``uint16``) of FP32 patterns ``a`` (``uint32``): the operand is
    flushed first (``ftz32``: a subnormal is a zero of its sign), then rounded to nearest,
    ties to even, at 8 significand bits. A rounding carry may reach the exponent, up to
    ±inf (overflow); ±inf stays ±inf, every NaN gives the canonical BF16 quiet NaN
    ``0x7FC0``. A normal operand never rounds below ``2**-126``, so no BF16 result is
    subnormal."""
    u = ftz32(_uint(a, np.uint32, "a"))
    lsb = (u >> np.uint32(16)) & np.uint32(1)
    with np.errstate(over="ignore"):
        rounded = ((u + np.uint32(0x7FFF) + lsb) >> np.uint32(16)).astype(np.uint16)
    return np.where(u == QNAN32, np.uint16(0x7FC0), rounded).astype(np.uint16)


def tree_sum(products: npt.ArrayLike) -> np.ndarray:
    """Pairwise-tree sum over the last axis (a power of two) of FP32 patterns."""
    p = _uint(products, np.uint32, "products")
    n = p.shape[-1]
    if n < 1 or n & (n - 1):
        raise ValueError(f"the last axis must have a power-of-two length, not {n}")
    while p.shape[-1] > 1:
        p = fp32_add(p[..., 0::2], p[..., 1::2])
    return p[..., 0]


def dot(a: npt.ArrayLike, b: npt.ArrayLike, lanes: int) -> np.ndarray:
    """FP32 patterns of the dot products over the last axis of BF16 patterns ``a``, ``b``
    in the datapath's order (module doc): per-chunk pairwise trees of ``lanes`` products,
    then a sequential accumulation of the chunk sums."""
    if isinstance(lanes, bool) or not isinstance(lanes, int):
        raise TypeError(f"lanes must be an integer, not {lanes!r}")
    if lanes < 1 or lanes & (lanes - 1):
        raise ValueError(f"lanes must be a power of two, not {lanes!r}")
    a = _uint(a, np.uint16, "a")
    b = _uint(b, np.uint16, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, not {a.shape} and {b.shape}")
    if a.ndim < 1 or a.shape[-1] < 1:
        raise ValueError(f"a and b must have a non-empty last axis, not shape {a.shape}")
    n = a.shape[-1]
    chunks = max(1, -(-n // lanes))
    pad = [(0, 0)] * (a.ndim - 1) + [(0, chunks * lanes - n)]
    p = bf16_mul(np.pad(a, pad), np.pad(b, pad))
    t = tree_sum(p.reshape(*p.shape[:-1], chunks, lanes))
    acc = t[..., 0]
    for c in range(1, chunks):
        acc = fp32_add(acc, t[..., c])
    return acc


def mac_array(
    queries: npt.ArrayLike, keys: npt.ArrayLike, cols: int, *, rows: int | None = None
) -> np.ndarray:
    """FP32 patterns ``(T, R)`` of the scores of ``R`` stationary query vectors against
    ``T`` streamed K vectors, all BF16 patterns of ``n`` elements (``queries`` ``(R, n)``,
    ``keys`` ``(T, n)``): entry ``[t, r]`` is ``dot(queries[r], keys[t], cols)``, the
    reduction order of the module doc. With ``rows`` (the array's ``mac_rows`` >= ``R``),
    the result has ``rows`` columns, those past ``R`` ``+0``: one output beat of
    ``hw.datapath.MacArray`` per K vector."""
    q = _uint(queries, np.uint16, "queries")
    k = _uint(keys, np.uint16, "keys")
    if q.ndim != 2 or k.ndim != 2 or q.shape[1] != k.shape[1]:
        raise ValueError(
            f"queries and keys must be (R, n) and (T, n) arrays, not {q.shape} and {k.shape}"
        )
    if 0 in q.shape or 0 in k.shape:
        raise ValueError(f"queries and keys must not be empty, not {q.shape} and {k.shape}")
    shape = (k.shape[0], q.shape[0], q.shape[1])
    out = dot(np.broadcast_to(q[None], shape), np.broadcast_to(k[:, None], shape), cols)
    if rows is None:
        return out
    _check_int("rows", rows, q.shape[0], 1 << 20)
    return np.pad(out, [(0, 0), (0, rows - q.shape[0])]).astype(np.uint32)


def dot_float(a: npt.ArrayLike, b: npt.ArrayLike, lanes: int) -> np.ndarray:
    """``dot`` of float inputs rounded to BF16 first (``golden.bf16.to_bf16_bits``), as
    ``float32``."""
    return bits_to_f32(dot(to_bf16_bits(a), to_bf16_bits(b), lanes))


# FP32 primitives of the vector unit (softmax): multiplication, comparison, conversions,
# reciprocal and the table-based exp2. Same FTZ / NaN / inf policy as above.


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")


def fp32_mul(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """FP32 patterns of ``a * b``: IEEE round to nearest, ties to even, of the exact product
    of the flushed operands, rounded with an unbounded exponent and then flushed (magnitude
    below ``2**-126`` -> zero of the product's sign) or overflowed (-> ±inf). A NaN operand
    or ``0 * inf`` gives ``QNAN32``; ``inf * x`` (``x != 0``) gives a signed infinity."""
    ua = ftz32(a)
    ub = ftz32(b)
    fa = np.abs(bits_to_f32(ua).astype(np.float64))
    fb = np.abs(bits_to_f32(ub).astype(np.float64))
    sign = (ua ^ ub) & _SIGN32
    with np.errstate(invalid="ignore", over="ignore"):
        p = fa * fb  # exact for finite operands: 48 significant bits, float64 range
        fin = np.isfinite(p) & (p > 0)
        man, exp = np.frexp(np.where(fin, p, 1.0))
        r = np.ldexp(np.rint(man * 2.0**24), exp - 24)  # rint: round half to even
        mag = np.where(fin, r, p)
        out = f32_to_bits(mag.astype(np.float32))  # exact (or inf) once rounded to 24 bits
    out = np.where(mag < 2.0**-126, np.uint32(0), out)
    out = (out | sign).astype(np.uint32)
    nan = np.isnan(p) | (ua == QNAN32) | (ub == QNAN32)
    return np.where(nan, QNAN32, out).astype(np.uint32)


def _finite_or_inf(bits: npt.ArrayLike, name: str) -> np.ndarray:
    u = ftz32(_uint(bits, np.uint32, name))
    if (u == QNAN32).any():
        raise ValueError(f"{name} must not hold NaN patterns")
    return u


def fp32_ge(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """``a >= b`` by value for FP32 patterns (flushed; ``-0 == +0``); ``ValueError`` on NaN."""
    fa = bits_to_f32(_finite_or_inf(a, "a"))
    fb = bits_to_f32(_finite_or_inf(b, "b"))
    return np.asarray(fa >= fb)


def fp32_max(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """The pattern of ``b`` where ``b > a`` by value, else that of ``a`` (unchanged bits;
    so ``max(+0, -0)`` is ``+0`` and ``max(-0, +0)`` is ``-0``); ``ValueError`` on NaN."""
    a = _uint(a, np.uint32, "a")
    b = _uint(b, np.uint32, "b")
    return np.where(fp32_ge(a, b), a, b).astype(np.uint32)


def int_to_fp32(n: npt.ArrayLike) -> np.ndarray:
    """Exact FP32 patterns of unsigned integers ``0 <= n < 2**24``."""
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"n must have an integer dtype, not {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << 24):
        raise ValueError(f"n must be in 0..{(1 << 24) - 1}, not {arr.min()}..{arr.max()}")
    return f32_to_bits(arr.astype(np.float32))


def _recip1(u: int) -> int:
    exp, man = u >> 23 & 0xFF, u & 0x7F_FFFF
    if man == 0:  # a power of two: exact
        e = 254 - exp
        return e << 23 if e > 0 else 0
    sig = man | 1 << 23
    q, r = divmod(1 << 47, sig)  # 1/a = q.r / 2**23 * 2**(126 - (exp - 127)), q in (2**23, 2**24)
    if 2 * r > sig or (2 * r == sig and q & 1):
        q += 1
    e = 253 - exp
    if q == 1 << 24:
        q, e = 1 << 23, e + 1
    return (e << 23 | (q - (1 << 23))) if e > 0 else 0


def fp32_recip(a: npt.ArrayLike) -> np.ndarray:
    """FP32 patterns of ``1/a`` correctly rounded (nearest, ties to even; computed with
    Python integers) for positive normal finite ``a``; results below ``2**-126`` are ``+0``.
    ``ValueError`` for zeros, subnormals, negative values, infinities and NaN."""
    u = _uint(a, np.uint32, "a")
    exp = (u >> np.uint32(23)) & np.uint32(0xFF)
    bad = ((u & _SIGN32) != 0) | (exp == 0) | (exp == 0xFF)
    if bad.any():
        raise ValueError(
            f"a must hold positive normal finite FP32 values, not {int(u[bad].flat[0]):#010x}"
        )
    out = np.array([_recip1(int(x)) for x in u.reshape(-1)], dtype=np.uint32)
    return out.reshape(u.shape)


def fp32_to_fixed(a: npt.ArrayLike, frac_bits: int, width: int) -> np.ndarray:
    """``round_half_even(a * 2**frac_bits)`` as ``int64``, saturated to the signed range of
    ``width`` bits; subnormals are 0, ±inf saturate, NaN raises ``ValueError``."""
    _check_int("frac_bits", frac_bits, 0, 32)
    _check_int("width", width, 2, 53)
    u = _finite_or_inf(a, "a")
    x = bits_to_f32(u).astype(np.float64) * 2.0**frac_bits  # exact (or ±inf)
    lo, hi = -(2.0 ** (width - 1)), 2.0 ** (width - 1) - 1
    with np.errstate(invalid="ignore"):
        v = np.clip(np.rint(x), lo, hi)
    return v.astype(np.int64)


def exp2_table(frac_bits: int) -> np.ndarray:
    """``2**frac_bits`` FP32 fraction fields: entry ``j`` is
    ``round_half_even((2**(j / 2**frac_bits) - 1) * 2**23)`` (computed in 60-digit decimal
    arithmetic; no entry is near a tie, since ``2**(j/N)`` is irrational for ``0 < j < N``)."""
    _check_int("frac_bits", frac_bits, 0, 16)
    return _exp2_table(frac_bits).copy()


@functools.cache
def _exp2_table(frac_bits: int) -> np.ndarray:
    n = 1 << frac_bits
    ctx = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)
    scale = decimal.Decimal(1 << 23)
    out = np.empty(n, dtype=np.uint32)
    for j in range(n):
        v = ctx.power(decimal.Decimal(2), ctx.divide(decimal.Decimal(j), decimal.Decimal(n)))
        out[j] = int(ctx.multiply(v - 1, scale).to_integral_value(decimal.ROUND_HALF_EVEN))
    return out


def exp2q(x: npt.ArrayLike, frac_bits: int) -> np.ndarray:
    """The vector unit's ``2**x`` (meant for ``x <= 0``): ``xf = fp32_to_fixed(x,
    frac_bits, frac_bits + 9)``, ``n = xf >> frac_bits`` (floor), ``j = xf mod
    2**frac_bits``; the result is ``+0`` for ``n < -126``, ``+inf`` for ``n >= 128``, else
    the FP32 pattern with sign 0, biased exponent ``n + 127`` and fraction
    ``exp2_table(frac_bits)[j]``; so ``exp2q(±0) == 1.0`` exactly.

    Error against ``2**x``: the fixed-point input is off by at most ``2**-(frac_bits+1)``,
    a relative error of at most ``2**(2**-(frac_bits+1)) - 1`` (about
    ``2**-(frac_bits+1) * ln 2``); the table entry adds at most ``2**-24`` relative.
    """
    _check_int("frac_bits", frac_bits, 0, 16)
    xf = fp32_to_fixed(x, frac_bits, frac_bits + 9)
    n = xf >> frac_bits
    j = xf & ((1 << frac_bits) - 1)
    frac = _exp2_table(frac_bits)[j]
    bits = ((np.clip(n, -127, 128) + 127).astype(np.uint32) << np.uint32(23)) | frac
    out = np.where(n < -126, np.uint32(0), bits)
    return np.where(n >= 128, _EXP32, out).astype(np.uint32)


def qk_error(path: str, *, lanes: int, pairs: int, seed: int = 0) -> dict:
    """Error statistics of ``dot`` against the exact dot product on ``pairs`` random q·k
    pairs of the trace at ``path`` (prefill and decode queries, any layer and query head,
    keys of the matching KV head). ``rel`` is ``|dot - exact| / |exact|`` (pairs with an
    exact 0 left out); ``norm`` is ``|dot - exact| / sum |q_i k_i|``, the error relative to
    the magnitude that the rounding acts on (meaningful under cancellation too)."""
    from workloads.trace import load

    t = load(path)
    rng = np.random.default_rng(seed)
    qs = np.concatenate(
        [t.queries.reshape(t.layers, t.q_heads, -1, t.head_dim)]
        + ([t.decode_queries] if t.n_decode else []),
        axis=2,
    )
    layer = rng.integers(t.layers, size=pairs)
    hq = rng.integers(t.q_heads, size=pairs)
    q = qs[layer, hq, rng.integers(qs.shape[2], size=pairs)]
    k = t.keys[layer, hq // t.q_per_kv, rng.integers(t.n_tokens, size=pairs)]
    got = bits_to_f32(dot(to_bf16_bits(q), to_bf16_bits(k), lanes)).astype(np.float64)
    prods = q.astype(np.float64) * k.astype(np.float64)  # exact: BF16 x BF16
    exact = np.array([math.fsum(row) for row in prods])
    err = np.abs(got - exact)
    nz = exact != 0
    rel = err[nz] / np.abs(exact[nz])
    norm = err / np.maximum(np.abs(prods).sum(axis=1), np.finfo(np.float64).tiny)
    return {
        "trace": str(path),
        "lanes": lanes,
        "pairs": pairs,
        "head_dim": t.head_dim,
        "rel_max": float(rel.max()),
        "rel_mean": float(rel.mean()),
        "rel_median": float(np.median(rel)),
        "rel_p99": float(np.quantile(rel, 0.99)),
        "norm_max": float(norm.max()),
        "norm_mean": float(norm.mean()),
        "exact_results": float(np.mean(err == 0)),
        "fp32_ulp": 2.0**-23,
    }


def print_figures(res: dict[str, object], json_path: str | None = None) -> None:
    """Print an error CLI's figures as a Markdown table; with ``json_path``, also write them."""
    print("| metric | value |\n|---|---|")
    for key, val in res.items():
        print(f"| {key} | {val:.3g} |" if isinstance(val, float) else f"| {key} | {val} |")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(res, f, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m golden.fparith", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--trace", required=True, help="a workloads.trace .npz file")
    ap.add_argument("--lanes", type=int, default=16, help="MAC lanes (power of two)")
    ap.add_argument("--pairs", type=int, default=20000, help="q·k pairs sampled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=str, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    try:
        res = qk_error(args.trace, lanes=args.lanes, pairs=args.pairs, seed=args.seed)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        ap.error(str(exc))
    print_figures(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
