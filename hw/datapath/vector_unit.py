"""VectorUnit: online softmax attention of one query at a time (SPEC section 3, the vector
unit), bit-exact with ``golden.softmax.online_attention(scores, values,
exp_frac_bits=cfg.exp_frac_bits)``.

Interface (payloads in ``DatapathLayouts``; ``L = mac_lanes``, ``B = head_dim // L``
beats per vector):
  ``scores`` (in stream, ``vu_score``): one FP32 score ``q·k_t`` per token, ``first`` on a
  query's first token (it must be set: it resets the running max, sum and output), ``last``
  on its final token (a one-token query has both).
  ``values`` (in stream, ``vu_value``): ``B`` beats per token, the BF16 value vector in
  element order (beat ``b`` = elements ``b*L .. b*L + L - 1``).
  ``result`` (out stream, ``vu_result``): after a query's last token, ``B`` beats of the
  FP32 output ``o * (1/S)`` in the same element order, ``last`` on the final beat.

Each token is handled in turn: its score, then its ``B`` value beats, then the next score.
The value stream may run ahead of or behind the scores (it is simply not ready until its
score has been processed), and every stream tolerates idle and back-pressure cycles.

Datapath: one scalar ``FP32Mul``, ``FP32Add``, ``FP32Compare`` and ``Exp2`` shared over the
states below, ``L`` lanes of (``FP32Mul`` ``o*a`` | ``o*(1/S)``, ``FP32Mul`` ``p*v``,
``FP32Add``), an ``FP32Recip``, and the output accumulator ``o`` as a register file of
``head_dim`` FP32 values (``B`` rows of ``L``). ``K = golden.softmax.attention_scale(head_dim)``
is a constant.

States and cycles (no stalls), for a token whose score is accepted at cycle ``t``:
  ``SCORE`` (``t``): ``x = score * K``;
  ``EXP_A`` (``t+1``): ``m_new = first ? x : max(m, x)``, ``a = first ? +0 : exp2(m - m_new)``;
  ``EXP_P`` (``t+2``): ``p = exp2(x - m_new)``, ``m = m_new``;
  ``VALUES`` (``t+3 .. t+2+B``): one value beat per cycle updates ``L`` lanes of ``o``
  (``o`` reads as ``+0`` on a first token); ``S = S*a + p`` in the state's first cycle.
So ``token_cycles = B + 3`` and the next score is accepted at ``t + token_cycles``. After
the last token's final value beat (cycle ``u``): ``RECIP`` hands ``S`` to the divider at
``u+1``, ``1/S`` is taken at ``u + 1 + FP32Recip.latency`` and ``OUTPUT`` offers the ``B``
result beats from ``u + result_delay`` (``result_delay = FP32Recip.latency + 2``), one per
cycle; the next query's first score is accepted the cycle after the final result beat. A
query of ``n`` tokens thus takes ``n * token_cycles + query_overhead`` cycles from its first
score to the next query's first score, ``query_overhead = result_delay + B - 1 = B + 27``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.softmax import attention_scale

from ..config import HWConfig, check_config
from ..shared import shared
from .exp2 import Exp2
from .fp32_add import FP32Add
from .fp32_compare import FP32Compare
from .fp32_mul import FP32Mul
from .layouts import BF16, FP32, layouts
from .recip import RECIP_LATENCY, FP32Recip

__all__ = ["VectorUnit"]

_TOKEN_STATES = 3  # SCORE, EXP_A, EXP_P


class VectorUnit(wiring.Component):
    """Online-softmax vector unit; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        d, lanes = cfg.resv.head_dim, cfg.mac_lanes
        if d % lanes:
            self._MustUse__silence = True
            raise ValueError(
                f"head_dim ({d}) must be a multiple of mac_lanes ({lanes}), not {d!r} "
                f"with mac_lanes={lanes!r}"
            )
        self._cfg = cfg
        lay = layouts(cfg)
        super().__init__(
            {
                "scores": In(stream.Signature(lay.vu_score)),
                "values": In(stream.Signature(lay.vu_value)),
                "result": Out(stream.Signature(lay.vu_result)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def lanes(self) -> int:
        return self._cfg.mac_lanes

    @property
    def beats(self) -> int:
        """Value / result beats per vector: ``head_dim // mac_lanes``."""
        return self._cfg.resv.head_dim // self._cfg.mac_lanes

    @property
    def token_cycles(self) -> int:
        """Cycles per token without stalls: ``beats + 3``."""
        return self.beats + _TOKEN_STATES

    @property
    def result_delay(self) -> int:
        """Cycles from the last token's final value beat to the first result beat."""
        return RECIP_LATENCY + 2

    @property
    def query_overhead(self) -> int:
        """Fixed cycles per query besides ``token_cycles`` per token:
        ``result_delay + beats - 1``."""
        return self.result_delay + self.beats - 1

    def elaborate(self, platform):
        m = Module()
        lanes, beats = self.lanes, self.beats
        sc, vals, res = self.scores, self.values, self.result
        k_const = int(attention_scale(self._cfg.resv.head_dim))

        m.submodules.smul = smul = FP32Mul()
        m.submodules.sadd = sadd = FP32Add()
        m.submodules.cmp = cmp = FP32Compare()
        m.submodules.exp2 = exp2 = Exp2(frac_bits=self._cfg.exp_frac_bits)
        m.submodules.recip = recip = FP32Recip()

        def fp32(name):
            return Signal(FP32, name=name)

        x, m_run, m_new, a, p, s_sum, r = (
            fp32(n) for n in ("x", "m_run", "m_new", "a", "p", "s_sum", "recip_s")
        )
        first = Signal()
        last = Signal()
        s_done = Signal()
        beat = Signal(range(beats))
        o = Signal(data.ArrayLayout(data.ArrayLayout(FP32, lanes), beats), name="o")
        o_row = o[beat]
        final_beat = beat == beats - 1
        zero = Const(0, 32)

        def neg(v):
            return Cat(v.as_value()[:31], ~v.sign)

        with m.FSM(name="state") as fsm:
            with m.State("SCORE"):
                m.d.comb += [
                    sc.ready.eq(1),
                    smul.a.eq(sc.payload.value),
                    smul.b.eq(k_const),
                ]
                with m.If(sc.valid):
                    m.d.sync += [
                        x.eq(smul.p),
                        first.eq(sc.payload.first),
                        last.eq(sc.payload.last),
                    ]
                    m.next = "EXP_A"
            with m.State("EXP_A"):
                m_new_c = fp32("m_new_c")
                m.d.comb += [
                    cmp.a.eq(m_run),
                    cmp.b.eq(x),
                    m_new_c.eq(Mux(first | ~cmp.ge, x, m_run)),
                    sadd.a.eq(m_run),
                    sadd.b.eq(neg(m_new_c)),
                    exp2.x.eq(sadd.s),
                ]
                m.d.sync += [m_new.eq(m_new_c), a.eq(Mux(first, zero, exp2.y))]
                m.next = "EXP_P"
            with m.State("EXP_P"):
                m.d.comb += [sadd.a.eq(x), sadd.b.eq(neg(m_new)), exp2.x.eq(sadd.s)]
                m.d.sync += [p.eq(exp2.y), m_run.eq(m_new), beat.eq(0), s_done.eq(0)]
                m.next = "VALUES"
            with m.State("VALUES"):
                m.d.comb += [
                    smul.a.eq(Mux(first, zero, s_sum)),
                    smul.b.eq(a),
                    sadd.a.eq(smul.p),
                    sadd.b.eq(p),
                    vals.ready.eq(1),
                ]
                with m.If(~s_done):
                    m.d.sync += [s_sum.eq(sadd.s), s_done.eq(1)]
                with m.If(vals.valid):
                    m.d.sync += beat.eq(Mux(final_beat, 0, beat + 1))
                    with m.If(final_beat):
                        with m.If(last):
                            m.next = "RECIP"
                        with m.Else():
                            m.next = "SCORE"
            with m.State("RECIP"):
                m.d.comb += [recip.operand.valid.eq(1), recip.operand.payload.value.eq(s_sum)]
                with m.If(recip.operand.ready):
                    m.next = "RECIP_WAIT"
            with m.State("RECIP_WAIT"):
                m.d.comb += recip.result.ready.eq(1)
                with m.If(recip.result.valid):
                    m.d.sync += [r.eq(recip.result.payload.value), beat.eq(0)]
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += [res.valid.eq(1), res.payload.last.eq(final_beat)]
                with m.If(res.ready):
                    m.d.sync += beat.eq(Mux(final_beat, 0, beat + 1))
                    with m.If(final_beat):
                        m.next = "SCORE"

        in_values = fsm.ongoing("VALUES")
        in_output = fsm.ongoing("OUTPUT")
        for i in range(lanes):
            mul_o = FP32Mul()
            mul_v = FP32Mul()
            add = FP32Add()
            shared(m, f"mul_o{i}", mul_o)
            shared(m, f"mul_v{i}", mul_v)
            shared(m, f"add{i}", add)
            v_bf16 = vals.payload.v[i]
            m.d.comb += [
                mul_o.a.eq(Mux(in_values & first, zero, o_row[i])),
                mul_o.b.eq(Mux(in_output, r, a)),
                mul_v.a.eq(p),
                mul_v.b.eq(Cat(Const(0, 32 - data.Layout.cast(BF16).size), v_bf16.as_value())),
                add.a.eq(mul_o.p),
                add.b.eq(mul_v.p),
                res.payload.o[i].eq(mul_o.p),
            ]
            with m.If(in_values & vals.valid):
                m.d.sync += o_row[i].eq(add.s)
        return m
