"""VRexCore: the DRE, the datapath and the KVMU behind a host command interface.

One context (layer, KV head) is active at a time, bit-exact with ``golden.core.CoreModel``
(one model per context); the others live in DRAM, each in its own region
(``hw.core.contexts``: its KV chunk pool and its stored tables), and ``SWITCH_CTX`` moves
between them (the ``ContextMover``, ``hw.core.mover``, stores the active context's tables
at their occupancy and loads the next one's), so a host visits its contexts in turn every
frame, as a model does. Frame prefill
(``PREFILL``) takes up to ``frame_rows`` query rows into a query buffer, selects once for
all of them, and runs them on the tiled attention engine, which reads the selected tokens
once; a decode ``QUERY`` is the same path with one row and no causal mask, so decode and
prefill share one engine (the core has no per-token vector unit).

Host interface (all ``amaranth.lib.stream``, arbitrary back-pressure and idle cycles; its
enums, layouts and counters are in ``hw.core.host``):

- ``cmd`` (in): ``op``, a 32-bit ``arg`` and, read by ``PREFILL`` only, ``rows`` and
  ``group`` (``bits_for(frame_rows)`` bits each):

  ========== == ==================================================================
  op         #  meaning
  ========== == ==================================================================
  RESET_CTX  1  context ``arg`` (``< contexts``) starts empty and becomes the active one
                (the active context, if another and started, is stored first); the
                thresholds ``theta`` carry over
  SET_BIAS   2  ``vin``: one vector (bias); ``theta_j = dot(bias, P_j)`` (key centring)
  INGEST     3  ``vin``: ``arg`` tokens, each its pre-RoPE K vector then its V vector
  QUERY      4  ``vin``: one pre-RoPE query vector at position ``arg``; ``out``: the result
                (a one-row ``PREFILL`` that attends to every kept token: no causal mask)
  CLEAR_PERF 5  zero the performance counters
  PREFILL    6  ``vin``: ``rows`` pre-RoPE query vectors; row ``r`` is at position
                ``arg + r // group`` (a frame's tokens x the GQA group's heads, token
                major); ``out``: the ``rows`` FP32 outputs, row after row
  SWITCH_CTX 7  context ``arg`` becomes the active one: the active context's tables are
                stored to its region and ``arg``'s loaded from its region (nothing if it
                already is the active one); ``BAD_ARG`` if ``arg >= contexts`` or ``arg``
                was never started by a ``RESET_CTX``. The kept tokens (sinks and ring)
                are not among those tables: see "Kept tokens in two banks" below
  PREFETCH   8  context ``arg``'s kept tokens are brought into the spare bank behind the
  _CTX          commands that follow (the status answers at once); nothing if ``arg`` is
                active or already in the spare bank; ``BAD_ARG`` as for ``SWITCH_CTX``.
                It also arms the clean of the active context (below)
  ========== == ==================================================================

  A vector is ``head_dim // mac_lanes`` beats of ``mac_lanes`` BF16 values (element order).
- ``vin`` (in): vector beats. ``out`` (out): the FP32 attention output of a query,
  ``head_dim // mac_lanes`` beats (``rows`` times that for a prefill), ``last`` on the
  final one.
- ``status`` (out): one beat per command, after all its effects (and after ``out``):
  ``op`` and ``error``: ``OK`` 0, ``BAD_OP`` 1 (unknown op: nothing else consumed),
  ``EMPTY`` 2 (query of an empty context: the vector is consumed, no ``out``), ``FULL`` 3
  (tokens past ``2**token_id_bits`` in a context are consumed and dropped; or an aged
  token found the KV chunk pool exhausted: it is clustered but its K/V is not stored, and
  ``kv_dropped`` counts it — never a silent drop), ``BAD_ARG`` 4
  (query position beyond ``2**(token_id_bits+1) - 1``; a ``PREFILL`` with ``rows`` not in
  ``1..frame_rows``, ``group`` not in ``1..rows``, a first position older than the newest
  clustered token, or a last position beyond ``2**(token_id_bits+1) - 1``: the vectors
  are consumed, no ``out``; ``EMPTY`` too applies to ``PREFILL``),
  ``BUS`` 5 (an AXI response was not OKAY since the previous status: during the command,
  whichever unit issued it, or between commands, the background prefetcher's; it wins
  over every other error).
  ``op`` is 4 bits (9..15 and 0 are ``BAD_OP``).
- ``perf_addr`` / ``perf_data``: the performance counters (``PERF`` order, 32 bits, wrap),
  combinational read; they are the ``PerfCounters`` (``hw.core.perf``), whose increments
  the parts of the core drive.
- ``m_axi``: AXI4 master, at the active context's region (reads: KVMU retrieval bursts, the
  aging's key sums, a selection's representative keys; writes: aged tokens' K and V, their
  clusters' key sums and representative keys; both, by the mover, during a ``SWITCH_CTX``
  or ``RESET_CTX``), and the prefetcher's reads and writes of kept tokens at any time: the
  ``AxiArbiter`` (``hw.core.arbiter``) merges the two, the units first.

Kept tokens in two banks. The kept tokens' K, V and signature memories have two banks: the
active context's and a **spare** one, which holds the context a switch left behind (its
kept tokens not yet in DRAM) or one the host prefetched. A second ``ContextMover``, the
**prefetcher** (regions ``hw.core.contexts.kept_regions``: it loads the scalars only for the
kept tokens' count), stores the spare bank's context and loads another one's into it while
the other commands run, sharing the bus through the arbiter as a ``background`` mover: its
load's AR waits until the rows it replaces were sent, so its R beats never wait, and its
bursts are short (``prefetch_burst``) and one per direction in flight, so a command's
transfer waits behind one of them at most; a command that waits for it hurries it (no
limit on its bursts in flight). ``SWITCH_CTX
c`` first waits for the prefetcher; if ``c`` is not in the spare bank it has the
prefetcher bring it there (and waits); then the mover swaps the other tables and the banks
trade places. ``RESET_CTX c`` (another context active) stores the spare bank's context
first, if it is dirty, and gives ``c`` that bank. ``PREFETCH_CTX c`` waits for a previous
move only. So a host that sends ``PREFETCH_CTX`` of the next context after each switch
hides the kept tokens' move behind the context's commands (``prefetch_busy`` counts the
prefetcher's cycles, ``prefetch_wait`` those a command waited for it); with two contexts
each keeps its own bank and the kept tokens never move.

The clean. A bank is **dirty** while its kept tokens differ from the context's copy in
DRAM: an ``INGEST`` that stores a token makes the active bank dirty; a load, a store or a
``RESET_CTX`` makes a bank clean, and the two dirty bits trade places with the banks. A
prefetch stores the spare bank only if it is dirty. A ``PREFETCH_CTX`` **arms the clean**
until the next switch or reset: then a ``PREFILL`` or ``QUERY`` that finds the active bank
dirty has the prefetcher store it (from the active bank) once the command's kept walk is
done: the command never reads the kept tokens again, and writes nothing, so the store
takes the idle W channel; its status waits until the store is done (``prefetch_wait``).
The bank the next switch leaves is then clean, and the next prefetch only loads, on R,
which an ``INGEST`` leaves mostly idle, instead of storing on W, which its posted writes
keep busy.

Flow of one ingested token ``t``: its K beats go to the RoPE unit (``rope_pairs`` pairs
per cycle) as they arrive, and with V into registers; the ``hash_bits`` dot products with
the BF16 hyperplanes come from the ``Hasher`` (``hw.core.hasher``: a ``MacArray`` of
``hash_bits`` rows holding the planes x ``mac_lanes`` columns; a pre-RoPE key is hashed
while V arrives and RoPE runs), compared in parallel with the thresholds ``theta``
(signature). If the recent ring is full, the oldest ring token ages out **at the same
time** (the ``Aging`` part, ``hw.core.aging``: a second FSM, started when ``t`` is
announced; it is given every token this ``INGEST`` will age as soon as the ring holds it,
sends their signatures to the HCU ahead of the aging proper, up to ``hcu_batch`` per table
search, and each new token waits only for the aging of the token whose slot it takes):
its signature goes through the HCU, the KVMU gives it a slot, the
``KVWriter`` writes its K and V there as a posted write (an ``INGEST`` answers once all
its writes completed), its cluster's FP32 key sum, read from DRAM (``hw.core.contexts``,
``sums``), is updated lane-parallel from registered rows (one row per cycle when a row is
two or more AXI beats, else two cycles per K row) and written back with its BF16 rounding,
the representative key (``reps``), and the cluster's score weight
``w_c = 1/members_c * K_score`` is computed by ``FP32Recip`` while the next token goes on
(written when the reciprocal is done). Then ``t`` takes the ring slot (or a sink slot).

Flow of a prefill: the rows stream from ``vin`` through the RoPE unit (row ``r`` at its
position; one row every ``max(head_dim / 2 / rope_pairs + 3, beats)`` cycles) into the query
buffer (``frame_rows x head_dim`` BF16) and an FP32 row sum; then ``1/rows`` (``FP32Recip``)
gives the mean query ``bf16(sum * (1/rows))``, which scores and selects the clusters: every
cluster's representative key (its key sum rounded to BF16, streamed from DRAM by the
``BurstReader``, ``hw.core.reader``) is dotted with the mean through the MAC tree, scaled by
``w_c`` into a fixed-point log2 score and streamed into the WTU (the ``ClusterScorer``,
``hw.core.scorer``); the one selection for all the rows goes straight to the KVMU, whose
reads start at once. Then the rows go from the
buffer into the ``TiledAttention`` engine (with their positions), and the attention order
follows as one token stream, each token's K rows then its V rows: the kept tokens (sinks,
then the ring, oldest first; their ids are their positions, so the engine masks those newer
than a row) and the fetched ones as the KVMU delivers them (older than every row; the
``FetchGearbox``, ``hw.core.gearbox``, assembles their AXI beats into rows). The
**prefetch buffer** (``prefetch_rows`` rows, a FIFO) takes the fetched rows as they arrive,
from the selection on, while the engine still takes the query rows and the kept tokens; the
engine then drains it at a row per cycle (a row is ``16 * mac_lanes / axi_data_bits`` bus
beats), and ``prefetched_rows`` counts the rows that arrived before the fetch's turn.
Without it (``prefetch_rows = 0``) the bus waits, back-pressured, for that turn. The engine
holds ``tile_tokens`` tokens at a time in its two MAC arrays (``mac_lanes`` columns), runs
every row past them (the tiled order of ``golden.softmax.tiled_attention``) and keeps
each row's state in FIFOs, so the selected tokens are read **once** for all the rows. When
the KVMU's summary says the fetch is complete, a padding token ends the stream; the engine's
rows then leave on ``out``, row after row (``last`` on the final beat).

A ``QUERY`` is this flow with ``rows = group = 1`` and the kept tokens unmasked (a decode
query is newer than everything in the cache, but its position ``arg`` may be any value the
host chooses); its selection uses the one-row mean ``bf16(sum * 1)``, the query itself
(only ``-0`` becomes ``+0``, which scores identically).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.core import score_scale_bits

from ..config import HWConfig, bits_for, ceil_log2, check_config
from ..datapath import (
    FP32Mul,
    FP32Recip,
    IntToFP32,
    MacTree,
    RopeUnit,
    TiledAttention,
)
from ..datapath.layouts import BF16, FP32
from ..dre import DynamicRetrievalEngine
from ..kvmu import KVMemoryUnit, KVWriter, axi4_read_signature, axi4_signature
from ..tableport import serve
from .aging import AGING_COUNTS, Aging
from .arbiter import AxiArbiter
from .contexts import (
    cluster_row_layout,
    context_stride,
    kept_regions,
    resident_regions,
    scalars_layout,
    switch_regions,
)
from .feeder import FEEDER_COUNTS, Feeder, FeedMode
from .gearbox import FetchGearbox
from .hasher import Hasher
from .host import PERF, STATUS_LAYOUT, Error, Op, check_core_config, cmd_layout
from .mean import MeanQuery
from .mover import ContextMover
from .perf import PerfCounters
from .reader import BurstReader
from .scorer import ClusterScorer

__all__ = ["VRexCore"]


class VRexCore(wiring.Component):
    """The V-Rex core; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        try:
            check_core_config(cfg)
        except ValueError:
            self._MustUse__silence = True
            raise
        self._cfg = cfg
        lanes = cfg.mac_lanes
        super().__init__(
            {
                "cmd": In(stream.Signature(cmd_layout(cfg))),
                "vin": In(
                    stream.Signature(data.StructLayout({"x": data.ArrayLayout(BF16, lanes)}))
                ),
                "out": Out(
                    stream.Signature(
                        data.StructLayout({"o": data.ArrayLayout(FP32, lanes), "last": 1})
                    )
                ),
                "status": Out(stream.Signature(STATUS_LAYOUT)),
                "perf_addr": In(range(len(PERF))),
                "perf_data": Out(32),
                "m_axi": Out(axi4_signature(cfg.axi_addr_bits, cfg.axi_data_bits)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    def elaborate(self, platform):
        cfg, r = self._cfg, self._cfg.resv
        m = Module()
        lanes, d, H = cfg.mac_lanes, r.head_dim, r.hash_bits
        nb = d // lanes  # rows (MAC beats) per vector
        row_bits = 16 * lanes
        sink, recent = r.sink_tokens, r.recent_tokens
        kept = sink + recent
        C = r.max_clusters
        tid_bits = cfg.token_id_bits

        # ------------------------------------------------------------------ submodules
        m.submodules.rope = rope = RopeUnit(cfg)
        m.submodules.mac = mac = MacTree(cfg)
        m.submodules.dre = dre = DynamicRetrievalEngine(cfg, bulk=True)
        m.submodules.kvmu = kvmu = KVMemoryUnit(cfg, bulk=True)
        m.submodules.writer = writer = KVWriter(cfg)
        # The aging of the oldest ring token (a second FSM of INGEST, hw.core.aging).
        m.submodules.aging = aging = Aging(cfg)
        # The attention engine of PREFILL and QUERY: TiledAttention (the tiled order, its
        # MAC arrays mac_lanes wide: one beat per memory row); the MAC tree scores clusters.
        FR = cfg.frame_rows
        m.submodules.attn = attn = TiledAttention(cfg.replace(mac_cols=lanes))
        m.submodules.recip = recip = FP32Recip()
        # The signatures (and SET_BIAS's thresholds); the clusters' scores into the WTU.
        m.submodules.hasher = hasher = Hasher(cfg)
        m.submodules.scorer = scorer = ClusterScorer(cfg)
        # The fetched AXI beats into memory rows (FETCH mode of the feeder below).
        m.submodules.gearbox = gearbox = FetchGearbox(cfg)
        m.submodules.w_mul = w_mul = FP32Mul()
        m.submodules.to_fp32 = to_fp32 = IntToFP32(width=tid_bits + 1)
        # SWITCH_CTX: a context's tables between the core and DRAM (hw.core.contexts); the
        # prefetcher: the kept tokens' spare bank, behind the other commands (PREFETCH_CTX).
        m.submodules.mover = mover = ContextMover(cfg, switch_regions(cfg))
        m.submodules.prefetcher = pf = ContextMover(cfg, kept_regions(cfg), background=True)
        m.submodules.arbiter = arbiter = AxiArbiter(cfg, 4)
        # The key sums in DRAM (the aging's) and the representative keys SCORE streams.
        sums_region, reps_region = resident_regions(cfg)
        rep_beats = cfg.axi_beats_per_token // 2  # a cluster's representative key
        m.submodules.reps_reader = reps_reader = BurstReader(cfg, C * rep_beats)
        m.submodules.rep_gearbox = rep_gearbox = FetchGearbox(cfg)
        self._connect_axi(m, arbiter.high, kvmu, writer, mover, aging, reps_reader)
        wiring.connect(m, pf.m_axi, arbiter.low)
        wiring.connect(m, arbiter.m_axi, wiring.flipped(self.m_axi))

        # ------------------------------------------------------------------ memories
        # The kept tokens in two banks: the active context's (``bank``) and the spare one,
        # the prefetcher's (the context left behind, or the next one).
        # The prefetcher reads the spare bank, or the active one while it cleans it.
        bank = Signal(name="kept_bank")
        pf_clean = Signal(name="prefetch_cleans")  # its move stores the active context
        pf_bank = Mux(pf_clean & pf.busy, bank, ~bank)
        banked = {
            name: _banked(m, name, shape, rows, bank, pf_bank)
            for name, shape, rows in (
                ("kept_k", row_bits, kept * nb),
                ("kept_v", row_bits, kept * nb),
                ("kept_sig", H, kept),
            )
        }
        (kk_rd, kk_wr), (pk_rd, pk_wr) = banked["kept_k"]
        (kv_rd, kv_wr), (pv_rd, pv_wr) = banked["kept_v"]
        (ks_rd, ks_wr), (ps_rd, ps_wr) = banked["kept_sig"]
        m.submodules.weight = weight = Memory(shape=FP32, depth=C, init=[])
        # PREFILL: the post-RoPE query rows (row r at r*nb..).
        m.submodules.qbuf = qbuf = Memory(shape=row_bits, depth=FR * nb, init=[])
        q_rd, q_wr = qbuf.read_port(), qbuf.write_port()
        w_rd, w_wr = weight.read_port(), weight.write_port()
        for port in (kk_rd, kv_rd, q_rd):
            m.d.comb += port.en.eq(0)

        # ------------------------------------------------------------------ registers
        kbuf = Signal(data.ArrayLayout(row_bits, nb), name="kbuf")  # received K / q / bias
        vbuf = Signal(data.ArrayLayout(row_bits, nb), name="vbuf")  # received V
        kpost = Signal(data.ArrayLayout(row_bits, nb), name="kpost")  # RoPE output
        sig = Signal(H, name="sig")

        op = Signal(4, name="op")
        arg = Signal(32, name="arg")
        err = Signal(3, name="err")
        bus_err = Signal(name="bus_err")  # a response not OKAY since the last status
        n_tok = Signal(tid_bits + 1, name="n_tok")  # tokens of the context
        n_clu = Signal(range(C + 1), name="n_clu")  # clusters of the context
        ring_n = Signal(range(recent + 1), name="ring_n")  # tokens in the recent ring
        ring_wp = Signal(range(recent), name="ring_wp")  # next ring slot (the oldest if full)
        hcu_clear = Signal(init=1, name="hcu_clear")  # clear the HCU with its next token
        tok_left = Signal(32, name="tok_left")
        drop = Signal(name="drop")  # this token is past the context capacity

        rx = Signal(range(2 * nb + 1), name="rx")  # received rows
        ri = Signal(range(nb + 1), name="rope_in")
        ro = Signal(range(nb + 1), name="rope_out")
        position = Signal(tid_bits + 1, name="position")

        # PREFILL: rows, rows per position, the row being received, each row's position.
        p_rows = Signal(range(FR + 1), name="prefill_rows")
        p_group = Signal(range(FR + 1), name="prefill_group")
        prow = Signal(range(max(2, 1 << bits_for(FR))), name="prefill_row")  # rows stored
        in_row = Signal(range(FR + 1), name="prefill_in_row")  # rows received
        gcnt = Signal(range(FR + 1), name="prefill_group_count")
        # The loader of the rows from the buffer into the engine (the address of the next
        # buffer row to read, rows read, and the beat in the read port).
        ld_addr = Signal(range(FR * nb + 1), name="load_addr")
        ld_cnt = Signal(range(FR * nb + 1), name="load_count")
        ld_v = Signal(name="load_valid")
        ld_lb = Signal(range(max(2, nb)), name="load_beat_out")
        ld_row = Signal(range(FR), name="load_row")
        i_lb = Signal(range(max(2, nb)), name="load_next_beat")
        i_row = Signal(range(FR), name="load_next_row")
        lb = Signal(range(nb + 1), name="load_beat")
        ring_base = Signal(tid_bits + 1, name="ring_base")  # id of the oldest ring token

        slot = Signal(range(kept), name="slot")  # kept slot of the new token
        # Aging (hw.core.aging): the tokens this INGEST ages and has not yet given the aging
        # (unsent; counted at its first aged token: aging_on), the next one's id and ring
        # index; whether the new token takes an aged token's slot (replaces), and the slots
        # the aging released that no new token took yet (freed).
        B = cfg.hcu_batch
        aging_on = Signal(name="aging_on")
        unsent = Signal(tid_bits + 1, name="aging_unsent")
        next_id = Signal(tid_bits + 1, name="aging_next_id")
        next_ring = Signal(range(recent), name="aging_next_ring")
        replaces = Signal(name="replaces")
        freed = Signal(range(recent + 1), name="aging_freed")
        sb = Signal(range(nb), name="store_row")
        w_pend = Signal(name="weight_pending")  # a cluster's weight is being computed
        w_addr = Signal(cfg.cluster_id_bits, name="weight_cluster")
        # Contexts: the active one and its region's base, the target of a RESET_CTX or
        # SWITCH_CTX, whether a stored context continues as a reset, the contexts started.
        NCTX = cfg.contexts
        active = Signal(range(max(2, NCTX)), name="context")
        target = Signal(range(max(2, NCTX)), name="context_target")
        ctx_base = Signal(cfg.axi_addr_bits, init=cfg.kv_base, name="context_base")
        then_reset = Signal(name="then_reset")
        started = Signal(max(2, NCTX), name="contexts_started")
        stride_bits = context_stride(cfg).bit_length() - 1
        target_base = Signal(cfg.axi_addr_bits, name="context_target_base")

        def base_of(c):
            """Context ``c``'s region (``hw.core.contexts.context_base``)."""
            return cfg.kv_base + (c << stride_bits)

        m.d.comb += target_base.eq(base_of(target))
        kept_now = Mux(n_tok < sink, n_tok, sink + ring_n)  # the active context's kept tokens
        # The spare bank of kept tokens: its context and kept tokens, if it holds one (it
        # differs from DRAM while it holds the context a switch left); the prefetcher's move
        # (the spare's context stored, another loaded), the kept tokens of the context a
        # switch leaves.
        spare = Signal(range(max(2, NCTX)), name="spare_context")
        spare_on = Signal(name="spare_holds")
        spare_rows = Signal(range(kept + 1), name="spare_kept")
        pf_from = Signal(range(max(2, NCTX)), name="prefetch_from")
        pf_to = Signal(range(max(2, NCTX)), name="prefetch_to")
        leaving = Signal(range(kept + 1), name="leaving_kept")
        # Cleaning: a bank is dirty while its kept tokens differ from the context's copy in
        # DRAM; a PREFETCH_CTX arms the clean of the active one (module docstring).
        act_dirty = Signal(name="active_dirty")
        spare_dirty = Signal(name="spare_dirty")
        armed = Signal(name="clean_armed")
        clean_due = Signal(name="clean_due")
        cleaning = clean_due | pf.busy & pf_clean

        # Counters: the parts below drive their increments.
        m.submodules.perf = perf = PerfCounters(
            {
                "prefill_rows": len(p_rows),
                "clusters_scored": len(n_clu),
                "tokens_attended": bits_for(kept),
                "buckets_scanned": len(dre.summary.payload.buckets_scanned),
                "clusters_selected": len(dre.summary.payload.n_selected),
                "read_bursts": len(kvmu.summary.payload.bursts),
                "read_beats": len(kvmu.summary.payload.beats),
                "context_beats": 2,  # a swap's W and R beats
                "prefetch_beats": 2,
            }
        )
        m.d.comb += [perf.addr.eq(self.perf_addr), self.perf_data.eq(perf.data)]

        def count(name, amount=1):
            """Counter ``name`` adds ``amount`` this cycle."""
            m.d.comb += perf.inc[name].eq(amount)

        # ------------------------------------------------------------------ feeder
        # The rows a query streams (cluster key sums into the MAC tree, kept and fetched
        # tokens into the engine) through one register stage (hw.core.feeder).
        m.submodules.feeder = feeder = Feeder(cfg)
        n_sinks = Signal(range(sink + 1), name="n_sinks")
        ring_old = Signal(range(recent), name="ring_oldest")
        wiring.connect(m, feeder.tree, mac.vectors)
        wiring.connect(m, feeder.kv, attn.kv)
        m.d.comb += [
            feeder.unmasked.eq(op == Op.QUERY),
            feeder.n_sinks.eq(n_sinks),
            feeder.ring_old.eq(ring_old),
            feeder.ring_base.eq(ring_base),
            feeder.q_vec.eq(kpost),
            feeder.k_data.eq(kk_rd.data),
            feeder.v_data.eq(kv_rd.data),
            kk_rd.addr.eq(feeder.kept_addr),
            kv_rd.addr.eq(feeder.kept_addr),
        ]
        # The fetched rows: through the prefetch buffer, which takes them as they arrive
        # (the selection's reads start at once), or, without one, the gearbox takes the
        # KVMU's beats only while the feeder fetches.
        fetched_rows = gearbox.rows
        if cfg.prefetch_rows:
            m.submodules.prefetch = prefetch = fifo.SyncFIFOBuffered(
                width=len(gearbox.rows.payload.as_value()), depth=cfg.prefetch_rows
            )
            wiring.connect(m, gearbox.rows, prefetch.w_stream)
            fetched_rows = prefetch.r_stream
            count("prefetched_rows", prefetch.w_en & prefetch.w_rdy & ~feeder.fetching)
        fetch_on = 1 if cfg.prefetch_rows else feeder.fetching
        m.d.comb += [
            gearbox.beats.valid.eq(kvmu.kv.valid & fetch_on),
            gearbox.beats.payload.eq(kvmu.kv.payload.data),
            kvmu.kv.ready.eq(gearbox.beats.ready & fetch_on),
            feeder.fetched.valid.eq(fetched_rows.valid),
            feeder.fetched.payload.eq(fetched_rows.payload),
            fetched_rows.ready.eq(feeder.fetched.ready),
        ]
        fetch_empty = gearbox.empty
        if cfg.prefetch_rows:
            fetch_empty &= prefetch.r_level == 0
        with m.If(feeder.rd_en):
            m.d.comb += [kk_rd.en.eq(1), kv_rd.en.eq(1)]
        # SCORE: the representative keys of the context's clusters, streamed from DRAM
        # (hw.core.contexts, ``reps``) into rows.
        wiring.connect(m, reps_reader.beats, rep_gearbox.beats)
        wiring.connect(m, rep_gearbox.rows, feeder.reps)
        count("rep_beats", reps_reader.beats.valid & reps_reader.beats.ready)
        for name in FEEDER_COUNTS:
            count(name, getattr(feeder.counts, name))

        # ------------------------------------------------------------------ MAC results
        # SCORE: the MAC tree's dot products, weighted, into the WTU.
        wiring.connect(m, mac.result, scorer.results)
        wiring.connect(m, scorer.clusters, dre.clusters)
        m.d.comb += [
            scorer.n_clusters.eq(n_clu),
            w_rd.addr.eq(scorer.weight_addr),
            w_rd.en.eq(scorer.weight_en),
            scorer.weight_data.eq(w_rd.data),
            dre.count_addr.eq(scorer.count_addr),
            scorer.count_data.eq(dre.count_data),
        ]

        # Output: the engine's rows; ``last`` on the final beat of the command.
        out_done = Signal(name="out_done")  # the command's last output beat left
        m.d.comb += [
            self.out.valid.eq(attn.out.valid),
            self.out.payload.o.eq(attn.out.payload.o),
            self.out.payload.last.eq(attn.out.payload.end),
            attn.out.ready.eq(self.out.ready),
            out_done.eq(self.out.valid & self.out.ready & self.out.payload.last),
        ]

        # ------------------------------------------------------------------ aging
        # The aged token's HCU, KVMU and KV-writer streams are the aging's; so is the
        # key-sum row it writes. The kept and key-sum read ports are the feeder's unless the
        # aging reads (below, after the feeder), and the reciprocal is shared with PREFILL.
        wiring.connect(m, aging.hcu_tokens, dre.tokens)
        wiring.connect(m, dre.assign, aging.hcu_assign)
        wiring.connect(m, aging.kv_assign, kvmu.assign)
        wiring.connect(m, kvmu.slot, aging.kv_slot)
        wiring.connect(m, aging.write_cmd, writer.cmd)
        wiring.connect(m, aging.write_data, writer.data)
        m.d.comb += [
            aging.ring_index.eq(next_ring),
            aging.token_id.eq(next_id),
            ks_rd.addr.eq(aging.sig_addr),
            ks_rd.en.eq(aging.sig_en),
            aging.sig.eq(ks_rd.data),
            aging.hcu_clear.eq(hcu_clear),
            aging.k_data.eq(kk_rd.data),
            aging.v_data.eq(kv_rd.data),
            aging.sums_base.eq(ctx_base + sums_region.offset),
            aging.reps_base.eq(ctx_base + reps_region.offset),  # the reader's too
            # a PREFILL's or QUERY's reciprocal is 1/rows, an aged token's 1/members
            to_fp32.n.eq(Mux((op == Op.PREFILL) | (op == Op.QUERY), p_rows, aging.members)),
            recip.operand.payload.value.eq(to_fp32.f),
            aging.recip_ready.eq(~w_pend & recip.operand.ready),
            w_mul.a.eq(recip.result.payload.value),
            w_mul.b.eq(int(score_scale_bits(d, r.score_frac_bits))),
            w_wr.addr.eq(w_addr),
            w_wr.data.eq(w_mul.p),
        ]
        for name in AGING_COUNTS:
            count(name, getattr(aging.counts, name))
        # PREFILL: the sum of the rows as they leave the RoPE unit and, at the end, the mean
        # query kpost = bf16(sum * (1/rows)) that selects the block's clusters.
        m.submodules.mean = mean = MeanQuery(cfg)
        m.d.comb += [
            mean.beat.eq(lb),
            mean.first.eq(prow == 0),
            mean.x.eq(rope.result.payload.x),
            mean.rows_recip.eq(recip.result.payload.value),
        ]

        # ------------------------------------------------------------------ control
        m.d.comb += [
            self.status.payload.op.eq(op),
            self.status.payload.error.eq(Mux(bus_err, Error.BUS, err)),
            rope.vectors.payload.x.eq(kbuf[ri]),
            rope.vectors.payload.position.eq(position),
            rope.vectors.payload.last.eq(ri == nb - 1),
            dre.wtu_cmd.payload.coverage_q.eq(r.coverage_q),
            dre.summary.ready.eq(1),
            kvmu.summary.ready.eq(1),
            writer.done.ready.eq(1),
        ]
        # ------------------------------------------------------------------ selection
        # The WTU's selection goes straight to the KVMU, whose reads start at once.
        wiring.connect(m, dre.selected, kvmu.selected)

        with m.If(dre.summary.valid):
            count("buckets_scanned", dre.summary.payload.buckets_scanned)
            count("clusters_selected", dre.summary.payload.n_selected)
        kv_summary_seen = Signal(name="kv_summary_seen")
        with m.If(kvmu.summary.valid):
            m.d.sync += kv_summary_seen.eq(1)
            count("read_bursts", kvmu.summary.payload.bursts)
            count("read_beats", kvmu.summary.payload.beats)
        with m.If(
            self.m_axi.arvalid & ~self.m_axi.arready | self.m_axi.rready & ~self.m_axi.rvalid
        ):
            count("axi_read_wait")
        # Posted writes: an aged token's K/V write is issued and the ingest goes on; its
        # completion (every B response) is counted back here, and an INGEST answers only once
        # every write it issued completed (ING_DRAIN), so a later QUERY never reads stale KV.
        wr_pending = Signal(8, name="wr_pending")  # tokens issued, B responses outstanding
        m.d.sync += wr_pending.eq(
            wr_pending + (writer.cmd.valid & writer.cmd.ready) - writer.done.valid
        )
        m.d.comb += aging.writes_pending.eq(wr_pending)
        with m.If(
            self.m_axi.awvalid & ~self.m_axi.awready
            | self.m_axi.wvalid & ~self.m_axi.wready
            | self.m_axi.bready & ~self.m_axi.bvalid
        ):
            count("axi_write_wait")

        # ------------------------------------------------------------------ hashing
        # A hashed vector: kbuf (pre-RoPE key or bias) or kpost, nb beats into the hasher;
        # its signature (or, for the bias, theta) comes back in one beat.
        hash_on = Signal(name="hash_on")
        hash_src_k = Signal(name="hash_src_kbuf")
        bias_mode = Signal(name="bias_mode")
        hb = Signal(range(nb + 1), name="hash_beat")
        m.d.comb += [
            hasher.keys.valid.eq(hash_on & (hb < nb)),
            hasher.keys.payload.x.eq(Mux(hash_src_k, kbuf[hb], kpost[hb])),
            hasher.keys.payload.last.eq(hb == nb - 1),
            hasher.set_theta.eq(bias_mode),
        ]
        with m.If(hasher.keys.valid & hasher.keys.ready):
            m.d.sync += hb.eq(hb + 1)
            count("hash_beats")

        def start_hash(*, src_kbuf, bias):
            """Start feeding the hasher; the HASH state takes its result."""
            m.d.sync += [hash_on.eq(1), hb.eq(0), hash_src_k.eq(src_kbuf), bias_mode.eq(bias)]

        # Rows received from ``vin`` go to kbuf (first nb) and vbuf (next nb).
        def receive(rows, then, ready=1):
            m.d.comb += self.vin.ready.eq(ready)
            with m.If(self.vin.valid & self.vin.ready):
                m.d.sync += rx.eq(rx + 1)
                with m.If(rx < nb):
                    m.d.sync += kbuf[rx].eq(self.vin.payload.x)
                with m.Else():
                    m.d.sync += vbuf[(rx - nb).as_unsigned()].eq(self.vin.payload.x)
                with m.If(rx == rows - 1):
                    m.d.sync += rx.eq(0)
                    then()

        def collect_rope():
            """The RoPE unit's result rows into kpost."""
            m.d.comb += rope.result.ready.eq(1)
            with m.If(rope.result.valid):
                m.d.sync += [kpost[ro].eq(rope.result.payload.x), ro.eq(ro + 1)]

        def next_row_position():
            """A PREFILL row done (stored, or loaded into the array): the next row's position
            is one more after every ``group`` rows."""
            with m.If(gcnt == p_group - 1):
                m.d.sync += [gcnt.eq(0), position.eq(position + 1)]
            with m.Else():
                m.d.sync += gcnt.eq(gcnt + 1)

        def attention_done():
            """Every attended token is in: the padding token ends the engine's stream."""
            m.d.comb += feeder.pad.eq(1)
            m.next = "P_PAD"

        def start_feed(mode_value, end):
            m.d.comb += [
                scorer.start.eq(1),
                feeder.start.eq(1),
                feeder.start_mode.eq(mode_value),
                feeder.start_end.eq(end),
                # the kept walk: the first sink, else the oldest ring token
                feeder.start_slot.eq(Mux(n_sinks == 0, sink + ring_old, 0)),
            ]

        def full():
            """``FULL`` (tokens or their K/V dropped; a bus error's ``BUS`` still wins)."""
            m.d.sync += err.eq(Error.FULL)

        def reset_context(c):
            """``RESET_CTX``: context ``c``, started empty, becomes the active one."""
            m.d.comb += kvmu.clear.eq(1)
            m.d.sync += [
                n_tok.eq(0),
                n_clu.eq(0),
                ring_n.eq(0),
                ring_wp.eq(0),
                hcu_clear.eq(1),
                active.eq(c),
                ctx_base.eq(base_of(c)),
                started.bit_select(c, 1).eq(1),
                act_dirty.eq(0),
                armed.eq(0),
            ]
            m.next = "CLEARING"

        def prefetch(c, load=True):
            """The prefetcher stores the spare bank's context (if any) and loads ``c``'s
            kept tokens into it (``load``), behind whatever runs next."""
            m.d.comb += [pf.start.eq(1), pf.save.eq(spare_on & spare_dirty), pf.load.eq(load)]
            m.d.sync += [pf_from.eq(spare), pf_to.eq(c), spare.eq(c), spare_on.eq(load)]
            m.d.sync += [spare_dirty.eq(0), pf_clean.eq(0)]

        def move():
            """``SWITCH_CTX``'s swap of the other tables (``RESET_CTX``: their store)."""
            m.d.comb += [mover.start.eq(1), mover.save.eq(1), mover.load.eq(~then_reset)]
            m.next = "SW_MOVE"

        ingest_busy = Signal(name="ingest_busy")
        query_busy = Signal(name="query_busy")
        with m.If(ingest_busy):
            count("busy_ingest")
        with m.If(query_busy & (op == Op.QUERY)):
            count("busy_query")
        with m.If(query_busy & (op == Op.PREFILL)):
            count("busy_prefill")

        with m.FSM(name="ctrl") as ctrl:
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    p = self.cmd.payload
                    m.d.sync += [
                        op.eq(p.op),
                        arg.eq(p.arg),
                        err.eq(Error.OK),
                        rx.eq(0),
                    ]
                    with m.Switch(p.op):
                        with m.Case(Op.RESET_CTX, Op.SWITCH_CTX):
                            reset = p.op == Op.RESET_CTX
                            c = p.arg[: len(target)]
                            bad = (p.arg >= NCTX) | ~reset & ~started.bit_select(c, 1)
                            m.d.sync += [target.eq(c), then_reset.eq(reset)]
                            with m.If(bad):
                                m.d.sync += err.eq(Error.BAD_ARG)
                                m.next = "STATUS"
                            with m.Elif(c == active):
                                with m.If(reset):
                                    reset_context(c)
                                with m.Else():
                                    m.next = "STATUS"  # already the active context
                            with m.Elif(started.bit_select(active, 1)):
                                # store the active context while the target's tables load
                                # (a swap), or store it, then reset the target
                                m.next = "SW_WAIT"
                            with m.Else():  # nothing to store (no context started yet)
                                reset_context(c)
                        with m.Case(Op.PREFETCH_CTX):
                            c = p.arg[: len(target)]
                            m.d.sync += target.eq(c)
                            with m.If((p.arg >= NCTX) | ~started.bit_select(c, 1)):
                                m.d.sync += err.eq(Error.BAD_ARG)
                                m.next = "STATUS"
                            with m.Else():
                                m.d.sync += armed.eq(1)
                                with m.If((c == active) | spare_on & (spare == c)):
                                    m.next = "STATUS"  # already on chip
                                with m.Else():
                                    m.next = "PF_WAIT"
                        with m.Case(Op.SET_BIAS):
                            m.next = "BIAS_RX"
                        with m.Case(Op.INGEST):
                            m.d.sync += [tok_left.eq(p.arg), aging_on.eq(0)]
                            m.next = "ING_NEXT"
                        with m.Case(Op.QUERY, Op.PREFILL):
                            # A QUERY is one row, its own group, without the causal mask.
                            query = p.op == Op.QUERY
                            rows = Mux(query, 1, p.rows)
                            group = Mux(query, 1, p.group)
                            # tokens were clustered: the newest one is n_tok - ring_n - 1
                            aged = n_tok - ring_n > Mux(n_tok < sink, n_tok, sink)
                            bad = ((p.arg + rows - 1) >> (tid_bits + 1) != 0) | ~query & (
                                (p.rows == 0)
                                | (p.rows > FR)
                                | (p.group == 0)
                                | (p.group > p.rows)
                                | aged & (p.arg < n_tok - ring_n - 1)
                            )
                            m.d.sync += [
                                p_rows.eq(rows),
                                p_group.eq(group),
                                prow.eq(0),
                                in_row.eq(0),
                                gcnt.eq(0),
                                lb.eq(0),
                                ld_addr.eq(0),
                                position.eq(p.arg),
                            ]
                            with m.If(n_tok == 0):
                                m.d.sync += err.eq(Error.EMPTY)
                            with m.Elif(bad):
                                m.d.sync += err.eq(Error.BAD_ARG)
                            with m.If(rows == 0):
                                m.next = "STATUS"
                            with m.Else():
                                m.next = "P_RX"
                        with m.Case(Op.CLEAR_PERF):
                            m.d.comb += perf.clear.eq(1)
                            m.next = "STATUS"
                        with m.Default():
                            m.d.sync += err.eq(Error.BAD_OP)
                            count("bad_commands")
                            m.next = "STATUS"

            with m.State("CLEARING"), m.If(~kvmu.busy):  # the KVMU empties its chunk pool
                m.next = "STATUS"

            # ---------------------------------------------------------------- SWITCH_CTX
            # The target's kept tokens come to the spare bank first, unless they are there
            # (a RESET_CTX: the spare bank is emptied); then the other tables swap, and the
            # banks trade places: the context left behind is the spare one.
            with m.State("SW_WAIT"), m.If(~pf.busy):
                m.d.sync += leaving.eq(kept_now)
                with m.If(then_reset & ~spare_on | ~then_reset & spare_on & (spare == target)):
                    move()
                with m.Else():
                    prefetch(target, load=~then_reset)
                    m.next = "SW_PREFETCH"
            with m.State("SW_PREFETCH"), m.If(~pf.busy):
                move()
            with m.State("SW_MOVE"), m.If(~mover.busy):
                m.d.sync += [
                    bank.eq(~bank),
                    spare.eq(active),
                    spare_on.eq(1),
                    spare_rows.eq(leaving),
                    spare_dirty.eq(act_dirty),
                    act_dirty.eq(spare_dirty),
                    armed.eq(0),
                ]
                with m.If(then_reset):
                    reset_context(target)
                with m.Else():
                    m.d.sync += [active.eq(target), ctx_base.eq(target_base)]
                    count("context_switches")
                    m.next = "STATUS"

            # ---------------------------------------------------------------- PREFETCH_CTX
            with m.State("PF_WAIT"), m.If(~pf.busy):
                prefetch(target)
                m.next = "STATUS"

            # ---------------------------------------------------------------- SET_BIAS
            with m.State("BIAS_RX"):

                def bias_hash():
                    start_hash(src_kbuf=True, bias=True)
                    m.next = "HASH"

                receive(nb, bias_hash)

            # ---------------------------------------------------------------- INGEST
            with m.State("ING_NEXT"):
                with m.If(tok_left == 0):
                    m.next = "ING_DRAIN"
                with m.Else():
                    m.d.sync += [tok_left.eq(tok_left - 1), drop.eq(n_tok[tid_bits])]
                    m.d.sync += [
                        slot.eq(Mux(n_tok < sink, n_tok, sink + ring_wp)),
                        position.eq(n_tok),
                        ro.eq(0),
                    ]
                    # The token will take the oldest ring slot: that token ages out, in the
                    # aging beside the new token's reception, RoPE and hash. From the first
                    # such token on, every token this INGEST accepts ages one: the aging
                    # gets them all (below), ahead of the new tokens as far as the ring
                    # holds them.
                    ages = ~n_tok[tid_bits] & (n_tok >= sink) & (ring_n == recent)
                    m.d.sync += replaces.eq(ages)
                    with m.If(ages & ~aging_on):
                        room = (1 << tid_bits) - n_tok  # tokens the context still accepts
                        m.d.sync += [
                            aging_on.eq(1),
                            unsent.eq(Mux(tok_left < room, tok_left, room)),
                            next_id.eq(n_tok - recent),
                            next_ring.eq(ring_wp),
                        ]
                    m.next = "ING_RX"
            with m.State("ING_DRAIN"):
                m.d.comb += ingest_busy.eq(1)
                with m.If((wr_pending == 0) & ~w_pend):
                    m.next = "STATUS"
            # The K beats go to the RoPE unit as they arrive (and to kbuf: a pre-RoPE key
            # is hashed while the V beats arrive); the rotated rows are collected into
            # kpost here and in ROPE.
            with m.State("ING_RX"):
                to_rope = ~drop & (rx < nb)
                m.d.comb += [
                    ingest_busy.eq(1),
                    rope.vectors.valid.eq(self.vin.valid & to_rope),
                    rope.vectors.payload.x.eq(self.vin.payload.x),
                    rope.vectors.payload.last.eq(rx == nb - 1),
                ]
                collect_rope()

                def got_token():
                    with m.If(drop):
                        full()
                        m.next = "ING_NEXT"
                    with m.Else():
                        m.d.sync += ri.eq(nb)  # the K beats are in the RoPE unit
                        m.next = "ROPE"

                receive(2 * nb, got_token, ready=~to_rope | rope.vectors.ready)
                if r.hash_space == "pre_rope":
                    with m.If(self.vin.valid & self.vin.ready & (rx == nb - 1) & ~drop):
                        start_hash(src_kbuf=True, bias=False)

            # The rest of a token's RoPE into kpost.
            with m.State("ROPE"):
                m.d.comb += [ingest_busy.eq(1), rope.vectors.valid.eq(ri < nb)]
                with m.If(rope.vectors.valid & rope.vectors.ready):
                    m.d.sync += ri.eq(ri + 1)
                collect_rope()
                with m.If((ro == nb) | rope.result.valid & (ro == nb - 1)):
                    if r.hash_space == "post_rope":
                        start_hash(src_kbuf=False, bias=False)
                    m.next = "HASH"

            # Hash (or bias thresholds): the hasher's beat.
            with m.State("HASH"):
                m.d.comb += [ingest_busy.eq(~bias_mode), hasher.signatures.ready.eq(1)]
                with m.If(hasher.signatures.valid):
                    m.d.sync += hash_on.eq(0)
                    with m.If(bias_mode):
                        m.next = "STATUS"
                    with m.Else():
                        m.d.sync += sig.eq(hasher.signatures.payload)
                        m.next = "ING_PLACE"

            # The new token waits for the aging of the token whose ring slot it takes.
            with m.State("ING_PLACE"):
                m.d.comb += ingest_busy.eq(1)
                with m.If(~replaces | (freed != 0)):
                    m.d.sync += sb.eq(0)
                    m.next = "STORE"

            # The new token into its kept slot.
            with m.State("STORE"):
                m.d.comb += [
                    ingest_busy.eq(1),
                    kk_wr.addr.eq(slot * nb + sb),
                    kv_wr.addr.eq(slot * nb + sb),
                    kk_wr.data.eq(kpost[sb]),
                    kv_wr.data.eq(vbuf[sb]),
                    kk_wr.en.eq(1),
                    kv_wr.en.eq(1),
                    ks_wr.addr.eq(slot),
                    ks_wr.data.eq(sig),
                ]
                m.d.sync += [sb.eq(sb + 1), act_dirty.eq(1)]
                with m.If(sb == 0):
                    m.d.comb += ks_wr.en.eq(1)
                with m.If(sb == nb - 1):
                    m.d.sync += [sb.eq(0), n_tok.eq(n_tok + 1)]
                    count("tokens_ingested")
                    with m.If(n_tok >= sink):
                        m.d.sync += [
                            ring_n.eq(Mux(ring_n == recent, recent, ring_n + 1)),
                            ring_wp.eq(Mux(ring_wp == recent - 1, 0, ring_wp + 1)),
                        ]
                    m.next = "ING_NEXT"

            # ---------------------------------------------------------------- PREFILL, QUERY
            # The rows stream through the RoPE unit (row r at its position) into the buffer
            # and the row sum (P_RX); then 1/rows, the mean query, its scores and selection
            # (Q_SCORE_START .. Q_SCORE), the rows into the engine (P_QROWS), the token
            # stream (Q_KEPT, Q_FETCH, P_PAD) and the outputs (P_OUT).
            with m.State("P_RX"):
                m.d.comb += query_busy.eq(1)
                refused = err != Error.OK  # the vectors are consumed
                in_hs = self.vin.valid & self.vin.ready
                m.d.comb += [
                    rope.vectors.valid.eq(self.vin.valid & (in_row < p_rows) & ~refused),
                    rope.vectors.payload.x.eq(self.vin.payload.x),
                    rope.vectors.payload.last.eq(rx == nb - 1),
                    self.vin.ready.eq((in_row < p_rows) & (rope.vectors.ready | refused)),
                    rope.result.ready.eq(1),
                ]
                with m.If(in_hs):
                    m.d.sync += rx.eq(rx + 1)
                    with m.If(rx == nb - 1):
                        m.d.sync += [rx.eq(0), in_row.eq(in_row + 1)]
                        next_row_position()
                        with m.If(refused & (in_row == p_rows - 1)):
                            m.next = "STATUS"
                with m.If(rope.result.valid):
                    m.d.comb += [
                        q_wr.addr.eq(ld_addr),
                        q_wr.data.eq(rope.result.payload.x),
                        q_wr.en.eq(1),
                    ]
                    m.d.comb += mean.add.eq(1)
                    m.d.sync += [lb.eq(lb + 1), ld_addr.eq(ld_addr + 1)]
                    with m.If(lb == nb - 1):
                        m.d.sync += [lb.eq(0), prow.eq(prow + 1)]
                        with m.If(prow == p_rows - 1):
                            m.next = "P_RECIP"
            with m.State("P_RECIP"):
                m.d.comb += [query_busy.eq(1), recip.operand.valid.eq(1)]
                with m.If(recip.operand.ready):
                    m.next = "P_RECIP_WAIT"
            with m.State("P_RECIP_WAIT"):
                m.d.comb += [query_busy.eq(1), recip.result.ready.eq(1)]
                with m.If(recip.result.valid):
                    m.d.comb += mean.set_recip.eq(1)
                    m.d.sync += lb.eq(0)
                    m.next = "P_MEAN"
            with m.State("P_MEAN"):
                m.d.comb += query_busy.eq(1)
                m.d.sync += [kpost[lb].eq(mean.query), lb.eq(lb + 1)]
                with m.If(lb == nb - 1):
                    m.d.sync += [
                        lb.eq(0),
                        position.eq(arg),
                        gcnt.eq(0),
                        ld_addr.eq(0),
                        ld_cnt.eq(0),
                        ld_v.eq(0),
                        i_lb.eq(0),
                        i_row.eq(0),
                    ]
                    m.next = "Q_SCORE_START"
            with m.State("P_QROWS"):  # the rows from the buffer into the engine
                q_in = attn.queries
                more = ld_cnt < p_rows * nb
                step = ~ld_v | q_in.ready
                m.d.comb += [
                    query_busy.eq(1),
                    q_rd.addr.eq(ld_addr),
                    q_rd.en.eq(step),
                    q_in.valid.eq(ld_v),
                    q_in.payload.x.eq(q_rd.data),
                    q_in.payload.pos.eq(position),
                    q_in.payload.end.eq(ld_row == p_rows - 1),
                    # driven here: left at its init, the field would be a constant-only
                    # comb process in the Verilog (Verilator ALWNEVER, X in Icarus)
                    q_in.payload.pad.eq(0),
                ]
                with m.If(step):
                    m.d.sync += ld_v.eq(more)
                    with m.If(more):
                        m.d.sync += [
                            ld_addr.eq(ld_addr + 1),
                            ld_cnt.eq(ld_cnt + 1),
                            ld_lb.eq(i_lb),
                            ld_row.eq(i_row),
                            i_lb.eq(Mux(i_lb == nb - 1, 0, i_lb + 1)),
                        ]
                        with m.If(i_lb == nb - 1):
                            m.d.sync += i_row.eq(i_row + 1)
                with m.If(q_in.valid & q_in.ready & (ld_lb == nb - 1)):
                    next_row_position()
                    with m.If(ld_row == p_rows - 1):
                        m.next = "Q_KEPT_START"
            with m.State("P_PAD"):  # the padding token ends the engine's token stream
                m.d.comb += query_busy.eq(1)
                with m.If(feeder.pad_done):
                    m.next = "P_OUT"
            with m.State("P_OUT"):  # the engine's outputs, every row
                m.d.comb += query_busy.eq(1)
                with m.If(out_done):
                    m.next = "STATUS"

            with m.State("Q_SCORE_START"):
                m.d.comb += query_busy.eq(1)
                with m.If(op == Op.PREFILL):
                    count("prefills")
                    count("prefill_rows", p_rows)
                with m.Else():
                    count("queries")
                m.d.comb += [gearbox.clear.eq(1), rep_gearbox.clear.eq(1)]  # nothing read yet
                m.d.sync += [
                    ring_base.eq(n_tok - ring_n),
                    kv_summary_seen.eq(0),
                    n_sinks.eq(Mux(n_tok < sink, n_tok, sink)),
                    ring_old.eq(Mux(ring_n == recent, ring_wp, 0)),
                ]
                with m.If(n_clu != 0):
                    m.next = "Q_WTU"
                with m.Else():
                    m.next = "P_QROWS"
            with m.State("Q_WTU"):
                m.d.comb += query_busy.eq(1)
                m.d.comb += dre.wtu_cmd.valid.eq(1)
                with m.If(dre.wtu_cmd.ready):
                    start_feed(FeedMode.SCORE, n_clu)
                    m.d.comb += [
                        reps_reader.start.eq(1),
                        reps_reader.addr.eq(aging.reps_base),
                        reps_reader.count.eq(n_clu * rep_beats),
                    ]
                    count("clusters_scored", n_clu)
                    m.next = "Q_SCORE"
            with m.State("Q_SCORE"):
                m.d.comb += query_busy.eq(1)
                m.d.comb += feeder.stop.eq(feeder.at_end)
                with m.If(scorer.done):
                    m.next = "P_QROWS"
            with m.State("Q_KEPT_START"):
                m.d.comb += query_busy.eq(1)
                start_feed(FeedMode.KEPT, n_sinks + ring_n)
                count("tokens_attended", n_sinks + ring_n)
                m.next = "Q_KEPT"
            with m.State("Q_KEPT"):
                m.d.comb += query_busy.eq(1)
                with m.If(feeder.at_end & ~feeder.staged):
                    # the kept walk is done: an armed, dirty bank is stored behind the rest
                    m.d.sync += clean_due.eq(armed & act_dirty)
                    with m.If(n_clu == 0):
                        attention_done()
                    with m.Else():
                        m.d.comb += feeder.fetch.eq(1)
                        m.next = "Q_FETCH"
            with m.State("Q_FETCH"):
                m.d.comb += query_busy.eq(1)
                with m.If(kv_summary_seen & ~feeder.staged & fetch_empty):
                    attention_done()
            with m.State("STATUS"), m.If(~cleaning):  # the command's clean is done
                m.d.comb += self.status.valid.eq(1)
                with m.If(self.status.ready):
                    m.d.sync += bus_err.eq(0)
                    m.next = "IDLE"
        with m.If(w_pend):
            m.d.comb += [ingest_busy.eq(1), recip.result.ready.eq(1)]
            with m.If(recip.result.valid):
                m.d.comb += w_wr.en.eq(1)
                m.d.sync += w_pend.eq(0)

        # The aging's reads win the kept and key-sum read ports; its strobes land after the
        # control FSM's, as its FSM's statements once did.
        with m.If(aging.busy):
            m.d.comb += ingest_busy.eq(1)
        store_replaced = replaces & (sb == nb - 1) & ctrl.ongoing("STORE")
        m.d.sync += freed.eq(freed + aging.released - store_replaced)
        # The aging's next batch: up to hcu_batch of the unsent tokens, those already stored
        # (ids below n_tok: the ring holds them), whenever its sender is idle.
        stored = (n_tok - next_id)[: len(n_tok)]  # below n_tok when unsent != 0
        batch = Mux(unsent < B, unsent, B)
        batch = Mux(stored < batch, stored, batch)
        with m.If((unsent != 0) & (n_tok > next_id) & aging.sender_idle):
            wrapped = next_ring + batch
            m.d.comb += [aging.go.eq(1), aging.count.eq(batch)]
            m.d.sync += [
                unsent.eq(unsent - batch),
                next_id.eq(next_id + batch),
                next_ring.eq(Mux(wrapped >= recent, wrapped - recent, wrapped)),
            ]
        with m.If(aging.rd):
            m.d.comb += [
                kk_rd.addr.eq(aging.kept_addr),
                kv_rd.addr.eq(aging.kept_addr),
                kk_rd.en.eq(1),
                kv_rd.en.eq(1),
            ]
        with m.If(dre.tokens.valid & dre.tokens.ready):
            m.d.sync += hcu_clear.eq(0)
        with m.If(aging.counts.clusters_created):
            m.d.sync += n_clu.eq(n_clu + 1)
        with m.If(aging.counts.kv_dropped):
            full()
        with m.If(aging.recip_req):
            m.d.comb += recip.operand.valid.eq(~w_pend)
            with m.If(aging.recip_ready):
                m.d.sync += [w_pend.eq(1), w_addr.eq(aging.cluster)]
        # ------------------------------------------------------------------ contexts
        # The mover's table ports (hw.core.contexts, in region order), after the FSMs: while
        # a context moves, its tables' ports are the mover's. The scalars' row is their
        # values (registers, unchanged while they are stored); its load sets them, the HCU's
        # size, the KVMU's chunks in use and the hasher's thresholds.
        m.d.comb += [
            mover.save_base.eq(ctx_base),
            mover.load_base.eq(target_base),
            kvmu.base.eq(ctx_base),
            mover.scalars_rows.eq(1),
            mover.hcu_rows.eq((n_clu + cfg.hcu_lanes - 1) >> ceil_log2(cfg.hcu_lanes)),
            mover.clusters_rows.eq(n_clu),
            mover.chunks_rows.eq(kvmu.chunks),
        ]
        count("context_beats", mover.beats)
        # The prefetcher: a store of the spare bank's rows (from start), a load of the rows
        # its scalars give (their load is its first region; it stores no scalars).
        got_pf = data.View(scalars_layout(cfg), pf.scalars.wdata)
        # The clean: the active context's kept tokens stored, once the prefetcher is free.
        clean_go = clean_due & ~pf.busy
        stored_rows = Mux(clean_go, kept_now, spare_rows)
        with m.If(clean_go):
            m.d.comb += [pf.start.eq(1), pf.save.eq(1), pf.load.eq(0)]
            m.d.sync += [pf_from.eq(active), pf_clean.eq(1), clean_due.eq(0), act_dirty.eq(0)]
        m.d.comb += [
            pf.save_base.eq(base_of(pf_from)),
            pf.load_base.eq(base_of(pf_to)),
            pf.scalars_rows.eq(~pf.start),
            pf.kept_rows.eq(stored_rows * nb),
            pf.kept_sig_rows.eq(stored_rows),
            pf.scalars.rdata.eq(0),
        ]
        with m.If(pf.scalars.we):
            m.d.sync += spare_rows.eq(Mux(got_pf.n_tok < sink, got_pf.n_tok, sink + got_pf.ring_n))
        count("prefetch_beats", pf.beats)
        # a command waiting for the prefetcher hurries it (hw.core.mover: background)
        # (and so does a clean: no command writes while it runs)
        waiting = (
            ctrl.ongoing("SW_WAIT")
            | ctrl.ongoing("SW_PREFETCH")
            | ctrl.ongoing("PF_WAIT")
            | ctrl.ongoing("STATUS") & cleaning
        )
        m.d.comb += pf.hurry.eq(waiting | cleaning)
        with m.If(pf.busy):
            count("prefetch_busy")
            with m.If(waiting):
                count("prefetch_wait")
        sc = mover.scalars
        now = Signal(scalars_layout(cfg), name="scalars")
        m.d.comb += [
            now.n_tok.eq(n_tok),
            now.n_clu.eq(n_clu),
            now.ring_n.eq(ring_n),
            now.ring_wp.eq(ring_wp),
            now.hcu_clear.eq(hcu_clear),
            now.forced.eq(dre.forced),
            now.chunks.eq(kvmu.chunks),
            now.theta.eq(hasher.theta),
        ]
        got = data.View(scalars_layout(cfg), sc.wdata)
        m.d.comb += [
            sc.rdata.eq(now),
            dre.load.eq(sc.we),
            dre.load_size.eq(got.n_clu),
            dre.load_forced.eq(got.forced),
            kvmu.load.eq(sc.we),
            kvmu.load_chunks.eq(got.chunks),
            hasher.load_theta.eq(sc.we),
            hasher.theta_in.eq(got.theta),
        ]
        with m.If(sc.we):
            m.d.sync += [
                n_tok.eq(got.n_tok),
                n_clu.eq(got.n_clu),
                ring_n.eq(got.ring_n),
                ring_wp.eq(got.ring_wp),
                hcu_clear.eq(got.hcu_clear),
            ]
        wiring.connect(m, mover.hcu, dre.bulk)
        wiring.connect(m, mover.chunks, kvmu.chunks_bulk)
        # A cluster's row: its weight (here), member count (aging) and chunk list (KVMU).
        cp = mover.clusters
        row = data.View(cluster_row_layout(cfg), cp.wdata)
        for port, part in ((aging.bulk, row.members), (kvmu.clusters_bulk, row.lists)):
            m.d.comb += [
                port.active.eq(cp.active),
                port.addr.eq(cp.addr),
                port.waddr.eq(cp.waddr),
                port.we.eq(cp.we),
                port.wdata.eq(part),
            ]
        m.d.comb += cp.rdata.eq(Cat(w_rd.data, aging.bulk.rdata, kvmu.clusters_bulk.rdata))
        serve(m, cp, w_rd, w_wr, wdata=row.weight)
        # The spare bank's K and V rows, its signatures: the prefetcher's.
        tables = (
            (pf.kept, [(pk_rd, pk_wr), (pv_rd, pv_wr)]),
            (pf.kept_sig, [(ps_rd, ps_wr)]),
        )
        for port, mems in tables:
            m.d.comb += port.rdata.eq(Cat(*(rd.data for rd, _ in mems)))
            at = 0
            for rd, wr in mems:
                width = len(Value.cast(wr.data))
                serve(m, port, rd, wr, wdata=port.wdata[at : at + width])
                at += width
        # After the FSMs: a response that is not OKAY, on the one bus whichever unit owns it,
        # answers BUS on the next status (it wins over any other error; one that arrives
        # between commands, the background prefetcher's, is not lost).
        bus = self.m_axi
        with m.If(
            bus.rvalid & bus.rready & (bus.rresp != 0) | bus.bvalid & bus.bready & (bus.bresp != 0)
        ):
            m.d.sync += bus_err.eq(1)
        return m

    def _connect_axi(self, m, bus, kvmu, writer, mover, aging, reps_reader) -> None:
        """One AXI4 master ``bus`` (the arbiter's first), shared by phase: the context
        mover's channels while it is busy;
        else reads by the aging (its key sums, while it ages), the representative keys'
        reader (while it streams) or the KVMU, and writes by the KV writer. The phases never
        overlap: a command answers once its reads and writes completed, an ``INGEST`` once
        its aging did, and a selection's scores (and so the KVMU's reads) follow the last
        representative key."""
        on = mover.busy
        owners = {
            "read": [(mover, on), (aging, aging.busy), (reps_reader, reps_reader.busy), (kvmu, 1)],
            "write": [(mover, on), (writer, 1)],
        }
        reads = axi4_read_signature(1, 8).members
        for name, member in self.m_axi.signature.members.items():
            port = getattr(bus, name)
            units = owners["read" if name in reads else "write"]
            taken, selects = Const(0), []
            for _, cond in units:  # the first unit whose condition holds owns the channel
                selects.append(~taken & cond)
                taken = taken | cond
            if member.flow == Out:
                value = getattr(units[-1][0].m_axi, name)
                for unit, cond in reversed(units[:-1]):
                    value = Mux(cond, getattr(unit.m_axi, name), value)
                m.d.comb += port.eq(value)
            else:  # handshakes reach only the owner; data reach every unit
                for (unit, _), sel in zip(units, selects, strict=True):
                    inner = getattr(unit.m_axi, name)
                    m.d.comb += inner.eq(port & sel if len(port) == 1 else port)


class _Port:
    """A memory port's signals (``addr``, ``en``, ``data``), served by a bank (``_banked``);
    ``en`` defaults as Memory's: a read port's to 1, a write port's to 0."""

    def __init__(self, name: str, shape: int, depth: int, en: int):
        self.addr = Signal(range(depth), name=f"{name}_addr")
        self.en = Signal(init=en, name=f"{name}_en")
        self.data = Signal(shape, name=f"{name}_data")


def _banked(m, name: str, shape: int, depth: int, bank: Signal, pf_bank):
    """Memory ``name`` in two banks (``<name>0``, ``<name>1``): the ports of bank ``bank``
    (read, write) and the prefetcher's (read, write): it writes the other bank, the spare,
    and reads bank ``pf_bank`` (the spare, or the active one while it cleans it: no command
    reads that bank then, and the prefetcher's read wins)."""
    sides = [
        (_Port(f"{side}{name}_rd", shape, depth, 1), _Port(f"{side}{name}_wr", shape, depth, 0))
        for side in ("", "spare_")
    ]
    (ar, aw), (pr, pw) = sides
    for b in range(2):
        mem = Memory(shape=shape, depth=depth, init=[])
        m.submodules[f"{name}{b}"] = mem
        rd, wr = mem.read_port(), mem.write_port()
        # the banks flip only while neither side reads
        for vr, mine in ((pr, pf_bank == b), (ar, bank == b)):
            with m.If(mine):
                m.d.comb += vr.data.eq(rd.data)
        with m.If(pf_bank == b):
            m.d.comb += [rd.addr.eq(pr.addr), rd.en.eq(pr.en)]
        with m.Elif(bank == b):
            m.d.comb += [rd.addr.eq(ar.addr), rd.en.eq(ar.en)]
        for vw, mine in ((aw, bank == b), (pw, bank != b)):
            with m.If(mine):
                m.d.comb += [wr.addr.eq(vw.addr), wr.data.eq(vw.data), wr.en.eq(vw.en)]
    return sides
