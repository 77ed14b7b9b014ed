"""KVMemoryUnit on the Amaranth simulator: allocation (slot of every token) and translation
(AR bursts, returned beats, summary) against golden.kvmu, with a randomly stalling AXI read
responder (``sim.kit.axi_ram.AxiRamModel``) and random valid/ready timing on every stream."""

from __future__ import annotations

import numpy as np
import pytest

from hw.config import preset
from hw.kvmu import KVMemoryUnit
from hw.kvmu.kvmu import ALLOC_CYCLES
from sim.cases.kvmu import beat_value, beat_word, decode_beat, memory_image, selection, workload
from sim.kit.axi_ram import AxiRamModel
from sim.kit.streams import TIMINGS, Harness, run, stream_get, stream_put

TINY = preset("tiny")
CONFIGS = {
    "tiny": TINY,
    # 512-byte tokens in 8 KB chunks, bursts of 12 beats: a long run crosses 4 KB at an
    # offset that is not a multiple of the burst length.
    "split4k": TINY.replace(resv={"head_dim": 128}, chunk_tokens=16, kv_chunks=32, max_burst=12),
    # One beat per token, single-token chunks, a chunk pool that runs out.
    "wide_bus": TINY.replace(chunk_tokens=1, kv_chunks=16, axi_data_bits=512, kv_base=4096),
}


def simulate(cfg, wl, sel, *, timing: str, seed: int, vcd, mem_stall: float = 0.3):
    dut = KVMemoryUnit(cfg)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    L = wl.layout
    bb = L.bus_bytes
    image = memory_image(wl)
    out: dict = {}

    async def assign_src(ctx):
        rng = np.random.default_rng([seed, 1])
        await stream_put(ctx, dut.assign, wl.assigns, cycle=h.cycle, rng=rng, idle=idle)

    async def slot_sink(ctx):
        rng = np.random.default_rng([seed, 2])
        out["slots"] = await stream_get(
            ctx, dut.slot, cycle=h.cycle, count=len(wl.assigns), rng=rng, stall=stall
        )

    async def select_src(ctx):
        while "slots" not in out:
            await ctx.tick()
        rng = np.random.default_rng([seed, 3])
        beats = [{"cluster": c, "last": int(i == len(sel) - 1)} for i, c in enumerate(sel)]
        await stream_put(ctx, dut.selected, beats, cycle=h.cycle, rng=rng, idle=idle)

    async def kv_sink(ctx):
        rng = np.random.default_rng([seed, 4])
        n = sum(b.beats for b in wl.mem.bursts(sel))
        out["kv"] = await stream_get(ctx, dut.kv, cycle=h.cycle, count=n, rng=rng, stall=stall)
        out["summary"] = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)

    ram = AxiRamModel(dut.m_axi, image, base=L.base, bus_bytes=bb, seed=seed, stall=mem_stall)
    run(
        h,
        [assign_src, slot_sink, select_src, kv_sink],
        background=ram.read_benches(),
        vcd=vcd,
    )
    out["ar"] = ram.ar_log
    return out


def check(cfg, wl, sel, out):
    L = wl.layout
    got = [(s.token_id, s.chunk, s.slot, s.addr, s.full) for s, _ in (p for p in out["slots"])]
    exp = [(s.token_id, s.chunk, s.slot, s.addr, int(s.full)) for s in wl.slots]
    assert got == exp
    assert out["ar"] == [(b.addr, b.beats) for b in wl.mem.bursts(sel)]
    for addr, beats in out["ar"]:
        assert addr // 4096 == (addr + beats * L.bus_bytes - 1) // 4096
    # Every beat decodes to (token, beat) in golden fetch order, tagged with its cluster.
    exp_beats = [
        (t, j, cl) for cl in sel for t in wl.mem.members(cl) for j in range(L.beats_per_token)
    ]
    got_beats = []
    for p, _ in out["kv"]:
        tb = decode_beat(p.data, L.bus_bytes)
        assert tb is not None, f"beat {p.data:#x} belongs to no stored token"
        got_beats.append((*tb, p.cluster))
    assert got_beats == exp_beats
    ((summary, _),) = out["summary"]
    n_bursts = len(out["ar"])
    assert (summary.clusters, summary.bursts, summary.beats, summary.error) == (
        len(sel),
        n_bursts,
        len(exp_beats),
        0,
    )


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_alloc_and_fetch(config, timing, tmp_path):
    cfg = CONFIGS[config]
    n = 60 if config != "wide_bus" else 24
    wl = workload(cfg, n, seed=7)
    sel = selection(wl, seed=8)
    if config == "wide_bus":
        assert any(s.full for s in wl.slots), "the pool must run out in this case"
    out = simulate(cfg, wl, sel, timing=timing, seed=9, vcd=tmp_path / "kvmu.vcd")
    check(cfg, wl, sel, out)
    if config == "split4k":
        bb = cfg.axi_data_bits // 8
        assert any(
            b.beats < cfg.max_burst and (b.addr + b.beats * bb) % 4096 == 0
            for b in wl.mem.bursts(sel)
        ), "no burst was cut at a 4 KB boundary"


def test_alloc_throughput(tmp_path):
    """Without stalls the unit takes one token every ALLOC_CYCLES cycles."""
    wl = workload(TINY, 20, seed=3)
    out = simulate(TINY, wl, selection(wl, seed=4), timing="none", seed=5, vcd=tmp_path / "k.vcd")
    times = [t for _, t in out["slots"]]
    assert np.diff(times).tolist() == [ALLOC_CYCLES] * (len(times) - 1)


def test_memory_words():
    assert decode_beat(beat_value(beat_word(517, 3), 8), 8) == (517, 3)
    assert decode_beat(beat_value(0xDEADBEEF, 8), 8) is None


def test_bad_outstanding():
    with pytest.raises(ValueError, match=r"^outstanding must be in 1\.\.256, not 0$"):
        KVMemoryUnit(TINY, outstanding=0)
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 3$"):
        KVMemoryUnit(3)


@pytest.mark.parametrize(
    ("change", "exc", "msg"),
    [
        (
            {"chunk_tokens": 3},
            ValueError,
            r"^chunk_tokens must be a power of two in 1\.\.65536, not 3$",
        ),
        ({"max_burst": 257}, ValueError, r"^max_burst must be in 1\.\.256, not 257$"),
        ({"kv_chunks": 1.5}, TypeError, r"^kv_chunks must be an integer, not 1\.5$"),
        (
            {"axi_data_bits": 1024},
            ValueError,
            r"^axi_data_bits must divide the token's KV bits \(512\), not 1024$",
        ),
        (
            {"kv_base": 100},
            ValueError,
            r"^kv_base must be a multiple of 4096 with the KV area inside 32-bit addresses, "
            r"not 100$",
        ),
    ],
)
def test_config_errors(change, exc, msg):
    with pytest.raises(exc, match=msg):
        TINY.replace(**change)


def test_created_cluster_with_the_pool_full_owns_no_chunk():
    """A cluster created while the chunk pool is exhausted owns no chunk even if its table
    row held another context's chunk list (loaded through the table port, as a SWITCH_CTX
    leaves it): its token answers ``full``, and selecting it fetches nothing."""
    cfg = TINY.replace(kv_chunks=8)
    dut = KVMemoryUnit(cfg, bulk=True)
    h = Harness(dut)
    out: dict = {}

    async def bench(ctx):
        await ctx.tick().repeat(cfg.max_clusters + 2)  # the sweep after reset
        stale = 5 | (5 << cfg.kv_chunk_bits) | (2 << (2 * cfg.kv_chunk_bits))  # chunk 5, 2 used
        port = dut.clusters_bulk
        ctx.set(port.active, 1)
        ctx.set(port.waddr, 3)
        ctx.set(port.wdata, stale)
        ctx.set(port.we, 1)
        ctx.set(dut.load, 1)
        ctx.set(dut.load_chunks, cfg.kv_chunks)  # the pool is exhausted
        await ctx.tick()
        for s in (port.active, port.we, dut.load):
            ctx.set(s, 0)
        await stream_put(
            ctx, dut.assign, [{"token_id": 7, "cluster": 3, "event": 1}], cycle=h.cycle
        )
        ((slot, _),) = await stream_get(ctx, dut.slot, cycle=h.cycle, count=1)
        out["full"] = int(slot.full)
        await stream_put(ctx, dut.selected, [{"cluster": 3, "last": 1}], cycle=h.cycle)
        ((summary, _),) = await stream_get(ctx, dut.summary, cycle=h.cycle, count=1)
        out["bursts"] = int(summary.bursts)

    run(h, [bench])
    assert out == {"full": 1, "bursts": 0}
