"""cocotb regression of the generated VectorUnit Verilog (``hw.gen`` top ``vector_unit``),
plus the query data shared with the Amaranth-simulator tests (tests/hw/datapath/
test_vector_unit.py).

Drivers (``scores``: one beat per token with ``first``/``last``; ``values``:
``head_dim // mac_lanes`` beats per token, running independently of the scores) → monitor
(``result``) → golden ``golden.softmax.online_attention`` → in-order scoreboard of whole
output vectors (bit-exact FP32 patterns, the ``last`` flag on the final beat only, nothing
extra). Random idle cycles on both sources and back-pressure on the sink (``DRE_IDLE`` /
``DRE_STALL``); configuration from ``DRE_CONFIG``, seed from ``SEED``; queries from the
``TRACE`` file when given (real q, keys and values of one KV head, scores from
``golden.fparith.dot``), synthetic otherwise. Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge

from golden.bf16 import to_bf16_bits
from golden.fparith import dot, f32_to_bits
from golden.softmax import online_attention
from hw.config import HWConfig
from hw.datapath.layouts import BF16, layouts
from sim.cases.dre import trace_path
from sim.kit.cocotb_streams import (
    Scoreboard,
    StreamSink,
    StreamSource,
    config_from_env,
    make_rng,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)
from workloads import trace as trace_io

__all__ = [
    "QueryCase",
    "score_beats",
    "synthetic_queries",
    "trace_queries",
    "value_beats",
    "vu_expected",
]

#: BF16 value corners: ±0, subnormals (read as 0), ±1, large and tiny normals.
VALUE_CORNERS = np.array(
    [0x0000, 0x8000, 0x0001, 0x807F, 0x3F80, 0xBF80, 0x3F81, 0x0080, 0x7F7F, 0xFF7F, 0x5F80,
     0x1F80],
    np.uint16,
)  # fmt: skip


@dataclass(frozen=True)
class QueryCase:
    scores: np.ndarray  # uint32 FP32 patterns, shape (n,)
    values: np.ndarray  # uint16 BF16 patterns, shape (n, head_dim)


def synthetic_query(cfg: HWConfig, rng: np.random.Generator, n: int, kind: int) -> QueryCase:
    """One query of ``n`` tokens; ``kind`` cycles through score shapes: Gaussian at several
    scales, rising (the max moves at every token), falling, ties and signed zeros, and far
    outliers (``p`` and ``a`` flush to 0)."""
    d = cfg.resv.head_dim
    kind %= 5
    if kind == 0:
        s = rng.standard_normal(n) * float(rng.choice([0.5, 4.0, 40.0]))
    elif kind == 1:
        s = np.sort(rng.standard_normal(n) * 8)
    elif kind == 2:
        s = np.sort(rng.standard_normal(n) * 8)[::-1]
    elif kind == 3:
        s = rng.choice(np.array([0.0, -0.0, 1.0, 1.0, -2.5]), n)
    else:
        s = rng.standard_normal(n) * 2
        s[rng.random(n) < 0.3] = float(rng.choice([3000.0, -3000.0]))
    v = to_bf16_bits((rng.standard_normal((n, d)) * 2).astype(np.float32))
    if kind == 3:
        mask = rng.random((n, d)) < 0.3
        v = np.where(mask, rng.choice(VALUE_CORNERS[:8], (n, d)), v)
    return QueryCase(f32_to_bits(s.astype(np.float32)), np.asarray(v, np.uint16))


def synthetic_queries(cfg: HWConfig, count: int, seed: int, max_tokens: int = 12):
    """``count`` queries of 1..``max_tokens`` tokens (the first two of 1 and ``max_tokens``)."""
    rng = np.random.default_rng(seed)
    lengths = [1, max_tokens] + [int(x) for x in rng.integers(1, max_tokens + 1, count)]
    return [synthetic_query(cfg, rng, lengths[i], i) for i in range(count)]


def trace_queries(path: Path, cfg: HWConfig, count: int, seed: int, max_tokens: int = 24):
    """``count`` queries from a trace: a random query head's query against a random window
    of 1..``max_tokens`` keys/values of its KV head; scores by ``dot(k, q, mac_lanes)``."""
    t = trace_io.load(path)
    if t.head_dim != cfg.resv.head_dim:
        raise ValueError(
            f"the trace's head_dim ({t.head_dim}) must equal the config's "
            f"({cfg.resv.head_dim}), not {t.head_dim!r}"
        )
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        layer = int(rng.integers(t.layers))
        hq = int(rng.integers(t.q_heads))
        n = int(rng.integers(1, min(max_tokens, t.n_tokens) + 1))
        start = int(rng.integers(0, t.n_tokens - n + 1))
        q = to_bf16_bits(t.queries[layer, hq, int(rng.integers(t.n_tokens))])
        k = to_bf16_bits(t.keys[layer, hq // t.q_per_kv, start : start + n])
        v = to_bf16_bits(t.values[layer, hq // t.q_per_kv, start : start + n])
        scores = np.atleast_1d(dot(k, np.broadcast_to(q, k.shape), cfg.mac_lanes))
        cases.append(QueryCase(scores.astype(np.uint32), np.asarray(v, np.uint16)))
    return cases


def score_beats(cfg: HWConfig, case: QueryCase) -> list[data.Const]:
    lay = layouts(cfg).vu_score
    n = case.scores.size
    return [
        lay.const(
            {
                "value": lay["value"].shape.from_bits(int(s)),
                "first": int(i == 0),
                "last": int(i == n - 1),
            }
        )
        for i, s in enumerate(case.scores)
    ]


def _bf16(x: int) -> data.Const:
    return data.Layout.cast(BF16).from_bits(int(x))


def value_beats(cfg: HWConfig, case: QueryCase) -> list[data.Const]:
    lay = layouts(cfg).vu_value
    lanes = cfg.mac_lanes
    flat = case.values.reshape(-1, lanes)
    return [lay.const({"v": [_bf16(x) for x in row]}) for row in flat]


def vu_expected(cfg: HWConfig, case: QueryCase) -> list[int]:
    """The FP32 output patterns of ``golden.softmax.online_attention``."""
    out = online_attention(case.scores, case.values, exp_frac_bits=cfg.exp_frac_bits)
    return [int(x) for x in out]


def result_vector(beats, lanes: int) -> tuple[list[int], list[int]]:
    """Output elements and ``last`` flags of a list of ``vu_result`` beats."""
    elems, lasts = [], []
    for b in beats:
        elems += [int(b.o[i].as_value().value) for i in range(lanes)]
        lasts.append(int(b.last))
    return elems, lasts


# ---------------------------------------------------------------------------------------------
# cocotb tests


async def start(dut) -> None:
    for name in ("scores", "values"):
        getattr(dut, f"{name}__valid").value = 0
    dut.result__ready.value = 0
    await start_clock(dut)
    await reset(dut)


async def run_queries(dut, cases: list[QueryCase], *, idle: float, stall: float, tag: int):
    """Send every query back to back on both input streams and check every output vector;
    returns the handshake cycles of the score source, value source and result sink."""
    cfg = config_from_env()
    lay = layouts(cfg)
    beats_per_vec = cfg.resv.head_dim // cfg.mac_lanes
    await FallingEdge(dut.clk)
    sb = Scoreboard("vector_unit.result", dut._log)
    scores, values = [], []
    for c in cases:
        sb.expect(vu_expected(cfg, c) + [0] * (beats_per_vec - 1) + [1])
        scores += score_beats(cfg, c)
        values += value_beats(cfg, c)
    pending: list = []

    def on_beat(p, _t):
        pending.append(p)
        if len(pending) == beats_per_vec:
            elems, lasts = result_vector(pending, cfg.mac_lanes)
            sb.check(elems + lasts)
            pending.clear()

    sink = StreamSink(
        dut, "result", lay.vu_result, rng=make_rng(tag, 3), stall=stall, callback=on_beat
    )
    s_src = StreamSource(dut, "scores", lay.vu_score, rng=make_rng(tag, 1), idle=idle)
    v_src = StreamSource(dut, "values", lay.vu_value, rng=make_rng(tag, 2), idle=idle)
    sink.start()
    task = cocotb.start_soon(v_src.send(values))
    await s_src.send(scores)
    await task
    total = len(scores) * (beats_per_vec + 3) + len(cases) * (beats_per_vec + 30)
    budget = total / (1 - max(idle, stall)) ** 2
    await sink.wait_for(len(cases) * beats_per_vec, timeout_cycles=int(4 * budget) + 200)
    for _ in range(60):  # anything more would be an extra result
        await FallingEdge(dut.clk)
    sink.stop()
    sb.assert_done()
    return s_src.times, v_src.times, [t for _, t in sink.beats]


@cocotb.test()
async def vu_synthetic_random_timing(dut):
    """Synthetic queries of 1..12 tokens (every score shape, value corners); random gaps on
    both inputs and back-pressure on the output."""
    cfg = config_from_env()
    await start(dut)
    idle, stall = timing_from_env()
    cases = synthetic_queries(cfg, 20, seed_from_env())
    await run_queries(dut, cases, idle=idle, stall=stall, tag=1)


@cocotb.test()
async def vu_trace_queries(dut):
    """Queries from the TRACE file when given (q·k scores by the MAC order), else Gaussian
    q/k/v of the config's head dimension; random gaps and back-pressure."""
    cfg = config_from_env()
    await start(dut)
    path = trace_path()
    if path is not None:
        cases = trace_queries(path, cfg, 10, seed_from_env())
        dut._log.info("queries from trace %s", path)
    else:
        rng = np.random.default_rng(seed_from_env() + 5)
        d = cfg.resv.head_dim
        cases = []
        for _ in range(6):
            n = int(rng.integers(1, 20))
            q = to_bf16_bits(rng.standard_normal(d).astype(np.float32) * 2)
            k = to_bf16_bits(rng.standard_normal((n, d)).astype(np.float32))
            v = to_bf16_bits(rng.standard_normal((n, d)).astype(np.float32))
            s = np.atleast_1d(dot(k, np.broadcast_to(q, k.shape), cfg.mac_lanes))
            cases.append(QueryCase(s.astype(np.uint32), np.asarray(v, np.uint16)))
    idle, stall = timing_from_env()
    await run_queries(dut, cases, idle=idle, stall=stall, tag=2)


@cocotb.test()
async def vu_exact_cycles(dut):
    """No stalls: ``token_cycles`` per token, the first result ``result_delay`` cycles after
    the last value beat, one result beat per cycle."""
    from hw.datapath import VectorUnit

    cfg = config_from_env()
    vu = VectorUnit(cfg)
    vu._MustUse__silence = True  # only its cycle formulas are used here
    await start(dut)
    cases = synthetic_queries(cfg, 3, seed_from_env() + 1)
    s_t, v_t, r_t = await run_queries(dut, cases, idle=0.0, stall=0.0, tag=3)
    b = vu.beats
    i_s = i_v = i_r = 0
    for c in cases:
        n = c.scores.size
        for k in range(n):
            assert s_t[i_s + k] == s_t[i_s] + k * vu.token_cycles, (i_s, k)
            for j in range(b):
                assert v_t[i_v + k * b + j] == s_t[i_s + k] + 3 + j
        u = v_t[i_v + n * b - 1]
        assert r_t[i_r : i_r + b] == [u + vu.result_delay + j for j in range(b)]
        i_s, i_v, i_r = i_s + n, i_v + n * b, i_r + b
        if i_s < len(s_t):
            assert s_t[i_s] == r_t[i_r - 1] + 1


@cocotb.test()
async def vu_reset_mid_query(dut):
    """A reset in the middle of a query drops it: the next queries come out clean."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await start(dut)
    case = synthetic_queries(cfg, 1, seed_from_env() + 2)[0]
    s_src = StreamSource(dut, "scores", lay.vu_score)
    v_src = StreamSource(dut, "values", lay.vu_value)
    await s_src.send(score_beats(cfg, case)[:2])
    await v_src.send(value_beats(cfg, case)[:1])
    await reset(dut, cycles=1)
    for name in ("scores", "values"):
        getattr(dut, f"{name}__valid").value = 0
    cases = synthetic_queries(cfg, 3, seed_from_env() + 3)
    await run_queries(dut, cases, idle=0.2, stall=0.2, tag=4)
