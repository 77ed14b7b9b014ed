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
from hw.core.contexts import context_base, context_regions, context_stride, swap_beats
from hw.core.mover import ContextMover
from sim.kit.axi_ram import AxiRamModel
from sim.kit.streams import TIMINGS, Harness, run


class _Tables(wiring.Component):
    """The mover with one memory per region behind its table ports."""

    def __init__(self, cfg, regions, init, background=False):
        self.cfg, self.regions, self.init = cfg, regions, init
        self.mover = ContextMover(cfg, regions, background=background)
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
                wr.addr.eq(port.waddr),
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


def _random_tables(cfg, regions, rng):
    rows = {g.name: int(rng.integers(0, g.max_rows + 1)) for g in regions}
    rows["scalars"] = 1
    tables = {
        g.name: [
            int.from_bytes(rng.bytes(-(-g.row_bits // 8)), "little") % (1 << g.row_bits)
            for _ in range(g.max_rows)
        ]
        for g in regions
    }
    return rows, tables


@pytest.mark.parametrize("mode", ["plain", "background", "hurried"])
@pytest.mark.parametrize("timing", ["none", "random"])
@pytest.mark.parametrize("seed", [0, 1])
def test_store_load_and_swap_move_every_occupied_row(timing, seed, mode):
    """Context A's tables stored; then loaded back into emptied tables; then a swap stores
    them to another region while it loads context B's (the row inputs change to B's after
    ``start``, as the scalars' load changes them in the core): DRAM holds A's image twice,
    the tables B's moved rows (A's beyond them), and the swap takes less than a store and
    a load one after the other. A ``background`` mover (the core's prefetcher) never holds
    an R beat back (``rready`` low while ``rvalid``) and keeps its bursts to
    ``prefetch_burst`` beats; unless ``hurry`` is high ("hurried") it has at most one burst
    in flight per direction, an AW only once the previous burst's W beats all left."""
    background = mode != "plain"
    cfg = preset("tiny").replace(prefetch_burst=4)
    regions = context_regions(cfg)
    rng = np.random.default_rng(seed)
    rows_a, tables_a = _random_tables(cfg, regions, rng)
    rows_a["hcu"] = 0  # a region with nothing to move
    rows_b, tables_b = _random_tables(cfg, regions, rng)
    base_a, base_a2, base_b = (context_base(cfg, c) for c in (2, 0, 1))
    dut = _Tables(cfg, regions, tables_a, background)
    h = Harness(dut)
    bb = cfg.axi_data_bits // 8
    mem = bytearray(context_stride(cfg) * cfg.contexts)
    for addr, value in _image(cfg, regions, rows_b, tables_b, base_b).items():
        off = addr - cfg.kv_base
        mem[off : off + bb] = value.to_bytes(bb, "little")
    ram = AxiRamModel(
        dut.mover.m_axi, mem, base=cfg.kv_base, bus_bytes=bb, seed=seed, stall=TIMINGS[timing][1]
    )
    got, cycles, beats = {}, {}, {}
    held = []  # cycles an R beat waited for the mover
    in_flight = {"ar": [0], "aw": [0]}  # bursts addressed and not all moved, each cycle

    def set_rows(ctx, rows):
        for g in regions:
            ctx.set(getattr(dut.mover, f"{g.name}_rows"), rows[g.name])

    async def bench(ctx):
        mv = dut.mover
        steps = (("store", 1, 0, base_a), ("load", 0, 1, base_a), ("swap", 1, 1, base_a2))
        for name, save, load, save_base in steps:
            set_rows(ctx, rows_a)
            if name == "load":  # the tables forget their rows; the load restores the moved ones
                for g in regions:
                    for i in range(g.max_rows):
                        keep = tables_a[g.name][i]
                        ctx.set(dut.mems[g.name].data[i], 0 if i < rows_a[g.name] else keep)
            ctx.set(mv.save_base, save_base)
            ctx.set(mv.load_base, base_b if name == "swap" else base_a)
            ctx.set(mv.save, save)
            ctx.set(mv.load, load)
            ctx.set(mv.start, 1)
            if background:
                ctx.set(mv.hurry, mode == "hurried")
            await ctx.tick()
            if name == "swap":
                set_rows(ctx, rows_b)
            ctx.set(mv.start, 0)
            if background:
                ctx.set(mv.hurry, 0)  # sticky for the move
            n, moved = 0, 0
            a = mv.m_axi
            while True:
                _, _, b, rv, rr, *hs = await ctx.tick().sample(
                    mv.beats,
                    a.rvalid,
                    a.rready,
                    a.arvalid,
                    a.arready,
                    a.awvalid,
                    a.awready,
                    a.wvalid,
                    a.wready,
                    a.wlast,
                    a.rlast,
                )  # the cycle's handshakes
                arv, arr, awv, awr, wv, wr, wl, rl = hs
                moved += b
                if rv and not rr and ctx.get(mv.busy):
                    held.append(name)
                ar, aw = in_flight["ar"], in_flight["aw"]
                ar.append(ar[-1] + (arv and arr) - (rv and rr and rl))
                aw.append(aw[-1] + (awv and awr) - (wv and wr and wl))
                n += 1
                assert n < 20000
                if not ctx.get(mv.busy):
                    break
            assert ctx.get(mv.error) == 0
            cycles[name], beats[name] = n, moved
            got[name] = {
                g.name: [ctx.get(dut.mems[g.name].data[i]) for i in range(g.max_rows)]
                for g in regions
            }

    run(h, [bench], background=ram.benches())
    for base in (base_a, base_a2):
        for addr, value in _image(cfg, regions, rows_a, tables_a, base).items():
            off = addr - cfg.kv_base
            assert int.from_bytes(mem[off : off + bb], "little") == value, hex(addr)
    # only the moved beats were written, twice
    moved_a = sum(rows_a[g.name] * g.beats_per_row for g in regions)
    moved_b = sum(rows_b[g.name] * g.beats_per_row for g in regions)
    assert sum(n for _, n in ram.aw_log) == 2 * moved_a
    assert beats == {"store": moved_a, "load": moved_a, "swap": moved_a + moved_b}
    assert got["store"] == got["load"] == tables_a  # a load restores every row
    assert got["swap"] == {
        g.name: tables_b[g.name][: rows_b[g.name]] + tables_a[g.name][rows_b[g.name] :]
        for g in regions
    }
    assert cycles["swap"] < cycles["store"] + cycles["load"]
    # per region the longer of the store and the load (a beat per cycle on each channel),
    # and without stalls a few cycles per region more
    bound = swap_beats(cfg, rows_a, rows_b, regions)
    assert bound >= max(moved_a, moved_b) and cycles["swap"] >= bound
    if timing == "none" and mode != "background":  # a background load trails its store
        slack = 8 + (ContextMover.burst(cfg, background) if background else 0)
        assert cycles["swap"] <= bound + slack * len(regions), (cycles, bound)
    if background:
        assert not held, held
        assert ContextMover.burst(cfg, True) == 4
        assert max(n for _, n in ram.aw_log) == 4
    else:  # a swap's load waits for its store (the check above is not vacuous)
        assert "swap" in held
    # one burst in flight per direction, only in the background (and then never more)
    most = {k: max(v) for k, v in in_flight.items()}
    if mode == "background":
        assert most == {"ar": 1, "aw": 1}, most
    else:
        assert most["ar"] > 1 and most["aw"] > 1, most
