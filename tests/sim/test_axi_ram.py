"""sim.kit.axi_ram.AxiRamModel's write side driven directly by a test master (no DUT): W beats
sent before their AW — allowed by AXI, and what a slave must accept — land where their AW
says, with one B per burst, in order; AW first, and interleavings of both, too."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hw.kvmu import axi4_write_signature
from sim.kit.axi_ram import AxiRamModel
from sim.kit.streams import Harness, run

BB = 8  # bus bytes
BASE = 0x1000
#: Cycles a handshake may take before the test master gives up (a slave that waits for AW
#: before taking W would deadlock a W-first master: that must fail, not hang).
PATIENCE = 500


async def handshake(ctx, ready, cycle, what: str) -> int:
    for _ in range(PATIENCE):
        *_, ok, now = await ctx.tick().sample(ready, cycle)
        if ok:
            return now
    raise AssertionError(f"no {what} handshake in {PATIENCE} cycles")


class WritePort(wiring.Component):
    """Nothing but an AXI write master port: the test drives it."""

    def __init__(self):
        super().__init__({"m_axi": Out(axi4_write_signature(16, 8 * BB))})

    def elaborate(self, platform):
        return Module()


def simulate(bursts, order: str, *, stall: float, seed: int):
    """Write ``bursts`` ((addr, [beat ints]), ...) with the W beats of each burst sent
    ``order`` = ``"w_first"`` (all of a burst's W before its AW), ``"aw_first"`` or
    ``"w_ahead_all"`` (every W beat of every burst before the first AW)."""
    dut = WritePort()
    h = Harness(dut)
    a = dut.m_axi
    mem = bytearray(4096)
    ram = AxiRamModel(a, mem, base=BASE, bus_bytes=BB, seed=seed, stall=stall)
    log: dict = {"aw": [], "w": [], "b": []}

    async def send_aw(ctx, addr, beats):
        ctx.set(a.awaddr, addr)
        ctx.set(a.awlen, beats - 1)
        ctx.set(a.awsize, BB.bit_length() - 1)
        ctx.set(a.awburst, 1)
        ctx.set(a.awvalid, 1)
        log["aw"].append(await handshake(ctx, a.awready, h.cycle, "AW"))
        ctx.set(a.awvalid, 0)

    async def send_w(ctx, data):
        for j, value in enumerate(data):
            ctx.set(a.wdata, value)
            ctx.set(a.wstrb, (1 << BB) - 1)
            ctx.set(a.wlast, j == len(data) - 1)
            ctx.set(a.wvalid, 1)
            log["w"].append(await handshake(ctx, a.wready, h.cycle, "W"))
        ctx.set(a.wvalid, 0)

    async def master(ctx):
        if order == "w_ahead_all":
            for _, data in bursts:
                await send_w(ctx, data)
            for addr, data in bursts:
                await send_aw(ctx, addr, len(data))
            return
        for addr, data in bursts:
            if order == "w_first":
                await send_w(ctx, data)
                await send_aw(ctx, addr, len(data))
            else:
                await send_aw(ctx, addr, len(data))
                await send_w(ctx, data)

    async def b_sink(ctx):
        ctx.set(a.bready, 1)
        for _ in range(PATIENCE * 20):
            if len(log["b"]) == len(bursts):
                return
            *_, valid, resp, now = await ctx.tick().sample(a.bvalid, a.bresp, h.cycle)
            if valid:
                log["b"].append((now, resp))
        raise AssertionError(f"{len(log['b'])} of {len(bursts)} B responses")

    run(h, [master, b_sink], background=ram.write_benches())
    return mem, ram, log


def bursts_of(seed: int, n: int):
    rng = np.random.default_rng(seed)
    out, addr = [], BASE
    for _ in range(n):
        beats = int(rng.integers(1, 9))
        out.append((addr, [int(x) for x in rng.integers(0, 2**63, beats, dtype=np.uint64)]))
        addr += beats * BB
    return out


@pytest.mark.parametrize("order", ["w_first", "w_ahead_all", "aw_first"])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_write_data_before_address(order, stall):
    bursts = bursts_of(seed=7, n=6)
    mem, ram, log = simulate(bursts, order, stall=stall, seed=3)
    for addr, data in bursts:
        for j, value in enumerate(data):
            off = addr - BASE + j * BB
            assert int.from_bytes(mem[off : off + BB], "little") == value, (addr, j)
    assert ram.aw_log == [(addr, len(data)) for addr, data in bursts]
    assert [resp for _, resp in log["b"]] == [0] * len(bursts)
    total = sum(len(d) for _, d in bursts)
    if order == "aw_first":
        assert ram.w_ahead == 0
    else:
        # The W beats really led: accepted before the AW of their burst.
        assert ram.w_ahead == total
        assert log["w"][len(bursts[0][1]) - 1] < log["aw"][0]
    # Each B follows both its AW and its burst's last W beat.
    last_w = np.cumsum([len(d) for _, d in bursts]) - 1
    for k, (b_cycle, _) in enumerate(log["b"]):
        assert b_cycle > log["aw"][k] and b_cycle > log["w"][last_w[k]]


def test_wlast_is_checked_against_the_late_address():
    """A beat that led its AW is still checked when the AW arrives: a wrong wlast fails."""
    bursts = [(BASE, [1, 2, 3])]
    dut = WritePort()
    h = Harness(dut)
    a = dut.m_axi
    ram = AxiRamModel(a, bytearray(4096), base=BASE, bus_bytes=BB, seed=0, stall=0.0)

    async def master(ctx):
        for j, value in enumerate(bursts[0][1]):
            ctx.set(a.wdata, value)
            ctx.set(a.wstrb, (1 << BB) - 1)
            ctx.set(a.wlast, j == 1)  # one beat early
            ctx.set(a.wvalid, 1)
            await ctx.tick()
        ctx.set(a.wvalid, 0)
        ctx.set(a.awaddr, BASE)
        ctx.set(a.awlen, 2)
        ctx.set(a.awsize, BB.bit_length() - 1)
        ctx.set(a.awburst, 1)
        ctx.set(a.awvalid, 1)
        for _ in range(4):
            await ctx.tick()

    with pytest.raises(AssertionError, match=r"wlast at beat 1 of 3"):
        run(h, [master], background=ram.write_benches())
