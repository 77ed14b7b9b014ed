"""The Dynamic KV cache Retrieval Engine (DRE): HCU, WTU and the top-k baseline."""

from .dre import DynamicRetrievalEngine, dre_signature
from .hcu import (
    HCU_LATENCY,
    HashClusterUnit,
    hcu_batch_cycles,
    hcu_result_latency,
    hcu_scan_rows,
)
from .layouts import DRELayouts, Event, layouts
from .topk import TOPK_LATENCY, TopKSelector, topk_cycles, topk_passes
from .wtu import WTU_LATENCY, WiCSumThresholdUnit, wtu_cycles

__all__ = [
    "HCU_LATENCY",
    "TOPK_LATENCY",
    "WTU_LATENCY",
    "DRELayouts",
    "DynamicRetrievalEngine",
    "Event",
    "HashClusterUnit",
    "TopKSelector",
    "WiCSumThresholdUnit",
    "dre_signature",
    "hcu_batch_cycles",
    "hcu_result_latency",
    "hcu_scan_rows",
    "layouts",
    "topk_cycles",
    "topk_passes",
    "wtu_cycles",
]
