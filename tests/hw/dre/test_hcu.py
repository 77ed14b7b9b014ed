"""HashClusterUnit on the Amaranth simulator, bit-exact against golden.resv.ClusterTable."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.resv import ClusterEvent, hamming
from hw.config import preset
from hw.dre import Event, HashClusterUnit
from hw.dre.hcu import HCU_LATENCY, hcu_batch_cycles, hcu_result_latency, hcu_scan_rows
from sim.cases.dre import HCUStream, hcu_expected, hcu_stream, hcu_timing
from sim.kit.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")
CONFIGS = {
    "tiny": TINY,
    "lanes1": TINY.replace(hcu_lanes=1),
    "lanes16": TINY.replace(hcu_lanes=16),
    "partial_row": TINY.replace(resv={"max_clusters": 12}, hcu_lanes=8),
    "one_cluster": TINY.replace(resv={"max_clusters": 1}, hcu_lanes=1, topk_k=1),
    "wide_sig": TINY.replace(resv={"hash_bits": 64, "threshold": 12, "count_bits": 2}, hcu_lanes=2),
    "batch2": TINY.replace(hcu_batch=2),
    "batch4": TINY.replace(hcu_batch=4),
    "batch8": TINY.replace(hcu_batch=8),
    "batch8_lanes1": TINY.replace(hcu_batch=8, hcu_lanes=1),
    "batch4_partial_row": TINY.replace(resv={"max_clusters": 12}, hcu_lanes=8, hcu_batch=4),
    "batch8_one_cluster": TINY.replace(
        resv={"max_clusters": 1}, hcu_lanes=1, hcu_batch=8, topk_k=1
    ),
}
BATCHES = {b: TINY.replace(hcu_batch=b) for b in (1, 2, 4, 8)}


def simulate(cfg, stream: HCUStream, *, timing: str, seed: int, vcd):
    """Run ``stream`` through an HCU; returns beats, handshake cycles and the final state."""
    dut = HashClusterUnit(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    n = len(stream)
    payloads = [
        {"token_id": t % (1 << cfg.token_id_bits), "signature": int(s), "clear": int(c)}
        for t, (s, c) in enumerate(zip(stream.sigs, stream.clear, strict=True))
    ]
    out: dict = {}

    async def producer(ctx):
        rng = np.random.default_rng([seed, 1])
        out["accepted"] = await stream_put(
            ctx, dut.tokens, payloads, cycle=h.cycle, rng=rng, idle=idle
        )

    async def consumer(ctx):
        rng = np.random.default_rng([seed, 2])
        out["beats"] = await stream_get(
            ctx, dut.assign, cycle=h.cycle, count=n, rng=rng, stall=stall
        )
        await assert_idle(ctx, dut.assign, 2 * dut.batch_cycles(cfg.max_clusters))
        out["occupancy"] = ctx.get(dut.occupancy)
        out["forced"] = ctx.get(dut.forced)
        counts = []
        for c in range(out["occupancy"]):
            ctx.set(dut.count_addr, c)
            await ctx.tick()
            counts.append(ctx.get(dut.count_data))
        out["counts"] = np.array(counts, np.int64)

    run(h, [producer, consumer], vcd=vcd, traces=[h.cycle, dut.tokens, dut.assign])
    out["dut"] = dut
    return out


def check(cfg, stream: HCUStream, out, *, exact_cycles: bool) -> None:
    exp = hcu_expected(cfg, stream)
    beats = [p for p, _ in out["beats"]]
    assert len(beats) == len(stream)
    got = np.array(
        [(p.token_id, p.cluster, p.distance, p.event.value) for p in beats], np.int64
    ).reshape(-1, 4)
    tids = np.arange(len(stream)) % (1 << cfg.token_id_bits)
    np.testing.assert_array_equal(got[:, 0], tids, err_msg="token ids (order/loss/duplication)")
    np.testing.assert_array_equal(got[:, 1], exp.cluster, err_msg="cluster ids")
    np.testing.assert_array_equal(got[:, 2], exp.distance, err_msg="distances")
    np.testing.assert_array_equal(got[:, 3], exp.event, err_msg="events")
    assert out["occupancy"] == exp.occupancy
    assert out["forced"] == exp.forced
    np.testing.assert_array_equal(out["counts"], exp.counts, err_msg="cluster counts")

    # Cycle behaviour with no stalls: the batches, rows scanned (early exit) and decisions
    # of the module docstring, to the cycle.
    acc = np.array(out["accepted"])
    done = np.array([t for _, t in out["beats"]])
    if exact_cycles:
        timing = hcu_timing(cfg, stream, exp)
        np.testing.assert_array_equal(acc - acc[0], timing.accepted, err_msg="acceptances")
        np.testing.assert_array_equal(done - acc[0], timing.done, err_msg="result handshakes")
    else:
        assert (done - acc >= HCU_LATENCY + 1).all()


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("case", ["redundant", "random"])
@pytest.mark.parametrize("batch", list(BATCHES))
def test_hcu_tiny(batch, case, timing, tmp_path):
    cfg = BATCHES[batch]
    if case == "redundant":  # temporal redundancy, three contexts
        stream = hcu_stream(cfg, 160, seed=11, redundancy=0.85, sources=6, contexts=3)
    else:  # new content every token: the table fills and tokens are force-joined
        stream = hcu_stream(cfg, 60, seed=12, redundancy=0.0, sources=40)
    out = simulate(cfg, stream, timing=timing, seed=3, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=timing == "none")
    if case == "random":
        assert hcu_expected(cfg, stream).forced > 0  # the case does reach a full table


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "tiny"])
@pytest.mark.parametrize("timing", ["none", "random"])
def test_hcu_configs(name, timing, tmp_path):
    cfg = CONFIGS[name]
    stream = hcu_stream(cfg, 90, seed=21, redundancy=0.7, sources=10, contexts=2)
    out = simulate(cfg, stream, timing=timing, seed=5, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=timing == "none")


def _far_apart(cfg, n, weight, seed):
    """``n`` signatures of ``weight`` set bits, pairwise more than T apart."""
    rng = np.random.default_rng(seed)
    hb, t = cfg.resv.hash_bits, cfg.resv.threshold
    kept: list[int] = []
    while len(kept) < n:
        bits = rng.choice(hb, weight, replace=False)
        s = int(sum(1 << int(b) for b in bits))
        if all(int(hamming(s, k)) > t for k in kept):
            kept.append(s)
    return kept


def test_hcu_ties_lowest_index(tmp_path):
    cfg = TINY  # 4 lanes: clusters 1 and 4 sit in different rows, 0 and 1 in one row
    founders = [0x0003, 0x000C, 0x0030, 0x00C0, 0x0300]
    probes = [0x0000, 0x0104, 0x0005, 0x0204]
    sigs = np.array(founders + probes, np.uint64)
    stream = HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool))
    exp = hcu_expected(cfg, stream)
    # The probes are equidistant (2 <= T) from several clusters: lowest index wins.
    assert exp.cluster[5:].tolist() == [0, 1, 0, 1]
    assert (exp.distance[5:] == 2).all()
    out = simulate(cfg, stream, timing="random", seed=7, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=False)


def test_hcu_full_table_all_distances_equal(tmp_path):
    cfg = TINY
    founders = _far_apart(cfg, cfg.max_clusters, 4, seed=3)
    # The empty signature is 4 > T away from every cluster of the full table: forced to 0.
    probes = [0] * 3 + [founders[5] ^ 1]
    sigs = np.array(founders + probes, np.uint64)
    stream = HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool))
    exp = hcu_expected(cfg, stream)
    n = cfg.max_clusters
    assert exp.event[n : n + 3].tolist() == [ClusterEvent.FORCED] * 3
    assert exp.cluster[n : n + 3].tolist() == [0, 0, 0]
    assert exp.event[-1] == ClusterEvent.JOINED and exp.cluster[-1] == 5
    out = simulate(cfg, stream, timing="none", seed=8, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=True)


@pytest.mark.parametrize("batch", [1, 4, 8])
def test_hcu_count_saturates(batch, tmp_path):
    # Batches: back-to-back joins of one cluster go through the count forwarding.
    cfg = BATCHES[batch].replace(resv={"count_bits": 2})  # counts saturate at 3
    sigs = np.array([0x1234] * 6 + [0x1235] * 2 + [0xF00F], np.uint64)
    stream = HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool))
    exp = hcu_expected(cfg, stream)
    assert exp.counts.tolist() == [3, 1]
    out = simulate(cfg, stream, timing="slow_sink", seed=9, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=False)


def test_hcu_clear_on_first_and_repeated(tmp_path):
    cfg = TINY
    stream = hcu_stream(cfg, 40, seed=31, redundancy=0.9, sources=4)
    clear = np.zeros(40, bool)
    clear[[0, 1, 2, 20, 39]] = True  # clears on an empty table and back to back
    stream = HCUStream(sigs=stream.sigs, clear=clear)
    out = simulate(cfg, stream, timing="random", seed=10, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=False)


@pytest.mark.parametrize("batch", [1, 4, 8])
def test_hcu_reset_mid_stream(batch, tmp_path):
    """A reset while a batch is being scanned drops it; the unit restarts empty."""
    cfg = BATCHES[batch]
    dut = HashClusterUnit(cfg)
    h = Harness(dut)
    before = hcu_stream(cfg, 30, seed=41, redundancy=0.5, sources=12)
    after = hcu_stream(cfg, 30, seed=42, redundancy=0.8, sources=5)
    got: dict = {}

    async def bench(ctx):
        # Fill the table, then reset while the next token is mid-scan.
        for t, s in enumerate(before.sigs):
            await stream_put(
                ctx, dut.tokens, [{"token_id": t, "signature": int(s), "clear": 0}], cycle=h.cycle
            )
            await stream_get(ctx, dut.assign, cycle=h.cycle, count=1)
        assert ctx.get(dut.occupancy) > 4  # more than one row to scan
        doomed = [{"token_id": 99 + i, "signature": i, "clear": 0} for i in range(batch)]
        await stream_put(ctx, dut.tokens, doomed, cycle=h.cycle)
        await ctx.tick()
        assert ctx.get(dut.tokens.ready) == 0  # the batch is being scanned
        ctx.set(h.rst, 1)
        await ctx.tick()
        ctx.set(h.rst, 0)
        assert ctx.get(dut.occupancy) == 0 and ctx.get(dut.assign.valid) == 0
        payloads = [
            {"token_id": t, "signature": int(s), "clear": 0} for t, s in enumerate(after.sigs)
        ]

        # Sequential put/get per token keeps this a single bench.
        beats = []
        for p in payloads:
            await stream_put(ctx, dut.tokens, [p], cycle=h.cycle)
            beats += await stream_get(ctx, dut.assign, cycle=h.cycle, count=1)
        got["beats"] = beats
        got["occupancy"] = ctx.get(dut.occupancy)

    run(h, [bench], vcd=tmp_path / "hcu_reset.vcd", traces=[h.cycle, h.rst, dut.tokens])
    exp = hcu_expected(cfg, after)
    b = [p for p, _ in got["beats"]]
    assert [p.cluster for p in b] == exp.cluster.tolist()
    assert [p.event.value for p in b] == exp.event.tolist()
    assert [p.distance for p in b] == exp.distance.tolist()
    assert got["occupancy"] == exp.occupancy


def _batches(cfg, stream, exp):
    return hcu_timing(cfg, stream, exp).batches


@pytest.mark.parametrize("timing", ["none", "random"])
@pytest.mark.parametrize("batch", [2, 4, 8])
def test_hcu_batch_intra(batch, timing, tmp_path):
    """Bursts of noisy copies of new signatures: tokens join (or tie on) clusters founded
    earlier in their own batch; the table fills mid-batch and later tokens are forced."""
    cfg = BATCHES[batch]
    rng = np.random.default_rng(batch)
    sigs = []
    for g in range(16):  # one batch of copies of one or two new signatures each
        base = [int(x) for x in rng.integers(0, 1 << 16, 1 + g % 2)]
        for _ in range(batch):
            flips = rng.choice(16, int(rng.integers(0, 4)), replace=False)
            pick = base[int(rng.integers(0, len(base)))]
            sigs.append(pick ^ int(sum(1 << int(f) for f in flips)))
    sigs = np.array(sigs, np.uint64)
    stream = HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool))
    exp = hcu_expected(cfg, stream)
    # The case exercises the intra-batch comparator (joins of a cluster founded in the
    # same batch) and a table that fills mid-batch.
    intra = 0
    for b in _batches(cfg, stream, exp):
        ev = exp.event[b.first : b.first + b.tokens]
        cl = exp.cluster[b.first : b.first + b.tokens]
        intra += int(((ev != ClusterEvent.CREATED) & (cl >= b.occupancy)).sum())
    assert intra >= 5 and exp.forced > 0
    out = simulate(cfg, stream, timing=timing, seed=batch, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=timing == "none")


@pytest.mark.parametrize("batch", [1, 2, 4, 8])
def test_hcu_batch_ties(batch, tmp_path):
    """Equidistant candidates across the batch boundary: the table beats a cluster founded
    in the batch, an earlier founder beats a later one."""
    cfg = BATCHES[batch]
    sigs = [0x0003, 0x0300, 0x3000, 0x0030]  # table: clusters 0..3, pairwise 4 > T apart
    sigs += [0x000C, 0x0005, 0x0009]  # founds 4; both probes 2 from 0 and from 4 -> 0
    sigs += [0xC000, 0x0C00, 0xA000, 0x6000]  # founds 5 (2 from 2) and 6; 2 from 2 and 5
    sigs += [0x0003, 0x000C, 0x0005, 0x000A]  # new context: founds 0, 1; probes tie -> 0
    clear = np.zeros(len(sigs), bool)
    clear[11] = True
    stream = HCUStream(sigs=np.array(sigs, np.uint64), clear=clear)
    exp = hcu_expected(cfg, stream)
    assert exp.cluster.tolist() == [0, 1, 2, 3, 4, 0, 0, 5, 6, 2, 2, 0, 1, 0, 0]
    assert exp.distance[[5, 6, 9, 10, 13, 14]].tolist() == [2] * 6
    for timing in ("none", "random"):
        out = simulate(cfg, stream, timing=timing, seed=4, vcd=tmp_path / "hcu.vcd")
        check(cfg, stream, out, exact_cycles=timing == "none")


@pytest.mark.parametrize("batch", [4, 8])
def test_hcu_forced_to_batch_founder(batch, tmp_path):
    """The table fills in the middle of a batch; a later token of that batch, more than T
    from everything, is forced to a cluster founded earlier in the same batch."""
    cfg = BATCHES[batch]
    founders = _far_apart(cfg, cfg.max_clusters, 4, seed=3)
    rng = np.random.default_rng(11)
    while True:  # 4 bits from founder 14, farther from every other founder
        probe = founders[14] ^ int(sum(1 << int(b) for b in rng.choice(16, 4, replace=False)))
        if all(int(hamming(probe, f)) > 4 for i, f in enumerate(founders) if i != 14):
            break
    prefix = founders[:14] + [founders[0]] * ((-14) % batch)  # batch-aligned
    tail = [founders[14], founders[15], probe, founders[14]]
    sigs = np.array(prefix + tail + [founders[0]] * (batch - 4), np.uint64)
    stream = HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool))
    exp = hcu_expected(cfg, stream)
    n = len(prefix)
    assert [b.first for b in _batches(cfg, stream, exp)][-1] == n  # the tail is one batch
    assert exp.event[n : n + 4].tolist() == [
        ClusterEvent.CREATED,
        ClusterEvent.CREATED,
        ClusterEvent.FORCED,
        ClusterEvent.JOINED,
    ]
    assert exp.cluster[n + 2] == exp.cluster[n + 3] == 14 and exp.distance[n + 2] == 4
    for timing in ("none", "random"):
        out = simulate(cfg, stream, timing=timing, seed=12, vcd=tmp_path / "hcu.vcd")
        check(cfg, stream, out, exact_cycles=timing == "none")


@pytest.mark.parametrize("batch", [1, 2, 4, 8])
def test_hcu_early_exit(batch, tmp_path):
    """Exact copies of table clusters stop the scan at the row of the last one found:
    results unchanged, cycles as ``hcu_scan_rows``, fewer rows than a full scan."""
    cfg = TINY.replace(hcu_lanes=1, hcu_batch=batch)  # 16 rows: one cluster per row
    founders = _far_apart(cfg, cfg.max_clusters, 4, seed=5)
    rng = np.random.default_rng(6)
    probes = [founders[int(i)] for i in rng.integers(0, 16, 6 * batch)]
    probes[batch + 1] ^= 1  # one token at distance 1: its batch scans the whole table
    sigs = np.array(founders + probes + [founders[2]] * batch, np.uint64)
    stream = HCUStream(sigs=sigs, clear=np.zeros(sigs.size, bool))
    exp = hcu_expected(cfg, stream)
    rows = [b.rows for b in _batches(cfg, stream, exp) if b.occupancy == cfg.max_clusters]
    assert min(rows) == 3 and max(rows) == cfg.max_clusters  # the last batch: row 2 only
    assert sum(rows) < len(rows) * cfg.max_clusters
    out = simulate(cfg, stream, timing="none", seed=7, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=True)


@pytest.mark.parametrize("batch", [2, 4, 8])
def test_hcu_batch_boundaries(batch, tmp_path):
    """Token counts that B does not divide, clears inside a batch window and back to back:
    batches close early, and the exact cycles follow."""
    cfg = BATCHES[batch]
    stream = hcu_stream(cfg, 8 * batch + 3, seed=51, redundancy=0.8, sources=6)
    clear = np.zeros(len(stream), bool)
    clear[[1, 2, 3, batch + 3, 5 * batch + 1]] = True
    stream = HCUStream(sigs=stream.sigs, clear=clear)
    exp = hcu_expected(cfg, stream)
    sizes = [b.tokens for b in _batches(cfg, stream, exp)]
    assert sum(sizes) == len(stream) and min(sizes) == 1 and max(sizes) == batch
    for timing in ("none", "random", "slow_sink"):
        out = simulate(cfg, stream, timing=timing, seed=9, vcd=tmp_path / "hcu.vcd")
        check(cfg, stream, out, exact_cycles=timing == "none")


def test_hcu_timing_batches(tmp_path):
    """The no-stall model, worked by hand, and the hardware on the same stream."""
    cfg = BATCHES[4]
    sigs = np.array([0x0003, 0x0300, 0x3000, 0x0030, 0x000C, 0x0003, 0xC000], np.uint64)
    clear = np.zeros(7, bool)
    clear[6] = True
    stream = HCUStream(sigs=sigs, clear=clear)
    exp = hcu_expected(cfg, stream)
    t = hcu_timing(cfg, stream, exp)
    # [0..3] from empty (0+1+2+3 compares), [4, 5] at 4 clusters (4+5), [6] cleared.
    assert [tuple(b) for b in t.batches] == [(0, 4, 0, 0, 6), (4, 2, 4, 1, 9), (6, 1, 0, 0, 0)]
    assert t.compares == 15
    # Full batch, no rows: 2*4 + 1 cycles, results 0 + 4 + 2 after acceptance; partial
    # batch of a founder and an exact copy of cluster 0 (one row): 1 + 2*2 + 2, 1 + 2 + 3;
    # partial batch after the clear: results 0 + 1 + 3 after acceptance.
    assert t.accepted.tolist() == [0, 1, 2, 3, 9, 10, 16]
    assert t.done.tolist() == [6, 7, 8, 9, 15, 16, 20]
    out = simulate(cfg, stream, timing="none", seed=1, vcd=tmp_path / "hcu.vcd")
    check(cfg, stream, out, exact_cycles=True)


def test_event_values_match_golden():
    # PAGED belongs to the golden-only page_fallback policy, which HWConfig refuses.
    golden = {e.name: int(e) for e in ClusterEvent if e != ClusterEvent.PAGED}
    assert {e.name: e.value for e in Event} == golden


def test_cycle_formulas():
    cfg = preset("paper")  # 16 lanes, 4096 clusters
    dut = HashClusterUnit(cfg)
    Fragment.get(dut, None)  # elaborates (and so uses) the component
    assert dut.latency == HCU_LATENCY == 2
    # Batch of one: R + 3 cycles per token, the old R + 2 plus the compare stage.
    assert dut.batch_cycles(4096) == 4096 // 16 + 3 == dut.result_latency(4096)
    assert dut.batch_cycles(0) == 3
    assert dut.batch_cycles(17) == 2 + 3
    # Early exit: the row of the first distance-0 cluster, plus one.
    assert hcu_scan_rows(cfg, 4096, [35]) == 3
    assert dut.batch_cycles(4096, [35]) == 3 + 3
    with pytest.raises(ValueError, match=r"^occupancy must be in 0\.\.4096, not 4097$"):
        dut.batch_cycles(4097)
    with pytest.raises(ValueError, match=r"^zero_clusters must be in 0\.\.9, not \[10\]$"):
        hcu_scan_rows(cfg, 10, [10])
    with pytest.raises(ValueError, match=r"^zero_clusters must hold 1\.\.1 entries, not 2$"):
        hcu_scan_rows(cfg, 10, [1, 2])
    # Batches of 8: the scan is shared; it exits early only when every token found a 0.
    b8 = cfg.replace(hcu_batch=8)
    assert hcu_batch_cycles(b8, 4096, [None] * 8) == 256 + 2 * 8 + 1
    assert hcu_result_latency(b8, 4096, [None] * 8) == 256 + 8 + 2
    assert hcu_scan_rows(b8, 4096, [3, 200, 17, 0, 5, 6, 7, 8]) == 200 // 16 + 1
    assert hcu_scan_rows(b8, 4096, [3, None, 17, 0, 5, 6, 7, 8]) == 256
    # A partial batch (closed by a missing token or a clear) costs one more cycle.
    assert hcu_batch_cycles(b8, 4096, [None] * 3) == 256 + 2 * 3 + 2
    assert hcu_result_latency(b8, 4096, [None] * 3) == 256 + 3 + 3


def test_hcu_rejects_non_config():
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 3$"):
        HashClusterUnit(3)


def test_a_loaded_table_drops_the_forwarded_count():
    """The HCU forwards a count to the next update of the same cluster (whose write the
    read cannot see yet). After another context's table is loaded (``bulk``, as a
    ``SWITCH_CTX`` does), a join to that cluster must read the loaded count, not the count
    forwarded from the other context: 5 + 1, not 2 + 1."""
    cfg = TINY
    dut = HashClusterUnit(cfg, bulk=True)
    h = Harness(dut)
    sig = 0b1011
    out: dict = {}

    def token(t, clear=0):
        return {"token_id": t, "signature": sig, "clear": clear}

    async def bench(ctx):
        # context A: cluster 0 created, then joined (count 2, forwarded)
        await stream_put(ctx, dut.tokens, [token(0, 1), token(1)], cycle=h.cycle)
        await stream_get(ctx, dut.assign, cycle=h.cycle, count=2)
        await ctx.tick().repeat(4)
        # context B: its table, cluster 0 with the same signature and a count of 5
        hb, lanes = cfg.resv.hash_bits, cfg.hcu_lanes
        row = sig | (5 << (lanes * hb))
        b = dut.bulk
        for s, v in ((b.active, 1), (b.waddr, 0), (b.wdata, row), (b.we, 1), (dut.load, 1)):
            ctx.set(s, v)
        ctx.set(dut.load_size, 1)
        await ctx.tick()
        for s in (b.active, b.we, dut.load):
            ctx.set(s, 0)
        await stream_put(ctx, dut.tokens, [token(2)], cycle=h.cycle)
        await stream_get(ctx, dut.assign, cycle=h.cycle, count=1)
        await ctx.tick().repeat(4)
        ctx.set(dut.count_addr, 0)
        await ctx.tick()
        out["count"] = ctx.get(dut.count_data)

    run(h, [bench])
    assert out["count"] == 6
