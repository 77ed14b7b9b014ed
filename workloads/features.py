"""Per-frame token features from real frames, all offline (SPEC section 5).

None of these are video-LLM keys: they are real image features with real spatial and
temporal structure, used to drive ReSV with realistic redundancy.

Sources (``SOURCES``):

``det``
    PP-OCRv4 detection backbone (``ch_PP-OCRv4_det_infer.onnx`` from the installed
    ``rapidocr_onnxruntime`` package), stride-16 tensor ``p2o.Add.147``. The frame is
    resized to 224x224 (area filter), put in BGR order as PaddleOCR's cv2-based training
    pipeline sees it, normalised with the ImageNet mean/std → (192, 14, 14): a 14x14 grid
    of 192-d tokens. The graph is pruned to what that tensor needs, so the FPN and head do
    not run.
``rec``
    PP-OCRv4 recognition model (``ch_PP-OCRv4_rec_infer.onnx``), its two real SVTR
    self-attention blocks (8 heads x 15 dims, model dim 120). The frame is resized to
    ``strips * 48`` rows x ``8 * strip_tokens`` columns (``REC_LAYOUT``), cut into 48-row
    strips, normalised ``(x/255 - 0.5)/0.5``; each strip yields ``strip_tokens`` tokens.
    Captured per block: keys (``transpose_45.tmp_0`` / ``transpose_48.tmp_0``, stored as
    K^T), queries (``p2o.Mul.181`` / ``p2o.Mul.190``, already multiplied by 15^-0.5 by the
    model), values (``transpose_44.tmp_0_slice_2`` / ``transpose_47.tmp_0_slice_2``), and
    the layer-normed block-1 input ``p2o.Add.235`` (120-d) as the generic token feature.
``pixels``
    Control without a learned model: the 224x224 frame (same preprocessing as ``det``) cut
    into 16x16 patches (14x14 grid of 768 raw values) and multiplied by a fixed seeded
    Gaussian matrix (768 → ``PIXEL_DIM``).

Spatial pooling to ``tokens_per_frame`` (``GRIDS``): every source first produces a native
grid, which is average-pooled to the target grid with adaptive bins (bin i of n over m
cells spans cells ``floor(i*m/n)`` to ``ceil((i+1)*m/n)``; bins may overlap by one cell).

==================  ===========  ======================================================
tokens_per_frame    grid (r, c)  why
==================  ===========  ======================================================
10                  2 x 5        VideoLLM-Online's 10 tokens per frame (landscape 2x5)
49                  7 x 7        a 2x2 pool of the 14x14 backbone grid
196                 14 x 14      the backbone grid itself (a ViT-B/16 at 224²)
==================  ===========  ======================================================

``rec`` has no 14x14 grid of its own, so its input layout depends on the target grid
(``REC_LAYOUT``, all about 75K input pixels per frame, so the cost stays the same):
10 → 5 strips x 40 tokens (a 240x320 frame, the layout of DATA.md) pooled to 2x5;
49 → 7 strips x 28 tokens pooled 1x4 to 7x7; 196 → 14 strips x 14 tokens, no pooling.
Pooling rec keys/queries/values is exact w.r.t. the model: they are affine in the
layer-normed block input, so the mean of the keys is the key of the mean input.

Output (``Features``): ``tokens`` (F, T, C) float32, T = tokens_per_frame, token order
row-major over the grid; for ``rec`` also ``attn_q``, ``attn_k``, ``attn_v`` of shape
(F, 2 blocks, 8 heads, T, 15), keys untransposed, queries as the model scales them.

Runtime: onnxruntime on the CPU with ``intra_op_num_threads=2``; one session per model per
process (cached). Long runs print ``frames done / total`` to stderr.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import cv2
import numpy as np
import onnx
import onnxruntime as ort

__all__ = [
    "DET_DIM",
    "GRIDS",
    "PIXEL_DIM",
    "REC_BLOCKS",
    "REC_HEADS",
    "REC_HEAD_DIM",
    "REC_LAYOUT",
    "SOURCES",
    "Features",
    "Progress",
    "check_source",
    "check_tokens_per_frame",
    "det_input",
    "frame_features",
    "model_path",
    "rec_input",
]

Source = Literal["det", "rec", "pixels"]
SOURCES: tuple[str, ...] = ("det", "rec", "pixels")

#: tokens_per_frame → pooled grid (rows, cols); see the module docstring's table.
GRIDS: dict[int, tuple[int, int]] = {10: (2, 5), 49: (7, 7), 196: (14, 14)}
#: tokens_per_frame → rec input layout (strips of 48 rows, tokens per strip).
REC_LAYOUT: dict[int, tuple[int, int]] = {10: (5, 40), 49: (7, 28), 196: (14, 14)}

#: Width of the det backbone's stride-16 tokens.
DET_DIM = 192
REC_BLOCKS = 2
REC_HEADS = 8
REC_HEAD_DIM = 15
#: Width of the pixel control's tokens (the det backbone's width, so the two compare).
PIXEL_DIM = 192

_DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
_REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"
_DET_OUT = "p2o.Add.147"
_DET_SIZE = 224
_DET_STRIDE = 16
_DET_GRID = _DET_SIZE // _DET_STRIDE
_DET_BATCH = 4  # frames per onnxruntime call: measured faster than 1 or 8 on 2 cores
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
_REC_ROWS = 48
_REC_TOKEN_COLS = 8  # the rec backbone's horizontal stride
_REC_FEATURE = "p2o.Add.235"
#: Per block: keys (K^T), queries, values.
_REC_QKV = (
    ("transpose_45.tmp_0", "p2o.Mul.181", "transpose_44.tmp_0_slice_2"),
    ("transpose_48.tmp_0", "p2o.Mul.190", "transpose_47.tmp_0_slice_2"),
)
_THREADS = 2


def check_source(source: object) -> str:
    """``source`` if it names a feature source, else ``ValueError``."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(map(repr, SOURCES))}, not {source!r}")
    return str(source)


def check_tokens_per_frame(tokens_per_frame: object) -> int:
    """``tokens_per_frame`` if it is a key of ``GRIDS``, else ``ValueError``."""
    valid = isinstance(tokens_per_frame, int | np.integer) and not isinstance(
        tokens_per_frame, bool
    )
    if not valid or tokens_per_frame not in GRIDS:
        choices = ", ".join(map(str, GRIDS))
        raise ValueError(f"tokens_per_frame must be one of {choices}, not {tokens_per_frame!r}")
    return int(tokens_per_frame)  # type: ignore[arg-type]


class Progress:
    """``label: done/total frames`` on a stream (stderr), at most every ``interval`` s."""

    def __init__(
        self, label: str, total: int, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.start = self.last = time.perf_counter()
        self.interval = 1.0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done >= self.total or now - self.last >= self.interval:
            self.last = now
            rate = (now - self.start) / max(done, 1) * 1e3
            # On a terminal one line updates in place; in logs every report is its own line.
            tty = getattr(self.stream, "isatty", lambda: False)()
            prefix = "\r" if tty else ""
            end = "\n" if done >= self.total or not tty else ""
            self.stream.write(
                f"{prefix}{self.label}: {done}/{self.total} frames ({rate:.1f} ms/frame){end}"
            )
            self.stream.flush()


# Models ---------------------------------------------------------------------------------


def model_path(filename: str) -> Path:
    """Path of a model file inside the installed ``rapidocr_onnxruntime`` package."""
    # find_spec avoids importing the package (it pulls in its whole OCR pipeline).
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "models" / filename
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"model {filename!r} not found: is rapidocr-onnxruntime 1.4.4 installed?"
    )


def _prune(model: onnx.ModelProto, outputs: tuple[str, ...]) -> onnx.ModelProto:
    """Keep only the nodes ``outputs`` depend on, and make those the graph outputs."""
    graph = model.graph
    producer = {name: i for i, node in enumerate(graph.node) for name in node.output}
    missing = [name for name in outputs if name not in producer]
    if missing:
        raise ValueError(f"tensors {missing} not found in the model graph")
    needed: set[str] = set()
    keep: set[int] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        i = producer.get(name)
        if i is not None and i not in keep:
            keep.add(i)
            stack.extend(x for x in graph.node[i].input if x)
    nodes = [node for i, node in enumerate(graph.node) if i in keep]
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    del graph.value_info[:]
    del graph.output[:]
    graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in outputs
    )
    return model


@functools.cache
def _session(filename: str, outputs: tuple[str, ...]) -> ort.InferenceSession:
    model = _prune(onnx.load(str(model_path(filename))), outputs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = _THREADS
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # its shape-inference notes are noise on stderr
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


# Pooling and resizing -------------------------------------------------------------------


def _pool_matrix(cells: int, bins: int) -> np.ndarray:
    """(bins, cells) averaging matrix of adaptive average pooling."""
    m = np.zeros((bins, cells), np.float32)
    for i in range(bins):
        lo, hi = (i * cells) // bins, -((-(i + 1) * cells) // bins)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _pool(grid: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Pool (..., R, C, D) to (..., rows * cols, D), row-major."""
    r, c = grid.shape[-3], grid.shape[-2]
    if (r, c) == (rows, cols):
        out = grid
    else:
        # Two matmuls (BLAS) instead of one einsum, which numpy runs as slow loops.
        d = grid.shape[-1]
        by_rows = _pool_matrix(r, rows) @ grid.reshape(*grid.shape[:-3], r, c * d)
        out = _pool_matrix(c, cols) @ by_rows.reshape(*grid.shape[:-3], rows, c, d)
    return np.ascontiguousarray(out.reshape(*grid.shape[:-3], rows * cols, grid.shape[-1]))


def _resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    # Area filtering avoids aliasing when shrinking; it is nearest-like when enlarging.
    interp = cv2.INTER_AREA if (height <= h and width <= w) else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interp)


def det_input(frames: np.ndarray) -> np.ndarray:
    """Model input of ``det`` and ``pixels``: (B, H, W, 3) RGB uint8 → (B, 3, 224, 224)
    float32, BGR order, ImageNet-normalised."""
    batch = np.stack([_resize(f, _DET_SIZE, _DET_SIZE) for f in frames])[..., ::-1]
    x = (batch.astype(np.float32) / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def rec_input(frame: np.ndarray, tokens_per_frame: int) -> np.ndarray:
    """Model input of ``rec`` for one (H, W, 3) RGB uint8 frame: (strips, 3, 48, 8 *
    strip_tokens) float32, BGR order, normalised to [-1, 1] (``REC_LAYOUT``)."""
    strips, per_strip = REC_LAYOUT[check_tokens_per_frame(tokens_per_frame)]
    width = per_strip * _REC_TOKEN_COLS
    img = _resize(frame, strips * _REC_ROWS, width)[..., ::-1]
    x = (img.astype(np.float32) / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(x.reshape(strips, _REC_ROWS, width, 3).transpose(0, 3, 1, 2))


# Sources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """Token features of F frames. See the module docstring for the meaning per source."""

    source: str
    tokens_per_frame: int
    grid: tuple[int, int]
    #: (F, T, C) float32.
    tokens: np.ndarray
    #: rec only: (F, REC_BLOCKS, REC_HEADS, T, REC_HEAD_DIM) float32 queries/keys/values.
    attn_q: np.ndarray | None = None
    attn_k: np.ndarray | None = None
    attn_v: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return self.tokens.shape[0]


def _det(frames: np.ndarray, grid: tuple[int, int], progress: Progress) -> Features:
    session = _session(_DET_MODEL, (_DET_OUT,))
    out = np.empty((len(frames), _DET_GRID, _DET_GRID, DET_DIM), np.float32)
    for lo in range(0, len(frames), _DET_BATCH):
        hi = min(lo + _DET_BATCH, len(frames))
        (y,) = session.run([_DET_OUT], {"x": det_input(frames[lo:hi])})
        out[lo:hi] = y.transpose(0, 2, 3, 1)
        progress.update(hi)
    return Features("det", grid[0] * grid[1], grid, _pool(out, *grid))


def _pixels(frames: np.ndarray, grid: tuple[int, int], seed: int, progress: Progress) -> Features:
    p = _DET_STRIDE
    proj = np.random.default_rng(seed).standard_normal((p * p * 3, PIXEL_DIM)).astype(np.float32)
    proj /= math.sqrt(p * p * 3)  # unit gain: token RMS ~ normalised pixel RMS
    out = np.empty((len(frames), _DET_GRID, _DET_GRID, PIXEL_DIM), np.float32)
    for lo in range(0, len(frames), _DET_BATCH):
        hi = min(lo + _DET_BATCH, len(frames))
        x = det_input(frames[lo:hi])  # (B, 3, 224, 224)
        patches = x.reshape(hi - lo, 3, _DET_GRID, p, _DET_GRID, p).transpose(0, 2, 4, 1, 3, 5)
        out[lo:hi] = patches.reshape(hi - lo, _DET_GRID, _DET_GRID, -1) @ proj
        progress.update(hi)
    return Features("pixels", grid[0] * grid[1], grid, _pool(out, *grid))


def _rec(frames: np.ndarray, tokens_per_frame: int, progress: Progress) -> Features:
    grid = GRIDS[tokens_per_frame]
    strips, per_strip = REC_LAYOUT[tokens_per_frame]
    names = (_REC_FEATURE, *(name for block in _REC_QKV for name in block))
    session = _session(_REC_MODEL, names)
    n = len(frames)
    shape = (n, REC_BLOCKS, REC_HEADS, grid[0] * grid[1], REC_HEAD_DIM)
    q, k, v = (np.empty(shape, np.float32) for _ in range(3))
    tokens = np.empty((n, grid[0] * grid[1], REC_HEADS * REC_HEAD_DIM), np.float32)
    for f in range(n):
        outs = session.run(list(names), {"x": rec_input(frames[f], tokens_per_frame)})
        # Model outputs are per strip (batch); the strips are the native grid's rows.
        tokens[f] = _pool(outs[0].reshape(strips, per_strip, -1), *grid)
        for b in range(REC_BLOCKS):
            kt, qq, vv = outs[1 + 3 * b : 4 + 3 * b]
            # (strips, heads, T_s, 15) → (heads, strips, T_s, 15), pooled over the grid.
            k[f, b] = _pool(kt.transpose(1, 0, 3, 2), *grid)
            q[f, b] = _pool(qq.transpose(1, 0, 2, 3), *grid)
            v[f, b] = _pool(vv.transpose(1, 0, 2, 3), *grid)
        progress.update(f + 1)
    return Features("rec", grid[0] * grid[1], grid, tokens, q, k, v)


def frame_features(
    frames: np.ndarray,
    *,
    source: str,
    tokens_per_frame: int,
    seed: int = 0,
    progress: bool = True,
    label: str | None = None,
) -> Features:
    """Token features of ``frames`` ((F, H, W, 3) uint8 RGB) from ``source``.

    ``seed`` only affects ``pixels`` (its projection). ``progress`` prints frames done to
    stderr (``label`` names the run).
    """
    source = check_source(source)
    tokens_per_frame = check_tokens_per_frame(tokens_per_frame)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"frames must be a non-empty (F, H, W, 3) uint8 array, not {frames.dtype} "
            f"{frames.shape}"
        )
    grid = GRIDS[tokens_per_frame]
    bar = Progress(label or f"{source} features", len(frames), enabled=progress)
    if source == "det":
        return _det(frames, grid, bar)
    if source == "pixels":
        return _pixels(frames, grid, seed, bar)
    return _rec(frames, tokens_per_frame, bar)
