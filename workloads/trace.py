"""Recorded K/V/Q traces: the ``.npz`` schema shared by golden, RTL simulation and benchmarks.

A trace is one stream of tokens already turned into per-layer, per-head attention inputs.
Token ``t`` of the stream has RoPE position ``t``. The stream is cut into *segments*:
segment ``s`` is the tokens ``frame_offsets[s]:frame_offsets[s+1]`` and ``segment_kind[s]``
says what it is — ``FRAME`` (0: a video frame's tokens, prefilled as one block with the
per-token ``queries``), ``TEXT`` (1: a system prompt or a question) or ``ANSWER`` (2: the
model's own answer tokens, whose queries are also the decode queries). Traces of the
projected-feature workload hold only frames and external decode queries.

Decode query ``j`` is issued once the stream holds ``decode_context[j]`` tokens, sits at
RoPE position ``decode_positions[j]`` and attends to the tokens ``0:decode_context[j]``.
An external question (projected workload) has ``decode_positions[j] == decode_context[j]``;
an answer token of an LLM stream is itself the last visible token, so
``decode_positions[j] == decode_context[j] - 1`` and its query equals ``queries[..., p, :]``.

Schema, format version 2 (``FORMAT_VERSION``). One ``numpy.savez`` archive (a zip) holding
exactly these arrays, no pickles:

=======================  ========  ==============  ===========================================
array                    dtype     shape           meaning
=======================  ========  ==============  ===========================================
``keys``                 uint16    (L, Hkv, N, d)  pre-RoPE keys, BF16 bit patterns
``keys_post``            uint16    (L, Hkv, N, d)  the same keys after RoPE at their position
``values``               uint16    (L, Hkv, N, d)  values, BF16 bit patterns
``queries``              uint16    (L, Hq, N, d)   per-token pre-RoPE queries (prefill)
``queries_post``         uint16    (L, Hq, N, d)   the same queries after RoPE
``decode_queries``       uint16    (L, Hq, Nd, d)  pre-RoPE decode queries
``decode_queries_post``  uint16    (L, Hq, Nd, d)  the same after RoPE at ``decode_positions``
``decode_positions``     int64     (Nd,)           RoPE position of each decode query
``decode_context``       int64     (Nd,)           stream tokens visible to each decode
                                                   query; non-decreasing, in [1, N]
``frame_offsets``        int64     (S+1,)          token offset of each segment; starts at 0,
                                                   strictly increasing, ends at N
``segment_kind``         int8      (S,)            ``FRAME`` 0, ``TEXT`` 1, ``ANSWER`` 2
``meta``                 str (0-d) ()              JSON object, see below
=======================  ========  ==============  ===========================================

L layers, Hkv KV heads, Hq = Hkv * G query heads (GQA: query head ``hq`` uses KV head
``hq // G``), N tokens, Nd decode queries (may be 0), S >= 1 segments, d head dimension.
The BF16 patterns are float32 values rounded to nearest, ties to even (``golden.bf16``),
because BF16 is the hardware's storage format; loading converts them back to float32
exactly, so every float in a ``Trace`` is BF16-representable, finite. Pre- and post-RoPE
tensors are both recorded because an LLM computes its own RoPE: the post-RoPE ones are what
it attended with, the pre-RoPE ones what content hashing (``hash_space = "pre_rope"``) and
RoPE-aware representatives see. ``golden.rope.rope(x, positions, base=meta["rope_base"])``
turns the float32 pre-RoPE values into the post-RoPE ones before BF16 rounding.

``meta`` holds at least ``format_version`` (int, must equal ``FORMAT_VERSION``; an older
trace is refused with the command that remakes it) and ``rope_base`` (the RoPE base, a
number > 1, or null for a stream without RoPE). Traces made by ``workloads`` also hold
``workload`` (``projected`` or ``llm``), ``config`` (the full workload configuration),
``generator`` and ``note``, which always says what the keys are not: projected features
"are not video-LLM keys"; LLM streams were made by a model that "never saw such visual
tokens".

``load`` rejects malformed files (not a zip, missing or unexpected array, wrong dtype or
rank, inconsistent shapes, non-monotone offsets, unknown segment kinds, decode queries out
of range, non-finite values, bad meta or format version) with a ``ValueError`` naming the
file and the field.

The command line is ``python -m workloads`` (``workloads/__main__.py``).
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from golden.bf16 import bf16_round, from_bf16_bits, to_bf16_bits

__all__ = [
    "FORMAT_VERSION",
    "NOT_LLM_KEYS",
    "NOT_SEEN_TOKENS",
    "Segment",
    "Trace",
    "WorkloadSpec",
    "cached_path",
    "config_hash",
    "load",
    "load_or_make",
    "save",
]

FORMAT_VERSION = 2
#: Every trace made from projected real-frame features says this in ``meta["note"]``.
NOT_LLM_KEYS = "these are not video-LLM keys"
#: Every LLM stream trace says this in ``meta["note"]``.
NOT_SEEN_TOKENS = "the model never saw such visual tokens"


class Segment(enum.IntEnum):
    """``segment_kind`` values."""

    FRAME = 0
    TEXT = 1
    ANSWER = 2


_FLOAT_FIELDS: dict[str, str] = {
    "keys": "(L, Hkv, N, d)",
    "keys_post": "(L, Hkv, N, d)",
    "values": "(L, Hkv, N, d)",
    "queries": "(L, Hq, N, d)",
    "queries_post": "(L, Hq, N, d)",
    "decode_queries": "(L, Hq, Nd, d)",
    "decode_queries_post": "(L, Hq, Nd, d)",
}
_INT_FIELDS: dict[str, tuple[str, type]] = {
    "decode_positions": ("(Nd,)", np.int64),
    "decode_context": ("(Nd,)", np.int64),
    "frame_offsets": ("(S+1,)", np.int64),
    "segment_kind": ("(S,)", np.int8),
}
_ARRAYS = (*_FLOAT_FIELDS, *_INT_FIELDS, "meta")
#: What zipfile and numpy raise on a damaged archive besides ValueError (found by the
#: trace fuzz test: a flipped flag bit reads as encryption or an unsupported feature).
_ZIP_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    struct.error,
    zlib.error,
)
#: The command that remakes a trace of an older format.
REMAKE = "remake it with `python -m workloads make ...` (or delete build/traces to rebuild caches)"


def _same(where: str, name: str, a: np.ndarray, ref: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{where}{name} shape {a.shape} must equal {ref} shape {b.shape}")


def _check_structure(arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Ranks, shape agreement and index invariants (dtypes are checked by the callers)."""
    dims = {**_FLOAT_FIELDS, **{n: d for n, (d, _) in _INT_FIELDS.items()}}
    for name, dim in dims.items():
        rank = dim.count(",") + (0 if dim.endswith(",)") else 1)
        if arrays[name].ndim != rank:
            raise ValueError(
                f"{where}{name} must have {rank} dimension{'s' * (rank > 1)} {dim}, "
                f"not {arrays[name].ndim}"
            )
    keys, queries, dq = arrays["keys"], arrays["queries"], arrays["decode_queries"]
    layers, kv_heads, n, d = keys.shape
    if layers < 1 or kv_heads < 1 or n < 1 or d < 1:
        raise ValueError(f"{where}keys must have non-empty dimensions, not shape {keys.shape}")
    _same(where, "values", arrays["values"], "keys", keys)
    _same(where, "keys_post", arrays["keys_post"], "keys", keys)
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
    _same(where, "queries_post", arrays["queries_post"], "queries", queries)
    if dq.shape[:2] != queries.shape[:2] or dq.shape[3] != d:
        raise ValueError(
            f"{where}decode_queries shape {dq.shape} must be (L, Hq, Nd, d) = "
            f"({layers}, {queries.shape[1]}, Nd, {d})"
        )
    _same(where, "decode_queries_post", arrays["decode_queries_post"], "decode_queries", dq)
    offsets, kinds = arrays["frame_offsets"], arrays["segment_kind"]
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != n:
        raise ValueError(
            f"{where}frame_offsets must start at 0 and end at N = {n} with at least one "
            f"segment, not {_short(offsets)}"
        )
    if np.any(np.diff(offsets) <= 0):
        raise ValueError(f"{where}frame_offsets must be strictly increasing, not {_short(offsets)}")
    if len(kinds) != len(offsets) - 1:
        raise ValueError(
            f"{where}segment_kind length {len(kinds)} must equal the {len(offsets) - 1} segments"
        )
    if len(kinds) and not np.isin(kinds, [int(k) for k in Segment]).all():
        raise ValueError(
            f"{where}segment_kind must hold 0 (frame), 1 (text) or 2 (answer), not {_short(kinds)}"
        )
    nd = dq.shape[2]
    pos, ctx = arrays["decode_positions"], arrays["decode_context"]
    for name, a in (("decode_positions", pos), ("decode_context", ctx)):
        if len(a) != nd:
            raise ValueError(f"{where}{name} length {len(a)} must equal the {nd} decode queries")
    if nd and (ctx.min() < 1 or ctx.max() > n):
        raise ValueError(f"{where}decode_context must be in [1, {n}], not {_short(ctx)}")
    if np.any(np.diff(ctx) < 0):
        raise ValueError(f"{where}decode_context must be non-decreasing, not {_short(ctx)}")
    if nd and np.any((pos < ctx - 1) | (pos > ctx)):
        raise ValueError(
            f"{where}decode_positions must be decode_context - 1 (a token of the stream) or "
            f"decode_context (an external query), not {_short(pos)}"
        )


def _short(a: np.ndarray) -> str:
    items = a.tolist()
    return str(items) if len(items) <= 8 else f"[{', '.join(map(str, items[:8]))}, ...]"


def _as_float(x: int | float) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.inf


def _check_meta(meta: object, where: str) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise ValueError(f"{where}meta must be a JSON object (dict), not {type(meta).__name__}")
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version < FORMAT_VERSION:
        raise ValueError(
            f"{where}meta.format_version is {version}, an older trace format than "
            f"{FORMAT_VERSION}: {REMAKE}"
        )
    if version != FORMAT_VERSION or not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{where}meta.format_version must be {FORMAT_VERSION}, not {version!r}")
    base = meta.get("rope_base", "missing")
    ok = base is None or (isinstance(base, int | float) and not isinstance(base, bool))
    # A JSON integer may be too large for a float (np.isfinite would raise a TypeError).
    if not ok or (base is not None and not (base > 1 and math.isfinite(_as_float(base)))):
        raise ValueError(
            f"{where}meta.rope_base must be a finite number greater than 1 or null (no RoPE), "
            f"not {base!r}"
        )
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}meta must be JSON-serialisable ({error})") from None
    return meta


@dataclass(frozen=True, eq=False)
class Trace:
    """One recorded stream: see the module docstring for the fields' meaning and shapes.

    Construction validates the schema; float arrays must be float32 and BF16-representable
    (round with ``golden.bf16.bf16_round``), index arrays integer. The arrays are made
    read-only.
    """

    keys: np.ndarray
    keys_post: np.ndarray
    values: np.ndarray
    queries: np.ndarray
    queries_post: np.ndarray
    decode_queries: np.ndarray
    decode_queries_post: np.ndarray
    decode_positions: np.ndarray
    decode_context: np.ndarray
    frame_offsets: np.ndarray
    segment_kind: np.ndarray
    meta: dict[str, Any] = field(
        default_factory=lambda: {"format_version": FORMAT_VERSION, "rope_base": None}
    )

    def __post_init__(self) -> None:
        arrays: dict[str, np.ndarray] = {}
        for name in _FLOAT_FIELDS:
            a = np.asarray(getattr(self, name))
            if a.dtype != np.float32:
                raise ValueError(f"{name} must have dtype float32, not {a.dtype}")
            arrays[name] = a
        for name, (_, dtype) in _INT_FIELDS.items():
            a = np.asarray(getattr(self, name))
            if a.dtype.kind not in "iu":
                raise ValueError(f"{name} must have an integer dtype, not {a.dtype}")
            arrays[name] = a.astype(dtype)
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
        """Number of segments (frames, and for LLM streams text and answer segments)."""
        return len(self.frame_offsets) - 1

    @property
    def n_decode(self) -> int:
        return len(self.decode_context)

    @property
    def rope_base(self) -> float | None:
        return self.meta["rope_base"]

    @property
    def decode_after(self) -> np.ndarray:
        """Segment holding the last token each decode query sees (``decode_context - 1``)."""
        return np.searchsorted(self.frame_offsets, self.decode_context, side="left") - 1

    def frame_slice(self, frame: int) -> slice:
        """Token range of segment ``frame``."""
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
        kinds = np.bincount(self.segment_kind, minlength=3)
        segs = f"{kinds[0]} frames" + (
            f" + {kinds[1]} text + {kinds[2]} answer segments" if kinds[1] + kinds[2] else ""
        )
        return (
            f"{segs}, {self.n_tokens} tokens, L={self.layers} "
            f"Hkv={self.kv_heads} Hq={self.q_heads} d={self.head_dim}, {self.n_decode} decode "
            f"queries, RoPE base {self.rope_base}; {source}{self.nbytes_bf16() / 1e6:.1f} MB BF16"
        )


# Files ----------------------------------------------------------------------------------


def save(trace: Trace, path: str | os.PathLike[str]) -> Path:
    """Write ``trace`` to ``path`` (atomically: a reader never sees a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {n: to_bf16_bits(getattr(trace, n)) for n in _FLOAT_FIELDS}
    arrays.update({n: getattr(trace, n).astype(t) for n, (_, t) in _INT_FIELDS.items()})
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
    # The file is opened here, not by np.load: when np.load's NpzFile fails on a damaged
    # archive, numpy leaves the file it opened unclosed (a ResourceWarning).
    with open(path, "rb") as fh:
        try:
            # np.load goes by the first bytes, not by the zip directory is_zipfile found: a
            # damaged header reads as a pickle (a ValueError without the file name) or as .npy.
            npz = np.load(fh, allow_pickle=False)
        except (ValueError, *_ZIP_ERRORS) as error:
            raise ValueError(f"{where}unreadable .npz ({error})") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"{where}not an .npz trace (a single .npy array)")
        try:
            with npz:
                _read_npz(npz, raw, where)
        except _ZIP_ERRORS as error:  # not ValueError: _read_npz's own messages pass
            raise ValueError(f"{where}unreadable .npz ({error})") from None
    for name in _FLOAT_FIELDS:
        if raw[name].dtype != np.uint16:
            raise ValueError(
                f"{where}{name} must have dtype uint16 (BF16 bits), not {raw[name].dtype}"
            )
    for name, (_, dtype) in _INT_FIELDS.items():
        if raw[name].dtype != dtype:
            raise ValueError(
                f"{where}{name} must have dtype {np.dtype(dtype)}, not {raw[name].dtype}"
            )
    meta = _check_meta(_read_meta(raw, where), where)
    arrays = {n: from_bf16_bits(raw[n]) for n in _FLOAT_FIELDS}
    arrays.update({n: raw[n] for n in _INT_FIELDS})
    _check_structure(arrays, where)
    for name in _FLOAT_FIELDS:
        if not np.isfinite(arrays[name]).all():
            raise ValueError(f"{where}{name} must be finite (holds inf or NaN patterns)")
    return Trace(**arrays, meta=meta)


def _read_npz(npz: Any, raw: dict[str, np.ndarray], where: str) -> None:
    """Every array of ``npz`` into ``raw``, the meta's version first; names checked."""
    names = set(npz.files)
    if "meta" in names:  # the version first: an old trace lacks the new arrays
        _check_meta(_read_meta(npz, where), where)
    for name in _ARRAYS:
        if name not in names:
            raise ValueError(f"{where}missing array {name!r}")
    extra = sorted(names - set(_ARRAYS))
    if extra:
        raise ValueError(f"{where}unexpected array {extra[0]!r}")
    for name in _ARRAYS:
        try:
            raw[name] = npz[name]
        except (ValueError, *_ZIP_ERRORS) as error:
            raise ValueError(f"{where}{name} is unreadable ({error})") from None


def _read_meta(arrays: Mapping[str, np.ndarray], where: str) -> object:
    try:
        meta_arr = arrays["meta"]
    except (ValueError, *_ZIP_ERRORS) as error:
        raise ValueError(f"{where}meta is unreadable ({error})") from None
    if meta_arr.dtype.kind != "U" or meta_arr.ndim != 0:
        raise ValueError(
            f"{where}meta must be a 0-d string array (JSON), not {meta_arr.dtype} {meta_arr.shape}"
        )
    try:
        return json.loads(str(meta_arr[()]))
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}meta is not valid JSON ({error})") from None


# Cache ----------------------------------------------------------------------------------


class WorkloadSpec(Protocol):
    """What ``load_or_make`` needs of a workload configuration (a frozen dataclass)."""

    #: Bumped whenever the same configuration would give different bits.
    GENERATOR: ClassVar[str]

    def cache_stem(self) -> str:
        """A readable file-name prefix (e.g. the clip and feature source)."""
        ...

    def make(self, *, progress: bool = True) -> Trace:
        """Build the trace."""
        ...


def config_hash(cfg: WorkloadSpec) -> str:
    """Hex digest identifying the trace ``cfg`` makes (config + format + generator)."""
    blob = json.dumps(
        {"format": FORMAT_VERSION, "generator": cfg.GENERATOR, "config": asdict(cfg)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_path(cfg: WorkloadSpec, cache_dir: str | os.PathLike[str] = "build/traces") -> Path:
    """Where ``load_or_make`` keeps the trace of ``cfg``: ``<stem>-<hash16>.npz``."""
    return Path(cache_dir) / f"{cfg.cache_stem()}-{config_hash(cfg)[:16]}.npz"


def load_or_make(
    cfg: WorkloadSpec,
    cache_dir: str | os.PathLike[str] = "build/traces",
    *,
    progress: bool = True,
) -> Trace:
    """The trace of ``cfg`` from ``cache_dir`` if cached there, else made and cached.

    A cached file that fails to load (an older format included) or whose recorded config
    differs is rebuilt.
    """
    path = cached_path(cfg, cache_dir)
    if path.exists():
        try:
            trace = load(path)
        except ValueError:
            trace = None
        if trace is not None and trace.meta.get("config") == json.loads(json.dumps(asdict(cfg))):
            return trace
    trace = cfg.make(progress=progress)
    save(trace, path)
    return trace
