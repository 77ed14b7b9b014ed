"""Formal harness of ``KVMemoryUnit`` (KVMU): its streams and its AXI4 read master.

The size (``kvmu_config``): 4 clusters, 4 chunks of 4 tokens, ``head_dim`` 192 so that a
token is 768 bytes (24 beats of the 256-bit bus) and a chunk 3072 bytes: chunk 1 spans the
4 KB boundary at 4096, which a bounded run reaches in a few tokens. ``max_burst`` is 20
beats (not a power of two), ``outstanding`` 2.

``props="stream"`` (k-induction): ``slot`` (except on ``clear``, which drops a pending slot
beat by contract) and ``kv`` hold valid and payload until their handshakes; so does AR
(``arvalid`` and every AR field until ``arready``). The slave is assumed to obey the same
rule on R (valid, data, response and ``last`` held until ``rready``).

``props="axi"`` (bounded): the same, and ``summary`` holds valid and payload until its
handshake (not provable by induction here, see ``elaborate``). The slave answers only open
bursts (``rvalid`` only with a burst outstanding; ``rlast`` free, the design must not
care). Asserted: every AR is INCR, ID 0, full-width, aligned to the bus, inside the KV
area, ``1 <= beats <= max_burst`` and does not cross a 4 KB boundary; ARs not yet closed
by ``rlast`` never exceed ``outstanding``; the summary comes after the last R beat
(nothing outstanding) and counts the bursts and beats issued; no two stored tokens get the
same (chunk, slot) since the last ``clear``, and the slot index is below
``chunk_tokens``. Covers: a summary after 3 bursts or more, a run split at ``max_burst``
and a run split at a 4 KB boundary (both inside a chunk).

``bug``: ``"max_burst"`` asserts bursts of at most ``max_burst - 1`` beats (must fail).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, Signal

from hw.config import HWConfig, ceil_log2, preset
from hw.kvmu.kvmu import KVMemoryUnit

from .props import Env

__all__ = ["KVMUHarness", "kvmu_config"]

_PROPS = ("stream", "axi")
_BUGS = (None, "max_burst")


def kvmu_config() -> HWConfig:
    """``tiny`` cut down for the KVMU (see the module docstring)."""
    return preset("tiny").replace(
        hcu_lanes=2,
        topk_k=2,
        wtu_lanes=2,
        token_id_bits=3,
        chunk_tokens=4,
        kv_chunks=4,
        axi_addr_bits=14,
        axi_data_bits=256,
        max_burst=20,
        resv={"max_clusters": 4, "head_dim": 192},
    )


class KVMUHarness(Elaboratable):
    def __init__(
        self, cfg: HWConfig | None = None, *, props: str = "stream", bug=None, outstanding=2
    ):
        if props not in _PROPS:
            self._MustUse__silence = True
            raise ValueError(f"props must be one of {_PROPS}, not {props!r}")
        if bug not in _BUGS:
            self._MustUse__silence = True
            raise ValueError(f"bug must be one of {_BUGS}, not {bug!r}")
        self.cfg = cfg if cfg is not None else kvmu_config()
        self.props = props
        self.bug = bug
        self.outstanding = outstanding

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        env = Env(m)
        m.submodules.dut = dut = KVMemoryUnit(cfg, outstanding=self.outstanding)
        axi = dut.m_axi
        env.drive_source(dut.assign, name="assign")
        env.drive_source(dut.selected, name="selected")
        for s, name in ((dut.slot, "slot"), (dut.kv, "kv"), (dut.summary, "summary")):
            env.drive_sink(s, name=name)
        m.d.comb += dut.clear.eq(env.any(1, name="clear"))
        m.d.comb += [
            axi.arready.eq(env.any(1, name="arready")),
            axi.rvalid.eq(env.any(1, name="rvalid")),
            axi.rdata.eq(env.any(cfg.axi_data_bits, name="rdata")),
            axi.rresp.eq(env.any(2, name="rresp")),
            axi.rlast.eq(env.any(1, name="rlast")),
            axi.rid.eq(0),
        ]
        # The slave keeps R stable until rready (AXI).
        r_held = env.past(axi.rvalid & ~axi.rready, name="r_held") & env.after_reset
        r_prev = env.past(axi.rdata, name="rdata")
        r_prev_meta = env.past(axi.rresp, name="rresp")
        r_prev_last = env.past(axi.rlast, name="rlast")
        with m.If(r_held):
            m.d.comb += Assume(
                axi.rvalid
                & (axi.rdata == r_prev)
                & (axi.rresp == r_prev_meta)
                & (axi.rlast == r_prev_last)
            )

        env.assert_stable(dut.slot, name="slot", unless=dut.clear)
        env.assert_stable(dut.kv, name="kv")
        if self.props == "axi":
            # Not in the k-induction task: from an unreachable state (SUMMARY with bursts
            # still open) an R beat with an error response changes ``summary.error``, and
            # the harness cannot see the unit's state to rule it out.
            env.assert_stable(dut.summary, name="summary")
        ar = (axi.araddr, axi.arlen, axi.arsize, axi.arburst, axi.arid)
        ar_held = env.past(axi.arvalid & ~axi.arready, name="ar_held") & env.after_reset
        for k, sig in enumerate(ar):
            prev = env.past(sig, name=f"ar{k}")
            with m.If(ar_held):
                m.d.comb += Assert(sig == prev, f"AR: field {k} changed before arready")
        with m.If(ar_held):
            m.d.comb += Assert(axi.arvalid, "AR: arvalid dropped before arready")
        if self.props == "axi":
            self._axi(m, env, dut)
        return m

    def _axi(self, m, env, dut):
        cfg = self.cfg
        axi = dut.m_axi
        bus = cfg.axi_data_bits // 8
        chunk_bytes = cfg.chunk_tokens * cfg.kv_token_bytes
        area_end = cfg.kv_base + cfg.kv_chunks * chunk_bytes
        beats = Signal(9, name="ar_beats")
        end = Signal(cfg.axi_addr_bits + 1, name="ar_end")
        m.d.comb += [beats.eq(axi.arlen + 1), end.eq(axi.araddr + beats * bus)]
        limit = cfg.max_burst - 1 if self.bug == "max_burst" else cfg.max_burst
        with m.If(axi.arvalid):
            m.d.comb += [
                Assert(beats <= limit, "AR: burst longer than max_burst"),
                Assert(axi.araddr[: ceil_log2(bus)] == 0, "AR: address not bus-aligned"),
                Assert(
                    (axi.araddr[:12] + beats * bus) <= 4096, "AR: burst crosses a 4 KB boundary"
                ),
                Assert((axi.araddr >= cfg.kv_base) & (end <= area_end), "AR: outside the KV area"),
                Assert(axi.arsize == ceil_log2(bus), "AR: not full-width"),
                Assert(axi.arburst == 1, "AR: not INCR"),
                Assert(axi.arid == 0, "AR: ID not 0"),
            ]

        # Bursts issued and not yet closed by rlast; the slave answers only those.
        open_ = Signal(range(self.outstanding + 2), name="open_bursts")
        ar_hs = axi.arvalid & axi.arready
        r_close = axi.rvalid & axi.rready & axi.rlast
        m.d.comb += Assume(~axi.rvalid | (open_ != 0))
        m.d.comb += Assert(open_ <= self.outstanding, "AR: more bursts open than outstanding")
        m.d.sync += open_.eq(open_ + ar_hs - r_close)
        # Bursts and beats since the last summary.
        n_bursts = Signal(8, name="m_bursts")
        n_beats = Signal(12, name="m_beats")
        with m.If(ar_hs):
            m.d.sync += [n_bursts.eq(n_bursts + 1), n_beats.eq(n_beats + beats)]
        s = dut.summary
        with m.If(s.valid):
            m.d.comb += [
                Assert(open_ == 0, "summary: before the last R beat"),
                Assert(s.payload.bursts == n_bursts, "summary: bursts differ from the ARs"),
                Assert(s.payload.beats == n_beats, "summary: beats differ from the ARs"),
            ]
            with m.If(s.ready):
                m.d.sync += [n_bursts.eq(0), n_beats.eq(0)]

        # Slots: unique since the last clear.
        ct = cfg.chunk_tokens
        used = Signal(cfg.kv_chunks * ct, name="m_used_slots")
        sl = dut.slot
        idx = sl.payload.chunk * ct + sl.payload.slot
        with m.If(sl.valid & ~sl.payload.full):
            m.d.comb += [
                Assert(sl.payload.slot < ct, "slot: index not below chunk_tokens"),
                Assert(~used.bit_select(idx, 1), "slot: (chunk, slot) given twice"),
            ]
        with m.If(dut.clear):
            m.d.sync += used.eq(0)
        with m.Elif(sl.valid & sl.ready & ~sl.payload.full):
            m.d.sync += used.eq(used | (1 << idx))

        # Covers: consecutive ARs, the second starting where the first ended inside a chunk.
        prev_end = Signal(cfg.axi_addr_bits + 1, name="prev_ar_end")
        prev_beats = Signal(9, name="prev_ar_beats")
        with m.If(ar_hs):
            m.d.sync += [prev_end.eq(end), prev_beats.eq(beats)]
        split = ar_hs & (axi.araddr == prev_end) & ((prev_end - cfg.kv_base) % chunk_bytes != 0)
        m.d.comb += [
            Cover(s.valid & (s.payload.bursts >= 3), "summary after 3 bursts"),
            Cover(split & (prev_beats == cfg.max_burst), "split at max_burst"),
            Cover(split & (prev_end[:12] == 0) & (prev_beats < cfg.max_burst), "split at 4 KB"),
        ]
