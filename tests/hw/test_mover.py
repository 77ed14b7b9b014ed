"""ContextMover (hw.core.mover): a context's tables to DRAM and back, on Amaranth's simulator
against the AXI RAM model with random stalls: the DRAM image is the documented layout
(hw.core.contexts), and a load restores every moved row."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from hw.config import preset
from hw.core.contexts import context_base, context_regions, context_stride
from hw.core.mover import ContextMover
from sim.kit.axi_ram import AxiRamModel
from sim.kit.streams import TIMINGS, Harness, run


class _Tables(wiring.Component):
    """The mover with one memory per region behind its table ports."""

    def __init__(self, cfg, regions, init):
        self.cfg, self.regions, self.init = cfg, regions, init
        self.mover = ContextMover(cfg, regions)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mover = self.mover
        self.mems = {}
        for g in self.regions:
            mem = Memory(shape=g.row_bits, depth=g.max_rows, init=self.init[g.name])
            m.submodules[g.name] = self.mems[g.name] = mem
            rd, wr = mem.read_port(), mem.write_port()
            port = getattr(self.mover, g.name)
            m.d.comb += [
                rd.addr.eq(port.addr),
                port.rdata.eq(rd.data),
                wr.addr.eq(port.addr),
                wr.data.eq(port.wdata),
                wr.en.eq(port.we),
            ]
        return m


def _image(cfg, regions, rows, tables, base) -> dict[int, int]:
    """The expected bus beats: address -> value."""
    bus = cfg.axi_data_bits
    out = {}
    for g in regions:
        for i in range(rows[g.name]):
            v = tables[g.name][i]
            for j in range(g.beats_per_row):
                addr = base + g.offset + (i * g.beats_per_row + j) * bus // 8
                out[addr] = (v >> (j * bus)) & ((1 << bus) - 1)
    return out


@pytest.mark.parametrize("timing", ["none", "random"])
@pytest.mark.parametrize("seed", [0, 1])
def test_store_then_load_moves_every_occupied_row(timing, seed):
    cfg = preset("tiny")
    regions = context_regions(cfg)
    rng = np.random.default_rng(seed)
    rows = {g.name: int(rng.integers(0, g.max_rows + 1)) for g in regions}
    rows["hcu"] = 0  # a region with nothing to move
    rows["scalars"] = 1
    tables = {
        g.name: [
            int.from_bytes(rng.bytes(-(-g.row_bits // 8)), "little") % (1 << g.row_bits)
            for _ in range(g.max_rows)
        ]
        for g in regions
    }
    context = 2
    base = context_base(cfg, context)
    dut = _Tables(cfg, regions, tables)
    h = Harness(dut)
    bb = cfg.axi_data_bits // 8
    mem = bytearray(context_stride(cfg) * cfg.contexts)
    ram = AxiRamModel(
        dut.mover.m_axi, mem, base=cfg.kv_base, bus_bytes=bb, seed=seed, stall=TIMINGS[timing][1]
    )
    got = {}

    async def bench(ctx):
        mv = dut.mover
        for g in regions:
            ctx.set(getattr(mv, f"{g.name}_rows"), rows[g.name])
        for save in (1, 0):
            if not save:  # the tables forget their rows; the load restores the moved ones
                for g in regions:
                    for i in range(g.max_rows):
                        ctx.set(
                            dut.mems[g.name].data[i], 0 if i < rows[g.name] else tables[g.name][i]
                        )
            ctx.set(mv.base, base)
            ctx.set(mv.save, save)
            ctx.set(mv.start, 1)
            await ctx.tick()
            ctx.set(mv.start, 0)
            await ctx.tick()
            cycles = 1
            while ctx.get(mv.busy):
                await ctx.tick()
                cycles += 1
                assert cycles < 20000
            assert ctx.get(mv.error) == 0
            got[save] = {
                g.name: [ctx.get(dut.mems[g.name].data[i]) for i in range(g.max_rows)]
                for g in regions
            }

    run(h, [bench], background=ram.benches())
    for addr, value in _image(cfg, regions, rows, tables, base).items():
        off = addr - cfg.kv_base
        assert int.from_bytes(mem[off : off + bb], "little") == value, hex(addr)
    # only the moved beats were written
    assert sum(n for _, n in ram.aw_log) == sum(rows[g.name] * g.beats_per_row for g in regions)
    assert got[0] == tables  # a load restores every row
