"""Stream payloads and the AXI4 master signatures of the KVMU, for one ``HWConfig``.

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

__all__ = [
    "KVMULayouts",
    "axi4_read_signature",
    "axi4_signature",
    "axi4_write_signature",
    "check_outstanding",
    "kvmu_layouts",
]


def check_outstanding(owner: object, outstanding: object) -> None:
    """``outstanding`` (bursts in flight of an AXI master) must be an integer in 1..256;
    raised before ``owner`` is used, silenced as ``check_config`` does."""
    if isinstance(outstanding, bool) or not isinstance(outstanding, int):
        owner._MustUse__silence = True
        raise TypeError(f"outstanding must be an integer, not {outstanding!r}")
    if not 1 <= outstanding <= 256:
        owner._MustUse__silence = True
        raise ValueError(f"outstanding must be in 1..256, not {outstanding!r}")


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


def axi4_write_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """AW, W and B channels of an AXI4 master (one ID, always 0; INCR bursts; ``bid`` is
    ignored), directions as seen from the master. ``wstrb`` has one bit per data byte."""
    return wiring.Signature(
        {
            "awid": Out(1),
            "awaddr": Out(addr_bits),
            "awlen": Out(8),
            "awsize": Out(3),
            "awburst": Out(2),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_bits),
            "wstrb": Out(data_bits // 8),
            "wlast": Out(1),
            "wvalid": Out(1),
            "wready": In(1),
            "bid": In(1),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
        }
    )


def axi4_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """A full AXI4 master: the members of ``axi4_read_signature`` (AR, R) followed by those
    of ``axi4_write_signature`` (AW, W, B) in one flat signature, so that a top port
    ``m_axi`` binds to cocotbext-axi ``AxiBus.from_prefix(dut, "m_axi",
    bus_separator="__")``. ``KVMemoryUnit.m_axi`` drives the read members and
    ``KVWriter.m_axi`` the write members (connect them member by member)."""
    members = dict(axi4_read_signature(addr_bits, data_bits).members)
    members.update(axi4_write_signature(addr_bits, data_bits).members)
    return wiring.Signature(members)


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
        #: Write command: the byte address of one token's KV (``slot.addr``).
        #: ``half``: half of a token's beats (the core's BF16 representative keys).
        self.wr_cmd = data.StructLayout({"addr": unsigned(cfg.axi_addr_bits), "half": 1})
        #: Write data: one bus beat of a token's KV (K then V, ``axi_beats_per_token`` beats).
        self.wr_data = data.StructLayout({"data": unsigned(cfg.axi_data_bits)})
        #: Write completion: one beat per token, ``error`` if any B response was not OKAY.
        self.wr_done = data.StructLayout({"error": unsigned(1)})
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
