"""cocotb regression of the generated MacArray Verilog (``hw.gen`` top ``mac_array``).

Drivers (``queries``: each block's query rows; ``keys``: its K vectors; both running
concurrently, the unit's phases interleave them) → monitor (``scores``) → golden
``golden.fparith.mac_array`` → in-order scoreboard: every K vector yields exactly one beat of
``mac_rows`` FP32 scores and its ``end`` flag, bit-exact, and nothing else comes out.
Random idle cycles on both sources and back-pressure on the sink (``DRE_IDLE`` /
``DRE_STALL``); configuration from ``DRE_CONFIG``, seed from ``SEED``; the GQA blocks take
post-RoPE Q and K of the ``TRACE`` file when given. Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import Combine, FallingEdge, with_timeout

from hw.datapath import block_cycles, layouts, mac_latency
from sim.cases.datapath import (
    ARRAY_SPECIAL_SCORES,
    ArrayBlock,
    array_beats,
    array_blocks,
    array_expected,
    array_score_beat,
    array_special_blocks,
    gqa_blocks,
    load_beats,
)
from sim.cases.dre import trace_path
from sim.coverage import collector, mac_array_block_bins
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

PORTS_IDLE = ("queries__valid", "keys__valid", "scores__ready")


def latency(cfg) -> int:
    return mac_latency(cfg.replace(mac_lanes=cfg.mac_cols))


async def start(dut) -> None:
    for name in PORTS_IDLE:
        getattr(dut, name).value = 0
    await start_clock(dut)
    await reset(dut, idle=PORTS_IDLE)


async def run_blocks(dut, blocks: list[ArrayBlock], *, idle: float, stall: float, tag: int):
    """Send every block (queries and keys concurrently) and check all score beats; returns
    the two sources' and the sink's handshake cycles."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await FallingEdge(dut.clk)
    sb = Scoreboard("mac_array.scores", dut._log)
    qbeats, kbeats = [], []
    for b in blocks:
        for e in array_expected(cfg, b):
            sb.expect(e)
        q, k = array_beats(cfg, b)
        qbeats += q
        kbeats += k
    sink = StreamSink(
        dut,
        "scores",
        lay.array_out,
        rng=make_rng(tag, 3),
        stall=stall,
        callback=lambda p, _t: sb.check(array_score_beat(p)),
    )
    qsrc = StreamSource(dut, "queries", lay.array_load, rng=make_rng(tag, 1), idle=idle)
    ksrc = StreamSource(dut, "keys", lay.array_in, rng=make_rng(tag, 2), idle=idle)
    sink.start()
    budget = (len(qbeats) + len(kbeats) + latency(cfg)) / (1 - max(idle, stall)) ** 2
    timeout = int(4 * budget) + 200
    # A hung input is a failure, not a simulation that never ends.
    sends = Combine(cocotb.start_soon(qsrc.send(qbeats)), cocotb.start_soon(ksrc.send(kbeats)))
    await with_timeout(sends, timeout * PERIOD_NS, "ns")
    await sink.wait_for(sum(len(b.keys) for b in blocks), timeout_cycles=timeout)
    for _ in range(3 * latency(cfg) + 10):  # anything more would be an extra beat
        await FallingEdge(dut.clk)
    sink.stop()
    sb.assert_done()
    cov = collector()  # every block's beats matched
    for b in blocks:
        for group, name in mac_array_block_bins(cfg, b):
            cov.hit(group, name)
    return qsrc.times, ksrc.times, [t for _, t in sink.beats]


@cocotb.test()
async def mac_array_random_timing(dut):
    """Blocks of every data kind, 1..mac_rows rows (and one too many), partial final beats,
    every third loaded transposed; random gaps on both sources and back-pressure."""
    cfg = config_from_env()
    await start(dut)
    idle, stall = timing_from_env()
    blocks = array_blocks(cfg, 20, seed_from_env())
    await run_blocks(dut, blocks, idle=idle, stall=stall, tag=1)


@cocotb.test()
async def mac_array_exact_cycles(dut):
    """No stalls: each block's query beats (transposed ones too) then its K beats back to
    back, no bubble between blocks (``block_cycles``), scores ``latency`` cycles after each
    K vector's last beat."""
    cfg = config_from_env()
    await start(dut)
    blocks = array_blocks(cfg, 8, seed_from_env() + 1)
    q_t, k_t, out_t = await run_blocks(dut, blocks, idle=0.0, stall=0.0, tag=2)
    start_t, qi, ki, last_t = q_t[0], 0, 0, []
    for b in blocks:
        m = -(-b.queries.shape[1] // cfg.mac_cols)
        nq, nk = load_beats(cfg, b), len(b.keys) * m
        assert q_t[qi : qi + nq] == list(range(start_t, start_t + nq)), "query load stalled"
        assert k_t[ki : ki + nk] == list(range(start_t + nq, start_t + nq + nk)), "K stalled"
        last_t += k_t[ki + m - 1 : ki + nk : m]
        assert b.columns or nq + nk == block_cycles(len(b.queries), len(b.keys), m)
        start_t += nq + nk
        qi, ki = qi + nq, ki + nk
    assert out_t == [t + latency(cfg) for t in last_t], (out_t[:4], last_t[:4])


@cocotb.test()
async def mac_array_special_values(dut):
    """Overflow to inf, inf - inf = NaN, flushed products and subnormal operands, -0 sums;
    then a one-row block whose missing rows read +0 (written-out expectation at 4 rows)."""
    cfg = config_from_env()
    await start(dut)
    blocks = array_special_blocks()
    await run_blocks(dut, blocks, idle=0.3, stall=0.3, tag=3)
    if cfg.mac_rows == 4:
        want = [e for b in blocks for e in array_expected(cfg, b)]
        assert want == ARRAY_SPECIAL_SCORES


@cocotb.test()
async def mac_array_gqa_blocks(dut):
    """A frame-prefill block (tokens x the GQA group's query heads) and a grouped-GEMV
    decode block (the group's heads) against K vectors of their KV head: post-RoPE Q and K
    of the TRACE file when given, else Gaussian vectors of the config's head dimension."""
    cfg = config_from_env()
    await start(dut)
    path = trace_path()
    blocks = gqa_blocks(cfg, path, seed_from_env())
    dut._log.info("GQA blocks from %s", path or "N(0, 1) vectors")
    idle, stall = timing_from_env()
    await run_blocks(dut, blocks, idle=idle, stall=stall, tag=5)


@cocotb.test()
async def mac_array_reset_mid_block(dut):
    """A reset while a block's K vectors stream drops it: the next block starts clean, in
    the query-load phase."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await start(dut)
    first = array_blocks(cfg, 1, seed_from_env() + 2, max_keys=3)[0]
    q, k = array_beats(cfg, first)
    dut.scores__ready.value = 1  # drained unchecked: the block is cut short anyway
    for name, layout, beats in (("queries", lay.array_load, q), ("keys", lay.array_in, k[:-1])):
        send = StreamSource(dut, name, layout).send(beats)
        await with_timeout(send, (50 * len(beats) + 50) * PERIOD_NS, "ns")
    await reset(dut, cycles=1, idle=PORTS_IDLE)
    blocks = array_blocks(cfg, 5, seed_from_env() + 3)
    await run_blocks(dut, blocks, idle=0.2, stall=0.2, tag=4)
