"""TiledAttention: a frame's rows attend to a stream of tokens in the tiled order (issue 11),
bit-exact with ``golden.softmax.tiled_attention`` of the masked scores.

The paper's datapath for prefill and decode: array A (a ``MacArray`` of ``T = tile_tokens``
rows) holds a tile of keys and takes every query row for a row of ``T`` scores; the causal
mask sets the scores of tokens newer than the row to ``-inf``; ``TileSoftmax`` gives the
row's ``a`` and P's BF16 tile row; array B (a ``MacArray`` of ``head_dim`` rows, loaded
transposed) holds the tile's ``V^T`` and takes P's row for the row's ``P x V``; ``mac_cols``
FP32 lanes update the row's accumulator ``o = o*a + P V`` in two pipeline stages (the
rounded product ``o*a`` and the ``P V`` lane registered, then their rounded sum queued: the
two roundings of ``golden.softmax.tile_step``, one per cycle). After the last tile,
``FP32RecipPipe`` gives ``1/l`` (registered) and ``mac_cols`` more ``FP32Mul`` ``o * (1/l)``:
the output.

Interface (payloads in ``DatapathLayouts``; ``C = mac_cols``, ``M = ceil(head_dim / C)``
beats per vector, ``T = tile_tokens``; every stream tolerates idle and back-pressure cycles):
  ``queries`` (in, ``attn_in``): ``1..frame_rows`` query rows, ``M`` beats each in element
  order (the last zero-padded), ``pos`` the row's position (read on its first beat),
  ``end`` on the final row's beats (read on its last beat).
  ``kv`` (in, ``attn_in``): ``1 ..`` tokens, each its K vector (``M`` beats) then its V
  vector (``M`` beats), ``pos`` its position (read on its first beat), ``end`` on every beat
  of the final token. Token ``t`` is masked for a row at ``p`` when ``pos_t > p`` (causal).
  The first token must be visible to every row (``golden.softmax``: otherwise the first
  tile's maximum is ``-inf``). ``pad`` (on every beat of the final token only) makes it a
  padding token, masked for every row: a caller that learns the stream's end only after
  its last token (the core, from the KVMU's summary) ends it with one. A padding token in
  a tile of its own is dropped; in a tile with tokens it is a masked lane, as the golden
  model's own padding of a partial tile, so the result is the same bit for bit.
  ``out`` (out, ``attn_out``): after the last token, every row's output in row order, ``M``
  beats of ``C`` FP32 each, ``last`` on a row's final beat, ``end`` on the final row's.
One command (``queries`` then ``kv``, then ``out``) at a time: ``queries`` is ready again
once the previous command's last output beat left.

Contract: row ``r``'s output is ``tiled_attention(S[r], V, tile=T, lanes=C,
exp_frac_bits=exp_frac_bits)`` with ``S[r, t] = dot(q_r, k_t, C)`` (``golden.fparith``; the
array's reduction order), ``-inf`` where ``t`` is masked for ``r``.

State between tiles is kept in FIFOs, since every tile visits the rows in the same order:
the query rows (``frame_rows x M`` beats, re-queued after each tile but the last), each
row's ``m`` and ``l`` (re-queued by the tile softmax's output, taken by its input at the
next tile) and each row's accumulator (``frame_rows x M`` beats of ``C`` FP32, re-queued by
the update's second stage). A row's next tile cannot overtake its previous one: it waits on
the FIFO.

Phases: ``LOAD_Q`` (the rows into their FIFO, one beat per cycle), ``RUN`` (the tiles) and
``FINAL`` (the reciprocals, one per cycle, and ``M`` output beats per row). In ``RUN`` five
stages work at once, each on its own tile, in tile order: the **load** (a tile's K beats
into array A, its V beats transposed into array B, one beat per cycle, ``2 * M`` per token),
the **issue** (the rows from their FIFO into array A, ``M`` beats each), the **mask** and
tile softmax, **P x V** (P's rows into array B) and the **update**. With ``tile_buffers =
2`` the arrays are double-buffered (``MacArray(banks=2)``): the next tile loads while the
current one's rows stream, and a tile's rows may start as soon as its K beats are in (its V
beats are needed only when P's rows reach array B). A tile's load starts once both arrays
have a free bank (with one buffer: once the previous tile has left array B). The issue
starts a tile at least ``tile_gap`` cycles after the previous tile's start, so that in
the absence of stalls a row's ``m``, ``l`` and accumulator of the previous tile are
always back in their FIFOs when the row arrives (the softmax's latency plus the FIFO's two
cycles): no stage then waits on another, and ``command_cycles`` (asserted exactly by the
tests) follows from the stages' latencies. The tile metadata (positions, token count, last
flag) is held per buffer; a buffer is rewritten only once array B has released its tile,
after the mask stage has read it.

Cycles without stalls: per tile about ``max(2 * M * tokens, rows * M, tile_gap)`` once the
pipeline is full, ``command_cycles`` exactly.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from golden import softmax

from ..config import HWConfig, check_config
from ..shared import shared
from .fp32_add import FP32Add
from .fp32_mul import FP32Mul
from .layouts import BF16, FP32, layouts
from .mac_array import MacArray
from .mac_tree import mac_latency
from .recip import RECIP_LATENCY
from .recip_pipe import FP32RecipPipe
from .tile_softmax import TileSoftmax, tile_latency

__all__ = ["TiledAttention", "command_cycles", "tile_gap"]

NEG_INF = int(softmax.NEG_INF)
#: Cycles from a write into a ``SyncFIFOBuffered`` to the entry being readable.
FIFO_LATENCY = 2


def tile_gap(cfg: HWConfig) -> int:
    """Least cycles between two tiles' first row beats into array A: the tile softmax's
    latency plus ``FIFO_LATENCY``, the time a row's ``m`` and ``l`` take to come back."""
    return tile_latency(cfg) + FIFO_LATENCY


def command_cycles(cfg: HWConfig, rows: int, tokens: int, pad: bool = False) -> int:
    """Cycles of one command without stalls (inputs offered every cycle, ``out`` always
    ready), from its first query beat to its last output beat, from the stages' schedule
    (cycles counted from the first query beat at 0; ``M`` beats per vector, ``L`` the MAC
    rows' latency, ``S`` the tile softmax's, ``F = FIFO_LATENCY``, ``B = tile_buffers``):
    tile ``j`` of ``n_j`` tokens (a final padding token counts in its tile; alone in a new
    tile it is loaded and dropped) loads from ``load_j = max(load_end_{j-1} + 1,
    p_end_{j-B} + 1)`` (``load_0 = rows * M``) to ``load_end_j = load_j + 2 * M * n_j - 1``;
    its rows issue from ``issue_j = max(load_end_j - M + 1, issue_{j-1} + max(rows * M,
    tile_gap))`` (its K beats in), the last at ``issue_end_j = issue_j + rows * M - 1``;
    P's last beat enters array B at ``p_end_j = issue_end_j + L + S + F + ceil(T / C) -
    1``; the update ends at ``p_end_j + L + F + M - 1`` and ``FINAL`` starts two cycles
    later (after a padding token's load, if later); the command ends ``rows * M +
    RECIP_LATENCY`` cycles into ``FINAL``."""
    m, t, nb = cfg.mac_chunks, cfg.tile_tokens, cfg.tile_buffers
    lat = mac_latency(cfg.replace(mac_lanes=cfg.mac_cols))
    p_beats = -(-t // cfg.mac_cols)
    sizes = [min(t, tokens - i) for i in range(0, tokens, t)]
    alone = pad and tokens % t == 0
    if pad and not alone:
        sizes[-1] += 1
    gap, p_lat = tile_gap(cfg), lat + tile_latency(cfg) + FIFO_LATENCY + p_beats - 1
    load_end, issue, p_end = rows * m - 1, None, []
    for j, n in enumerate(sizes):
        load = load_end + 1 if j < nb else max(load_end + 1, p_end[j - nb] + 1)
        load_end = load + 2 * m * n - 1
        first = load_end - m + 1
        issue = first if issue is None else max(first, issue + max(rows * m, gap))
        p_end.append(issue + rows * m - 1 + p_lat)
    final = p_end[-1] + lat + FIFO_LATENCY + m - 1 + 2
    if alone:
        final = max(final, load_end + 2 * m + 2)
    return final + rows * m + RECIP_LATENCY + 1


class TiledAttention(wiring.Component):
    """Tiled-order attention engine; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lay = layouts(cfg)
        super().__init__(
            {
                "queries": In(stream.Signature(lay.attn_in)),
                "kv": In(stream.Signature(lay.attn_in)),
                "out": Out(stream.Signature(lay.attn_out)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def beats(self) -> int:
        """``M``: beats of a ``head_dim`` vector in ``mac_cols`` lanes."""
        return self._cfg.mac_chunks

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        d, cols, tile = cfg.resv.head_dim, cfg.mac_cols, cfg.tile_tokens
        beats = self.beats
        p_beats = -(-tile // cols)  # beats of P's tile row
        frame = cfg.frame_rows
        nbuf = cfg.tile_buffers
        pos_w = cfg.token_id_bits + 1
        qin, kv, out = self.queries, self.kv, self.out

        arr_a = MacArray(cfg.replace(mac_rows=tile), transposed=False, banks=nbuf)
        arr_b = MacArray(cfg.replace(mac_rows=d), banks=nbuf)
        m.submodules.array_a, m.submodules.array_b = arr_a, arr_b
        m.submodules.softmax = soft = TileSoftmax(cfg)
        m.submodules.recip = recip = FP32RecipPipe()

        row_lay = data.StructLayout({"x": data.ArrayLayout(BF16, cols), "pos": pos_w})
        o_lay = data.ArrayLayout(FP32, cols)
        # FIFO depths: every row's beats, plus slack for a read and a write in one cycle.
        q_depth = frame * beats + 2
        m.submodules.q_fifo = q_fifo = SyncFIFOBuffered(width=row_lay.size, depth=q_depth)
        m.submodules.pos_fifo = pos_fifo = SyncFIFOBuffered(width=pos_w, depth=16)
        m.submodules.ml_fifo = ml_fifo = SyncFIFOBuffered(width=64, depth=frame + 2)
        m.submodules.a_fifo = a_fifo = SyncFIFOBuffered(width=32, depth=16)
        m.submodules.o_fifo = o_fifo = SyncFIFOBuffered(width=o_lay.size, depth=q_depth)

        rows = Signal(range(frame + 1), name="rows")  # the command's row count
        # Per buffer: the tile's token positions, its token count and whether it is the last.
        tile_pos = Array(
            Array(Signal(pos_w, name=f"tile_pos{b}_{t}") for t in range(tile)) for b in range(nbuf)
        )
        tile_n = Array(Signal(range(tile + 1), name=f"tile_n{b}") for b in range(nbuf))
        tile_last = Array(Signal(name=f"tile_last{b}") for b in range(nbuf))

        def buffer(name):  # a stage's buffer index, flipped after each of its tiles
            return Signal(range(nbuf), name=name) if nbuf > 1 else Const(0, 1)

        def flip(sig):
            return [sig.eq(~sig)] if nbuf > 1 else []

        # Tiles loaded whose update has not finished; no more tiles once ``load_done``. At
        # most ``nbuf`` hold a bank of array B, and at most one load ends per cycle of the
        # update's tail after array B released a tile (its rows' L + F + M cycles).
        pending = Signal(range(nbuf + arr_b.latency + FIFO_LATENCY + beats + 1), name="pending")
        tile_in = Signal(name="tile_in")  # a tile's load ends
        tile_out = Signal(name="tile_out")  # a tile's update ends
        load_done = Signal(name="load_done")
        final_done = Signal(name="final_done")  # the command's last output beat leaves
        m.d.sync += pending.eq(pending + tile_in - tile_out)

        q_beat = Signal(range(max(2, beats)), name="q_beat")
        q_row = Signal(range(frame + 1), name="q_row")
        q_last = q_beat == beats - 1
        kv_beat = Signal(range(2 * beats), name="kv_beat")
        kv_tok = Signal(range(tile + 1), name="kv_tok")
        sm_first = Signal(name="sm_first")  # the mask stage is on the command's first tile
        up_first = Signal(name="up_first")  # the update is on the command's first tile

        with m.FSM(name="phase") as fsm:
            with m.State("LOAD_Q"):
                m.d.comb += [
                    qin.ready.eq(q_fifo.w_rdy),
                    q_fifo.w_en.eq(qin.valid),
                ]
                row = Signal(row_lay, name="q_in_row")
                m.d.comb += [row.x.eq(qin.payload.x), row.pos.eq(qin.payload.pos)]
                m.d.comb += q_fifo.w_data.eq(row)
                with m.If(qin.valid & qin.ready):
                    m.d.sync += q_beat.eq(Mux(q_last, 0, q_beat + 1))
                    with m.If(q_last):
                        m.d.sync += q_row.eq(q_row + 1)
                        with m.If(qin.payload.end):
                            m.d.sync += [
                                rows.eq(q_row + 1),
                                q_row.eq(0),
                                sm_first.eq(1),
                                up_first.eq(1),
                                load_done.eq(0),
                            ]
                            m.next = "RUN"
            # The update's last tile ends in the cycle before this sees ``pending`` at 0; the
            # second stage queues its last sum in that cycle.
            with m.State("RUN"), m.If(load_done & (pending == 0)):
                m.next = "FINAL"
            with m.State("FINAL"), m.If(final_done):
                m.next = "LOAD_Q"
        running = fsm.ongoing("RUN")
        final = fsm.ongoing("FINAL")

        # ---- load: K beats to array A, V beats (transposed) to array B -------------------
        ld_buf = buffer("ld_buf")
        in_k = kv_beat < beats
        tok_last_beat = kv_beat == 2 * beats - 1
        tile_end = (kv_tok == tile - 1) | kv.payload.end
        # a padding token alone in a new tile is taken and dropped (no tile)
        skip = kv.payload.pad & (kv_tok == 0)
        # a tile starts once both arrays have a free buffer
        free = (kv_tok != 0) | (kv_beat != 0) | (arr_a.queries.ready & arr_b.queries.ready)
        loading = running & ~load_done
        for arr, on, last in (
            (arr_a, in_k, kv_beat == beats - 1),
            (arr_b, ~in_k, tok_last_beat),
        ):
            m.d.comb += [
                arr.queries.valid.eq(loading & kv.valid & on & ~skip & free),
                arr.queries.payload.x.eq(kv.payload.x),
                arr.queries.payload.last.eq(last),
                arr.queries.payload.end.eq(last & tile_end),
            ]
        m.d.comb += [
            arr_b.queries.payload.columns.eq(1),  # V tiles load transposed
            kv.ready.eq(
                loading & (skip | (free & Mux(in_k, arr_a.queries.ready, arr_b.queries.ready)))
            ),
        ]
        with m.If(kv.valid & kv.ready):
            with m.If((kv_beat == 0) & ~skip):
                m.d.sync += tile_pos[ld_buf][kv_tok].eq(kv.payload.pos)
            # the tile's size and last flag with its K beats: its rows may issue before its V
            with m.If((kv_beat == beats - 1) & tile_end & ~skip):
                m.d.sync += [
                    tile_n[ld_buf].eq(Mux(kv.payload.pad, kv_tok, kv_tok + 1)),
                    tile_last[ld_buf].eq(kv.payload.end),
                ]
            m.d.sync += kv_beat.eq(Mux(tok_last_beat, 0, kv_beat + 1))
            with m.If(tok_last_beat):
                m.d.sync += kv_tok.eq(kv_tok + 1)
                with m.If(skip):
                    m.d.sync += [kv_tok.eq(0), load_done.eq(1)]
                with m.Elif(tile_end):
                    m.d.sync += [kv_tok.eq(0), load_done.eq(kv.payload.end), *flip(ld_buf)]
                    m.d.comb += tile_in.eq(1)

        # ---- issue: rows into array A, re-queued unless this is the last tile -------------
        is_buf = buffer("is_buf")
        gap = Signal(range(tile_gap(cfg) + 1), name="gap")  # cycles until a tile may start
        head = row_lay(q_fifo.r_data)
        first_beat = q_beat == 0
        tile_start = first_beat & (q_row == 0)
        requeue = ~tile_last[is_buf]
        issue = Signal(name="issue")
        m.d.comb += [
            arr_a.keys.valid.eq(
                running
                & q_fifo.r_rdy
                & (~requeue | q_fifo.w_rdy)
                & (~first_beat | pos_fifo.w_rdy)
                & (~tile_start | (gap == 0))
            ),
            arr_a.keys.payload.x.eq(head.x),
            arr_a.keys.payload.last.eq(q_last),
            arr_a.keys.payload.end.eq(q_last & (q_row == rows - 1)),
            issue.eq(arr_a.keys.valid & arr_a.keys.ready),
        ]
        with m.If(issue & tile_start):
            m.d.sync += gap.eq(tile_gap(cfg) - 1)
        with m.Elif(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        with m.If(issue):
            m.d.comb += [q_fifo.r_en.eq(1), pos_fifo.w_en.eq(first_beat)]
            with m.If(requeue):
                m.d.comb += [q_fifo.w_en.eq(1), q_fifo.w_data.eq(q_fifo.r_data)]
            m.d.sync += q_beat.eq(Mux(q_last, 0, q_beat + 1))
            with m.If(q_last):
                m.d.sync += q_row.eq(Mux(q_row == rows - 1, 0, q_row + 1))
                with m.If(q_row == rows - 1):
                    m.d.sync += flip(is_buf)
        m.d.comb += pos_fifo.w_data.eq(head.pos)

        # ---- mask and tile softmax input: the row's scores, its position, its m and l -----
        sm_buf = buffer("sm_buf")
        sm_row = Signal(range(frame + 1), name="sm_row")
        sc = arr_a.scores
        row_pos = pos_fifo.r_data
        ml_prev = Signal(64, name="ml_prev")
        m.d.comb += ml_prev.eq(ml_fifo.r_data)
        ml_ok = sm_first | ml_fifo.r_rdy
        m.d.comb += [
            soft.rows.valid.eq(sc.valid & pos_fifo.r_rdy & ml_ok),
            soft.rows.payload.m.eq(Mux(sm_first, NEG_INF, ml_prev[:32])),
            soft.rows.payload.l.eq(Mux(sm_first, 0, ml_prev[32:])),
        ]
        n_now = tile_n[sm_buf]
        for t in range(tile):
            masked = (t >= n_now) | (tile_pos[sm_buf][t] > row_pos)
            m.d.comb += soft.rows.payload.s[t].eq(Mux(masked, NEG_INF, sc.payload.s[t]))
        take = soft.rows.valid & soft.rows.ready
        m.d.comb += [
            sc.ready.eq(take),
            pos_fifo.r_en.eq(take),
            ml_fifo.r_en.eq(take & ~sm_first),
        ]
        with m.If(take):
            m.d.sync += sm_row.eq(sm_row + 1)
            with m.If(sm_row == rows - 1):
                m.d.sync += [sm_row.eq(0), sm_first.eq(0), *flip(sm_buf)]

        # Tile softmax output, taken every cycle: m, l re-queued, a to the update, P's row
        # into a FIFO that array B takes in ``p_beats`` beats (the softmax's pipeline only
        # advances when its output is taken).
        res = soft.result
        p_lay = data.ArrayLayout(BF16, tile)
        m.submodules.p_fifo = p_fifo = SyncFIFOBuffered(width=p_lay.size, depth=4)
        ml_new = Signal(64, name="ml_new")
        m.d.comb += [
            ml_new[:32].eq(res.payload.m),
            ml_new[32:].eq(res.payload.l),
            ml_fifo.w_data.eq(ml_new),
            a_fifo.w_data.eq(res.payload.a),
            p_fifo.w_data.eq(res.payload.p),
            res.ready.eq(ml_fifo.w_rdy & a_fifo.w_rdy & p_fifo.w_rdy),
        ]
        with m.If(res.valid & res.ready):
            m.d.comb += [ml_fifo.w_en.eq(1), a_fifo.w_en.eq(1), p_fifo.w_en.eq(1)]
        p_row_data = p_lay(p_fifo.r_data)
        p_beat = Signal(range(max(2, p_beats)), name="p_beat")
        p_row = Signal(range(frame + 1), name="p_row")
        p_last = p_beat == p_beats - 1
        m.d.comb += [
            arr_b.keys.valid.eq(p_fifo.r_rdy),
            arr_b.keys.payload.last.eq(p_last),
            arr_b.keys.payload.end.eq(p_last & (p_row == rows - 1)),
        ]
        for i in range(cols):
            lanes = [p_row_data[b * cols + i] if b * cols + i < tile else 0 for b in range(p_beats)]
            lane = Array(lanes)[p_beat] if p_beats > 1 else lanes[0]
            m.d.comb += arr_b.keys.payload.x[i].eq(lane)
        with m.If(arr_b.keys.valid & arr_b.keys.ready):
            m.d.sync += p_beat.eq(Mux(p_last, 0, p_beat + 1))
            with m.If(p_last):
                m.d.comb += p_fifo.r_en.eq(1)
                m.d.sync += p_row.eq(Mux(p_row == rows - 1, 0, p_row + 1))

        # Accumulator update: o = o*a + P V, C lanes per beat of array B's row, in two
        # stages: ``upd`` pops the beat's o (+0 on the first tile), a and P V lane and
        # registers the rounded product o*a beside the P V lane; the next cycle (``upd2``)
        # adds them (the same two roundings as ``tile_step``) and queues the sum. Array B's
        # rows go through a FIFO: its pipeline only advances when its output is taken, and
        # the update takes M cycles per row.
        pv_lay = data.ArrayLayout(FP32, d)
        depth = arr_b.latency + 3
        m.submodules.pv_fifo = pv_fifo = SyncFIFOBuffered(width=pv_lay.size, depth=depth)
        m.d.comb += [
            pv_fifo.w_data.eq(arr_b.scores.payload.s.as_value()[: pv_lay.size]),
            pv_fifo.w_en.eq(arr_b.scores.valid),
            arr_b.scores.ready.eq(pv_fifo.w_rdy),
        ]
        pv_row = pv_lay(pv_fifo.r_data)
        o_beat = Signal(range(max(2, beats)), name="o_beat")
        o_row = Signal(range(frame + 1), name="o_row")
        o_last = o_beat == beats - 1
        o_prev = o_lay(o_fifo.r_data)
        o_new = Signal(o_lay, name="o_new")
        a_val = a_fifo.r_data
        upd_ok = pv_fifo.r_rdy & a_fifo.r_rdy & (up_first | o_fifo.r_rdy) & o_fifo.w_rdy
        pv_lanes = [
            [pv_row[b * cols + i] if b * cols + i < d else Const(0, 32) for b in range(beats)]
            for i in range(cols)
        ]
        upd = Signal(name="upd")
        upd2 = Signal(name="upd2")  # the second stage holds a beat (its sum is queued)
        m.d.comb += upd.eq(running & upd_ok)
        m.d.sync += upd2.eq(upd)
        for i in range(cols):
            mul, add = FP32Mul(), FP32Add()
            shared(m, f"o_mul{i}", mul)
            shared(m, f"o_add{i}", add)
            prod = Signal(FP32, name=f"o_prod{i}")  # o*a, rounded
            pv_r = Signal(FP32, name=f"o_pv{i}")  # the beat's P V lane
            m.d.comb += [
                mul.a.eq(Mux(up_first, 0, o_prev[i])),
                mul.b.eq(a_val),
                add.a.eq(prod),
                add.b.eq(pv_r),
                o_new[i].eq(add.s),
            ]
            with m.If(upd):
                m.d.sync += [
                    prod.eq(mul.p),
                    pv_r.eq(Array(pv_lanes[i])[o_beat] if beats > 1 else pv_lanes[i][0]),
                ]

        # FINAL: 1/l per row (pipelined), then o * (1/l), C lanes per beat.
        rec_row = Signal(range(frame + 1), name="rec_row")
        out_beat = Signal(range(max(2, beats)), name="out_beat")
        out_row = Signal(range(frame + 1), name="out_row")
        out_last = out_beat == beats - 1
        m.d.comb += [
            recip.operand.valid.eq(final & (rec_row != rows) & ml_fifo.r_rdy),
            recip.operand.payload.value.eq(ml_prev[32:]),
        ]
        with m.If(recip.operand.valid & recip.operand.ready):
            m.d.comb += ml_fifo.r_en.eq(1)
            m.d.sync += rec_row.eq(rec_row + 1)
        # 1/l of the row being output, registered (the reciprocal's rounding after its last
        # register and an FP32Mul were one cycle): taken from the reciprocal when the
        # register is empty or its row's last beat leaves, so rows follow without a gap.
        inv = Signal(FP32, name="inv_l")
        inv_valid = Signal(name="inv_valid")
        out_mul = [FP32Mul() for _ in range(cols)]
        for i, mul in enumerate(out_mul):
            shared(m, f"out_mul{i}", mul)
            m.d.comb += [
                mul.a.eq(o_prev[i]),
                mul.b.eq(inv),
                out.payload.o[i].eq(mul.p),
            ]
        m.d.comb += [
            out.valid.eq(final & inv_valid & o_fifo.r_rdy),
            out.payload.last.eq(out_last),
            out.payload.end.eq(out_last & (out_row == rows - 1)),
        ]
        out_fire = out.valid & out.ready
        m.d.comb += recip.result.ready.eq(~inv_valid | (out_fire & out_last))
        with m.If(recip.result.valid & recip.result.ready):
            m.d.sync += [inv.eq(recip.result.payload.value), inv_valid.eq(1)]
        with m.Elif(out_fire & out_last):
            m.d.sync += inv_valid.eq(0)
        # The rows re-queued after a tile that turned out not to be the last (a padding token
        # alone in the next tile) leave during FINAL, which lasts longer than they take.
        with m.If(final & q_fifo.r_rdy):
            m.d.comb += q_fifo.r_en.eq(1)

        # The sum of the beat taken the cycle before. The FIFO never fills (at most ``rows
        # * M`` beats, fewer while one is in the second stage), so it is always taken.
        with m.If(upd2):
            m.d.comb += [o_fifo.w_en.eq(1), o_fifo.w_data.eq(o_new)]
        with m.If(upd):
            m.d.comb += o_fifo.r_en.eq(~up_first)
            m.d.sync += o_beat.eq(Mux(o_last, 0, o_beat + 1))
            with m.If(o_last):
                m.d.comb += [pv_fifo.r_en.eq(1), a_fifo.r_en.eq(1)]
                m.d.sync += o_row.eq(o_row + 1)
                with m.If(o_row == rows - 1):
                    m.d.comb += tile_out.eq(1)
                    m.d.sync += [o_row.eq(0), up_first.eq(0)]
        with m.If(out_fire):
            m.d.comb += o_fifo.r_en.eq(1)
            m.d.sync += out_beat.eq(Mux(out_last, 0, out_beat + 1))
            with m.If(out_last):
                m.d.sync += out_row.eq(out_row + 1)
                with m.If(out_row == rows - 1):
                    m.d.comb += final_done.eq(1)
                    m.d.sync += [out_row.eq(0), rec_row.eq(0)]
        return m
