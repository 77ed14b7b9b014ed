"""Test data of the datapath regressions, shared by the Amaranth-simulator tests
(tests/hw/datapath) and the cocotb testbench (sim/benches/tb_mac_tree.py).

A ``DotCase`` is one dot product of BF16 patterns; ``mac_beats`` cuts it into
``MacTree`` input beats (``DatapathLayouts.mac_in`` constants, zero-padded final chunk) and
``golden.fparith.dot`` gives the expected FP32 pattern. Synthetic kinds cover the corner
values of the arithmetic; ``trace_cases`` takes real q·k pairs from a recorded trace
(``workloads.trace.load``). An ``ArrayBlock`` is one ``MacArray`` block (query rows and K
vectors); ``array_beats`` cuts it into the two input streams' beats and ``array_expected``
gives its score beats (``golden.fparith.mac_array``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from amaranth.lib import data

from golden.bf16 import to_bf16_bits
from golden.fparith import dot, f32_to_bits, mac_array
from hw.config import HWConfig
from hw.datapath.layouts import BF16, layouts
from workloads import trace as trace_io

__all__ = [
    "ARRAY_SPECIAL_SCORES",
    "KINDS",
    "ArrayBlock",
    "DotCase",
    "array_beats",
    "array_blocks",
    "array_expected",
    "array_score_beat",
    "array_special_blocks",
    "gqa_blocks",
    "mac_beats",
    "mac_expected",
    "synthetic_cases",
    "trace_cases",
]

KINDS = ("normal", "corners", "cancel", "wide", "extreme")

#: BF16 corner values: ±0, subnormals (read as 0), ±1 and neighbours, tiny normals (products
#: flush), huge values (products overflow), powers of two (exact ties in the sums).
CORNERS = np.array(
    [0x0000, 0x8000, 0x0001, 0x807F, 0x3F80, 0xBF80, 0x3F81, 0xBF81, 0x3FFF, 0x0080,
     0x8100, 0x1F80, 0x7F7F, 0xFF7F, 0x5F80, 0x4000, 0x3380, 0xB380, 0x4B80, 0x3400],
    np.uint16,
)  # fmt: skip


@dataclass(frozen=True)
class DotCase:
    a: np.ndarray  # uint16 BF16 patterns, shape (n,)
    b: np.ndarray


def _normal(rng, n, scale=1.0):
    return to_bf16_bits((rng.standard_normal(n) * scale).astype(np.float32))


def synthetic_case(cfg: HWConfig, rng: np.random.Generator, kind: str) -> DotCase:
    """One dot product of ``kind`` (see ``KINDS``) with 1..3*mac_lanes+1 elements."""
    n = int(rng.integers(1, 3 * cfg.mac_lanes + 2))
    if kind == "normal":
        a, b = _normal(rng, n), _normal(rng, n)
    elif kind == "corners":
        a, b = rng.choice(CORNERS, n), rng.choice(CORNERS, n)
    elif kind == "cancel":
        # Products that cancel exactly or nearly (x·y and -x·y, ±1 ulp).
        h = (n + 1) // 2
        a = _normal(rng, h)
        b = _normal(rng, h)
        a2 = (a ^ np.uint16(0x8000)) + rng.integers(0, 2, h).astype(np.uint16)
        a = np.concatenate([a, a2])[:n]
        b = np.concatenate([b, b])[:n]
        perm = rng.permutation(n) if rng.random() < 0.5 else np.arange(n)
        a, b = a[perm], b[perm]
    elif kind == "wide":
        # Exponents spread over ±2**20: alignment shifts, sticky bits, ties.
        a = to_bf16_bits(np.ldexp(rng.standard_normal(n), rng.integers(-20, 21, n)))
        b = to_bf16_bits(np.ldexp(rng.standard_normal(n), rng.integers(-20, 21, n)))
    elif kind == "extreme":
        # Near the ends of the range: overflow to inf, inf - inf = NaN, flushed products.
        big = rng.random() < 0.5
        e = rng.integers(60, 65, n) if big else rng.integers(-66, -60, n)
        a = to_bf16_bits(np.ldexp(rng.standard_normal(n), e))
        b = to_bf16_bits(np.ldexp(rng.standard_normal(n), e))
    else:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, not {kind!r}")
    return DotCase(a=np.asarray(a, np.uint16), b=np.asarray(b, np.uint16))


def synthetic_cases(cfg: HWConfig, count: int, seed: int) -> list[DotCase]:
    """``count`` dot products cycling through every kind."""
    rng = np.random.default_rng(seed)
    return [synthetic_case(cfg, rng, KINDS[i % len(KINDS)]) for i in range(count)]


def trace_cases(path: Path, count: int, seed: int) -> list[DotCase]:
    """``count`` real q·k pairs of a trace: query heads' prefill/decode queries against
    keys of their KV head (GQA), drawn uniformly over layers, heads and tokens."""
    t = trace_io.load(path)
    rng = np.random.default_rng(seed)
    qs = [t.queries] + ([t.decode_queries] if t.n_decode else [])
    cases = []
    for _ in range(count):
        q_all = qs[int(rng.integers(len(qs)))]
        layer = int(rng.integers(t.layers))
        hq = int(rng.integers(t.q_heads))
        q = q_all[layer, hq, int(rng.integers(q_all.shape[2]))]
        k = t.keys[layer, hq // t.q_per_kv, int(rng.integers(t.n_tokens))]
        cases.append(DotCase(a=to_bf16_bits(q), b=to_bf16_bits(k)))
    return cases


def _bf16(x: int) -> data.Const:
    return data.Layout.cast(BF16).from_bits(int(x))


def mac_beats(cfg: HWConfig, case: DotCase) -> list[data.Const]:
    """``MacTree`` input beats of one dot product: ``ceil(n / mac_lanes)`` chunks, the last
    zero-padded and flagged ``last``."""
    lanes = cfg.mac_lanes
    lay = layouts(cfg).mac_in
    n = case.a.size
    chunks = max(1, -(-n // lanes))
    a = np.zeros(chunks * lanes, np.uint16)
    b = np.zeros(chunks * lanes, np.uint16)
    a[:n], b[:n] = case.a, case.b
    return [
        lay.const(
            {
                "a": [_bf16(x) for x in a[c * lanes : (c + 1) * lanes]],
                "b": [_bf16(x) for x in b[c * lanes : (c + 1) * lanes]],
                "last": int(c == chunks - 1),
            }
        )
        for c in range(chunks)
    ]


def mac_expected(cfg: HWConfig, case: DotCase) -> int:
    """The FP32 pattern ``golden.fparith.dot`` gives for ``case``."""
    return int(dot(case.a, case.b, cfg.mac_lanes))


@dataclass(frozen=True)
class ArrayBlock:
    queries: np.ndarray  # uint16 BF16 patterns, shape (rows, n)
    keys: np.ndarray  # shape (T, n)
    #: load ``queries`` transposed: its ``n`` columns are sent, one vector each
    columns: bool = False


def _matrix(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> np.ndarray:
    if kind == "corners":
        return rng.choice(CORNERS, shape)
    if kind == "wide":
        return to_bf16_bits(np.ldexp(rng.standard_normal(shape), rng.integers(-20, 21, shape)))
    if kind == "extreme":
        e = rng.integers(60, 65, shape) if rng.random() < 0.5 else rng.integers(-66, -60, shape)
        return to_bf16_bits(np.ldexp(rng.standard_normal(shape), e))
    return to_bf16_bits(rng.standard_normal(shape).astype(np.float32))


def array_block(
    cfg: HWConfig, rng: np.random.Generator, kind: str, *, rows: int, keys: int, n: int
) -> ArrayBlock:
    """One block of ``kind`` (see ``KINDS``): ``rows`` query vectors, ``keys`` K vectors of
    ``n`` elements. ``cancel``: every query is ``[a, -a (+-1 ulp)]`` and every key
    ``[b, b]``, so the two halves' products cancel exactly or nearly."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, not {kind!r}")
    if kind != "cancel":
        q, k = _matrix(rng, kind, (rows, n)), _matrix(rng, kind, (keys, n))
    else:
        h = (n + 1) // 2
        a, b = _matrix(rng, "normal", (rows, h)), _matrix(rng, "normal", (keys, h))
        a2 = (a ^ np.uint16(0x8000)) + rng.integers(0, 2, a.shape).astype(np.uint16)
        q = np.concatenate([a, a2], axis=1)[:, :n]
        k = np.concatenate([b, b], axis=1)[:, :n]
    return ArrayBlock(queries=np.asarray(q, np.uint16), keys=np.asarray(k, np.uint16))


def array_blocks(cfg: HWConfig, count: int, seed: int, *, max_keys: int = 6) -> list[ArrayBlock]:
    """``count`` blocks cycling through every kind, with 1..``mac_rows`` rows (one block in
    five ``mac_rows + 1``: the extra row is ignored), 1..``max_keys`` K vectors and
    1..``mac_chunks * mac_cols`` elements (partial final beats included); every third block
    is loaded transposed (``ArrayBlock.columns``)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        rows = cfg.mac_rows + 1 if i % 5 == 4 else int(rng.integers(1, cfg.mac_rows + 1))
        keys = int(rng.integers(1, max_keys + 1))
        n = int(rng.integers(1, cfg.mac_chunks * cfg.mac_cols + 1))
        b = array_block(cfg, rng, KINDS[i % len(KINDS)], rows=rows, keys=keys, n=n)
        out.append(replace(b, columns=i % 3 == 2))
    return out


def load_beats(cfg: HWConfig, block: ArrayBlock) -> int:
    """Beats of the block's query load: ``rows * ceil(n / mac_cols)``, or transposed ``n *
    ceil(rows / mac_cols)``."""
    rows, n = block.queries.shape
    if block.columns:
        return n * -(-rows // cfg.mac_cols)
    return rows * -(-n // cfg.mac_cols)


def _vector_beats(cfg: HWConfig, vectors: np.ndarray, columns: bool | None = None) -> list:
    """``array_in`` beats of ``vectors`` one after the other, ``end`` on the very last;
    ``array_load`` beats with ``columns`` when it is not ``None``."""
    cols = cfg.mac_cols
    lay = layouts(cfg).array_in if columns is None else layouts(cfg).array_load
    extra = {} if columns is None else {"columns": int(columns)}
    count, n = vectors.shape
    chunks = -(-n // cols)
    padded = np.zeros((count, chunks * cols), np.uint16)
    padded[:, :n] = vectors
    return [
        lay.const(
            {
                "x": [_bf16(x) for x in padded[v, c * cols : (c + 1) * cols]],
                "last": int(c == chunks - 1),
                "end": int(v == count - 1 and c == chunks - 1),
                **extra,
            }
        )
        for v in range(count)
        for c in range(chunks)
    ]


def array_beats(cfg: HWConfig, block: ArrayBlock) -> tuple[list[data.Const], list[data.Const]]:
    """The block's ``queries`` beats (``DatapathLayouts.array_load``; a transposed block
    sends ``queries.T``) and ``keys`` beats (``array_in``)."""
    q = np.ascontiguousarray(block.queries.T) if block.columns else block.queries
    return _vector_beats(cfg, q, block.columns), _vector_beats(cfg, block.keys)


def array_expected(cfg: HWConfig, block: ArrayBlock) -> list[tuple[tuple[int, ...], int]]:
    """Per K vector, the ``mac_rows`` FP32 patterns of its score beat and its ``end`` flag
    (rows past ``mac_rows`` ignored, missing rows ``+0``; a transposed block's rows are
    whole beats of its columns, so its row count is rounded up to ``mac_cols``, the extra
    rows all ``+0``)."""
    q = block.queries
    if block.columns:
        rows = -(-len(q) // cfg.mac_cols) * cfg.mac_cols
        q = np.pad(q, [(0, rows - len(q)), (0, 0)])
    q = q[: cfg.mac_rows]
    s = mac_array(q, block.keys, cfg.mac_cols, rows=cfg.mac_rows)
    t = len(block.keys)
    return [(tuple(int(x) for x in s[i]), int(i == t - 1)) for i in range(t)]


def array_special_blocks() -> list[ArrayBlock]:
    """Two ``mac_rows >= 4``, ``n = 4`` blocks: overflow to +inf, +inf + -inf = NaN, a
    flushed product with a subnormal operand (+0), a sum of -0 products (-0); then a
    one-row block, whose missing rows must read +0, not the previous block's queries."""
    u = lambda *x: np.array(x, np.uint16)  # noqa: E731
    key = u(0x7F7F, 0x7F7F, 0x3F00, 0x0001)  # huge, huge, 0.5, a subnormal
    first = np.stack(
        [
            u(0x7F7F, 0x0000, 0x0000, 0x0000),  # huge * huge: +inf
            u(0x7F7F, 0xFF7F, 0x0000, 0x0000),  # +inf + -inf: NaN
            u(0x0000, 0x0000, 0x0080, 0x3F80),  # 2**-126 * 0.5 flushed, subnormal: +0
            u(0x8000, 0x8000, 0x8080, 0xBF80),  # every product -0: -0
        ]
    )
    return [
        ArrayBlock(queries=first, keys=key[None]),
        ArrayBlock(queries=u(0x3F80, 0, 0, 0x3F80)[None], keys=np.stack([key, key])),
    ]


#: ``array_expected`` of ``array_special_blocks`` at ``mac_rows = 4``, written out.
ARRAY_SPECIAL_SCORES = [
    ((0x7F80_0000, 0x7FC0_0000, 0x0000_0000, 0x8000_0000), 1),
    ((0x7F7F_0000, 0, 0, 0), 0),  # 1 * huge (BF16 0x7F7F) + 1 * subnormal (read as 0)
    ((0x7F7F_0000, 0, 0, 0), 1),
]


def gqa_blocks(cfg: HWConfig, path: Path | None, seed: int) -> list[ArrayBlock]:
    """A frame-prefill block and a grouped-GEMV (decode) block of one (layer, KV head)
    context: prefill rows are consecutive tokens x every query head of the GQA group
    (token-major, ``mac_rows`` of them), decode rows the group's query heads on one decode
    query (or, without decode queries, on the last token); both against 8 keys of the KV
    head. From the trace at ``path`` (post-RoPE Q and K) when given, else N(0, 1) vectors of
    ``head_dim`` with a group of 2 heads. The trace's ``head_dim`` must fit the array
    (``mac_chunks * mac_cols``)."""
    rng = np.random.default_rng(seed)
    if path is None:
        group, d, n = 2, cfg.resv.head_dim, 64
        qs = rng.standard_normal((group, n, d)).astype(np.float32)
        ks = rng.standard_normal((n, d)).astype(np.float32)
        dq = qs[:, -1]
    else:
        t = trace_io.load(path)
        if t.head_dim > cfg.mac_chunks * cfg.mac_cols:
            raise ValueError(
                f"the trace's head_dim must be at most {cfg.mac_chunks * cfg.mac_cols} for "
                f"this MacArray, not {t.head_dim}"
            )
        layer, kv = int(rng.integers(t.layers)), int(rng.integers(t.q_heads // t.q_per_kv))
        group, n = t.q_per_kv, t.n_tokens
        heads = slice(kv * group, (kv + 1) * group)
        qs, ks = t.queries_post[layer, heads], t.keys_post[layer, kv]
        dq = t.decode_queries_post[layer, heads, -1] if t.n_decode else qs[:, -1]
    tokens = -(-cfg.mac_rows // group)
    i0 = int(rng.integers(0, max(1, n - tokens)))
    rows = qs[:, i0 : i0 + tokens].transpose(1, 0, 2).reshape(-1, qs.shape[-1])
    keys = ks[rng.choice(n, 8, replace=n < 8)]
    return [
        ArrayBlock(queries=to_bf16_bits(rows[: cfg.mac_rows]), keys=to_bf16_bits(keys)),
        ArrayBlock(queries=to_bf16_bits(dq[: cfg.mac_rows]), keys=to_bf16_bits(keys)),
    ]


def array_score_beat(payload) -> tuple[tuple[int, ...], int]:
    """An ``array_out`` payload (a ``data.Const`` view) as ``array_expected`` gives it."""
    s = payload.s
    return tuple(int(s[r].as_value().value) for r in range(len(s))), int(payload.end)


#: FP32 reciprocal corner operands: 1, 1 + ulp, just below 2, 3, the smallest normals, the
#: largest finite, operands whose reciprocal is subnormal (flushed to +0) or near it, 1/3.
RECIP_CORNERS = np.array(
    [0x3F80_0000, 0x3F80_0001, 0x3FFF_FFFF, 0x4040_0000, 0x0080_0000, 0x0080_0001,
     0x7F7F_FFFF, 0x7E80_0000, 0x7E80_0001, 0x7E7F_FFFF, 0x7F00_0000, 0x7F00_0001,
     0x3FAA_AAAB, 0x3F7F_FFFF, 0x4B80_0001],
    np.uint32,
)  # fmt: skip


def recip_operands(seed: int, n: int) -> np.ndarray:
    """Positive normal FP32 patterns for ``FP32Recip``: the corners, ``n`` uniform over
    every exponent and fraction, ``n`` around the softmax sums (``|N(0, 30) + 1| + 1``)."""
    rng = np.random.default_rng(seed)
    r = ((rng.integers(1, 255, n) << 23) | rng.integers(0, 1 << 23, n)).astype(np.uint32)
    s = f32_to_bits(np.abs(rng.standard_normal(n) * 30 + 1).astype(np.float32) + 1)
    return np.concatenate([RECIP_CORNERS, r, s]).astype(np.uint32)


@dataclass(frozen=True)
class AttnCase:
    """One ``TiledAttention`` command: ``q`` ``(R, d)``, ``k``/``v`` ``(n, d)`` BF16 patterns,
    the rows' and tokens' positions (token ``t`` is masked for row ``r`` when
    ``k_pos[t] > q_pos[r]``; token 0 is visible to every row)."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    q_pos: np.ndarray
    k_pos: np.ndarray
    #: the token stream ends with a padding token (``attn_in.pad``), masked for every row
    pad: bool = False


def attn_case(cfg: HWConfig, rng: np.random.Generator, *, rows: int, tokens: int) -> AttnCase:
    """Rows at random positions, a prefill-like token order (older tokens, then the frame's
    own, some newer than some rows), scores of several scales (sharp and flat softmax)."""
    d = cfg.resv.head_dim
    limit = (1 << (cfg.token_id_bits + 1)) - 1
    scale = rng.choice([0.3, 1.0, 4.0])
    q = to_bf16_bits((rng.standard_normal((rows, d)) * scale).astype(np.float32))
    k = to_bf16_bits(rng.standard_normal((tokens, d)).astype(np.float32))
    v = to_bf16_bits(rng.standard_normal((tokens, d)).astype(np.float32))
    k_pos = np.sort(rng.integers(0, min(limit, 4 * tokens) + 1, tokens))
    k_pos[0] = 0
    q_pos = rng.integers(0, int(k_pos.max()) + 2, rows).clip(0, limit)
    return AttnCase(q, k, v, q_pos.astype(np.int64), k_pos.astype(np.int64))


def attn_expected_rows(cfg: HWConfig, case: AttnCase) -> np.ndarray:
    """FP32 patterns ``(R, d)``: ``golden.softmax.tiled_attention`` of the masked scores."""
    from golden.softmax import NEG_INF, tiled_attention

    scores = mac_array(case.q, case.k, cfg.mac_cols).T  # (R, n): dot(q_r, k_t)
    scores = np.where(case.k_pos[None] > case.q_pos[:, None], NEG_INF, scores)
    return tiled_attention(
        scores.astype(np.uint32),
        case.v,
        tile=cfg.tile_tokens,
        lanes=cfg.mac_cols,
        exp_frac_bits=cfg.exp_frac_bits,
    )


def attn_beats(cfg: HWConfig, case: AttnCase) -> tuple[list, list]:
    """``attn_in`` beats of the rows (``queries``) and of the tokens (``kv``: K then V; a
    padding token of zeros at the largest position last when ``case.pad``)."""
    lay = layouts(cfg).attn_in
    cols = cfg.mac_cols
    beats = cfg.mac_chunks

    def vec(x, pos, end, pad=False):
        padded = np.zeros(beats * cols, np.uint16)
        padded[: x.size] = x
        return [
            lay.const(
                {
                    "x": [_bf16(e) for e in padded[b * cols : (b + 1) * cols]],
                    "pos": int(pos),
                    "end": int(end),
                    "pad": int(pad),
                }
            )
            for b in range(beats)
        ]

    r, n = len(case.q), len(case.k)
    qb = [b for i in range(r) for b in vec(case.q[i], case.q_pos[i], i == r - 1)]
    kvb = [
        b
        for t in range(n)
        for x in (case.k[t], case.v[t])
        for b in vec(x, case.k_pos[t], t == n - 1 and not case.pad)
    ]
    if case.pad:
        zero = np.zeros(cfg.resv.head_dim, np.uint16)
        top = (1 << (cfg.token_id_bits + 1)) - 1
        kvb += [b for _ in range(2) for b in vec(zero, top, True, pad=True)]
    return qb, kvb


def attn_out_beat(payload) -> tuple[tuple[int, ...], int, int]:
    """An ``attn_out`` payload (a ``data.Const`` view) as ``attn_expected`` gives it."""
    o = payload.o
    return (
        tuple(int(o[i].as_value().value) for i in range(len(o))),
        int(payload.last),
        int(payload.end),
    )


def attn_expected(cfg: HWConfig, case: AttnCase) -> list[tuple[tuple[int, ...], int, int]]:
    """The ``out`` beats: ``mac_cols`` FP32 patterns, ``last``, ``end``."""
    rows = attn_expected_rows(cfg, case)
    cols, beats = cfg.mac_cols, cfg.mac_chunks
    padded = np.zeros((len(rows), beats * cols), np.uint32)
    padded[:, : rows.shape[1]] = rows
    return [
        (
            tuple(int(x) for x in padded[r, b * cols : (b + 1) * cols]),
            int(b == beats - 1),
            int(b == beats - 1 and r == len(rows) - 1),
        )
        for r in range(len(rows))
        for b in range(beats)
    ]
