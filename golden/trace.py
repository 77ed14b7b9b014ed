"""Recorded K/V/Q traces: the ``.npz`` schema shared by golden, RTL simulation and benchmarks.

A trace is one stream of frames already turned into per-layer, per-head attention inputs.
Token ``t`` of the stream has position ``t`` (RoPE is applied by the consumer, by position;
everything stored here is pre-RoPE). Frame ``f`` is the tokens
``frame_offsets[f]:frame_offsets[f+1]``; it is prefilled with the per-token ``queries`` of
those tokens. Decode query ``j`` is issued after frame ``decode_after[j]`` has been
ingested and attends to the tokens ``0:frame_offsets[decode_after[j] + 1]``.

Schema, format version 1 (``FORMAT_VERSION``). One ``numpy.savez`` archive (a zip) holding
exactly these arrays, no pickles:

==================  ========  ==================  =======================================
array               dtype     shape               meaning
==================  ========  ==================  =======================================
``keys``            uint16    (L, Hkv, N, d)      pre-RoPE keys, BF16 bit patterns
``values``          uint16    (L, Hkv, N, d)      values, BF16 bit patterns
``queries``         uint16    (L, Hq, N, d)       per-token pre-RoPE queries (prefill)
``decode_queries``  uint16    (L, Hq, Nd, d)      pre-RoPE decode queries
``decode_after``    int64     (Nd,)               frame after which each decode query is
                                                  issued; non-decreasing, in [0, F)
``frame_offsets``   int64     (F+1,)              token offset of each frame; starts at 0,
                                                  strictly increasing, ends at N
``meta``            str (0-d) ()                  JSON object, see below
==================  ========  ==================  =======================================

L layers, Hkv KV heads, Hq = Hkv * G query heads (GQA: query head ``hq`` uses KV head
``hq // G``), N tokens, Nd decode queries (may be 0), F >= 1 frames, d head dimension.
The BF16 patterns are float32 values rounded to nearest, ties to even (``golden.bf16``),
because BF16 is the hardware's storage format; loading converts them back to float32
exactly, so every float in a ``Trace`` is BF16-representable, finite.

``meta`` holds at least ``format_version`` (int, must equal ``FORMAT_VERSION``). Traces
made by ``golden.workload`` also hold ``clip``, ``fps`` (null = native rate),
``native_fps``, ``features``, ``tokens_per_frame``, ``seed``, ``config`` (the full
``WorkloadConfig``), ``generator`` and ``note``, which always contains the sentence
"these are not video-LLM keys".

``load`` rejects malformed files (not a zip, missing or unexpected array, wrong dtype or
rank, inconsistent shapes, non-monotone offsets, out-of-range decode frames, non-finite
values, bad meta or format version) with a ``ValueError`` naming the file and the field.

CLI::

    python -m golden.trace make --preset tiny [--clip bikes --fps 2 --tokens-per-frame 49
        --features det --layers 2 --kv-heads 2 --q-per-kv 2 --head-dim 128 --frames 40
        --decode-queries 16 --seed 0] -o build/traces/x.npz
    python -m golden.trace info build/traces/x.npz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from golden.bf16 import bf16_round, from_bf16_bits, to_bf16_bits

if TYPE_CHECKING:
    from golden.workload import WorkloadConfig

__all__ = [
    "FORMAT_VERSION",
    "NOT_LLM_KEYS",
    "Trace",
    "cached_path",
    "config_hash",
    "load",
    "load_or_make",
    "main",
    "save",
]

FORMAT_VERSION = 1
#: Every trace made from real frames says this in ``meta["note"]``.
NOT_LLM_KEYS = "these are not video-LLM keys"

_FLOAT_FIELDS: dict[str, str] = {
    "keys": "(L, Hkv, N, d)",
    "values": "(L, Hkv, N, d)",
    "queries": "(L, Hq, N, d)",
    "decode_queries": "(L, Hq, Nd, d)",
}
_INT_FIELDS: dict[str, str] = {"decode_after": "(Nd,)", "frame_offsets": "(F+1,)"}
_ARRAYS = (*_FLOAT_FIELDS, *_INT_FIELDS, "meta")


def _check_structure(arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Ranks, shape agreement and index invariants (dtypes are checked by the callers)."""
    for name, dims in {**_FLOAT_FIELDS, **_INT_FIELDS}.items():
        rank = dims.count(",") + (0 if dims.endswith(",)") else 1)
        if arrays[name].ndim != rank:
            raise ValueError(
                f"{where}{name} must have {rank} dimension{'s' * (rank > 1)} {dims}, "
                f"not {arrays[name].ndim}"
            )
    keys, values, queries, dq = (arrays[n] for n in _FLOAT_FIELDS)
    layers, kv_heads, n, d = keys.shape
    if layers < 1 or kv_heads < 1 or n < 1 or d < 1:
        raise ValueError(f"{where}keys must have non-empty dimensions, not shape {keys.shape}")
    if values.shape != keys.shape:
        raise ValueError(f"{where}values shape {values.shape} must equal keys shape {keys.shape}")
    if queries.shape[0] != layers or queries.shape[2:] != (n, d):
        raise ValueError(
            f"{where}queries shape {queries.shape} must be (L, Hq, N, d) = "
            f"({layers}, Hq, {n}, {d}) to match keys"
        )
    if queries.shape[1] < 1 or queries.shape[1] % kv_heads:
        raise ValueError(
            f"{where}queries heads {queries.shape[1]} must be a positive multiple of "
            f"the {kv_heads} KV heads"
        )
    if dq.shape[:2] != queries.shape[:2] or dq.shape[3] != d:
        raise ValueError(
            f"{where}decode_queries shape {dq.shape} must be (L, Hq, Nd, d) = "
            f"({layers}, {queries.shape[1]}, Nd, {d})"
        )
    offsets, after = arrays["frame_offsets"], arrays["decode_after"]
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != n:
        raise ValueError(
            f"{where}frame_offsets must start at 0 and end at N = {n} with at least one "
            f"frame, not {_short(offsets)}"
        )
    if np.any(np.diff(offsets) <= 0):
        raise ValueError(f"{where}frame_offsets must be strictly increasing, not {_short(offsets)}")
    if len(after) != dq.shape[2]:
        raise ValueError(
            f"{where}decode_after length {len(after)} must equal the {dq.shape[2]} decode queries"
        )
    frames = len(offsets) - 1
    if len(after) and (after.min() < 0 or after.max() >= frames):
        raise ValueError(
            f"{where}decode_after must be frame indices in [0, {frames}), not {_short(after)}"
        )
    if np.any(np.diff(after) < 0):
        raise ValueError(f"{where}decode_after must be non-decreasing, not {_short(after)}")


def _short(a: np.ndarray) -> str:
    items = a.tolist()
    return str(items) if len(items) <= 8 else f"[{', '.join(map(str, items[:8]))}, ...]"


def _check_meta(meta: object, where: str) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise ValueError(f"{where}meta must be a JSON object (dict), not {type(meta).__name__}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ValueError(f"{where}meta.format_version must be {FORMAT_VERSION}, not {version!r}")
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}meta must be JSON-serialisable ({error})") from None
    return meta


@dataclass(frozen=True, eq=False)
class Trace:
    """One recorded stream: see the module docstring for the fields' meaning and shapes.

    Construction validates the schema; float arrays must be float32 and BF16-representable
    (round with ``golden.bf16.bf16_round``), index arrays integer (stored as int64). The
    arrays are made read-only.
    """

    keys: np.ndarray
    values: np.ndarray
    queries: np.ndarray
    decode_queries: np.ndarray
    decode_after: np.ndarray
    frame_offsets: np.ndarray
    meta: dict[str, Any] = field(default_factory=lambda: {"format_version": FORMAT_VERSION})

    def __post_init__(self) -> None:
        arrays: dict[str, np.ndarray] = {}
        for name in _FLOAT_FIELDS:
            a = np.asarray(getattr(self, name))
            if a.dtype != np.float32:
                raise ValueError(f"{name} must have dtype float32, not {a.dtype}")
            arrays[name] = a
        for name in _INT_FIELDS:
            a = np.asarray(getattr(self, name))
            if a.dtype.kind not in "iu":
                raise ValueError(f"{name} must have an integer dtype, not {a.dtype}")
            arrays[name] = a.astype(np.int64)
        _check_structure(arrays, "")
        for name in _FLOAT_FIELDS:
            a = arrays[name]
            if not np.isfinite(a).all():
                raise ValueError(f"{name} must be finite")
            if not np.array_equal(bf16_round(a), a):
                raise ValueError(f"{name} must hold BF16-representable values (use bf16_round)")
        _check_meta(self.meta, "")
        for name, a in arrays.items():
            # A read-only view: the trace cannot be changed through it, and the caller's
            # array is neither copied (traces reach hundreds of MB) nor frozen.
            view = np.ascontiguousarray(a).view()
            view.setflags(write=False)
            object.__setattr__(self, name, view)
        object.__setattr__(self, "meta", dict(self.meta))

    # Shape facts ----------------------------------------------------------------------------

    @property
    def layers(self) -> int:
        return self.keys.shape[0]

    @property
    def kv_heads(self) -> int:
        return self.keys.shape[1]

    @property
    def q_heads(self) -> int:
        return self.queries.shape[1]

    @property
    def q_per_kv(self) -> int:
        """GQA group size G: query head ``hq`` uses KV head ``hq // G``."""
        return self.q_heads // self.kv_heads

    @property
    def n_tokens(self) -> int:
        return self.keys.shape[2]

    @property
    def head_dim(self) -> int:
        return self.keys.shape[3]

    @property
    def n_frames(self) -> int:
        return len(self.frame_offsets) - 1

    @property
    def n_decode(self) -> int:
        return len(self.decode_after)

    def frame_slice(self, frame: int) -> slice:
        """Token range of ``frame``."""
        if not 0 <= frame < self.n_frames:
            raise ValueError(f"frame must be in [0, {self.n_frames}), not {frame!r}")
        return slice(int(self.frame_offsets[frame]), int(self.frame_offsets[frame + 1]))

    def nbytes_bf16(self) -> int:
        """Bytes of the float tensors in the hardware format (2 bytes per value)."""
        return 2 * sum(getattr(self, n).size for n in _FLOAT_FIELDS)

    def summary(self) -> str:
        """One line: sizes and provenance."""
        meta = self.meta
        source = (
            f"{meta.get('clip', '?')} @ {meta['fps'] if meta.get('fps') else 'native'} fps, "
            f"{meta.get('features', '?')} features, "
            if "clip" in meta
            else ""
        )
        return (
            f"{self.n_frames} frames, {self.n_tokens} tokens, L={self.layers} "
            f"Hkv={self.kv_heads} Hq={self.q_heads} d={self.head_dim}, {self.n_decode} decode "
            f"queries; {source}{self.nbytes_bf16() / 1e6:.1f} MB BF16"
        )


# Files ----------------------------------------------------------------------------------


def save(trace: Trace, path: str | os.PathLike[str]) -> Path:
    """Write ``trace`` to ``path`` (atomically: a reader never sees a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {n: to_bf16_bits(getattr(trace, n)) for n in _FLOAT_FIELDS}
    arrays.update({n: getattr(trace, n).astype(np.int64) for n in _INT_FIELDS})
    arrays["meta"] = np.array(json.dumps(trace.meta, sort_keys=True, allow_nan=False))
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # a file object: savez would append ".npz" to a name
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike[str]) -> Trace:
    """Read and validate a trace file; ``ValueError`` naming the file and field if malformed."""
    path = Path(path)
    where = f"{path}: "
    if not zipfile.is_zipfile(path):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such trace file")
        raise ValueError(f"{where}not an .npz trace (not a zip archive)")
    raw: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            for name in _ARRAYS:
                if name not in names:
                    raise ValueError(f"{where}missing array {name!r}")
            extra = sorted(names - set(_ARRAYS))
            if extra:
                raise ValueError(f"{where}unexpected array {extra[0]!r}")
            for name in _ARRAYS:
                try:
                    raw[name] = npz[name]
                except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
                    raise ValueError(f"{where}{name} is unreadable ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{where}unreadable .npz ({error})") from None
    for name in _FLOAT_FIELDS:
        if raw[name].dtype != np.uint16:
            raise ValueError(
                f"{where}{name} must have dtype uint16 (BF16 bits), not {raw[name].dtype}"
            )
    for name in _INT_FIELDS:
        if raw[name].dtype != np.int64:
            raise ValueError(f"{where}{name} must have dtype int64, not {raw[name].dtype}")
    meta_arr = raw["meta"]
    if meta_arr.dtype.kind != "U" or meta_arr.ndim != 0:
        raise ValueError(
            f"{where}meta must be a 0-d string array (JSON), not {meta_arr.dtype} {meta_arr.shape}"
        )
    try:
        meta = json.loads(str(meta_arr[()]))
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}meta is not valid JSON ({error})") from None
    _check_meta(meta, where)
    arrays = {n: from_bf16_bits(raw[n]) for n in _FLOAT_FIELDS}
    arrays.update({n: raw[n] for n in _INT_FIELDS})
    _check_structure(arrays, where)
    for name in _FLOAT_FIELDS:
        if not np.isfinite(arrays[name]).all():
            raise ValueError(f"{where}{name} must be finite (holds inf or NaN patterns)")
    return Trace(**arrays, meta=meta)


# Cache ----------------------------------------------------------------------------------


def config_hash(cfg: WorkloadConfig) -> str:
    """Hex digest identifying the trace ``cfg`` makes (config + format + generator)."""
    from golden.workload import GENERATOR_VERSION

    blob = json.dumps(
        {"format": FORMAT_VERSION, "generator": GENERATOR_VERSION, "config": asdict(cfg)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_path(cfg: WorkloadConfig, cache_dir: str | os.PathLike[str] = "build/traces") -> Path:
    """Where ``load_or_make`` keeps the trace of ``cfg``: ``<clip>-<features>-<hash16>.npz``."""
    return Path(cache_dir) / f"{cfg.clip}-{cfg.features}-{config_hash(cfg)[:16]}.npz"


def load_or_make(
    cfg: WorkloadConfig,
    cache_dir: str | os.PathLike[str] = "build/traces",
    *,
    progress: bool = True,
) -> Trace:
    """The trace of ``cfg`` from ``cache_dir`` if cached there, else made and cached.

    Files are named ``<clip>-<features>-<hash16>.npz`` by ``config_hash``. A cached file
    that fails to load or whose recorded config differs is rebuilt.
    """
    from golden.workload import make_trace

    path = cached_path(cfg, cache_dir)
    if path.exists():
        try:
            trace = load(path)
        except ValueError:
            trace = None
        if trace is not None and trace.meta.get("config") == json.loads(json.dumps(asdict(cfg))):
            return trace
    trace = make_trace(cfg, progress=progress)
    save(trace, path)
    return trace


# CLI ------------------------------------------------------------------------------------

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
    "seed": "--seed",
}


def _fps_arg(text: str) -> float | None:
    if text == "native":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'native' or a number, not {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be 'native' or a positive number, not {text!r}")
    return value


def _frames_arg(text: str) -> int | None:
    if text == "all":
        return None
    return _int_arg(text, 1)


def _int_arg(text: str, lo: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    if value < lo:
        raise argparse.ArgumentTypeError(f"must be at least {lo}, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    from golden.features import GRIDS, SOURCES
    from golden.video import CLIPS
    from golden.workload import PRESETS

    parser = argparse.ArgumentParser(
        prog="python -m golden.trace", description="Make or inspect K/V/Q trace files (.npz)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{make,info}")
    make = sub.add_parser("make", help="make a trace from a real clip")
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
        make.add_argument(option, type=lambda s: _int_arg(s, 1), metavar="N")
    make.add_argument("--decode-queries", type=lambda s: _int_arg(s, 0), metavar="N")
    make.add_argument("--seed", type=lambda s: _int_arg(s, 0), metavar="N")
    make.add_argument("-o", "--output", required=True, type=Path, help="trace file to write")
    make.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    info = sub.add_parser("info", help="print a trace file's shapes, token counts and meta")
    info.add_argument("path", type=Path)
    return parser


def _make(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from golden.workload import PRESETS, make_trace

    changes: dict[str, Any] = {}
    given = vars(args)
    for fieldname, option in _OPTIONS.items():
        dest = option.lstrip("-").replace("-", "_")
        # --fps/--frames are absent unless given (None means native/all); others are None.
        if dest in given and (given[dest] is not None or dest in ("fps", "frames")):
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


def _info(args: argparse.Namespace) -> int:
    trace = load(args.path)
    for name in (*_FLOAT_FIELDS, *_INT_FIELDS):
        a = getattr(trace, name)
        kind = "BF16" if name in _FLOAT_FIELDS else str(a.dtype)
        print(f"{name:15s} {kind:6s} {a.shape}")
    sizes = np.diff(trace.frame_offsets)
    print(
        f"tokens          {trace.n_tokens} in {trace.n_frames} frames "
        f"({sizes.min()}..{sizes.max()} per frame)"
    )
    if trace.n_decode:
        print(f"decode queries  {trace.n_decode}, after frames {_short(trace.decode_after)}")
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
    try:
        return _info(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"trace info: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
