"""The formal tasks: one line each (harness, sby mode, depth), run by ``python -m formal``.

``prove`` is k-induction (``depth`` is the induction length): the property holds in every
reachable state. ``bmc`` checks every trace of ``depth`` steps from reset (the property
holds for that many cycles, no more is claimed). ``cover`` passes when every ``Cover``
statement is reached within ``depth`` steps. ``quick`` tasks run in ``make test``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Elaboratable

from .hcu import HCUHarness, hcu_config
from .kvmu import KVMUHarness
from .writer import KVWriterHarness
from .wtu import WTUHarness, wtu_grid_config

__all__ = ["TASKS", "Task", "task"]


@dataclass(frozen=True, kw_only=True)
class Task:
    name: str
    #: Builds the harness (``bug`` forwarded when given).
    harness: Callable[..., Elaboratable]
    mode: str
    depth: int
    #: What the task shows, for the report.
    about: str
    quick: bool = False

    def build(self, bug: str | None = None) -> Elaboratable:
        return self.harness(bug=bug) if bug is not None else self.harness()


def _h(cls, **kw):
    def make(**extra):
        return cls(**kw, **extra)

    return make


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            name="hcu_stream",
            harness=_h(HCUHarness, props="stream"),
            mode="prove",
            depth=4,
            about="HCU assign stable until ready; forced counter saturates",
            quick=True,
        ),
        Task(
            name="hcu_model",
            harness=_h(HCUHarness, props="model"),
            mode="bmc",
            depth=20,
            about="HCU vs reference table: in order, one result per token, CREATED iff far "
            "and not full, nearest cluster, occupancy, saturating counts",
        ),
        Task(
            name="hcu_stream_b2",
            harness=_h(HCUHarness, cfg=hcu_config(batch=2), props="stream"),
            mode="prove",
            depth=4,
            about="HCU with 2-token batches: assign stable until ready",
        ),
        Task(
            name="hcu_model_b2",
            harness=_h(HCUHarness, cfg=hcu_config(batch=2), props="model"),
            mode="bmc",
            depth=16,
            about="HCU with 2-token batches vs the reference table (as hcu_model; the table "
            "can be full and a forced join happen by step 12)",
        ),
        Task(
            name="hcu_cover",
            harness=_h(HCUHarness, props="model"),
            mode="cover",
            depth=20,
            about="HCU reaches a full table, a forced join, a saturated count",
        ),
        Task(
            name="wtu_stream",
            harness=_h(WTUHarness, props="stream"),
            mode="prove",
            depth=4,
            about="WTU selected and summary stable until ready",
            quick=True,
        ),
        Task(
            name="wtu_model",
            harness=_h(WTUHarness, props="model"),
            mode="bmc",
            depth=20,
            about="WTU ids unique, below the row length, after the row, before the summary; "
            "b* < n_buckets; the selected set is exactly the buckets <= b*",
        ),
        Task(
            name="wtu_mass",
            harness=_h(WTUHarness, props="mass"),
            mode="bmc",
            depth=16,
            about="WTU total mass, threshold, b* the first bucket whose cumulative mass "
            "reaches the threshold",
        ),
        Task(
            name="wtu_cover",
            harness=_h(WTUHarness, props="model"),
            mode="cover",
            depth=20,
            about="WTU row with an out-of-range cluster; a row selecting up to the last bucket",
        ),
        Task(
            name="wtu_grid_stream",
            harness=_h(WTUHarness, cfg=wtu_grid_config(), props="stream"),
            mode="prove",
            depth=4,
            about="WTU, grid buckets: selected and summary stable until ready",
        ),
        Task(
            name="wtu_grid_model",
            harness=_h(WTUHarness, cfg=wtu_grid_config(), props="model"),
            mode="bmc",
            depth=20,
            about="WTU, grid buckets: as wtu_model with bucket (max >> s) - (score >> s)",
        ),
        Task(
            name="wtu_grid_mass",
            harness=_h(WTUHarness, cfg=wtu_grid_config(), props="mass"),
            mode="bmc",
            depth=15,
            about="WTU, grid buckets: as wtu_mass",
        ),
        Task(
            name="wtu_grid_cover",
            harness=_h(WTUHarness, cfg=wtu_grid_config(), props="model"),
            mode="cover",
            depth=20,
            about="WTU, grid buckets: an out-of-range cluster; a scan to the last bucket",
        ),
        Task(
            name="kvmu_stream",
            harness=_h(KVMUHarness, props="stream"),
            mode="prove",
            depth=4,
            about="KVMU slot, kv and AR stable until ready",
            quick=True,
        ),
        Task(
            name="kvmu_axi",
            harness=_h(KVMUHarness, props="axi"),
            mode="bmc",
            depth=24,
            about="KVMU AR: 4 KB, max_burst, alignment, area, outstanding; summary counts "
            "and stability; unique slots",
        ),
        Task(
            name="kvmu_cover",
            harness=_h(KVMUHarness, props="axi"),
            mode="cover",
            depth=24,
            about="KVMU splits a chunk's run at max_burst and at a 4 KB boundary",
        ),
        Task(
            name="writer_axi",
            harness=_h(KVWriterHarness, props="axi"),
            mode="bmc",
            depth=16,
            about="KVWriter AW/W/done stable; AW 4 KB, max_burst, alignment; W lengths = AW "
            "lengths; outstanding",
        ),
        Task(
            name="writer_cover",
            harness=_h(KVWriterHarness, props="axi"),
            mode="cover",
            depth=12,
            about="KVWriter splits a token at a 4 KB boundary; a max_burst burst",
        ),
    )
}


def task(name: str) -> Task:
    """The named task; ``ValueError`` listing the tasks for an unknown name."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {name!r}")
    return TASKS[name]
