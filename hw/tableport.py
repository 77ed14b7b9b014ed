"""``table_port``: a unit's table as the core's context mover sees it.

A unit that holds per-context state in a memory (the HCU's signatures and counts, the
KVMU's chunk lists, the aging's member counts) exposes it through one of these ports when
the core builds it with ``bulk=True``, so that ``SWITCH_CTX`` can store the table to DRAM
and load another context's (``hw.core.mover``). While ``active`` is high the mover owns the
table's ports (the unit is idle then): ``rdata`` is the row at the previous cycle's
``addr`` (a synchronous read port whose enable is held), and ``we`` writes ``wdata`` at
``waddr`` (a swap stores one row while it loads another). Directions are the mover's; the
unit's member is ``In(table_port(...))``.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["serve", "table_port"]


def table_port(row_bits: int, depth: int) -> wiring.Signature:
    """The mover's side of a ``depth``-row table of ``row_bits``-bit rows."""
    return wiring.Signature(
        {
            "active": Out(1),
            "addr": Out(range(max(2, depth))),
            "rdata": In(row_bits),
            "waddr": Out(range(max(2, depth))),
            "we": Out(1),
            "wdata": Out(row_bits),
        }
    )


def serve(m, port, rd, wr, *, wdata=None, en=None) -> None:
    """While ``port.active``, a memory's read port ``rd`` and write port ``wr`` are the
    mover's: ``rd`` reads at ``addr`` (enabled), ``wr`` writes ``wdata`` (default: the whole
    row) at ``waddr`` when ``en`` (default: ``we``). The caller drives ``port.rdata`` (a row
    may join several memories) and places this after the unit's own use of the ports, so
    that it wins."""
    with m.If(port.active):
        m.d.comb += [
            rd.addr.eq(port.addr),
            rd.en.eq(1),
            wr.addr.eq(port.waddr),
            wr.data.eq(port.wdata if wdata is None else wdata),
            wr.en.eq(port.we if en is None else en),
        ]
