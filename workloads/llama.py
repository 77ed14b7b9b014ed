"""The Llama decoder in NumPy (float32), with an explicit KV cache: SmolLM2-135M-Instruct as a
real workload (``workloads.smollm`` reads the weights, ``workloads.bpe`` the tokenizer).

One block, for the m tokens of a chunk at positions ``p = n .. n+m-1`` (``n = cache.n``)::

    h = rmsnorm(x) * attn_norm                       # float32, eps = config.norm_eps
    q = h Wq^T (Hq, m, d);  k = h Wk^T, v = h Wv^T (Hkv, m, d)
    q' = rope(q, p), k' = rope(k, p)                 # golden.rope.rope, base = config.rope_base
    cache <- (k', v) appended
    query head j attends with KV head j // group (GQA, group = Hq / Hkv), scale 1/sqrt(d),
      over the old tokens (all of them, or the ids the ``attend`` hook picks) plus the chunk's
      own tokens up to its own position (causal)
    x += attn Wo^T;  x += (silu(h2 Wgate^T) * (h2 Wup^T)) Wdown^T,  h2 = rmsnorm(x) * ffn_norm
    logits = rmsnorm(x) * output_norm @ output^T     # output = token_embd (tied)

Attention runs per KV head as matrix products over blocks of queries (each block only reads
the keys it may see), so memory stays bounded (about 16 MB of scores) for any chunk length.

Interfaces:

- ``KVCache``: one stream's post-RoPE keys and values per layer; ``n``, ``keys(layer)``,
  ``values(layer)`` (read-only views ``(Hkv, n, d)``), ``copy()``, ``truncate(n)``,
  ``KVCache.from_arrays(keys, values)``. ``forward`` advances ``n`` only once every layer is
  done, so inside an ``attend`` hook the cache still shows just the old tokens.
- ``Capture``: what ``forward`` saw per layer, appended over successive calls:
  ``q_pre(layer)``/``q_post(layer)`` ``(Hq, t, d)``, ``k_pre``/``k_post``/``v`` ``(Hkv, t, d)``,
  ``positions`` ``(t,)``.
- ``AttendHook``: ``attend(layer, q_pre, q_post, positions)`` returns ``None`` (attend to every
  old token) or a list of ``Hkv`` integer arrays, the ids of the old cache tokens (``< n``)
  each KV head's query heads attend to; the chunk's own tokens are always attended causally.
- ``LlamaModel``: ``load(path=None, *, blas_threads=1)``, ``new_cache()``, ``embed(ids)``,
  ``forward``, ``prefill`` (chunked), ``generate`` (greedy). ``forward`` runs its products on
  ``blas_threads`` BLAS threads (1 by default: see ``LlamaModel``).

Errors: a stream longer than ``config.context_length`` raises ``ValueError`` giving both
numbers before any work; bad ids, embeddings, hook results or arguments raise ``ValueError``
/ ``TypeError`` naming the parameter and the value.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy.special import expit
from threadpoolctl import ThreadpoolController

from golden.rope import rope
from workloads.bpe import Tokenizer
from workloads.smollm import LlamaConfig, LlamaWeights, load_weights

__all__ = ["AttendHook", "Capture", "KVCache", "LlamaModel"]

AttendHook = Callable[[int, np.ndarray, np.ndarray, np.ndarray], "list[np.ndarray] | None"]

LOGITS = ("all", "last", "none")
_SCORE_BUDGET = 1 << 22  # attention scores held at once, in float32 elements (16 MB)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.view()
    a.setflags(write=False)
    return a


class KVCache:
    """Post-RoPE keys and values of one stream: ``n_layers`` x ``(n_kv_heads, n, head_dim)``,
    float32. Storage grows by doubling; ``n`` is only advanced by a completed forward."""

    def __init__(self, *, n_layers: int, n_kv_heads: int, head_dim: int, capacity: int = 0):
        self._shape = (
            _positive_int("n_layers", n_layers),
            _positive_int("n_kv_heads", n_kv_heads),
            _positive_int("head_dim", head_dim),
        )
        if isinstance(capacity, bool) or not isinstance(capacity, numbers.Integral):
            raise TypeError(f"capacity must be a non-negative integer, not {capacity!r}")
        if capacity < 0:
            raise ValueError(f"capacity must be a non-negative integer, not {capacity!r}")
        L, H, d = self._shape
        self._k = np.zeros((L, H, int(capacity), d), np.float32)
        self._v = np.zeros((L, H, int(capacity), d), np.float32)
        self._n = 0

    @property
    def n(self) -> int:
        """Tokens held."""
        return self._n

    @property
    def n_layers(self) -> int:
        return self._shape[0]

    @property
    def n_kv_heads(self) -> int:
        return self._shape[1]

    @property
    def head_dim(self) -> int:
        return self._shape[2]

    @property
    def capacity(self) -> int:
        return self._k.shape[2]

    def _layer(self, layer) -> int:
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
            raise TypeError(f"layer must be an integer, not {layer!r}")
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in 0..{self.n_layers - 1}, not {layer!r}")
        return int(layer)

    def keys(self, layer: int) -> np.ndarray:
        """Post-RoPE keys of ``layer``, ``(n_kv_heads, n, head_dim)``, a read-only view."""
        return _readonly(self._k[self._layer(layer), :, : self._n])

    def values(self, layer: int) -> np.ndarray:
        """Values of ``layer``, ``(n_kv_heads, n, head_dim)``, a read-only view."""
        return _readonly(self._v[self._layer(layer), :, : self._n])

    @classmethod
    def from_arrays(cls, keys, values) -> KVCache:
        """A cache holding post-RoPE ``keys`` and ``values``, both ``(n_layers, n_kv_heads, n,
        head_dim)`` (copied, as float32): a stream recorded earlier, to rerun from."""
        k, v = np.asarray(keys), np.asarray(values)
        if k.ndim != 4 or not np.issubdtype(k.dtype, np.floating):
            raise ValueError(
                f"keys must be a float array (n_layers, n_kv_heads, n, head_dim), "
                f"not {k.dtype} {k.shape}"
            )
        if v.shape != k.shape or not np.issubdtype(v.dtype, np.floating):
            raise ValueError(
                f"values must be a float array of shape {k.shape}, not {v.dtype} {v.shape}"
            )
        cache = cls(n_layers=k.shape[0], n_kv_heads=k.shape[1], head_dim=k.shape[3])
        cache._k = np.array(k, dtype=np.float32, copy=True)
        cache._v = np.array(v, dtype=np.float32, copy=True)
        cache._n = k.shape[2]
        return cache

    def copy(self) -> KVCache:
        """An independent copy of the ``n`` tokens held."""
        other = KVCache(n_layers=self.n_layers, n_kv_heads=self.n_kv_heads, head_dim=self.head_dim)
        other._k = self._k[:, :, : self._n].copy()
        other._v = self._v[:, :, : self._n].copy()
        other._n = self._n
        return other

    def truncate(self, n: int) -> None:
        """Drop the tokens at positions ``>= n``."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"n must be an integer, not {n!r}")
        if not 0 <= n <= self._n:
            raise ValueError(f"n must be in 0..{self._n} (the tokens held), not {n!r}")
        self._n = int(n)

    def _reserve(self, total: int) -> None:
        if total <= self.capacity:
            return
        cap = max(total, 2 * self.capacity)
        for name in ("_k", "_v"):
            old = getattr(self, name)
            new = np.zeros((*old.shape[:2], cap, old.shape[3]), np.float32)
            new[:, :, : self._n] = old[:, :, : self._n]
            setattr(self, name, new)


class Capture:
    """Per-layer tensors recorded by ``LlamaModel.forward`` (all layers, or ``layers``),
    appended along the token axis over successive forward calls."""

    FIELDS = ("q_pre", "q_post", "k_pre", "k_post", "v")

    def __init__(self, *, layers: Iterable[int] | None = None):
        if layers is not None:
            layers = tuple(layers)
            for layer in layers:
                if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or layer < 0:
                    raise ValueError(f"layers must hold non-negative integers, not {layer!r}")
            layers = frozenset(int(x) for x in layers)
        self._layers = layers
        self._parts: dict[tuple[str, int], list[np.ndarray]] = {}
        self._positions: list[np.ndarray] = []

    @property
    def layers(self) -> tuple[int, ...]:
        """The layers recorded so far (sorted)."""
        return tuple(sorted({layer for _, layer in self._parts}))

    def wants(self, layer: int) -> bool:
        return self._layers is None or layer in self._layers

    @property
    def n(self) -> int:
        """Tokens recorded."""
        return sum(len(p) for p in self._positions)

    @property
    def positions(self) -> np.ndarray:
        """Positions of the recorded tokens, ``(n,)`` int64."""
        if len(self._positions) != 1:
            self._positions = [np.concatenate(self._positions or [np.zeros(0, np.int64)])]
        return _readonly(self._positions[0])

    def _get(self, field: str, layer: int) -> np.ndarray:
        parts = self._parts.get((field, layer))
        if parts is None:
            raise ValueError(
                f"layer must be one of the recorded layers {self.layers}, not {layer!r}"
            )
        if len(parts) != 1:
            parts[:] = [np.concatenate(parts, axis=1)]
        return _readonly(parts[0])

    def q_pre(self, layer: int) -> np.ndarray:
        """Queries before RoPE, ``(Hq, n, d)``."""
        return self._get("q_pre", layer)

    def q_post(self, layer: int) -> np.ndarray:
        """Queries after RoPE, ``(Hq, n, d)``."""
        return self._get("q_post", layer)

    def k_pre(self, layer: int) -> np.ndarray:
        """Keys before RoPE, ``(Hkv, n, d)``."""
        return self._get("k_pre", layer)

    def k_post(self, layer: int) -> np.ndarray:
        """Keys after RoPE (what the cache holds), ``(Hkv, n, d)``."""
        return self._get("k_post", layer)

    def v(self, layer: int) -> np.ndarray:
        """Values, ``(Hkv, n, d)``."""
        return self._get("v", layer)

    def _commit(self, positions: np.ndarray, records: dict[int, dict[str, np.ndarray]]) -> None:
        self._positions.append(positions)
        for layer, arrays in records.items():
            for field in self.FIELDS:
                self._parts.setdefault((field, layer), []).append(arrays[field])


def _rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.mean(np.square(x), axis=-1, keepdims=True)
    return (x / np.sqrt(ms + np.float32(eps))) * w


class LlamaModel:
    """A Llama decoder over float32 ``weights`` (``workloads.smollm.load_weights``).

    ``blas_threads``: BLAS threads inside ``forward`` (``threadpoolctl``), 1 by default;
    ``None`` leaves the process's setting alone. OpenBLAS with more threads than free cores
    collapses, which is the normal case under ``pytest -n 2``. Measured on 2 cores, a
    4096-token forward through the 30 layers: idle, 15.9 s on 1 thread and 10.4 s on 2;
    next to a process busy on one core, 16.2 s on 1 thread and 33 s on 2 (one decoded token
    at 4096 tokens of context: 69 ms on 1 thread, 6 s on 2).
    """

    def __init__(
        self,
        *,
        weights: LlamaWeights,
        tokenizer: Tokenizer | None = None,
        blas_threads: int | None = 1,
    ):
        if not isinstance(weights, LlamaWeights):
            raise TypeError(f"weights must be a LlamaWeights, not {weights!r}")
        if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a Tokenizer or None, not {tokenizer!r}")
        if tokenizer is not None and tokenizer.vocab_size != weights.config.vocab_size:
            raise ValueError(
                f"tokenizer must have vocab_size {weights.config.vocab_size}, "
                f"not {tokenizer.vocab_size!r}"
            )
        if blas_threads is not None:
            blas_threads = _positive_int("blas_threads", blas_threads)
        self._w = weights
        self._tokenizer = tokenizer
        self._blas_threads = blas_threads

    @classmethod
    def load(cls, path: str | Path | None = None, *, blas_threads: int | None = 1) -> LlamaModel:
        """The model and tokenizer of a GGUF (default: the shipped SmolLM2-135M-Instruct)."""
        return cls(
            weights=load_weights(path),
            tokenizer=Tokenizer.from_gguf(path),
            blas_threads=blas_threads,
        )

    @property
    def blas_threads(self) -> int | None:
        return self._blas_threads

    @property
    def config(self) -> LlamaConfig:
        return self._w.config

    @property
    def weights(self) -> LlamaWeights:
        return self._w

    @property
    def tokenizer(self) -> Tokenizer | None:
        return self._tokenizer

    def new_cache(self) -> KVCache:
        c = self.config
        return KVCache(n_layers=c.n_layers, n_kv_heads=c.n_kv_heads, head_dim=c.head_dim)

    def embed(self, ids) -> np.ndarray:
        """Token embeddings ``(m, dim)`` float32 of ``ids``."""
        return self._w.token_embd[self._check_ids(ids)]

    # -- forward -----------------------------------------------------------------------------

    def forward(
        self,
        cache: KVCache,
        *,
        ids=None,
        embeddings=None,
        capture: Capture | None = None,
        attend: AttendHook | None = None,
        logits: str = "last",
    ) -> np.ndarray | None:
        """Feed m tokens at positions ``cache.n .. cache.n+m-1`` and append their keys and
        values to ``cache``. Returns logits ``(m, vocab)`` (``"all"``), ``(vocab,)``
        (``"last"``) or ``None`` (``"none"``)."""
        self._check_cache(cache)
        if logits not in LOGITS:
            raise ValueError(f"logits must be one of {LOGITS}, not {logits!r}")
        x = self._inputs(ids, embeddings)
        m, n0 = x.shape[0], cache.n
        self._check_context(n0, m)
        if capture is not None and not isinstance(capture, Capture):
            raise TypeError(f"capture must be a Capture or None, not {capture!r}")
        if self._blas_threads is None:
            limit = contextlib.nullcontext()
        else:
            limit = _blas().limit(limits=self._blas_threads, user_api="blas")
        with limit:
            return self._forward(cache, x, capture, attend, logits)

    def _forward(self, cache, x, capture, attend, logits) -> np.ndarray | None:
        cfg = self.config
        m, n0 = x.shape[0], cache.n
        pos = np.arange(n0, n0 + m, dtype=np.int64)
        hq, hkv, d = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        eps = cfg.norm_eps
        cache._reserve(n0 + m)
        records: dict[int, dict[str, np.ndarray]] = {}
        for layer, lw in enumerate(self._w.layers):
            h = _rmsnorm(x, lw.attn_norm, eps)
            q = _readonly((h @ lw.wq.T).reshape(m, hq, d).transpose(1, 0, 2))
            k = _readonly((h @ lw.wk.T).reshape(m, hkv, d).transpose(1, 0, 2))
            v = _readonly(np.ascontiguousarray((h @ lw.wv.T).reshape(m, hkv, d).transpose(1, 0, 2)))
            q_post = _readonly(rope(q, pos, base=cfg.rope_base))
            k_post = _readonly(rope(k, pos, base=cfg.rope_base))
            cache._k[layer, :, n0 : n0 + m] = k_post
            cache._v[layer, :, n0 : n0 + m] = v
            select = None
            if attend is not None:
                select = self._check_selection(attend(layer, q, q_post, _readonly(pos)), layer, n0)
            if capture is not None and capture.wants(layer):
                records[layer] = {
                    "q_pre": q,
                    "q_post": q_post,
                    "k_pre": k,
                    "k_post": k_post,
                    "v": v,
                }
            att = self._attention(cache, layer, n0, q_post, select)
            x += att @ lw.wo.T
            h = _rmsnorm(x, lw.ffn_norm, eps)
            gate = h @ lw.w_gate.T
            gate *= expit(gate)
            gate *= h @ lw.w_up.T
            x += gate @ lw.w_down.T
        cache._n = n0 + m
        if capture is not None:
            capture._commit(pos, records)
        if logits == "none":
            return None
        if logits == "last":
            x = x[-1:]
        out = _rmsnorm(x, self._w.output_norm, eps) @ self._w.output.T
        return out[0] if logits == "last" else out

    def _attention(
        self, cache: KVCache, layer: int, n0: int, q: np.ndarray, select: list[np.ndarray] | None
    ) -> np.ndarray:
        """Attention output ``(m, Hq * d)`` for post-RoPE queries ``q`` ``(Hq, m, d)``; the
        chunk's keys/values are already in the cache at ``n0 .. n0+m-1``."""
        cfg = self.config
        g, d = cfg.group, cfg.head_dim
        m = q.shape[1]
        out = np.empty((m, cfg.n_heads, d), np.float32)
        scale = np.float32(1.0 / math.sqrt(d))
        keys_all, vals_all = cache._k[layer], cache._v[layer]
        for h in range(cfg.n_kv_heads):
            if select is None:
                n_old = n0
                keys, vals = keys_all[h, : n0 + m], vals_all[h, : n0 + m]
            else:
                n_old = len(select[h])
                keys = np.concatenate([keys_all[h, select[h]], keys_all[h, n0 : n0 + m]])
                vals = np.concatenate([vals_all[h, select[h]], vals_all[h, n0 : n0 + m]])
            block = int(min(m, max(16, _SCORE_BUDGET // (g * (n_old + m)))))
            mask = np.triu(np.full((block, block), -np.inf, np.float32), 1)
            qh = q[h * g : (h + 1) * g] * scale  # (g, m, d)
            for a in range(0, m, block):
                b = min(m, a + block)
                nk = n_old + b  # this block of queries sees no key after its last query
                s = (qh[:, a:b].reshape(g * (b - a), d) @ keys[:nk].T).reshape(g, b - a, nk)
                s[:, :, n_old + a :] += mask[: b - a, : b - a]
                s -= s.max(axis=-1, keepdims=True)
                np.exp(s, out=s)
                denom = s.sum(axis=-1, keepdims=True)
                o = (s.reshape(g * (b - a), nk) @ vals[:nk]).reshape(g, b - a, d) / denom
                out[a:b, h * g : (h + 1) * g] = o.transpose(1, 0, 2)
        return out.reshape(m, cfg.n_heads * d)

    # -- streams -----------------------------------------------------------------------------

    def prefill(
        self,
        cache: KVCache,
        inputs,
        *,
        chunk: int = 256,
        capture: Capture | None = None,
        attend: AttendHook | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Feed ``inputs`` (token ids, or float embeddings ``(m, dim)``) in chunks of ``chunk``
        tokens; returns the logits ``(vocab,)`` after the last one."""
        chunk = _positive_int("chunk", chunk)
        arr = np.asarray(inputs)
        is_emb = arr.ndim == 2 and np.issubdtype(arr.dtype, np.floating)
        m = len(arr) if is_emb else len(self._check_ids(inputs))
        self._check_cache(cache)
        self._check_context(cache.n, m)
        logits = None
        for a in range(0, m, chunk):
            b = min(m, a + chunk)
            part = {"embeddings": arr[a:b]} if is_emb else {"ids": arr[a:b]}
            logits = self.forward(
                cache,
                **part,
                capture=capture,
                attend=attend,
                logits="last" if b == m else "none",
            )
            if progress:
                print(f"prefill: {b}/{m} tokens", file=sys.stderr, flush=True)
        return logits

    def default_stop_ids(self) -> tuple[int, ...]:
        """``config.eos_id`` (``<|im_end|>`` here) and ``<|endoftext|>`` when it exists."""
        stops = [self.config.eos_id]
        if self._tokenizer is not None:
            eot = self._tokenizer.special_ids.get("<|endoftext|>")
            if eot is not None and eot not in stops:
                stops.append(eot)
        return tuple(stops)

    def generate(
        self,
        cache: KVCache,
        ids,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int] | None = None,
        capture: Capture | None = None,
        chunk: int = 256,
    ) -> list[int]:
        """Greedy decoding: feed ``ids`` (chunked), then take the argmax token, feed it, and so
        on, until ``max_new_tokens`` tokens or a token of ``stop_ids`` (default
        ``default_stop_ids()``). Returns the new tokens, a final stop token included; the cache
        then holds ``ids`` and every returned token but the last."""
        max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
        stops = set(self.default_stop_ids() if stop_ids is None else (int(s) for s in stop_ids))
        logits = self.prefill(cache, ids, chunk=chunk, capture=capture)
        out: list[int] = []
        while True:
            token = int(np.argmax(logits))
            out.append(token)
            if token in stops or len(out) == max_new_tokens:
                return out
            logits = self.forward(cache, ids=[token], capture=capture)

    # -- checks ------------------------------------------------------------------------------

    def _check_cache(self, cache) -> None:
        if not isinstance(cache, KVCache):
            raise TypeError(f"cache must be a KVCache, not {cache!r}")
        c = self.config
        want = (c.n_layers, c.n_kv_heads, c.head_dim)
        got = (cache.n_layers, cache.n_kv_heads, cache.head_dim)
        if got != want:
            raise ValueError(
                f"cache must have (n_layers, n_kv_heads, head_dim) {want}, not {got}: "
                "make it with model.new_cache()"
            )

    def _check_context(self, n0: int, m: int) -> None:
        ctx = self.config.context_length
        if n0 + m > ctx:
            raise ValueError(
                f"stream length must be at most the model's context_length {ctx}, "
                f"not {n0 + m} ({n0} cached + {m} new): the stream is longer than the "
                "model's context"
            )

    def _check_ids(self, ids) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"ids must be a non-empty 1-D sequence of token ids, not {ids!r}")
        vocab = self.config.vocab_size
        if arr.min() < 0 or arr.max() >= vocab:
            bad = arr[(arr < 0) | (arr >= vocab)][0]
            raise ValueError(f"ids must be in 0..{vocab - 1}, not {int(bad)!r}")
        return arr.astype(np.int64, copy=False)

    def _inputs(self, ids, embeddings) -> np.ndarray:
        if (ids is None) == (embeddings is None):
            raise ValueError(
                "forward needs exactly one of ids= or embeddings=, not both or neither"
            )
        if ids is not None:
            return self.embed(ids)  # fancy indexing: a fresh array, safe to update in place
        arr = np.asarray(embeddings)
        dim = self.config.dim
        if (
            arr.ndim != 2
            or arr.shape[0] == 0
            or arr.shape[1] != dim
            or not np.issubdtype(arr.dtype, np.floating)
        ):
            raise ValueError(
                f"embeddings must be a float array of shape (m, {dim}) with m >= 1, "
                f"not {arr.dtype} {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError("embeddings must be finite, not hold NaN or infinity")
        return np.array(arr, dtype=np.float32, copy=True)

    def _check_selection(self, select, layer: int, n0: int) -> list[np.ndarray] | None:
        if select is None:
            return None
        hkv = self.config.n_kv_heads
        if not isinstance(select, Sequence) or len(select) != hkv:
            raise ValueError(
                f"attend(layer={layer}) must return None or a list of {hkv} id arrays "
                f"(one per KV head), not {select!r}"
            )
        out = []
        for h, ids in enumerate(select):
            arr = np.asarray(ids)
            if arr.size == 0:
                out.append(np.zeros(0, np.int64))
                continue
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(
                    f"attend(layer={layer})[{h}] must be a 1-D integer array, "
                    f"not {arr.dtype} {arr.shape}"
                )
            if arr.min() < 0 or arr.max() >= n0:
                raise ValueError(
                    f"attend(layer={layer})[{h}] must hold ids of old tokens (0 <= id < {n0}), "
                    f"not {arr.min()}..{arr.max()}"
                )
            if len(np.unique(arr)) != len(arr):
                raise ValueError(f"attend(layer={layer})[{h}] must not repeat an id")
            out.append(arr.astype(np.int64, copy=False))
        return out
