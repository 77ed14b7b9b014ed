"""The unit registry: every hardware unit declared once, read by every flow.

A :class:`Unit` names the Amaranth component constructor, a one-line description, the cocotb
testbench module, the golden model it is checked against and the synthesis stimulus. ``UNITS``
(name → :class:`Unit`, in report order) is what ``hw.gen`` generates (``TOPS``),
``sim.kit.runner`` simulates (``UNIT_TESTBENCH``), ``synth.flow`` synthesises
(``EXPECTED_UNITS``) and ``synth.activity`` drives (``STIMULI``). Adding a unit is one entry
here plus its files.

The testbench, the golden references and the stimulus are stored as names (dotted module
paths, a ``synth.activity.STIMULI`` key), never imported here: ``hw`` does not import ``sim``
or ``synth``. ``tests/hw/test_units.py`` checks that each name resolves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from amaranth.lib import wiring

from .config import HWConfig
from .core import VRexCore
from .datapath import (
    FP32RecipPipe,
    MacArray,
    MacTree,
    RopeUnit,
    TiledAttention,
    TileSoftmax,
)
from .dre import (
    DynamicRetrievalEngine,
    HashClusterUnit,
    TopKSelector,
    WeightedQuickSelect,
    grid_wtu,
    relative_wtu,
)
from .kvmu import KVMemoryUnit, KVWriter

__all__ = [
    "MAX_GENERATED_CORE_MACS",
    "MAX_GENERATED_MACS",
    "UNITS",
    "Unit",
    "core_macs",
    "engine_macs",
    "unit",
    "units_with_testbench",
]

#: Largest MacArray (rows x cols) that whole-preset runs (``make verilog``, ``make synth``)
#: take. Generation is no longer the limit (``hw.shared``: the 64 x 64 array's RTLIL in 42 s,
#: its Verilog and lint in 2 min 40 s); synthesising one that large is not measured yet.
MAX_GENERATED_MACS = 256

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


@dataclass(frozen=True, kw_only=True)
class Unit:
    """One hardware unit: what every flow needs to know about it."""

    #: Verilog top-module name, ``hw.gen --top`` name and build-directory name.
    name: str
    #: The Amaranth component for a configuration.
    component: Callable[[HWConfig], wiring.Component]
    #: One line for reports and ``--help``.
    description: str
    #: Dotted name of its cocotb test module, or ``None`` when no unit-level bench exists
    #: (the ``dre`` is verified through its parts and through the core).
    testbench: str | None
    #: Dotted names of the golden-model functions/classes its results are checked against.
    golden: tuple[str, ...]
    #: Key of its synthesis stimulus in ``synth.activity.STIMULI`` (``"ports"``: driven from
    #: its stream ports, see ``synth.activity``).
    stimulus: str = "ports"
    #: Why whole-preset runs (``hw.gen --all``, ``make synth``) leave it out at a
    #: configuration, or ``None`` — elaboration-time limits; by name it is still generated.
    too_large: Callable[[HWConfig], str | None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be a Python identifier, not {self.name!r}")
        if not callable(self.component):
            raise TypeError(f"component must be callable, not {self.component!r}")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"description must be a non-empty string, not {self.description!r}")
        if self.testbench is not None and (
            not isinstance(self.testbench, str) or not _DOTTED.match(self.testbench)
        ):
            raise ValueError(
                f"testbench must be a dotted module name or None, not {self.testbench!r}"
            )
        if (
            not isinstance(self.golden, tuple)
            or not self.golden
            or not all(isinstance(g, str) and g.startswith("golden.") for g in self.golden)
            or not all(_DOTTED.match(g) for g in self.golden)
        ):
            raise ValueError(
                f"golden must be a non-empty tuple of dotted golden.* names, not {self.golden!r}"
            )
        if not isinstance(self.stimulus, str) or not self.stimulus:
            raise ValueError(f"stimulus must be a non-empty string, not {self.stimulus!r}")
        if self.too_large is not None and not callable(self.too_large):
            raise TypeError(f"too_large must be callable or None, not {self.too_large!r}")


def _mac_array_limit(cfg: HWConfig) -> str | None:
    if cfg.mac_rows * cfg.mac_cols <= MAX_GENERATED_MACS:
        return None
    return (
        f"mac_array {cfg.mac_rows} x {cfg.mac_cols} is left out (more than "
        f"{MAX_GENERATED_MACS} MACs; --top mac_array still generates it); it is sized from small "
        "arrays: python -m synth.flow --top mac_array --set mac_rows=8 --set mac_cols=8"
    )


def engine_macs(cfg: HWConfig) -> int:
    """MACs of the tiled attention engine's two arrays: ``tile_tokens x mac_cols`` (A) and
    ``head_dim x mac_cols`` (B)."""
    return (cfg.tile_tokens + cfg.resv.head_dim) * cfg.mac_cols


def _tiled_attention_limit(cfg: HWConfig) -> str | None:
    macs = engine_macs(cfg)
    if macs <= MAX_GENERATED_MACS:
        return None
    return (
        f"tiled_attention is left out: its two MAC arrays have {macs} MACs (more than "
        f"{MAX_GENERATED_MACS}; --top tiled_attention still generates it); it is sized at small "
        "widths: python -m synth.flow --top tiled_attention --config tiny"
    )


#: Largest core (MACs of its hasher and its attention engine's two arrays) that whole-preset
#: runs take: the 64-lane paper core (14 336 MACs) is in them (``make synth CONFIG=paper``
#: synthesises it; too many cells to time whole here, so each distinct module is timed, see
#: ``synth.flow.MODULE_TIMING``). Its cycles are measured at a quarter of the width (and, in
#: 37 min, on Verilator at full width: ``make bench-paper``).
MAX_GENERATED_CORE_MACS = 16384


def core_macs(cfg: HWConfig) -> int:
    """MACs of the core: the ``hash_bits`` x ``mac_lanes`` hasher and the engine's arrays
    (``tile_tokens`` x ``mac_lanes`` and ``head_dim`` x ``mac_lanes``)."""
    # the core builds its engine with mac_cols = mac_lanes
    return cfg.resv.hash_bits * cfg.mac_lanes + engine_macs(cfg.replace(mac_cols=cfg.mac_lanes))


def _core_limit(cfg: HWConfig) -> str | None:
    macs = core_macs(cfg)
    if macs <= MAX_GENERATED_CORE_MACS:
        return None
    return (
        f"core is left out: its hasher and attention arrays have {macs} MACs (more than "
        f"{MAX_GENERATED_CORE_MACS}; --top core still generates and synthesises it)"
    )


def _recip_pipe(_cfg: HWConfig) -> wiring.Component:
    return FP32RecipPipe()  # fixed FP32 format: nothing to configure


_ENTRIES = (
    Unit(
        name="hcu",
        component=HashClusterUnit,
        description="HashClusterUnit",
        testbench="sim.benches.tb_hcu",
        golden=("golden.resv.cluster_online",),
    ),
    Unit(
        name="wtu",
        component=relative_wtu,
        description="WiCSumThresholdUnit, relative buckets (the SPEC's two-pass rule)",
        testbench="sim.benches.tb_wtu",
        golden=("golden.resv.wicsum_select_bucketed",),
    ),
    Unit(
        name="wtu_grid",
        component=grid_wtu,
        description="WiCSumThresholdUnit, grid buckets (one pass)",
        testbench="sim.benches.tb_wtu",
        golden=("golden.resv.wicsum_select_bucketed", "golden.resv.emit_beats"),
    ),
    Unit(
        name="topk",
        component=TopKSelector,
        description="TopKSelector (baseline)",
        testbench="sim.benches.tb_topk",
        golden=("golden.topk.topk_select",),
    ),
    Unit(
        name="quickselect",
        component=WeightedQuickSelect,
        description="WeightedQuickSelect (exact-WiCSum baseline)",
        testbench="sim.benches.tb_quickselect",
        golden=("golden.quickselect.quickselect",),
    ),
    Unit(
        name="dre",
        component=DynamicRetrievalEngine,
        description="DynamicRetrievalEngine (HCU + WTU)",
        testbench=None,
        golden=("golden.resv.cluster_online", "golden.resv.wicsum_select_bucketed"),
    ),
    Unit(
        name="kvmu",
        component=KVMemoryUnit,
        description="KVMemoryUnit, KV read path (AXI4 read master)",
        testbench="sim.benches.tb_kvmu",
        golden=("golden.kvmu.token_gather", "golden.kvmu.split_run"),
    ),
    Unit(
        name="kv_writer",
        component=KVWriter,
        description="KVWriter, KV write path (AXI4 write master)",
        testbench="sim.benches.tb_kv_writer",
        golden=("golden.kvmu.write_bursts",),
        stimulus="kv-writer",
    ),
    Unit(
        name="mac_tree",
        component=MacTree,
        description="BF16 MAC tree (datapath)",
        testbench="sim.benches.tb_mac_tree",
        golden=("golden.fparith.dot",),
    ),
    Unit(
        name="mac_array",
        component=MacArray,
        description="BF16 MAC array, query block x K tile (datapath)",
        testbench="sim.benches.tb_mac_array",
        golden=("golden.fparith.mac_array",),
        stimulus="mac-array-blocks",
        too_large=_mac_array_limit,
    ),
    Unit(
        name="recip_pipe",
        component=_recip_pipe,
        description="FP32RecipPipe, pipelined FP32 reciprocal (datapath)",
        testbench="sim.benches.tb_recip_pipe",
        golden=("golden.fparith.fp32_recip",),
    ),
    Unit(
        name="tile_softmax",
        component=TileSoftmax,
        description="TileSoftmax, tiled-order softmax, one tile row per cycle (datapath)",
        testbench="sim.benches.tb_tile_softmax",
        golden=("golden.softmax.tile_step",),
        stimulus="tile-softmax-rows",
    ),
    Unit(
        name="tiled_attention",
        component=TiledAttention,
        description="TiledAttention, rows x tokens in the tiled order (datapath)",
        testbench="sim.benches.tb_tiled_attention",
        golden=("golden.softmax.tiled_attention",),
        stimulus="tiled-attention-commands",
        too_large=_tiled_attention_limit,
    ),
    Unit(
        name="rope",
        component=RopeUnit,
        description="RopeUnit, rotary position embedding (datapath)",
        testbench="sim.benches.tb_rope",
        golden=("golden.rope.rope_bf16",),
        stimulus="rope-vectors",
    ),
    Unit(
        name="core",
        component=VRexCore,
        description="VRexCore: RoPE + hasher + MAC tree + DRE + KVMU + tiled attention + control",
        testbench="sim.benches.tb_core",
        golden=("golden.core.CoreModel",),
        stimulus="core-host",
        too_large=_core_limit,
    ),
)

#: Every unit: name → :class:`Unit`, in the order of generation and of the reports.
UNITS: Mapping[str, Unit] = MappingProxyType({u.name: u for u in _ENTRIES})
if len(UNITS) != len(_ENTRIES):  # pragma: no cover - a duplicated entry above
    raise ValueError("unit names must be unique")


def unit(name: str, *, param: str = "name", among: Mapping[str, object] | None = None) -> Unit:
    """The registry entry of ``name``; ``ValueError`` naming ``param`` and listing the units
    (of ``among``, a subset such as the units with a testbench, when given)."""
    choices = UNITS if among is None else among
    if not isinstance(name, str) or name not in choices:
        raise ValueError(f"{param} must be one of {', '.join(map(repr, choices))}, not {name!r}")
    return UNITS[name]


def units_with_testbench() -> dict[str, str]:
    """Unit name → cocotb test module, for the units that have a unit-level bench."""
    return {n: u.testbench for n, u in UNITS.items() if u.testbench is not None}
