"""MeanQuery: the mean of a PREFILL's rows, the query that selects the block's clusters."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, check_config
from ..datapath import FP32Add, FP32Mul, FP32ToBF16
from ..datapath.layouts import FP32
from ..shared import shared

__all__ = ["MeanQuery"]


class MeanQuery(wiring.Component):
    """``golden.core.CoreModel``'s mean query in hardware: the FP32 sum of a block's rows as
    they leave the RoPE unit (from ``+0``, in row order, one ``mac_lanes``-wide beat at a
    time) and ``bf16(sum * (1/rows))``, the query the block's clusters are scored with.

    Ports (``beat`` selects one of the ``head_dim / mac_lanes`` beats of a row):

    - ``beat`` (in): the beat added to or read.
    - ``add`` (in), ``first`` (in), ``x`` (in): on ``add``, the BF16 beat ``x`` is added to
      the sum's ``beat`` (to ``+0`` when ``first``: the block's first row).
    - ``set_recip`` (in), ``rows_recip`` (in): on ``set_recip``, ``rows_recip`` (FP32
      ``1/rows``) is kept for the mean.
    - ``query`` (out): ``bf16(sum[beat] * 1/rows)`` (combinational), a memory row.

    (The ports are not called ``mean`` or ``recip``: a port's wire in the core would take the
    name of the core's ``mean`` or ``recip`` submodule, which synthesis then renames.)
    """

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        lanes = cfg.mac_lanes
        self._beats = cfg.resv.head_dim // lanes
        super().__init__(
            {
                "beat": In(range(max(2, self._beats))),
                "add": In(1),
                "first": In(1),
                "x": In(data.ArrayLayout(16, lanes)),
                "set_recip": In(1),
                "rows_recip": In(FP32),
                "query": Out(16 * lanes),
            }
        )

    def elaborate(self, platform):
        m = Module()
        lanes = self._cfg.mac_lanes
        acc = Signal(data.ArrayLayout(data.ArrayLayout(FP32, lanes), self._beats), name="sum")
        recip = Signal(FP32, name="recip_rows")
        # The selected beat of the sum through a case per beat, not ``acc[self.beat]``: a
        # part-select makes every bit of ``acc`` an input of every bit read, and Amaranth's
        # combinational-loop check then walks ``lanes**2`` times more edges (most of the
        # paper core's generation time).
        cur = Signal(data.ArrayLayout(FP32, lanes), name="sum_beat")
        with m.Switch(self.beat):
            for b in range(self._beats):
                with m.Case(b):
                    m.d.comb += cur.eq(acc[b])
        for i in range(lanes):
            add = shared(m, f"add{i}", FP32Add())
            mul = shared(m, f"mul{i}", FP32Mul())
            cv = shared(m, f"to_bf16_{i}", FP32ToBF16())
            m.d.comb += [
                add.a.eq(Mux(self.first, 0, cur[i].as_value())),
                add.b.eq(Cat(Const(0, 16), self.x[i])),
                mul.a.eq(cur[i]),
                mul.b.eq(recip),
                cv.a.eq(mul.p),
                self.query[16 * i : 16 * i + 16].eq(cv.b),
            ]
            with m.If(self.add):
                m.d.sync += acc[self.beat][i].eq(add.s)
        with m.If(self.set_recip):
            m.d.sync += recip.eq(self.rows_recip)
        return m
