"""BurstReader: a run of consecutive bus beats read from DRAM, as a stream."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, ceil_log2, check_config
from ..kvmu import axi4_read_signature
from .mover import ContextMover

__all__ = ["BurstReader"]


class BurstReader(wiring.Component):
    """``start`` reads ``count`` bus beats from ``addr`` (a multiple of 4 KiB, or at least of
    the burst's bytes) in INCR bursts of ``ContextMover.burst(cfg)`` beats (a power of two
    that divides 4 KiB, so no burst crosses 4 KiB), ID 0, full-width; AR runs ahead of R.
    The R beats leave on ``beats`` in order (``rready`` is its ``ready``). ``busy`` from
    ``start`` until the last R beat left (the owner of the bus checks ``rresp``). The core
    streams a context's representative keys with it."""

    def __init__(self, cfg: HWConfig, max_beats: int):
        check_config(self, cfg)
        self._cfg = cfg
        super().__init__(
            {
                "start": In(1),
                "addr": In(cfg.axi_addr_bits),
                "count": In(range(max_beats + 1)),
                "busy": Out(1),
                "beats": Out(stream.Signature(cfg.axi_data_bits)),
                "m_axi": Out(axi4_read_signature(cfg.axi_addr_bits, cfg.axi_data_bits)),
            }
        )

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        axi = self.m_axi
        bus_bytes = cfg.axi_data_bits // 8
        burst = ContextMover.burst(cfg)
        a_addr = Signal(cfg.axi_addr_bits, name="addr")
        a_left = Signal.like(self.count, name="addr_left")  # beats not yet addressed
        d_left = Signal.like(self.count, name="data_left")  # beats not yet received
        n = Signal(range(burst + 1), name="burst_len")
        m.d.comb += [
            n.eq(Mux(a_left < burst, a_left, burst)),
            axi.araddr.eq(a_addr),
            axi.arlen.eq(n - 1),
            axi.arsize.eq(ceil_log2(bus_bytes)),
            axi.arburst.eq(1),  # INCR
            axi.arvalid.eq(a_left != 0),
            self.beats.valid.eq(axi.rvalid & (d_left != 0)),
            self.beats.payload.eq(axi.rdata),
            axi.rready.eq(self.beats.ready & (d_left != 0)),
            self.busy.eq(d_left != 0),
        ]
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += [a_addr.eq(a_addr + n * bus_bytes), a_left.eq(a_left - n)]
        with m.If(axi.rvalid & axi.rready):
            m.d.sync += d_left.eq(d_left - 1)
        with m.If(self.start):
            m.d.sync += [
                a_addr.eq(self.addr),
                a_left.eq(self.count),
                d_left.eq(self.count),
            ]
        return m
