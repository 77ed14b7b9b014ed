"""The V-Rex core (``golden.core.CoreModel`` in hardware), one part per module.

- ``host``: the host interface (``Op``, ``Error``, ``PERF``, ``cmd_layout``,
  ``STATUS_LAYOUT``, ``lane_words``, ``check_core_config``).
- ``core``: ``VRexCore``, the control and the memories, connecting the parts below and the
  DRE, the datapath and the KVMU.
- ``hasher``: ``Hasher``, the hyperplanes, their MAC array block, the signatures and ``theta``.
- ``scorer``: ``ClusterScorer``, the clusters' weighted scores into the DRE's WTU.
- ``gearbox``: ``FetchGearbox``, the KVMU's fetched AXI beats into memory rows.
- ``reader``: ``BurstReader``, a run of bus beats from DRAM (a selection's representative
  keys).
- ``feeder``: ``Feeder``, the rows a query streams: the clusters' representative keys into
  the MAC tree, the kept and the fetched tokens' K/V into the attention engine.
- ``aging``: ``Aging``, the oldest ring token into the clustered context (HCU, KVMU slot,
  posted K/V write, its cluster's key sum read from DRAM and written back, member count).
- ``contexts``, ``mover``: the contexts' DRAM regions and ``ContextMover``, the tables that
  ``SWITCH_CTX`` stores and loads (and, a second one, the prefetcher, the kept tokens).
- ``arbiter``: ``AxiArbiter``, the units' bus and the prefetcher's on one AXI master.
- ``mean``: ``MeanQuery``, the sum of a ``PREFILL``'s rows and their mean, the query that
  selects the block's clusters.
- ``perf``: ``PerfCounters``, the ``PERF`` counters and their read port.
"""

from .aging import Aging
from .core import VRexCore
from .feeder import Feeder
from .gearbox import FetchGearbox
from .hasher import Hasher
from .host import PERF, STATUS_LAYOUT, Error, Op, check_core_config, cmd_layout, lane_words
from .mean import MeanQuery
from .perf import PerfCounters
from .reader import BurstReader
from .scorer import ClusterScorer

__all__ = [
    "PERF",
    "STATUS_LAYOUT",
    "Aging",
    "BurstReader",
    "ClusterScorer",
    "Error",
    "Feeder",
    "FetchGearbox",
    "Hasher",
    "MeanQuery",
    "Op",
    "PerfCounters",
    "VRexCore",
    "check_core_config",
    "cmd_layout",
    "lane_words",
]
