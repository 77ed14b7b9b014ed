"""KV memory unit: paged, cluster-contiguous KV layout and burst retrieval over AXI4."""

from .kvmu import KVMemoryUnit
from .layouts import (
    KVMULayouts,
    axi4_read_signature,
    axi4_signature,
    axi4_write_signature,
    kvmu_layouts,
)
from .writer import KVWriter

__all__ = [
    "KVMULayouts",
    "KVMemoryUnit",
    "KVWriter",
    "axi4_read_signature",
    "axi4_signature",
    "axi4_write_signature",
    "kvmu_layouts",
]
