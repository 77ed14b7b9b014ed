"""The core's chunks of ``make soak``: seeded host programs through the cocotb regression.

    python -m sim.soak_core --seed S [--queries 500] [--sim verilator|icarus]
        [--config tiny] [--set F=V] [-o build/soak_core]

One chunk is one run of ``sim.benches.tb_core``'s ``core_program`` on the generated core Verilog:
a synthetic host program (``sim.cases.core.soak_program``: its shape — 4..8 frames of 4, 8
or 12 tokens in 1..3 contexts, frames from the third on prefilled in 2-head blocks, half
the programs of several contexts visiting them in turn with ``SWITCH_CTX`` — and its keys,
values and queries drawn from ``seed``) with at least ``--queries`` decode
queries, every output vector, status and work counter compared bit for bit with
``golden.core.CoreModel``, the protocol checkers attached, and a stall profile drawn from
the seed (``CORE_PROFILES``: the host's idle and back-pressure probability, which also
pauses each channel of the AXI RAM). The core has no C++ harness, so its chunks run at
cocotb's speed; the design is built once, optimised (``sim_build/core/<sim>_<config>_soak``),
and each chunk runs in its own directory (``<out>/<index>_<seed>/``: ``sim.log``,
``results.xml``, ``report.json``), so Dask workers share the build. Transactions are the
decode queries; the chunk's cycles are the sum of its commands' cycles (command handshake to
status handshake); a chunk of ``N`` transactions runs at least ``N`` decode queries (the
program spreads them evenly over its frames and contexts, rounding up).
This command runs one chunk: it is the replay command ``sim.soak`` prints for a failing core
chunk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hw.config import parse_settings
from sim.coverage import Coverage
from sim.fast.run import Verdict
from sim.kit.cli import add_target, int_at_least, target

__all__ = ["CORE_PROFILES", "CORE_UNIT", "build_core", "core_chunk", "core_profile", "main"]

CORE_UNIT = "core"

#: Stall profiles of the core's chunks: (host idle, back-pressure and AXI pause
#: probability), the arguments of ``sim.benches.tb_core.Host``.
CORE_PROFILES: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "light": (0.1, 0.1),
    "heavy": (0.3, 0.3),
    "starved": (0.6, 0.1),
    "backpressure": (0.1, 0.6),
}

#: The build's tag: the soak's core is built optimised, apart from the regressions' build.
SOAK_TAG = "soak"

#: Environment variables the cocotb runner would let override a chunk's own settings.
_CHUNK_ENV = ("SEED", "TRACE", "DRE_IDLE", "DRE_STALL", "CORE_QUERIES", "CORE_REPORT")


@contextlib.contextmanager
def _own_env():
    """Hide the variables the cocotb runner would let override a chunk's own settings (a
    user's ``SEED``, ``TRACE``, ...) for the duration of a run, and restore them after."""
    saved = {k: os.environ.pop(k) for k in _CHUNK_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def core_profile(seed: int) -> str:
    """The stall profile of ``seed`` (a seeded draw among ``CORE_PROFILES``)."""
    names = sorted(CORE_PROFILES)
    return names[int(np.random.default_rng([seed, 0xC02E]).integers(len(names)))]


def replay_command(seed: int, queries: int, config: str, settings: list[str], sim: str) -> str:
    """The one-line command that reruns one core chunk."""
    cmd = ["python", "-m", "sim.soak_core", "--seed", str(seed), "--queries", str(queries)]
    cmd += ["--config", config]
    for s in settings:
        cmd += ["--set", s]
    return shlex.join([*cmd, "--sim", sim])


def build_core(sim: str, config: str, settings: list[str], log=print) -> None:
    """Build the soak's core once (optimised) and check it on the one-token test, before
    chunks share the build."""
    from sim.kit.runner import run_unit

    log(f"[sim.soak_core] building the core for {sim} (optimised; a few minutes the first time)")
    with _own_env():
        run_unit(
            CORE_UNIT,
            sim,
            config=config,
            overrides=parse_settings(settings),
            tag=SOAK_TAG,
            testcase="core_single_token",
            optimize=True,
        )


def core_chunk(
    c: dict[str, Any], config: str, settings: list[str], sim: str, out: Path
) -> dict[str, Any]:
    """Run one planned core chunk (``c``: unit, index, seed, transactions) → its verdict as a
    dict, with the functional coverage of the run (``coverage``) when it passed."""
    from sim.kit.runner import run_unit

    seed, queries = c["seed"], c["transactions"]
    profile = core_profile(seed)
    idle, stall = CORE_PROFILES[profile]
    rdir = Path(out).resolve() / f"{c['index']}_{seed}"
    report = rdir / "report.json"
    rdir.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    env = {
        "SEED": str(seed),
        "CORE_QUERIES": str(queries),
        "DRE_IDLE": str(idle),
        "DRE_STALL": str(stall),
        "CORE_REPORT": str(report),
    }
    t0 = time.perf_counter()
    first, seconds = "", 0.0
    try:
        with _own_env():
            res = run_unit(
                CORE_UNIT,
                sim,
                config=config,
                overrides=parse_settings(settings),
                env=env,
                tag=SOAK_TAG,
                testcase="core_program",
                optimize=True,
                run_dir=rdir,
            )
        seconds = res.test_seconds
    except AssertionError as exc:
        first = str(exc).splitlines()[0]
    wall = time.perf_counter() - t0
    records, failures = [], []
    if report.is_file():
        doc = json.loads(report.read_text())
        records, failures = doc["records"], doc["failures"]
        first = first or (failures[0] if failures else "")
    decoded = sum(1 for r in records if r["kind"] == "decode" and r.get("match"))
    cycles = sum(r.get("cycles", 0) for r in records if r["kind"] != "counters")
    passed = not first and not failures and decoded >= queries
    if not first and decoded < queries:
        first = f"{decoded} decode queries matched, expected at least {queries}"
    seconds = seconds or wall
    verdict = Verdict(
        unit=CORE_UNIT,
        seed=seed,
        profile=profile,
        passed=passed,
        transactions=queries,
        cycles=cycles,
        mismatches=len(failures) or int(not passed),
        seconds=seconds,
        cycles_per_s=cycles / seconds if seconds else 0.0,
        first=first,
        line=(
            f"CORE {'PASS' if passed else 'FAIL'} seed={seed} profile={profile} "
            f"decode={decoded} cycles={cycles} log={rdir / 'sim.log'}"
            + (f" first: {first}" if first else "")
        ),
        wall_seconds=wall,
        sim=sim,
    )
    result = {**c, **verdict.as_dict()}
    if passed and (rdir / "coverage.json").is_file():
        result["coverage"] = Coverage.load(rdir / "coverage.json").to_dict()
    return result


def main(argv: list[str] | None = None) -> int:
    from sim.fast.run import FAST_SIMULATORS

    ap = argparse.ArgumentParser(prog="python -m sim.soak_core", description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int_at_least(0), required=True, help="the chunk's seed")
    ap.add_argument(
        "--queries", type=int_at_least(1), default=500, help="decode queries (default 500)"
    )
    add_target(ap, FAST_SIMULATORS)
    ap.add_argument("-o", "--out", type=Path, default=Path("build/soak_core"))
    args = ap.parse_args(argv)
    target(ap, args, FAST_SIMULATORS)
    build_core(args.sim, args.config, args.set)
    c = {"unit": CORE_UNIT, "index": 0, "seed": args.seed, "transactions": args.queries}
    r = core_chunk(c, args.config, args.set, args.sim, args.out)
    print(r["line"])
    print(
        f"soak_core: {'PASS' if r['passed'] else 'FAIL'}: {r['transactions']} decode queries, "
        f"{r['cycles']} cycles, {r['cycles_per_s'] / 1e3:.1f} K cycles/s, "
        f"{r['wall_seconds']:.0f} s"
    )
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
