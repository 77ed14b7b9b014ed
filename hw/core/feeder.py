"""Feeder: the memory rows a query streams, into the MAC tree and the attention engine."""

from __future__ import annotations

import enum

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, check_config
from ..datapath import layouts as datapath_layouts
from .gearbox import row_layout

__all__ = ["FEEDER_COUNTS", "FeedMode", "Feeder"]

#: The ``PERF`` counters whose increments the feeder drives (``Feeder.counts``).
FEEDER_COUNTS = ("array_beats", "mac_beats", "mac_stall", "tokens_fetched", "tokens_attended")


class FeedMode(enum.IntEnum):
    """What the feeder streams (``Feeder.start_mode``)."""

    #: every cluster's representative key (BF16, from DRAM) beside the mean query's row,
    #: into the MAC tree
    SCORE = 1
    #: the kept tokens' K and V rows (sinks, then the ring from its oldest), into the engine
    KEPT = 2
    #: the fetched tokens' rows from the gearbox, into the engine
    FETCH = 3


class Feeder(wiring.Component):
    """One register stage (the *stage*) in front of the MAC tree and the engine's token
    stream; the memory read ports are enabled with the stage's advance, so their data, like
    the stage's flags, hold while it is stalled (``golden.core.CoreModel``'s scoring and
    attention order, in hardware).

    - ``SCORE``: item ``i < end`` is cluster ``i``; its ``nb`` representative-key rows (from
      ``reps``, in cluster order) go to ``tree`` (the MAC tree) with row ``b`` of ``q_vec``
      (the mean query), ``last`` on the item's last row.
    - ``KEPT``: item ``i < end`` is the ``i``-th kept token, sinks ``0..n_sinks-1`` then the
      ring from slot ``sink + ring_old``; its ``nb`` K rows then ``nb`` V rows
      (``kept_addr``) go to ``kv`` at the token's position (``i`` for a sink, ``i - n_sinks
      + ring_base`` for a ring token; 0 when ``unmasked``: a ``QUERY`` masks nothing).
    - ``FETCH``: the gearbox's rows (``fetched``) go to ``kv`` at position 0 (fetched tokens
      are older than every row).
    - the padding token (``pad``): ``2 * nb`` rows flagged ``pad`` and ``end``, position -1,
      that end a command's token stream.

    Control (one-cycle strobes, taken after the stage's own updates): ``start`` (mode
    ``start_mode``, items ``0..start_end-1``, the kept walk from ``start_slot``), ``fetch``
    (from ``KEPT`` on to ``FETCH``), ``stop`` (no more issue), ``pad`` (stop and send the
    padding token). Status: ``at_end`` (every item issued), ``staged`` (a row is in the
    stage), ``fetching`` (``FETCH`` is on: the gearbox may take the KVMU's beats),
    ``pad_done`` (the padding token is out). ``counts``: one-cycle strobes of the
    ``FEEDER_COUNTS`` counters.

    Memories (synchronous reads; the core gives the aging priority on these ports):
    ``rd_en`` with ``kept_addr`` (the kept K and V rows); ``k_data``, ``v_data`` their
    data. The kept walk's context: ``n_sinks``, ``ring_old`` (the oldest ring slot) and
    ``ring_base`` (the oldest ring token's position).
    """

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        r = cfg.resv
        lanes, nb = cfg.mac_lanes, r.head_dim // cfg.mac_lanes
        kept, C, tid = r.sink_tokens + r.recent_tokens, r.max_clusters, cfg.token_id_bits
        items = range(max(C, kept, 2) + 1)  # an item index (a cluster or a kept token)
        row_bits = 16 * lanes
        lay = datapath_layouts(cfg.replace(mac_cols=lanes))
        super().__init__(
            {
                "start": In(1),
                "start_mode": In(2),
                "start_end": In(items),
                "start_slot": In(range(kept)),
                "fetch": In(1),
                "stop": In(1),
                "pad": In(1),
                "at_end": Out(1),
                "staged": Out(1),
                "fetching": Out(1),
                "pad_done": Out(1),
                "unmasked": In(1),
                "n_sinks": In(range(r.sink_tokens + 1)),
                "ring_old": In(range(r.recent_tokens)),
                "ring_base": In(tid + 1),
                "q_vec": In(data.ArrayLayout(row_bits, nb)),
                "rd_en": Out(1),
                "kept_addr": Out(range(kept * nb)),
                "k_data": In(row_bits),
                "v_data": In(row_bits),
                "fetched": In(stream.Signature(row_layout(cfg))),
                "reps": In(stream.Signature(row_layout(cfg))),
                "tree": Out(stream.Signature(datapath_layouts(cfg).mac_in)),
                "kv": Out(stream.Signature(lay.attn_in)),
                "counts": Out(data.StructLayout(dict.fromkeys(FEEDER_COUNTS, 1))),
            }
        )

    def elaborate(self, platform):
        cfg, r = self._cfg, self._cfg.resv
        m = Module()
        lanes, nb = cfg.mac_lanes, r.head_dim // cfg.mac_lanes
        sink, recent = r.sink_tokens, r.recent_tokens
        kept = sink + recent
        row_bits = 16 * lanes
        counts = self.counts

        mode = Signal(2, name="feed_mode")
        feed_on = Signal(name="feed_on")
        items = self.start_end.shape()
        fi = Signal(items, name="feed_i")  # outer index
        fb = Signal(range(2 * nb + 1), name="feed_b")  # row within the item
        f_end = Signal(items, name="feed_end")
        kslot = Signal(range(kept), name="feed_slot")  # kept slot of item ``fi``

        mv = Signal(name="stage_valid")
        mdest_v = Signal(name="stage_v_row")
        mb = Signal(range(nb), name="stage_row")
        mlast = Signal(name="stage_last")
        mrow = Signal(row_bits, name="stage_row_data")  # fetch mode data
        mpos = Signal(cfg.token_id_bits + 1, name="stage_pos")  # the staged row's position
        adv = Signal(name="stage_adv")
        to_attn = Signal(name="to_attn")
        m.d.comb += [
            to_attn.eq(mode != FeedMode.SCORE),
            adv.eq(~mv | Mux(to_attn, self.kv.ready, self.tree.ready)),
            self.at_end.eq(fi == f_end),
            self.staged.eq(mv),
        ]

        b_row = Mux(mode == FeedMode.KEPT, self.k_data, mrow)

        pad_on = Signal(name="pad_on")
        pad_b = Signal(range(2 * nb + 1), name="pad_beat")
        m.d.comb += self.pad_done.eq(pad_b == 2 * nb)
        v_row = Mux(mode == FeedMode.FETCH, mrow, self.v_data)
        kv = self.kv
        with m.If(pad_on):
            m.d.comb += [
                kv.valid.eq(pad_b < 2 * nb),
                kv.payload.pos.eq(-1),
                kv.payload.end.eq(1),
                kv.payload.pad.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                kv.valid.eq(mv & to_attn),
                kv.payload.x.eq(Mux(mdest_v, v_row, b_row)),
                kv.payload.pos.eq(mpos),
            ]
        with m.If(kv.valid & kv.ready):
            m.d.comb += counts.array_beats.eq(1)
            with m.If(pad_on):
                m.d.sync += pad_b.eq(pad_b + 1)
        with m.If(pad_on & self.pad_done):
            m.d.sync += pad_on.eq(0)
        m.d.comb += [
            self.tree.valid.eq(mv & ~to_attn),
            self.tree.payload.a.eq(self.q_vec[mb]),
            self.tree.payload.b.eq(b_row),
            self.tree.payload.last.eq(mlast),
            counts.mac_beats.eq(self.tree.valid & self.tree.ready),
            counts.mac_stall.eq(self.tree.valid & ~self.tree.ready),
        ]

        # SCORE: the representative keys' rows load the stage, cluster after cluster.
        reps = self.reps
        scoring = feed_on & (mode == FeedMode.SCORE) & (fi < f_end)
        m.d.comb += reps.ready.eq(adv & scoring)
        with m.If(adv & (mode == FeedMode.SCORE)):
            m.d.sync += mv.eq(0)
        with m.If(reps.valid & reps.ready):
            m.d.sync += [
                mv.eq(1),
                mrow.eq(reps.payload.data),
                mdest_v.eq(0),
                mb.eq(fb),
                mlast.eq(fb == nb - 1),
                fb.eq(fb + 1),
            ]
            with m.If(fb == nb - 1):
                m.d.sync += [fb.eq(0), fi.eq(fi + 1)]

        # Issue of the kept tokens' rows (KEPT); FETCH loads the stage from ``fetched``.
        issue = Signal(name="feed_issue")
        item_rows = 2 * nb
        b_mod = Mux(fb >= nb, fb - nb, fb).as_unsigned()
        memory_mode = feed_on & (mode == FeedMode.KEPT)
        m.d.comb += [
            issue.eq(memory_mode & (fi < f_end)),
            self.kept_addr.eq(kslot * nb + b_mod),
            self.rd_en.eq(memory_mode & adv),
        ]
        with m.If(adv & (mode == FeedMode.KEPT)):
            m.d.sync += mv.eq(issue)
            with m.If(issue):
                n_sinks = self.n_sinks
                m.d.sync += [
                    mb.eq(b_mod),
                    mdest_v.eq(fb >= nb),
                    mlast.eq(b_mod == nb - 1),
                    mpos.eq(
                        Mux(self.unmasked, 0, Mux(fi < n_sinks, fi, fi - n_sinks + self.ring_base))
                    ),
                    fb.eq(fb + 1),
                ]
                with m.If(fb == item_rows - 1):
                    m.d.sync += [fb.eq(0), fi.eq(fi + 1)]
                    # next kept slot: sinks 0.., then the ring from its oldest entry
                    with m.If(kslot + 1 == n_sinks):
                        m.d.sync += kslot.eq(sink + self.ring_old)
                    with m.Elif(kslot == kept - 1):
                        m.d.sync += kslot.eq(sink)
                    with m.Else():
                        m.d.sync += kslot.eq(kslot + 1)

        # FETCH: the gearbox's rows load the stage.
        fetching = feed_on & (mode == FeedMode.FETCH)
        fetched = self.fetched
        m.d.comb += [self.fetching.eq(fetching), fetched.ready.eq(adv & fetching)]
        with m.If(fetching & adv):
            m.d.sync += mv.eq(0)
        with m.If(fetched.valid & fetched.ready):
            f = fetched.payload
            m.d.sync += [
                mv.eq(1),
                mpos.eq(0),  # fetched tokens are older than every row
                mrow.eq(f.data),
                mdest_v.eq(f.v),
                mb.eq(f.row),
                mlast.eq(~f.v & (f.row == nb - 1)),
            ]
            with m.If(~f.v & (f.row == 0)):
                m.d.comb += [counts.tokens_fetched.eq(1), counts.tokens_attended.eq(1)]

        # Control, after the stage's own updates (it wins).
        with m.If(self.start):
            m.d.sync += [
                mode.eq(self.start_mode),
                feed_on.eq(1),
                fi.eq(0),
                fb.eq(0),
                f_end.eq(self.start_end),
                kslot.eq(self.start_slot),
            ]
        with m.If(self.fetch):
            m.d.sync += mode.eq(FeedMode.FETCH)
        with m.If(self.stop | self.pad):
            m.d.sync += feed_on.eq(0)
        with m.If(self.pad):
            m.d.sync += [pad_on.eq(1), pad_b.eq(0)]
        return m
