"""TileSoftmax: the softmax half of the paper's vector unit, one row of one attention tile
per cycle (issue 11), bit-exact with ``golden.softmax.tile_step(scores, m, l,
head_dim=resv.head_dim, exp_frac_bits=exp_frac_bits)`` row by row.

Interface (payloads in ``DatapathLayouts``; ``T = tile_tokens``, a power of two):
  ``rows`` (in stream, ``tile_in``): ``s`` = the ``T`` FP32 scores of one row of one tile
  (a masked token's score is ``-inf``, ``0xFF800000``), the row's running max ``m`` and sum
  ``l`` (``-inf`` and ``+0`` before its first tile) and ``last``, passed through untouched.
  ``result`` (out stream, ``tile_out``): ``m`` = ``m_new``, ``l`` = ``l_new``, the
  accumulator scale ``a`` (FP32) and P's tile row ``p`` (``T`` BF16), and ``last``.

Per row (the module docstring of ``golden.softmax``, "Tiled order"), with the constant
``K = golden.softmax.attention_scale(head_dim)`` and ``neg(v)`` a sign flip::

    x[t]  = s[t] * K                          # T FP32Mul
    mt    = tree_max(x)                       # pairwise, fp32_max(left, right) per node
    m_new = fp32_max(m, mt)                   # m's pattern on a tie (+0 / -0 kept)
    a     = exp2(m + neg(m_new))              # +0 when m = -inf
    p[t]  = exp2(x[t] + neg(m_new))           # +0 for a masked token
    l_new = l * a + tree_sum(p)               # FP32 p summed, as golden.fparith.tree_sum
    pb[t] = fp32_to_bf16(p[t])

Contract: as ``tile_step``: finite scores or ``-inf``; ``m_new`` must be finite (a row's
first tile holds a visible token), otherwise ``x - m_new`` is a NaN the golden model
refuses (the hardware then gives some pattern; it is outside the contract).

Stages (registers after each; ``advance`` enables them all):
  1. ``MUL``: ``T`` ``FP32Mul`` by ``K``.
  2. ``MAX`` x ``max_stages = ceil((log2(T) + 1) / 2)``: the ``log2(T)`` levels of the max
     tree (``FP32Compare`` + multiplexer per node) and the final ``max(m, mt)`` level, two
     levels per stage; ``x``, ``m`` and ``l`` travel along.
  3. ``SUB``: ``T + 1`` ``FP32Add``: ``x[t] - m_new`` and ``m - m_new``.
  4. ``EXP``: ``T + 1`` ``Exp2`` (table-based, ``2**exp_frac_bits`` entries each).
  5. ``SUM`` x ``sum_stages = max(1, log2(T))``: one level of the ``FP32Add`` sum tree per
     stage; the first also computes ``l * a`` (``FP32Mul``) and the ``T`` ``FP32ToBF16``.
  6. ``OUT``: ``l_new = l*a + sum`` (``FP32Add``) into the output register.

Cycles: ``latency = max_stages + sum_stages + 4`` (``T = 1``: 6, ``T = 4``: 8, ``T = 16``:
11, ``T = 64``: 14), so without stalls the result of a row accepted at cycle ``c`` is
offered at ``c + latency``. Throughput: one row (``T`` tokens) per cycle. Back-pressure:
the whole pipeline advances when the output register is empty or being read
(``advance = ~result.valid | result.ready``, ``rows.ready = advance``), as the ``MacTree``
does, so nothing is lost or duplicated and idle input cycles travel as bubbles. Rows are
independent: the caller feeds a row's next tile with the ``m``/``l`` of its previous result
(with ``R >= latency`` rows in flight, every cycle is used).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.softmax import attention_scale

from ..config import HWConfig, ceil_log2, check_config
from ..shared import shared
from .exp2 import Exp2
from .fp32_add import FP32Add
from .fp32_compare import FP32Compare
from .fp32_mul import FP32Mul
from .fp32_to_bf16 import FP32ToBF16
from .layouts import BF16, FP32, layouts

__all__ = ["MAX_LEVELS_PER_STAGE", "TileSoftmax", "tile_latency"]

#: Levels of the max tree (compare + multiplexer) between two registers.
MAX_LEVELS_PER_STAGE = 2


def _max_stages(tokens: int) -> int:
    return -(-(ceil_log2(tokens) + 1) // MAX_LEVELS_PER_STAGE)


def _sum_stages(tokens: int) -> int:
    return max(1, ceil_log2(tokens))


def tile_latency(cfg: HWConfig) -> int:
    """Register stages of ``TileSoftmax(cfg)``: ``MUL`` + ``max_stages`` + ``SUB`` + ``EXP``
    + ``sum_stages`` + ``OUT``."""
    t = cfg.tile_tokens
    return _max_stages(t) + _sum_stages(t) + 4


def _neg(v):
    return Cat(v.as_value()[:31], ~v.sign)


class TileSoftmax(wiring.Component):
    """Pipelined tile softmax, one row per cycle; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lay = layouts(cfg)
        super().__init__(
            {
                "rows": In(stream.Signature(lay.tile_in)),
                "result": Out(stream.Signature(lay.tile_out)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def tokens(self) -> int:
        """``T = tile_tokens``: scores per row."""
        return self._cfg.tile_tokens

    @property
    def max_stages(self) -> int:
        """Register stages of the max tree and ``max(m, mt)``: ``ceil((log2 T + 1) / 2)``."""
        return _max_stages(self.tokens)

    @property
    def sum_stages(self) -> int:
        """Register stages of the sum tree (at least one, holding ``l * a``)."""
        return _sum_stages(self.tokens)

    @property
    def latency(self) -> int:
        """Cycles from a row's handshake to its result being offered (no stalls)."""
        return tile_latency(self._cfg)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        tokens = self.tokens
        rin, out = self.rows, self.result
        k_const = int(attention_scale(cfg.resv.head_dim))
        advance = Signal()
        m.d.comb += [advance.eq(~out.valid | out.ready), rin.ready.eq(advance)]

        def register(name: str, shape, value):
            reg = Signal(shape, name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        def lanes(name: str, fmt, values: list):
            reg = Signal(data.ArrayLayout(fmt, len(values)), name=name)
            with m.If(advance):
                m.d.sync += [reg[i].eq(v) for i, v in enumerate(values)]
            return [reg[i] for i in range(len(values))]

        def control(stage: str, valid, last):
            return register(f"{stage}_valid", 1, valid), register(f"{stage}_last", 1, last)

        # MUL: x = s * K.
        xs = []
        for i in range(tokens):
            mul = shared(m, f"mul{i}", FP32Mul())
            m.d.comb += [mul.a.eq(rin.payload.s[i]), mul.b.eq(k_const)]
            xs.append(mul.p)
        x = lanes("mul_x", FP32, xs)
        m_run = register("mul_m", FP32, rin.payload.m)
        l_run = register("mul_l", FP32, rin.payload.l)
        valid, last = control("mul", rin.valid, rin.payload.last)

        # MAX: the pairwise tree of fp32_max(left, right), then max(m, mt); two levels per
        # register stage.
        tree_levels = ceil_log2(tokens)
        level = x
        done = 0
        for stage in range(self.max_stages):
            for _ in range(min(MAX_LEVELS_PER_STAGE, tree_levels + 1 - done)):
                if done < tree_levels:
                    pairs = [(level[2 * i], level[2 * i + 1]) for i in range(len(level) // 2)]
                else:
                    pairs = [(m_run, level[0])]
                nxt = []
                for i, (a, b) in enumerate(pairs):
                    cmp = shared(m, f"max{done}_{i}", FP32Compare())
                    v = Signal(FP32, name=f"max{done}_{i}")
                    m.d.comb += [cmp.a.eq(a), cmp.b.eq(b), v.eq(Mux(cmp.ge, a, b))]
                    nxt.append(v)
                level = nxt
                done += 1
            tag = f"max{stage}"
            level = lanes(f"{tag}_tree", FP32, level)
            x = lanes(f"{tag}_x", FP32, x)
            m_run = register(f"{tag}_m", FP32, m_run)
            l_run = register(f"{tag}_l", FP32, l_run)
            valid, last = control(tag, valid, last)
        m_new = level[0]

        # SUB: x - m_new and m - m_new.
        diffs = []
        for i, v in enumerate([*x, m_run]):
            add = shared(m, f"sub{i}", FP32Add())
            m.d.comb += [add.a.eq(v), add.b.eq(_neg(m_new))]
            diffs.append(add.s)
        d = lanes("sub_d", FP32, diffs[:tokens])
        d_a = register("sub_da", FP32, diffs[tokens])
        m_new = register("sub_mnew", FP32, m_new)
        l_run = register("sub_l", FP32, l_run)
        valid, last = control("sub", valid, last)

        # EXP: p = exp2(x - m_new), a = exp2(m - m_new).
        exps = []
        for i, v in enumerate([*d, d_a]):
            e = shared(m, f"exp{i}", Exp2(frac_bits=cfg.exp_frac_bits), cfg.exp_frac_bits)
            m.d.comb += e.x.eq(v)
            exps.append(e.y)
        p = lanes("exp_p", FP32, exps[:tokens])
        a = register("exp_a", FP32, exps[tokens])
        m_new = register("exp_mnew", FP32, m_new)
        l_run = register("exp_l", FP32, l_run)
        valid, last = control("exp", valid, last)

        # SUM: the pairwise sum tree of p, one level per stage; the first stage also takes
        # l * a and P's BF16 row.
        mul_la = m.submodules.mul_la = FP32Mul()
        m.d.comb += [mul_la.a.eq(l_run), mul_la.b.eq(a)]
        bf16 = []
        for i in range(tokens):
            cv = shared(m, f"bf16_{i}", FP32ToBF16())
            m.d.comb += cv.a.eq(p[i])
            bf16.append(cv.b)
        level = p
        for stage in range(self.sum_stages):
            nxt = []
            for i in range(len(level) // 2):
                add = shared(m, f"sum{stage}_{i}", FP32Add())
                m.d.comb += [add.a.eq(level[2 * i]), add.b.eq(level[2 * i + 1])]
                nxt.append(add.s)
            tag = f"sum{stage}"
            level = lanes(f"{tag}_tree", FP32, nxt or level)
            if stage == 0:
                pb = lanes(f"{tag}_pb", BF16, bf16)
                la = register(f"{tag}_la", FP32, mul_la.p)
            else:
                pb = lanes(f"{tag}_pb", BF16, pb)
                la = register(f"{tag}_la", FP32, la)
            a = register(f"{tag}_a", FP32, a)
            m_new = register(f"{tag}_mnew", FP32, m_new)
            valid, last = control(tag, valid, last)

        # OUT: l_new = l*a + sum, into the output register.
        add_l = m.submodules.add_l = FP32Add()
        m.d.comb += [add_l.a.eq(la), add_l.b.eq(level[0])]
        with m.If(advance):
            m.d.sync += [
                out.valid.eq(valid),
                out.payload.last.eq(last),
                out.payload.m.eq(m_new),
                out.payload.l.eq(add_l.s),
                out.payload.a.eq(a),
                *(out.payload.p[i].eq(pb[i]) for i in range(tokens)),
            ]
        return m
