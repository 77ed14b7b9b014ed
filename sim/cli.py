"""Command-line options shared by ``sim.soak``, ``sim.soak_core`` and ``sim.fast``.

Each option is checked where argparse reads it, so a bad value ends the command with exit
code 2 and a message naming the option and the value (``argument --chunk: must be at least
1, not -5``), as in ``workloads``' command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from hw.config import HWConfig, apply_settings, parse_settings, preset


def int_at_least(lo: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``lo``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, not {value}")
        return value

    return parse


def add_target(ap: argparse.ArgumentParser, sims: Sequence[str]) -> None:
    """``--sim`` (one of ``sims``, the first the default), ``--config`` and ``--set``."""
    ap.add_argument("--sim", default=sims[0], help=f"{' or '.join(sims)} (default {sims[0]})")
    ap.add_argument("--config", default="tiny", help="hardware preset (default tiny)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=INT")


def target(ap: argparse.ArgumentParser, args: argparse.Namespace, sims: Sequence[str]) -> HWConfig:
    """Check ``add_target``'s options; the configuration they name (``ap.error`` otherwise)."""
    if args.sim not in sims:
        ap.error(f"--sim must be one of {', '.join(sims)}, not {args.sim!r}")
    try:
        return apply_settings(preset(args.config), parse_settings(args.set))
    except ValueError as exc:
        ap.error(str(exc))
