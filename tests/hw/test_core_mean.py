"""MeanQuery (a part of the core) on the Amaranth simulator, bit-exact against
golden.core.mean_query: blocks of 1..frame_rows random BF16 rows (and rows that cancel),
their beats added with idle cycles between them, then 1/rows and the mean read beat by
beat; a second block after the first starts again from +0."""

from __future__ import annotations

import numpy as np
import pytest

from golden.bf16 import to_bf16_bits
from golden.core import mean_query
from golden.fparith import fp32_recip, int_to_fp32
from hw.config import preset
from hw.core import MeanQuery
from sim.kit.streams import Harness, run

TINY = preset("tiny")


def blocks(cfg, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    d = cfg.resv.head_dim
    out = [
        to_bf16_bits(rng.standard_normal((r, d)) * 10.0 ** rng.integers(-3, 4, (r, 1)))
        for r in (1, 2, 3, cfg.frame_rows)
    ]
    big = to_bf16_bits(rng.standard_normal(d) * 1e4)
    out.append(np.stack([big, big ^ np.uint16(0x8000), to_bf16_bits(rng.standard_normal(d))]))
    return out


def simulate(cfg, rows_list, seed: int) -> list[np.ndarray]:
    dut = MeanQuery(cfg)
    h = Harness(dut)
    lanes = cfg.mac_lanes
    beats = cfg.resv.head_dim // lanes
    got: list[np.ndarray] = []

    async def bench(ctx):
        rng = np.random.default_rng(seed)
        for rows in rows_list:
            for r, row in enumerate(rows):
                for b in range(beats):
                    while rng.random() < 0.3:  # idle: nothing added
                        await ctx.tick()
                    ctx.set(dut.beat, b)
                    ctx.set(dut.first, r == 0)
                    ctx.set(dut.x, [int(v) for v in row[b * lanes : (b + 1) * lanes]])
                    ctx.set(dut.add, 1)
                    await ctx.tick()
                    ctx.set(dut.add, 0)
            ctx.set(dut.rows_recip.as_value(), int(fp32_recip(int_to_fp32(np.uint32(len(rows))))))
            ctx.set(dut.set_recip, 1)
            await ctx.tick()
            ctx.set(dut.set_recip, 0)
            mean = []
            for b in range(beats):
                ctx.set(dut.beat, b)
                word = ctx.get(dut.query)
                mean += [(word >> (16 * i)) & 0xFFFF for i in range(lanes)]
            got.append(np.array(mean, np.uint16))

    run(h, [bench])
    return got


@pytest.mark.parametrize(
    "cfg", [TINY, TINY.replace(mac_lanes=8, rope_pairs=4)], ids=["4_beats", "2_beats"]
)
def test_mean_bit_exact(cfg):
    rows_list = blocks(cfg, seed=cfg.mac_lanes)
    got = simulate(cfg, rows_list, seed=3)
    for i, (rows, mean) in enumerate(zip(rows_list, got, strict=True)):
        want = mean_query(rows)
        bad = np.flatnonzero(mean != want)
        assert bad.size == 0, (i, len(rows), [(hex(mean[j]), hex(want[j])) for j in bad[:4]])
