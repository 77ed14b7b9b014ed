"""FP32Recip on the Amaranth simulator: bit-exact against golden.fparith.fp32_recip (which
is itself checked against ``fractions.Fraction``) for random and corner operands under
every stall pattern of ``sim.streams.TIMINGS``; the exact latency and the cycles per
operand without stalls."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.fparith import f32_to_bits, fp32_recip
from hw.datapath import FP32Recip
from hw.datapath.recip import QUOTIENT_BITS, RECIP_PAYLOAD
from sim.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

CORNERS = np.array(
    [0x3F80_0000, 0x3F80_0001, 0x3FFF_FFFF, 0x4040_0000, 0x0080_0000, 0x0080_0001,
     0x7F7F_FFFF, 0x7E80_0000, 0x7E80_0001, 0x7E7F_FFFF, 0x7F00_0000, 0x7F00_0001,
     0x3FAA_AAAB, 0x3F7F_FFFF, 0x4B80_0001],
    np.uint32,
)  # fmt: skip


def operands(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = ((rng.integers(1, 255, n) << 23) | rng.integers(0, 1 << 23, n)).astype(np.uint32)
    s = f32_to_bits(np.abs(rng.standard_normal(n) * 30 + 1).astype(np.float32) + 1)
    return np.concatenate([CORNERS, r, s]).astype(np.uint32)


def simulate(ops, *, timing: str, seed: int):
    dut = FP32Recip()
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    out: dict = {}

    async def src(ctx):
        beats = [RECIP_PAYLOAD.from_bits(int(v)) for v in ops]
        out["in_t"] = await stream_put(
            ctx, dut.operand, beats, cycle=h.cycle, rng=np.random.default_rng([seed, 1]), idle=idle
        )

    async def sink(ctx):
        got = await stream_get(
            ctx,
            dut.result,
            cycle=h.cycle,
            count=len(ops),
            rng=np.random.default_rng([seed, 2]),
            stall=stall,
        )
        out["got"] = [(int(p.value.as_value().value), t) for p, t in got]
        await assert_idle(ctx, dut.result, 2 * dut.latency)

    run(h, [src, sink])
    return dut, out


@pytest.mark.parametrize("timing", list(TIMINGS))
def test_bit_exact(timing):
    ops = operands(len(timing), 60)
    _, out = simulate(ops, timing=timing, seed=7)
    got = np.array([v for v, _ in out["got"]], np.uint32)
    want = fp32_recip(ops)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(ops[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]


def test_exact_latency():
    ops = operands(5, 10)
    dut, out = simulate(ops, timing="none", seed=1)
    assert dut.latency == QUOTIENT_BITS + 1 == 26
    in_t, out_t = out["in_t"], [t for _, t in out["got"]]
    assert out_t == [t + dut.latency for t in in_t]
    # One operand at a time: the next is taken the cycle after the previous result.
    assert in_t[1:] == [t + 1 for t in out_t[:-1]]


def test_elaborates_without_warnings():
    Fragment.get(FP32Recip(), None)
