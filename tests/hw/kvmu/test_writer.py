"""KVWriter on the Amaranth simulator against golden.kvmu.write_bursts, with a Python AXI4
write slave (random awready/wready and B delays, W accepted before its AW) writing into a
bytearray; plus golden.kvmu.write_bursts against an independent byte-range reference."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib.wiring import Flow
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.kvmu import AXI_BOUNDARY, KVLayout, write_bursts
from hw.config import preset
from hw.kvmu import KVWriter, axi4_signature, axi4_write_signature
from hw.kvmu.writer import CMD_TO_AW, CMD_TO_W
from sim.cases.kvmu import workload
from sim.kit.streams import TIMINGS, Harness, run, stream_get, stream_put

TINY = preset("tiny")
CONFIGS = {
    # 8 beats per token, one burst each.
    "tiny": TINY,
    # 3 + 3 + 2 beats per token.
    "short_bursts": TINY.replace(max_burst=3),
    # 384-byte (48-beat) tokens in bursts of 12: a token crosses 4 KB 32 beats in, which is
    # not a multiple of the burst length.
    "split4k": TINY.replace(resv={"head_dim": 96}, chunk_tokens=2, kv_chunks=64, max_burst=12),
}


# ---- golden -----------------------------------------------------------------------------


def test_write_bursts_examples():
    L = KVLayout(chunk_tokens=8, token_bytes=1024, n_chunks=4, bus_bytes=16, max_burst=256)
    assert [(b.addr, b.beats, b.cluster) for b in write_bursts(L, 3584)] == [
        (3584, 32, -1),
        (4096, 32, -1),
    ]
    short = KVLayout(chunk_tokens=8, token_bytes=64, n_chunks=4, bus_bytes=8, max_burst=3)
    assert [(b.addr, b.beats) for b in write_bursts(short, 64)] == [(64, 3), (88, 3), (112, 2)]
    assert write_bursts(short, np.int64(0))[0].addr == 0


def test_write_bursts_errors():
    L = KVLayout.from_hw(TINY)
    with pytest.raises(ValueError, match=r"^addr must be a non-negative multiple of bus_bytes"):
        write_bursts(L, 4)
    with pytest.raises(ValueError, match=r"^addr must be .*, not -8$"):
        write_bursts(L, -8)
    with pytest.raises(TypeError, match=r"^addr must be an integer, not 1\.0$"):
        write_bursts(L, 1.0)
    with pytest.raises(TypeError, match=r"^layout must be a KVLayout, not 3$"):
        write_bursts(3, 0)


@settings(max_examples=200, deadline=None)
@given(
    bus_log=st.integers(0, 7),
    beats=st.integers(1, 600),
    max_burst=st.integers(1, 256),
    beat_addr=st.integers(0, 1 << 16),
)
def test_write_bursts_property(bus_log, beats, max_burst, beat_addr):
    bb = 1 << bus_log
    L = KVLayout(chunk_tokens=1, token_bytes=beats * bb, n_chunks=1, bus_bytes=bb,
                 max_burst=max_burst)  # fmt: skip
    addr = beat_addr * bb
    bursts = write_bursts(L, addr)
    # Byte ranges tile [addr, addr + token_bytes) in order.
    covered = [x for b in bursts for x in range(b.addr, b.addr + b.beats * bb)]
    assert covered == list(range(addr, addr + L.token_bytes))
    for i, b in enumerate(bursts):
        end = b.addr + b.beats * bb
        assert 1 <= b.beats <= max_burst
        assert b.addr // AXI_BOUNDARY == (end - 1) // AXI_BOUNDARY
        # Greedy: every burst but the last is cut by max_burst or by a 4 KB boundary.
        if i < len(bursts) - 1:
            assert b.beats == max_burst or end % AXI_BOUNDARY == 0


def test_signatures():
    def width(m):
        return Shape.cast(m.shape).width

    w = axi4_write_signature(32, 64).members
    assert (width(w["wstrb"]), width(w["awlen"]), width(w["bresp"])) == (8, 8, 2)
    assert w["awvalid"].flow == Flow.Out and w["bvalid"].flow == Flow.In
    full = axi4_signature(40, 128).members
    assert {"araddr", "rdata", "awaddr", "wdata", "bresp"} <= set(full)
    assert width(full["awaddr"]) == width(full["araddr"]) == 40
    assert full["rready"].flow == Flow.Out and full["wready"].flow == Flow.In


# ---- hardware ---------------------------------------------------------------------------


def token_addrs(cfg, n: int, seed: int) -> list[int]:
    """Addresses of ``n`` tokens placed by golden KVMemory for a random clustering."""
    wl = workload(cfg, n, seed=seed)
    addrs = [s.addr for s in wl.slots if not s.full]
    assert len(addrs) == n
    return addrs


def simulate(
    cfg,
    addrs,
    payloads,
    *,
    timing="none",
    seed=0,
    mem_stall=0.0,
    b_delay=0.0,
    error_bursts=frozenset(),
    outstanding=4,
    vcd=None,
):
    """Run the writer; ``error_bursts`` are indices (in AW order) answered with SLVERR."""
    dut = KVWriter(cfg, outstanding=outstanding)
    h = Harness(dut)
    idle, stall = TIMINGS[timing]
    bb = cfg.axi_data_bits // 8
    axi = dut.m_axi
    mem = bytearray(cfg.kv_base + cfg.kv_chunks * cfg.chunk_tokens * cfg.kv_token_bytes)
    out: dict = {"aw": [], "w": [], "b": [], "inflight": 0, "max_inflight": 0}

    async def cmd_src(ctx):
        rng = np.random.default_rng([seed, 1])
        out["cmd"] = await stream_put(
            ctx, dut.cmd, [{"addr": a} for a in addrs], cycle=h.cycle, rng=rng, idle=idle
        )

    async def data_src(ctx):
        rng = np.random.default_rng([seed, 2])
        beats = [{"data": d} for d in payloads]
        out["data"] = await stream_put(ctx, dut.data, beats, cycle=h.cycle, rng=rng, idle=idle)

    async def done_sink(ctx):
        rng = np.random.default_rng([seed, 3])
        out["done"] = await stream_get(
            ctx, dut.done, cycle=h.cycle, count=len(addrs), rng=rng, stall=stall
        )

    async def aw_slave(ctx):
        rng = np.random.default_rng([seed, 4])
        while True:
            ready = rng.random() >= mem_stall
            ctx.set(axi.awready, ready)
            *_, valid, aid, addr, alen, size, burst, now = await ctx.tick().sample(
                axi.awvalid, axi.awid, axi.awaddr, axi.awlen, axi.awsize, axi.awburst, h.cycle
            )
            if valid and ready:
                assert (aid, size, burst) == (0, bb.bit_length() - 1, 1)
                out["aw"].append((addr, alen + 1, now))
                out["inflight"] += 1
                out["max_inflight"] = max(out["max_inflight"], out["inflight"])

    async def w_slave(ctx):
        rng = np.random.default_rng([seed, 5])
        while True:
            ready = rng.random() >= mem_stall
            ctx.set(axi.wready, ready)
            *_, valid, wdata, strb, last, now = await ctx.tick().sample(
                axi.wvalid, axi.wdata, axi.wstrb, axi.wlast, h.cycle
            )
            if valid and ready:
                assert strb == (1 << bb) - 1
                out["w"].append((wdata, last, now))

    async def b_slave(ctx):
        rng = np.random.default_rng([seed, 6])
        k = 0  # next burst to answer
        while True:
            groups = np.flatnonzero([last for _, last, _ in out["w"]])
            if k >= len(out["aw"]) or k >= len(groups):
                await ctx.tick()
                continue
            addr, beats, _ = out["aw"][k]
            first = groups[k - 1] + 1 if k else 0
            ws = out["w"][first : groups[k] + 1]
            assert len(ws) == beats, f"burst {k}: {len(ws)} W beats for awlen+1 = {beats}"
            for j, (wdata, _, _) in enumerate(ws):
                mem[addr + j * bb : addr + (j + 1) * bb] = wdata.to_bytes(bb, "little")
            while rng.random() < b_delay:
                await ctx.tick()
            ctx.set(axi.bvalid, 1)
            ctx.set(axi.bresp, 2 if k in error_bursts else 0)
            while True:
                *_, br, now = await ctx.tick().sample(axi.bready, h.cycle)
                if br:
                    break
            ctx.set(axi.bvalid, 0)
            out["b"].append(now)
            out["inflight"] -= 1
            k += 1

    run(h, [cmd_src, data_src, done_sink], background=[aw_slave, w_slave, b_slave], vcd=vcd)
    out["mem"] = mem
    return out


def random_payloads(cfg, n_tokens, seed):
    rng = np.random.default_rng(seed)
    n = n_tokens * cfg.axi_beats_per_token
    return [int.from_bytes(rng.bytes(cfg.axi_data_bits // 8), "little") for _ in range(n)]


def check(cfg, addrs, payloads, out, *, error_bursts=frozenset()):
    L = KVLayout.from_hw(cfg)
    bb, bpt = L.bus_bytes, L.beats_per_token
    gold = [write_bursts(L, a) for a in addrs]
    flat = [b for bs in gold for b in bs]
    assert [(a, n) for a, n, _ in out["aw"]] == [(b.addr, b.beats) for b in flat]
    # wlast exactly at the end of each golden burst
    lasts = [bool(last) for _, last, _ in out["w"]]
    exp_lasts = [j == b.beats - 1 for b in flat for j in range(b.beats)]
    assert lasts == exp_lasts
    assert [d for d, _, _ in out["w"]] == payloads
    # memory byte-exact: every token's KV at its slot, nothing else written
    exp = bytearray(len(out["mem"]))
    for t, a in enumerate(addrs):
        for j in range(bpt):
            exp[a + j * bb : a + (j + 1) * bb] = payloads[t * bpt + j].to_bytes(bb, "little")
    assert out["mem"] == exp
    # one done per token, error iff one of its bursts answered SLVERR, in the cycle of its
    # last B response
    first = np.cumsum([0] + [len(bs) for bs in gold])
    exp_err = [int(any(i in error_bursts for i in range(first[t], first[t + 1]))) for t in
               range(len(addrs))]  # fmt: skip
    assert [p.error for p, _ in out["done"]] == exp_err
    assert [c for _, c in out["done"]] == [out["b"][first[t + 1] - 1] for t in range(len(addrs))]


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_write_tokens(config, timing, tmp_path):
    cfg = CONFIGS[config]
    n = 24
    addrs = token_addrs(cfg, n, seed=11)
    payloads = random_payloads(cfg, n, seed=12)
    mem_stall = 0.0 if timing == "none" else 0.3
    out = simulate(
        cfg,
        addrs,
        payloads,
        timing=timing,
        seed=13,
        mem_stall=mem_stall,
        b_delay=mem_stall,
        vcd=tmp_path / "w.vcd",
    )
    check(cfg, addrs, payloads, out)
    assert out["max_inflight"] <= 4
    if config == "split4k":
        bb = cfg.axi_data_bits // 8
        crossing = [a for a in addrs if a // 4096 != (a + cfg.kv_token_bytes - 1) // 4096]
        assert crossing, "no token crosses a 4 KB boundary"
        assert any(n < cfg.max_burst and (a + n * bb) % 4096 == 0 for a, n, _ in out["aw"])


@pytest.mark.parametrize("config", ["tiny", "short_bursts"])
def test_slverr_sets_done_error(config, tmp_path):
    cfg = CONFIGS[config]
    n = 6
    addrs = token_addrs(cfg, n, seed=21)
    payloads = random_payloads(cfg, n, seed=22)
    per = len(write_bursts(KVLayout.from_hw(cfg), addrs[0]))
    # token 1: its middle (or only) burst; token 4: its first burst
    errs = frozenset({per + per // 2, 4 * per})
    out = simulate(
        cfg,
        addrs,
        payloads,
        timing="random",
        seed=23,
        mem_stall=0.3,
        b_delay=0.3,
        error_bursts=errs,
        vcd=tmp_path / "e.vcd",
    )
    check(cfg, addrs, payloads, out, error_bursts=errs)
    assert [p.error for p, _ in out["done"]] == [0, 1, 0, 0, 1, 0]


@pytest.mark.parametrize("outstanding", [1, 3])
def test_outstanding_bound(outstanding, tmp_path):
    """With slow B responses exactly ``outstanding`` bursts are in flight at the peak."""
    cfg = CONFIGS["short_bursts"]
    n = 8
    addrs = token_addrs(cfg, n, seed=31)
    payloads = random_payloads(cfg, n, seed=32)
    out = simulate(
        cfg,
        addrs,
        payloads,
        timing="random",
        seed=33,
        mem_stall=0.2,
        b_delay=0.9,
        outstanding=outstanding,
        vcd=tmp_path / "o.vcd",
    )
    check(cfg, addrs, payloads, out)
    assert out["max_inflight"] == outstanding


@pytest.mark.parametrize("config", ["tiny", "short_bursts"])
def test_back_to_back_cycles(config, tmp_path):
    """No stalls: AW ``CMD_TO_AW`` and W ``CMD_TO_W`` cycles after the first cmd, then one W
    beat per cycle across bursts and tokens; done in the cycle of the token's last B."""
    cfg = CONFIGS[config]
    n = 6
    addrs = [cfg.kv_base + t * cfg.kv_token_bytes for t in range(n)]  # adjacent slots
    payloads = random_payloads(cfg, n, seed=41)
    out = simulate(cfg, addrs, payloads, outstanding=32, vcd=tmp_path / "c.vcd")
    check(cfg, addrs, payloads, out)
    c0 = out["cmd"][0]
    assert out["aw"][0][2] - c0 == CMD_TO_AW
    w_times = [c for _, _, c in out["w"]]
    assert w_times == list(range(c0 + CMD_TO_W, c0 + CMD_TO_W + n * cfg.axi_beats_per_token))
    # the splitter takes one cycle per burst and the next cmd in the last burst's cycle
    # (while the queues have room: 32 bursts here)
    per = len(write_bursts(KVLayout.from_hw(cfg), addrs[0]))
    assert np.diff(out["cmd"]).tolist() == [per] * (n - 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^outstanding must be in 1\.\.256, not 0$"):
        KVWriter(TINY, outstanding=0)
    with pytest.raises(TypeError, match=r"^outstanding must be an integer, not 'x'$"):
        KVWriter(TINY, outstanding="x")
    with pytest.raises(TypeError, match=r"^cfg must be an HWConfig, not 3$"):
        KVWriter(3)
