"""The datapath: BF16 multipliers, FP32 adders and the MAC tree (SPEC section 3)."""

from .bf16_mul import BF16Mul
from .fp32_add import FP32Add
from .layouts import BF16, FP32, DatapathLayouts, layouts
from .mac_tree import MacTree, mac_latency

__all__ = [
    "BF16",
    "FP32",
    "BF16Mul",
    "DatapathLayouts",
    "FP32Add",
    "MacTree",
    "layouts",
    "mac_latency",
]
