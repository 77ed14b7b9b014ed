"""``KVWriter``: the KVMU's AXI4 write path (a token's KV to its slot in the paged area).

Bit-exact contract with ``golden.kvmu.write_bursts``: a token written at byte address
``addr`` (``KVMemoryUnit.slot.addr``, a multiple of the bus width) becomes the AW INCR
bursts ``write_bursts(layout, addr)`` — ``cfg.axi_beats_per_token`` beats from ``addr``, split
at ``cfg.max_burst`` beats and at 4 KB boundaries — in that order, with ``awid = 0``,
``awsize = log2(bus bytes)``, ``awburst = INCR``; its data beats go out on W in stream
order, ``wstrb`` all ones, ``wlast`` on the last beat of each burst.

Ports:

- ``cmd`` (in, ``wr_cmd``): one token, its byte address; with ``half``, half a token's
  beats (the core writes a cluster's FP32 key sum as a token and its BF16 representative
  key as half of one).
- ``data`` (in, ``wr_data``): exactly ``cfg.axi_beats_per_token`` beats per ``cmd`` (half as
  many with ``half``), in order (K then V). A token's beats are taken only after its ``cmd``
  was accepted (the source must not hold ``cmd`` back until its data is gone).
- ``done`` (out, ``wr_done``): one beat per token, in token order, once every B response of
  its bursts arrived; ``error`` if any of them was not OKAY (``bresp != 0``).
- ``m_axi`` (out, ``axi4_write_signature``): AW, W and B.

Structure: a burst splitter turns each ``cmd`` into bursts (one per cycle) and pushes each
into three queues of ``outstanding`` entries: AW (address, length), W (length) and B
(``last burst of its token``). AW and W are independent: AW may run ahead of W by up to
``outstanding`` bursts and W never waits for ``awready`` (AXI allows a slave to wait for
WVALID before AWREADY). A burst leaves the B queue with its B response, so at most
``outstanding`` bursts are in flight (split, not yet answered). W beats go through one
output register (AXI-stable ``wvalid``/``wdata``) at one beat per cycle. B responses pass
to ``done`` combinationally: ``bready`` is held low on a token's last B response until
``done`` is ready, so a stalled ``done`` stalls B (and with it, eventually, AW and W).

Cycle behaviour without stalls (``cmd``/``data`` always valid, the slave always ready):
the first AW of a token is valid ``CMD_TO_AW = 2`` cycles after its ``cmd`` handshake and
its first W beat is transferred ``CMD_TO_W = 3`` cycles after it; the splitter takes one
cycle per burst and accepts the next ``cmd`` in the cycle of the previous token's last
burst, so W then carries one beat per cycle across bursts and back-to-back tokens
(``n`` tokens: ``n * axi_beats_per_token`` consecutive W cycles) as long as fewer than
``outstanding`` bursts wait for their B response. ``done`` is valid in the cycle of the
token's last B response.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, ceil_log2, check_config
from .layouts import axi4_write_signature, check_outstanding, kvmu_layouts

__all__ = ["CMD_TO_AW", "CMD_TO_W", "KVWriter"]

#: Cycles from a ``cmd`` handshake to its first AW being valid (no stalls).
CMD_TO_AW = 2
#: Cycles from a ``cmd`` handshake to its first W handshake (no stalls).
CMD_TO_W = 3
_INCR = 1
_BOUNDARY_BITS = 12


class KVWriter(wiring.Component):
    """AXI4 write path of the KVMU (see the module docstring). ``outstanding`` bounds the
    bursts in flight (split but not yet answered on B), 1..256."""

    def __init__(self, cfg: HWConfig, *, outstanding: int = 4):
        check_config(self, cfg)
        check_outstanding(self, outstanding)
        self._cfg = cfg
        self._outstanding = outstanding
        lay = kvmu_layouts(cfg)
        super().__init__(
            {
                "cmd": In(stream.Signature(lay.wr_cmd)),
                "data": In(stream.Signature(lay.wr_data)),
                "done": Out(stream.Signature(lay.wr_done)),
                "m_axi": Out(axi4_write_signature(cfg.axi_addr_bits, cfg.axi_data_bits)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def outstanding(self) -> int:
        return self._outstanding

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        axi = self.m_axi
        bus_bytes = cfg.axi_data_bits // 8
        bpt = cfg.axi_beats_per_token
        abits = cfg.axi_addr_bits

        m.submodules.awq = awq = fifo.SyncFIFO(width=abits + 8, depth=self._outstanding)
        m.submodules.wq = wq = fifo.SyncFIFO(width=8, depth=self._outstanding)
        m.submodules.bq = bq = fifo.SyncFIFO(width=1, depth=self._outstanding)

        # ---- burst splitter: cmd -> (addr, beats) bursts, one per cycle ----------------
        addr = Signal(abits)
        rem = Signal(range(bpt + 1))  # beats of the current token not yet split; 0 = idle
        to_boundary = ((1 << _BOUNDARY_BITS) - addr[:_BOUNDARY_BITS]) >> ceil_log2(bus_bytes)
        cap = Signal(range(cfg.max_burst + 1))
        n = Signal(range(cfg.max_burst + 1))
        push = Signal()
        last = Signal()
        m.d.comb += [
            cap.eq(Mux(to_boundary < cfg.max_burst, to_boundary, cfg.max_burst)),
            n.eq(Mux(rem < cap, rem, cap)),
            last.eq(rem == n),
            push.eq((rem != 0) & awq.w_rdy & wq.w_rdy & bq.w_rdy),
            awq.w_data.eq(Cat(addr, (n - 1)[:8])),
            awq.w_en.eq(push),
            wq.w_data.eq((n - 1)[:8]),
            wq.w_en.eq(push),
            bq.w_data.eq(last),
            bq.w_en.eq(push),
            self.cmd.ready.eq((rem == 0) | (push & last)),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                addr.eq(self.cmd.payload.addr),
                rem.eq(Mux(self.cmd.payload.half, bpt // 2, bpt)),
            ]
        with m.Elif(push):
            m.d.sync += [addr.eq(addr + n * bus_bytes), rem.eq(rem - n)]

        # ---- AW: straight from the queue head (stable until accepted) -----------------
        m.d.comb += [
            axi.awid.eq(0),
            axi.awaddr.eq(awq.r_data[:abits]),
            axi.awlen.eq(awq.r_data[abits:]),
            axi.awsize.eq(ceil_log2(bus_bytes)),
            axi.awburst.eq(_INCR),
            axi.awvalid.eq(awq.r_rdy),
            awq.r_en.eq(axi.awready),
        ]

        # ---- W: data beats of the head burst through one output register ---------------
        beat = Signal(8)  # beat index within the head burst of the W queue
        w_valid = Signal()
        w_data = Signal(cfg.axi_data_bits)
        w_last = Signal()
        load = Signal()
        m.d.comb += [
            self.data.ready.eq(wq.r_rdy & (~w_valid | axi.wready)),
            load.eq(self.data.valid & self.data.ready),
            wq.r_en.eq(load & (beat == wq.r_data)),
            axi.wdata.eq(w_data),
            axi.wstrb.eq((1 << bus_bytes) - 1),
            axi.wlast.eq(w_last),
            axi.wvalid.eq(w_valid),
        ]
        with m.If(load):
            m.d.sync += [
                w_valid.eq(1),
                w_data.eq(self.data.payload.data),
                w_last.eq(beat == wq.r_data),
                beat.eq(Mux(beat == wq.r_data, 0, beat + 1)),
            ]
        with m.Elif(axi.wready):
            m.d.sync += w_valid.eq(0)

        # ---- B: count responses per token, one done beat on its last burst ------------
        error = Signal()  # a non-OKAY response among the token's earlier bursts
        b_last = bq.r_data[0]
        m.d.comb += [
            self.done.valid.eq(axi.bvalid & bq.r_rdy & b_last),
            self.done.payload.error.eq(error | (axi.bresp != 0)),
            axi.bready.eq(bq.r_rdy & (~b_last | self.done.ready)),
            bq.r_en.eq(axi.bvalid & axi.bready),
        ]
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += error.eq(Mux(b_last, 0, error | (axi.bresp != 0)))
        return m
