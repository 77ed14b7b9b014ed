"""The Dynamic KV cache Retrieval Engine (DRE): HCU, WTU and the top-k and weighted
quick-select baselines."""

from .dre import DynamicRetrievalEngine, dre_signature, dre_wtu_config
from .hcu import (
    HCU_LATENCY,
    HashClusterUnit,
    hcu_batch_cycles,
    hcu_result_latency,
    hcu_scan_rows,
)
from .layouts import DRELayouts, Event, layouts
from .quickselect import QUICKSELECT_LATENCY, WeightedQuickSelect, quickselect_cycles
from .topk import TOPK_LATENCY, TopKSelector, topk_cycles, topk_passes
from .wtu import (
    WTU_GRID_LATENCY,
    WTU_LATENCY,
    WTU_TOPS,
    WiCSumThresholdUnit,
    grid_wtu,
    relative_wtu,
    wtu_cycles,
    wtu_ingest_lanes,
    wtu_scan_group,
    wtu_unit_config,
)

__all__ = [
    "HCU_LATENCY",
    "QUICKSELECT_LATENCY",
    "TOPK_LATENCY",
    "WTU_GRID_LATENCY",
    "WTU_LATENCY",
    "WTU_TOPS",
    "DRELayouts",
    "DynamicRetrievalEngine",
    "Event",
    "HashClusterUnit",
    "TopKSelector",
    "WeightedQuickSelect",
    "WiCSumThresholdUnit",
    "dre_signature",
    "dre_wtu_config",
    "grid_wtu",
    "hcu_batch_cycles",
    "hcu_result_latency",
    "hcu_scan_rows",
    "layouts",
    "quickselect_cycles",
    "relative_wtu",
    "topk_cycles",
    "topk_passes",
    "wtu_cycles",
    "wtu_ingest_lanes",
    "wtu_scan_group",
    "wtu_unit_config",
]
