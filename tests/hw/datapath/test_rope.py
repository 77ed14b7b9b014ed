"""RopeUnit on the Amaranth simulator, bit-exact against golden.rope.rope_bf16: random
vectors at random positions (including 0 and the largest ``2**(token_id_bits+1) - 1``),
several vectors back to back under the stall patterns of ``sim.kit.streams.TIMINGS``, at the
tiny config and others (1 and 8 lanes, 10-bit tables, the paper's head); the exact no-stall
latency and vector period; configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.lib import data

from golden.bf16 import to_bf16_bits
from golden.rope import rope_bf16
from hw.config import preset
from hw.datapath import BF16, RopeUnit, layouts
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")
CONFIGS = {
    "tiny": TINY,  # d = 16, 4 lanes, 8-bit tables, 2 pairs per cycle
    "pairs1": TINY.replace(rope_pairs=1),  # one pair per cycle: compute-bound
    "pairs8": TINY.replace(rope_pairs=8),  # every pair in one cycle
    "lanes1": TINY.replace(mac_lanes=1),  # beat-bound: B = 16 > h + 2
    "lanes8_lut10": TINY.replace(mac_lanes=8, rope_lut_bits=10, token_id_bits=16),
    "lanes16": TINY.replace(mac_lanes=16),  # one beat per vector
    # Tiny tables: every entry is read many times, and at 2 bits every one is a quadrant
    # boundary (the quarter ROM has one entry).
    "lut2": TINY.replace(rope_lut_bits=2),
    "lut3": TINY.replace(rope_lut_bits=3),
}


def golden(cfg, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return rope_bf16(x, pos, base=cfg.resv.rope_base, lut_bits=cfg.rope_lut_bits)


def make_cases(cfg, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = cfg.resv.head_dim
    scale = np.exp2(rng.integers(-8, 9, (n, 1)))
    x = to_bf16_bits((rng.standard_normal((n, d)) * scale).astype(np.float32))
    pmax = (1 << (cfg.token_id_bits + 1)) - 1
    pos = rng.integers(0, pmax + 1, n)
    pos[:3] = [0, pmax, 1][: min(3, n)]
    return x, pos


def beats_of(cfg, x: np.ndarray, pos: np.ndarray) -> list[dict]:
    lanes = cfg.mac_lanes
    nb = cfg.resv.head_dim // lanes
    lay, bf16 = layouts(cfg).rope_in, data.Layout.cast(BF16)
    out = []
    for v, p in zip(x, pos, strict=True):
        for b in range(nb):
            out.append(
                lay.const(
                    {
                        "x": [bf16.from_bits(int(e)) for e in v[b * lanes : (b + 1) * lanes]],
                        "position": int(p) if b == 0 else 0,
                        "last": int(b == nb - 1),
                    }
                )
            )
    return out


def unpack(bits: int, lanes: int) -> list[int]:
    return [(bits >> (16 * i)) & 0xFFFF for i in range(lanes)]


def simulate(cfg, x, pos, *, timing: str, seed: int, vcd=None):
    dut = RopeUnit(cfg)
    lanes = cfg.mac_lanes
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    beats = beats_of(cfg, x, pos)
    res: dict = {}

    async def src(ctx):
        res["in_t"] = await stream_put(
            ctx, dut.vectors, beats, cycle=h.cycle, rng=np.random.default_rng([seed, 1]), idle=idle
        )

    async def sink(ctx):
        got = await stream_get(
            ctx,
            dut.result,
            cycle=h.cycle,
            count=len(beats),
            rng=np.random.default_rng([seed, 2]),
            stall=stall,
        )
        res["out"] = [(unpack(p.x.as_value().value, lanes), int(p.last), t) for p, t in got]
        await assert_idle(ctx, dut.result, dut.latency + 5)

    run(h, [src, sink], vcd=vcd, traces=[dut.vectors.valid, dut.result.valid])
    nb = dut.beats
    flat = [e for xs, _, _ in res["out"] for e in xs]
    res["y"] = np.array(flat, np.uint16).reshape(len(x), cfg.resv.head_dim)
    res["last"] = [lst for _, lst, _ in res["out"]]
    assert res["last"] == [int(i % nb == nb - 1) for i in range(len(beats))]
    return dut, res


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_rotation_bit_exact(name, timing, tmp_path):
    cfg = CONFIGS[name]
    x, pos = make_cases(cfg, 12, seed=len(name) * 7 + len(timing))
    _, res = simulate(cfg, x, pos, timing=timing, seed=5, vcd=tmp_path / "rope.vcd")
    want = golden(cfg, x, pos)
    bad = np.argwhere(res["y"] != want)
    assert not bad.size, [
        (int(i), int(j), hex(res["y"][i, j]), hex(want[i, j])) for i, j in bad[:5]
    ]
    assert (res["y"][pos == 0] == x[pos == 0]).all()  # position 0 is the identity


def test_paper_head_bit_exact():
    cfg = preset("paper")  # d = 128, 64 lanes, 32 pairs, 10-bit tables, 17-bit positions
    x, pos = make_cases(cfg, 3, seed=11)
    _, res = simulate(cfg, x, pos, timing="random", seed=6)
    assert (res["y"] == golden(cfg, x, pos)).all()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_exact_latency_and_period(name):
    cfg = CONFIGS[name]
    n = 6
    x, pos = make_cases(cfg, n, seed=3)
    dut, res = simulate(cfg, x, pos, timing="none", seed=1)
    hh, nb = cfg.resv.head_dim // 2, cfg.resv.head_dim // cfg.mac_lanes
    steps = hh // cfg.rope_pairs
    assert dut.pairs == hh and dut.beats == nb and dut.steps == steps
    assert dut.latency == steps + 5 and dut.vector_cycles == max(steps + 3, nb)
    in_t, out_t = res["in_t"], [t for _, _, t in res["out"]]
    first_out = out_t[::nb]
    # Every vector's result beats are consecutive.
    assert out_t == [f + b for f in first_out for b in range(nb)]
    # The first vector: latency after its last input beat.
    assert first_out[0] == in_t[nb - 1] + dut.latency
    # Back to back: one vector every vector_cycles.
    assert np.diff(first_out).tolist() == [dut.vector_cycles] * (n - 1)


def test_elaborates_and_rejects_bad_configs():
    Fragment.get(RopeUnit(TINY), None)
    assert layouts(TINY).rope_in.size == 4 * 16 + TINY.token_id_bits + 1 + 1
    assert layouts(TINY).rope_out.size == 4 * 16 + 1
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 4$"):
        RopeUnit(4)
    bad = TINY.replace(mac_lanes=32)
    with pytest.raises(ValueError, match=r"^resv.head_dim \(16\) must be a multiple of mac_lanes"):
        RopeUnit(bad)
