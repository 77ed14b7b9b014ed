"""cocotb regression of the generated HashClusterUnit Verilog (``hw.gen`` top ``hcu``).

Driver (``tokens``) → monitor (``assign``) → golden ``ClusterTable`` → in-order scoreboard,
with random idle cycles and back-pressure; table state read back through the count port.
Configuration from ``DRE_CONFIG`` (+ overrides), seed from ``SEED``, a recorded trace from
``TRACE`` (otherwise a synthetic video-like stream). Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

from golden.resv import ClusterEvent
from hw.dre import HCU_LATENCY, hcu_batch_cycles, layouts
from sim.cases.dre import (
    HCUStream,
    env_workload,
    hcu_expected,
    hcu_stream,
    hcu_timing,
)
from sim.coverage import collector, hcu_token_bins
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


async def read_counts(dut, n: int) -> list[int]:
    counts = []
    for c in range(n):
        await FallingEdge(dut.clk)
        dut.count_addr.value = c
        await FallingEdge(dut.clk)
        await ReadOnly()
        counts.append(int(dut.count_data.value))
    return counts


async def run_stream(
    dut, stream: HCUStream, *, idle: float, stall: float, exact: bool, tag: int
) -> dict:
    """Send ``stream``, check every result and the final table; returns handshake cycles."""
    cfg = config_from_env()
    lay = layouts(cfg)
    exp = hcu_expected(cfg, stream)
    n = len(stream)
    await FallingEdge(dut.clk)  # leave any ReadOnly phase before driving
    tid_mod = 1 << cfg.token_id_bits
    sb = Scoreboard("hcu.assign", dut._log)
    for t in range(n):
        sb.expect((t % tid_mod, int(exp.cluster[t]), int(exp.distance[t]), int(exp.event[t])))
    bins = hcu_token_bins(cfg, stream, exp, exact=exact)
    cov = collector()

    def on_result(p, _t):
        sb.check((p.token_id, p.cluster, p.distance, p.event.value))
        for group, name in bins[len(sink.beats) - 1]:
            cov.hit(group, name)

    sink = StreamSink(
        dut, "assign", lay.assign, rng=make_rng(tag, 2), stall=stall, callback=on_result
    )
    src = StreamSource(dut, "tokens", lay.token, rng=make_rng(tag, 1), idle=idle)
    sink.start()
    payloads = [
        {"token_id": t % tid_mod, "signature": int(s), "clear": int(c)}
        for t, (s, c) in enumerate(zip(stream.sigs, stream.clear, strict=True))
    ]
    worst = hcu_batch_cycles(cfg, cfg.max_clusters, [None] * cfg.hcu_batch)
    await src.send(payloads)
    await sink.wait_for(n, timeout_cycles=int(worst / (1 - stall + 1e-9)) * 4 + 200)
    for _ in range(4 * worst):  # anything more would be a duplicate
        await FallingEdge(dut.clk)
    sink.stop()
    sb.assert_done()
    await ReadOnly()
    assert int(dut.occupancy.value) == exp.occupancy, "occupancy"
    assert int(dut.forced.value) == exp.forced, "forced joins"
    counts = await read_counts(dut, exp.occupancy)
    assert counts == exp.counts.tolist(), f"counts {counts} != {exp.counts.tolist()}"

    acc = np.array(src.times)
    done = np.array([t for _, t in sink.beats])
    if exact:  # batches, early exit and decisions to the cycle (hw.dre.hcu)
        timing = hcu_timing(cfg, stream, exp)
        assert (acc - acc[0] == timing.accepted).all(), "acceptances differ from the formula"
        assert (done - acc[0] == timing.done).all(), "result cycles differ from the formula"
    else:
        assert (done - acc >= HCU_LATENCY + 1).all()
    return {"accepted": src.times, "done": done.tolist(), "cycles": int(done[-1] - acc[0])}


@cocotb.test()
async def hcu_redundant_random_timing(dut):
    """Temporally redundant signatures in three contexts, random gaps and back-pressure."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    stream = hcu_stream(cfg, 6 * cfg.max_clusters, seed=seed_from_env(), contexts=3)
    idle, stall = timing_from_env()
    await run_stream(dut, stream, idle=idle, stall=stall, exact=False, tag=1)


@cocotb.test()
async def hcu_full_table_exact_cycles(dut):
    """New content every token: the table fills, then forced joins; no stalls, so every
    token must take exactly ceil(occupancy / lanes) + latency cycles."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    stream = hcu_stream(
        cfg,
        2 * cfg.max_clusters + 8,
        seed=seed_from_env() + 1,
        redundancy=0.0,
        sources=4 * cfg.max_clusters,
    )
    assert hcu_expected(cfg, stream).forced > 0
    await run_stream(dut, stream, idle=0.0, stall=0.0, exact=True, tag=2)


@cocotb.test()
async def hcu_video_trace(dut):
    """Keys → golden signatures → HCU: the TRACE file when given, else a video-like
    synthetic stream (redundant frames, un-centred features)."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    stream, _ = env_workload(cfg, rows=0, seed=seed_from_env(), log=dut._log)
    idle, stall = timing_from_env()
    await run_stream(dut, stream, idle=idle, stall=stall, exact=False, tag=3)


@cocotb.test()
async def hcu_ties_lowest_index(dut):
    """Probes equidistant (<= T) from two clusters, in one row and across rows, join the
    lower index."""
    cfg = config_from_env()
    r = cfg.resv
    await start_clock(dut)
    await reset(dut)
    d = r.threshold + 1 + (r.threshold + 1) % 2  # even distance in T+1..T+2
    assert 4 * d <= r.hash_bits and r.threshold >= d // 2, "config too small for this test"
    block = [((1 << d) - 1) << (d * i) for i in range(4)]
    founders = [block[0], 0, block[2], block[3], block[1]]  # all pairwise > T apart
    half = [(1 << (d // 2)) - 1 << (d * i) for i in range(2)]
    probes = [half[0], half[1], 0, half[0]]
    sigs = np.array(founders + probes, np.uint64)
    stream = HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool))
    exp = hcu_expected(cfg, stream)
    # half[0]: d/2 from clusters 0 and 1 (one row when lanes > 1); half[1]: d/2 from
    # clusters 1 and 4 (different rows when lanes <= 4).
    assert exp.event[:5].tolist() == [ClusterEvent.CREATED] * 5
    assert exp.cluster[5:].tolist() == [0, 1, 1, 0] and exp.distance[5] == d // 2
    await run_stream(dut, stream, idle=0.3, stall=0.3, exact=False, tag=4)


@cocotb.test()
async def hcu_reset_mid_stream(dut):
    """A reset while a token is being scanned empties the table; the next stream is
    clustered from scratch."""
    cfg = config_from_env()
    lay = layouts(cfg)
    await start_clock(dut)
    await reset(dut)
    first = hcu_stream(cfg, cfg.max_clusters, seed=seed_from_env() + 5, redundancy=0.3)
    src = StreamSource(dut, "tokens", lay.token)
    sink = StreamSink(dut, "assign", lay.assign)
    sink.start()
    await src.send(
        [{"token_id": i, "signature": int(s), "clear": 0} for i, s in enumerate(first.sigs)]
    )
    await FallingEdge(dut.clk)  # the last token is now being scanned
    await reset(dut, cycles=1)
    sink.stop()
    await ReadOnly()
    assert int(dut.occupancy.value) == 0 and int(dut.assign__valid.value) == 0
    second = hcu_stream(cfg, 3 * cfg.max_clusters, seed=seed_from_env() + 6)
    await run_stream(dut, second, idle=0.2, stall=0.2, exact=False, tag=5)


@cocotb.test()
async def hcu_early_exit_exact_cycles(dut):
    """Exact copies of table clusters: the scan of a batch stops at the row of the last
    distance-0 cluster found; results and every handshake cycle as the formula."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    full = -(-cfg.max_clusters // cfg.hcu_lanes)
    # Not every SEED gives a batch that exits early on a full table (with 8-token batches
    # about 3 in 10 do not): draw again, deterministically; attempt 0 is the old stimulus.
    for attempt in range(32):
        rng = make_rng(6, attempt)
        founders = hcu_stream(
            cfg,
            4 * cfg.max_clusters,
            seed=seed_from_env() + 7 + 1000 * attempt,
            redundancy=0.0,
            sources=16 * cfg.max_clusters,
        )
        table = hcu_expected(cfg, founders)
        sigs = founders.sigs[np.flatnonzero(table.event == ClusterEvent.CREATED)]
        probes = sigs[rng.integers(0, sigs.size, 6 * cfg.hcu_batch + 3)]
        probes[cfg.hcu_batch] ^= np.uint64(1)  # no exact copy: a full scan (unless it joins)
        stream = HCUStream(
            sigs=np.concatenate([founders.sigs, probes]),
            clear=np.zeros(len(founders) + probes.size, bool),
        )
        exp = hcu_expected(cfg, stream)
        timing = hcu_timing(cfg, stream, exp)
        if any(b.rows < full for b in timing.batches if b.occupancy == cfg.max_clusters):
            break
    else:
        raise AssertionError("no stimulus with an early exit on a full table in 32 draws")
    await run_stream(dut, stream, idle=0.0, stall=0.0, exact=True, tag=6)


@cocotb.test()
async def hcu_batch_boundaries(dut):
    """Clears inside a batch window and back to back, a token count the batch size does not
    divide: exact cycles with no stalls, then the same stream with random timing."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut)
    b = cfg.hcu_batch
    base = hcu_stream(cfg, 8 * b + 3, seed=seed_from_env() + 8, redundancy=0.8, sources=6)
    clear = np.zeros(len(base), bool)
    clear[[0, 1, 2, 3, b + 3, 5 * b + 1]] = True  # 0: the second run starts afresh too
    stream = HCUStream(sigs=base.sigs, clear=clear)
    await run_stream(dut, stream, idle=0.0, stall=0.0, exact=True, tag=7)
    await run_stream(dut, stream, idle=0.3, stall=0.3, exact=False, tag=8)
