"""cocotb regression of the generated FP32RecipPipe Verilog (``hw.gen`` top ``recip_pipe``).

Driver (``operand``: positive normal FP32 patterns, ``sim.cases.datapath.recip_operands``) →
monitor (``result``) → golden ``golden.fparith.fp32_recip`` → in-order scoreboard: one
result per operand, bit-exact, nothing else. Random idle cycles on the source and
back-pressure on the sink (``DRE_IDLE`` / ``DRE_STALL``), seed from ``SEED``; without stalls
one operand per cycle and the exact latency. Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge

from golden.fparith import fp32_recip
from hw.datapath.recip import RECIP_LATENCY, RECIP_PAYLOAD
from sim.cases.datapath import recip_operands
from sim.kit.cocotb_streams import (
    Scoreboard,
    StreamSink,
    StreamSource,
    make_rng,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)


async def start(dut) -> None:
    dut.operand__valid.value = 0
    dut.result__ready.value = 0
    await start_clock(dut)
    await reset(dut)


async def run_operands(dut, ops, *, idle: float, stall: float, tag: int):
    """Send every operand and check every result; the source's and sink's handshake cycles."""
    await FallingEdge(dut.clk)
    sb = Scoreboard("recip_pipe.result", dut._log)
    for v in fp32_recip(ops):
        sb.expect(int(v))
    sink = StreamSink(
        dut,
        "result",
        RECIP_PAYLOAD,
        rng=make_rng(tag, 2),
        stall=stall,
        callback=lambda p, _t: sb.check(int(p.value.as_value().value)),
    )
    src = StreamSource(dut, "operand", RECIP_PAYLOAD, rng=make_rng(tag, 1), idle=idle)
    sink.start()
    await src.send([RECIP_PAYLOAD.from_bits(int(v)) for v in ops])
    budget = (len(ops) + RECIP_LATENCY) / (1 - max(idle, stall)) ** 2
    await sink.wait_for(len(ops), timeout_cycles=int(4 * budget) + 200)
    for _ in range(2 * RECIP_LATENCY + 10):  # anything more would be an extra result
        await FallingEdge(dut.clk)
    sink.stop()
    sb.assert_done()
    return src.times, [t for _, t in sink.beats]


@cocotb.test()
async def recip_random_timing(dut):
    """Corner and random operands; random gaps on the source and back-pressure."""
    await start(dut)
    idle, stall = timing_from_env()
    await run_operands(dut, recip_operands(seed_from_env(), 300), idle=idle, stall=stall, tag=1)


@cocotb.test()
async def recip_one_per_cycle(dut):
    """No stalls: an operand every cycle, each result exactly ``latency`` cycles later."""
    await start(dut)
    ops = recip_operands(seed_from_env() + 1, 40)
    in_t, out_t = await run_operands(dut, ops, idle=0.0, stall=0.0, tag=2)
    assert in_t == list(range(in_t[0], in_t[0] + len(ops))), "the source was stalled"
    assert out_t == [t + RECIP_LATENCY for t in in_t], (in_t[:3], out_t[:3])


@cocotb.test()
async def recip_reset_mid_stream(dut):
    """A reset with operands in the pipeline drops them: nothing comes out of it, and the
    next operands are exact."""
    await start(dut)
    ops = recip_operands(seed_from_env() + 2, 10)
    dut.result__ready.value = 0  # hold the results inside
    await StreamSource(dut, "operand", RECIP_PAYLOAD).send(
        [RECIP_PAYLOAD.from_bits(int(v)) for v in ops[:8]]
    )
    await reset(dut, cycles=1, idle=("operand__valid",))
    for _ in range(RECIP_LATENCY + 5):
        await FallingEdge(dut.clk)
        assert not dut.result__valid.value, "a result survived the reset"
    await run_operands(dut, ops, idle=0.2, stall=0.2, tag=3)
