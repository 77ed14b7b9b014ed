"""Command-line options shared by ``sim.soak``, ``sim.soak_core`` and ``sim.fast``.

Each option is checked where argparse reads it, so a bad value ends the command with exit
code 2 and a message naming the option and the value (``argument --chunk: must be at least
1, not -5``); ``int_at_least`` is ``golden.checks``', which ``workloads``' command line uses
too.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from golden.checks import int_at_least
from hw.config import HWConfig, apply_settings, parse_settings, preset

__all__ = ["add_target", "int_at_least", "target"]


def add_target(ap: argparse.ArgumentParser, sims: Sequence[str]) -> None:
    """``--sim`` (one of ``sims``, the first the default), ``--config`` and ``--set``."""
    ap.add_argument("--sim", default=sims[0], help=f"{' or '.join(sims)} (default {sims[0]})")
    ap.add_argument("--config", default="tiny", help="hardware preset (default tiny)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")


def target(ap: argparse.ArgumentParser, args: argparse.Namespace, sims: Sequence[str]) -> HWConfig:
    """Check ``add_target``'s options; the configuration they name (``ap.error`` otherwise)."""
    if args.sim not in sims:
        ap.error(f"--sim must be one of {', '.join(sims)}, not {args.sim!r}")
    try:
        return apply_settings(preset(args.config), parse_settings(args.set))
    except ValueError as exc:
        ap.error(str(exc))
