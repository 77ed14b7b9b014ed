"""Run one chunk through the fast harness and read its verdict.

``run_chunk`` builds the harness (``sim.fast.build``; on Icarus the generated testbench of
``sim.fast.icarus``), writes the chunk's golden files (``sim.fast.stimulus``), runs it with
the seed and the stall profile and parses its one-line verdict into a ``Verdict``.
``replay_command(...)`` is the one-line command that reruns it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from hw.config import HWConfig
from sim.fast.build import FAST_PORTS, build_harness
from sim.fast.icarus import build_icarus, run_icarus, write_phases
from sim.fast.stimulus import Chunk, Profile, make_chunk, profile_for, write_chunk

__all__ = [
    "FAST_SIMULATORS",
    "Verdict",
    "replay_command",
    "run_chunk",
    "run_harness",
    "run_prepared",
]

#: The simulators the fast harness runs on: the C++ Verilator harness, the Icarus testbench.
FAST_SIMULATORS = ("verilator", "icarus")

_LINE = re.compile(
    r"FAST (?P<status>PASS|FAIL) unit=(?P<unit>\S+) seed=(?P<seed>\d+) "
    r"transactions=(?P<transactions>\d+) cycles=(?P<cycles>\d+) "
    r"mismatches=(?P<mismatches>\d+) seconds=(?P<seconds>[\d.]+) "
    r"cycles_per_s=(?P<cycles_per_s>\d+)(?: first: (?P<first>.*))?$"
)


@dataclass(frozen=True)
class Verdict:
    """The harness's verdict on one chunk (``line``: its output line as printed)."""

    unit: str
    seed: int
    profile: str
    passed: bool
    transactions: int
    cycles: int
    mismatches: int
    seconds: float
    cycles_per_s: float
    first: str
    line: str
    #: wall time of the whole chunk: golden, files, harness
    wall_seconds: float = 0.0
    #: the simulator (``FAST_SIMULATORS``)
    sim: str = "verilator"

    def as_dict(self) -> dict:
        return asdict(self)


def replay_command(
    unit: str,
    seed: int,
    transactions: int,
    config: str,
    settings: list[str] | None = None,
    sim: str = "verilator",
) -> str:
    """The one-line command that reruns one chunk."""
    cmd = ["python", "-m", "sim.fast", unit, "--seed", str(seed)]
    cmd += ["--transactions", str(transactions), "--config", config]
    for s in settings or []:
        cmd += ["--set", s]
    if sim != "verilator":
        cmd += ["--sim", sim]
    return shlex.join(cmd)


def run_harness(
    binary: Path,
    directory: Path,
    *,
    seed: int,
    profile: Profile,
    chunk: Chunk,
    times: bool,
    coverage: Path | None = None,
) -> tuple[int, str]:
    """(return code, stdout) of the harness on the files in ``directory``; ``coverage``: the
    file the (coverage-built) harness writes its Verilator coverage counts to."""
    cmd = [str(binary), str(directory), "--seed", str(seed), *profile.args()]
    cmd += ["--drain", str(chunk.drain), "--timeout", str(chunk.timeout + 4 * profile.burst_max)]
    if times:
        cmd.append("--times")
    if coverage is not None:
        cmd += ["--coverage", str(coverage)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def run_chunk(
    unit: str,
    cfg: HWConfig,
    transactions: int,
    seed: int,
    *,
    config: str = "custom",
    profile: Profile | None = None,
    corrupt: int | None = None,
    keep: Path | None = None,
    times: bool = False,
    log=None,
    coverage: Path | None = None,
    sim: str = "verilator",
) -> tuple[Verdict, Chunk]:
    """Golden chunk of ``unit`` from ``seed`` through the harness, with ``profile`` (default
    ``profile_for(seed)``). ``corrupt=i`` flips bit 0 of expected beat ``i`` of the first
    output stream (a mutation the harness must catch). ``keep``: write the files there (and
    keep them) instead of a temporary directory; with ``times`` the harness writes every
    handshake's cycle to ``times.txt`` there. ``coverage``: build the harness with Verilator
    line/toggle coverage and write the run's counts (``coverage.dat`` format) to this file.
    ``sim``: one of ``FAST_SIMULATORS`` (Icarus: no ``times`` nor ``coverage``)."""
    t0 = time.perf_counter()
    chunk = make_chunk(unit, cfg, transactions, seed)
    if corrupt is not None:
        first = next(iter(chunk.outputs.values()))
        if not 0 <= corrupt < len(first):
            raise ValueError(f"corrupt must be a beat index in 0..{len(first) - 1}, not {corrupt}")
        if isinstance(first, np.ndarray):  # (n, words) uint32: bit 0 of word 0
            first[corrupt, 0] ^= 1
        else:
            first[corrupt] ^= 1
    verdict = run_prepared(
        unit,
        cfg,
        chunk,
        seed,
        config=config,
        profile=profile,
        keep=keep,
        times=times,
        log=log,
        coverage=coverage,
        sim=sim,
    )
    return replace(verdict, wall_seconds=time.perf_counter() - t0), chunk


def run_prepared(
    unit: str,
    cfg: HWConfig,
    chunk: Chunk,
    seed: int,
    *,
    config: str = "custom",
    profile: Profile | None = None,
    keep: Path | None = None,
    times: bool = False,
    log=None,
    coverage: Path | None = None,
    sim: str = "verilator",
) -> Verdict:
    """``chunk`` (e.g. ``stimulus.hcu_stream_chunk`` of a given stream) through the harness
    of ``unit``; the arguments as ``run_chunk``'s."""
    t0 = time.perf_counter()
    if sim not in FAST_SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(FAST_SIMULATORS)}, not {sim!r}")
    if sim == "icarus" and (times or coverage is not None):
        raise ValueError("times and coverage need sim='verilator' (the C++ harness)")
    profile = profile or profile_for(seed)
    if sim == "icarus":
        harness = build_icarus(unit, cfg, config=config, log=log)
    else:
        harness = build_harness(unit, cfg, config=config, log=log, coverage=coverage is not None)
    with tempfile.TemporaryDirectory(prefix=f"fast_{unit}_") as tmp:
        directory = Path(keep) if keep is not None else Path(tmp)
        write_chunk(directory, chunk)
        if sim == "icarus":
            write_phases(directory, FAST_PORTS[unit], chunk.phases)
            timeout = chunk.timeout + 4 * profile.burst_max
            rc, out = run_icarus(
                harness, directory, seed=seed, profile=profile, drain=chunk.drain, timeout=timeout
            )
        else:
            rc, out = run_harness(
                harness,
                directory,
                seed=seed,
                profile=profile,
                chunk=chunk,
                times=times,
                coverage=None if coverage is None else Path(coverage).resolve(),
            )
    line = next((ln for ln in out.splitlines() if ln.startswith("FAST ")), out.strip())
    m = _LINE.match(line)
    if m is None or rc not in (0, 1) or (rc == 0) != (m["status"] == "PASS"):
        raise RuntimeError(f"the {unit} harness failed (rc {rc}): {out.strip()[-2000:]}")
    return Verdict(
        unit=unit,
        seed=seed,
        profile=profile.name,
        passed=m["status"] == "PASS",
        transactions=int(m["transactions"]),
        cycles=int(m["cycles"]),
        mismatches=int(m["mismatches"]),
        seconds=float(m["seconds"]),
        cycles_per_s=float(m["cycles_per_s"]),
        first=m["first"] or "",
        line=line,
        wall_seconds=time.perf_counter() - t0,
        sim=sim,
    )
