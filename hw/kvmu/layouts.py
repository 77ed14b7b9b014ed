"""Stream payloads and the AXI4 read-master signature of the KVMU, for one ``HWConfig``.

Field order is the packing order (first field = LSBs). The assignment input and the
selection input reuse the DRE layouts (``hw.dre.layouts``), so the HCU's ``assign`` and the
WTU's ``selected`` streams connect to the KVMU with ``wiring.connect``.
"""

from __future__ import annotations

from functools import cache

from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig
from ..dre.layouts import layouts as dre_layouts

__all__ = ["KVMULayouts", "axi4_read_signature", "kvmu_layouts"]


def axi4_read_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """AR and R channels of an AXI4 master (one ID, always 0, so R returns in order; INCR
    bursts; ``rid`` is ignored). As a port of the top
    its members are named ``<port>__araddr`` … (bind cocotbext-axi with
    ``bus_separator="__"``)."""
    return wiring.Signature(
        {
            "arid": Out(1),
            "araddr": Out(addr_bits),
            "arlen": Out(8),
            "arsize": Out(3),
            "arburst": Out(2),
            "arvalid": Out(1),
            "arready": In(1),
            "rid": In(1),
            "rdata": In(data_bits),
            "rresp": In(2),
            "rlast": In(1),
            "rvalid": In(1),
            "rready": Out(1),
        }
    )


class KVMULayouts:
    def __init__(self, cfg: HWConfig):
        dre = dre_layouts(cfg)
        #: Allocation input: the HCU's output (token id, cluster, distance, event).
        self.assign = dre.assign
        #: Selection input: the WTU's output (cluster id, ``last`` on the final one).
        self.selected = dre.selected
        #: Allocation output: where the token's KV is to be written. ``full`` when no chunk
        #: was left: the token is not stored and its address is meaningless.
        self.slot = data.StructLayout(
            {
                "token_id": unsigned(cfg.token_id_bits),
                "chunk": unsigned(cfg.kv_chunk_bits),
                "slot": unsigned(cfg.kv_fill_bits),
                "addr": unsigned(cfg.axi_addr_bits),
                "full": unsigned(1),
            }
        )
        #: Retrieval output: one data beat of the R channel and the cluster it belongs to.
        self.kv = data.StructLayout(
            {"data": unsigned(cfg.axi_data_bits), "cluster": dre.selected["cluster"].shape}
        )
        count = unsigned(cfg.axi_addr_bits)
        #: Done beat after the last data beat of a selection.
        self.summary = data.StructLayout(
            {
                "clusters": unsigned(cfg.occupancy_bits),
                "bursts": count,
                "beats": count,
                "error": unsigned(1),
            }
        )


@cache
def kvmu_layouts(cfg: HWConfig) -> KVMULayouts:
    return KVMULayouts(cfg)
