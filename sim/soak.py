"""``make soak``: a million randomized transactions per unit through the fast harness.

    python -m sim.soak [--units hcu,wtu,...] [--transactions 1000000] [--chunk 20000]
        [--seed N] [--config tiny] [--set F=V] [--workers 2 | --scheduler ADDR]
        [-o build/soak] [--fresh] [--sim verilator|icarus] [--core-queries 10000]
        [--core-chunk 500]

Units: every unit of ``sim.fast.FAST_PORTS`` by default (``hcu``, ``wtu``, ``wtu_grid``,
``topk``, ``quickselect``, ``kvmu``) and the core. ``--sim icarus`` runs the chunks on
Icarus through the generated self-checking testbench of ``sim.fast.icarus`` instead of the
C++ Verilator harness. The core (``core``) has no such harness: its chunks are seeded host
programs run by its cocotb regression on either simulator (``sim.soak_core``),
``--core-queries`` decode queries in chunks of ``--core-chunk``, with its coverage bins from
the bench. The other units' work is cut into chunks of ``--chunk`` transactions (HCU
tokens, selector rows, KVMU selections); chunk ``i`` of a unit runs with seed ``base + k *
10**6 + i`` (``k``: the unit's place in ``SOAK_UNITS``), which draws its golden stimulus
(``sim.fast.stimulus``: the HCU stream's redundancy, sources and contexts; the rows' sizes,
score kinds and top-k's k; the KVMU's contexts, allocations, selections and memory image)
and its stall profile
(``profile_for``: none, light, heavy, starved, back-pressure, bursts of up to 300 cycles,
bursts of up to 5000 cycles). The base seed is ``--seed``, else the one of the interrupted
run being resumed, else a random one: every run soaks new seeds unless asked to replay. Every
chunk's seed is printed; a failing chunk is reported with the one-line command that replays
it (``python -m sim.fast UNIT --seed S --transactions N --config C``; for the core
``python -m sim.soak_core --seed S --queries N ...``).

Chunks run on Dask (``golden.sweep.dask_client``: a ``LocalCluster`` of ``--workers``
processes, or the scheduler at ``--scheduler ADDR``; ``--workers 0`` runs them in this
process). The harness is built once before the chunks are handed out. Resumable: every
finished chunk is written to ``<out>/state.json`` at once, and a rerun with the same
parameters skips the finished ones (``--fresh`` starts over). Report: ``<out>/report.json``
and ``report.md``; the functional coverage of the passed chunks (``sim.coverage`` bins of
the HCU, WTU and KVMU units, computed from each chunk's golden data) in ``<out>/coverage.json``
and ``coverage.md``. ``--coverage`` builds the harnesses with Verilator line and toggle
coverage: each chunk writes its counts to ``<out>/vcov/<unit>/<index>_<seed>.dat`` (a shared
file system is assumed: a local cluster, or workers that see ``<out>``) and the merged
summary goes to ``<out>/verilator_coverage.json``. Exit 0 when every chunk passed, 1
otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from hw.config import apply_settings, parse_settings, preset
from sim.coverage import Coverage, hcu_token_bins, unit_bins, write_report
from sim.fast.build import FAST_PORTS, build_harness
from sim.fast.icarus import build_icarus
from sim.fast.run import FAST_SIMULATORS, replay_command, run_chunk
from sim.kit.cli import add_target, int_at_least, target
from sim.soak_core import CORE_UNIT, build_core, core_chunk
from sim.soak_core import replay_command as core_replay_command
from sim.verilator_coverage import merge as vcov_merge
from sim.verilator_coverage import summary as vcov_summary

__all__ = ["SOAK_VERSION", "main", "plan", "soak", "soak_chunk"]

#: Version of the chunk computation; bump it to invalidate saved states.
SOAK_VERSION = 1

#: The report's name of each simulator's harness.
SIM_LABEL = {
    "verilator": "verilator (sim.fast C++ harness)",
    "icarus": "icarus (sim.fast.icarus Verilog testbench)",
}


#: Seed distance between units: chunk ``i`` of the ``k``-th unit of ``FAST_PORTS`` runs
#: with seed ``base + k * UNIT_SEED_STRIDE + i`` (units draw different stall profiles).
UNIT_SEED_STRIDE = 1_000_000


#: Every unit a soak can run, in seed order: the fast harness's, then the core.
SOAK_UNITS = (*FAST_PORTS, CORE_UNIT)


def plan(
    units: list[str],
    transactions: int,
    chunk: int,
    base: int,
    core: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """The chunks of a soak: per unit, ``ceil(transactions / chunk)`` chunks of ``chunk``
    transactions (the last one shorter), chunk ``i`` of the ``k``-th unit of ``SOAK_UNITS``
    with seed ``base + k * UNIT_SEED_STRIDE + i``; the core's (transactions, chunk) are
    ``core`` (default: the same as the other units')."""
    out = []
    for unit in units:
        first = base + SOAK_UNITS.index(unit) * UNIT_SEED_STRIDE
        total, size = core if unit == CORE_UNIT and core else (transactions, chunk)
        for i, lo in enumerate(range(0, total, size)):
            n = min(size, total - lo)
            out.append({"unit": unit, "index": i, "seed": first + i, "transactions": n})
    return out


def chunk_key(c: dict[str, Any]) -> str:
    return f"{c['unit']}:{c['index']}:{c['seed']}:{c['transactions']}"


def vcov_path(out: Path, c: dict[str, Any]) -> Path:
    """Where chunk ``c`` writes its Verilator coverage counts (``--coverage``)."""
    return out / "vcov" / c["unit"] / f"{c['index']}_{c['seed']}.dat"


def soak_chunk(
    c: dict[str, Any],
    config: str,
    settings: list[str],
    vcov: Path | None = None,
    sim: str = "verilator",
    out: Path | None = None,
) -> dict[str, Any]:
    """Run one planned chunk (in a Dask worker or in this process) → its verdict as a dict,
    with the ``sim.coverage`` bins of its transactions when it passed (``coverage``).
    ``vcov``: a coverage-built harness writes its Verilator line/toggle counts there.
    ``sim``: one of ``sim.fast.run.FAST_SIMULATORS``. The core's chunks
    (``sim.soak_core``) run in ``<out>/core/``."""
    if c["unit"] == CORE_UNIT:
        return core_chunk(c, config, settings, sim, Path(out or "build/soak") / CORE_UNIT)
    cfg = apply_settings(preset(config), parse_settings(settings))
    if vcov is not None:
        vcov.parent.mkdir(parents=True, exist_ok=True)
    verdict, chunk = run_chunk(
        c["unit"], cfg, c["transactions"], c["seed"], config=config, coverage=vcov, sim=sim
    )
    out = {**c, **verdict.as_dict()}
    if verdict.passed:
        out["coverage"] = chunk_coverage(c["unit"], cfg, chunk, exact=verdict.profile == "none")
    return out


def chunk_coverage(unit: str, cfg, chunk, *, exact: bool) -> dict[str, dict[str, int]]:
    """The functional coverage of a passed chunk, from its golden data (every output matched
    it bit for bit): HCU decisions (and batch positions when ``exact``: no stalls), selector
    rows (WTU, top-k, quick-select), KVMU burst splits (not the ``axi.*`` pause bins, which
    only the cocotb checkers measure)."""
    bins = unit_bins(unit, cfg)
    # The harness measures no AXI pause bins (``axi.*``: the cocotb checkers' waits).
    cov = Coverage({g: b for g, b in bins.items() if not g.startswith("axi.")})
    if unit == "hcu":
        g = chunk.golden
        for bins in hcu_token_bins(cfg, g["stream"], g["expected"], exact=exact):
            for group, name in bins:
                cov.hit(group, name)
    else:
        for group, name in chunk.golden.get("bins", []):
            cov.hit(group, name)
        for (group, name), n in chunk.golden.get("bin_counts", {}).items():
            cov.hit(group, name, n)
    return cov.to_dict()


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "version": SOAK_VERSION,
        "units": args.units,
        "chunk": args.chunk,
        "config": args.config,
        "settings": args.set,
        "sim": args.sim,
        # The query count is not a parameter (as the units' transaction counts are not):
        # growing it keeps the chunks already run.
        "core_chunk": args.core_chunk if CORE_UNIT in args.units else None,
    }


def _work(units: list[str], transactions: int, chunk: int, core) -> str:
    """What a soak runs, in words: the units' transactions and the core's queries."""
    work = []
    if any(u != CORE_UNIT for u in units):
        work.append(f"{transactions} transactions per unit in chunks of {chunk}")
    if CORE_UNIT in units:
        work.append(f"the core {core[0]} decode queries in chunks of {core[1]}")
    return "; ".join(work)


def _simulator(sim: str, units: list[str]) -> str:
    """The report's name of what ran the chunks."""
    names = [SIM_LABEL[sim]] if any(u != CORE_UNIT for u in units) else []
    if CORE_UNIT in units:
        names.append(f"{sim} (the core: its cocotb regression, sim.soak_core)")
    return ", ".join(names)


def _load_state(path: Path, params: dict[str, Any], fresh: bool) -> dict[str, Any]:
    if fresh or not path.is_file():
        return {"params": params, "chunks": {}}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError:
        print(f"soak: {path} is not valid JSON; starting afresh", flush=True)
        return {"params": params, "chunks": {}}
    if state.get("params") != params:
        print(f"soak: {path} holds a soak with other parameters; starting afresh", flush=True)
        return {"params": params, "chunks": {}}
    return state


def _save(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def _rate(cycles_per_s: float) -> str:
    """A simulation rate in the unit that shows it (the core on Icarus runs ~300 cycles/s)."""
    if not cycles_per_s:
        return "-"
    if cycles_per_s >= 1e5:
        return f"{cycles_per_s / 1e6:.2f} M cycles/s"
    return f"{cycles_per_s / 1e3:.2f} K cycles/s"


def _progress(i: int, total: int, r: dict[str, Any], done: dict[str, int]) -> str:
    status = "PASS" if r["passed"] else f"FAIL ({r['mismatches']} mismatches)"
    return (
        f"soak: [{i}/{total}] {r['unit']} seed={r['seed']} profile={r['profile']} {status}: "
        f"{r['transactions']} transactions, {r['cycles']} cycles, "
        f"{_rate(r['cycles_per_s'])}, {r['wall_seconds']:.2f} s; "
        f"{r['unit']} total {done[r['unit']]}"
    )


def soak(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.json"
    params = _params(args)
    state = _load_state(state_path, params, args.fresh)
    if args.seed is not None:
        base, source = args.seed, "--seed"
        if state.get("base_seed") not in (None, base):
            state = {"params": params, "chunks": {}}
    elif state.get("base_seed") is not None:
        base, source = state["base_seed"], f"resumed from {state_path}"
    else:
        base, source = secrets.randbelow(2**31), "random"
    state["base_seed"] = base
    core = (args.core_queries, args.core_chunk)
    chunks = plan(args.units, args.transactions, args.chunk, base, core)
    results = {k: v for k, v in state["chunks"].items() if k in {chunk_key(c) for c in chunks}}
    todo = [c for c in chunks if chunk_key(c) not in results]
    work = _work(args.units, args.transactions, args.chunk, core)
    print(
        f"soak: {', '.join(args.units)} at config {' '.join([args.config, *args.set])}: "
        f"{work}; {len(chunks)} chunks, base seed {base} ({source}); "
        f"{len(results)} chunks done, {len(todo)} to run",
        flush=True,
    )
    cfg = apply_settings(preset(args.config), parse_settings(args.set))
    for unit in args.units:
        if unit == CORE_UNIT:
            if any(c["unit"] == CORE_UNIT for c in todo):
                build_core(args.sim, args.config, args.set, log=lambda s: print(s, flush=True))
            continue
        if args.sim == "icarus":
            build_icarus(unit, cfg, config=args.config, log=lambda s: print(s, flush=True))
            continue
        build_harness(
            unit,
            cfg,
            config=args.config,
            log=lambda s: print(s, flush=True),
            coverage=args.coverage,
        )

    def vcov(c: dict[str, Any]) -> Path | None:
        return vcov_path(out.resolve(), c) if args.coverage and c["unit"] != CORE_UNIT else None

    done = {u: 0 for u in args.units}
    for r in results.values():
        done[r["unit"]] += r["transactions"]
    t0 = time.perf_counter()

    def record(i: int, r: dict[str, Any]) -> None:
        results[chunk_key(r)] = r
        state["chunks"] = results
        _save(state_path, state)
        done[r["unit"]] += r["transactions"]
        print(_progress(i, len(todo), r, done), flush=True)
        if not r["passed"]:
            print(f"soak: FAIL {r['line']}", flush=True)
            print(f"soak: replay: {_replay(r, args)}", flush=True)

    if todo and args.workers == 0 and not args.scheduler:
        for i, c in enumerate(todo, 1):
            record(i, soak_chunk(c, args.config, args.set, vcov(c), args.sim, out.resolve()))
    elif todo:
        from distributed import as_completed

        from golden.sweep import dask_client

        client, cluster = dask_client(args.scheduler, max(args.workers, 1))
        try:
            futures = [
                client.submit(
                    soak_chunk,
                    c,
                    args.config,
                    args.set,
                    vcov(c),
                    args.sim,
                    out.resolve(),
                    pure=False,
                )
                for c in todo
            ]
            for i, fut in enumerate(as_completed(futures), 1):
                record(i, fut.result())
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    _save(state_path, state)
    report = _report(args, base, [results[chunk_key(c)] for c in chunks], time.perf_counter() - t0)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.md").write_text(_markdown(report))
    by_unit: dict[str, Coverage] = {}
    for c in chunks:
        r = results[chunk_key(c)]
        if "coverage" in r:
            by_unit.setdefault(r["unit"], Coverage()).merge(Coverage.from_dict(r["coverage"]))
    if by_unit:
        js, _ = write_report(by_unit, out)
        for u, cov in by_unit.items():
            hit, n = cov.total()
            miss = ", ".join(f"{g}/{b}" for g, b in cov.missed()) or "none"
            print(f"soak: coverage {u}: {hit} of {n} bins hit; missed: {miss}", flush=True)
        print(f"soak: coverage report {js} (and coverage.md)", flush=True)
    if args.coverage:
        _verilator_coverage(out, chunks, args.units)
    return report


def _verilator_coverage(out: Path, chunks: list[dict[str, Any]], units: list[str]) -> None:
    """Merge the chunks' Verilator counts per unit into ``<out>/verilator_coverage.json``."""
    doc = {}
    for unit in units:
        paths = [vcov_path(out, c) for c in chunks if c["unit"] == unit]
        found = [p for p in paths if p.exists()]
        if not found:
            continue
        summ = vcov_summary(vcov_merge(found))
        doc[unit] = {"chunks": len(found), "of_chunks": len(paths), **summ}
        kinds = ", ".join(
            f"{k} {t['hit']} of {t['points']} ({t['percent']} %)" for k, t in summ["types"].items()
        )
        print(f"soak: Verilator coverage {unit} ({len(found)} chunks): {kinds}", flush=True)
    (out / "verilator_coverage.json").write_text(json.dumps(doc, indent=1) + "\n")


def _replay(r: dict[str, Any], args: argparse.Namespace) -> str:
    if r["unit"] == CORE_UNIT:
        return core_replay_command(r["seed"], r["transactions"], args.config, args.set, args.sim)
    return replay_command(r["unit"], r["seed"], r["transactions"], args.config, args.set, args.sim)


def _report(
    args: argparse.Namespace, base: int, rows: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    units = {}
    for unit in args.units:
        mine = [r for r in rows if r["unit"] == unit]
        harness_s = sum(r["seconds"] for r in mine)
        cycles = sum(r["cycles"] for r in mine)
        profiles: dict[str, int] = {}
        for r in mine:
            profiles[r["profile"]] = profiles.get(r["profile"], 0) + 1
        units[unit] = {
            "transactions": sum(r["transactions"] for r in mine),
            "chunks": len(mine),
            "cycles": cycles,
            "mismatches": sum(r["mismatches"] for r in mine),
            "failed_chunks": sum(not r["passed"] for r in mine),
            "harness_seconds": round(harness_s, 3),
            "cycles_per_s": round(cycles / harness_s) if harness_s else None,
            "chunk_wall_seconds": round(sum(r["wall_seconds"] for r in mine), 3),
            "seeds": [r["seed"] for r in mine],
            "profiles": profiles,
            "failures": [
                {"seed": r["seed"], "first": r["first"], "replay": _replay(r, args)}
                for r in mine
                if not r["passed"]
            ],
        }
    key = hashlib.sha256(json.dumps(_params(args), sort_keys=True).encode()).hexdigest()[:12]
    return {
        "params": _params(args),
        "params_key": key,
        "transactions_per_unit": args.transactions,
        "core": [args.core_queries, args.core_chunk] if CORE_UNIT in args.units else None,
        "base_seed": base,
        "passed": all(u["failed_chunks"] == 0 for u in units.values()),
        "seconds_this_run": round(seconds, 1),
        "simulator": _simulator(args.sim, args.units),
        "units": units,
    }


def _markdown(rep: dict[str, Any]) -> str:
    p = rep["params"]
    md = [
        "# Soak (python -m sim.soak)",
        "",
        "Every transaction's outputs compared bit for bit with the golden model by the fast "
        "harness (sim.fast); harness rate: simulated cycles over the harness's own "
        "time (golden and file writing excluded).",
        "",
        f"Config `{p['config']}`{''.join(f' `--set {s}`' for s in p['settings'])}, "
        f"{_work(p['units'], rep['transactions_per_unit'], p['chunk'], rep['core'])}, "
        f"base seed {rep['base_seed']}, simulator: {rep['simulator']}. "
        f"Verdict: **{'PASS' if rep['passed'] else 'FAIL'}**.",
        "",
        "| unit | transactions | chunks | cycles | mismatches | failed chunks | harness "
        "rate | profiles |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    if rep["core"]:
        md[4:4] = [
            "The core's transactions are decode queries, run by its cocotb regression "
            "(sim.soak_core): its rate is cocotb's.",
            "",
        ]
    for unit, u in rep["units"].items():
        prof = ", ".join(f"{k} {v}" for k, v in sorted(u["profiles"].items()))
        md.append(
            f"| {unit} | {u['transactions']} | {u['chunks']} | {u['cycles']} | "
            f"{u['mismatches']} | {u['failed_chunks']} | {_rate(u['cycles_per_s'])} | {prof} |"
        )
    for unit, u in rep["units"].items():
        seeds = u["seeds"]
        md += ["", f"{unit} seeds: {seeds[0]}..{seeds[-1]}" if seeds else f"{unit}: no chunks"]
        for f in u["failures"]:
            md.append(f"- FAIL seed {f['seed']}: {f['first']}; replay: `{f['replay']}`")
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--units", help="comma list (default: every unit the simulator runs)")
    ap.add_argument(
        "--transactions", type=int_at_least(1), default=10**6, help="per unit (default 10**6)"
    )
    ap.add_argument(
        "--chunk", type=int_at_least(1), default=20000, help="transactions per chunk (20000)"
    )
    ap.add_argument("--seed", type=int_at_least(0), help="base seed (default: resumed or random)")
    add_target(ap, FAST_SIMULATORS)
    ap.add_argument(
        "--workers", type=int_at_least(0), default=2, help="LocalCluster workers; 0: no Dask"
    )
    ap.add_argument("--scheduler", help="Dask scheduler address (default: a LocalCluster)")
    ap.add_argument("-o", "--out", type=Path, default=Path("build/soak"))
    ap.add_argument("--fresh", action="store_true", help="ignore a saved state")
    ap.add_argument(
        "--coverage",
        action="store_true",
        help="Verilator line/toggle coverage: <out>/verilator_coverage.json",
    )
    ap.add_argument(
        "--core-queries",
        type=int_at_least(1),
        default=10**4,
        help="the core's decode queries (10**4)",
    )
    ap.add_argument(
        "--core-chunk", type=int_at_least(1), default=500, help="core queries per chunk (500)"
    )
    args = ap.parse_args(argv)
    target(ap, args, FAST_SIMULATORS)
    if args.sim == "icarus" and args.coverage:
        ap.error("--coverage needs --sim verilator (Verilator's line and toggle coverage)")
    runnable = list(SOAK_UNITS)
    args.units = [u for u in (args.units or ",".join(runnable)).split(",") if u]
    for u in args.units:
        if u not in runnable:
            ap.error(f"--units must list units of {', '.join(runnable)}, not {u!r}")
    if not args.units:
        ap.error("--units must name at least one unit")
    t0 = time.perf_counter()
    rep = soak(args)
    for unit, u in rep["units"].items():
        print(
            f"soak: {unit}: {u['transactions']} transactions in {u['chunks']} chunks, "
            f"{u['cycles']} cycles, {u['mismatches']} mismatches, {u['failed_chunks']} failed "
            f"chunks; harness {_rate(u['cycles_per_s'])}"
        )
        for f in u["failures"]:
            print(f"soak: {unit} FAIL seed {f['seed']}: {f['first']}\n  replay: {f['replay']}")
    print(
        f"soak: {'PASS' if rep['passed'] else 'FAIL'} in {time.perf_counter() - t0:.0f} s -> "
        f"{args.out}/report.md"
    )
    return 0 if rep["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
