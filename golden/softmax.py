"""Bit-exact online softmax attention in the SPEC's per-token order: attention
of one query over ``n`` tokens with FP32 arithmetic (``golden.fparith``: flush to zero,
round to nearest even) and the table-based ``exp2q``.

``online_attention(scores, values, exp_frac_bits=F)`` with ``K = attention_scale(d)``
(``log2(e) / sqrt(d)`` rounded to FP32, so that ``2**(s*K) = e**(s/sqrt(d))``)::

    for t in 0..n-1:
        x = fp32_mul(scores[t], K)
        if t == 0: m_new = x; a = +0
        else:      m_new = fp32_max(m, x); a = exp2q(fp32_add(m, -m_new), F)
        p = exp2q(fp32_add(x, -m_new), F)           # -y flips the sign bit
        S = fp32_add(fp32_mul(S, a), p)             # S starts at +0
        o[i] = fp32_add(fp32_mul(o[i], a), fp32_mul(p, widen(values[t, i])))  # o starts +0
        m = m_new
    out[i] = fp32_mul(o[i], fp32_recip(S))

``widen`` turns a BF16 pattern into the FP32 pattern ``bits << 16`` (flushed). ``S >= 1``
after every token (the running maximum contributes ``exp2q(+0) = 1``), so the reciprocal is
always defined. Scores must be finite (an infinite score makes ``x - m_new`` NaN and
``exp2q`` raises ``ValueError``).

``attention_bits(q, keys, values, lanes=, exp_frac_bits=)`` adds the score dot products of
the MAC tree (``golden.fparith.dot``).

**Tiled order** (``tiled_attention``, the paper's datapath: issue 11). The order above costs
``head_dim`` FP32 multiply-adds of the vector unit per token and row (``o*a + p*v``), which
is why the per-token machine needs a vector unit per array row. The tiled order takes the
tokens ``T = tile`` at a time (a power of two), so that ``P x V`` is a matrix product on the
MAC array and the accumulator is rescaled once per tile instead of once per token. Per row,
with ``m = -inf``, ``l = +0``, ``o = +0`` at the start, for each tile of tokens
``j*T .. j*T + T - 1`` (the last tile padded with masked tokens whose values are ``+0``)::

    x[t]  = fp32_mul(scores[t], K)               # a masked score is -inf, so x is -inf
    mt    = tree_max(x)                          # pairwise tree over the T lanes
    m_new = fp32_max(m, mt)
    a     = exp2q(fp32_add(m, -m_new), F)        # +0 on the first tile (m = -inf)
    p[t]  = exp2q(fp32_add(x[t], -m_new), F)     # +0 for a masked token
    l     = fp32_add(fp32_mul(l, a), tree_sum(p))
    pb[t] = fp32_to_bf16(p[t])                   # P enters the MAC array as BF16
    o[i]  = fp32_add(fp32_mul(o[i], a), dot(pb, values[tile, i], lanes))
    m     = m_new
    out[i] = fp32_mul(o[i], fp32_recip(l))

``tree_max`` pairs lanes as ``dot``'s tree does (level 1: ``max(x0, x1), max(x2, x3), ...``,
``fp32_max(left, right)``); ``dot(pb, v, lanes)`` is the MAC array's reduction of the
``T`` products (``lanes = mac_cols``: one pairwise tree per ``lanes`` tokens, the chunk
sums in order). ``l`` sums the FP32 ``p`` while ``P x V`` uses their BF16 roundings, as
FlashAttention does; the difference is measured by ``attention_error(tile=T)``. The first
token of every row must be visible (unmasked): it is in the first tile, so ``m`` is finite
after it (a row whose whole first tile is masked raises ``ValueError`` through ``exp2q``
of a NaN). ``tile_step`` is one tile of one block of rows, without ``P x V``: the softmax
half of the vector unit.

CLI: relative L2 error of ``attention_bits`` against float64 softmax attention of the same
BF16 q/k/v on queries sampled from a trace (prefill queries attend causally to the tokens
up to their own, decode queries to the tokens ingested before them)::

    python -m golden.softmax --trace build/traces/x.npz --lanes 16 --exp-frac-bits 10 \\
        --queries 200 [--tile 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from golden.bf16 import to_bf16_bits
from golden.fparith import (
    _check_int,
    bits_to_f32,
    dot,
    exp2q,
    f32_to_bits,
    fp32_add,
    fp32_max,
    fp32_mul,
    fp32_recip,
    fp32_to_bf16,
    ftz32,
    print_figures,
    tree_sum,
)

__all__ = [
    "NEG_INF",
    "attention_bits",
    "attention_error",
    "attention_float",
    "attention_scale",
    "main",
    "online_attention",
    "tile_step",
    "tiled_attention",
    "tree_max",
]

_SIGN = np.uint32(0x8000_0000)
#: FP32 ``-inf``: the score of a masked token (a causally later one in a prefill row).
NEG_INF = np.uint32(0xFF80_0000)


def attention_scale(head_dim: int) -> np.uint32:
    """FP32 pattern of ``log2(e) / sqrt(head_dim)`` (float64, rounded to nearest even)."""
    _check_int("head_dim", head_dim, 1, 1 << 16)
    return np.uint32(f32_to_bits(np.float32(math.log2(math.e) / math.sqrt(head_dim))))


def _widen(values: np.ndarray) -> np.ndarray:
    return ftz32(values.astype(np.uint32) << np.uint32(16))


def _scores_values(scores: npt.ArrayLike, values: npt.ArrayLike) -> tuple[np.ndarray, ...]:
    """``scores`` (``(n,)`` or ``(R, n)`` uint32, non-empty) and ``values`` (``(n, d)``
    uint16, ``d >= 1``) as arrays, or ``ValueError`` naming the argument."""
    s = np.asarray(scores)
    v = np.asarray(values)
    if s.dtype != np.uint32 or s.ndim not in (1, 2) or s.size < 1:
        raise ValueError(
            f"scores must be a non-empty uint32 vector or (rows, n) array, not {s.dtype} {s.shape}"
        )
    n = s.shape[-1]
    if v.dtype != np.uint16 or v.ndim != 2 or v.shape[0] != n or v.shape[1] < 1:
        raise ValueError(
            f"values must be uint16 of shape ({n}, d), d >= 1, not {v.dtype} {v.shape}"
        )
    return s, v


def online_attention(
    scores: npt.ArrayLike, values: npt.ArrayLike, *, exp_frac_bits: int
) -> np.ndarray:
    """FP32 patterns ``(d,)`` of the attention output (module docstring): ``scores`` are
    ``n >= 1`` FP32 patterns (``uint32``), ``values`` ``(n, d)`` BF16 patterns. ``scores``
    of shape ``(R, n)`` give ``(R, d)``: ``R`` independent rows over the same values (a
    prefill's rows, one vector unit each), computed together."""
    s, v = _scores_values(scores, values)
    n = s.shape[-1]
    _check_int("exp_frac_bits", exp_frac_bits, 1, 16)
    k = attention_scale(v.shape[1])
    wide = _widen(v)
    rows = s.reshape(-1, n)
    m = S = np.zeros(rows.shape[0], np.uint32)
    o = np.zeros((rows.shape[0], v.shape[1]), np.uint32)
    for t in range(n):
        x = fp32_mul(rows[:, t], k)
        if t == 0:
            m_new, a = x, np.zeros_like(x)
        else:
            m_new = fp32_max(m, x)
            a = exp2q(fp32_add(m, m_new ^ _SIGN), exp_frac_bits)
        p = exp2q(fp32_add(x, m_new ^ _SIGN), exp_frac_bits)
        S = fp32_add(fp32_mul(S, a), p)
        o = fp32_add(fp32_mul(o, a[:, None]), fp32_mul(p[:, None], wide[t]))
        m = m_new
    out = fp32_mul(o, fp32_recip(S)[:, None]).astype(np.uint32)
    return out if s.ndim == 2 else out[0]


def tree_max(x: npt.ArrayLike) -> np.ndarray:
    """Pairwise-tree maximum over the last axis (a power of two) of FP32 patterns:
    ``fp32_max(left, right)`` at every node, lanes paired as in ``tree_sum``."""
    p = np.asarray(x)
    n = p.shape[-1] if p.ndim else 0
    if p.dtype != np.uint32 or n < 1 or n & (n - 1):
        raise ValueError(f"x must be uint32 with a power-of-two last axis, not {p.dtype} {p.shape}")
    while p.shape[-1] > 1:
        p = fp32_max(p[..., 0::2], p[..., 1::2])
    return p[..., 0]


def _check_tile(tile: int) -> None:
    _check_int("tile", tile, 1, 1 << 12)
    if tile & (tile - 1):
        raise ValueError(f"tile must be a power of two in 1..4096, not {tile!r}")


def tile_step(
    scores: npt.ArrayLike,
    m: npt.ArrayLike,
    l: npt.ArrayLike,
    *,
    head_dim: int,
    exp_frac_bits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One tile of the tiled order (module docstring) for ``R`` rows: ``scores`` ``(R, T)``
    FP32 patterns (masked tokens ``-inf``), the running max ``m`` and sum ``l`` ``(R,)``
    (``-inf`` and ``+0`` before the first tile) → ``(m_new, l_new, a, pb)``: ``a`` ``(R,)``
    scales the accumulator, ``pb`` ``(R, T)`` BF16 patterns are P's row for ``P x V``."""
    s = np.asarray(scores)
    if s.dtype != np.uint32 or s.ndim != 2:
        raise ValueError(f"scores must be a uint32 (rows, tile) array, not {s.dtype} {s.shape}")
    _check_tile(s.shape[1])
    m = np.asarray(m)
    l = np.asarray(l)
    for name, v in (("m", m), ("l", l)):
        if v.dtype != np.uint32 or v.shape != s.shape[:1]:
            raise ValueError(
                f"{name} must be uint32 of shape {s.shape[:1]}, not {v.dtype} {v.shape}"
            )
    _check_int("exp_frac_bits", exp_frac_bits, 1, 16)
    return _tile_step(s, m, l, attention_scale(head_dim), exp_frac_bits)


def _tile_step(s, m, l, k, exp_frac_bits):
    """``tile_step`` on checked arrays, ``k`` the scale ``attention_scale(head_dim)``."""
    x = fp32_mul(s, k)
    m_new = fp32_max(m, tree_max(x))
    a = exp2q(fp32_add(m, m_new ^ _SIGN), exp_frac_bits)
    p = exp2q(fp32_add(x, (m_new ^ _SIGN)[:, None]), exp_frac_bits)
    l_new = fp32_add(fp32_mul(l, a), tree_sum(p))
    return m_new, l_new.astype(np.uint32), a, fp32_to_bf16(p)


def tiled_attention(
    scores: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    tile: int,
    lanes: int,
    exp_frac_bits: int,
) -> np.ndarray:
    """FP32 patterns ``(R, d)`` of the tiled order (module docstring): ``scores`` ``(R, n)``
    FP32 patterns (``-inf`` for a masked token; the first token must be visible to every
    row), ``values`` ``(n, d)`` BF16 patterns, ``tile`` tokens per tile (a power of two),
    ``lanes`` the MAC array's columns for ``P x V`` (a power of two). A ``(n,)`` score
    vector gives ``(d,)``."""
    s, v = _scores_values(scores, values)
    n = s.shape[-1]
    _check_tile(tile)
    _check_int("exp_frac_bits", exp_frac_bits, 1, 16)
    rows = s.reshape(-1, n)
    d = v.shape[1]
    k = attention_scale(d)
    tiles = -(-n // tile)
    pad = tiles * tile - n
    rows = np.pad(rows, [(0, 0), (0, pad)], constant_values=NEG_INF)
    v = np.pad(v, [(0, pad), (0, 0)])
    m = np.full(rows.shape[0], NEG_INF, np.uint32)
    l = np.zeros(rows.shape[0], np.uint32)
    o = np.zeros((rows.shape[0], d), np.uint32)
    for j in range(tiles):
        cut = slice(j * tile, (j + 1) * tile)
        m, l, a, pb = _tile_step(rows[:, cut], m, l, k, exp_frac_bits)
        shape = (rows.shape[0], d, tile)
        pv = dot(np.broadcast_to(pb[:, None], shape), np.broadcast_to(v[cut].T, shape), lanes)
        o = fp32_add(fp32_mul(o, a[:, None]), pv)
    out = fp32_mul(o, fp32_recip(l)[:, None]).astype(np.uint32)
    return out if s.ndim == 2 else out[0]


def attention_bits(
    q: npt.ArrayLike,
    keys: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    lanes: int,
    exp_frac_bits: int,
    tile: int | None = None,
) -> np.ndarray:
    """``online_attention`` of the scores ``dot(keys[t], q, lanes)``; ``q`` ``(d,)``,
    ``keys`` and ``values`` ``(n, d)``, all BF16 patterns (``uint16``). With ``tile``, the
    tiled order instead (``tiled_attention``, ``P x V`` on ``lanes`` columns)."""
    q = np.asarray(q)
    keys = np.asarray(keys)
    if q.ndim != 1 or keys.ndim != 2 or keys.shape[1] != q.size:
        raise ValueError(f"keys must have shape (n, {q.size}), not {keys.shape}")
    scores = np.atleast_1d(dot(keys, np.broadcast_to(q, keys.shape), lanes))
    if tile is not None:
        return tiled_attention(scores, values, tile=tile, lanes=lanes, exp_frac_bits=exp_frac_bits)
    return online_attention(scores, values, exp_frac_bits=exp_frac_bits)


def attention_float(q: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """float64 softmax attention ``softmax(k q / sqrt(d)) v`` of float arrays."""
    s = keys.astype(np.float64) @ q.astype(np.float64) / math.sqrt(q.size)
    w = np.exp(s - s.max())
    return (w / w.sum()) @ values.astype(np.float64)


def attention_error(
    path: str,
    *,
    lanes: int,
    exp_frac_bits: int,
    queries: int,
    seed: int = 0,
    tile: int | None = None,
) -> dict:
    """Relative L2 error ``|out - ref| / |ref|`` of ``attention_bits`` (the tiled order
    with ``tile``) against ``attention_float`` for ``queries`` queries sampled from the
    trace at ``path`` (any layer and query head, prefill or decode; keys and values of the
    matching KV head)."""
    from workloads.trace import load

    _check_int("queries", queries, 1, 1 << 20)
    t = load(path)
    rng = np.random.default_rng(seed)
    errs, lengths = [], []
    for _ in range(queries):
        layer = int(rng.integers(t.layers))
        hq = int(rng.integers(t.q_heads))
        kv = hq // t.q_per_kv
        j = int(rng.integers(t.n_tokens + t.n_decode))
        if j < t.n_tokens:
            q, n = t.queries[layer, hq, j], j + 1
        else:
            jd = j - t.n_tokens
            q, n = t.decode_queries[layer, hq, jd], int(t.frame_offsets[t.decode_after[jd] + 1])
        k, v = t.keys[layer, kv, :n], t.values[layer, kv, :n]
        got = attention_bits(
            to_bf16_bits(q),
            to_bf16_bits(k),
            to_bf16_bits(v),
            lanes=lanes,
            exp_frac_bits=exp_frac_bits,
            tile=tile,
        )
        ref = attention_float(q, k, v)
        diff = bits_to_f32(got).astype(np.float64) - ref
        errs.append(np.linalg.norm(diff) / max(np.linalg.norm(ref), np.finfo(np.float64).tiny))
        lengths.append(n)
    e = np.array(errs)
    return {
        "trace": str(path),
        "lanes": lanes,
        "exp_frac_bits": exp_frac_bits,
        "tile": tile,
        "queries": queries,
        "head_dim": t.head_dim,
        "tokens_mean": float(np.mean(lengths)),
        "rel_l2_max": float(e.max()),
        "rel_l2_mean": float(e.mean()),
        "rel_l2_median": float(np.median(e)),
        "rel_l2_p99": float(np.quantile(e, 0.99)),
        "exp2_input_bound": 2.0 ** (2.0 ** -(exp_frac_bits + 1)) - 1,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m golden.softmax", description="Float-model error of the vector unit."
    )
    ap.add_argument("--trace", required=True, help="a workloads.trace .npz file")
    ap.add_argument("--lanes", type=int, default=16, help="MAC lanes (power of two)")
    ap.add_argument("--exp-frac-bits", type=int, default=10, help="exp2 table input bits")
    ap.add_argument("--queries", type=int, default=200, help="queries sampled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--tile", type=int, default=None, help="tiled order, TILE tokens per tile (power of two)"
    )
    ap.add_argument("--json", type=str, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    try:
        res = attention_error(
            args.trace,
            lanes=args.lanes,
            exp_frac_bits=args.exp_frac_bits,
            queries=args.queries,
            seed=args.seed,
            tile=args.tile,
        )
    except (ValueError, TypeError, FileNotFoundError) as exc:
        ap.error(str(exc))
    print_figures(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
