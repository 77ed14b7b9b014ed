"""FetchGearbox: the KVMU's fetched AXI beats assembled into the core's memory rows."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, check_config

__all__ = ["FetchGearbox", "row_layout"]


def row_layout(cfg: HWConfig) -> data.StructLayout:
    """A fetched row (``FetchGearbox.rows``): ``data``, ``v`` (a V row), ``row`` (its index
    within the K or the V vector)."""
    nb = cfg.resv.head_dim // cfg.mac_lanes
    return data.StructLayout({"data": 16 * cfg.mac_lanes, "v": 1, "row": range(nb)})


class FetchGearbox(wiring.Component):
    """``sub = 16 * mac_lanes / axi_data_bits`` AXI beats per memory row (a MAC beat).

    The fetched tokens arrive as the KVMU's ``kv`` beats, each token ``2 * nb`` rows
    (``nb = head_dim // mac_lanes``): rows ``0..nb-1`` its K vector, ``nb..2nb-1`` its V
    vector. The first ``sub - 1`` beats of a row are held here; the row leaves with its last
    beat, in the same cycle (combinational hand-off: no register stage).

    Ports:

    - ``beats`` (in stream): the bus beats, element order (the first beat in the row's
      LSBs).
    - ``rows`` (out stream): ``data`` (a row), ``v`` (a V row) and ``row`` (its index within
      the K or the V vector).
    - ``clear`` (in): the next beat starts a row and a token.
    - ``empty`` (out): no beat of a row is held.
    """

    def __init__(self, cfg: HWConfig):
        check_config(self, cfg)
        self._cfg = cfg
        super().__init__(
            {
                "beats": In(stream.Signature(cfg.axi_data_bits)),
                "rows": Out(stream.Signature(row_layout(cfg))),
                "clear": In(1),
                "empty": Out(1),
            }
        )

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        nb = cfg.resv.head_dim // cfg.mac_lanes
        w = cfg.axi_data_bits
        sub = 16 * cfg.mac_lanes // w
        beat = Signal(range(max(2, sub)), name="beat")  # beat within the row
        held = Signal(max(1, (sub - 1) * w), name="held")  # the row's beats before its last
        row = Signal(range(2 * nb), name="row")  # row within the token
        last_beat = beat == sub - 1
        full_row = self.beats.payload if sub == 1 else Cat(held, self.beats.payload)
        m.d.comb += [
            self.rows.valid.eq(self.beats.valid & last_beat),
            self.rows.payload.data.eq(full_row),
            self.rows.payload.v.eq(row >= nb),
            self.rows.payload.row.eq(Mux(row >= nb, row - nb, row)),
            self.beats.ready.eq(~last_beat | self.rows.ready),
            self.empty.eq(beat == 0),
        ]
        with m.If(self.beats.valid & self.beats.ready):
            with m.If(last_beat):
                m.d.sync += [beat.eq(0), row.eq(Mux(row == 2 * nb - 1, 0, row + 1))]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
                if sub > 1:
                    m.d.sync += held.word_select(beat, w).eq(self.beats.payload)
        with m.If(self.clear):
            m.d.sync += [beat.eq(0), row.eq(0)]
        return m
