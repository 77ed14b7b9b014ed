"""cocotb regression of the generated MacTree Verilog (``hw.gen`` top ``mac_tree``).

Driver (``vectors``: one beat per chunk of ``mac_lanes`` BF16 pairs) → monitor (``result``)
→ golden ``golden.fparith.dot`` → in-order scoreboard: every dot product yields exactly one
FP32 result, bit-exact, and nothing else comes out. Random idle cycles on the source and
back-pressure on the sink (``DRE_IDLE`` / ``DRE_STALL``); configuration from
``DRE_CONFIG``, seed from ``SEED``; real q·k pairs from ``TRACE`` when given (through
``workloads.trace.load``), synthetic Gaussian query/key vectors of the config's head dimension
otherwise. Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from golden.bf16 import to_bf16_bits
from hw.datapath import layouts, mac_latency
from sim.cases.datapath import DotCase, mac_beats, mac_expected, synthetic_cases, trace_cases
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


async def start(dut) -> None:
    dut.vectors__valid.value = 0
    dut.result__ready.value = 0
    await start_clock(dut)
    await reset(dut)


async def run_cases(dut, cases: list[DotCase], *, idle: float, stall: float, tag: int):
    """Send every dot product back to back and check all results; returns the source's and
    the sink's handshake cycles."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await FallingEdge(dut.clk)
    sb = Scoreboard("mac_tree.result", dut._log)
    beats = []
    for c in cases:
        sb.expect(mac_expected(cfg, c))
        beats += mac_beats(cfg, c)
    sink = StreamSink(
        dut,
        "result",
        lay.mac_out,
        rng=make_rng(tag, 2),
        stall=stall,
        callback=lambda p, _t: sb.check(int(p.value.as_value().value)),
    )
    src = StreamSource(dut, "vectors", lay.mac_in, rng=make_rng(tag, 1), idle=idle)
    sink.start()
    await src.send(beats)
    budget = (len(beats) + mac_latency(cfg)) / (1 - max(idle, stall)) ** 2
    await sink.wait_for(len(cases), timeout_cycles=int(4 * budget) + 200)
    for _ in range(3 * mac_latency(cfg) + 10):  # anything more would be an extra result
        await FallingEdge(dut.clk)
    sink.stop()
    sb.assert_done()
    return src.times, [t for _, t in sink.beats]


@cocotb.test()
async def mac_synthetic_random_timing(dut):
    """Every data kind (normal, corner values, cancellation, wide exponents, overflow and
    flush extremes), 1..3*mac_lanes+1 elements; random gaps and back-pressure."""
    cfg = config_from_env()
    await start(dut)
    idle, stall = timing_from_env()
    cases = synthetic_cases(cfg, 120, seed_from_env())
    await run_cases(dut, cases, idle=idle, stall=stall, tag=1)


@cocotb.test()
async def mac_qk_trace(dut):
    """q·k dot products of the TRACE file when given, else of Gaussian queries/keys of the
    config's head dimension; random gaps and back-pressure."""
    cfg = config_from_env()
    await start(dut)
    path = trace_path()
    if path is not None:
        cases = trace_cases(path, 40, seed_from_env())
        dut._log.info("q·k pairs from trace %s (d = %d)", path, cases[0].a.size)
    else:
        rng = np.random.default_rng(seed_from_env())
        d = cfg.resv.head_dim
        q = to_bf16_bits(rng.standard_normal((40, d)).astype(np.float32) * 2)
        k = to_bf16_bits(rng.standard_normal((40, d)).astype(np.float32) + 0.5)
        cases = [DotCase(a=q[i], b=k[i]) for i in range(40)]
    idle, stall = timing_from_env()
    await run_cases(dut, cases, idle=idle, stall=stall, tag=2)


@cocotb.test()
async def mac_exact_latency(dut):
    """No stalls: one beat per cycle, each result ``latency`` cycles after its last beat."""
    cfg = config_from_env()
    await start(dut)
    cases = synthetic_cases(cfg, 30, seed_from_env() + 1)
    in_t, out_t = await run_cases(dut, cases, idle=0.0, stall=0.0, tag=3)
    assert in_t == list(range(in_t[0], in_t[0] + len(in_t))), "source was stalled"
    beats = [b for c in cases for b in mac_beats(cfg, c)]
    last_t = [t for b, t in zip(beats, in_t, strict=True) if b.last]
    assert out_t == [t + mac_latency(cfg) for t in last_t], (out_t[:4], last_t[:4])


@cocotb.test()
async def mac_reset_mid_dot(dut):
    """A reset after part of a multi-chunk dot product drops it: the next one starts clean."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await start(dut)
    rng = np.random.default_rng(seed_from_env() + 2)
    n = 3 * cfg.mac_lanes
    first = DotCase(a=to_bf16_bits(rng.standard_normal(n)), b=to_bf16_bits(rng.standard_normal(n)))
    src = StreamSource(dut, "vectors", lay.mac_in)
    await src.send(mac_beats(cfg, first)[:-1])
    await reset(dut, cycles=1)
    await run_cases(dut, synthetic_cases(cfg, 5, seed_from_env() + 3), idle=0.2, stall=0.2, tag=4)
