"""MacTree: pipelined BF16 dot products with FP32 accumulation (SPEC section 3, Datapath).

Interface
  ``vectors`` (in stream, ``DatapathLayouts.mac_in``): one chunk of ``mac_lanes`` pairs
  ``(a[i], b[i])`` of BF16 values and ``last``. A dot product of ``n`` elements is
  ``ceil(n / mac_lanes)`` beats (at least one), the final one with ``last``; unused lanes of
  the final chunk carry ``+0`` (all-zero bits).
  ``result`` (out stream, ``DatapathLayouts.mac_out``): one FP32 value per dot product
  (per ``last`` beat), in order, bit-exact with ``golden.fparith.dot(a, b, mac_lanes)``.

Structure (the reduction order of ``golden.fparith``): ``mac_lanes`` ``BF16Mul`` feed a
pairwise tree of ``FP32Add`` (level ``k`` adds neighbouring level ``k-1`` values, lower
index on the left) and a final ``FP32Add`` accumulates the chunk sums of one dot product
sequentially, starting from the first chunk's sum. Registers: the operands when
``mac_in_register`` is 1 (before the multipliers, so a ``b`` that many trees share drives
one register per tree), after the multipliers, after each of the ``log2(mac_lanes)`` tree
levels, and the output register (the accumulator sits before it). Subnormals are flushed,
rounding is to nearest even at every add.

Cycles: ``latency = log2(mac_lanes) + 2 + mac_in_register`` register stages, so with no
stalls the result of
a dot product whose ``last`` beat is accepted at cycle ``t`` is offered at cycle
``t + latency``. Throughput: one beat (``mac_lanes`` MACs) per cycle, so a dot product of
``n`` elements costs ``ceil(n / mac_lanes)`` cycles of issue. Back-pressure: the pipeline
advances as a whole whenever the output register is empty or being read
(``vectors.ready = ~result.valid | result.ready``), so nothing is lost or duplicated and
idle input cycles just travel as bubbles.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, ceil_log2, check_config
from ..shared import shared
from .bf16_mul import BF16Mul
from .fp32_add import FP32Add
from .layouts import FP32, layouts

__all__ = ["MacTree", "mac_latency"]


def mac_latency(cfg: HWConfig) -> int:
    """``log2(mac_lanes) + 2 + mac_in_register``: operand register (``mac_in_register``),
    multiplier register, one register per tree level, output register."""
    return ceil_log2(cfg.mac_lanes) + 2 + cfg.mac_in_register


class MacTree(wiring.Component):
    """Pipelined MAC tree with a chunk accumulator; see the module docstring."""

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lay = layouts(cfg)
        super().__init__(
            {
                "vectors": In(stream.Signature(lay.mac_in)),
                "result": Out(stream.Signature(lay.mac_out)),
            }
        )

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    @property
    def lanes(self) -> int:
        return self._cfg.mac_lanes

    @property
    def latency(self) -> int:
        """Cycles from the handshake of a ``last`` beat to its result being offered."""
        return mac_latency(self._cfg)

    def elaborate(self, platform):
        m = Module()
        lanes = self.lanes
        vin, out = self.vectors, self.result
        advance = Signal()
        m.d.comb += [advance.eq(~out.valid | out.ready), vin.ready.eq(advance)]

        # Operand register (mac_in_register), then stage 0: products.
        ops, valid, last = vin.payload, vin.valid, vin.payload.last
        if self._cfg.mac_in_register:
            ops = Signal(vin.payload.shape(), name="operands")
            valid, last = Signal(name="operands_valid"), ops.last
            with m.If(advance):
                m.d.sync += [ops.eq(vin.payload), valid.eq(vin.valid)]
        level = Signal(data.ArrayLayout(FP32, lanes), name="products")
        pvalid, plast = Signal(name="products_valid"), Signal(name="products_last")
        for i in range(lanes):
            mul = shared(m, f"mul{i}", BF16Mul())
            m.d.comb += [mul.a.eq(ops.a[i]), mul.b.eq(ops.b[i])]
            with m.If(advance):
                m.d.sync += level[i].eq(mul.p)
        with m.If(advance):
            m.d.sync += [pvalid.eq(valid), plast.eq(last)]
        valid, last = pvalid, plast

        # Pairwise tree, one register per level.
        width, k = lanes, 0
        while width > 1:
            k += 1
            width //= 2
            nxt = Signal(data.ArrayLayout(FP32, width), name=f"level{k}")
            nvalid, nlast = Signal(name=f"level{k}_valid"), Signal(name=f"level{k}_last")
            for i in range(width):
                add = shared(m, f"add{k}_{i}", FP32Add())
                m.d.comb += [add.a.eq(level[2 * i]), add.b.eq(level[2 * i + 1])]
                with m.If(advance):
                    m.d.sync += nxt[i].eq(add.s)
            with m.If(advance):
                m.d.sync += [nvalid.eq(valid), nlast.eq(last)]
            level, valid, last = nxt, nvalid, nlast

        # Sequential accumulation of the chunk sums of one dot product.
        chunk = level[0]
        acc = Signal(FP32, name="acc")
        pending = Signal(name="acc_pending")  # earlier chunks of this dot product are in acc
        accadd = m.submodules.acc_add = FP32Add()
        m.d.comb += [accadd.a.eq(acc), accadd.b.eq(chunk)]
        total = Mux(pending, accadd.s.as_value(), chunk.as_value())
        with m.If(advance):
            m.d.sync += out.valid.eq(valid & last)
            with m.If(valid & last):
                m.d.sync += [out.payload.value.eq(total), pending.eq(0)]
            with m.Elif(valid):
                m.d.sync += [acc.eq(total), pending.eq(1)]
        return m
