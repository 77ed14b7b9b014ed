"""cocotb regression of the generated KVWriter Verilog (``hw.gen`` top ``kv_writer``) against
cocotbext-axi's ``AxiRamWrite``, a real AXI4 write-slave model (it checks the 4 KB rule and
``wlast`` itself) with random AW/W/B pauses.

Tokens sit at the addresses golden ``KVMemory`` gives a random clustering
(``sim.cases.kvmu.workload``); each carries random KV bytes. Drivers (``cmd`` and ``data``,
random idle cycles) → AW/W monitors and the RAM → scoreboards: the AW bursts equal
``golden.kvmu.write_bursts`` of every token in order (so every token is written exactly
once), the W beats carry the data with ``wlast`` per burst, and the RAM (pre-filled with a
marker pattern) equals the expected image byte for byte. ``done`` (random back-pressure)
gives one beat per token; a fault-injecting RAM checks that a SLVERR reaches ``done.error``.
Configuration from ``DRE_CONFIG``; seed from ``SEED``. Run by tests/sim/test_units_cocotb.py.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiRamWrite, AxiWriteBus

from golden.kvmu import KVLayout, write_bursts
from hw.config import HWConfig
from hw.kvmu import kvmu_layouts
from hw.kvmu.writer import CMD_TO_W
from sim.cases.kvmu import workload
from sim.kit.cocotb_streams import (
    Scoreboard,
    StreamSink,
    StreamSource,
    config_from_env,
    cycle,
    make_rng,
    random_pauses,
    reset,
    seed_from_env,
    start_clock,
    timing_from_env,
)

#: Byte every RAM location holds before the test: a write anywhere else shows up.
FILL = 0x5A


#: The KV writer's inputs driven low during reset.
WRITER_IDLE = ("cmd__valid", "data__valid", "done__ready")


class FaultyRam(AxiRamWrite):
    """``AxiRamWrite`` whose writes into ``[bad_lo, bad_hi)`` fail: the model answers the
    burst with SLVERR (and stores nothing of that beat)."""

    bad_lo = bad_hi = 0

    async def _write(self, address, data):
        if self.bad_lo <= address < self.bad_hi:
            raise OSError(f"injected fault at {address:#x}")
        await super()._write(address, data)


def area_bytes(cfg: HWConfig) -> int:
    return cfg.kv_base + cfg.kv_chunks * cfg.chunk_tokens * cfg.kv_token_bytes


def attach_ram(dut, cfg: HWConfig, *, stall: float, rng, cls=AxiRamWrite) -> AxiRamWrite:
    # Amaranth joins nested port names with "__" (bus_separator="__", see sim/benches/tb_kvmu.py).
    bus = AxiWriteBus.from_prefix(dut, "m_axi", bus_separator="__")
    ram = cls(bus, dut.clk, dut.rst, size=area_bytes(cfg))
    ram.write(0, bytes([FILL]) * area_bytes(cfg))
    if stall > 0:
        ram.aw_channel.set_pause_generator(random_pauses(rng, stall))
        ram.w_channel.set_pause_generator(random_pauses(rng, stall))
        ram.b_channel.set_pause_generator(random_pauses(rng, stall))
    return ram


class Monitor:
    """Records every AW handshake ``(addr, beats)`` and W handshake ``(data, last)`` with
    their cycles."""

    def __init__(self, dut):
        self.dut = dut
        self.aw, self.aw_times, self.w, self.w_times = [], [], [], []
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            await ReadOnly()
            if int(d.m_axi__awvalid.value) and int(d.m_axi__awready.value):
                self.aw.append((int(d.m_axi__awaddr.value), int(d.m_axi__awlen.value) + 1))
                self.aw_times.append(cycle())
                assert int(d.m_axi__awid.value) == 0 and int(d.m_axi__awburst.value) == 1
            if int(d.m_axi__wvalid.value) and int(d.m_axi__wready.value):
                self.w.append((int(d.m_axi__wdata.value), int(d.m_axi__wlast.value)))
                self.w_times.append(cycle())
                assert int(d.m_axi__wstrb.value) == (1 << len(d.m_axi__wstrb)) - 1


def tokens(cfg: HWConfig, n: int, seed: int) -> tuple[list[int], list[bytes]]:
    """Addresses of ``n`` stored tokens of a random clustering and their random KV bytes."""
    wl = workload(cfg, n, seed=seed)
    addrs = [s.addr for s in wl.slots if not s.full]
    rng = np.random.default_rng(seed)
    return addrs, [rng.bytes(cfg.kv_token_bytes) for _ in addrs]


async def write_tokens(
    dut, cfg: HWConfig, ram, addrs, kv, *, idle, stall, rng, errors=None
) -> tuple[Monitor, StreamSink, list[int]]:
    """Write the tokens; check bursts, beats, RAM image and done beats against golden."""
    lay = kvmu_layouts(cfg)
    L = KVLayout.from_hw(cfg)
    bb = L.bus_bytes
    gold = [b for a in addrs for b in write_bursts(L, a)]
    mon = Monitor(dut)
    board = Scoreboard("done", dut._log)
    for t in range(len(addrs)):
        board.expect(int(errors[t]) if errors is not None else 0)
    done = StreamSink(
        dut, "done", lay.wr_done, rng=rng, stall=stall, callback=lambda b, _: board.check(b.error)
    )
    done.start()
    beats = [
        {"data": int.from_bytes(blob[j * bb : (j + 1) * bb], "little")}
        for blob in kv
        for j in range(L.beats_per_token)
    ]
    cmd_src = StreamSource(dut, "cmd", lay.wr_cmd, rng=rng, idle=idle)
    data_src = StreamSource(dut, "data", lay.wr_data, rng=rng, idle=idle)
    t_cmd = cocotb.start_soon(cmd_src.send([{"addr": a} for a in addrs]))
    t_data = cocotb.start_soon(data_src.send(beats))
    await t_cmd
    await t_data
    await done.wait_for(len(addrs), timeout_cycles=30 * len(beats) + 500)
    for _ in range(20):  # nothing may follow
        await RisingEdge(dut.clk)
    done.stop()
    board.assert_done()
    assert mon.aw == [(b.addr, b.beats) for b in gold], "AW bursts differ from write_bursts"
    assert [d for d, _ in mon.w] == [b["data"] for b in beats], "W data differs"
    assert [last for _, last in mon.w] == [
        int(j == b.beats - 1) for b in gold for j in range(b.beats)
    ], "wlast differs"
    # The RAM: every token's KV at its slot (faulty ranges excluded), FILL elsewhere.
    image = bytearray([FILL]) * area_bytes(cfg)
    for t, (a, blob) in enumerate(zip(addrs, kv, strict=True)):
        if errors is None or not errors[t]:
            image[a : a + len(blob)] = blob
    got = ram.read(0, area_bytes(cfg))
    if errors is None:
        assert got == bytes(image), "RAM image differs"
    else:
        ok = [i for i in range(len(image)) if not ram.bad_lo <= i < ram.bad_hi]
        assert all(got[i] == image[i] for i in ok), "RAM image differs outside the fault"
    return mon, done, cmd_src.times


@cocotb.test()
async def kv_writer_smoke_back_to_back(dut):
    """cocotbext-axi binds ``m_axi__*`` with ``bus_separator="__"``; without stalls W
    carries one beat per cycle from ``CMD_TO_W`` cycles after the first cmd."""
    cfg = config_from_env()
    await start_clock(dut)
    await reset(dut, idle=WRITER_IDLE)
    bus = AxiWriteBus.from_prefix(dut, "m_axi", bus_separator="__")
    assert bus.aw.awaddr._path == dut.m_axi__awaddr._path
    assert bus.b.bresp._path == dut.m_axi__bresp._path
    rng = make_rng(seed_from_env(), 1)
    ram = attach_ram(dut, cfg, stall=0.0, rng=rng)
    addrs = [cfg.kv_base + t * cfg.kv_token_bytes for t in range(3)]
    kv = [rng.bytes(cfg.kv_token_bytes) for _ in addrs]
    mon, _, cmd_times = await write_tokens(dut, cfg, ram, addrs, kv, idle=0.0, stall=0.0, rng=rng)
    n = len(addrs) * cfg.axi_beats_per_token
    # The first beat leaves after CMD_TO_W cycles and the rest follow back to back. The
    # RAM model's queues may add bubbles, so only the first beat's timing is asserted.
    assert mon.w_times[0] - cmd_times[0] == CMD_TO_W
    assert len(mon.w_times) == n


@cocotb.test()
async def kv_writer_random_stalls(dut):
    """Tokens of a random clustering, random idle/back-pressure on the streams and random
    AW/W/B pauses in the RAM: every token written exactly once, byte-exact."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    await start_clock(dut)
    await reset(dut, idle=WRITER_IDLE)
    rng = make_rng(seed_from_env(), 2)
    ram = attach_ram(dut, cfg, stall=0.4, rng=rng)
    addrs, kv = tokens(cfg, 60, seed=seed_from_env() + 3)
    await write_tokens(dut, cfg, ram, addrs, kv, idle=idle, stall=stall, rng=rng)


@cocotb.test()
async def kv_writer_slverr(dut):
    """A RAM whose writes fail in one address range answers SLVERR: exactly the tokens
    written there get ``done.error``; the others land byte-exact."""
    cfg = config_from_env()
    idle, stall = timing_from_env()
    await start_clock(dut)
    await reset(dut, idle=WRITER_IDLE)
    rng = make_rng(seed_from_env(), 4)
    ram = attach_ram(dut, cfg, stall=0.3, rng=rng, cls=FaultyRam)
    addrs, kv = tokens(cfg, 40, seed=seed_from_env() + 5)
    ram.bad_lo = addrs[len(addrs) // 2]
    ram.bad_hi = ram.bad_lo + cfg.kv_token_bytes
    errors = [ram.bad_lo <= a < ram.bad_hi for a in addrs]
    assert sum(errors) == 1
    await write_tokens(dut, cfg, ram, addrs, kv, idle=idle, stall=stall, rng=rng, errors=errors)
