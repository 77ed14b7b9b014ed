"""An AXI4 RAM slave for the Amaranth simulator (the cocotb regressions use cocotbext-axi's
``AxiRam`` instead): background testbenches serving the read (AR/R) and write (AW/W/B)
channels of a master port from a ``bytearray``, with seeded random stalls on every channel.

It checks what a slave must be able to rely on: INCR bursts of full-width beats, ID 0,
``wstrb`` all ones, ``wlast`` on the last beat of each burst, no burst crossing 4 KB.
W beats are accepted whether or not their AW has arrived (AXI lets write data lead its
address): they wait in order and are stored once their AW is known; each burst's B follows
its last beat and its AW, after a random delay.
``slverr_reads`` / ``slverr_writes``: ordinals (0-based, in AR / AW order) of the bursts
answered SLVERR (``rresp`` on every beat / ``bresp`` = 2); their data is still read or
stored, so only the master's error reporting changes. Given the harness's ``cycle``
counter, ``response_log`` holds every response handshake (each R beat, each B) as
``(channel, burst ordinal, resp, cycle)``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["AxiRamModel"]

_SLVERR = 2


class AxiRamModel:
    """``mem`` holds bytes ``base .. base + len(mem)``; ``benches()`` go to ``background=``."""

    def __init__(
        self,
        axi,
        mem: bytearray,
        *,
        base: int,
        bus_bytes: int,
        seed: int,
        stall: float,
        slverr_reads: frozenset[int] = frozenset(),
        slverr_writes: frozenset[int] = frozenset(),
        b_latency: int = 0,
        cycle=None,
    ):
        self.axi, self.mem, self.base, self.bb = axi, mem, base, bus_bytes
        self._cycle = () if cycle is None else (cycle,)
        self.response_log: list[tuple[str, int, int, int]] = []
        self.seed, self.stall = seed, stall
        self.slverr_reads, self.slverr_writes = slverr_reads, slverr_writes
        self.b_latency = b_latency  # cycles every B response waits, at least
        self.reads: deque = deque()
        #: accepted AW bursts still short of W beats; ``_wdone`` beats of the first stored
        self.writes: deque = deque()
        self._wdone = 0
        self._burst: list = []  # the oldest burst's beats so far: (offset, bytes)
        #: accepted W beats ``(data, last)`` not yet matched to an AW
        self.wbeats: deque = deque()
        #: responses of complete bursts and their data, for the B channel
        self.responses: deque = deque()
        #: W beats accepted before their AW
        self.w_ahead = 0
        self.ar_log: list[tuple[int, int]] = []
        self.aw_log: list[tuple[int, int]] = []

    def _check_burst(self, addr: int, beats: int, size: int, burst: int) -> None:
        assert (size, burst) == (self.bb.bit_length() - 1, 1), (size, burst)
        assert addr % self.bb == 0, f"unaligned burst at {addr:#x}"
        assert addr // 4096 == (addr + beats * self.bb - 1) // 4096, (
            f"burst at {addr:#x} crosses 4 KB"
        )
        assert self.base <= addr and addr + beats * self.bb <= self.base + len(self.mem)

    def read_benches(self):
        """The AR and R channels' testbenches (for a read-only master)."""
        return [self._ar, self._r]

    def write_benches(self):
        """The AW, W and B channels' testbenches (for a write-only master)."""
        return [self._aw, self._w, self._b]

    def benches(self):
        return self.read_benches() + self.write_benches()

    async def _ar(self, ctx):
        rng = np.random.default_rng([self.seed, 21])
        a = self.axi
        while True:
            ready = rng.random() >= self.stall
            ctx.set(a.arready, ready)
            _, _, valid, addr, alen, size, burst = await ctx.tick().sample(
                a.arvalid, a.araddr, a.arlen, a.arsize, a.arburst
            )
            if valid and ready:
                self._check_burst(addr, alen + 1, size, burst)
                n = len(self.ar_log)
                resp = _SLVERR if n in self.slverr_reads else 0
                self.ar_log.append((addr, alen + 1))
                self.reads.append((addr, alen + 1, resp, n))

    async def _r(self, ctx):
        rng = np.random.default_rng([self.seed, 22])
        a = self.axi
        while True:
            if not self.reads:
                await ctx.tick()
                continue
            addr, beats, resp, n = self.reads.popleft()
            for j in range(beats):
                while rng.random() < self.stall:
                    ctx.set(a.rvalid, 0)
                    await ctx.tick()
                off = addr - self.base + j * self.bb
                ctx.set(a.rdata, int.from_bytes(self.mem[off : off + self.bb], "little"))
                ctx.set(a.rlast, j == beats - 1)
                ctx.set(a.rresp, resp)
                ctx.set(a.rvalid, 1)
                while True:
                    _, _, rr, *now = await ctx.tick().sample(a.rready, *self._cycle)
                    if rr:
                        self.response_log += [("r", n, resp, *now)] if now else []
                        break
                ctx.set(a.rvalid, 0)

    async def _aw(self, ctx):
        rng = np.random.default_rng([self.seed, 23])
        a = self.axi
        while True:
            ready = rng.random() >= self.stall
            ctx.set(a.awready, ready)
            _, _, valid, addr, alen, size, burst = await ctx.tick().sample(
                a.awvalid, a.awaddr, a.awlen, a.awsize, a.awburst
            )
            if valid and ready:
                self._check_burst(addr, alen + 1, size, burst)
                n = len(self.aw_log)
                resp = _SLVERR if n in self.slverr_writes else 0
                self.aw_log.append((addr, alen + 1))
                self.writes.append((addr, alen + 1, resp, n))
                self._store()

    def _store(self) -> None:
        """Match the waiting W beats to the oldest AW bursts; queue the B of complete ones
        with their data, which the memory takes only with the B response: a read the
        master issues before it may return the old data, as AXI allows, so a master that
        reads what it has just written must wait for the B."""
        while self.writes and self.wbeats:
            addr, beats, resp, n = self.writes[0]
            data, last = self.wbeats.popleft()
            j = self._wdone
            assert last == (j == beats - 1), f"wlast at beat {j} of {beats}"
            off = addr - self.base + j * self.bb
            self._burst.append((off, data.to_bytes(self.bb, "little")))
            self._wdone += 1
            if self._wdone == beats:
                self.writes.popleft()
                self._wdone = 0
                self.responses.append((resp, self._burst, n))
                self._burst = []

    async def _w(self, ctx):
        """W beats, with or without their AW: in order, stored as their AW arrives."""
        rng = np.random.default_rng([self.seed, 24])
        a = self.axi
        while True:
            ready = rng.random() >= self.stall
            ctx.set(a.wready, ready)
            _, _, valid, data, strb, last = await ctx.tick().sample(
                a.wvalid, a.wdata, a.wstrb, a.wlast
            )
            if valid and ready:
                assert strb == (1 << self.bb) - 1
                # _store leaves no beat waiting while an AW is: with none, this one leads.
                self.w_ahead += not self.writes
                self.wbeats.append((int(data), bool(last)))
                self._store()

    async def _b(self, ctx):
        """One B per complete burst, in order, after a random delay; the burst's data are
        stored as its B goes out."""
        rng = np.random.default_rng([self.seed, 25])
        a = self.axi
        while True:
            if not self.responses:
                await ctx.tick()
                continue
            resp, burst, n = self.responses.popleft()
            for _ in range(self.b_latency):
                await ctx.tick()
            while rng.random() < self.stall:
                await ctx.tick()
            for off, data in burst:
                self.mem[off : off + len(data)] = data
            ctx.set(a.bresp, resp)
            ctx.set(a.bvalid, 1)
            while True:
                _, _, br, *now = await ctx.tick().sample(a.bready, *self._cycle)
                if br:
                    self.response_log += [("b", n, resp, *now)] if now else []
                    break
            ctx.set(a.bvalid, 0)
