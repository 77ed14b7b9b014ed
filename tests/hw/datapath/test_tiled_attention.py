"""TiledAttention on the Amaranth simulator, bit-exact against golden.softmax.tiled_attention
of the masked MAC-array scores: commands of 1..frame_rows rows over 1..several tiles of
tokens (partial last tiles, masked tokens), under the stall patterns of
``sim.kit.streams.TIMINGS``, several commands back to back; the exact cycles of
``command_cycles`` at several array widths and tile sizes (P's row in 1..8 beats), with one
tile buffer and two (the loads hidden behind the rows)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from hw.config import preset
from hw.datapath.tiled_attention import TiledAttention, command_cycles
from sim.cases.datapath import attn_beats, attn_case, attn_expected, attn_out_beat
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")  # head_dim 16, 4 columns (4 beats per vector), tiles of 4 tokens


def simulate(cfg, cases, *, timing: str, seed: int):
    dut = TiledAttention(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    want = [e for c in cases for e in attn_expected(cfg, c)]
    out: dict = {}

    async def source(ctx):
        rng = np.random.default_rng([seed, 1])
        out["q_t"], out["kv_t"] = [], []
        for c in cases:
            qb, kvb = attn_beats(cfg, c)
            out["q_t"].append(
                await stream_put(ctx, dut.queries, qb, cycle=h.cycle, rng=rng, idle=idle)
            )
            out["kv_t"].append(
                await stream_put(ctx, dut.kv, kvb, cycle=h.cycle, rng=rng, idle=idle)
            )

    async def sink(ctx):
        rng = np.random.default_rng([seed, 2])
        got = await stream_get(ctx, dut.out, cycle=h.cycle, count=len(want), rng=rng, stall=stall)
        out["got"] = [(attn_out_beat(p), t) for p, t in got]
        await assert_idle(ctx, dut.out, 40)

    run(h, [source, sink])
    return dut, want, out


@pytest.mark.parametrize("timing", list(TIMINGS))
def test_commands_bit_exact(timing):
    cfg = TINY
    rng = np.random.default_rng(len(timing))
    shapes = [(1, 1), (3, 4), (5, 9), (16, 13), (2, 8)]  # rows x tokens
    cases = [attn_case(cfg, rng, rows=r, tokens=n) for r, n in shapes]
    _, want, out = simulate(cfg, cases, timing=timing, seed=3)
    got = [g for g, _ in out["got"]]
    assert len(got) == len(want) == sum(r for r, _ in shapes) * cfg.mac_chunks
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, (len(bad), bad[:3], got[bad[0]] if bad else None)


SHAPES = {  # mac_cols, tile_tokens: beats per vector M, beats of P's row
    "cols4_tile4": (4, 4),  # M 4, 1
    "cols8_tile8": (8, 8),  # M 2, 1
    "cols2_tile4": (2, 4),  # M 8, 2
    "cols4_tile16": (4, 16),  # M 4, 4
}


@pytest.mark.parametrize("buffers", [2, 1])
@pytest.mark.parametrize("name", list(SHAPES))
def test_exact_cycles_without_stalls(name, buffers):
    """Each command takes ``command_cycles`` from its first query beat to its last output
    beat; the next command's first query beat is the next cycle; with one buffer and two."""
    cols, tile = SHAPES[name]
    check_command_cycles(TINY.replace(mac_cols=cols, tile_tokens=tile, tile_buffers=buffers))


@pytest.mark.parametrize("buffers", [2, 1])
def test_exact_cycles_with_registered_mac_operands(buffers):
    """``mac_in_register`` 1 (the paper preset's): both arrays' rows one cycle longer, the
    same outputs, ``command_cycles`` still exact."""
    check_command_cycles(TINY.replace(mac_in_register=1, tile_buffers=buffers))


def check_command_cycles(cfg):
    cols, tile = cfg.mac_cols, cfg.tile_tokens
    rng = np.random.default_rng(cols * 100 + tile)
    shapes = [(1, 1), (3, 2 * tile + 1), (cfg.frame_rows, tile)]
    cases = [attn_case(cfg, rng, rows=r, tokens=n) for r, n in shapes]
    _, want, out = simulate(cfg, cases, timing="none", seed=1)
    assert [g for g, _ in out["got"]] == want
    ends = np.cumsum([r * cfg.mac_chunks for r, _ in shapes])
    out_t = [t for _, t in out["got"]]
    for i, (r, n) in enumerate(shapes):
        start = out["q_t"][i][0]
        last = out_t[ends[i] - 1]
        assert last - start + 1 == command_cycles(cfg, r, n), (r, n)
        if i:
            assert start == out_t[ends[i - 1] - 1] + 1


@pytest.mark.parametrize("timing", ["none", "random"])
def test_one_buffer_bit_exact(timing):
    """``tile_buffers = 1``: a tile loads once the previous one has left both arrays."""
    cfg = TINY.replace(tile_buffers=1)
    rng = np.random.default_rng(11)
    shapes = [(1, 9), (4, 13), (16, 5)]
    cases = [attn_case(cfg, rng, rows=r, tokens=n) for r, n in shapes]
    _, want, out = simulate(cfg, cases, timing=timing, seed=8)
    assert [g for g, _ in out["got"]] == want


def test_double_buffer_hides_the_loads():
    """A decode-shaped command (one row, 10 tiles): with two buffers the K/V stream is taken
    every cycle, the engine bound by its loads (``2 * M`` cycles per token); with one
    buffer each tile waits for the previous one to leave array B."""
    rng = np.random.default_rng(12)
    took = {}
    for buffers in (1, 2):
        cfg = TINY.replace(tile_buffers=buffers)
        case = attn_case(cfg, rng, rows=1, tokens=40)
        _, want, out = simulate(cfg, [case], timing="none", seed=1)
        assert [g for g, _ in out["got"]] == want
        kv_t = out["kv_t"][0]
        gaps = int(np.sum(np.diff(kv_t) > 1))
        assert (gaps == 0) == (buffers == 2), (buffers, gaps)
        took[buffers] = out["got"][-1][1] - out["q_t"][0][0] + 1
        assert took[buffers] == command_cycles(cfg, 1, 40)
    m = TINY.mac_chunks
    assert took[2] - 2 * m * 40 < 4 * m * TINY.tile_tokens < took[1] - 2 * m * 40


@pytest.mark.parametrize("cols", [16, 4])
def test_one_row_one_token_tiles(cols):
    """The accumulator update's two stages at their closest: one row, tiles of one token
    (``M`` = 1 with 16 columns: a row's consecutive updates are a tile apart, the product of
    one beat registered while the previous tile's sum is queued), several tiles, the last
    tile partial or a padding token alone in its tile; bit-exact under every stall
    profile, ``command_cycles`` exact without stalls."""
    from dataclasses import replace

    cfg = TINY.replace(mac_cols=cols, tile_tokens=1)
    rng = np.random.default_rng(cols)
    shapes = [(1, 1), (1, 5), (2, 3), (1, 2)]
    cases = [attn_case(cfg, rng, rows=r, tokens=n) for r, n in shapes]
    cases[-1] = replace(cases[-1], pad=True)
    for timing in TIMINGS:
        _, want, got = simulate(cfg, cases, timing=timing, seed=7)
        assert [g for g, _ in got["got"]] == want, timing
        if timing == "none":
            out = got
    ends = np.cumsum([r * cfg.mac_chunks for r, _ in shapes])
    out_t = [t for _, t in out["got"]]
    for i, ((r, n), c) in enumerate(zip(shapes, cases, strict=True)):
        took = out_t[ends[i] - 1] - out["q_t"][i][0] + 1
        assert took == command_cycles(cfg, r, n, pad=c.pad), (cols, r, n)


def test_a_padding_token_ends_the_stream():
    """A final padding token (``pad``) changes nothing, in a partial tile or alone in a new
    tile (dropped), and costs its load only (``command_cycles(..., pad=True)``)."""
    from dataclasses import replace

    cfg = TINY
    rng = np.random.default_rng(9)
    shapes = [(3, 6), (2, 8), (1, 1), (5, 4)]  # 8 and 4 tokens fill their tiles
    plain = [attn_case(cfg, rng, rows=r, tokens=n) for r, n in shapes]
    cases = [replace(c, pad=True) for c in plain]
    runs = {}
    for timing in ("none", "random"):
        _, want, runs[timing] = simulate(cfg, cases, timing=timing, seed=4)
        assert want == [e for c in plain for e in attn_expected(cfg, c)]
        assert [g for g, _ in runs[timing]["got"]] == want
    ends = np.cumsum([r * cfg.mac_chunks for r, _ in shapes])
    out = runs["none"]
    out_t = [t for _, t in out["got"]]
    for i, (r, n) in enumerate(shapes):
        took = out_t[ends[i] - 1] - out["q_t"][i][0] + 1
        assert took == command_cycles(cfg, r, n, pad=True), (r, n)


def test_one_token_returns_its_value():
    """One visible token: weight 1, 1/l = 1, so each row's output is the token's V
    widened to FP32, whatever the scores."""
    cfg = TINY
    rng = np.random.default_rng(5)
    case = attn_case(cfg, rng, rows=3, tokens=1)
    _, want, out = simulate(cfg, [case], timing="random", seed=2)
    v = [int(x) << 16 for x in case.v[0]]
    rows = [x for (o, _, _), _ in out["got"] for x in o]
    assert rows == [x for _ in range(3) for x in v]
    assert [g for g, _ in out["got"]] == want


def test_elaborates_without_warnings():
    Fragment.get(TiledAttention(TINY), None)
