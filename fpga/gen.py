"""Verilog of the board system for simulation: ``system_verilog(cfg)`` is the
``fpga.system.DRESystem`` of ``fpga.config.sim_config(cfg)`` as module ``dre_system``."""

from __future__ import annotations

from amaranth.back import verilog

from hw.config import HWConfig

from .config import sim_config
from .system import DRESystem

__all__ = ["SYSTEM_TOP", "system_verilog"]

SYSTEM_TOP = "dre_system"


def system_verilog(cfg: HWConfig) -> str:
    return verilog.convert(DRESystem(sim_config(cfg)), name=SYSTEM_TOP, emit_src=False)
