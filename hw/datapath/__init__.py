"""The datapath: BF16 multipliers, FP32 adders, MAC tree and MAC array, the vector units
(SPEC section 3)."""

from .bf16_mul import BF16Mul
from .convert import FP32ToFixed, IntToFP32
from .exp2 import Exp2
from .fp32_add import FP32Add
from .fp32_compare import FP32Compare
from .fp32_mul import FP32Mul
from .fp32_to_bf16 import FP32ToBF16
from .layouts import BF16, FP32, DatapathLayouts, layouts
from .mac_array import MacArray, block_cycles
from .mac_tree import MacTree, mac_latency
from .recip import FP32Recip
from .recip_pipe import FP32RecipPipe
from .rope import RopeUnit
from .tile_softmax import TileSoftmax, tile_latency
from .tiled_attention import TiledAttention, command_cycles

__all__ = [
    "BF16",
    "FP32",
    "BF16Mul",
    "DatapathLayouts",
    "Exp2",
    "FP32Add",
    "FP32Compare",
    "FP32Mul",
    "FP32Recip",
    "FP32RecipPipe",
    "FP32ToBF16",
    "FP32ToFixed",
    "IntToFP32",
    "MacArray",
    "MacTree",
    "RopeUnit",
    "TileSoftmax",
    "TiledAttention",
    "block_cycles",
    "command_cycles",
    "layouts",
    "mac_latency",
    "tile_latency",
]
