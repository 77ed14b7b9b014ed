"""MacArray: ``mac_rows`` x ``mac_cols`` BF16 MACs, query block x K tile (SPEC section 3,
Datapath; issue 11): QK^T of a block of stationary query vectors against streamed K
vectors, for frame prefill (a frame's rows x the GQA group's query heads) and for grouped
GEMV in decode (the group's query heads share each K read).

Interface (payloads in ``DatapathLayouts``: ``array_load``, ``array_in``, ``array_out``;
``C = mac_cols``, ``R = mac_rows``, ``M = mac_chunks = ceil(head_dim / C)``). A vector of
``n`` elements (``1 <= n <= M*C``) is ``m = ceil(n / C)`` beats in element order, the final
beat zero-padded with BF16 ``+0`` and flagged ``last``; all vectors of one block (queries
and keys) have the same ``m``.
  ``queries`` (in stream, ``array_load``; ``array_in`` for a ``MacArray(cfg,
  transposed=False)``, which has no transposed load): a block of ``1..R`` query vectors,
  row after row (row ``r`` is the ``r``-th vector sent); ``end`` on the final beat of the
  final row. Rows past ``R`` are consumed and ignored. With ``columns`` set (on every beat
  of the block) the block is loaded **transposed**: its ``j``-th vector (``n'`` elements,
  ``ceil(n' / C)`` beats) is column ``j`` of the stored rows, so beat ``b`` of vector ``j``
  writes element ``j`` of rows ``b*C .. b*C + C - 1``; the block then has ``min(R,
  ceil(n' / C) * C)`` rows of ``n`` elements (``n`` = the number of vectors, ``1..M*C``),
  the elements no vector wrote ``+0`` (the first beat clears the stored rows). This loads
  a V tile (one vector per token) as ``V^T`` for ``P x V``: the scores are then
  ``golden.fparith.mac_array(V^T, P, C)``.
  ``keys`` (in stream): the block's K vectors, one after the other; ``end`` on the final
  beat of the final one (a block streams at least one K vector).
  ``scores`` (out stream): one beat per K vector, in order: ``s[r]`` is the FP32 pattern
  ``golden.fparith.dot(q_r, k, mac_cols)``, bit-exact, for the block's rows, ``+0`` for the
  rows past the block's row count (so the beat is ``golden.fparith.mac_array(queries,
  keys, mac_cols, rows=mac_rows)[t]``); ``end`` on the block's final K vector.
Phases: after reset the unit loads a query block (``queries.ready`` high, ``keys.ready``
low) until the ``end`` beat, then streams K vectors (``queries.ready`` low) until the K
``end`` beat, then loads the next block, and so on. The queries are read when a K beat is
accepted, so a block's load may start while the previous block's last scores are still in
the pipeline. With ``banks = 2`` (a double buffer: every stored row twice) the two phases
overlap: a block loads into the free bank while the other bank's block streams its K
vectors, so ``queries.ready`` is high while a bank is free and ``keys.ready`` while one
holds a loaded block; blocks stream in the order they were loaded. Vectors of more than
``M`` beats, and K vectors whose beat count differs from the block's query vectors, are
outside the contract (scores unspecified, framing kept).

Structure and reduction order: row ``r`` is a ``MacTree`` of ``C`` lanes whose ``a``
operands are chunk ``c`` of the stored query ``q_r`` (``c`` = the K beat's index within its
vector) and whose ``b`` operands are the K beat, which all rows share: per beat a pairwise
FP32 tree of the ``C`` products, then a sequential accumulation of the chunk sums, exactly
``golden.fparith.dot``'s order (subnormals flushed, round to nearest even, inf/NaN as the
MacTree). The queries sit in ``R x M x C`` BF16 registers, a ``StationaryRow`` per row
(one shared module for all rows). A small FIFO carries each K
vector's ``end`` flag and the block's row count to its score beat.

Cycles (no stalls): one beat per cycle on either input, no bubble between phases. A block
of ``R'`` rows and ``T`` K vectors of ``m`` beats takes ``block_cycles = (R' + T) * m``
cycles of input: query beats at ``s .. s + R'm - 1``, K beats at ``s + R'm .. s + (R' +
T)m - 1``, the next block's first query beat at ``s + (R' + T)m`` (a transposed block: its
own beats, then ``T * m`` K beats). The scores of a K vector
whose ``last`` beat is accepted at cycle ``t`` are offered at ``t + latency``, ``latency =
log2(mac_cols) + 2`` (``mac_latency`` of the rows' trees). Back-pressure: as the MacTree,
the pipeline advances whenever the output register is empty or read (``keys.ready =
streaming & (~scores.valid | scores.ready)``); the query load does not depend on it.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, check_config
from ..shared import shared
from .layouts import layouts
from .mac_tree import MacTree, mac_latency
from .stationary_row import StationaryRow

__all__ = ["MacArray", "block_cycles"]


def block_cycles(rows: int, keys: int, beats: int) -> int:
    """Input cycles of one block without stalls: ``(rows + keys) * beats`` (see the module
    docstring)."""
    return (rows + keys) * beats


class MacArray(wiring.Component):
    """``mac_rows`` x ``mac_cols`` BF16 MAC array; see the module docstring."""

    def __init__(self, cfg: HWConfig, *, transposed: bool = True, banks: int = 1):
        check_config(self, cfg)
        if banks not in (1, 2):
            self._MustUse__silence = True  # as hw.config.check_config
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        self._cfg = cfg
        self._transposed = transposed
        self._banks = banks
        # Each row is a MacTree of ``mac_cols`` lanes.
        self._tree_cfg = cfg.replace(mac_lanes=cfg.mac_cols)
        lay = layouts(cfg)
        super().__init__(
            {
                "queries": In(stream.Signature(lay.array_load if transposed else lay.array_in)),
                "keys": In(stream.Signature(lay.array_in)),
                "scores": Out(stream.Signature(lay.array_out)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Cycles from the handshake of a K vector's ``last`` beat to its scores being
        offered: ``log2(mac_cols) + 2``."""
        return mac_latency(self._tree_cfg)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        rows, cols, chunks = cfg.mac_rows, cfg.mac_cols, cfg.mac_chunks
        qin, kin, out = self.queries, self.keys, self.scores
        banks = self._banks
        # Per bank: a loaded block waits for (or streams) its K vectors. ``wb``: the bank
        # the next block loads into; ``rb``: the bank the K vectors read.
        full = Signal(banks, name="full")
        wb = Signal(range(banks), name="wbank") if banks > 1 else Const(0, 1)
        rb = Signal(range(banks), name="rbank") if banks > 1 else Const(0, 1)

        # Side channel: the K vector's ``end`` and the block's row count, one entry per K
        # vector in flight (at most ``latency`` of them).
        side = data.StructLayout({"end": 1, "rows": range(rows + 1)})
        fifo = m.submodules.side = SyncFIFO(width=side.size, depth=self.latency + 1)
        block_rows = Array(Signal(range(rows + 1), name=f"block_rows{b}") for b in range(banks))
        push = Signal(side, name="side_push")
        m.d.comb += [push.end.eq(kin.payload.end), push.rows.eq(block_rows[rb])]
        m.d.comb += fifo.w_data.eq(push)

        k_chunk = Signal(range(max(2, chunks)), name="k_chunk")  # the K beat's chunk
        # Query load: rows x chunks registers of ``cols`` BF16 elements, one StationaryRow
        # (one shared module) per row.
        qrows = [
            StationaryRow(chunks, cols, columns=self._transposed, banks=banks) for _ in range(rows)
        ]
        # Row order: ``load_row`` (the vector) and ``load_chunk`` (its beat). Transposed:
        # ``load_row`` is the vector (a column index, up to M*C) and ``load_chunk`` its beat
        # (a group of C rows); ``col_rows`` the rows its beats reached.
        groups = -(-rows // cols)
        load_row = Signal(range(max(rows, chunks * cols) + 1), name="load_row")
        load_chunk = Signal(range(max(chunks, groups) + 1), name="load_chunk")
        col_rows = Signal(range(rows + 1), name="col_rows")
        first = Signal(init=1, name="load_first")  # the next query beat starts a block
        transposed = qin.payload.columns if self._transposed else Const(0, 1)
        m.d.comb += qin.ready.eq(~full.bit_select(wb, 1))
        # The strobes, each decoded once: (row, chunk) for a row beat; (row group, column)
        # for a transposed beat, whose lane ``i`` goes to row ``g * C + i`` of group ``g``.
        load = Signal(name="q_load")
        m.d.comb += load.eq(qin.valid & qin.ready)
        row_beat = Signal(name="row_beat")
        m.d.comb += row_beat.eq(load & ~transposed)
        chunk_hit = Signal(chunks, name="chunk_hit")
        m.d.comb += chunk_hit.eq(Cat(load_chunk == c for c in range(chunks)))
        if self._transposed:
            col_hit = Signal(chunks * cols, name="col_hit")
            m.d.comb += col_hit.eq(Cat(load_row == j for j in range(chunks * cols)))
            clear = Signal(name="q_clear")
            m.d.comb += clear.eq(load & transposed & first)
            col_w = [Signal(chunks * cols, name=f"col_w{g}") for g in range(groups)]
            for g in range(groups):
                hit = load & transposed & (load_chunk == g)
                m.d.comb += col_w[g].eq(col_hit & hit.replicate(chunks * cols))
        for r, qrow in enumerate(qrows):
            shared(m, f"q{r}", qrow, chunks, cols, self._transposed, banks)
            row_w = Signal(chunks, name=f"row_w{r}")
            m.d.comb += [
                row_w.eq(chunk_hit & (row_beat & (load_row == r)).replicate(chunks)),
                qrow.x.eq(qin.payload.x),
                qrow.row_w.eq(row_w),
                qrow.read.eq(k_chunk),
            ]
            if banks > 1:
                m.d.comb += [qrow.wbank.eq(wb), qrow.rbank.eq(rb)]
            if self._transposed:
                g, i = divmod(r, cols)
                m.d.comb += [
                    qrow.col_x.eq(qin.payload.x[i]),
                    qrow.col_w.eq(col_w[g]),
                    qrow.clear.eq(clear),
                ]
        with m.If(load):
            m.d.sync += first.eq(qin.payload.last & qin.payload.end)
            with m.If(transposed):
                reach = Mux(load_chunk >= groups, rows, (load_chunk + 1) * cols)
                reach = Mux(reach > rows, rows, reach)
                with m.If(first | (reach > col_rows)):
                    m.d.sync += col_rows.eq(reach)
            cap = Mux(transposed, chunks * cols, rows)
            next_row = Mux(load_row >= cap, cap, load_row + 1)
            with m.If(qin.payload.last):
                m.d.sync += [load_chunk.eq(0), load_row.eq(next_row)]
                with m.If(qin.payload.end):
                    got = Mux(transposed, Mux(first | (reach > col_rows), reach, col_rows), 0)
                    m.d.sync += [
                        load_row.eq(0),
                        block_rows[wb].eq(Mux(transposed, got, next_row)),
                        full.bit_select(wb, 1).eq(1),
                    ]
                    if banks > 1:
                        m.d.sync += wb.eq(~wb)
            with m.Elif(load_chunk != max(chunks, groups)):
                m.d.sync += load_chunk.eq(load_chunk + 1)

        # K stream: every row's tree takes the same beat, so the trees run in lockstep.
        trees = [MacTree(self._tree_cfg) for _ in range(rows)]
        accept = Signal(name="k_accept")
        streaming = Signal(name="streaming")  # bank ``rb`` holds a block: K may stream
        m.d.comb += streaming.eq(full.bit_select(rb, 1))
        m.d.comb += [
            kin.ready.eq(streaming & trees[0].vectors.ready & fifo.w_rdy),
            accept.eq(kin.valid & kin.ready),
            fifo.w_en.eq(accept & kin.payload.last),
        ]
        for r, tree in enumerate(trees):
            shared(m, f"row{r}", tree, self._tree_cfg)
            m.d.comb += [
                tree.vectors.valid.eq(kin.valid & streaming & fifo.w_rdy),
                tree.vectors.payload.a.eq(qrows[r].a),
                tree.vectors.payload.b.eq(kin.payload.x),
                tree.vectors.payload.last.eq(kin.payload.last),
                tree.result.ready.eq(out.ready),
            ]
        with m.If(accept):
            with m.If(kin.payload.last):
                m.d.sync += k_chunk.eq(0)
                with m.If(kin.payload.end):
                    m.d.sync += full.bit_select(rb, 1).eq(0)
                    if banks > 1:
                        m.d.sync += rb.eq(~rb)
            with m.Elif(k_chunk < chunks - 1):
                m.d.sync += k_chunk.eq(k_chunk + 1)

        # Output: the trees' results, rows past the block's row count as +0.
        pop = side(fifo.r_data)
        m.d.comb += [
            out.valid.eq(trees[0].result.valid),
            out.payload.end.eq(pop.end),
            fifo.r_en.eq(out.valid & out.ready),
        ]
        for r, tree in enumerate(trees):
            m.d.comb += out.payload.s[r].eq(Mux(r < pop.rows, tree.result.payload.value, 0))
        return m
