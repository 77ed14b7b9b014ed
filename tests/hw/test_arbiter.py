"""AxiArbiter (hw.core.arbiter): two AXI4 masters on one port, on Amaranth's simulator against
the AXI RAM model with random stalls: every read returns its own master's data, every write
lands, every R and B reaches the master that asked; with ``low`` silent, ``high``'s
handshakes happen in the very cycles of a direct connection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.config import preset
from hw.core.arbiter import AxiArbiter
from hw.kvmu import axi4_signature
from sim.kit.axi_ram import AxiRamModel
from sim.kit.streams import TIMINGS, Harness, run

CFG = preset("tiny")
BB = CFG.axi_data_bits // 8
SLOT = 16 * BB  # one slot per burst (max_burst 16 beats): no burst crosses 4 KiB
AREA = 128 * SLOT  # a master's read area, then its write area
MEM = 4 * AREA
TIMEOUT = 20000


def _sig():
    return axi4_signature(CFG.axi_addr_bits, CFG.axi_data_bits)


class _Wire(wiring.Component):
    """A master wired straight to the slave: the reference of the transparency test."""

    def __init__(self):
        super().__init__({"high": In(_sig()), "m_axi": Out(_sig())})

    def elaborate(self, platform):
        m = Module()
        for name, member in _sig().members.items():
            src, dst = (self.high, self.m_axi) if member.flow == Out else (self.m_axi, self.high)
            m.d.comb += getattr(dst, name).eq(getattr(src, name))
        return m


class _CrossedR(wiring.Component):
    """A broken arbiter: the R channels of ``high`` and ``low`` swapped (the checks must fail)."""

    def __init__(self, depth):
        self.arb = AxiArbiter(CFG, depth)
        super().__init__({"high": In(_sig()), "low": In(_sig()), "m_axi": Out(_sig())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.arb = arb = self.arb
        for name, member in _sig().members.items():
            src, dst = (arb.m_axi, self.m_axi) if member.flow == Out else (self.m_axi, arb.m_axi)
            m.d.comb += getattr(dst, name).eq(getattr(src, name))
        for outer, inner, other in ((self.high, arb.high, arb.low), (self.low, arb.low, arb.high)):
            for name, member in _sig().members.items():
                if member.flow == Out:  # the master's outputs go in
                    m.d.comb += getattr(inner, name).eq(getattr(outer, name))
                else:
                    src = other if name in ("rvalid", "rdata", "rresp", "rlast") else inner
                    m.d.comb += getattr(outer, name).eq(getattr(src, name))
            # the R handshake of the master that gets the beats
            m.d.comb += other.rready.eq(outer.rready)
        return m


class _Master:
    """A testbench AXI4 master on ``port``: ``reads`` ``(addr, beats)`` and ``writes``
    ``(addr, words)`` as independent AR, R, AW, W and B coroutines with seeded random valid
    gaps (``idle``) and ready stalls (``stall``). ``w_mode``: "after" raises a burst's W
    only after its AW handshake, "with" once its AW is valid (W may then lead AW).
    ``log[channel]`` holds each handshake's cycle and payload."""

    def __init__(self, port, cycle, reads, writes, *, seed, idle, stall, w_mode, timeout):
        self.port, self.cycle, self.timeout = port, cycle, timeout
        self.reads, self.writes = reads, writes
        self.seed, self.idle, self.stall, self.w_mode = seed, idle, stall, w_mode
        self.log = {ch: [] for ch in ("ar", "r", "aw", "w", "b")}
        self.addr_idle = idle  # AR's and AW's valid gaps (a test may slow them down)
        self.aw_shown = 0  # AW bursts made valid
        self.aw_done = 0  # AW bursts handshaked

    def benches(self):
        return [self._ar, self._r, self._aw, self._w, self._b]

    def _rng(self, k):
        return np.random.default_rng([self.seed, k])

    async def _handshake(self, ctx, ch, ready, fields=()):
        for _ in range(self.timeout):
            _, _, rdy, now, *vals = await ctx.tick().sample(ready, self.cycle, *fields)
            if rdy:
                self.log[ch].append((now, *map(int, vals)))
                return
        raise AssertionError(f"{ch}: no handshake within {self.timeout} cycles")

    async def _gap(self, ctx, rng, idle=None):
        idle = self.idle if idle is None else idle
        while idle and rng.random() < idle:
            await ctx.tick()

    async def _ar(self, ctx):
        p, rng = self.port, self._rng(1)
        for addr, beats in self.reads:
            await self._gap(ctx, rng, self.addr_idle)
            for name, v in (("araddr", addr), ("arlen", beats - 1), ("arsize", 3), ("arburst", 1)):
                ctx.set(getattr(p, name), v)
            ctx.set(p.arvalid, 1)
            await self._handshake(ctx, "ar", p.arready, (p.araddr, p.arlen))
            ctx.set(p.arvalid, 0)

    async def _r(self, ctx):
        p, rng = self.port, self._rng(2)
        beats = sum(n for _, n in self.reads)
        got, waited = 0, 0
        while got < beats:
            ready = not (self.stall and rng.random() < self.stall)
            ctx.set(p.rready, ready)
            _, _, valid, now, data, resp, last = await ctx.tick().sample(
                p.rvalid, self.cycle, p.rdata, p.rresp, p.rlast
            )
            if valid and ready:
                self.log["r"].append((now, int(data), int(resp), int(last)))
                got, waited = got + 1, 0
            else:
                waited += 1
                assert waited < self.timeout, f"r: no beat within {self.timeout} cycles"
        ctx.set(p.rready, 0)

    async def _aw(self, ctx):
        p, rng = self.port, self._rng(3)
        for addr, words in self.writes:
            await self._gap(ctx, rng, self.addr_idle)
            for name, v in (("awaddr", addr), ("awlen", len(words) - 1), ("awsize", 3)):
                ctx.set(getattr(p, name), v)
            ctx.set(p.awburst, 1)
            ctx.set(p.awvalid, 1)
            self.aw_shown += 1
            await self._handshake(ctx, "aw", p.awready, (p.awaddr, p.awlen))
            self.aw_done += 1
            ctx.set(p.awvalid, 0)

    async def _w(self, ctx):
        p, rng = self.port, self._rng(4)
        ctx.set(p.wstrb, (1 << BB) - 1)
        for k, (_, words) in enumerate(self.writes):
            while (self.aw_done if self.w_mode == "after" else self.aw_shown) <= k:
                await ctx.tick()
            for j, word in enumerate(words):
                await self._gap(ctx, rng)
                ctx.set(p.wdata, word)
                ctx.set(p.wlast, j == len(words) - 1)
                ctx.set(p.wvalid, 1)
                await self._handshake(ctx, "w", p.wready, (p.wdata, p.wlast))
                ctx.set(p.wvalid, 0)

    async def _b(self, ctx):
        p, rng = self.port, self._rng(5)
        waited = 0
        while len(self.log["b"]) < len(self.writes):
            ready = not (self.stall and rng.random() < self.stall)
            ctx.set(p.bready, ready)
            _, _, valid, now, resp = await ctx.tick().sample(p.bvalid, self.cycle, p.bresp)
            if valid and ready:
                self.log["b"].append((now, int(resp)))
                waited = 0
            else:
                waited += 1
                assert waited < self.timeout, "b: no response"
        ctx.set(p.bready, 0)


def _plan(rng, area, n_reads, n_writes):
    """Read bursts in ``area``'s read half (random slots), write bursts in its write half
    (one slot each, in order) with random words."""
    reads = []
    for _ in range(n_reads):
        beats = int(rng.integers(1, 17))
        reads.append((area + int(rng.integers(0, 128)) * SLOT, beats))
    writes = []
    for k in range(n_writes):
        beats = int(rng.integers(1, 17))
        words = [int(x) for x in rng.integers(0, 1 << 63, size=beats, dtype=np.int64)]
        writes.append((area + AREA + k * SLOT, words))
    return reads, writes


def _simulate(
    dut,
    masters_spec,
    *,
    seed,
    timing,
    slverr=(frozenset(), frozenset()),
    timeout=TIMEOUT,
    addr_idle=None,
):
    """Run the masters ``{port_name: (reads, writes, w_mode)}`` on ``dut`` against a RAM of
    random bytes; returns ``(masters, ram, mem before, mem after)``."""
    idle, stall = TIMINGS[timing]
    h = Harness(dut)
    rng = np.random.default_rng([seed, 99])
    mem = bytearray(rng.bytes(MEM))
    before = bytes(mem)
    ram = AxiRamModel(
        dut.m_axi,
        mem,
        base=0,
        bus_bytes=BB,
        seed=seed,
        stall=stall,
        slverr_reads=slverr[0],
        slverr_writes=slverr[1],
    )
    masters = {}
    for i, (name, (reads, writes, w_mode)) in enumerate(masters_spec.items()):
        masters[name] = _Master(
            getattr(dut, name),
            h.cycle,
            reads,
            writes,
            seed=[seed, i],
            idle=idle,
            stall=stall,
            w_mode=w_mode,
            timeout=timeout,
        )
        if addr_idle and name in addr_idle:
            masters[name].addr_idle = addr_idle[name]
    benches = [b for mst in masters.values() for b in mst.benches()]
    run(h, benches, background=ram.benches())
    return masters, ram, before, mem


def _word(mem, addr):
    return int.from_bytes(mem[addr : addr + BB], "little")


def _check(masters, ram, before, mem, slverr):
    """Each master's R beats are its own bursts' data (from its own area, in its order),
    its writes landed, and the SLVERR bursts (ordinals at the slave) answered to it."""
    bad_r = {ram.ar_log[i] for i in slverr[0] if i < len(ram.ar_log)}
    bad_w = {ram.aw_log[i] for i in slverr[1] if i < len(ram.aw_log)}
    for name, mst in masters.items():
        want = []
        for addr, beats in mst.reads:
            resp = 2 if (addr, beats) in bad_r else 0
            want += [
                (_word(before, addr + j * BB), resp, int(j == beats - 1)) for j in range(beats)
            ]
        got = [beat[1:] for beat in mst.log["r"]]
        assert got == want, f"{name}: R beats differ from its bursts"
        assert [b[1] for b in mst.log["b"]] == [
            2 if (addr, len(words)) in bad_w else 0 for addr, words in mst.writes
        ], f"{name}: B responses"
        for addr, words in mst.writes:
            for j, word in enumerate(words):
                assert _word(mem, addr + j * BB) == word, f"{name}: write at {addr + j * BB:#x}"
    # nothing else was written
    written = {
        addr + j * BB for mst in masters.values() for addr, ws in mst.writes for j in range(len(ws))
    }
    for addr in range(0, MEM, BB):
        if addr not in written:
            assert _word(mem, addr) == _word(before, addr), hex(addr)


def _two_masters(seed, n=24):
    rng = np.random.default_rng(seed)
    return {
        "high": (*_plan(rng, 0, n, n), "with"),
        "low": (*_plan(rng, 2 * AREA, n, n), "after"),
    }


def _slverr(seed, n):
    rng = np.random.default_rng([seed, 7])
    return tuple(frozenset(int(x) for x in rng.choice(n, size=n // 5, replace=False)) for _ in "rw")


@pytest.mark.parametrize("timing", ["none", "random"])
@pytest.mark.parametrize(
    ("seed", "depth", "max_run"), [(0, 4, 65535), (1, 2, 65535), (2, 1, 1), (3, 2, 3)]
)
def test_two_masters_get_their_own_answers(timing, seed, depth, max_run):
    """Interleaved random read and write bursts of both masters (``high``'s W raised with
    its AW, so it may lead it and wait; ``low``'s after it) with random valid gaps and
    ready stalls on every channel, some bursts answered SLVERR: every R beat and B response
    reaches its master in its order; every write lands; the slave saw both masters'."""
    spec = _two_masters(seed)
    slverr = _slverr(seed, 48)
    dut = AxiArbiter(CFG, depth, max_run=max_run)
    # high's AR and AW leave gaps (else, first, it takes the bus until its bursts are out)
    masters, ram, before, mem = _simulate(
        dut, spec, seed=seed, timing=timing, slverr=slverr, addr_idle={"high": 0.6}
    )
    _check(masters, ram, before, mem, slverr)
    assert len(ram.ar_log) == len(ram.aw_log) == 48
    switches = []
    for log in (ram.ar_log, ram.aw_log):  # the masters' bursts interleaved at the slave
        owners = [addr >= 2 * AREA for addr, _ in log]
        switches.append(sum(a != b for a, b in itertools.pairwise(owners)))
    assert min(switches) >= 1 and sum(switches) >= 3, switches


def test_crossed_r_is_caught():
    """The checks see misrouted R: a master gets the other's data (the areas differ) or
    waits for beats that went elsewhere."""
    spec = _two_masters(5, n=8)
    with pytest.raises(AssertionError, match=r"R beats|r: no beat"):
        out = _simulate(_CrossedR(4), spec, seed=5, timing="random", timeout=300)
        _check(*out, (frozenset(), frozenset()))


def _trace(mst):
    return {ch: list(v) for ch, v in mst.log.items()}


@pytest.mark.parametrize("timing", ["none", "random"])
@pytest.mark.parametrize(("seed", "depth"), [(0, 1), (1, 4), (2, 2)])
def test_silent_low_is_transparent(timing, seed, depth):
    """With ``low`` silent, every handshake of ``high`` (AR, R, AW, W, B, with their data)
    happens in the same cycle as with ``high`` wired straight to the RAM, under the RAM's
    random stalls and the master's gaps; its W follows its AW (with no stalls, in the AW's
    very cycle: the same-cycle W)."""
    rng = np.random.default_rng([seed, 1])
    w_mode = "with" if timing == "none" else "after"  # without stalls W never leads AW
    reads, writes = _plan(rng, 0, 40, 40)
    spec = {"high": (reads, writes, w_mode)}
    ref, *_ = _simulate(_Wire(), spec, seed=seed, timing=timing)
    got, ram, before, mem = _simulate(AxiArbiter(CFG, depth), spec, seed=seed, timing=timing)
    _check(got, ram, before, mem, (frozenset(), frozenset()))
    assert _trace(got["high"]) == _trace(ref["high"])
    if timing == "none":  # the first W beat of a burst in the cycle of its AW handshake
        w_cycles = {c for c, *_ in got["high"].log["w"]}
        assert sum(c in w_cycles for c, *_ in got["high"].log["aw"]) >= len(writes) // 2


def test_transparency_needs_w_after_aw():
    """A master whose W leads its AW (single-beat bursts, W raised once AW is valid, the
    RAM stalling AW) is delayed: its W waits for the AW handshake."""
    rng = np.random.default_rng(3)
    reads, writes = _plan(rng, 0, 2, 60)
    writes = [(addr, words[:1]) for addr, words in writes]
    spec = {"high": (reads, writes, "with")}
    slow = {
        "seed": 3,
        "timing": "random",
        "addr_idle": {"high": 0.7},
    }  # W waits for AW at the master
    ref, ram, *_ = _simulate(_Wire(), spec, **slow)
    got, *_ = _simulate(AxiArbiter(CFG, 2), spec, **slow)
    assert ram.w_ahead > 0  # directly, some W beats went before their AW
    assert _trace(got["high"])["w"] != _trace(ref["high"])["w"]
    aw = [c for c, *_ in got["high"].log["aw"]]
    w = [c for c, *_ in got["high"].log["w"]]
    assert all(a <= b for a, b in zip(aw, w, strict=True))  # never ahead through the arbiter


def test_converts_to_verilog():
    from amaranth.back import verilog

    assert "module" in verilog.convert(AxiArbiter(CFG, 4))


def test_arguments_checked():
    with pytest.raises(ValueError, match="depth"):
        AxiArbiter(CFG, 0)
    with pytest.raises(TypeError, match="max_run"):
        AxiArbiter(CFG, 2, max_run=1.5)
