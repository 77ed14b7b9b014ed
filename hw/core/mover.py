"""``ContextMover``: ``SWITCH_CTX``'s engine, a context's tables between the core and DRAM.

Given the regions of ``hw.core.contexts.context_regions``, one ``start`` stores (``save``) or
loads every region in order, each at its occupancy: the region's ``<name>_rows`` input is
read when the region begins (so a load's first region, the scalars, sets the rows of the
others), and ``rows x beats_per_row`` beats move at ``base + offset`` in INCR bursts of up
to ``burst`` beats (a power of two; the regions are 4 KiB-aligned, so no burst crosses
4 KiB), ID 0, full-width beats, ``wstrb`` all ones.

Store: AW runs ahead of W; a row is read from its table port (``addr`` held, ``rdata`` the
next cycle) and leaves as ``beats_per_row`` W beats, the next row's read in the cycle of
the last beat, so W moves one beat per cycle while ``wready`` is high; a W beat leaves
only after the AW of its burst. Load: AR runs ahead; R beats assemble a row, written at its
last beat (``rready`` is always high). ``busy`` falls once every region moved (a store:
every B response arrived);
``error`` is then high if a response was not OKAY (it stays until the next ``start``).
``beats`` strobes each moved data beat (W or R).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, ceil_log2
from ..kvmu import axi4_signature
from ..tableport import table_port
from .contexts import Region

__all__ = ["ContextMover"]

_INCR = 1


class ContextMover(wiring.Component):
    """See the module docstring."""

    def __init__(self, cfg: HWConfig, regions: tuple[Region, ...]):
        self._cfg = cfg
        self._regions = regions
        members = {
            "start": In(1),
            "save": In(1),
            "base": In(cfg.axi_addr_bits),
            "busy": Out(1),
            "error": Out(1),
            "beats": Out(1),
            "m_axi": Out(axi4_signature(cfg.axi_addr_bits, cfg.axi_data_bits)),
        }
        for g in regions:
            members[f"{g.name}_rows"] = In(range(g.max_rows + 1))
            members[g.name] = Out(table_port(g.row_bits, g.max_rows))
        super().__init__(members)

    @staticmethod
    def burst(cfg: HWConfig) -> int:
        """Beats per burst: a power of two, at most ``max_burst`` and 4 KiB."""
        return 1 << (min(cfg.max_burst, 4096 // (cfg.axi_data_bits // 8)).bit_length() - 1)

    def elaborate(self, platform):
        cfg, regions = self._cfg, self._regions
        m = Module()
        bus = cfg.axi_data_bits
        bus_bytes = bus // 8
        burst = self.burst(cfg)
        most = max(g.max_rows * g.beats_per_row for g in regions)
        axi = self.m_axi

        save = Signal(name="save")
        reg = Signal(range(len(regions) + 1), name="region")
        a_addr = Signal(cfg.axi_addr_bits, name="addr")  # the next burst's address
        a_left = Signal(range(most + 1), name="addr_left")  # beats not yet addressed
        a_done = Signal(range(most + 1), name="addressed")  # beats addressed (region)
        d_done = Signal(range(most + 1), name="moved")  # data beats moved (region)
        d_left = Signal(range(most + 1), name="data_left")
        row = Signal(range(max(g.max_rows for g in regions) + 1), name="row")
        beat = Signal(range(max(2, max(g.beats_per_row for g in regions))), name="beat")
        acc = Signal(bus * max(1, max(g.beats_per_row for g in regions) - 1), name="acc")
        pending_b = Signal(range(most + 2), name="pending_b")  # bursts awaiting their B
        error = Signal(name="error_seen")
        n = Signal(range(burst + 1), name="burst_len")

        m.d.comb += [
            self.error.eq(error),
            n.eq(Mux(a_left < burst, a_left, burst)),
            axi.araddr.eq(a_addr),
            axi.awaddr.eq(a_addr),
            axi.arlen.eq(n - 1),
            axi.awlen.eq(n - 1),
            axi.arsize.eq(ceil_log2(bus_bytes)),
            axi.awsize.eq(ceil_log2(bus_bytes)),
            axi.arburst.eq(_INCR),
            axi.awburst.eq(_INCR),
            axi.wstrb.eq((1 << bus_bytes) - 1),
            axi.bready.eq(1),
        ]
        aw_hs = axi.awvalid & axi.awready
        b_hs = axi.bvalid & axi.bready
        m.d.sync += pending_b.eq(pending_b + aw_hs - b_hs)
        with m.If(b_hs & (axi.bresp != 0) | axi.rvalid & axi.rready & (axi.rresp != 0)):
            m.d.sync += error.eq(1)

        with m.FSM(name="mover"):
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [save.eq(self.save), reg.eq(0), error.eq(0)]
                m.next = "BEGIN"
            with m.State("BEGIN"):  # the region's rows; its first row's read (a store)
                m.d.comb += self.busy.eq(1)
                m.d.sync += [row.eq(0), beat.eq(0), a_done.eq(0), d_done.eq(0)]
                with m.Switch(reg):
                    for i, g in enumerate(regions):
                        with m.Case(i):
                            beats = getattr(self, f"{g.name}_rows") * g.beats_per_row
                            port = getattr(self, g.name)
                            m.d.comb += [port.active.eq(1), port.addr.eq(0)]
                            m.d.sync += [
                                a_left.eq(beats),
                                d_left.eq(beats),
                                a_addr.eq(self.base + g.offset),
                            ]
                            m.next = "RUN"
                    with m.Default():
                        m.next = "DRAIN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                # Addresses (AR or AW) run ahead of the data.
                m.d.comb += [
                    axi.arvalid.eq(~save & (a_left != 0)),
                    axi.awvalid.eq(save & (a_left != 0)),
                ]
                with m.If(axi.arvalid & axi.arready | aw_hs):
                    m.d.sync += [
                        a_addr.eq(a_addr + n * bus_bytes),
                        a_left.eq(a_left - n),
                        a_done.eq(a_done + n),
                    ]
                w_hs = axi.wvalid & axi.wready
                r_hs = axi.rvalid & axi.rready
                m.d.comb += [
                    axi.wvalid.eq(save & (d_left != 0) & (d_done < a_done)),
                    axi.wlast.eq((d_done[: ceil_log2(burst)] == burst - 1) | (d_left == 1)),
                    axi.rready.eq(~save),
                    self.beats.eq(w_hs | r_hs),
                ]
                with m.If(w_hs | r_hs):
                    m.d.sync += [d_done.eq(d_done + 1), d_left.eq(d_left - 1), beat.eq(beat + 1)]
                with m.Switch(reg):
                    for i, g in enumerate(regions):
                        with m.Case(i):
                            self._region(m, g, save, row, beat, acc, w_hs, r_hs)
                with m.If((a_left == 0) & (d_left == 0)):
                    m.d.sync += reg.eq(reg + 1)
                    m.next = "BEGIN"
            with m.State("DRAIN"):  # a store's last B responses
                m.d.comb += self.busy.eq(1)
                with m.If(pending_b == 0):
                    m.next = "IDLE"
        return m

    def _region(self, m, g: Region, save, row, beat, acc, w_hs, r_hs) -> None:
        """Region ``g``'s rows: read and sent as W beats, or assembled from R beats."""
        bus, bpr = self._cfg.axi_data_bits, g.beats_per_row
        port = getattr(self, g.name)
        last = beat == bpr - 1
        pad = bpr * bus - g.row_bits
        padded = Cat(port.rdata, Const(0, pad)) if pad else port.rdata
        m.d.comb += [
            port.active.eq(1),
            # a store reads the next row in the cycle of the row's last beat
            port.addr.eq(row + (save & w_hs & last)),
            self.m_axi.wdata.eq(padded.word_select(beat, bus) if bpr > 1 else padded),
            port.wdata.eq(Cat(acc[: (bpr - 1) * bus], self.m_axi.rdata)[: g.row_bits]),
            port.we.eq(r_hs & last),
        ]
        if bpr > 1:
            with m.If(r_hs):
                m.d.sync += acc.word_select(beat, bus).eq(self.m_axi.rdata)
        with m.If((w_hs | r_hs) & last):
            m.d.sync += [beat.eq(0), row.eq(row + 1)]
