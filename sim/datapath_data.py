"""Test data of the datapath regressions, shared by the Amaranth-simulator tests
(tests/hw/datapath) and the cocotb testbench (sim/tb_mac_tree.py).

A ``DotCase`` is one dot product of BF16 patterns; ``mac_beats`` cuts it into
``MacTree`` input beats (``DatapathLayouts.mac_in`` constants, zero-padded final chunk) and
``golden.fparith.dot`` gives the expected FP32 pattern. Synthetic kinds cover the corner
values of the arithmetic; ``trace_cases`` takes real q·k pairs from a recorded trace
(``workloads.trace.load``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.lib import data

from golden.bf16 import to_bf16_bits
from golden.fparith import dot
from hw.config import HWConfig
from hw.datapath.layouts import BF16, layouts
from workloads import trace as trace_io

__all__ = ["KINDS", "DotCase", "mac_beats", "mac_expected", "synthetic_cases", "trace_cases"]

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
