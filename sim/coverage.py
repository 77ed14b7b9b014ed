"""Functional coverage: named bins per unit, hit by the cocotb benches' monitors (and the
protocol checkers), merged over runs and reported as JSON + Markdown with every missed bin.

Bins (``unit_bins``; ``C = max_clusters``, ``N = n_buckets``):

- ``hcu.decision``: the event of each checked result × the table occupancy the token saw
  (``0``, ``low`` 1..C/2, ``high`` C/2+1..C-1, ``full`` C); only the reachable pairs (a
  token creates below ``full``, is forced at ``full``, joins at 1..C).
- ``hcu.batch`` (``hcu_batch > 1``): the position of a token in its batch (``first``,
  ``inner`` when B > 2, ``last``) and ``joins_own_batch`` (joined a cluster founded earlier
  in its batch); from the no-stall runs, whose batches ``sim.cases.dre.hcu_timing`` knows.
- ``wtu.b_star`` (``0``, ``low`` 1..D/2, ``high`` D/2+1..D-1, ``deepest`` D, where D is
  the last bucket of nonzero weight in ``bucket_lut``: deeper buckets hold no mass, so no
  ``b*`` lands there), ``wtu.out_of_range`` (clusters whose bucket is past ``N``: ``none``,
  ``some``, ``all_but_one`` — the top cluster is always in range, so never all),
  ``wtu.coverage`` (``min`` one LSB, ``mid``, ``max`` 1.0): per checked summary.
- ``topk.*`` per checked summary of the top-k selector: ``row`` (clusters ``1``, ``mid``,
  ``max`` = C), ``k`` (``0``, ``partial`` below the row's clusters, ``all`` equal, ``over``
  past them), ``passes`` of its ``topk_k``-slot sorter (``1``, ``2``, ``3+``), ``ties``
  (``distinct`` scores, equal scores ``ties``, ``tie_at_cut``: the k-th and (k+1)-th best
  scores equal, so the lower id decides).
- ``quickselect.*`` per checked summary of the weighted quick-select: ``row`` (as top-k),
  ``selected`` (``one``, ``some``, ``all`` of a row of 2+), ``passes`` (partition passes
  ``1``, ``2-3``, ``4+``), ``zero_weight`` (clusters whose exact weight is 0, too far below
  the best score or of count 0: ``none``, ``some``, ``all_but_one``, ``all`` — no mass),
  ``ties`` (``distinct``, ``ties``) and ``coverage`` (as the WTU's).
- ``mac_array.*`` per block whose score beats all matched: ``rows`` (query rows ``1``,
  ``partial`` 2..R-1, ``full`` R = ``mac_rows``, ``over`` R+1: the extra row ignored),
  ``load`` (``rows``, ``columns``: loaded transposed, ``ArrayBlock.columns``),
  ``final_beat`` (the vectors' last beat ``full`` or ``partial``: ``n`` not a multiple of
  ``mac_cols``).
- ``tile_softmax.*`` per matched result: ``tile`` (``first``: m = -inf in, ``later``),
  ``masked`` lanes (``none``, ``some``, ``all``), ``rescale`` (the ``a`` that scales the
  old state: ``zero``, ``between``, ``one``).
- ``kvmu.bursts``: each checked AR burst, ``whole_run`` (a chunk's run in one burst),
  ``split_max_burst`` (cut at ``max_burst`` beats), ``split_4k`` (cut at a 4 KB boundary);
  ``kvmu.summary``: each checked selection summary, ``ok`` or ``error`` (an R beat of the
  selection answered SLVERR).
- ``core.status``: every error code of ``hw.core.Error`` on a checked status beat.
- ``core.context``: a ``SWITCH_CTX`` that loaded another context's kept tokens itself
  (``switch``) or found them prefetched (``prefetched``); a ``PREFETCH_CTX`` that moved
  them (``prefetch``); a ``PREFILL`` or ``QUERY`` that stored the active context's kept
  tokens (``clean``); a ``SWITCH_CTX``, ``RESET_CTX`` or ``PREFETCH_CTX`` refused
  (``BAD_ARG``).
- ``axi.<ch>`` (units with an AXI master): cycles AR/AW/W waited for READY, R beats
  waited for RVALID inside a burst (the slave's pauses), B waited for BREADY; ``0``, ``1``,
  ``2-3``, ``4+`` — from the protocol checker (``sim.kit.checkers``); not the core's B, whose
  BREADY is always high.

API: ``Coverage(bins)``, ``hit(group, bin)`` (``ValueError`` for an undefined one),
``merge``, ``missed``, ``save``/``load``; ``write_report(by_unit, out_dir)``. In cocotb,
``collector()`` is the process's ``Coverage`` (saved to ``DRE_COVERAGE`` at the end of each
test by the checker task). Command line: ``python -m sim.coverage [--run] [--sim S]
[--tag T] [--out build/coverage] [UNIT ...]`` runs the units' regressions (``RUNS``, with
``--run``) and merges the ``coverage.json`` ``run_unit`` leaves in their build directories
into ``<out>/coverage.json`` and ``<out>/coverage.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from golden.softmax import NEG_INF
from hw.config import HWConfig, preset

__all__ = [
    "Coverage",
    "collector",
    "hcu_occupancy_bin",
    "mac_array_block_bins",
    "main",
    "quickselect_row_bins",
    "tile_softmax_row_bins",
    "topk_row_bins",
    "unit_bins",
    "write_report",
    "wtu_bins",
]

WAIT_BINS = ("0", "1", "2-3", "4+")
#: The regressions a unit's coverage merges: (build tag, ``HWConfig.replace`` overrides) on
#: top of the preset — the HCU's batch runs of tests/sim/test_units_cocotb.py, and for the
#: KVMU a 1 KB token with 24-beat bursts, whose chunk runs are cut at 4 KB (with the tiny
#: preset's power-of-two chunks and 64-byte tokens no run reaches a 4 KB boundary).
RUNS: dict[str, list[tuple[str, dict]]] = {
    "hcu": [("", {}), ("b2", {"hcu_batch": 2}), ("b8", {"hcu_batch": 8})],
    "kvmu": [
        ("", {}),
        (
            "split4k",
            {
                "resv": {"head_dim": 256},
                "chunk_tokens": 8,
                "max_burst": 24,
                "kv_chunks": 64,
                "axi_data_bits": 256,
            },
        ),
    ],
}
#: AXI channels of each unit's master with pause bins (the checker's names, ``m_axi.<ch>``).
#: Not the core's B: its writer's ``done`` is always ready (``hw.core``), so BREADY never
#: waits there.
AXI_CHANNELS = {
    "kvmu": ("ar", "r"),
    "kv_writer": ("aw", "w", "b"),
    "core": ("ar", "r", "aw", "w"),
}


class Coverage:
    """Hit counts of named bins in groups; ``bins`` fixes which bins exist."""

    def __init__(self, bins: dict[str, list[str]] | None = None):
        self.counts: dict[str, dict[str, int]] = {
            g: dict.fromkeys(b, 0) for g, b in (bins or {}).items()
        }

    def hit(self, group: str, name: str, n: int = 1) -> None:
        try:
            self.counts[group][name] += n
        except KeyError:
            known = ", ".join(f"{g}: {list(b)}" for g, b in self.counts.items())
            raise ValueError(
                f"bin must be a defined bin, not {group}/{name} (defined: {known})"
            ) from None

    def merge(self, other: Coverage) -> Coverage:
        """Add ``other``'s counts (its bins join this one's)."""
        for g, bins in other.counts.items():
            mine = self.counts.setdefault(g, {})
            for b, n in bins.items():
                mine[b] = mine.get(b, 0) + n
        return self

    def missed(self) -> list[tuple[str, str]]:
        return [(g, b) for g, bins in self.counts.items() for b, n in bins.items() if n == 0]

    def total(self) -> tuple[int, int]:
        """(bins hit, bins defined)."""
        n = sum(len(b) for b in self.counts.values())
        return n - len(self.missed()), n

    def to_dict(self) -> dict:
        return {g: dict(b) for g, b in self.counts.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Coverage:
        cov = cls()
        cov.counts = {g: {b: int(n) for b, n in bins.items()} for g, bins in d.items()}
        return cov

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> Coverage:
        return cls.from_dict(json.loads(Path(path).read_text()))


# ---- bins -----------------------------------------------------------------------------------


def hcu_occupancy_bin(occupancy: int, max_clusters: int) -> str:
    if occupancy == 0:
        return "0"
    if occupancy == max_clusters:
        return "full"
    return "low" if occupancy <= max_clusters // 2 else "high"


def deepest_bucket(cfg: HWConfig) -> int:
    """The last bucket whose weight ``golden.resv.bucket_lut`` is not 0: the deepest ``b*``
    a row can reach (buckets past it hold no mass)."""
    from golden.resv import bucket_lut

    return int(np.flatnonzero(bucket_lut(cfg.resv))[-1])


def hcu_token_bins(cfg: HWConfig, stream, exp, *, exact: bool) -> list[list[tuple[str, str]]]:
    """The bins of each token of an HCU stream (``sim.cases.dre.HCUStream``) from its golden
    results (``hcu_expected``): its event × the occupancy it saw and, in a no-stall run
    (``exact``) with ``hcu_batch > 1``, whose batches ``hcu_timing`` knows, its position in
    its batch and whether it joined a cluster founded earlier in the batch."""
    from golden.resv import ClusterEvent
    from sim.cases.dre import hcu_timing

    names = {ClusterEvent.JOINED: "joined", ClusterEvent.CREATED: "created"}
    names[ClusterEvent.FORCED] = "forced"
    out, occ = [], 0
    for t in range(len(stream)):
        occ = 0 if stream.clear[t] else occ
        label = f"{names[ClusterEvent(int(exp.event[t]))]}@"
        out.append([("hcu.decision", label + hcu_occupancy_bin(occ, cfg.max_clusters))])
        occ += int(exp.event[t] == ClusterEvent.CREATED)
    if exact and cfg.hcu_batch > 1:
        for b in hcu_timing(cfg, stream, exp).batches:
            for i in range(b.tokens):
                t = b.first + i
                pos = "first" if i == 0 else "last" if i == cfg.hcu_batch - 1 else "inner"
                out[t].append(("hcu.batch", pos))
                if exp.event[t] == ClusterEvent.JOINED and exp.cluster[t] >= b.occupancy:
                    out[t].append(("hcu.batch", "joins_own_batch"))
    return out


def wtu_row_bins(cfg: HWConfig, row, exp) -> list[tuple[str, str]]:
    """The bins of one selector row (``sim.cases.dre.ScoreRow``) from its golden result."""
    out_of_range = int((exp.bucket >= cfg.resv.n_buckets).sum())
    return wtu_bins(cfg, exp.b_star, out_of_range, row.scores.size, row.coverage_q)


def wtu_bins(cfg: HWConfig, b_star: int, out_of_range: int, clusters: int, coverage_q: int):
    """The ``(group, bin)`` pairs of one WTU row."""
    deep = deepest_bucket(cfg)
    one = 1 << cfg.resv.coverage_frac_bits
    b = (
        "0"
        if b_star == 0
        else "deepest"
        if b_star == deep
        else "low"
        if b_star <= deep // 2
        else "high"
    )
    o = (
        "none"
        if out_of_range == 0
        else "all_but_one"
        if clusters > 1 and out_of_range == clusters - 1
        else "some"
    )
    c = "min" if coverage_q == 1 else "max" if coverage_q == one else "mid"
    return [("wtu.b_star", b), ("wtu.out_of_range", o), ("wtu.coverage", c)]


def row_length_bin(clusters: int, max_clusters: int) -> str:
    return "1" if clusters == 1 else "max" if clusters == max_clusters else "mid"


def coverage_bin(cfg: HWConfig, coverage_q: int) -> str:
    one = 1 << cfg.resv.coverage_frac_bits
    return "min" if coverage_q == 1 else "max" if coverage_q == one else "mid"


def topk_row_bins(cfg: HWConfig, row) -> list[tuple[str, str]]:
    """The bins of one top-k row (``sim.cases.dre.ScoreRow``: scores and ``k``)."""
    from hw.dre import topk_passes

    c, k = row.scores.size, int(row.k)
    s = np.sort(np.asarray(row.scores, np.int64))[::-1]
    passes = topk_passes(cfg, c, k)
    ties = (
        "tie_at_cut"
        if 0 < k < c and s[k - 1] == s[k]
        else "ties"
        if np.unique(s).size < c
        else "distinct"
    )
    return [
        ("topk.row", row_length_bin(c, cfg.max_clusters)),
        ("topk.k", "0" if k == 0 else "partial" if k < c else "all" if k == c else "over"),
        ("topk.passes", str(passes) if passes < 3 else "3+"),
        ("topk.ties", ties),
    ]


def quickselect_row_bins(cfg: HWConfig, row, exp) -> list[tuple[str, str]]:
    """The bins of one quick-select row from its golden result
    (``golden.quickselect.QuickSelection``)."""
    from golden.quickselect import exact_weights

    c, k, passes = row.scores.size, exp.selected.size, len(exp.pass_reads)
    zero = int((exact_weights(row.scores, row.counts, cfg.resv) == 0).sum())
    return [
        ("quickselect.row", row_length_bin(c, cfg.max_clusters)),
        ("quickselect.selected", "one" if k == 1 else "all" if k == c else "some"),
        ("quickselect.passes", "1" if passes <= 1 else "2-3" if passes <= 3 else "4+"),
        (
            "quickselect.zero_weight",
            "none"
            if zero == 0
            else "all"
            if zero == c
            else "all_but_one"
            if c > 1 and zero == c - 1
            else "some",
        ),
        ("quickselect.ties", "ties" if np.unique(row.scores).size < c else "distinct"),
        ("quickselect.coverage", coverage_bin(cfg, row.coverage_q)),
    ]


def mac_array_block_bins(cfg: HWConfig, block) -> list[tuple[str, str]]:
    """The bins of one MAC-array block (``sim.cases.datapath.ArrayBlock``)."""
    rows, n = block.queries.shape
    r = cfg.mac_rows
    return [
        (
            "mac_array.rows",
            "1" if rows == 1 else "over" if rows > r else "full" if rows == r else "partial",
        ),
        ("mac_array.load", "columns" if block.columns else "rows"),
        ("mac_array.final_beat", "partial" if n % cfg.mac_cols else "full"),
    ]


def tile_softmax_row_bins(row, a: int) -> list[tuple[str, str]]:
    """The bins of one tile-softmax row (``sim.benches.tb_tile_softmax.TileRow``) and its golden
    ``a`` (FP32 pattern)."""
    neg_inf = int(NEG_INF)
    masked = int((np.asarray(row.s) == neg_inf).sum())
    return [
        ("tile_softmax.tile", "first" if row.m == neg_inf else "later"),
        (
            "tile_softmax.masked",
            "none" if masked == 0 else "all" if masked == len(row.s) else "some",
        ),
        (
            "tile_softmax.rescale",
            "zero" if a & 0x7FFF_FFFF == 0 else "one" if a == 0x3F80_0000 else "between",
        ),
    ]


def unit_bins(unit: str, cfg: HWConfig) -> dict[str, list[str]]:
    """The coverage bins of ``unit`` at ``cfg`` (empty for units without any)."""
    from hw.core import Error

    bins: dict[str, list[str]] = {}
    if unit == "hcu":
        bins["hcu.decision"] = [
            "created@0",
            "created@low",
            "created@high",
            "joined@low",
            "joined@high",
            "joined@full",
            "forced@full",
        ]
        b = cfg.hcu_batch
        if b > 1:
            bins["hcu.batch"] = ["first", *(["inner"] if b > 2 else []), "last", "joins_own_batch"]
    elif unit in ("wtu", "wtu_grid"):
        bins["wtu.b_star"] = ["0", "low", "high", "deepest"]
        bins["wtu.out_of_range"] = ["none", "some", "all_but_one"]
        bins["wtu.coverage"] = ["min", "mid", "max"]
    elif unit == "topk":
        bins["topk.row"] = ["1", "mid", "max"]
        bins["topk.k"] = ["0", "partial", "all", "over"]
        most = -(-cfg.max_clusters // cfg.topk_k)  # passes of k = C = max_clusters
        bins["topk.passes"] = ["1", "2", "3+"][: min(most, 3)]
        bins["topk.ties"] = ["distinct", "ties", "tie_at_cut"]
    elif unit == "quickselect":
        bins["quickselect.row"] = ["1", "mid", "max"]
        bins["quickselect.selected"] = ["one", "some", "all"]
        bins["quickselect.passes"] = ["1", "2-3", "4+"]
        bins["quickselect.zero_weight"] = ["none", "some", "all_but_one", "all"]
        bins["quickselect.ties"] = ["distinct", "ties"]
        bins["quickselect.coverage"] = ["min", "mid", "max"]
    elif unit == "mac_array":
        r = cfg.mac_rows  # "1" is also the full block at R = 1; "partial" needs R > 2
        bins["mac_array.rows"] = [
            "1",
            *(["partial"] if r > 2 else []),
            *(["full"] if r > 1 else []),
        ]
        bins["mac_array.rows"].append("over")
        bins["mac_array.load"] = ["rows", "columns"]
        bins["mac_array.final_beat"] = ["full", "partial"] if cfg.mac_cols > 1 else ["full"]
    elif unit == "tile_softmax":
        bins["tile_softmax.tile"] = ["first", "later"]
        some = ["some"] if cfg.tile_tokens > 1 else []
        bins["tile_softmax.masked"] = ["none", *some, "all"]
        bins["tile_softmax.rescale"] = ["zero", "between", "one"]
    elif unit == "kvmu":
        bins["kvmu.bursts"] = ["whole_run", "split_max_burst", "split_4k"]
        bins["kvmu.summary"] = ["ok", "error"]
    elif unit == "core":
        bins["core.status"] = [e.name for e in Error]
        # SWITCH_CTX: a context stored and another loaded (its kept tokens by the switch
        # or prefetched before it); a PREFETCH_CTX that moved; a PREFILL or QUERY that
        # stored the active context's kept tokens (the clean); a command refused
        bins["core.context"] = ["switch", "prefetched", "prefetch", "clean", "refused"]
    for ch in AXI_CHANNELS.get(unit, ()):
        bins[f"axi.{ch}"] = list(WAIT_BINS)
    return bins


# ---- in cocotb ------------------------------------------------------------------------------

_COLLECTOR: Coverage | None = None


def collector() -> Coverage:
    """This simulator process's coverage (the DUT's bins at ``config_from_env()``)."""
    global _COLLECTOR
    if _COLLECTOR is None:
        import cocotb

        from sim.kit.cocotb_streams import config_from_env

        _COLLECTOR = Coverage(unit_bins(cocotb.top._name, config_from_env()))
    return _COLLECTOR


def save_collector(checkers=()) -> None:
    """Write the collector, with the checkers' AXI waits, to ``DRE_COVERAGE`` (if set)."""
    path = os.environ.get("DRE_COVERAGE", "").strip()
    if not path:
        return
    cov = Coverage().merge(collector())
    for chk in checkers:
        for name, waits in chk.waits.items():
            port, _, ch = name.rpartition(".")
            group = f"axi.{ch}"
            if port and group in cov.counts:
                for b, n in waits.items():
                    cov.hit(group, b, n)
    cov.save(path)


# ---- report ---------------------------------------------------------------------------------


def markdown(by_unit: dict[str, Coverage]) -> str:
    lines = ["# Functional coverage", ""]
    lines += ["| unit | bins hit | missed |", "|---|---:|---|"]
    for unit, cov in by_unit.items():
        hit, n = cov.total()
        miss = ", ".join(f"{g}/{b}" for g, b in cov.missed()) or "none"
        lines.append(f"| {unit} | {hit} of {n} | {miss} |")
    for unit, cov in by_unit.items():
        lines += ["", f"## {unit}", "", "| group | bin | hits |", "|---|---|---:|"]
        for g, bins in cov.counts.items():
            for b, n in bins.items():
                lines.append(f"| {g} | {b} | {n if n else '**missed**'} |")
    return "\n".join(lines) + "\n"


def write_report(by_unit: dict[str, Coverage], out_dir: Path | str) -> tuple[Path, Path]:
    """``coverage.json`` (per unit: bins, hits, missed) and ``coverage.md`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        unit: {
            "bins": cov.to_dict(),
            "hit": cov.total()[0],
            "defined": cov.total()[1],
            "missed": [f"{g}/{b}" for g, b in cov.missed()],
        }
        for unit, cov in by_unit.items()
    }
    js, md = out / "coverage.json", out / "coverage.md"
    js.write_text(json.dumps(doc, indent=1) + "\n")
    md.write_text(markdown(by_unit))
    return js, md


def runs(unit: str, prefix: str = "") -> list[tuple[str, dict]]:
    """``RUNS[unit]`` (one plain run by default), each build tag behind ``prefix``."""
    return [
        ("_".join(t for t in (prefix, tag) if t), overrides)
        for tag, overrides in RUNS.get(unit, [("", {})])
    ]


def collect(
    unit: str, sim: str, config: str = "tiny", prefix: str = ""
) -> tuple[Coverage | None, list[str]]:
    """Merge the ``coverage.json`` of the ``runs(unit)`` builds on ``sim``; also the tags
    that have none (not run yet)."""
    from sim.kit.runner import build_dir

    cov, absent = None, []
    for tag, _ in runs(unit, prefix):
        path = build_dir(unit, sim, config, tag) / "coverage.json"
        if path.exists():
            cov = (cov or Coverage()).merge(Coverage.load(path))
        else:
            absent.append(tag or config)
    return cov, absent


def main(argv: list[str] | None = None) -> int:
    from sim.kit.runner import SIMULATORS, UNIT_TESTBENCH, run_unit

    ap = argparse.ArgumentParser(
        prog="python -m sim.coverage", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("units", nargs="*", help="units (default: every unit with bins)")
    ap.add_argument("--sim", default="verilator", help="simulator (icarus, verilator)")
    ap.add_argument("--run", action="store_true", help="run the units' regressions first")
    ap.add_argument("--config", default="tiny", help="preset of --run (default tiny)")
    ap.add_argument("--out", default="build/coverage", help="report directory")
    ap.add_argument("--tag", default="", help="build tag prefix (own build directories)")
    args = ap.parse_args(argv)
    if args.sim not in SIMULATORS:
        ap.error(f"--sim must be one of {', '.join(SIMULATORS)}, not {args.sim!r}")
    try:
        cfg = preset(args.config)
    except ValueError as exc:
        ap.error(f"--config: {exc}")
    with_bins = [u for u in UNIT_TESTBENCH if unit_bins(u, cfg)]
    units = args.units or with_bins
    for u in units:
        if u not in UNIT_TESTBENCH:
            ap.error(f"UNIT must be one of {', '.join(UNIT_TESTBENCH)}, not {u!r}")
    by_unit: dict[str, Coverage] = {}
    for u in units:
        if args.run:
            for tag, overrides in runs(u, args.tag):
                run_unit(u, args.sim, config=args.config, tag=tag, overrides=overrides)
        cov, absent = collect(u, args.sim, args.config, args.tag)
        if absent:
            print(f"{u}: no coverage of run(s) {', '.join(absent)} (use --run)", file=sys.stderr)
        if cov is not None:
            by_unit[u] = cov
    if not by_unit:
        return 1
    js, md = write_report(by_unit, args.out)
    for u, cov in by_unit.items():
        hit, n = cov.total()
        miss = ", ".join(f"{g}/{b}" for g, b in cov.missed()) or "none"
        print(f"{u}: {hit} of {n} bins hit; missed: {miss}")
    print(f"report: {js}, {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
