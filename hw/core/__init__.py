"""The V-Rex core (``golden.core.CoreModel`` in hardware), one part per module.

- ``host``: the host interface (``Op``, ``Error``, ``PERF``, ``cmd_layout``,
  ``STATUS_LAYOUT``, ``lane_words``, ``check_core_config``).
- ``core``: ``VRexCore``, the control and the memories, connecting the parts below and the
  DRE, the datapath and the KVMU.
- ``hasher``: ``Hasher``, the hyperplanes, their MAC array block, the signatures and ``theta``.
- ``scorer``: ``ClusterScorer``, the clusters' weighted scores into the DRE's WTU.
"""

from .core import VRexCore
from .hasher import Hasher
from .host import PERF, STATUS_LAYOUT, Error, Op, check_core_config, cmd_layout, lane_words
from .scorer import ClusterScorer

__all__ = [
    "PERF",
    "STATUS_LAYOUT",
    "ClusterScorer",
    "Error",
    "Hasher",
    "Op",
    "VRexCore",
    "check_core_config",
    "cmd_layout",
    "lane_words",
]
