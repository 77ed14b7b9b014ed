"""StationaryRow: one stored row of a ``MacArray`` (issue 11: synthesising the paper core).

A row of ``chunks x cols`` BF16 registers, read one chunk (``cols`` elements) at a time, as
the ``a`` operands of the row's ``MacTree``. The ``MacArray`` decodes its load into strobes
and hands every row the same kind of ports, so all its rows are one module (``hw.shared``):
the array's top keeps only the decoders, and Yosys and ABC see a row (``chunks * cols * 16``
flops) instead of the whole ``R x M x C`` register file as one flat module (the paper core's
array B: 16 384 elements, a single ABC run too big for the WebAssembly Yosys).

Ports (``columns``: the array has a transposed load):
  ``x`` (in, ``cols`` BF16) and ``row_w`` (in, ``chunks`` strobes): chunk ``c`` takes ``x``
  where ``row_w[c]`` is set (a row beat).
  ``col_x`` (in, BF16), ``col_w`` (in, ``chunks * cols`` strobes) and ``clear`` (in):
  ``clear`` zeroes the row, then element ``j`` (chunk ``j // cols``, lane ``j % cols``)
  takes ``col_x`` where ``col_w[j]`` is set (a transposed beat); only with ``columns``.
  ``read`` (in) and ``a`` (out, ``cols`` BF16): chunk ``read`` of the stored row,
  combinationally.
  ``wbank`` and ``rbank`` (in; only with ``banks = 2``): the row is two rows (a double
  buffer, ``HWConfig.tile_buffers``): the strobes write bank ``wbank``, ``a`` reads bank
  ``rbank``, so one bank loads while the other is read.
The strobes of one cycle take effect at the next; the registers have no reset.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layouts import BF16

__all__ = ["StationaryRow"]


class StationaryRow(wiring.Component):
    """``chunks x cols`` stored BF16 elements of a MAC array row; see the module docstring."""

    def __init__(self, chunks: int, cols: int, *, columns: bool, banks: int = 1):
        if banks not in (1, 2):
            self._MustUse__silence = True  # as hw.config.check_config
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        self._chunks, self._cols, self._columns, self._banks = chunks, cols, columns, banks
        chunk = data.ArrayLayout(BF16, cols)
        ports = {
            "x": In(chunk),
            "row_w": In(chunks),
            "read": In(range(max(2, chunks))),
            "a": Out(chunk),
        }
        if columns:
            ports |= {"col_x": In(BF16), "col_w": In(chunks * cols), "clear": In(1)}
        if banks == 2:
            ports |= {"wbank": In(1), "rbank": In(1)}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        chunks, cols = self._chunks, self._cols
        row = data.ArrayLayout(data.ArrayLayout(BF16, cols), chunks)
        qs = [Signal(row, name=f"bank{b}", reset_less=True) for b in range(self._banks)]
        for b, q in enumerate(qs):
            on = self.wbank == b if self._banks == 2 else 1
            with m.If(on):
                for c in range(chunks):
                    with m.If(self.row_w[c]):
                        m.d.sync += q[c].eq(self.x)
                if self._columns:
                    with m.If(self.clear):
                        m.d.sync += q.eq(0)
                    for j in range(chunks * cols):
                        with m.If(self.col_w[j]):
                            m.d.sync += q[j // cols][j % cols].eq(self.col_x)
        if self._banks == 2:
            m.d.comb += self.a.eq(Mux(self.rbank, qs[1][self.read], qs[0][self.read]))
        else:
            m.d.comb += self.a.eq(qs[0][self.read])
        return m
