"""Command line of the workloads: make or inspect trace files (``workloads.trace`` schema).

::

    python -m workloads make --preset tiny [--clip bikes --fps 2 --tokens-per-frame 49
        --features det --layers 2 --kv-heads 2 --q-per-kv 2 --head-dim 128 --frames 40
        --decode-queries 16 --rope-base 5e5|none --seed 0] -o build/traces/x.npz
    python -m workloads llm --preset tiny|bench|bench-10|bench-8k [--max-tokens N --fps FPS
        --tokens-per-frame 10|49|196 --visual codebook|linear --questions N] -o x.npz
    python -m workloads info build/traces/x.npz

Every error names the option and the value; the last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from golden.checks import int_at_least
from workloads.trace import NOT_LLM_KEYS, NOT_SEEN_TOKENS, load, save

#: WorkloadConfig field → CLI option (for error messages that name the option).
_OPTIONS = {
    "clip": "--clip",
    "fps": "--fps",
    "max_frames": "--frames",
    "tokens_per_frame": "--tokens-per-frame",
    "features": "--features",
    "layers": "--layers",
    "kv_heads": "--kv-heads",
    "q_per_kv": "--q-per-kv",
    "head_dim": "--head-dim",
    "decode_queries": "--decode-queries",
    "rope_base": "--rope-base",
    "seed": "--seed",
}
#: Options whose None value ("native", "all", "none") is meaningful, so absent = SUPPRESS.
_NONE_OK = ("fps", "frames", "rope_base")


def _fps_arg(text: str) -> float | None:
    if text == "native":
        return None
    return _positive(text, "'native' or ")


def _rope_arg(text: str) -> float | None:
    if text == "none":
        return None
    return _positive(text, "'none' or ")


def _positive(text: str, alternative: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {alternative}a number, not {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be {alternative}a positive number, not {text!r}")
    return value


def _frames_arg(text: str) -> int | None:
    if text == "all":
        return None
    return int_at_least(1)(text)


def _parser() -> argparse.ArgumentParser:
    from workloads.features import GRIDS, SOURCES
    from workloads.projected import PRESETS
    from workloads.video import CLIPS

    parser = argparse.ArgumentParser(
        prog="python -m workloads", description="Make or inspect K/V/Q trace files (.npz)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{make,llm,info}")
    make = sub.add_parser("make", help="make a projected-feature trace from a real clip")
    make.add_argument(
        "--preset",
        default="tiny",
        choices=list(PRESETS),
        help=f"workload preset to start from (default tiny): {', '.join(PRESETS)}",
    )
    make.add_argument("--clip", choices=list(CLIPS))
    make.add_argument("--fps", type=_fps_arg, metavar="FPS|native", default=argparse.SUPPRESS)
    make.add_argument("--frames", type=_frames_arg, metavar="N|all", default=argparse.SUPPRESS)
    make.add_argument("--tokens-per-frame", type=int, choices=list(GRIDS))
    make.add_argument("--features", choices=list(SOURCES))
    for option in ("--layers", "--kv-heads", "--q-per-kv", "--head-dim"):
        make.add_argument(option, type=int_at_least(1), metavar="N")
    make.add_argument("--decode-queries", type=int_at_least(0), metavar="N")
    make.add_argument("--rope-base", type=_rope_arg, metavar="BASE|none", default=argparse.SUPPRESS)
    make.add_argument("--seed", type=int_at_least(0), metavar="N")
    make.add_argument("-o", "--output", required=True, type=Path, help="trace file to write")
    make.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    from workloads.llm_stream import PRESETS as LLM
    from workloads.visual_tokens import VISUAL_MODES

    llm = sub.add_parser("llm", help="trace a SmolLM2 stream of real clips")
    llm.add_argument("--preset", default="tiny", choices=list(LLM), help="stream preset")
    llm.add_argument("--max-tokens", type=int_at_least(64), metavar="N")
    llm.add_argument("--fps", type=_fps_arg, metavar="FPS|native", default=argparse.SUPPRESS)
    llm.add_argument("--tokens-per-frame", type=int, choices=list(GRIDS))
    llm.add_argument("--visual", choices=list(VISUAL_MODES))
    llm.add_argument("--questions", type=int_at_least(0), metavar="N")
    llm.add_argument("-o", "--output", required=True, type=Path, help="trace file to write")
    llm.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    info = sub.add_parser("info", help="print a trace file's shapes, token counts and meta")
    info.add_argument("path", type=Path)
    return parser


def _make(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from workloads.projected import PRESETS, make_trace

    changes: dict[str, Any] = {}
    given = vars(args)
    for fieldname, option in _OPTIONS.items():
        dest = option.lstrip("-").replace("-", "_")
        # --fps/--frames/--rope-base are absent unless given (None is a value); others None.
        if dest in given and (given[dest] is not None or dest in _NONE_OK):
            changes[fieldname] = given[dest]
    try:
        cfg = PRESETS[args.preset].replace(**changes)
    except (TypeError, ValueError) as error:
        message = str(error)
        option = next((o for f, o in _OPTIONS.items() if message.startswith(f + " ")), None)
        parser.error(f"argument {option}: {message}" if option else message)
    start = time.perf_counter()
    trace = make_trace(cfg, progress=not args.quiet)
    path = save(trace, args.output)
    size = path.stat().st_size / 1e6
    print(
        f"trace: wrote {path} ({size:.1f} MB) in {time.perf_counter() - start:.1f} s: "
        f"{trace.summary()}; {NOT_LLM_KEYS}"
    )
    return 0


def _llm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from workloads.llm_stream import PRESETS, make_llm_trace

    given = vars(args)
    changes = {k: given[k] for k in ("max_tokens", "tokens_per_frame", "visual", "questions")}
    changes = {k: v for k, v in changes.items() if v is not None}
    if "fps" in given:
        changes["fps"] = given["fps"]
    try:
        cfg = PRESETS[args.preset].replace(**changes)
        start = time.perf_counter()
        trace = make_llm_trace(cfg, progress=not args.quiet)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    path = save(trace, args.output)
    print(
        f"trace: wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in "
        f"{time.perf_counter() - start:.1f} s: {trace.summary()}; {NOT_SEEN_TOKENS}"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from workloads.trace import _FLOAT_FIELDS, _INT_FIELDS, _short

    trace = load(args.path)
    for name in (*_FLOAT_FIELDS, *_INT_FIELDS):
        a = getattr(trace, name)
        kind = "BF16" if name in _FLOAT_FIELDS else str(a.dtype)
        print(f"{name:20s} {kind:6s} {a.shape}")
    sizes = np.diff(trace.frame_offsets)
    print(
        f"tokens               {trace.n_tokens} in {trace.n_frames} segments "
        f"({sizes.min()}..{sizes.max()} per segment)"
    )
    if trace.n_decode:
        print(f"decode queries       {trace.n_decode}, contexts {_short(trace.decode_context)}")
    print("meta")
    for key, value in sorted(trace.meta.items()):
        text = json.dumps(value, sort_keys=True)
        print(f"  {key}: {text}")
    print(f"trace: {args.path}: {trace.summary()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "make":
        return _make(args, parser)
    if args.command == "llm":
        return _llm(args, parser)
    try:
        return _info(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"trace info: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
