"""VectorUnit on the Amaranth simulator, bit-exact against golden.softmax.online_attention:
queries of one and of many tokens, every score shape (moving max, ties, signed zeros, far
outliers) and value corners, crossed with the stall patterns of ``sim.kit.streams.TIMINGS``
(values running ahead of or behind the scores); exact cycles without stalls; queries back
to back; a reset in the middle of a query."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from hw.config import preset
from hw.datapath import VectorUnit
from sim.benches.tb_vector_unit import (
    result_vector,
    score_beats,
    synthetic_queries,
    value_beats,
    vu_expected,
)
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")  # head_dim 16, 4 lanes: 4 beats per vector
CONFIGS = {"tiny": TINY, "lanes16": TINY.replace(mac_lanes=16, exp_frac_bits=10)}


def simulate(cfg, cases, *, timing: str, seed: int, vcd=None, reset_after=None):
    """Stream ``cases`` through a VectorUnit; ``reset_after=(k_scores, k_values)`` first
    sends that much of an extra query, pulses reset, then runs ``cases``."""
    dut = VectorUnit(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    scores = [b for c in cases for b in score_beats(cfg, c)]
    values = [b for c in cases for b in value_beats(cfg, c)]
    out: dict = {}
    reset_done = {"flag": reset_after is None}

    async def wait_reset(ctx):
        while not reset_done["flag"]:
            await ctx.tick()

    async def prefix(ctx):
        if reset_after is not None:
            extra = synthetic_queries(cfg, 2, seed + 99)[1]
            sb, vb = score_beats(cfg, extra), value_beats(cfg, extra)
            k_s, k_v = reset_after
            b = dut.beats
            for t in range(k_s):  # token by token: its score, then (some of) its values
                await stream_put(ctx, dut.scores, sb[t : t + 1], cycle=h.cycle)
                await stream_put(ctx, dut.values, vb[t * b : min(k_v, (t + 1) * b)], cycle=h.cycle)
            ctx.set(h.rst, 1)
            await ctx.tick()
            ctx.set(h.rst, 0)
            reset_done["flag"] = True

    async def src_scores(ctx):
        await prefix(ctx)
        out["s_t"] = await stream_put(
            ctx, dut.scores, scores, cycle=h.cycle, rng=np.random.default_rng([seed, 1]), idle=idle
        )

    async def src_values(ctx):
        await wait_reset(ctx)
        out["v_t"] = await stream_put(
            ctx, dut.values, values, cycle=h.cycle, rng=np.random.default_rng([seed, 2]), idle=idle
        )

    async def sink(ctx):
        await wait_reset(ctx)
        got = await stream_get(
            ctx,
            dut.result,
            cycle=h.cycle,
            count=len(cases) * dut.beats,
            rng=np.random.default_rng([seed, 3]),
            stall=stall,
        )
        out["r"] = got
        await assert_idle(ctx, dut.result, 2 * dut.query_overhead)

    run(h, [src_scores, src_values, sink], vcd=vcd, traces=[dut.scores.valid, dut.result.valid])
    return dut, out


def check_bits(cfg, cases, out, beats):
    lanes = cfg.mac_lanes
    for q, c in enumerate(cases):
        elems, lasts = result_vector([p for p, _ in out["r"][q * beats : (q + 1) * beats]], lanes)
        want = vu_expected(cfg, c)
        bad = [
            (i, hex(g), hex(w)) for i, (g, w) in enumerate(zip(elems, want, strict=True)) if g != w
        ]
        assert not bad, (q, c.scores.size, bad[:4])
        assert lasts == [0] * (beats - 1) + [1]


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_queries_bit_exact(name, timing, tmp_path):
    cfg = CONFIGS[name]
    cases = synthetic_queries(cfg, 8, seed=len(name) + 7 * len(timing), max_tokens=10)
    dut, out = simulate(cfg, cases, timing=timing, seed=5, vcd=tmp_path / "vu.vcd")
    check_bits(cfg, cases, out, dut.beats)


def test_exact_cycles_without_stalls():
    cfg = TINY
    cases = synthetic_queries(cfg, 4, seed=11, max_tokens=6)
    dut, out = simulate(cfg, cases, timing="none", seed=1)
    check_bits(cfg, cases, out, dut.beats)
    b = dut.beats
    assert (dut.token_cycles, dut.result_delay, dut.query_overhead) == (b + 3, 28, 27 + b)
    s_t, v_t, r_t = out["s_t"], out["v_t"], [t for _, t in out["r"]]
    i_s = i_v = i_r = 0
    for c in cases:
        n = c.scores.size
        assert s_t[i_s : i_s + n] == [s_t[i_s] + k * dut.token_cycles for k in range(n)]
        for k in range(n):
            assert v_t[i_v + k * b : i_v + (k + 1) * b] == [s_t[i_s + k] + 3 + j for j in range(b)]
        u = v_t[i_v + n * b - 1]
        assert r_t[i_r : i_r + b] == [u + dut.result_delay + j for j in range(b)]
        # Whole query: n tokens plus the fixed cost.
        assert r_t[i_r + b - 1] + 1 - s_t[i_s] == n * dut.token_cycles + dut.query_overhead
        i_s, i_v, i_r = i_s + n, i_v + n * b, i_r + b
        if i_s < len(s_t):
            assert s_t[i_s] == r_t[i_r - 1] + 1


@pytest.mark.parametrize("cut", [(1, 0), (2, 5), (1, 4)])
def test_reset_mid_query(cut):
    cfg = TINY
    cases = synthetic_queries(cfg, 3, seed=21, max_tokens=5)
    dut, out = simulate(cfg, cases, timing="random", seed=2, reset_after=cut)
    check_bits(cfg, cases, out, dut.beats)


def test_elaborates_without_warnings():
    for cfg in CONFIGS.values():
        Fragment.get(VectorUnit(cfg), None)


def test_rejects_bad_configs():
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 4$"):
        VectorUnit(4)
    bad = TINY.replace(mac_lanes=32)
    with pytest.raises(
        ValueError,
        match=r"^head_dim \(16\) must be a multiple of mac_lanes \(32\), not 16 with "
        r"mac_lanes=32$",
    ):
        VectorUnit(bad)
