"""KV memory unit: paged, cluster-contiguous KV layout and burst retrieval over AXI4."""

from .kvmu import KVMemoryUnit
from .layouts import KVMULayouts, axi4_read_signature, kvmu_layouts

__all__ = ["KVMULayouts", "KVMemoryUnit", "axi4_read_signature", "kvmu_layouts"]
