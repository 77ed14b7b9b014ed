"""HashClusterUnit on the Amaranth simulator, bit-exact against golden.resv.ClusterTable."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden.resv import ClusterEvent, hamming
from hw.config import preset
from hw.dre import Event, HashClusterUnit
from sim.dre_data import HCUStream, hcu_expected, hcu_stream
from sim.streams import TIMINGS, Harness, assert_idle, run, stream_get, stream_put

TINY = preset("tiny")
CONFIGS = {
    "tiny": TINY,
    "lanes1": TINY.replace(hcu_lanes=1),
    "lanes16": TINY.replace(hcu_lanes=16),
    "partial_row": TINY.replace(resv={"max_clusters": 12}, hcu_lanes=8),
    "one_cluster": TINY.replace(resv={"max_clusters": 1}, hcu_lanes=1, topk_k=1),
    "wide_sig": TINY.replace(resv={"hash_bits": 64, "threshold": 12, "count_bits": 2}, hcu_lanes=2),
}


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
        await assert_idle(ctx, dut.assign, 2 * dut.token_cycles(cfg.max_clusters))
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

    # Cycle behaviour: a token takes ceil(occupancy / lanes) + latency cycles, no faster.
    dut = out["dut"]
    occ, cost = 0, []
    for t in range(len(stream)):
        occ = 0 if stream.clear[t] else occ
        cost.append(dut.token_cycles(occ))
        occ += int(exp.event[t] == ClusterEvent.CREATED)
    acc = np.array(out["accepted"])
    done = np.array([t for _, t in out["beats"]])
    cost = np.array(cost)
    if exact_cycles:
        np.testing.assert_array_equal(np.diff(acc), cost[:-1], err_msg="token-to-token cycles")
        np.testing.assert_array_equal(done - acc, cost, err_msg="token latency")
    else:
        assert (np.diff(acc) >= cost[:-1]).all()
        assert (done - acc >= cost).all()


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("case", ["redundant", "random"])
def test_hcu_tiny(case, timing, tmp_path):
    cfg = TINY
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


def test_hcu_count_saturates(tmp_path):
    cfg = TINY.replace(resv={"count_bits": 2})  # counts saturate at 3
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


def test_hcu_reset_mid_stream(tmp_path):
    """A reset while a token is being scanned drops it; the unit restarts empty."""
    cfg = TINY
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
        await stream_put(
            ctx, dut.tokens, [{"token_id": 99, "signature": 0, "clear": 0}], cycle=h.cycle
        )
        await ctx.tick()
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


def test_event_values_match_golden():
    # PAGED belongs to the golden-only page_fallback policy, which HWConfig refuses.
    golden = {e.name: int(e) for e in ClusterEvent if e != ClusterEvent.PAGED}
    assert {e.name: e.value for e in Event} == golden


def test_token_cycles_formula():
    dut = HashClusterUnit(preset("paper"))
    Fragment.get(dut, None)  # elaborates (and so uses) the component
    assert dut.token_cycles(0) == dut.latency
    assert dut.token_cycles(4096) == 4096 // 16 + dut.latency
    assert dut.token_cycles(17) == 2 + dut.latency
    with pytest.raises(ValueError, match=r"^occupancy must be in 0\.\.4096, not 4097$"):
        dut.token_cycles(4097)


def test_hcu_rejects_non_config():
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 3$"):
        HashClusterUnit(3)
