"""FP32Recip and its pipelined twin FP32RecipPipe on the Amaranth simulator: bit-exact
against golden.fparith.fp32_recip (which is itself checked against ``fractions.Fraction``)
for random and corner operands under every stall pattern of ``sim.kit.streams.TIMINGS``; the
exact latency and the cycles per operand without stalls (27 sequential, 1 pipelined)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.fparith import fp32_recip
from hw.datapath import FP32Recip, FP32RecipPipe
from hw.datapath.recip import QUOTIENT_BITS, RECIP_PAYLOAD
from sim.cases.datapath import recip_operands as operands
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

UNITS = {"sequential": FP32Recip, "pipelined": FP32RecipPipe}


def simulate(ops, *, timing: str, seed: int, unit: str = "sequential"):
    dut = UNITS[unit]()
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


@pytest.mark.parametrize("unit", list(UNITS))
@pytest.mark.parametrize("timing", list(TIMINGS))
def test_bit_exact(timing, unit):
    ops = operands(len(timing), 60)
    _, out = simulate(ops, timing=timing, seed=7, unit=unit)
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


def test_pipelined_takes_one_operand_per_cycle():
    ops = operands(6, 40)
    dut, out = simulate(ops, timing="none", seed=1, unit="pipelined")
    assert dut.latency == 26
    in_t, out_t = out["in_t"], [t for _, t in out["got"]]
    assert in_t == list(range(in_t[0], in_t[0] + len(ops)))
    assert out_t == [t + dut.latency for t in in_t]
    assert [v for v, _ in out["got"]] == fp32_recip(ops).tolist()


@pytest.mark.parametrize("unit", list(UNITS))
def test_elaborates_without_warnings(unit):
    Fragment.get(UNITS[unit](), None)
