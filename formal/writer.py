"""Formal harness of ``KVWriter``, the KVMU's AXI4 write master.

The size (``writer_config``): the KVMU's 256-bit bus and 14-bit addresses with ``head_dim``
24, so a token is 96 bytes = 3 beats, ``max_burst`` 2 (every token is split) and
``outstanding`` 2: whole tokens, their splits at ``max_burst`` and at 4 KB boundaries and
their ``done`` beats fit in a short bounded run. The command source gives bus-aligned
addresses whose token fits below the top of the address space (the unit's contract);
``data`` beats are free.

``props="stream"``: ``done`` holds valid and payload until its handshake; AW (``awvalid``
and every AW field) until ``awready``; W (``wvalid``, ``wdata``, ``wstrb``, ``wlast``) until
``wready``. The slave keeps B stable until ``bready``. k-induction does not prove these:
from states reset never reaches (a ``SyncFIFO`` whose level disagrees with its pointers)
the head of the AW queue is overwritten, and a harness sees ports only. They are part of
the bounded ``axi`` task instead.

``props="axi"`` (bounded): the stream rules above, and the slave answers B only for bursts
whose AW and last W beat it has seen. Asserted: every AW is INCR, ID 0, full-width,
bus-aligned, ``1 <= beats <= max_burst``, not crossing a 4 KB boundary; ``wstrb`` all ones;
the W bursts, in order, have exactly the lengths of the AW bursts (``wlast`` on the last
beat of each, whichever channel runs ahead); bursts issued on AW (and W bursts) not
answered on B never exceed ``outstanding``; never more ``done`` beats than commands.
Covers: a token split at a 4 KB boundary, a burst of ``max_burst`` beats and a ``done``
beat after two bursts or more.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Assume, Cover, Elaboratable, Module, Signal

from hw.config import HWConfig, ceil_log2
from hw.kvmu.writer import KVWriter

from .kvmu import kvmu_config
from .props import Env

__all__ = ["KVWriterHarness", "writer_config"]

_PROPS = ("stream", "axi")


def writer_config() -> HWConfig:
    """``formal.kvmu.kvmu_config`` with 3-beat tokens and 2-beat bursts."""
    return kvmu_config().replace(max_burst=2, resv={"head_dim": 24})


class KVWriterHarness(Elaboratable):
    def __init__(self, cfg: HWConfig | None = None, *, props: str = "stream", outstanding=2):
        if props not in _PROPS:
            self._MustUse__silence = True
            raise ValueError(f"props must be one of {_PROPS}, not {props!r}")
        self.cfg = cfg if cfg is not None else writer_config()
        self.props = props
        self.outstanding = outstanding

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        env = Env(m)
        m.submodules.dut = dut = KVWriter(cfg, outstanding=self.outstanding)
        axi = dut.m_axi
        bus = cfg.axi_data_bits // 8
        env.drive_source(dut.cmd, name="cmd")
        env.drive_source(dut.data, name="data")
        env.drive_sink(dut.done, name="done")
        addr = dut.cmd.payload.addr
        m.d.comb += Assume(
            ~dut.cmd.valid
            | (
                (addr[: ceil_log2(bus)] == 0)
                & (addr + cfg.kv_token_bytes <= 1 << cfg.axi_addr_bits)
            )
        )
        m.d.comb += [
            axi.awready.eq(env.any(1, name="awready")),
            axi.wready.eq(env.any(1, name="wready")),
            axi.bvalid.eq(env.any(1, name="bvalid")),
            axi.bresp.eq(env.any(2, name="bresp")),
            axi.bid.eq(0),
        ]
        b_held = env.past(axi.bvalid & ~axi.bready, name="b_held") & env.after_reset
        b_prev = env.past(axi.bresp, name="bresp")
        with m.If(b_held):
            m.d.comb += Assume(axi.bvalid & (axi.bresp == b_prev))

        env.assert_stable(dut.done, name="done")
        channels = {
            "AW": (
                axi.awvalid,
                axi.awready,
                (axi.awaddr, axi.awlen, axi.awsize, axi.awburst, axi.awid),
            ),
            "W": (axi.wvalid, axi.wready, (axi.wdata, axi.wstrb, axi.wlast)),
        }
        for ch, (valid, ready, fields) in channels.items():
            held = env.past(valid & ~ready, name=f"{ch}_held") & env.after_reset
            with m.If(held):
                m.d.comb += Assert(valid, f"{ch}: valid dropped before ready")
            for k, sig in enumerate(fields):
                prev = env.past(sig, name=f"{ch}{k}")
                with m.If(held):
                    m.d.comb += Assert(sig == prev, f"{ch}: field {k} changed before ready")
        if self.props == "axi":
            self._axi(m, env, dut)
        return m

    def _axi(self, m, env, dut):
        cfg = self.cfg
        axi = dut.m_axi
        bus = cfg.axi_data_bits // 8
        beats = Signal(9, name="aw_beats")
        m.d.comb += beats.eq(axi.awlen + 1)
        with m.If(axi.awvalid):
            m.d.comb += [
                Assert(beats <= cfg.max_burst, "AW: burst longer than max_burst"),
                Assert(axi.awaddr[: ceil_log2(bus)] == 0, "AW: address not bus-aligned"),
                Assert((axi.awaddr[:12] + beats * bus) <= 4096, "AW: burst crosses 4 KB"),
                Assert(axi.awsize == ceil_log2(bus), "AW: not full-width"),
                Assert(axi.awburst == 1, "AW: not INCR"),
                Assert(axi.awid == 0, "AW: ID not 0"),
            ]
        with m.If(axi.wvalid):
            m.d.comb += Assert(axi.wstrb == (1 << bus) - 1, "W: wstrb not all ones")

        # Burst counters (wrapping) and the lengths of whichever channel runs ahead.
        q = 1 << (self.outstanding + 1).bit_length()
        qb = q.bit_length() - 1
        n_aw = Signal(4, name="n_aw")
        n_w = Signal(4, name="n_wlast")
        n_b = Signal(4, name="n_b")
        aw_len = Array(Signal(9, name=f"aw_len{i}") for i in range(q))
        w_len = Array(Signal(9, name=f"w_len{i}") for i in range(q))
        w_beat = Signal(9, name="w_beat")  # beats of the current W burst so far
        aw_hs = axi.awvalid & axi.awready
        w_hs = axi.wvalid & axi.wready
        b_hs = axi.bvalid & axi.bready
        m.d.comb += [
            Assume(~axi.bvalid | ((n_aw - n_b)[:4] != 0) & ((n_w - n_b)[:4] != 0)),
            Assert((n_aw - n_b)[:4] <= self.outstanding, "AW: more bursts open than outstanding"),
            Assert((n_w - n_b)[:4] <= self.outstanding, "W: more bursts open than outstanding"),
        ]
        aw_ahead = (n_aw - n_w)[:4]  # < 8: AW ahead; otherwise W ahead
        with m.If(aw_hs):
            m.d.sync += [n_aw.eq(n_aw + 1), aw_len[n_aw[:qb]].eq(beats)]
            with m.If((n_w - n_aw)[:4].any() & ~(n_w - n_aw)[3]):  # this burst's W is done
                m.d.comb += Assert(beats == w_len[n_aw[:qb]], "AW: length differs from its W")
        with m.If(w_hs):
            m.d.sync += w_beat.eq(w_beat + 1)
            m.d.comb += Assert(w_beat < cfg.max_burst, "W: burst longer than max_burst")
            with m.If(axi.wlast):
                m.d.sync += [n_w.eq(n_w + 1), w_len[n_w[:qb]].eq(w_beat + 1), w_beat.eq(0)]
            with m.If(aw_ahead.any() & ~aw_ahead[3]):  # this burst's AW was seen
                m.d.comb += Assert(
                    axi.wlast == (w_beat + 1 == aw_len[n_w[:qb]]), "W: wlast not on the AW length"
                )
        with m.If(b_hs):
            m.d.sync += n_b.eq(n_b + 1)
        n_cmd = Signal(4, name="n_cmd")
        n_done = Signal(4, name="n_done")
        with m.If(dut.cmd.valid & dut.cmd.ready):
            m.d.sync += n_cmd.eq(n_cmd + 1)
        with m.If(dut.done.valid & dut.done.ready):
            m.d.sync += n_done.eq(n_done + 1)
        with m.If(dut.done.valid):
            m.d.comb += Assert(n_cmd != n_done, "done: more done beats than commands")
        prev_end = Signal(cfg.axi_addr_bits + 1, name="prev_aw_end")
        with m.If(aw_hs):
            m.d.sync += prev_end.eq(axi.awaddr + beats * bus)
        m.d.comb += [
            # One command so far: two contiguous bursts are one token split at 4 KB.
            Cover(
                aw_hs
                & (axi.awaddr == prev_end)
                & (prev_end[:12] == 0)
                & (n_aw != 0)
                & (n_cmd == 1),
                "token split at 4 KB",
            ),
            Cover(aw_hs & (beats == cfg.max_burst), "max_burst burst"),
            Cover(dut.done.valid & dut.done.ready & (n_aw >= 2), "done after 2 bursts"),
        ]
