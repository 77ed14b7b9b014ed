"""cocotb regression of the generated TiledAttention Verilog (``hw.gen`` top
``tiled_attention``).

Drivers (``queries``: a command's rows; ``kv``: its tokens, K then V; run concurrently, the
unit takes them in turn) → monitor (``out``) → golden ``golden.softmax.tiled_attention`` of
the masked MAC-array scores (``sim.cases.datapath.attn_expected``) → in-order scoreboard:
every row's ``M`` output beats bit-exact, nothing else. Random idle cycles on both sources
and back-pressure on the sink (``DRE_IDLE`` / ``DRE_STALL``), configuration from
``DRE_CONFIG``, seed from ``SEED``; without stalls each command takes exactly
``command_cycles``. Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

from dataclasses import replace

import cocotb
import numpy as np
from cocotb.triggers import Combine, FallingEdge, with_timeout

from hw.datapath import layouts
from hw.datapath.tiled_attention import command_cycles
from sim.cases.datapath import AttnCase, attn_beats, attn_case, attn_expected, attn_out_beat
from sim.kit.cocotb_streams import (
    PERIOD_NS,
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

PORTS_IDLE = ("queries__valid", "kv__valid", "out__ready")


async def start(dut) -> None:
    for name in PORTS_IDLE:
        getattr(dut, name).value = 0
    await start_clock(dut)
    await reset(dut, idle=PORTS_IDLE)


def cases(cfg, seed: int, shapes, pad: bool = False) -> list[AttnCase]:
    """Commands of ``shapes`` (rows, tokens); with ``pad`` every other one ends its stream
    with a padding token."""
    rng = np.random.default_rng(seed)
    out = [attn_case(cfg, rng, rows=r, tokens=n) for r, n in shapes]
    return [replace(c, pad=pad and i % 2 == 1) for i, c in enumerate(out)]


async def run_cases(dut, todo: list[AttnCase], *, idle: float, stall: float, tag: int):
    """Send every command and check every output beat; returns the handshake cycles."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await FallingEdge(dut.clk)
    sb = Scoreboard("tiled_attention.out", dut._log)
    qbeats, kvbeats, budget = [], [], 0
    for c in todo:
        for e in attn_expected(cfg, c):
            sb.expect(e)
        q, kv = attn_beats(cfg, c)
        qbeats += q
        kvbeats += kv
        budget += command_cycles(cfg, len(c.q), len(c.k))
    sink = StreamSink(
        dut,
        "out",
        lay.attn_out,
        rng=make_rng(tag, 3),
        stall=stall,
        callback=lambda p, _t: sb.check(attn_out_beat(p)),
    )
    qsrc = StreamSource(dut, "queries", lay.attn_in, rng=make_rng(tag, 1), idle=idle)
    ksrc = StreamSource(dut, "kv", lay.attn_in, rng=make_rng(tag, 2), idle=idle)
    sink.start()
    timeout = int(4 * budget / (1 - max(idle, stall)) ** 2) + 200
    sends = Combine(cocotb.start_soon(qsrc.send(qbeats)), cocotb.start_soon(ksrc.send(kvbeats)))
    await with_timeout(sends, timeout * PERIOD_NS, "ns")
    await sink.wait_for(sum(len(c.q) for c in todo) * cfg.mac_chunks, timeout_cycles=timeout)
    for _ in range(50):  # anything more would be an extra beat
        await FallingEdge(dut.clk)
    sink.stop()
    sb.assert_done()
    return qsrc.times, ksrc.times, [t for _, t in sink.beats]


@cocotb.test()
async def tiled_attention_random_timing(dut):
    """Commands of 1..frame_rows rows over 1..5 tiles (partial last tiles, masked tokens,
    every other one ending with a padding token, some alone in their tile); random gaps on
    both sources and back-pressure on the sink."""
    cfg = config_from_env()
    await start(dut)
    idle, stall = timing_from_env()
    t = cfg.tile_tokens
    shapes = [(1, 1), (3, t + 1), (cfg.frame_rows, 2 * t), (2, 4 * t), (5, 3), (2, 5)]
    todo = cases(cfg, seed_from_env(), shapes, pad=True)
    await run_cases(dut, todo, idle=idle, stall=stall, tag=1)


@cocotb.test()
async def tiled_attention_exact_cycles(dut):
    """No stalls: each command's first query beat to its last output beat takes
    ``command_cycles``; the next command starts the cycle after."""
    cfg = config_from_env()
    await start(dut)
    shapes = [(2, 3), (cfg.frame_rows, cfg.tile_tokens + 1)]
    todo = cases(cfg, seed_from_env() + 1, shapes)
    q_t, _, out_t = await run_cases(dut, todo, idle=0.0, stall=0.0, tag=2)
    m = cfg.mac_chunks
    first_q, last_out = 0, 0
    for r, n in shapes:
        start_t, end_t = q_t[first_q], out_t[last_out + r * m - 1]
        assert end_t - start_t + 1 == command_cycles(cfg, r, n), (r, n, end_t - start_t + 1)
        first_q += r * m
        last_out += r * m


@cocotb.test()
async def tiled_attention_reset_mid_command(dut):
    """A reset while a command's tokens stream drops it: the next commands are exact."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await start(dut)
    first = cases(cfg, seed_from_env() + 2, [(3, 2 * cfg.tile_tokens)])[0]
    q, kv = attn_beats(cfg, first)
    dut.out__ready.value = 1  # drained unchecked: the command is cut short anyway
    for name, beats in (("queries", q), ("kv", kv[: len(kv) // 2])):
        send = StreamSource(dut, name, lay.attn_in).send(beats)
        await with_timeout(send, (50 * len(beats) + 50) * PERIOD_NS, "ns")
    await reset(dut, cycles=1, idle=PORTS_IDLE)
    todo = cases(cfg, seed_from_env() + 3, [(2, 5), (4, cfg.tile_tokens)])
    await run_cases(dut, todo, idle=0.2, stall=0.2, tag=4)
