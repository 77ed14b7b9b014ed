"""Stream payloads of the DRE, all in one place.

Widths depend on the configuration, so the layouts are built per ``HWConfig`` by
``DRELayouts`` (cached). Field order is the packing order (first field = LSBs); the cocotb
codec (``sim.codec``) packs and unpacks through these very layouts.
"""

from __future__ import annotations

from functools import cache

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from ..config import HWConfig, bits_for

__all__ = ["DRELayouts", "Event", "lanes_beat_malformed", "layouts"]


class Event(enum.Enum, shape=2):
    """What the HCU did with a token; values equal ``golden.resv.ClusterEvent``."""

    JOINED = 0
    CREATED = 1
    FORCED = 2


class DRELayouts:
    """The payload layouts of every DRE stream for one configuration."""

    def __init__(self, cfg: HWConfig):
        r = cfg.resv
        cid = unsigned(cfg.cluster_id_bits)
        occ = unsigned(cfg.occupancy_bits)
        #: HCU input: one token's signature. ``clear`` empties the table (a new layer/head
        #: context) before this token is clustered.
        self.token = data.StructLayout(
            {
                "token_id": unsigned(cfg.token_id_bits),
                "signature": unsigned(r.hash_bits),
                "clear": unsigned(1),
            }
        )
        #: HCU output: where the token went.
        self.assign = data.StructLayout(
            {
                "token_id": unsigned(cfg.token_id_bits),
                "cluster": cid,
                "distance": unsigned(cfg.distance_bits),
                "event": Event,
            }
        )
        #: Selector input (WTU and top-k): one scored cluster; ``last`` ends the row.
        #: Clusters arrive in id order 0, 1, …, C-1.
        self.cluster_score = data.StructLayout(
            {
                "cluster": cid,
                "score": signed(r.score_bits),
                "count": unsigned(r.count_bits),
                "last": unsigned(1),
            }
        )
        #: Multi-lane WTU input (``bucket_mode = "grid"`` with ``wtu_lanes = L > 1``): L
        #: clusters per beat, ids ``base .. base + n - 1`` in lanes ``0 .. n - 1`` (lanes from
        #: ``n`` up are ignored); ``base`` is ``L`` times the beat's index in the row, ``n <
        #: L`` only on the ``last`` beat.
        lanes = cfg.wtu_lanes
        self.cluster_lanes = data.StructLayout(
            {
                "base": cid,
                "n": unsigned(bits_for(lanes)),
                "score": data.ArrayLayout(signed(r.score_bits), lanes),
                "count": data.ArrayLayout(unsigned(r.count_bits), lanes),
                "last": unsigned(1),
            }
        )
        #: Selector output (WTU and top-k): one selected cluster; ``last`` on the final one.
        self.selected = data.StructLayout({"cluster": cid, "last": unsigned(1)})
        #: Multi-lane selector output (the grid WTU and the quick-select with ``wtu_lanes =
        #: L > 1``): the selected ids of one row of L ids ``base .. base + L - 1`` (``base`` a
        #: multiple of L), bit j of ``mask`` set when ``base + j`` is selected; beats in
        #: ascending ``base``, rows holding no selected id skipped, ``last`` on the final beat
        #: (``golden.resv.emit_beats``).
        self.selected_lanes = data.StructLayout(
            {"base": cid, "mask": unsigned(lanes), "last": unsigned(1)}
        )
        #: WTU command: the coverage of this row, ``round(coverage * 2**coverage_frac_bits)``.
        self.wtu_cmd = data.StructLayout({"coverage_q": unsigned(cfg.coverage_q_bits)})
        #: WTU done beat, after the last selected cluster.
        self.wtu_summary = data.StructLayout(
            {
                "b_star": unsigned(cfg.bucket_bits),
                "buckets_scanned": unsigned(cfg.buckets_scanned_bits),
                "n_selected": occ,
                "total_mass": unsigned(cfg.mass_bits),
                "threshold": unsigned(cfg.mass_bits),
                "error": unsigned(1),
            }
        )
        #: Weighted quick-select done beat (its command is ``wtu_cmd``).
        self.quickselect_summary = data.StructLayout(
            {
                "n_selected": occ,
                "passes": unsigned(bits_for(cfg.quickselect_key_bits + 1)),
                "total_mass": unsigned(cfg.mass_bits),
                "threshold": unsigned(cfg.mass_bits),
                "error": unsigned(1),
            }
        )
        #: Top-k command: how many clusters to select (``0..max_clusters``).
        self.topk_cmd = data.StructLayout({"k": occ})
        #: Top-k done beat, after the last selected cluster.
        self.topk_summary = data.StructLayout(
            {
                "n_selected": occ,
                "passes": unsigned(cfg.topk_passes_bits),
                "error": unsigned(1),
            }
        )


@cache
def layouts(cfg: HWConfig) -> DRELayouts:
    """``DRELayouts`` of ``cfg`` (one instance per configuration)."""
    return DRELayouts(cfg)


def lanes_beat_malformed(p, n, lanes: int, cmax: int):
    """A ``cluster_lanes`` beat ``p`` that breaks the layout's rules, ``n`` clusters of the
    row already in: ``base`` out of sequence, ``n`` of 0 or above ``lanes``, a short beat that
    is not the last, or a row longer than ``cmax`` clusters."""
    return (
        (p.base != n) | (p.n == 0) | (p.n > lanes) | ((p.n != lanes) & ~p.last) | (n + p.n > cmax)
    )
