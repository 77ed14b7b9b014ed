"""Aging: the oldest recent-ring tokens leave the ring and join the clustered context."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, ceil_log2, check_config
from ..datapath import FP32Add, FP32ToBF16
from ..datapath.layouts import FP32
from ..dre import layouts as dre_layouts
from ..dre.layouts import Event
from ..kvmu import axi4_read_signature, kvmu_layouts
from ..shared import shared
from ..tableport import serve, table_port

__all__ = ["AGING_COUNTS", "Aging"]

#: The ``PERF`` counters whose increments the aging drives (``Aging.counts``).
AGING_COUNTS = (
    "hcu_wait",
    "tokens_clustered",
    "clusters_created",
    "clusters_joined",
    "clusters_forced",
    "kv_dropped",
    "write_beats",
    "sum_beats",
)


class Aging(wiring.Component):
    """The aging of an ``INGEST`` (``golden.core.CoreModel._cluster`` in hardware), beside the
    new tokens' reception, RoPE and hash; two FSMs.

    **The sender** takes a **batch** at ``go``: ``count`` tokens (1 to ``hcu_batch``), the
    oldest ring tokens not yet given to it, from ring index ``ring_index`` and id
    ``token_id`` on. It sends their signatures to the HCU in consecutive cycles (read from
    the core's signature memory one cycle ahead, ``sig_addr``), so that the HCU searches
    its table once for the batch, and is then idle (``sender_idle``) for the next batch: it
    runs ahead of the aging proper, the HCU keeping its results in order, so the next
    tokens' search overlaps the aging of the current ones. The core gives it every token its
    ``INGEST`` will age, as soon as the token is in the ring.

    **The aging proper** takes the results in order, oldest token first: its assignment
    (``hcu_assign``: cluster and event), the KVMU gives it a slot
    (``kv_assign`` → ``kv_slot``), the KV writer writes its K and V rows there as a posted
    write (``write_cmd``, ``write_data``; nothing is written when the pool is full:
    ``counts.kv_dropped``), its cluster's FP32 key sum gets the widened K rows, and the
    cluster's member count goes up
    (the ``members`` memory, here); its reciprocal is requested last (``recip_req``, the
    core's ``FP32Recip`` is shared with the prefill's ``1/rows``), after which its ring slot
    is free (``released``) and the next token goes on while the core computes ``w_c`` from
    ``members``. The tokens follow one another in the ring and in id, so it counts its own
    (from the first ``go`` it sees with nothing in flight). Aging the tokens in this order
    gives the golden model's results whatever the batches (the HCU decides as for one token
    at a time). The rows are read one per cycle
    when a row is two or more AXI beats, else two cycles per K row (a K row's last beat waits
    for its registered sum).

    **The key sums live in DRAM** (``hw.core.contexts``, ``sums`` and ``reps``). Before its
    K rows, a token of an existing cluster waits until the earlier writes that may hold its
    cluster's last sum were answered (``writes_pending``, the writer's commands in flight:
    none, or only the previous token's if it went to another cluster; the writer answers in
    order) and reads the cluster's FP32 sum (``axi_beats_per_token`` beats, one burst on
    ``m_axi``) into a buffer of ``nb`` rows; a new cluster's sum starts from ``+0``
    instead. The K rows add into the buffer (the rows read are registered before the
    adders, so no path runs from a memory read through an adder into a write), and after
    the V rows the buffer goes back to DRAM through the KV writer: the FP32 sum (a token's
    beats) at ``sums_base + c * kv_token_bytes``, then its BF16 rounding, the
    representative key the scoring streams (``half`` a token) at ``reps_base + c *
    kv_token_bytes / 2``.

    Ports (the core owns the kept memories and gives the aging priority on their read ports
    while ``rd`` is high):

    - ``go`` (in, only while ``sender_idle``), ``count``, ``ring_index``, ``token_id`` (in,
      latched at ``go``): the batch's size, its oldest token's ring index (its kept slot is
      ``sink_tokens`` + the index) and id; the next tokens follow in the ring (wrapping)
      and in id.
    - ``sig_addr``, ``sig_en`` (out), ``sig`` (in): the signature memory's read port (the
      first token's at ``go``, the next one's as a token is taken by the HCU).
    - ``hcu_clear`` (in): the HCU's ``clear`` flag for the token (a new context).
    - ``busy`` (out): a token sent or being aged; ``sender_idle`` (out); ``released``
      (out): a strobe when a token is aged (its kept slot free for the new token that
      waits for it).
    - ``hcu_tokens`` (out), ``hcu_assign`` (in): the DRE's token streams.
    - ``kv_assign`` (out), ``kv_slot`` (in): the KVMU's allocation streams.
    - ``write_cmd``, ``write_data`` (out): the ``KVWriter``'s streams.
    - ``rd`` (out), ``kept_addr`` (out), ``k_data``, ``v_data`` (in): reads of the kept K/V
      rows (synchronous ports).
    - ``m_axi`` (out, AR and R), ``sums_base``, ``reps_base`` (in), ``writes_pending``
      (in): the key sums in DRAM (above).
    - ``recip_req`` (out), ``recip_ready`` (in), ``members``, ``cluster`` (out): the new
      member count of ``cluster`` into the reciprocal, taken when both are high.
    - ``counts`` (out): one-cycle strobes of the ``AGING_COUNTS`` counters.
    - ``bulk`` (in, ``hw.tableport``): the member counts, for ``SWITCH_CTX`` (the aging idle).
    """

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        r = cfg.resv
        lanes, nb = cfg.mac_lanes, r.head_dim // cfg.mac_lanes
        kept, tid = r.sink_tokens + r.recent_tokens, cfg.token_id_bits
        dre, kv = dre_layouts(cfg), kvmu_layouts(cfg)
        row_bits = 16 * lanes
        super().__init__(
            {
                "go": In(1),
                "count": In(range(1, cfg.hcu_batch + 1)),
                "ring_index": In(range(r.recent_tokens)),
                "token_id": In(tid),
                "sig_addr": Out(range(kept)),
                "sig_en": Out(1),
                "sig": In(r.hash_bits),
                "hcu_clear": In(1),
                "busy": Out(1),
                "sender_idle": Out(1),
                "released": Out(1),
                "hcu_tokens": Out(stream.Signature(dre.token)),
                "hcu_assign": In(stream.Signature(dre.assign)),
                "kv_assign": Out(stream.Signature(kv.assign)),
                "kv_slot": In(stream.Signature(kv.slot)),
                "write_cmd": Out(stream.Signature(kv.wr_cmd)),
                "write_data": Out(stream.Signature(kv.wr_data)),
                "rd": Out(1),
                "kept_addr": Out(range(kept * nb)),
                "k_data": In(row_bits),
                "v_data": In(row_bits),
                "m_axi": Out(axi4_read_signature(cfg.axi_addr_bits, cfg.axi_data_bits)),
                "sums_base": In(cfg.axi_addr_bits),
                "reps_base": In(cfg.axi_addr_bits),
                "writes_pending": In(8),
                "recip_req": Out(1),
                "recip_ready": In(1),
                "members": Out(tid + 1),
                "cluster": Out(cfg.cluster_id_bits),
                "counts": Out(data.StructLayout(dict.fromkeys(AGING_COUNTS, 1))),
                "bulk": In(table_port(tid + 1, r.max_clusters)),
            }
        )

    def elaborate(self, platform):
        cfg = self._cfg
        r = cfg.resv
        m = Module()
        lanes, nb = cfg.mac_lanes, r.head_dim // cfg.mac_lanes
        sub = 16 * lanes // cfg.axi_data_bits  # AXI beats per row
        tid = cfg.token_id_bits
        m.submodules.members_mem = members = Memory(shape=tid + 1, depth=r.max_clusters, init=[])
        mem_rd, mem_wr = members.read_port(), members.write_port()
        m.d.comb += [mem_rd.en.eq(0), self.bulk.rdata.eq(mem_rd.data)]
        # The aged token's cluster's key sum, read from DRAM, updated, written back.
        m.submodules.sum_buf = sum_buf = Memory(
            shape=data.ArrayLayout(FP32, lanes), depth=nb, init=[]
        )
        sb_rd, sb_wr = sum_buf.read_port(), sum_buf.write_port()
        m.d.comb += sb_rd.en.eq(0)

        recent, B = r.recent_tokens, cfg.hcu_batch

        def ring_next(index):
            return Mux(index == recent - 1, 0, index + 1)

        # The sender: a batch's signatures into the HCU.
        tx_left = Signal(range(B + 1), name="age_to_send")  # of the batch, still to send
        tx_ring = Signal(range(recent), name="age_sent_ring")  # the next one's ring index
        tx_id = Signal(tid, name="age_sent_id")  # the next one's id
        # The aging proper, in the order sent: the token being aged (or the next one).
        age_ring = Signal(range(recent), name="age_ring")
        age_id = Signal(tid, name="age_id")
        inflight = Signal(range(recent + B + 1), name="age_inflight")  # sent, not yet taken
        age_c = Signal(cfg.cluster_id_bits, name="age_cluster")
        age_ev = Signal(Event, name="age_event")
        age_addr = Signal(cfg.axi_addr_bits, name="age_addr")
        age_full = Signal(name="age_full")
        ab = Signal(range(2 * nb + 1), name="age_row")
        asub = Signal(range(max(2, sub)), name="age_sub")
        new_members = Signal(tid + 1, name="new_members")
        age_slot = r.sink_tokens + age_ring
        # The previous aged token: its cluster and its write commands (K/V unless dropped,
        # the sum, the representative key), perhaps still in flight.
        prev_c = Signal(cfg.cluster_id_bits, name="age_prev_cluster")
        prev_cmds = Signal(range(4), name="age_prev_cmds")
        with m.If(self.go):
            m.d.sync += [
                tx_left.eq(self.count),
                tx_ring.eq(ring_next(self.ring_index)),
                tx_id.eq(self.token_id),
            ]
            m.d.comb += [self.sig_addr.eq(r.sink_tokens + self.ring_index), self.sig_en.eq(1)]
        sent = self.hcu_tokens.valid & self.hcu_tokens.ready
        taken = self.hcu_assign.valid & self.hcu_assign.ready
        m.d.sync += inflight.eq(inflight + sent - taken)

        # Key-sum update: the registered key-sum row + the registered, widened K row.
        age_rd1 = Signal(name="age_rd1")  # a read's data is on the ports
        age_q_ok = Signal(name="age_q_ok")  # ... and in the registers below
        sum_q = Signal(data.ArrayLayout(FP32, lanes), name="age_sum_q")
        k_q = Signal(16 * lanes, name="age_k_q")
        m.d.sync += age_rd1.eq(self.rd)
        with m.If(self.rd):
            m.d.sync += age_q_ok.eq(0)
        with m.Elif(age_rd1):
            m.d.sync += [age_q_ok.eq(1), sum_q.eq(sb_rd.data), k_q.eq(self.k_data)]
        reps = []
        summed = Signal(data.ArrayLayout(FP32, lanes), name="age_summed")
        for i in range(lanes):
            add = shared(m, f"sum_add{i}", FP32Add())
            m.d.comb += [
                add.a.eq(Mux(age_ev == Event.CREATED, 0, sum_q[i].as_value())),
                add.b.eq(Cat(Const(0, 16), k_q[16 * i : 16 * i + 16])),
                summed[i].eq(add.s),
            ]
            rnd = shared(m, f"rep_bf16_{i}", FP32ToBF16())
            m.d.comb += rnd.a.eq(sb_rd.data[i])
            reps.append(rnd.b.as_value())
        wr_row = Mux(ab >= nb, self.v_data, self.k_data)
        # Write-back of the key sum: the FP32 rows (wb_rep 0), then their BF16 rounding.
        wb_rep = Signal(name="wb_rep")
        wb_row = Signal(range(nb), name="wb_row")
        wb_beat = Signal(range(2 * sub), name="wb_beat")
        wb_on = Signal(name="wb_on")  # the write data are the key sum's
        wb_data = Mux(wb_rep, Cat(*reps), sb_rd.data.as_value())
        bus = cfg.axi_data_bits
        bus_bytes = bus // 8
        # The key-sum read: R beats assembled into FP32 rows (2 * sub beats each).
        r_row = Signal(range(nb + 1), name="sum_read_row")
        r_beat = Signal(range(2 * sub), name="sum_read_beat")
        r_acc = Signal(bus * (2 * sub - 1), name="sum_read_acc")
        axi = self.m_axi
        m.d.comb += [
            axi.araddr.eq(self.sums_base + age_c * cfg.kv_token_bytes),
            axi.arlen.eq(cfg.axi_beats_per_token - 1),
            axi.arsize.eq(ceil_log2(bus_bytes)),
            axi.arburst.eq(1),  # INCR
            # the buffer takes the rows read, or the sums (AGE_ROW)
            sb_wr.data.eq(Mux(r_row < nb, Cat(r_acc, axi.rdata), summed.as_value())),
            sb_wr.addr.eq(r_row),
        ]
        m.d.comb += [
            self.members.eq(new_members),
            self.cluster.eq(age_c),
            mem_wr.addr.eq(age_c),
            mem_wr.data.eq(new_members),
            mem_rd.addr.eq(age_c),
            self.hcu_tokens.payload.token_id.eq(tx_id),
            self.hcu_tokens.payload.signature.eq(self.sig),
            self.hcu_tokens.payload.clear.eq(self.hcu_clear),
            self.kv_assign.payload.token_id.eq(age_id),
            self.kv_assign.payload.cluster.eq(age_c),
            self.kv_assign.payload.event.eq(age_ev),
            self.write_cmd.payload.addr.eq(age_addr),
            self.write_data.payload.data.eq(
                Mux(
                    wb_on,
                    wb_data.word_select(wb_beat, bus),
                    wr_row.word_select(asub, bus) if sub > 1 else wr_row,
                )
            ),
            self.write_cmd.payload.half.eq(wb_rep & wb_on),
        ]

        def read(row):
            """Read row ``row`` of the aged token (K rows, then V rows) and of its key sum."""
            m.d.comb += [
                self.rd.eq(1),
                self.kept_addr.eq(age_slot * nb + Mux(row >= nb, row - nb, row).as_unsigned()),
                sb_rd.addr.eq(row),
                sb_rd.en.eq(1),
            ]

        counts = self.counts
        # The sender: the batch's signatures into the HCU, one per cycle while it takes
        # them; the next one is read as one is taken. It may run ahead of the aging: the
        # HCU keeps the results in order.
        with m.FSM(name="aging_send") as send:
            with m.State("IDLE"), m.If(self.go):
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += self.hcu_tokens.valid.eq(1)
                with m.If(self.hcu_tokens.ready):
                    m.d.comb += [
                        self.sig_addr.eq(r.sink_tokens + tx_ring),
                        self.sig_en.eq(1),
                    ]
                    m.d.sync += [
                        tx_left.eq(tx_left - 1),
                        tx_ring.eq(ring_next(tx_ring)),
                        tx_id.eq(tx_id + 1),
                    ]
                    with m.If(tx_left == 1):
                        m.next = "IDLE"
        m.d.comb += self.sender_idle.eq(send.ongoing("IDLE"))

        with m.FSM(name="aging") as fsm:
            # The next token's assignment (the first after a new context's first ``go``).
            with m.State("IDLE"):
                with m.If(self.go & (inflight == 0)):
                    m.d.sync += [age_ring.eq(self.ring_index), age_id.eq(self.token_id)]
                m.d.comb += self.hcu_assign.ready.eq(1)
                with m.If(~self.hcu_assign.valid):
                    m.d.comb += counts.hcu_wait.eq(inflight != 0)
                with m.Else():
                    a = self.hcu_assign.payload
                    m.d.sync += [age_c.eq(a.cluster), age_ev.eq(a.event)]
                    m.d.comb += [
                        counts.tokens_clustered.eq(1),
                        counts.clusters_created.eq(a.event == Event.CREATED),
                        counts.clusters_joined.eq(a.event == Event.JOINED),
                        counts.clusters_forced.eq(a.event == Event.FORCED),
                    ]
                    m.next = "AGE_ALLOC"
            with m.State("AGE_ALLOC"):
                m.d.comb += self.kv_assign.valid.eq(1)
                with m.If(self.kv_assign.ready):
                    m.next = "AGE_SLOT"
            with m.State("AGE_SLOT"):
                m.d.comb += self.kv_slot.ready.eq(1)
                with m.If(self.kv_slot.valid):
                    s = self.kv_slot.payload
                    m.d.sync += [age_addr.eq(s.addr), age_full.eq(s.full), ab.eq(0), asub.eq(0)]
                    m.d.comb += counts.kv_dropped.eq(s.full)
                    m.next = "AGE_SUM"
            # The cluster's key sum from DRAM (a new cluster starts from +0), once the
            # writes before it, its own last write back among them, were answered.
            with m.State("AGE_SUM"):
                created = age_ev == Event.CREATED
                m.d.sync += [r_row.eq(Mux(created, nb, 0)), r_beat.eq(0)]  # nb: nothing read
                with m.If(created):
                    m.next = "AGE_KV"
                with m.Elif(
                    (self.writes_pending == 0)
                    | (age_c != prev_c) & (self.writes_pending <= prev_cmds)
                ):
                    m.d.comb += axi.arvalid.eq(1)
                    with m.If(axi.arready):
                        m.next = "AGE_SUM_READ"
            with m.State("AGE_SUM_READ"):
                m.d.comb += axi.rready.eq(1)
                with m.If(axi.rvalid):
                    m.d.comb += counts.sum_beats.eq(1)
                    with m.If(r_beat == 2 * sub - 1):
                        m.d.comb += sb_wr.en.eq(1)
                        m.d.sync += [r_beat.eq(0), r_row.eq(r_row + 1)]
                        with m.If(r_row == nb - 1):
                            m.next = "AGE_KV"
                    with m.Else():
                        m.d.sync += [
                            r_beat.eq(r_beat + 1),
                            r_acc.word_select(r_beat, bus).eq(axi.rdata),
                        ]
            with m.State("AGE_KV"):
                with m.If(age_full):
                    m.next = "AGE_READ"
                with m.Else():
                    m.next = "AGE_WCMD"
            with m.State("AGE_WCMD"):
                m.d.comb += self.write_cmd.valid.eq(1)
                with m.If(self.write_cmd.ready):
                    m.next = "AGE_READ"
            # K rows 0..nb-1 (write + key sum), V rows nb..2nb-1; the next row is read while
            # a row is written.
            with m.State("AGE_READ"):
                read(ab)
                m.next = "AGE_ROW"
            with m.State("AGE_ROW"):
                row_done = Signal(name="age_row_done")
                sum_wait = (ab < nb) & ~age_q_ok & (asub == sub - 1)
                with m.If(age_full):
                    m.d.comb += row_done.eq(~sum_wait)
                with m.Elif(~sum_wait):
                    m.d.comb += self.write_data.valid.eq(1)
                    with m.If(self.write_data.ready):
                        m.d.comb += counts.write_beats.eq(1)
                        with m.If(asub == sub - 1):
                            m.d.comb += row_done.eq(1)
                        with m.Else():
                            m.d.sync += asub.eq(asub + 1)
                with m.If(row_done):
                    with m.If(ab < nb):
                        m.d.comb += [sb_wr.en.eq(1), sb_wr.addr.eq(ab)]
                    m.d.sync += [asub.eq(0), ab.eq(ab + 1)]
                    with m.If(ab == 2 * nb - 1):
                        m.d.sync += [wb_rep.eq(0), wb_row.eq(0), wb_beat.eq(0)]
                        m.next = "AGE_WB_CMD"
                    with m.Else():
                        read(ab + 1)
            # The key sum back to DRAM: the FP32 sum, then the BF16 representative key.
            with m.State("AGE_WB_CMD"):
                m.d.comb += [
                    wb_on.eq(1),
                    self.write_cmd.valid.eq(1),
                    self.write_cmd.payload.addr.eq(
                        Mux(
                            wb_rep,
                            self.reps_base + age_c * (cfg.kv_token_bytes // 2),
                            self.sums_base + age_c * cfg.kv_token_bytes,
                        )
                    ),
                ]
                with m.If(self.write_cmd.ready):
                    m.next = "AGE_WB_READ"
            with m.State("AGE_WB_READ"):
                m.d.comb += [sb_rd.addr.eq(wb_row), sb_rd.en.eq(1)]
                m.next = "AGE_WB_SEND"
            with m.State("AGE_WB_SEND"):
                last_beat = wb_beat == Mux(wb_rep, sub - 1, 2 * sub - 1)
                m.d.comb += [wb_on.eq(1), self.write_data.valid.eq(1)]
                with m.If(self.write_data.ready):
                    m.d.comb += counts.sum_beats.eq(1)
                    m.d.sync += wb_beat.eq(wb_beat + 1)
                    with m.If(last_beat):
                        # the next row is read in the cycle of the row's last beat
                        m.d.comb += [sb_rd.addr.eq(wb_row + 1), sb_rd.en.eq(1)]
                        m.d.sync += [wb_beat.eq(0), wb_row.eq(wb_row + 1)]
                        with m.If(wb_row == nb - 1):
                            m.d.sync += [wb_row.eq(0), wb_rep.eq(1)]
                            m.next = "AGE_WB_CMD"
                            with m.If(wb_rep):
                                m.d.comb += mem_rd.en.eq(1)
                                m.d.sync += [prev_c.eq(age_c), prev_cmds.eq(3 - age_full)]
                                m.next = "AGE_MEMBERS"
            with m.State("AGE_MEMBERS"):
                m.d.sync += new_members.eq(Mux(age_ev == Event.CREATED, 1, mem_rd.data + 1))
                m.next = "AGE_RECIP"
            # The reciprocal is taken; the core writes the weight when it is done, and the
            # next token of the batch (or the next batch) goes on meanwhile.
            with m.State("AGE_RECIP"):
                m.d.comb += self.recip_req.eq(1)
                with m.If(self.recip_ready):
                    m.d.comb += [mem_wr.en.eq(1), self.released.eq(1)]
                    m.d.sync += [age_ring.eq(ring_next(age_ring)), age_id.eq(age_id + 1)]
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | ~send.ongoing("IDLE") | (inflight != 0))
        # The member counts of a context through the mover (SWITCH_CTX; the aging is idle).
        serve(m, self.bulk, mem_rd, mem_wr)
        return m
