"""DynamicRetrievalEngine: the HCU and the WTU of one configuration behind one signature.

The core talks to the DRE through ``dre_signature(cfg)`` only:
  ``tokens`` → HCU → ``assign``, with the HCU's ``count_addr``/``count_data`` read port,
  ``occupancy`` and ``forced``;
  ``wtu_cmd`` + ``clusters`` → WTU → ``selected`` + ``summary``.
The two units are independent (the core scores clusters between them), so their cycle
behaviour is that of ``HashClusterUnit`` and ``WiCSumThresholdUnit``. ``clusters`` carries
one cluster per beat (the core scores one per cycle), so the DRE's WTU is the single-lane
one whatever ``wtu_lanes`` (``wtu_lanes`` only widens a grid WTU built on its own).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import HWConfig, check_config
from .hcu import HashClusterUnit, hcu_bulk_members
from .layouts import layouts
from .wtu import WiCSumThresholdUnit

__all__ = ["DynamicRetrievalEngine", "dre_signature", "dre_wtu_config"]


def dre_wtu_config(cfg: HWConfig) -> HWConfig:
    """The config of the DRE's WTU: ``cfg`` at one lane (one cluster per ``clusters`` beat,
    selected ids one per beat in bucket order), at the config's bucket mode."""
    return cfg.replace(wtu_lanes=1)


def dre_signature(cfg: HWConfig) -> wiring.Signature:
    """The DRE's ports, seen from the DRE (the core uses ``.flip()``)."""
    lay = layouts(cfg)
    return wiring.Signature(
        {
            "tokens": In(stream.Signature(lay.token)),
            "assign": Out(stream.Signature(lay.assign)),
            "count_addr": In(cfg.cluster_id_bits),
            "count_data": Out(cfg.resv.count_bits),
            "occupancy": Out(cfg.occupancy_bits),
            "forced": Out(cfg.token_id_bits),
            "wtu_cmd": In(stream.Signature(lay.wtu_cmd)),
            "clusters": In(stream.Signature(lay.cluster_score)),
            "selected": Out(stream.Signature(lay.selected)),
            "summary": Out(stream.Signature(lay.wtu_summary)),
        }
    )


class DynamicRetrievalEngine(wiring.Component):
    """HCU + WTU wired to ``dre_signature(cfg)``."""

    def __init__(self, cfg: HWConfig, *, bulk: bool = False):
        check_config(self, cfg)
        self._cfg = cfg
        self._bulk = bulk
        sig = dre_signature(cfg)
        if bulk:  # the HCU's table for SWITCH_CTX (the core's)
            sig = wiring.Signature({**sig.members, **hcu_bulk_members(cfg)})
        super().__init__(sig)

    @property
    def cfg(self) -> HWConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        m.submodules.hcu = hcu = HashClusterUnit(self._cfg, bulk=self._bulk)
        m.submodules.wtu = wtu = WiCSumThresholdUnit(dre_wtu_config(self._cfg))
        wiring.connect(m, wiring.flipped(self.tokens), hcu.tokens)
        wiring.connect(m, hcu.assign, wiring.flipped(self.assign))
        wiring.connect(m, wiring.flipped(self.wtu_cmd), wtu.cmd)
        wiring.connect(m, wiring.flipped(self.clusters), wtu.clusters)
        wiring.connect(m, wtu.selected, wiring.flipped(self.selected))
        wiring.connect(m, wtu.summary, wiring.flipped(self.summary))
        m.d.comb += [
            hcu.count_addr.eq(self.count_addr),
            self.count_data.eq(hcu.count_data),
            self.occupancy.eq(hcu.occupancy),
            self.forced.eq(hcu.forced),
        ]
        if self._bulk:
            wiring.connect(m, wiring.flipped(self.bulk), hcu.bulk)
            m.d.comb += [
                hcu.load.eq(self.load),
                hcu.load_size.eq(self.load_size),
                hcu.load_forced.eq(self.load_forced),
            ]
        return m
