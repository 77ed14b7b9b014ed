"""HashClusterUnit (HCU): online Hamming clustering of token signatures.

Interface
  ``tokens`` (in stream, ``DRELayouts.token``): token id, H-bit signature, ``clear``. A beat
  with ``clear`` empties the table (a new layer/head context) before the token is clustered.
  ``assign`` (out stream, ``DRELayouts.assign``): one beat per token, in order: token id,
  cluster id, Hamming distance to that cluster's signature (0 when created) and the
  ``Event`` (JOINED / CREATED / FORCED), exactly ``golden.resv.ClusterTable`` with
  ``count_max = 2**count_bits - 1`` (counts saturate).
  ``count_addr`` / ``count_data``: read port of the count memory; ``count_data`` is the
  count of cluster ``count_addr`` of the previous cycle (one cycle of read latency), every
  token whose ``assign`` beat has been valid for a cycle included.
  With ``bulk=True`` (the core's, for ``SWITCH_CTX``): ``bulk``, the signature and count
  rows as a ``hw.tableport`` port (a row: ``hcu_lanes`` signatures, then their counts), and
  ``load`` (strobe) setting the occupancy and forced joins from ``load_size`` and
  ``load_forced``; the table is read only below its occupancy, so rows above it may hold
  anything.
  ``occupancy``: clusters in the table; ``forced``: forced joins since the last clear
  (saturating at ``2**token_id_bits - 1``).

Behaviour (SPEC section 2). Tokens are taken in *batches* of up to ``B = hcu_batch``: the
signature memory holds ``hcu_lanes`` signatures per row, one row is read per cycle and every
token of the batch is compared with all its lanes at once (XOR + popcount, registered), then
reduced per token to the row minimum with the lowest lane winning ties and merged into the
token's running best only when strictly smaller (earlier rows hold lower indices). Only the
rows occupied when the batch starts are read. **Early exit**: the scan stops once every
token of the batch has met a distance-0 cluster (nothing can beat it, and rows are scanned
in ascending index, so the result is unchanged). The tokens are then decided one per cycle
in arrival order (join / create / forced join); a token also sees the clusters founded by
the earlier tokens of its batch (an intra-batch comparator: their signatures are the
batch's own, their ids are higher than every table cluster's, so the table wins ties and
earlier founders win among themselves). The result is bit-exact with the sequential
``cluster_online`` whatever the batching. The distances of a token to the batch's other
tokens, and whether they are within T, are computed the cycle before its decision; join or
create follows from those bits and the table best's, only the choice of cluster waits on the
minimum. Counts are updated read-modify-write one cycle after each decision (forwarded when
the same cluster is hit twice in a row).

A batch closes when it holds ``B`` tokens, when the source has no token in a cycle (after at
least one), or before a ``clear`` token (which always opens a batch: ``tokens.ready`` is low
for it while a batch is open).

Cycles, no stalls (always-valid source, always-ready sink), a batch of ``n`` tokens that
starts with ``occupancy`` clusters in the table (0 after a clear):
  rows scanned ``R = ceil(occupancy / hcu_lanes)``, or ``r + 1`` with early exit, ``r`` the
  highest row holding the first distance-0 cluster of a token when every token has one
  (``hcu_scan_rows``);
  ``hcu_batch_cycles = R + 2 n + 1 + [n < B]`` from the first token's acceptance to the next
  batch's (the last acceptance at cycle ``n - 1`` — or a cycle without acceptance at ``n``
  when ``n < B`` — closes the batch; rows are issued for ``R`` cycles, compared one and
  merged two cycles later; ``n`` decisions; a cycle to reopen), and every token's result is
  handshaken ``hcu_result_latency = R + n + 2 + [n < B]`` cycles after its acceptance. With
  ``B = 1``: ``R + 3`` cycles per token.
Back-pressure on ``assign`` stalls the decisions; the next batch's tokens are accepted while
the last result of a batch waits.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, ceil_log2, check_config
from ..tableport import serve, table_port
from .bitops import popcount
from .layouts import Event, layouts

__all__ = [
    "HCU_LATENCY",
    "HashClusterUnit",
    "hcu_batch_cycles",
    "hcu_result_latency",
    "hcu_scan_rows",
]

#: Pipeline cycles of a batch on top of its row reads and decisions: a row read at cycle k
#: is compared (XOR + popcount, registered) at k + 1 and merged into the bests at k + 2.
HCU_LATENCY = 2


def hcu_scan_rows(
    cfg: HWConfig, occupancy: int, zero_clusters: Sequence[int | None] = (None,)
) -> int:
    """Rows a batch reads: ``ceil(occupancy / hcu_lanes)``, or, when every token of the
    batch has a distance-0 cluster among the ``occupancy`` table clusters
    (``zero_clusters[i]``: the lowest such index, None when there is none), up to the row of
    the last one found (early exit)."""
    if not 0 <= occupancy <= cfg.max_clusters:
        raise ValueError(f"occupancy must be in 0..{cfg.max_clusters}, not {occupancy!r}")
    if not 1 <= len(zero_clusters) <= cfg.hcu_batch:
        raise ValueError(
            f"zero_clusters must hold 1..{cfg.hcu_batch} entries, not {len(zero_clusters)}"
        )
    rows = -(-occupancy // cfg.hcu_lanes)
    if any(z is None for z in zero_clusters):
        return rows
    if not all(0 <= z < occupancy for z in zero_clusters):
        raise ValueError(f"zero_clusters must be in 0..{occupancy - 1}, not {zero_clusters!r}")
    return max(z // cfg.hcu_lanes for z in zero_clusters) + 1


def hcu_batch_cycles(
    cfg: HWConfig, occupancy: int, zero_clusters: Sequence[int | None] = (None,)
) -> int:
    """``R + 2 n + 1 + [n < hcu_batch]``: cycles from a batch's first acceptance to the next
    batch's with no stalls; ``n = len(zero_clusters)`` tokens (see ``hcu_scan_rows``)."""
    n = len(zero_clusters)
    rows = hcu_scan_rows(cfg, occupancy, zero_clusters)
    return rows + 2 * n + 1 + int(n < cfg.hcu_batch)


def hcu_result_latency(
    cfg: HWConfig, occupancy: int, zero_clusters: Sequence[int | None] = (None,)
) -> int:
    """``R + n + HCU_LATENCY + [n < hcu_batch]``: cycles from a token's acceptance to its
    result's handshake with no stalls, the same for every token of the batch."""
    n = len(zero_clusters)
    rows = hcu_scan_rows(cfg, occupancy, zero_clusters)
    return rows + n + HCU_LATENCY + int(n < cfg.hcu_batch)


def _min_tree(m: Module, cands: list[tuple[Value, Value]], *, name: str, far: int, width: int):
    """Minimum of ``(distance, index)`` pairs; the earlier (left) candidate wins ties."""
    level = 0
    while len(cands) > 1:
        nxt = []
        for i in range(0, len(cands) - 1, 2):
            (dl, il), (dr, ir) = cands[i], cands[i + 1]
            d = Signal(range(far + 1), name=f"{name}{level}_{i // 2}_dist")
            ix = Signal(width, name=f"{name}{level}_{i // 2}_idx")
            left = dl <= dr
            m.d.comb += [d.eq(Mux(left, dl, dr)), ix.eq(Mux(left, il, ir))]
            nxt.append((d, ix))
        cands = nxt + cands[len(nxt) * 2 :]
        level += 1
    return cands[0]


class HashClusterUnit(wiring.Component):
    """Nearest-cluster search and join/create/forced-join; see the module docstring."""

    def __init__(self, cfg: HWConfig, *, bulk: bool = False):
        check_config(self, cfg)
        self._cfg = cfg
        self._bulk = bulk
        lay = layouts(cfg)
        super().__init__(
            {
                "tokens": In(stream.Signature(lay.token)),
                "assign": Out(stream.Signature(lay.assign)),
                "count_addr": In(cfg.cluster_id_bits),
                "count_data": Out(cfg.resv.count_bits),
                "occupancy": Out(cfg.occupancy_bits),
                "forced": Out(cfg.token_id_bits),
                **(hcu_bulk_members(cfg) if bulk else {}),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Pipeline cycles of a batch on top of its row reads and decisions."""
        return HCU_LATENCY

    def batch_cycles(self, occupancy: int, zero_clusters: Sequence[int | None] = (None,)) -> int:
        """Cycles from one batch's first acceptance to the next one's, without stalls."""
        return hcu_batch_cycles(self._cfg, occupancy, zero_clusters)

    def result_latency(self, occupancy: int, zero_clusters: Sequence[int | None] = (None,)) -> int:
        """Cycles from a token's acceptance to its result's handshake, without stalls."""
        return hcu_result_latency(self._cfg, occupancy, zero_clusters)

    def elaborate(self, platform):
        cfg, r = self._cfg, self._cfg.resv
        lanes, lane_bits, rows = cfg.hcu_lanes, ceil_log2(cfg.hcu_lanes), cfg.hcu_rows
        nb, nb_bits = cfg.hcu_batch, ceil_log2(cfg.hcu_batch)
        hb, far = r.hash_bits, r.hash_bits + 1  # ``far``: distance of an empty lane
        cid_bits = cfg.cluster_id_bits
        lay = layouts(cfg)
        m = Module()

        m.submodules.sig_mem = sig_mem = Memory(
            shape=data.ArrayLayout(hb, lanes), depth=rows, init=[]
        )
        m.submodules.cnt_mem = cnt_mem = Memory(
            shape=data.ArrayLayout(r.count_bits, lanes), depth=rows, init=[]
        )
        sig_rd, sig_wr = sig_mem.read_port(), sig_mem.write_port(granularity=1)
        cnt_wr = cnt_mem.write_port(granularity=1)
        cnt_rd = cnt_mem.read_port()  # read half of the read-modify-write count update
        cnt_ext = cnt_mem.read_port(transparent_for=(cnt_wr,))

        def lane_mask(idx):
            return Const(1, lanes) << idx[:lane_bits] if lanes > 1 else Const(1, 1)

        def lane_of(row_data, idx):
            return row_data[idx[:lane_bits]] if lanes > 1 else row_data[0]

        size = Signal(range(cfg.max_clusters + 1), name="size")
        forced = Signal(cfg.token_id_bits, name="forced_joins")
        out = Signal(lay.assign, name="out")
        out_valid = Signal(name="out_valid")
        m.d.comb += [
            self.occupancy.eq(size),
            self.forced.eq(forced),
            self.assign.valid.eq(out_valid),
            self.assign.payload.eq(out),
            cnt_ext.addr.eq(self.count_addr >> lane_bits),
        ]
        ext_lane = Signal(max(1, lane_bits), name="ext_lane")
        m.d.sync += ext_lane.eq(self.count_addr)
        m.d.comb += self.count_data.eq(lane_of(cnt_ext.data, ext_lane))
        with m.If(self.assign.valid & self.assign.ready):
            m.d.sync += out_valid.eq(0)

        # The batch: token slots in arrival order, each with its running best over the table.
        n = Signal(range(nb + 1), name="batch_n")
        clear0 = Signal(name="batch_clear")
        sig = [Signal(hb, name=f"slot{i}_sig") for i in range(nb)]
        tid = [Signal(cfg.token_id_bits, name=f"slot{i}_token_id") for i in range(nb)]
        best_dist = [Signal(range(far + 1), name=f"slot{i}_best_dist") for i in range(nb)]
        best_idx = [Signal(cid_bits, name=f"slot{i}_best_idx") for i in range(nb)]
        # Intra-batch state: which slots founded a cluster (and its id), and the distances
        # of the slot being decided to every slot, computed a cycle ahead.
        founded = [Signal(name=f"slot{i}_founded") for i in range(nb)]
        found_id = [Signal(cid_bits, name=f"slot{i}_cluster") for i in range(nb)]
        intra = [Signal(range(far + 1), name=f"slot{i}_intra_dist") for i in range(nb)]
        intra_le = [Signal(name=f"slot{i}_intra_joinable") for i in range(nb)]  # <= T

        # Scan pipeline: ``row`` is on the read port; stage 1 registers lane distances.
        n_rows = Signal(range(rows + 1), name="n_rows")
        row = Signal(range(rows + 1), name="row")
        p_valid = Signal(name="cmp_valid")
        p_row = Signal(range(rows + 1), name="cmp_row")
        p_dist = [
            [Signal(range(far + 1), name=f"cmp{i}_lane{j}_dist") for j in range(lanes)]
            for i in range(nb)
        ]
        m.d.comb += sig_rd.addr.eq(row + 1)
        m.d.sync += [p_valid.eq(0), p_row.eq(row)]
        occupied = [((row << lane_bits) | j) < size for j in range(lanes)]
        for i in range(nb):
            for j in range(lanes):
                m.d.sync += p_dist[i][j].eq(
                    Mux(occupied[j], popcount(sig[i] ^ sig_rd.data[j]), far)
                )

        # Stage 2: per-token row minimum merged into its best; early exit when every token
        # of the batch is at distance 0.
        done = []
        merge = Signal(name="merge")
        for i in range(nb):
            rd, rl = _min_tree(
                m,
                [(p_dist[i][j], Const(j, max(1, lane_bits))) for j in range(lanes)],
                name=f"cmp{i}_min",
                far=far,
                width=max(1, lane_bits),
            )
            with m.If(merge & (rd < best_dist[i])):
                m.d.sync += [best_dist[i].eq(rd), best_idx[i].eq((p_row << lane_bits) | rl)]
            done.append((i >= n) | (best_dist[i] == 0) | (merge & (rd == 0)))
        all_done = Signal(name="all_zero")
        m.d.comb += all_done.eq(Cat(*done).all())

        # Decision of slot ``di``: its table best against the clusters founded earlier in
        # the batch (the table wins ties: its ids are lower).
        di = Signal(range(max(2, nb)), name="decide_slot")
        t_dist, t_idx = Array(best_dist)[di], Array(best_idx)[di]
        i_dist, i_slot = _min_tree(
            m,
            [(Mux(founded[j], intra[j], far), Const(j, max(1, nb_bits))) for j in range(nb)],
            name="intra_min",
            far=far,
            width=max(1, nb_bits),
        )
        take_intra = i_dist < t_dist
        bd = Signal(range(far + 1), name="decide_dist")
        bi = Signal(cid_bits, name="decide_idx")
        m.d.comb += [
            bd.eq(Mux(take_intra, i_dist, t_dist)),
            bi.eq(Mux(take_intra, Array(found_id)[i_slot], t_idx)),
        ]
        # The join decision without the minimum: some candidate is within T (short path).
        joins = Signal(name="decide_joins")
        t_le = Array([b <= r.threshold for b in best_dist])[di]
        near = Cat(*(f & le for f, le in zip(founded, intra_le, strict=True)))
        m.d.comb += joins.eq(t_le | near.any())

        # Count update, one cycle after a decision: read then write (forwarded when the
        # previous update hit the same cluster, whose write the read could not see).
        wr_pend = Signal(name="cnt_pending")
        wr_idx = Signal(cid_bits, name="cnt_idx")
        wr_new = Signal(name="cnt_new")
        last_ok = Signal(name="cnt_last_valid")
        last_idx = Signal(cid_bits, name="cnt_last_idx")
        last_val = Signal(r.count_bits, name="cnt_last")
        old = Signal(r.count_bits, name="cnt_old")
        val = Signal(r.count_bits, name="cnt_new_value")
        m.d.comb += [
            old.eq(Mux(last_ok & (last_idx == wr_idx), last_val, lane_of(cnt_rd.data, wr_idx))),
            val.eq(Mux(wr_new, 1, Mux(old == r.count_max, old, old + 1))),
            cnt_wr.addr.eq(wr_idx >> lane_bits),
            cnt_wr.data.eq(val.replicate(lanes)),
        ]
        m.d.sync += wr_pend.eq(0)
        with m.If(wr_pend):
            m.d.comb += cnt_wr.en.eq(lane_mask(wr_idx))
            m.d.sync += [last_ok.eq(1), last_idx.eq(wr_idx), last_val.eq(val)]

        with m.FSM(name="hcu_fsm"):
            with m.State("COLLECT"):
                p = self.tokens.payload
                accept = Signal(name="accept")
                start = Signal(name="start")
                m.d.comb += [
                    self.tokens.ready.eq(~(p.clear & (n != 0))),
                    accept.eq(self.tokens.valid & self.tokens.ready),
                    start.eq(Mux(accept, n == nb - 1, n != 0)),
                ]
                with m.If(accept):
                    m.d.sync += n.eq(n + 1)
                    with m.Switch(n):
                        for i in range(nb):
                            with m.Case(i):
                                m.d.sync += [sig[i].eq(p.signature), tid[i].eq(p.token_id)]
                    with m.If(n == 0):
                        m.d.sync += clear0.eq(p.clear)
                with m.If(start):
                    clr = Mux(n == 0, p.clear, clear0)
                    occ = Mux(clr, 0, size)
                    m.d.comb += sig_rd.addr.eq(0)
                    m.d.sync += [
                        n_rows.eq((occ + (lanes - 1)) >> lane_bits),
                        row.eq(0),
                        di.eq(0),
                        *[b.eq(far) for b in best_dist],
                        *[f.eq(0) for f in founded],
                    ]
                    with m.If(clr):
                        m.d.sync += [size.eq(0), forced.eq(0)]
                    m.next = "SCAN"
            with m.State("SCAN"):
                m.d.comb += merge.eq(p_valid)
                m.d.sync += [row.eq(row + 1), p_valid.eq(row < n_rows)]
                last = p_valid & (p_row == n_rows - 1)
                with m.If(last | all_done | (n_rows == 0)):
                    m.next = "DECIDE"
            with m.State("DECIDE"), m.If(~out_valid | self.assign.ready):
                m.d.sync += [
                    out_valid.eq(1),
                    out.token_id.eq(Array(tid)[di]),
                    di.eq(di + 1),
                    wr_pend.eq(1),
                    wr_new.eq(0),
                ]
                # Distances of the next slot to every slot, for its own decision.
                nxt = Array(sig)[di + 1] if nb > 1 else sig[0]
                for j in range(nb):
                    d = popcount(nxt ^ sig[j])
                    m.d.sync += [intra[j].eq(d), intra_le[j].eq(d <= r.threshold)]
                with m.If(joins):
                    m.d.comb += cnt_rd.addr.eq(bi >> lane_bits)
                    m.d.sync += [
                        wr_idx.eq(bi),
                        out.cluster.eq(bi),
                        out.distance.eq(bd),
                        out.event.eq(Event.JOINED),
                    ]
                with m.Elif(size < cfg.max_clusters):
                    m.d.comb += [
                        sig_wr.addr.eq(size >> lane_bits),
                        sig_wr.data.eq(Array(sig)[di].replicate(lanes)),
                        sig_wr.en.eq(lane_mask(size)),
                    ]
                    m.d.sync += [
                        wr_idx.eq(size),
                        wr_new.eq(1),
                        size.eq(size + 1),
                        Array(founded)[di].eq(1),
                        Array(found_id)[di].eq(size),
                        out.cluster.eq(size),
                        out.distance.eq(0),
                        out.event.eq(Event.CREATED),
                    ]
                with m.Else():
                    m.d.comb += cnt_rd.addr.eq(bi >> lane_bits)
                    with m.If(forced != (1 << cfg.token_id_bits) - 1):
                        m.d.sync += forced.eq(forced + 1)
                    m.d.sync += [
                        wr_idx.eq(bi),
                        out.cluster.eq(bi),
                        out.distance.eq(bd),
                        out.event.eq(Event.FORCED),
                    ]
                with m.If(di == n - 1):
                    m.d.sync += n.eq(0)
                    m.next = "COLLECT"
        if self._bulk:
            # A context's table through the mover (the HCU is idle); ``load`` restores its
            # size and forced joins. Last, so that they win.
            b = self.bulk
            sig_bits, every_lane = lanes * hb, b.we.replicate(lanes)
            m.d.comb += b.rdata.eq(Cat(sig_rd.data, cnt_rd.data))
            serve(m, b, sig_rd, sig_wr, wdata=b.wdata[:sig_bits], en=every_lane)
            serve(m, b, cnt_rd, cnt_wr, wdata=b.wdata[sig_bits:], en=every_lane)
            with m.If(self.load):
                m.d.sync += [size.eq(self.load_size), forced.eq(self.load_forced)]
            # the count forwarded to the next update is the other context's: drop it
            with m.If(self.load | b.we):
                m.d.sync += last_ok.eq(0)
        return m


def hcu_row_bits(cfg: HWConfig) -> int:
    """A row of the HCU's table: ``hcu_lanes`` signatures, then their ``hcu_lanes`` counts."""
    return cfg.hcu_lanes * (cfg.resv.hash_bits + cfg.resv.count_bits)


def hcu_bulk_members(cfg: HWConfig) -> dict:
    """The ports of ``HashClusterUnit(cfg, bulk=True)`` for ``SWITCH_CTX``: its table
    (``bulk``, ``hw.tableport``) and ``load`` (strobe) of ``load_size`` and ``load_forced``."""
    return {
        "bulk": In(table_port(hcu_row_bits(cfg), cfg.hcu_rows)),
        "load": In(1),
        "load_size": In(cfg.occupancy_bits),
        "load_forced": In(cfg.token_id_bits),
    }
