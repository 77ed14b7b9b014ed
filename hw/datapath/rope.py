"""RopeUnit: bit-exact rotary position embedding of BF16 vectors (Llama "rotate-half").

Interface (payloads ``DatapathLayouts.rope_in`` / ``rope_out``; ``L = mac_lanes``,
``d = resv.head_dim``, ``h = d / 2`` pairs, ``B = d / L`` beats per vector):
  ``vectors`` (in stream): ``x`` (``L`` BF16), ``position`` (``token_id_bits + 1`` bits),
  ``last``. One vector is exactly ``B`` beats, beat ``b`` holding elements
  ``b*L .. b*L+L-1``; ``position`` is read on the first beat. The unit frames vectors by
  counting beats; ``last`` is expected on beat ``B-1`` and is otherwise ignored.
  ``result`` (out stream): ``x`` (``L`` BF16), ``last`` — the rotated vector in the same
  format, ``last`` on its beat ``B-1``; vectors come out in order.

Bit-exact contract: ``golden.rope.rope_bf16(x, [p], base=resv.rope_base,
lut_bits=rope_lut_bits)``. Pair ``i`` uses the phase ``(p * F_i) mod 2**32`` (a ``32 x
(token_id_bits+1)`` multiplier; ``F_i`` from ``golden.rope.rope_freq_words`` in an
``h``-entry ROM read asynchronously), the nearest entry ``j`` of full-circle cos/sin tables of
``2**rope_lut_bits`` BF16 values (``golden.rope.rope_tables``), read as
``golden.rope.rope_quarter_lookup`` does: one quarter-wave ROM of ``2**rope_lut_bits / 4``
entries (two synchronous read ports per pair, ``r`` and ``q - r``), a sign by quadrant, and
the tables' own values at the four quadrant boundaries; then
``y[i] = bf16(x[i]*c + x[i+h]*(-s))`` and ``y[i+h] = bf16(x[i+h]*c + x[i]*s)`` with four
``BF16Mul``, two ``FP32Add`` and two ``FP32ToBF16`` (exact products, FP32 RNE sum, BF16 RNE,
flush to zero).

Structure: four vector registers. ``in`` collects the beats of the next vector while the
compute engine works on ``work`` (copied from ``in`` in one cycle when the engine and the
``res`` register are free) and one output vector streams out of ``emit`` (copied from
``res`` in one cycle when free). The engine processes ``P = rope_pairs`` pairs per cycle
(pairs ``i .. i+P-1``, each with its own phase multiplier, table read ports and rotation)
in a three-stage pipeline (issue: phase, table index, ROM read; then the four exact
products, registered; then add/round and write the results into ``res``: the multiply and
the add in one cycle were the core's critical path).

Cycles with no stalls (``vectors`` valid every cycle, ``result`` always ready): a vector
whose last beat is accepted at cycle ``T`` by an idle unit offers its first result beat at
``T + h/P + 5`` (``latency``), and its ``B`` result beats on consecutive cycles. Back to
back, a vector is accepted, computed and emitted every ``max(h/P + 3, B)`` cycles
(``vector_cycles``): ``h/P`` compute cycles plus three hand-over cycles, or the beat rate.
Any idle cycle on ``vectors`` or back-pressure on ``result`` just delays; nothing is lost
or duplicated (``vectors.ready`` is low while ``in`` holds a complete vector that cannot move on).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.rope import rope_freq_words, rope_quarter

from ..config import HWConfig, check_config
from ..shared import shared
from .bf16_mul import BF16Mul
from .fp32_add import FP32Add
from .fp32_to_bf16 import FP32ToBF16
from .layouts import BF16, FP32, layouts

__all__ = ["RopeUnit"]

_WORD = 16  # BF16 bits
_PHASE = 32  # phase accumulator bits: one turn = 2**32


class RopeUnit(wiring.Component):
    """Streaming RoPE unit, ``rope_pairs`` pairs per cycle; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        d, lanes = cfg.resv.head_dim, cfg.mac_lanes
        if d % lanes:
            self._MustUse__silence = True
            raise ValueError(f"resv.head_dim ({d}) must be a multiple of mac_lanes, not {lanes!r}")
        self._cfg = cfg
        lay = layouts(cfg)
        super().__init__(
            {
                "vectors": In(stream.Signature(lay.rope_in)),
                "result": Out(stream.Signature(lay.rope_out)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def pairs(self) -> int:
        """``h = head_dim / 2``: pairs per vector."""
        return self._cfg.resv.head_dim // 2

    @property
    def steps(self) -> int:
        """``h / rope_pairs``: compute cycles per vector."""
        return self.pairs // self._cfg.rope_pairs

    @property
    def beats(self) -> int:
        """``B = head_dim / mac_lanes``: stream beats per vector (in and out)."""
        return self._cfg.resv.head_dim // self._cfg.mac_lanes

    @property
    def latency(self) -> int:
        """Cycles from the last input beat of a vector (idle unit, no stalls) to its first
        result beat: ``h / rope_pairs + 5``."""
        return self.steps + 5

    @property
    def vector_cycles(self) -> int:
        """Cycles per vector back to back without stalls: ``max(h / rope_pairs + 3, B)``."""
        return max(self.steps + 3, self.beats)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        d, lanes, h, nb = cfg.resv.head_dim, cfg.mac_lanes, self.pairs, self.beats
        P = cfg.rope_pairs
        lb = cfg.rope_lut_bits
        vin, out = self.vectors, self.result
        vec = data.ArrayLayout(BF16, d)
        pos_shape = unsigned(cfg.token_id_bits + 1)

        # ROMs.
        freq = m.submodules.freq_rom = Memory(
            shape=_PHASE, depth=h, init=[int(f) for f in rope_freq_words(d, cfg.resv.rope_base)]
        )
        qb = lb - 2  # the quarter table's index bits
        quarter, cos_edges, sin_edges = rope_quarter(lb)
        quarter_rom = m.submodules.quarter_rom = Memory(
            shape=_WORD, depth=1 << qb, init=[int(v) for v in quarter]
        )
        freq_rds = [freq.read_port(domain="comb") for _ in range(P)]
        a_rds = [quarter_rom.read_port() for _ in range(P)]  # quarter[r]
        b_rds = [quarter_rom.read_port() for _ in range(P)]  # quarter[q - r]
        cos_edge = Cat(*(Const(int(v), _WORD) for v in cos_edges))
        sin_edge = Cat(*(Const(int(v), _WORD) for v in sin_edges))

        # State.
        in_buf = Signal(vec, name="in_buf")
        in_pos = Signal(pos_shape, name="in_pos")
        in_cnt = Signal(range(nb), name="in_cnt")
        in_full = Signal(name="in_full")
        work = Signal(vec, name="work")
        work_pos = Signal(pos_shape, name="work_pos")
        busy = Signal(name="busy")
        cnt = Signal(range(h + 1), name="issue_cnt")
        v1 = Signal(name="s1_valid")
        s1 = Signal(range(h // P), name="s1_step")  # the stage's pairs: s1*P .. s1*P+P-1
        res = Signal(vec, name="res_buf")
        res_full = Signal(name="res_full")
        emit = Signal(vec, name="emit_buf")
        emit_full = Signal(name="emit_full")
        k = Signal(range(nb), name="emit_cnt")

        in_hs = Signal(name="in_hs")
        out_hs = Signal(name="out_hs")
        out_last = Signal(name="out_last")
        copy_out = Signal(name="copy_out")
        start = Signal(name="start")
        m.d.comb += [
            in_hs.eq(vin.valid & vin.ready),
            out_hs.eq(out.valid & out.ready),
            out_last.eq(k == nb - 1),
            copy_out.eq(res_full & (~emit_full | (out_hs & out_last))),
            start.eq(in_full & ~busy & (~res_full | copy_out)),
            vin.ready.eq(~in_full | start),
        ]

        # Input: collect the beats of one vector.
        with m.If(start):
            m.d.sync += [
                work.eq(in_buf),
                work_pos.eq(in_pos),
                busy.eq(1),
                cnt.eq(0),
                in_full.eq(0),
            ]
        with m.If(in_hs):
            m.d.sync += in_buf.as_value().word_select(in_cnt, _WORD * lanes).eq(vin.payload.x)
            with m.If(in_cnt == 0):
                m.d.sync += in_pos.eq(vin.payload.position)
            with m.If(in_cnt == nb - 1):
                m.d.sync += [in_cnt.eq(0), in_full.eq(1)]
            with m.Else():
                m.d.sync += in_cnt.eq(in_cnt + 1)

        # Stage 0: issue pairs ``cnt .. cnt+P-1``: phases, nearest table entries, ROM reads.
        issue = Signal(name="issue")
        m.d.comb += issue.eq(busy & (cnt < h))
        m.d.sync += [v1.eq(issue), s1.eq(cnt // P)]
        with m.If(issue):
            m.d.sync += cnt.eq(cnt + P)
        quads, edges = [], []
        for j in range(P):
            phase = Signal(_PHASE, name=f"phase{j}")
            index = Signal(lb, name=f"lut_index{j}")
            quad = Signal(2, name=f"s1_quadrant{j}")
            edge = Signal(name=f"s1_edge{j}")
            m.d.comb += [
                freq_rds[j].addr.eq(cnt + j),
                phase.eq(work_pos * freq_rds[j].data),
                index.eq((phase + (1 << (_PHASE - 1 - lb))) >> (_PHASE - lb)),
                a_rds[j].addr.eq(index[:qb]),
                b_rds[j].addr.eq(0 - index[:qb]),
            ]
            m.d.sync += [quad.eq(index[qb:]), edge.eq(index[:qb] == 0)]
            quads.append(quad)
            edges.append(edge)

        # Stage 1: the exact products of step ``s1``'s pairs, registered; stage 2: their sums,
        # rounded, into ``res``. Operands and results are selected by step (``h/P`` choices of
        # ``P`` pairs), not by pair index: an ``h``-way selector per pair was most of the
        # unit's logic.
        v2 = Signal(name="s2_valid")
        s2 = Signal(range(h // P), name="s2_step")
        m.d.sync += [v2.eq(v1), s2.eq(s1)]
        group = _WORD * P
        lo, hi = work.as_value()[: _WORD * h], work.as_value()[_WORD * h :]
        xa_step, xb_step = lo.word_select(s1, group), hi.word_select(s1, group)
        ya_step, yb_step = [], []
        for j in range(P):
            xa = BF16(Signal(_WORD, name=f"s1_xa{j}"))
            xb = BF16(Signal(_WORD, name=f"s1_xb{j}"))
            c = BF16(Signal(_WORD, name=f"s1_cos{j}"))
            s = BF16(Signal(_WORD, name=f"s1_sin{j}"))
            neg_s = BF16(Signal(_WORD, name=f"s1_neg_sin{j}"))
            quad, at_edge = quads[j], edges[j]
            a, b = a_rds[j].data, b_rds[j].data
            sign = Const(0x8000, _WORD)
            m.d.comb += [
                xa.as_value().eq(xa_step[_WORD * j : _WORD * (j + 1)]),
                xb.as_value().eq(xb_step[_WORD * j : _WORD * (j + 1)]),
                c.as_value().eq(
                    Mux(at_edge, cos_edge.word_select(quad, _WORD), Mux(quad[0], b, a))
                    ^ Mux(~at_edge & (quad[0] ^ quad[1]), sign, 0)
                ),
                s.as_value().eq(
                    Mux(at_edge, sin_edge.word_select(quad, _WORD), Mux(quad[0], a, b))
                    ^ Mux(~at_edge & quad[1], sign, 0)
                ),
                neg_s.as_value().eq(s.as_value() ^ sign),
            ]
            ys = []
            for n, (p, q, r, t) in enumerate(((xa, c, xb, neg_s), (xb, c, xa, s))):
                mul_a = shared(m, f"mul{j}_{2 * n}", BF16Mul())
                mul_b = shared(m, f"mul{j}_{2 * n + 1}", BF16Mul())
                add = shared(m, f"add{j}_{n}", FP32Add())
                cvt = shared(m, f"round{j}_{n}", FP32ToBF16())
                pa = Signal(FP32, name=f"s2_pa{j}_{n}")
                pb = Signal(FP32, name=f"s2_pb{j}_{n}")
                m.d.comb += [
                    mul_a.a.eq(p),
                    mul_a.b.eq(q),
                    mul_b.a.eq(r),
                    mul_b.b.eq(t),
                    add.a.eq(pa),
                    add.b.eq(pb),
                    cvt.a.eq(add.s),
                ]
                m.d.sync += [pa.eq(mul_a.p), pb.eq(mul_b.p)]
                ys.append(cvt.b)
            ya_step.append(ys[0])
            yb_step.append(ys[1])
        with m.If(v2):
            m.d.sync += [
                res.as_value()[: _WORD * h].word_select(s2, group).eq(Cat(*ya_step)),
                res.as_value()[_WORD * h :].word_select(s2, group).eq(Cat(*yb_step)),
            ]
        with m.If(v2 & (s2 == h // P - 1)):
            m.d.sync += [busy.eq(0), res_full.eq(1)]

        # Output: stream ``emit`` out beat by beat.
        m.d.comb += [
            out.valid.eq(emit_full),
            out.payload.x.eq(emit.as_value().word_select(k, _WORD * lanes)),
            out.payload.last.eq(out_last),
        ]
        with m.If(out_hs):
            with m.If(out_last):
                m.d.sync += [k.eq(0), emit_full.eq(0)]
            with m.Else():
                m.d.sync += k.eq(k + 1)
        with m.If(copy_out):
            m.d.sync += [emit.eq(res), emit_full.eq(1), res_full.eq(0), k.eq(0)]
        return m
