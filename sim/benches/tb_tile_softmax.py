"""cocotb regression of the generated TileSoftmax Verilog (``hw.gen`` top ``tile_softmax``),
plus the row data shared with the Amaranth-simulator tests (tests/hw/datapath/
test_tile_softmax.py).

Driver (``rows``: one beat per row of a tile: ``T = tile_tokens`` FP32 scores, ``m``, ``l``,
``last``) → monitor (``result``) → golden ``golden.softmax.tile_step`` → in-order scoreboard
of whole result beats (``m``, ``l``, ``a`` and the ``T`` BF16 ``p`` patterns bit for bit, the
``last`` flag passed through, nothing extra). Random idle cycles on the source and
back-pressure on the sink (``DRE_IDLE`` / ``DRE_STALL``); configuration from
``config_from_env`` (the run's whole ``HWConfig``, e.g. ``tile_tokens = 1``), seed from
``SEED``.
``TILE_CORRUPT=k`` flips one bit of the ``k``-th expected result of ``ts_random_timing``:
the run must then fail (tests/sim/test_units_cocotb.py checks that it does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import FallingEdge

from golden.fparith import f32_to_bits
from golden.softmax import NEG_INF as golden_neg_inf
from golden.softmax import tile_step
from hw.config import HWConfig
from hw.datapath.layouts import layouts
from sim.coverage import collector, tile_softmax_row_bins
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

__all__ = [
    "KINDS",
    "NEG_INF",
    "TileRow",
    "chained_rows",
    "decode_result",
    "row_beat",
    "synthetic_rows",
    "tile_expected",
]

NEG_INF = int(golden_neg_inf)
#: Row shapes of ``synthetic_rows`` (``kind`` cycles through them).
KINDS = (
    "first_gaussian",  # m = -inf (a row's first tile), Gaussian scores at several scales
    "next_gaussian",  # a later tile: finite m, l
    "masked",  # ~30 % masked lanes (first or later tile; a first tile keeps one visible)
    "ties_zeros",  # scores and m from {+0, -0, 1, 1, -2.5}: ties and signed zeros
    "outliers",  # far outliers: weights (p or a) flush to +0
    "all_masked",  # a later tile whose every lane is masked: p = +0, a = 1, l kept
)


@dataclass(frozen=True)
class TileRow:
    s: np.ndarray  # uint32 FP32 patterns, shape (T,)
    m: int  # FP32 pattern
    l: int  # FP32 pattern
    last: int


def _f32(x) -> np.ndarray:
    return f32_to_bits(np.asarray(x, np.float32))


def synthetic_row(cfg: HWConfig, rng: np.random.Generator, kind: int) -> TileRow:
    """One row of shape ``KINDS[kind % len(KINDS)]``."""
    t = cfg.tile_tokens
    name = KINDS[kind % len(KINDS)]
    scale = float(rng.choice([0.5, 4.0, 40.0]))
    s = _f32(rng.standard_normal(t) * scale)
    first = name == "first_gaussian" or (name in ("masked", "outliers") and rng.random() < 0.5)
    m = NEG_INF if first else int(_f32(rng.standard_normal() * scale * 0.5))
    l = 0 if first else int(_f32(1.0 + rng.exponential(8.0)))
    if name == "masked":
        mask = rng.random(t) < 0.3
        if first:
            mask[int(rng.integers(t))] = False  # a first tile has a visible token
        s = np.where(mask, np.uint32(NEG_INF), s)
    elif name == "ties_zeros":
        s = _f32(rng.choice(np.array([0.0, -0.0, 1.0, 1.0, -2.5], np.float32), t))
        m = int(_f32(rng.choice(np.array([0.0, -0.0, 1.0, -2.5], np.float32))))
        m = int(rng.choice([m, NEG_INF]))
        l = 0 if m == NEG_INF else int(_f32(rng.choice([1.0, 2.0, 3.5])))
    elif name == "outliers":
        s = _f32(rng.standard_normal(t) * 2)
        far = rng.random(t) < 0.4
        s = np.where(far, _f32(float(rng.choice([3000.0, -3000.0]))), s)
        if not first and rng.random() < 0.5:
            m = int(_f32(float(rng.choice([2000.0, -2000.0]))))  # a (or every p) flushes
    elif name == "all_masked":
        s = np.full(t, NEG_INF, np.uint32)
    return TileRow(np.asarray(s, np.uint32), int(m), int(l), int(rng.random() < 0.3))


def synthetic_rows(cfg: HWConfig, count: int, seed: int) -> list[TileRow]:
    """``count`` rows cycling through ``KINDS``."""
    rng = np.random.default_rng(seed)
    return [synthetic_row(cfg, rng, i) for i in range(count)]


def chained_rows(cfg: HWConfig, queries: int, seed: int, max_tiles: int = 5) -> list[TileRow]:
    """The rows of ``queries`` whole attention rows of 1..``max_tiles`` tiles (the tiled
    order of ``golden.softmax.tiled_attention``): each tile's ``m``/``l`` are the previous
    tile's results, the last tile padded with masked tokens; ``last`` on a query's final
    tile. Queries are interleaved tile by tile, as rows in flight in the pipeline are."""
    rng = np.random.default_rng(seed)
    t = cfg.tile_tokens
    per_query = []
    for _ in range(queries):
        n = int(rng.integers(1, max_tiles * t + 1))
        s = _f32(rng.standard_normal(n) * float(rng.choice([1.0, 8.0, 30.0])))
        s = np.where(rng.random(n) < 0.1, np.uint32(NEG_INF), s)
        s[0] = _f32(rng.standard_normal())  # the first token is visible
        tiles = -(-n // t)
        s = np.pad(s, (0, tiles * t - n), constant_values=NEG_INF).reshape(tiles, t)
        m, l, rows = np.uint32(NEG_INF), np.uint32(0), []
        for j in range(tiles):
            rows.append(TileRow(s[j].astype(np.uint32), int(m), int(l), int(j == tiles - 1)))
            mm, ll, _, _ = tile_step(
                s[j : j + 1],
                np.array([m], np.uint32),
                np.array([l], np.uint32),
                head_dim=cfg.resv.head_dim,
                exp_frac_bits=cfg.exp_frac_bits,
            )
            m, l = mm[0], ll[0]
        per_query.append(rows)
    out = []
    for j in range(max(len(r) for r in per_query)):
        out += [r[j] for r in per_query if j < len(r)]
    return out


def row_beat(cfg: HWConfig, row: TileRow) -> data.Const:
    """The ``tile_in`` beat of ``row``."""
    lay = layouts(cfg).tile_in
    packed = sum(int(v) << (32 * i) for i, v in enumerate(row.s))
    raw = (
        packed << lay["s"].offset
        | row.m << lay["m"].offset
        | row.l << lay["l"].offset
        | row.last << lay["last"].offset
    )
    return lay.from_bits(raw)


Result = tuple[int, int, int, tuple[int, ...], int]


def tile_expected(cfg: HWConfig, rows: list[TileRow]) -> list[Result]:
    """``(m_new, l_new, a, pb, last)`` of each row by ``golden.softmax.tile_step``."""
    if not rows:
        return []
    m_new, l_new, a, pb = tile_step(
        np.stack([r.s for r in rows]).astype(np.uint32),
        np.array([r.m for r in rows], np.uint32),
        np.array([r.l for r in rows], np.uint32),
        head_dim=cfg.resv.head_dim,
        exp_frac_bits=cfg.exp_frac_bits,
    )
    return [
        (int(m_new[i]), int(l_new[i]), int(a[i]), tuple(int(v) for v in pb[i]), r.last)
        for i, r in enumerate(rows)
    ]


def decode_result(cfg: HWConfig, beat) -> Result:
    """``(m, l, a, p, last)`` of a ``tile_out`` beat (a ``data.Const``)."""
    lay = layouts(cfg).tile_out
    raw = int(beat.as_value().value)

    def field(name: str, width: int, extra: int = 0) -> int:
        return raw >> (lay[name].offset + extra) & ((1 << width) - 1)

    p = tuple(field("p", 16, 16 * i) for i in range(cfg.tile_tokens))
    return field("m", 32), field("l", 32), field("a", 32), p, field("last", 1)


def _fmt(r: Result) -> str:
    m, l, a, p, last = r
    return f"m={m:#010x} l={l:#010x} a={a:#010x} p=[{' '.join(f'{v:04x}' for v in p)}] last={last}"


# ---------------------------------------------------------------------------------------------
# cocotb tests


async def start(dut) -> None:
    dut.rows__valid.value = 0
    dut.result__ready.value = 0
    await start_clock(dut)
    await reset(dut)


async def run_rows(dut, rows: list[TileRow], *, idle: float, stall: float, tag: int, corrupt=None):
    """Send ``rows`` and check every result in order; returns the handshake cycles of the
    row source and the result sink."""
    from hw.datapath import tile_latency

    cfg = config_from_env()
    lay = layouts(cfg)
    await FallingEdge(dut.clk)
    sb = Scoreboard("tile_softmax.result", dut._log, compare=lambda g, w: g == w)
    for i, want in enumerate(tile_expected(cfg, rows)):
        if corrupt is not None and i == corrupt:
            want = (want[0], want[1] ^ 1, *want[2:])
        sb.expect(want)
    checked = []

    def on_beat(p, _t):
        got = decode_result(cfg, p)
        checked.append(got)
        sb.check(got)

    sink = StreamSink(
        dut, "result", lay.tile_out, rng=make_rng(tag, 2), stall=stall, callback=on_beat
    )
    src = StreamSource(dut, "rows", lay.tile_in, rng=make_rng(tag, 1), idle=idle)
    sink.start()
    await src.send([row_beat(cfg, r) for r in rows])
    budget = (len(rows) + tile_latency(cfg)) / (1 - max(idle, stall)) ** 2
    await sink.wait_for(len(rows), timeout_cycles=int(4 * budget) + 200)
    for _ in range(2 * tile_latency(cfg) + 4):  # anything more would be an extra result
        await FallingEdge(dut.clk)
    sink.stop()
    dut._log.info("tile_softmax: %d rows checked, last %s", len(checked), _fmt(checked[-1]))
    sb.assert_done()
    assert len(checked) == len(rows)
    cov = collector()  # every result matched
    for r, (_, _, a, _, _) in zip(rows, checked, strict=True):
        for group, name in tile_softmax_row_bins(r, a):
            cov.hit(group, name)
    return src.times, [t for _, t in sink.beats]


@cocotb.test()
async def ts_random_timing(dut):
    """Rows of every kind (first tile, later tiles, masked lanes, ties and signed zeros,
    far outliers, all lanes masked); random idle cycles and back-pressure."""
    cfg = config_from_env()
    await start(dut)
    idle, stall = timing_from_env()
    rows = synthetic_rows(cfg, 240, seed_from_env())
    corrupt = os.environ.get("TILE_CORRUPT", "").strip()
    await run_rows(
        dut, rows, idle=idle, stall=stall, tag=1, corrupt=int(corrupt) if corrupt else None
    )


@cocotb.test()
async def ts_chained_queries(dut):
    """Whole attention rows in the tiled order (each tile's m and l from the previous
    tile's result), interleaved; random idle cycles and back-pressure."""
    cfg = config_from_env()
    await start(dut)
    idle, stall = timing_from_env()
    rows = chained_rows(cfg, 12, seed_from_env() + 1)
    await run_rows(dut, rows, idle=idle, stall=stall, tag=2)


@cocotb.test()
async def ts_exact_latency(dut):
    """No stalls: one row accepted per cycle, each result offered ``latency`` cycles after
    its row, one per cycle."""
    from hw.datapath import tile_latency

    cfg = config_from_env()
    await start(dut)
    rows = synthetic_rows(cfg, 60, seed_from_env() + 2)
    s_t, r_t = await run_rows(dut, rows, idle=0.0, stall=0.0, tag=3)
    assert s_t == list(range(s_t[0], s_t[0] + len(rows))), s_t
    assert r_t == [t + tile_latency(cfg) for t in s_t], (tile_latency(cfg), s_t[:4], r_t[:4])


@cocotb.test()
async def ts_reset_mid_stream(dut):
    """A reset with rows in the pipeline drops them: the next rows come out clean."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await start(dut)
    src = StreamSource(dut, "rows", lay.tile_in)
    await src.send([row_beat(cfg, r) for r in synthetic_rows(cfg, 3, seed_from_env() + 3)])
    await reset(dut, cycles=1)
    dut.rows__valid.value = 0
    rows = synthetic_rows(cfg, 30, seed_from_env() + 4)
    await run_rows(dut, rows, idle=0.2, stall=0.2, tag=4)
