"""HashClusterUnit (HCU): online Hamming clustering of token signatures.

Interface
  ``tokens`` (in stream, ``DRELayouts.token``): token id, H-bit signature, ``clear``. A beat
  with ``clear`` empties the table (a new layer/head context) before the token is clustered.
  ``assign`` (out stream, ``DRELayouts.assign``): one beat per token, in order: token id,
  cluster id, Hamming distance to that cluster's signature (0 when created) and the
  ``Event`` (JOINED / CREATED / FORCED), exactly ``golden.resv.ClusterTable`` with
  ``count_max = 2**count_bits - 1`` (counts saturate).
  ``count_addr`` / ``count_data``: read port of the count memory; ``count_data`` is the
  count of cluster ``count_addr`` of the previous cycle (one cycle of read latency).
  ``occupancy``: clusters in the table; ``forced``: forced joins since the last clear
  (saturating at ``2**token_id_bits - 1``).

Behaviour (SPEC section 2): the signature memory holds ``hcu_lanes`` signatures per row;
one row is read per cycle and all its lanes are compared at once (XOR + popcount), reduced
to the row minimum with the lowest lane winning ties, and merged into the running best only
when strictly smaller (earlier rows hold lower indices). Only occupied rows are read.

Cycles: a token accepted at cycle 0 scans ``R = ceil(occupancy / hcu_lanes)`` rows (the
occupancy before the token, 0 after ``clear``): row addresses are issued at cycles
0..R-1 and compared at cycles 1..R, the decision (memory write, count update, output
register) is made at cycle R+1 and the result is valid at cycle R+2, when the next token
can be accepted. So with an always-valid source and an always-ready sink a token takes
``token_cycles(occupancy) = ceil(occupancy / hcu_lanes) + latency`` cycles, ``latency = 2``.
Back-pressure on ``assign`` stalls ``tokens`` only when a result is still waiting.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, ceil_log2, check_config
from .bitops import popcount
from .layouts import Event, layouts

__all__ = ["HCU_LATENCY", "HashClusterUnit", "hcu_token_cycles"]

#: Cycles per token on top of the row scans: one to accept (and read row 0), one to decide.
HCU_LATENCY = 2


def hcu_token_cycles(cfg: HWConfig, occupancy: int) -> int:
    """``ceil(occupancy / hcu_lanes) + HCU_LATENCY``: cycles between token acceptances (and
    from acceptance to the result's handshake) with no stalls; ``occupancy`` is the table
    size before the token (0 after a clear)."""
    if not 0 <= occupancy <= cfg.max_clusters:
        raise ValueError(f"occupancy must be in 0..{cfg.max_clusters}, not {occupancy!r}")
    return -(-occupancy // cfg.hcu_lanes) + HCU_LATENCY


class HashClusterUnit(wiring.Component):
    """Nearest-cluster search and join/create/forced-join; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lay = layouts(cfg)
        super().__init__(
            {
                "tokens": In(stream.Signature(lay.token)),
                "assign": Out(stream.Signature(lay.assign)),
                "count_addr": In(cfg.cluster_id_bits),
                "count_data": Out(cfg.resv.count_bits),
                "occupancy": Out(cfg.occupancy_bits),
                "forced": Out(cfg.token_id_bits),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Cycles per token on top of the ``ceil(occupancy / hcu_lanes)`` row scans."""
        return HCU_LATENCY

    def token_cycles(self, occupancy: int) -> int:
        """Cycles from one token's acceptance to the next one's, without stalls."""
        return hcu_token_cycles(self._cfg, occupancy)

    def elaborate(self, platform):
        cfg, r = self._cfg, self._cfg.resv
        lanes, lane_bits, rows = cfg.hcu_lanes, ceil_log2(cfg.hcu_lanes), cfg.hcu_rows
        hb, far = r.hash_bits, r.hash_bits + 1  # ``far``: distance of an empty lane
        lay = layouts(cfg)
        m = Module()

        m.submodules.sig_mem = sig_mem = Memory(
            shape=data.ArrayLayout(hb, lanes), depth=rows, init=[]
        )
        m.submodules.cnt_mem = cnt_mem = Memory(
            shape=data.ArrayLayout(r.count_bits, lanes), depth=rows, init=[]
        )
        sig_rd, sig_wr = sig_mem.read_port(), sig_mem.write_port(granularity=1)
        cnt_rd, cnt_wr = cnt_mem.read_port(), cnt_mem.write_port(granularity=1)
        cnt_ext = cnt_mem.read_port()

        size = Signal(range(cfg.max_clusters + 1), name="size")
        forced = Signal(cfg.token_id_bits, name="forced_joins")
        token_sig = Signal(hb, name="token_sig")
        token_id = Signal(cfg.token_id_bits, name="token_id")
        n_rows = Signal(range(rows + 1), name="n_rows")
        row = Signal(range(rows + 1), name="row")  # row whose data is on the read ports
        best_dist = Signal(range(far + 1), name="best_dist")
        best_idx = Signal(cfg.cluster_id_bits, name="best_idx")
        best_cnt = Signal(r.count_bits, name="best_cnt")
        out = Signal(lay.assign, name="out")
        out_valid = Signal(name="out_valid")

        m.d.comb += [
            self.occupancy.eq(size),
            self.forced.eq(forced),
            self.assign.valid.eq(out_valid),
            self.assign.payload.eq(out),
            sig_rd.addr.eq(row + 1),
            cnt_rd.addr.eq(row + 1),
            cnt_ext.addr.eq(self.count_addr >> lane_bits),
        ]
        ext_lane = Signal(max(1, lane_bits), name="ext_lane")
        m.d.sync += ext_lane.eq(self.count_addr)
        m.d.comb += self.count_data.eq(cnt_ext.data[ext_lane] if lanes > 1 else cnt_ext.data[0])

        # Row comparison: every lane at once, then a min tree where the left (lower) lane
        # wins ties; lanes at or beyond the occupancy count as ``far``.
        cands = []
        for j in range(lanes):
            dist = Signal(range(far + 1), name=f"lane{j}_dist")
            occupied = ((row << lane_bits) | j) < size
            m.d.comb += dist.eq(Mux(occupied, popcount(token_sig ^ sig_rd.data[j]), far))
            cands.append((dist, Const(j, max(1, lane_bits)), cnt_rd.data[j]))
        level = 0
        while len(cands) > 1:
            nxt = []
            for i in range(0, len(cands) - 1, 2):
                (dl, il, cl), (dr, ir, cr) = cands[i], cands[i + 1]
                d = Signal(range(far + 1), name=f"min{level}_{i // 2}_dist")
                ix = Signal(max(1, lane_bits), name=f"min{level}_{i // 2}_lane")
                c = Signal(r.count_bits, name=f"min{level}_{i // 2}_cnt")
                left = dl <= dr
                m.d.comb += [
                    d.eq(Mux(left, dl, dr)),
                    ix.eq(Mux(left, il, ir)),
                    c.eq(Mux(left, cl, cr)),
                ]
                nxt.append((d, ix, c))
            cands = nxt + cands[len(nxt) * 2 :]
            level += 1
        row_dist, row_lane, row_cnt = cands[0]

        with m.If(self.assign.valid & self.assign.ready):
            m.d.sync += out_valid.eq(0)

        def write_count(idx, value):
            assert len(value) == r.count_bits  # replicate() must not misalign the lanes
            m.d.comb += [
                cnt_wr.addr.eq(idx >> lane_bits),
                cnt_wr.data.eq(value.replicate(lanes)),
                cnt_wr.en.eq(Const(1, lanes) << idx[:lane_bits] if lanes > 1 else 1),
            ]

        with m.FSM(name="hcu_fsm"):
            with m.State("IDLE"):
                # Row 0 is read while the token is accepted.
                m.d.comb += [sig_rd.addr.eq(0), cnt_rd.addr.eq(0)]
                m.d.comb += self.tokens.ready.eq(~out_valid | self.assign.ready)
                with m.If(self.tokens.valid & self.tokens.ready):
                    p = self.tokens.payload
                    occ = Mux(p.clear, 0, size)
                    m.d.sync += [
                        token_sig.eq(p.signature),
                        token_id.eq(p.token_id),
                        n_rows.eq((occ + (lanes - 1)) >> lane_bits),
                        row.eq(0),
                        best_dist.eq(far),
                        best_idx.eq(0),
                        best_cnt.eq(0),
                    ]
                    with m.If(p.clear):
                        m.d.sync += [size.eq(0), forced.eq(0)]
                    with m.If(occ == 0):
                        m.next = "DECIDE"
                    with m.Else():
                        m.next = "SCAN"
            with m.State("SCAN"):
                with m.If(row_dist < best_dist):
                    m.d.sync += [
                        best_dist.eq(row_dist),
                        best_idx.eq((row << lane_bits) | row_lane),
                        best_cnt.eq(row_cnt),
                    ]
                m.d.sync += row.eq(row + 1)
                with m.If(row + 1 == n_rows):
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                bumped = Signal(r.count_bits, name="bumped_count")  # saturating
                m.d.comb += bumped.eq(Mux(best_cnt == r.count_max, best_cnt, best_cnt + 1))
                m.d.sync += [out_valid.eq(1), out.token_id.eq(token_id)]
                with m.If(best_dist <= r.threshold):
                    write_count(best_idx, bumped)
                    m.d.sync += [
                        out.cluster.eq(best_idx),
                        out.distance.eq(best_dist),
                        out.event.eq(Event.JOINED),
                    ]
                with m.Elif(size < cfg.max_clusters):
                    write_count(size, Const(1, r.count_bits))
                    m.d.comb += [
                        sig_wr.addr.eq(size >> lane_bits),
                        sig_wr.data.eq(token_sig.replicate(lanes)),
                        sig_wr.en.eq(Const(1, lanes) << size[:lane_bits] if lanes > 1 else 1),
                    ]
                    m.d.sync += [
                        size.eq(size + 1),
                        out.cluster.eq(size),
                        out.distance.eq(0),
                        out.event.eq(Event.CREATED),
                    ]
                with m.Else():
                    write_count(best_idx, bumped)
                    with m.If(forced != (1 << cfg.token_id_bits) - 1):
                        m.d.sync += forced.eq(forced + 1)
                    m.d.sync += [
                        out.cluster.eq(best_idx),
                        out.distance.eq(best_dist),
                        out.event.eq(Event.FORCED),
                    ]
                m.next = "IDLE"
        return m
