"""``KVMemoryUnit``: paged, cluster-contiguous KV allocation and burst retrieval over AXI4.

Layout (bit-exact with ``golden.kvmu``): the offloaded KV area at ``cfg.kv_base`` holds
``cfg.kv_chunks`` chunks of ``cfg.chunk_tokens`` token slots of ``cfg.kv_token_bytes``
bytes (K and V in BF16, ``4 * head_dim``). Three tables in ``amaranth.lib.memory``:
``head[cluster]`` (first chunk), ``tail[cluster]`` (last chunk and its fill count, 0 = the
cluster owns no chunk) and ``next[chunk]`` (linked list). New chunks come from a bump
pointer; they are given back only by ``clear`` (a new layer/head context).

Always-kept tokens (sinks and the recent window) stay on the device and never reach this
unit: only tokens that age out of the recent ring are clustered and assigned here (see
``golden.kvmu.RecentWindow``). Reads only: the core writes a token's KV at the address the
unit returns on ``slot`` through the write port ``hw.kvmu.writer.KVWriter`` (AW/W/B; the two
share one AXI4 master, ``hw.kvmu.layouts.axi4_signature``).

Ports:

- ``assign`` (in, HCU output): append the token to its cluster, allocating a chunk when the
  cluster has none or its tail chunk is full; a ``CREATED`` cluster has none, whatever its
  table row held (the core's tables hold another context's rows above the occupancy after
  a ``SWITCH_CTX``), and with the pool exhausted its tail is written empty. ``slot`` (out):
  token id, chunk, slot and byte address (``full`` when the chunk pool is exhausted:
  nothing was stored).
- ``selected`` (in, WTU output, ``last`` on the final cluster): every chunk of each selected
  cluster becomes one run of ``used * beats_per_token`` beats from the chunk's base, split at
  ``max_burst`` beats and at 4 KB boundaries, issued on ``m_axi`` (AR: INCR, full-width
  beats, ID 0; at most ``outstanding`` bursts in flight).
- ``kv`` (out): every R beat with the id of the cluster its burst belongs to, in issue order
  (AXI keeps one ID in order). The token of a beat is ``beat // beats_per_token`` within its
  burst's run; the data itself identifies it in the tests.
- ``summary`` (out): after the last beat of a selection, the clusters, bursts and beats of it
  (bytes = beats * bus bytes) and ``error`` if any R beat had a non-OKAY response.
- ``clear`` (in, strobe): forget every cluster (sweeps ``tail``: ``max_clusters`` cycles,
  also after reset); both inputs are held off meanwhile. A pending ``slot`` beat is dropped.
  With ``bulk=True`` a clear only empties the chunk pool (one cycle): the core creates its
  clusters with ``CREATED`` assignments, which empty their tails themselves, and never
  reads a cluster it did not create in the active context.
- ``busy`` (out): the table sweep, a table update or a selection is in progress.
- With ``bulk=True`` (the core's): ``clusters_bulk`` and ``chunks_bulk``, the chunk lists and
  links as ``hw.tableport`` ports for ``SWITCH_CTX``; ``chunks`` (out), the chunks in use,
  set by ``load`` from ``load_chunks``; ``base`` (in), the active context's region, the KV
  area's address instead of ``kv_base``.

Contract: a selection must not overlap the assignments of the same context (the core
sequences ingest and retrieval); the two state machines share only table read ports.

Cycle behaviour (no stalls): allocation takes ``ALLOC_CYCLES = 3`` cycles per token
(accept, table lookup/update, emit). Retrieval of a cluster with ``k`` chunks and ``b``
bursts takes ``2 + 2*k + b`` cycles of the fetch state machine while ``arready`` is high and
fewer than ``outstanding`` bursts are in flight (accept, table read, per chunk one run
set-up cycle and, except for the last, one ``next`` read, one cycle per burst, one to
close; 3 for a cluster that owns no chunk). R beats pass through combinationally (one per
cycle) while later ARs issue, so a selection is bound by its data beats once bursts are a
few times longer than the AR cost (measured: 392 beats in 394 cycles, sim/bench_kvmu.py).
The summary follows the last R beat after at most 3 cycles (drain check, then the beat).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, ceil_log2, check_config
from ..dre.layouts import Event
from ..tableport import serve, table_port
from .layouts import axi4_read_signature, check_outstanding, kvmu_layouts

__all__ = ["ALLOC_CYCLES", "KVMemoryUnit"]

#: Cycles per allocated token without back-pressure (see the module docstring).
ALLOC_CYCLES = 3
#: AXI4 INCR burst type and the 4 KB boundary no burst may cross.
_INCR = 1
_BOUNDARY_BITS = 12


class KVMemoryUnit(wiring.Component):
    """Paged cluster-contiguous KV memory unit (see the module docstring)."""

    def __init__(self, cfg: HWConfig, *, outstanding: int = 4, bulk: bool = False):
        check_config(self, cfg)
        check_outstanding(self, outstanding)
        self._cfg = cfg
        self._outstanding = outstanding
        self._bulk = bulk
        lay = kvmu_layouts(cfg)
        super().__init__(
            {
                "assign": In(stream.Signature(lay.assign)),
                "slot": Out(stream.Signature(lay.slot)),
                "selected": In(stream.Signature(lay.selected)),
                "kv": Out(stream.Signature(lay.kv)),
                "summary": Out(stream.Signature(lay.summary)),
                "m_axi": Out(axi4_read_signature(cfg.axi_addr_bits, cfg.axi_data_bits)),
                "clear": In(1),
                "busy": Out(1),
                **(kvmu_bulk_members(cfg) if bulk else {}),
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
        bus_bytes = cfg.axi_data_bits // 8
        chunk_bytes = cfg.chunk_tokens * cfg.kv_token_bytes
        bpt = cfg.axi_beats_per_token
        cid = unsigned(cfg.cluster_id_bits)
        chunk_shape = unsigned(cfg.kv_chunk_bits)
        fill_shape = unsigned(cfg.kv_fill_bits)
        tail_layout = data.StructLayout({"chunk": chunk_shape, "fill": fill_shape})

        m.submodules.head = head = Memory(shape=chunk_shape, depth=cfg.max_clusters, init=[])
        m.submodules.tail = tail = Memory(shape=tail_layout, depth=cfg.max_clusters, init=[])
        m.submodules.next = nxt = Memory(shape=chunk_shape, depth=cfg.kv_chunks, init=[])
        head_w, tail_w, next_w = head.write_port(), tail.write_port(), nxt.write_port()
        tail_a = tail.read_port()  # allocation
        head_t, tail_t, next_t = head.read_port(), tail.read_port(), nxt.read_port()

        # ---- allocation ---------------------------------------------------------------
        free = Signal(range(cfg.kv_chunks + 1))
        clr_idx = Signal(cid)
        a_tok = Signal.like(self.assign.payload.token_id)
        a_cl = Signal(cid)
        s_chunk = Signal(chunk_shape)
        s_slot = Signal(fill_shape)
        s_full = Signal()
        tables_ready = Signal()

        # The KV area's base: the active context's region (bulk), else kv_base.
        base = self.base if self._bulk else cfg.kv_base
        a_new = Signal(name="assign_created")  # a created cluster owns no chunk yet
        m.d.comb += [
            self.slot.payload.token_id.eq(a_tok),
            self.slot.payload.chunk.eq(s_chunk),
            self.slot.payload.slot.eq(s_slot),
            self.slot.payload.addr.eq(base + s_chunk * chunk_bytes + s_slot * cfg.kv_token_bytes),
            self.slot.payload.full.eq(s_full),
        ]

        def restart_on_clear():
            # Last in each state, so that a clear wins over the state's own transition.
            with m.If(self.clear):
                if not self._bulk:  # bulk: no sweep, so no sweep index
                    m.d.sync += clr_idx.eq(0)
                m.next = "CLEAR"

        with m.FSM(name="alloc"):
            with m.State("CLEAR"):
                m.d.sync += free.eq(0)
                if self._bulk:  # a created cluster empties its own tail (LOOKUP): no sweep
                    m.next = "IDLE"
                else:
                    m.d.comb += [tail_w.addr.eq(clr_idx), tail_w.data.eq(0), tail_w.en.eq(1)]
                    m.d.sync += clr_idx.eq(clr_idx + 1)
                    with m.If(clr_idx == cfg.max_clusters - 1):
                        m.d.sync += clr_idx.eq(0)
                        m.next = "IDLE"
                restart_on_clear()
            with m.State("IDLE"):
                m.d.comb += [
                    tables_ready.eq(1),
                    self.assign.ready.eq(1),
                    tail_a.addr.eq(self.assign.payload.cluster),
                ]
                with m.If(self.assign.valid):
                    m.d.sync += [
                        a_tok.eq(self.assign.payload.token_id),
                        a_cl.eq(self.assign.payload.cluster),
                        a_new.eq(self.assign.payload.event == Event.CREATED),
                    ]
                    m.next = "LOOKUP"
                restart_on_clear()
            with m.State("LOOKUP"):
                e = tail_a.data
                has = (e.fill != 0) & ~a_new
                m.d.comb += [tail_w.addr.eq(a_cl), head_w.addr.eq(a_cl), next_w.addr.eq(e.chunk)]
                with m.If(has & (e.fill != cfg.chunk_tokens)):
                    m.d.comb += [
                        tail_w.data.chunk.eq(e.chunk),
                        tail_w.data.fill.eq(e.fill + 1),
                        tail_w.en.eq(1),
                    ]
                    m.d.sync += [s_chunk.eq(e.chunk), s_slot.eq(e.fill), s_full.eq(0)]
                with m.Elif(free == cfg.kv_chunks):
                    m.d.sync += [s_chunk.eq(0), s_slot.eq(0), s_full.eq(1)]
                    # a created cluster owns no chunk: its tail says so, whatever it held
                    m.d.comb += [tail_w.data.fill.eq(0), tail_w.en.eq(a_new)]
                with m.Else():
                    m.d.comb += [
                        tail_w.data.chunk.eq(free),
                        tail_w.data.fill.eq(1),
                        tail_w.en.eq(1),
                        next_w.data.eq(free),
                        next_w.en.eq(has),
                        head_w.data.eq(free),
                        head_w.en.eq(~has),
                    ]
                    m.d.sync += [s_chunk.eq(free), s_slot.eq(0), s_full.eq(0), free.eq(free + 1)]
                m.next = "EMIT"
                restart_on_clear()
            with m.State("EMIT"):
                m.d.comb += [tables_ready.eq(1), self.slot.valid.eq(1)]
                with m.If(self.slot.ready):
                    m.next = "IDLE"
                restart_on_clear()

        # ---- retrieval ----------------------------------------------------------------
        axi = self.m_axi
        m.submodules.inflight = inflight = fifo.SyncFIFOBuffered(
            width=cfg.cluster_id_bits, depth=self._outstanding
        )
        t_cl = Signal(cid)
        t_last = Signal()
        t_chunk = Signal(chunk_shape)
        t_tail = Signal(chunk_shape)
        t_fill = Signal(fill_shape)
        t_addr = Signal(cfg.axi_addr_bits)
        t_rem = Signal(range(cfg.chunk_tokens * bpt + 1))
        n_cl = Signal.like(self.summary.payload.clusters)
        n_bursts = Signal.like(self.summary.payload.bursts)
        n_beats = Signal.like(self.summary.payload.beats)
        error = Signal()

        low = t_addr[:_BOUNDARY_BITS]
        to_boundary = ((1 << _BOUNDARY_BITS) - low) >> ceil_log2(bus_bytes)
        # Beats of the next burst: min(t_rem, max_burst, beats left before 4 KB).
        cap = Signal(range(cfg.max_burst + 1))
        n = Signal(range(cfg.max_burst + 1))
        m.d.comb += [
            cap.eq(Mux(to_boundary < cfg.max_burst, to_boundary, cfg.max_burst)),
            n.eq(Mux(t_rem < cap, t_rem, cap)),
        ]
        m.d.comb += [
            axi.araddr.eq(t_addr),
            axi.arlen.eq(n - 1),
            axi.arsize.eq(ceil_log2(bus_bytes)),
            axi.arburst.eq(_INCR),
            inflight.w_data.eq(t_cl),
            inflight.w_en.eq(axi.arvalid & axi.arready),
            next_t.addr.eq(t_chunk),
        ]
        with m.FSM(name="fetch") as fetch:
            with m.State("IDLE"):
                m.d.comb += [
                    self.selected.ready.eq(tables_ready & ~self.clear),
                    head_t.addr.eq(self.selected.payload.cluster),
                    tail_t.addr.eq(self.selected.payload.cluster),
                ]
                with m.If(self.selected.valid & self.selected.ready):
                    m.d.sync += [
                        t_cl.eq(self.selected.payload.cluster),
                        t_last.eq(self.selected.payload.last),
                    ]
                    m.next = "HEAD"
            with m.State("HEAD"):
                m.d.sync += [t_chunk.eq(head_t.data), t_tail.eq(tail_t.data.chunk)]
                m.d.sync += t_fill.eq(tail_t.data.fill)
                with m.If(tail_t.data.fill == 0):
                    m.next = "CLOSE"
                with m.Else():
                    m.next = "RUN"
            with m.State("RUN"):
                used = Mux(t_chunk == t_tail, t_fill, cfg.chunk_tokens)
                m.d.sync += [
                    t_addr.eq(base + t_chunk * chunk_bytes),
                    t_rem.eq(used * bpt),
                ]
                m.next = "AR"
            with m.State("AR"):
                m.d.comb += axi.arvalid.eq(inflight.w_rdy)
                with m.If(axi.arvalid & axi.arready):
                    m.d.sync += [
                        t_addr.eq(t_addr + n * bus_bytes),
                        t_rem.eq(t_rem - n),
                        n_bursts.eq(n_bursts + 1),
                        n_beats.eq(n_beats + n),
                    ]
                    with m.If(t_rem == n):
                        with m.If(t_chunk == t_tail):
                            m.next = "CLOSE"
                        with m.Else():
                            m.next = "NEXT"
            with m.State("NEXT"):
                m.d.sync += t_chunk.eq(next_t.data)
                m.next = "RUN"
            with m.State("CLOSE"):
                m.d.sync += n_cl.eq(n_cl + 1)
                with m.If(t_last):
                    m.next = "DRAIN"
                with m.Else():
                    m.next = "IDLE"
            with m.State("DRAIN"), m.If(inflight.level == 0):
                m.next = "SUMMARY"
            with m.State("SUMMARY"):
                m.d.comb += [
                    self.summary.valid.eq(1),
                    self.summary.payload.clusters.eq(n_cl),
                    self.summary.payload.bursts.eq(n_bursts),
                    self.summary.payload.beats.eq(n_beats),
                    self.summary.payload.error.eq(error),
                ]
                with m.If(self.summary.ready):
                    m.d.sync += [n_cl.eq(0), n_bursts.eq(0), n_beats.eq(0), error.eq(0)]
                    m.next = "IDLE"

        # R beats pass straight through, tagged with the cluster of the oldest open burst.
        m.d.comb += [
            self.kv.valid.eq(axi.rvalid & inflight.r_rdy),
            self.kv.payload.data.eq(axi.rdata),
            self.kv.payload.cluster.eq(inflight.r_data),
            axi.rready.eq(self.kv.ready & inflight.r_rdy),
            inflight.r_en.eq(axi.rvalid & axi.rready & axi.rlast),
            self.busy.eq(~fetch.ongoing("IDLE") | ~tables_ready),
        ]
        with m.If(axi.rvalid & axi.rready & (axi.rresp != 0)):
            m.d.sync += error.eq(1)
        if self._bulk:
            # A context's tables through the mover (the unit is idle); ``load`` restores the
            # chunks in use. Last, so that they win.
            cb, nb = self.clusters_bulk, self.chunks_bulk
            row = data.View(cluster_lists_layout(cfg), cb.wdata)
            m.d.comb += [
                self.chunks.eq(free),
                cb.rdata.eq(Cat(head_t.data, tail_t.data)),
                nb.rdata.eq(next_t.data),
            ]
            serve(m, cb, head_t, head_w, wdata=row.head)
            serve(m, cb, tail_t, tail_w, wdata=Cat(row.tail, row.fill))
            serve(m, nb, next_t, next_w)
            with m.If(self.load):
                m.d.sync += free.eq(self.load_chunks)
        return m


def cluster_lists_layout(cfg: HWConfig) -> data.StructLayout:
    """A cluster's chunk list: its head chunk, its tail chunk and the tail's fill."""
    return data.StructLayout(
        {"head": cfg.kv_chunk_bits, "tail": cfg.kv_chunk_bits, "fill": cfg.kv_fill_bits}
    )


def kvmu_bulk_members(cfg: HWConfig) -> dict:
    """The ports of ``KVMemoryUnit(cfg, bulk=True)`` for ``SWITCH_CTX``: the chunk lists of
    the clusters and the chunks' links (``hw.tableport``), the chunks in use (``chunks``;
    ``load`` sets them from ``load_chunks``) and ``base``, the active context's region
    (the KV area's byte address instead of ``kv_base``)."""
    return {
        "clusters_bulk": In(table_port(cluster_lists_layout(cfg).size, cfg.max_clusters)),
        "chunks_bulk": In(table_port(cfg.kv_chunk_bits, cfg.kv_chunks)),
        "chunks": Out(range(cfg.kv_chunks + 1)),
        "load": In(1),
        "load_chunks": In(range(cfg.kv_chunks + 1)),
        "base": In(cfg.axi_addr_bits),
    }
