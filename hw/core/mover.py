"""``ContextMover``: ``SWITCH_CTX``'s engine, a context's tables between the core and DRAM.

Given the regions of ``hw.core.contexts.context_regions``, one ``start`` stores (``save``)
the active context's tables to ``save_base``, loads (``load``) another context's from
``load_base``, or both at once (a **swap**, what ``SWITCH_CTX`` does): region by region, in
order, each at its occupancy. A store moves the rows the ``<name>_rows`` inputs gave at
``start`` (the active context's), a load the rows they give when the region begins (so a
load's first region, the scalars, sets the rows of the others). ``rows x beats_per_row``
beats move at ``base + offset`` in INCR bursts of up to ``burst`` beats (a power of two;
the regions are 4 KiB-aligned, so no burst crosses 4 KiB), ID 0, full-width beats,
``wstrb`` all ones.

Store: AW runs ahead of W; a row is read from its table port (``addr`` held, ``rdata`` the
next cycle) and leaves as ``beats_per_row`` W beats, the next row's read in the cycle of
the last beat, so W moves one beat per cycle while ``wready`` is high; a W beat leaves
only after the AW of its burst. Load: AR runs ahead; R beats assemble a row, written at
``waddr`` at its last beat. In a swap the two run together on AXI's independent read and
write channels, so a region takes about the longer of its store and its load, not their
sum; a loaded row may replace a stored one only once that row has left, so R waits
(``rready`` low) while the load's row is one the store has still to send. The next region
begins when both are done. ``busy`` falls once every region moved (a store: every B
response arrived); ``error`` is then high if a response was not OKAY (it stays until the
next ``start``). ``beats`` is the data beats moved this cycle (W and R: 0, 1 or 2).

``background`` (the core's prefetcher, which shares the bus with the other commands'
masters through ``hw.core.arbiter``, every one of them on ID 0, so in order):

- a load's AR waits until the store has sent every row its burst will replace (the whole
  store, if the load has more rows), so its R beats are never held back: a master sharing
  in-order R and W channels must not make its R depend on its own W (the other master's R
  would wait behind it);
- its bursts are ``prefetch_burst`` beats (at most ``max_burst`` and 4 KiB), with one in
  flight per direction: an AR only once the previous burst's last R beat arrived, an AW
  only once every W beat of the previous one left (its own W beats then follow at once).
  Another master's AR or AW, behind one of ours in the slave's order, so waits for at most
  one short burst, not for every burst of a region issued ahead.
- ``hurry`` (the core: a command waits for the move, or no command writes while it runs)
  lifts the one-in-flight limit until the move ends: AR and AW run ahead as in a plain
  mover.
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

    def __init__(self, cfg: HWConfig, regions: tuple[Region, ...], *, background: bool = False):
        self._cfg = cfg
        self._regions = regions
        self._background = background
        members = {
            "start": In(1),
            "save": In(1),
            "load": In(1),
            "save_base": In(cfg.axi_addr_bits),
            "load_base": In(cfg.axi_addr_bits),
            "busy": Out(1),
            "error": Out(1),
            "beats": Out(2),
            "m_axi": Out(axi4_signature(cfg.axi_addr_bits, cfg.axi_data_bits)),
        }
        if background:
            members["hurry"] = In(1)
        for g in regions:
            members[f"{g.name}_rows"] = In(range(g.max_rows + 1))
            members[g.name] = Out(table_port(g.row_bits, g.max_rows))
        super().__init__(members)

    @staticmethod
    def burst(cfg: HWConfig, background: bool = False) -> int:
        """Beats per burst: a power of two, at most ``max_burst`` (and ``prefetch_burst``
        for a ``background`` mover) and 4 KiB."""
        most = min(cfg.max_burst, 4096 // (cfg.axi_data_bits // 8))
        if background:
            most = min(most, cfg.prefetch_burst)
        return 1 << (most.bit_length() - 1)

    def elaborate(self, platform):
        cfg, regions = self._cfg, self._regions
        m = Module()
        bus = cfg.axi_data_bits
        bus_bytes = bus // 8
        burst = self.burst(cfg, self._background)
        most = max(g.max_rows * g.beats_per_row for g in regions)
        max_rows = max(g.max_rows for g in regions)
        max_bpr = max(g.beats_per_row for g in regions)
        axi = self.m_axi

        save, load = Signal(name="save"), Signal(name="load")
        reg = Signal(range(len(regions) + 1), name="region")
        # the active context's rows, from start (a load changes the inputs)
        saved_rows = [Signal(range(g.max_rows + 1), name=f"{g.name}_saved") for g in regions]
        s_rows = Signal(range(max_rows + 1), name="store_rows")  # this region's
        error = Signal(name="error_seen")
        pending_b = Signal(range(most + 2), name="pending_b")  # bursts awaiting their B
        rush = Signal(name="rush")  # hurry seen during this move

        class Side:
            """One direction's counters: addresses ahead of data, rows of data."""

            def __init__(self, tag):
                self.addr = Signal(cfg.axi_addr_bits, name=f"{tag}_addr")  # next burst's
                self.a_left = Signal(range(most + 1), name=f"{tag}_addr_left")
                self.a_done = Signal(range(most + 1), name=f"{tag}_addressed")
                self.d_done = Signal(range(most + 1), name=f"{tag}_moved")
                self.d_left = Signal(range(most + 1), name=f"{tag}_data_left")
                self.row = Signal(range(max_rows + 1), name=f"{tag}_row")
                self.beat = Signal(range(max(2, max_bpr)), name=f"{tag}_beat")
                self.n = Signal(range(burst + 1), name=f"{tag}_burst_len")
                m.d.comb += self.n.eq(Mux(self.a_left < burst, self.a_left, burst))

            def begin(self, addr, beats):
                m.d.sync += [
                    self.addr.eq(addr),
                    self.a_left.eq(beats),
                    self.d_left.eq(beats),
                    self.a_done.eq(0),
                    self.d_done.eq(0),
                    self.row.eq(0),
                    self.beat.eq(0),
                ]

            def addressed(self):
                m.d.sync += [
                    self.addr.eq(self.addr + self.n * bus_bytes),
                    self.a_left.eq(self.a_left - self.n),
                    self.a_done.eq(self.a_done + self.n),
                ]

            def moved(self, last):
                m.d.sync += [
                    self.d_done.eq(self.d_done + 1),
                    self.d_left.eq(self.d_left - 1),
                    self.beat.eq(self.beat + 1),
                ]
                with m.If(last):
                    m.d.sync += [self.beat.eq(0), self.row.eq(self.row + 1)]

            @property
            def done(self):
                return (self.a_left == 0) & (self.d_left == 0)

        st, ld = Side("store"), Side("load")
        acc = Signal(bus * max(1, max_bpr - 1), name="acc")
        bpr = Signal(range(max_bpr + 1), name="beats_per_row")  # this region's
        w_hs = axi.wvalid & axi.wready
        r_hs = axi.rvalid & axi.rready
        aw_hs = axi.awvalid & axi.awready
        b_hs = axi.bvalid & axi.bready
        m.d.comb += [
            self.error.eq(error),
            axi.awaddr.eq(st.addr),
            axi.awlen.eq(st.n - 1),
            axi.araddr.eq(ld.addr),
            axi.arlen.eq(ld.n - 1),
            axi.arsize.eq(ceil_log2(bus_bytes)),
            axi.awsize.eq(ceil_log2(bus_bytes)),
            axi.arburst.eq(_INCR),
            axi.awburst.eq(_INCR),
            axi.wstrb.eq((1 << bus_bytes) - 1),
            axi.bready.eq(1),
        ]
        m.d.sync += pending_b.eq(pending_b + aw_hs - b_hs)
        with m.If(b_hs & (axi.bresp != 0) | r_hs & (axi.rresp != 0)):
            m.d.sync += error.eq(1)

        with m.FSM(name="mover"):
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [save.eq(self.save), load.eq(self.load), reg.eq(0), error.eq(0)]
                m.d.sync += rush.eq(0)
                for g, saved in zip(regions, saved_rows, strict=True):
                    m.d.sync += saved.eq(getattr(self, f"{g.name}_rows"))
                m.next = "BEGIN"
            with m.State("BEGIN"):  # the region's rows; its first row's read (a store)
                m.d.comb += self.busy.eq(1)
                with m.Switch(reg):
                    for i, g in enumerate(regions):
                        with m.Case(i):
                            port = getattr(self, g.name)
                            m.d.comb += [port.active.eq(1), port.addr.eq(0)]
                            stored = Mux(save, saved_rows[i], 0)
                            loaded = Mux(load, getattr(self, f"{g.name}_rows"), 0)
                            st.begin(self.save_base + g.offset, stored * g.beats_per_row)
                            ld.begin(self.load_base + g.offset, loaded * g.beats_per_row)
                            m.d.sync += s_rows.eq(stored)
                            m.next = "RUN"
                    with m.Default():
                        m.next = "DRAIN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                # Addresses (AW, AR) run ahead of the data; a loaded row waits until the
                # store sent the row it replaces.
                behind = (ld.row < st.row) | (ld.row >= s_rows)
                aw_ok = ar_ok = 1
                if self._background:  # (module docstring)
                    stored = (st.d_left == 0) | (ld.a_done + ld.n + bpr - 1 <= st.d_done)
                    rushed = rush | self.hurry
                    aw_ok = rushed | (st.a_done == st.d_done)
                    ar_ok = stored & (rushed | (ld.a_done == ld.d_done))
                m.d.comb += [
                    axi.awvalid.eq((st.a_left != 0) & aw_ok),
                    axi.arvalid.eq((ld.a_left != 0) & ar_ok),
                    axi.wvalid.eq((st.d_left != 0) & (st.d_done < st.a_done)),
                    axi.wlast.eq((st.d_done[: ceil_log2(burst)] == burst - 1) | (st.d_left == 1)),
                    axi.rready.eq((ld.d_left != 0) & behind),
                    self.beats.eq(w_hs + r_hs),
                ]
                with m.If(aw_hs):
                    st.addressed()
                with m.If(axi.arvalid & axi.arready):
                    ld.addressed()
                with m.Switch(reg):
                    for i, g in enumerate(regions):
                        with m.Case(i):
                            m.d.comb += bpr.eq(g.beats_per_row)
                            self._region(m, g, st, ld, acc, w_hs, r_hs)
                with m.If(st.done & ld.done):
                    m.d.sync += reg.eq(reg + 1)
                    m.next = "BEGIN"
            with m.State("DRAIN"):  # a store's last B responses
                m.d.comb += self.busy.eq(1)
                with m.If(pending_b == 0):
                    m.next = "IDLE"
        if self._background:
            with m.If(self.hurry):  # sticky until the next start: AR / AW valid stay up
                m.d.sync += rush.eq(1)
        return m

    def _region(self, m, g: Region, st, ld, acc, w_hs, r_hs) -> None:
        """Region ``g``'s rows: read and sent as W beats, and assembled from R beats."""
        bus, bpr = self._cfg.axi_data_bits, g.beats_per_row
        port = getattr(self, g.name)
        pad = bpr * bus - g.row_bits
        padded = Cat(port.rdata, Const(0, pad)) if pad else port.rdata
        m.d.comb += [
            port.active.eq(1),
            # a store reads the next row in the cycle of the row's last beat
            port.addr.eq(st.row + (w_hs & (st.beat == bpr - 1))),
            port.waddr.eq(ld.row),
            self.m_axi.wdata.eq(padded.word_select(st.beat, bus) if bpr > 1 else padded),
            port.wdata.eq(Cat(acc[: (bpr - 1) * bus], self.m_axi.rdata)[: g.row_bits]),
            port.we.eq(r_hs & (ld.beat == bpr - 1)),
        ]
        with m.If(w_hs):
            st.moved(st.beat == bpr - 1)
        with m.If(r_hs):
            ld.moved(ld.beat == bpr - 1)
            if bpr > 1:
                m.d.sync += acc.word_select(ld.beat, bus).eq(self.m_axi.rdata)
