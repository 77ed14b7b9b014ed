"""The Dynamic KV cache Retrieval Engine (DRE): HCU, WTU and the top-k baseline."""

from .dre import DynamicRetrievalEngine, dre_signature
from .hcu import HashClusterUnit
from .layouts import DRELayouts, Event, layouts
from .topk import TopKSelector
from .wtu import WiCSumThresholdUnit

__all__ = [
    "DRELayouts",
    "DynamicRetrievalEngine",
    "Event",
    "HashClusterUnit",
    "TopKSelector",
    "WiCSumThresholdUnit",
    "dre_signature",
    "layouts",
]
