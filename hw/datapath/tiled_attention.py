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
the FIFO. The update's second stage writes the last beat of a tile in the cycle the phase
sees every row done, before the next phase starts, so the pipeline adds no cycle.

Phases: ``LOAD_Q`` (the rows into their FIFO, one beat per cycle), then per tile
``LOAD_TILE`` (the tile's K beats into array A, its V beats transposed into array B, one
beat per cycle, ``2 * M * T`` cycles for a full tile) and ``STREAM`` (the rows through A, the
mask, the tile softmax, B and the update, one beat per cycle; the phase ends when every
row's accumulator is queued, so a tile's load does not overlap the previous tile's rows),
then ``FINAL`` (the reciprocals, one per cycle, and ``M`` output beats per row). Cycles
without stalls: ``command_cycles`` (asserted exactly by the tests), about ``rows * M`` per
tile besides the loads. Next steps towards the ``max(T * M, rows * M)`` per tile of
``sim.bench_core``'s tiled engine: a tile's load overlapping the previous tile's rows
(double-buffered arrays), K and V on separate streams, no drain between tiles.
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

__all__ = ["TiledAttention", "command_cycles"]

NEG_INF = int(softmax.NEG_INF)


def command_cycles(cfg: HWConfig, rows: int, tokens: int, pad: bool = False) -> int:
    """Cycles of one command without stalls (inputs offered every cycle, ``out`` always
    ready), from its first query beat to its last output beat: ``2 * rows * M`` (the rows
    in, the outputs out) ``+ 2 * M * (tokens + pad)`` (the tile loads) ``+ tiles * (rows * M
    + 2 * mac_latency + tile_latency + M + ceil(T / C) + 3)`` (the rows through A, the
    softmax, B and the update; then the FIFOs and the phase change; ``tiles = ceil(tokens /
    T)``, a padding token's own tile is dropped) ``+ RECIP_LATENCY + 1`` (the reciprocal
    and the register of the first row's ``1/l``)."""
    m, t = cfg.mac_chunks, cfg.tile_tokens
    lat = mac_latency(cfg.replace(mac_lanes=cfg.mac_cols))
    per_tile = rows * m + 2 * lat + tile_latency(cfg) + m + -(-t // cfg.mac_cols) + 3
    loads = 2 * m * (tokens + int(pad))
    return 2 * rows * m + loads + -(-tokens // t) * per_tile + RECIP_LATENCY + 1


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
        pos_w = cfg.token_id_bits + 1
        qin, kv, out = self.queries, self.kv, self.out

        m.submodules.array_a = arr_a = MacArray(cfg.replace(mac_rows=tile), transposed=False)
        m.submodules.array_b = arr_b = MacArray(cfg.replace(mac_rows=d))
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
        first_tile = Signal(name="first_tile")
        last_tile = Signal(name="last_tile")
        tile_n = Signal(range(tile + 1), name="tile_n")  # tokens in the current tile
        tile_pos = Array(Signal(pos_w, name=f"tile_pos{t}") for t in range(tile))

        # ---- LOAD_Q / STREAM: the query rows' FIFO -------------------------------------
        q_beat = Signal(range(max(2, beats)), name="q_beat")
        q_row = Signal(range(frame + 1), name="q_row")
        q_last = q_beat == beats - 1

        # ---- LOAD_TILE: K beats to array A, V beats (transposed) to array B ------------
        kv_beat = Signal(range(2 * beats), name="kv_beat")
        kv_tok = Signal(range(tile + 1), name="kv_tok")

        # ---- rows done (their accumulator queued) in the current tile ------------------
        done_rows = Signal(range(frame + 1), name="done_rows")
        issue_done = Signal(name="issue_done")
        final_done = Signal(name="final_done")  # the command's last output beat leaves

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
                                first_tile.eq(1),
                                kv_tok.eq(0),
                                kv_beat.eq(0),
                            ]
                            m.next = "LOAD_TILE"
            with m.State("LOAD_TILE"):
                in_k = kv_beat < beats
                tok_last_beat = kv_beat == 2 * beats - 1
                tile_end = (kv_tok == tile - 1) | kv.payload.end
                # a padding token alone in a new tile is taken and dropped (no tile)
                skip = kv.payload.pad & (kv_tok == 0)
                for arr, on, last in (
                    (arr_a, in_k, kv_beat == beats - 1),
                    (arr_b, ~in_k, tok_last_beat),
                ):
                    m.d.comb += [
                        arr.queries.valid.eq(kv.valid & on & ~skip),
                        arr.queries.payload.x.eq(kv.payload.x),
                        arr.queries.payload.last.eq(last),
                        arr.queries.payload.end.eq(last & tile_end),
                    ]
                m.d.comb += [
                    arr_b.queries.payload.columns.eq(1),  # V tiles load transposed
                    kv.ready.eq(skip | Mux(in_k, arr_a.queries.ready, arr_b.queries.ready)),
                ]
                with m.If(kv.valid & kv.ready):
                    with m.If(kv_beat == 0):
                        m.d.sync += tile_pos[kv_tok].eq(kv.payload.pos)
                    m.d.sync += kv_beat.eq(Mux(tok_last_beat, 0, kv_beat + 1))
                    with m.If(tok_last_beat):
                        m.d.sync += kv_tok.eq(kv_tok + 1)
                        with m.If(skip):
                            m.d.sync += kv_tok.eq(0)
                            m.next = "FINAL"
                        with m.Elif(tile_end):
                            m.d.sync += [
                                tile_n.eq(Mux(kv.payload.pad, kv_tok, kv_tok + 1)),
                                last_tile.eq(kv.payload.end),
                                kv_tok.eq(0),
                                done_rows.eq(0),
                                issue_done.eq(0),
                            ]
                            m.next = "STREAM"
            # done_rows counts the update's first stage: the cycle this sees the last row
            # done, the second stage queues its last sum.
            with m.State("STREAM"), m.If(done_rows == rows):
                m.d.sync += first_tile.eq(0)
                with m.If(last_tile):
                    m.next = "FINAL"
                with m.Else():
                    m.next = "LOAD_TILE"
            with m.State("FINAL"), m.If(final_done):
                m.next = "LOAD_Q"

        # Rows into array A (STREAM): pop a beat, re-queue it unless this is the last tile.
        streaming = fsm.ongoing("STREAM")
        head = row_lay(q_fifo.r_data)
        first_beat = q_beat == 0
        issue = Signal(name="issue")
        can = (
            streaming
            & ~issue_done
            & q_fifo.r_rdy
            & (last_tile | q_fifo.w_rdy)
            & (~first_beat | pos_fifo.w_rdy)
        )
        m.d.comb += [
            arr_a.keys.valid.eq(can),
            arr_a.keys.payload.x.eq(head.x),
            arr_a.keys.payload.last.eq(q_last),
            arr_a.keys.payload.end.eq(q_last & (q_row == rows - 1)),
            issue.eq(arr_a.keys.valid & arr_a.keys.ready),
        ]
        with m.If(issue):
            m.d.comb += [q_fifo.r_en.eq(1), pos_fifo.w_en.eq(first_beat)]
            with m.If(~last_tile):
                m.d.comb += [q_fifo.w_en.eq(1), q_fifo.w_data.eq(q_fifo.r_data)]
            m.d.sync += q_beat.eq(Mux(q_last, 0, q_beat + 1))
            with m.If(q_last):
                m.d.sync += q_row.eq(Mux(q_row == rows - 1, 0, q_row + 1))
                with m.If(q_row == rows - 1):
                    m.d.sync += issue_done.eq(1)
        m.d.comb += pos_fifo.w_data.eq(head.pos)

        # Mask and tile softmax input: the row's scores, its position, its m and l.
        sc = arr_a.scores
        row_pos = pos_fifo.r_data
        ml_prev = Signal(64, name="ml_prev")
        m.d.comb += ml_prev.eq(ml_fifo.r_data)
        ml_ok = first_tile | ml_fifo.r_rdy
        m.d.comb += [
            soft.rows.valid.eq(sc.valid & pos_fifo.r_rdy & ml_ok),
            soft.rows.payload.m.eq(Mux(first_tile, NEG_INF, ml_prev[:32])),
            soft.rows.payload.l.eq(Mux(first_tile, 0, ml_prev[32:])),
        ]
        for t in range(tile):
            masked = (t >= tile_n) | (tile_pos[t] > row_pos)
            m.d.comb += soft.rows.payload.s[t].eq(Mux(masked, NEG_INF, sc.payload.s[t]))
        take = soft.rows.valid & soft.rows.ready
        m.d.comb += [
            sc.ready.eq(take),
            pos_fifo.r_en.eq(take),
            ml_fifo.r_en.eq(take & ~first_tile),
        ]

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
        o_last = o_beat == beats - 1
        o_prev = o_lay(o_fifo.r_data)
        o_new = Signal(o_lay, name="o_new")
        a_val = a_fifo.r_data
        upd_ok = pv_fifo.r_rdy & a_fifo.r_rdy & (first_tile | o_fifo.r_rdy) & o_fifo.w_rdy
        pv_lanes = [
            [pv_row[b * cols + i] if b * cols + i < d else Const(0, 32) for b in range(beats)]
            for i in range(cols)
        ]
        upd = Signal(name="upd")
        upd2 = Signal(name="upd2")  # the second stage holds a beat (its sum is queued)
        m.d.comb += upd.eq(streaming & upd_ok)
        m.d.sync += upd2.eq(upd)
        for i in range(cols):
            mul, add = FP32Mul(), FP32Add()
            shared(m, f"o_mul{i}", mul)
            shared(m, f"o_add{i}", add)
            prod = Signal(FP32, name=f"o_prod{i}")  # o*a, rounded
            pv_r = Signal(FP32, name=f"o_pv{i}")  # the beat's P V lane
            m.d.comb += [
                mul.a.eq(Mux(first_tile, 0, o_prev[i])),
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
        final = fsm.ongoing("FINAL")

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
            m.d.comb += o_fifo.r_en.eq(~first_tile)
            m.d.sync += o_beat.eq(Mux(o_last, 0, o_beat + 1))
            with m.If(o_last):
                m.d.comb += [pv_fifo.r_en.eq(1), a_fifo.r_en.eq(1)]
                m.d.sync += done_rows.eq(done_rows + 1)
        with m.If(out_fire):
            m.d.comb += o_fifo.r_en.eq(1)
            m.d.sync += out_beat.eq(Mux(out_last, 0, out_beat + 1))
            with m.If(out_last):
                m.d.sync += out_row.eq(out_row + 1)
                with m.If(out_row == rows - 1):
                    m.d.comb += final_done.eq(1)
                    m.d.sync += [out_row.eq(0), rec_row.eq(0)]
        return m
