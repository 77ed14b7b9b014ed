"""TileSoftmax on the Amaranth simulator, bit-exact against golden.softmax.tile_step: rows of
every kind (first tile with m = -inf, later tiles, masked lanes, ties and signed zeros, far
outliers flushing weights to 0, every lane masked on a later tile) and whole attention rows
chained in the tiled order, at T = 1, 2, 4 (and 16), crossed with the stall patterns of
``sim.kit.streams.TIMINGS``; the exact latency and one row per cycle without stalls; a reset
with rows in flight."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.fparith import f32_to_bits
from golden.softmax import attention_scale, tile_step
from hw.config import preset
from hw.datapath import TileSoftmax, tile_latency
from sim.benches.tb_tile_softmax import (
    KINDS,
    NEG_INF,
    TileRow,
    chained_rows,
    decode_result,
    row_beat,
    synthetic_rows,
    tile_expected,
)
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")  # head_dim 16, exp_frac_bits 8, tile_tokens 4
CONFIGS = {f"t{t}": TINY.replace(tile_tokens=t) for t in (1, 2, 4)}


def simulate(cfg, rows, *, timing: str, seed: int, prefix=None, vcd=None):
    """Stream ``rows`` through a TileSoftmax; ``prefix`` rows are sent first (the sink not
    ready), then reset is pulsed. Returns the DUT, the row handshake cycles and the
    ``(payload, cycle)`` results."""
    dut = TileSoftmax(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    out: dict = {}
    state = {"reset": prefix is None}

    async def source(ctx):
        if prefix is not None:
            await stream_put(ctx, dut.rows, [row_beat(cfg, r) for r in prefix], cycle=h.cycle)
            ctx.set(h.rst, 1)
            await ctx.tick()
            ctx.set(h.rst, 0)
            state["reset"] = True
        out["s_t"] = await stream_put(
            ctx,
            dut.rows,
            [row_beat(cfg, r) for r in rows],
            cycle=h.cycle,
            rng=np.random.default_rng([seed, 1]),
            idle=idle,
        )

    async def sink(ctx):
        while not state["reset"]:
            await ctx.tick()
        out["r"] = await stream_get(
            ctx,
            dut.result,
            cycle=h.cycle,
            count=len(rows),
            rng=np.random.default_rng([seed, 2]),
            stall=stall,
        )
        await assert_idle(ctx, dut.result, 2 * dut.latency + 4)
        out["done"] = True

    run(h, [source, sink], vcd=vcd, traces=[dut.rows.valid, dut.result.valid])
    assert out.get("done"), "the sink never finished"
    return dut, out


def check_bits(cfg, rows, out) -> int:
    """Every result against ``tile_step``; returns the number of rows checked."""
    want = tile_expected(cfg, rows)
    got = [decode_result(cfg, p) for p, _ in out["r"]]
    assert len(got) == len(want) == len(rows)
    checked = 0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (i, rows[i], [hex(v) for v in g[:3]], [hex(v) for v in w[:3]], g[3], w[3])
        checked += 1
    return checked


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_rows_bit_exact(name, timing, tmp_path):
    cfg = CONFIGS[name]
    rows = synthetic_rows(cfg, 6 * len(KINDS), seed=len(name) + 7 * len(timing))
    _, out = simulate(cfg, rows, timing=timing, seed=5, vcd=tmp_path / "ts.vcd")
    assert check_bits(cfg, rows, out) == len(rows)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_chained_queries_bit_exact(name):
    cfg = CONFIGS[name]
    rows = chained_rows(cfg, 6, seed=3)
    _, out = simulate(cfg, rows, timing="random", seed=9)
    assert check_bits(cfg, rows, out) == len(rows)


def test_sixteen_tokens():
    cfg = TINY.replace(tile_tokens=16)  # mac_chunks * mac_cols = 16: the largest tile
    rows = synthetic_rows(cfg, 2 * len(KINDS), seed=4) + chained_rows(cfg, 3, seed=4)
    _, out = simulate(cfg, rows, timing="random", seed=4)
    assert check_bits(cfg, rows, out) == len(rows)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_exact_latency_and_throughput(name):
    """No stalls: a row accepted every cycle, each result ``latency`` cycles later."""
    cfg = CONFIGS[name]
    rows = synthetic_rows(cfg, 40, seed=11)
    dut, out = simulate(cfg, rows, timing="none", seed=1)
    assert check_bits(cfg, rows, out) == len(rows)
    s_t, r_t = out["s_t"], [t for _, t in out["r"]]
    assert s_t == list(range(s_t[0], s_t[0] + len(rows)))
    assert r_t == [t + dut.latency for t in s_t]
    assert dut.latency == tile_latency(cfg) == dut.max_stages + dut.sum_stages + 4


def test_latency_formula():
    lat = {t: TileSoftmax(TINY.replace(tile_tokens=t)) for t in (1, 2, 4, 8, 16)}
    for dut in lat.values():
        dut._MustUse__silence = True
    assert {t: d.latency for t, d in lat.items()} == {1: 6, 2: 6, 4: 8, 8: 9, 16: 11}
    paper = preset("paper")
    assert paper.tile_tokens == 64 and tile_latency(paper) == 14


def test_reset_with_rows_in_flight():
    cfg = CONFIGS["t4"]
    rows = synthetic_rows(cfg, 20, seed=21)
    _, out = simulate(cfg, rows, timing="random", seed=2, prefix=synthetic_rows(cfg, 3, seed=22))
    assert check_bits(cfg, rows, out) == len(rows)


def test_corner_rows_are_what_they_claim():
    """The data really holds the corners: a first tile, every lane masked on a later tile
    (p = +0, a = 1.0, l kept), a flushed weight, a tie of signed zeros."""
    cfg = CONFIGS["t4"]
    rows = synthetic_rows(cfg, 12 * len(KINDS), seed=0)
    want = tile_expected(cfg, rows)
    assert any(r.m == NEG_INF for r in rows)
    full = [w for r, w in zip(rows, want, strict=True) if (r.s == NEG_INF).all()]
    assert full and all(w[3] == (0,) * 4 and w[2] == 0x3F80_0000 for w in full)
    assert any(w[2] == 0 and r.m != NEG_INF for r, w in zip(rows, want, strict=True))
    assert any(0 in w[3] and (r.s != NEG_INF).all() for r, w in zip(rows, want, strict=True))
    zeros = TileRow(f32_to_bits(np.float32([0.0, -0.0, -0.0, 0.0])), 0x8000_0000, 0x3F80_0000, 1)
    m_new = tile_expected(cfg, [zeros])[0][0]
    assert m_new == 0x8000_0000  # max(-0, +0) keeps m's -0
    _, out = simulate(cfg, [zeros], timing="none", seed=0)
    assert check_bits(cfg, [zeros], out) == 1


def test_golden_reference_is_tile_step():
    """The expectation helper is ``tile_step`` row by row (no batching artefact)."""
    cfg = CONFIGS["t2"]
    rows = synthetic_rows(cfg, 12, seed=3)
    for r, w in zip(rows, tile_expected(cfg, rows), strict=True):
        m, l, a, pb = tile_step(
            r.s[None],
            np.array([r.m], np.uint32),
            np.array([r.l], np.uint32),
            head_dim=cfg.resv.head_dim,
            exp_frac_bits=cfg.exp_frac_bits,
        )
        assert (int(m[0]), int(l[0]), int(a[0]), tuple(int(v) for v in pb[0])) == w[:4]
    assert int(attention_scale(cfg.resv.head_dim)) == 0x3EB8_AA3B  # log2(e) / 4


def test_elaborates_without_warnings():
    for cfg in CONFIGS.values():
        Fragment.get(TileSoftmax(cfg), None)


def test_rejects_bad_configs():
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 4$"):
        TileSoftmax(4)
