"""``python -m sim.fast UNIT --seed N --transactions N``: one chunk through the fast harness.

    python -m sim.fast hcu --seed 7 --transactions 20000 [--config tiny] [--set F=V]
        [--profile NAME] [--corrupt I] [--keep DIR] [--times] [--coverage FILE]
        [--sim verilator|icarus]

Prints the harness's verdict line (and the replay command on a failure); exit 0 on PASS, 1 on
a mismatch, 2 on bad arguments. ``--profile`` overrides the seed's stall profile (one of
``sim.fast.stimulus.PROFILES``); ``--corrupt I`` flips a bit of expected beat I (the harness
must then fail); ``--keep DIR`` keeps the golden files (and with ``--times`` the handshake
cycles) in DIR; ``--coverage FILE`` builds the harness with Verilator line and toggle
coverage and writes the run's counts to FILE (``python -m sim.verilator_coverage`` format).
``--sim icarus`` runs the generated Verilog testbench on Icarus instead of the C++ Verilator
harness (``sim.fast.icarus``: every unit; no ``--times`` or ``--coverage``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.fast.build import FAST_PORTS
from sim.fast.run import FAST_SIMULATORS, replay_command, run_chunk
from sim.fast.stimulus import PROFILES
from sim.kit.cli import add_target, int_at_least, target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.fast", description=__doc__.split("\n")[0])
    ap.add_argument("unit", help=f"one of {', '.join(FAST_PORTS)}")
    ap.add_argument(
        "--seed", type=int_at_least(0), default=1, help="stimulus and stall seed (default 1)"
    )
    ap.add_argument("--transactions", type=int_at_least(1), default=20000, help="default 20000")
    ap.add_argument("--profile", help=f"stall profile: {', '.join(PROFILES)} (default: seeded)")
    ap.add_argument("--corrupt", type=int, help="flip bit 0 of this expected output beat")
    ap.add_argument("--keep", type=Path, help="keep the golden files in this directory")
    ap.add_argument("--times", action="store_true", help="with --keep: write times.txt")
    ap.add_argument("--coverage", type=Path, help="Verilator line/toggle counts to this file")
    add_target(ap, FAST_SIMULATORS)
    args = ap.parse_args(argv)
    if args.unit not in FAST_PORTS:
        ap.error(f"unit must be one of {', '.join(FAST_PORTS)}, not {args.unit!r}")
    if args.profile is not None and args.profile not in PROFILES:
        ap.error(f"--profile must be one of {', '.join(PROFILES)}, not {args.profile!r}")
    cfg = target(ap, args, FAST_SIMULATORS)
    if args.times and args.keep is None:
        ap.error("--times needs --keep DIR")
    try:
        verdict, _ = run_chunk(
            args.unit,
            cfg,
            args.transactions,
            args.seed,
            config=args.config,
            profile=PROFILES[args.profile] if args.profile else None,
            corrupt=args.corrupt,
            keep=args.keep,
            times=args.times,
            log=print,
            coverage=args.coverage,
            sim=args.sim,
        )
    except ValueError as exc:
        ap.error(str(exc))
    print(f"{verdict.line} profile={verdict.profile}", flush=True)
    if not verdict.passed:
        replay = replay_command(
            args.unit, args.seed, args.transactions, args.config, args.set, args.sim
        )
        print(f"replay: {replay}")
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
