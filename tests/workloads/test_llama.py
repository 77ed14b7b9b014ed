"""workloads.llama: the NumPy SmolLM2 forward against a plain per-token reference on the raw
GGUF weights, its KV-cache invariants (chunking, decoding, attend hook, capture), the
perplexity of real English, a readable greedy answer, and its errors."""

import re
from pathlib import Path

import numpy as np
import pytest
from gguf import quants
from threadpoolctl import threadpool_limits

from golden.rope import rope
from workloads.llama import Capture, KVCache, LlamaModel
from workloads.smollm import open_gguf

PROSE = Path(__file__).parent / "data" / "pride_and_prejudice.txt"
SHORT = "The quick brown fox jumps over the lazy dog"  # 9 tokens


@pytest.fixture(scope="module")
def model() -> LlamaModel:
    return LlamaModel.load()


@pytest.fixture(scope="module")
def raw() -> dict[str, np.ndarray]:
    """Every tensor exactly as the GGUF stores it (q/k rows still permuted), float64."""
    reader = open_gguf()
    return {
        t.name: quants.dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors
    }


def rope_adjacent(x: np.ndarray, pos: int, base: float) -> np.ndarray:
    """llama.cpp's NORM RoPE: rotate the pairs (x[2i], x[2i+1]) by pos * base**(-2i/d)."""
    d = x.shape[-1]
    out = x.copy()
    for i in range(d // 2):
        theta = pos * base ** (-2 * i / d)
        c, s = np.cos(theta), np.sin(theta)
        a, b = x[..., 2 * i], x[..., 2 * i + 1]
        out[..., 2 * i] = a * c - b * s
        out[..., 2 * i + 1] = a * s + b * c
    return out


def reference_logits(cfg, raw, ids, allowed=None) -> np.ndarray:
    """Logits (len(ids), vocab) of a straightforward float64 Llama, one token and one head at a
    time, on the raw GGUF weights with adjacent-pair RoPE. ``allowed(layer, kv_head, q_pos,
    k_pos)`` (default: always) masks attention on top of causality."""
    n_heads, n_kv, d = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    group = n_heads // n_kv
    keys = [[] for _ in range(cfg.n_layers)]
    vals = [[] for _ in range(cfg.n_layers)]

    def norm(x, w):
        return x / np.sqrt(np.mean(x * x) + cfg.norm_eps) * w

    logits = []
    with threadpool_limits(limits=1, user_api="blas"):  # see LlamaModel's blas_threads
        for p, token in enumerate(ids):
            x = raw["token_embd.weight"][token].copy()
            for layer in range(cfg.n_layers):
                w = {k.split(".")[2]: v for k, v in raw.items() if k.startswith(f"blk.{layer}.")}
                h = norm(x, w["attn_norm"])
                q = rope_adjacent((w["attn_q"] @ h).reshape(n_heads, d), p, cfg.rope_base)
                keys[layer].append(
                    rope_adjacent((w["attn_k"] @ h).reshape(n_kv, d), p, cfg.rope_base)
                )
                vals[layer].append((w["attn_v"] @ h).reshape(n_kv, d))
                att = np.zeros((n_heads, d))
                for head in range(n_heads):
                    kv = head // group
                    seen = [j for j in range(p + 1) if allowed is None or allowed(layer, kv, p, j)]
                    scores = np.array([q[head] @ keys[layer][j][kv] for j in seen]) / np.sqrt(d)
                    weights = np.exp(scores - scores.max())
                    weights /= weights.sum()
                    for wj, j in zip(weights, seen, strict=True):
                        att[head] += wj * vals[layer][j][kv]
                x = x + w["attn_output"] @ att.reshape(-1)
                h = norm(x, w["ffn_norm"])
                gate, up = w["ffn_gate"] @ h, w["ffn_up"] @ h
                x = x + w["ffn_down"] @ (gate / (1 + np.exp(-gate)) * up)
            logits.append(norm(x, raw["output_norm.weight"]) @ raw["token_embd.weight"].T)
    return np.array(logits)


def assert_close_to_reference(got: np.ndarray, ref: np.ndarray) -> None:
    # The model runs in float32 against a float64 reference on the same dequantised weights:
    # 30 layers of 576- and 1536-long float32 dot products leave about 1e-4 absolute on logits
    # of magnitude 30 (measured 8.5e-5 on SHORT), so allow 1e-5 of the largest logit (3e-4).
    # A wrong RoPE pairing, GQA mapping, norm or SwiGLU moves logits by whole units.
    err = np.abs(got - ref).max()
    assert err <= 1e-5 * np.abs(ref).max(), err


def test_logits_match_the_plain_reference(model, raw):
    ids = model.tokenizer.encode(SHORT)
    assert len(ids) == 9
    got = model.forward(model.new_cache(), ids=ids, logits="all")
    assert got.shape == (9, 49152) and got.dtype == np.float32
    assert_close_to_reference(got, reference_logits(model.config, raw, ids))


# Chunks of different lengths go through different BLAS blockings, so float32 rounding differs
# between them: about 1e-5 on keys and values of magnitude ~5, a few 1e-5 on logits of ~20.
# 1e-4 absolute keeps a margin of 2-5x; a wrong position, mask or cache slot costs units.


def test_chunked_prefill_equals_one_shot(model):
    ids = model.tokenizer.encode(PROSE.read_text()[:200])
    one = model.new_cache()
    want = model.forward(one, ids=ids)
    for chunk in (1, 7, 64):
        cache = model.new_cache()
        got = model.prefill(cache, ids, chunk=chunk)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
        assert cache.n == one.n == len(ids)
        for layer in (0, 29):
            np.testing.assert_allclose(cache.keys(layer), one.keys(layer), rtol=0, atol=1e-4)
            np.testing.assert_allclose(cache.values(layer), one.values(layer), rtol=0, atol=1e-4)


def test_embeddings_input_equals_ids(model):
    ids = model.tokenizer.encode(SHORT)
    emb = model.embed(ids)
    assert emb.shape == (9, 576)
    by_ids = model.forward(model.new_cache(), ids=ids, logits="all")
    by_emb = model.forward(model.new_cache(), embeddings=emb, logits="all")
    np.testing.assert_array_equal(by_emb, by_ids)
    last = model.prefill(model.new_cache(), emb, chunk=4)
    np.testing.assert_allclose(last, by_ids[-1], rtol=0, atol=1e-4)


def test_generate_with_cache_equals_recompute(model):
    tok = model.tokenizer
    prompt = tok.chat("Name three colours.")
    cache = model.new_cache()
    out = model.generate(cache, prompt, max_new_tokens=8)
    assert len(out) == 8 and cache.n == len(prompt) + 7
    for k in range(len(out)):
        logits = model.forward(model.new_cache(), ids=prompt + out[:k])
        assert int(np.argmax(logits)) == out[k]


def test_attend_all_old_ids_equals_no_hook(model):
    ids = model.tokenizer.encode(SHORT + ", and then it sleeps.")
    base = model.new_cache()
    model.forward(base, ids=ids[:9], logits="none")
    calls = []

    def attend(layer, q_pre, q_post, positions):
        calls.append((layer, q_pre.shape, q_post.shape, positions.tolist()))
        return [np.arange(9)] * 3

    plain = model.forward(base.copy(), ids=ids[9:], logits="all")
    hooked = model.forward(base.copy(), ids=ids[9:], logits="all", attend=attend)
    np.testing.assert_allclose(hooked, plain, rtol=0, atol=1e-5)
    m = len(ids) - 9
    assert calls == [(layer, (9, m, 64), (9, m, 64), list(range(9, 9 + m))) for layer in range(30)]


def test_attend_subset_equals_masked_reference(model, raw):
    ids = model.tokenizer.encode(SHORT + ", and then it sleeps.")
    n0 = 9
    # KV head h of layer l keeps the old tokens j with (j + l + h) % 3 != 0, plus token 0.
    keep = {
        (layer, h): np.array([j for j in range(n0) if j == 0 or (j + layer + h) % 3])
        for layer in range(30)
        for h in range(3)
    }

    def attend(layer, q_pre, q_post, positions):
        return [keep[layer, h] for h in range(3)]

    def allowed(layer, kv, p, j):
        return p < n0 or j >= n0 or j in keep[layer, kv]

    cache = model.new_cache()
    model.forward(cache, ids=ids[:n0], logits="none")
    full = model.forward(cache.copy(), ids=ids[n0:], logits="all")
    got = model.forward(cache, ids=ids[n0:], logits="all", attend=attend)
    assert np.isfinite(got).all()
    assert np.abs(got - full).max() > 0.5
    ref = reference_logits(model.config, raw, ids, allowed)[n0:]
    assert_close_to_reference(got, ref)


def test_capture_records_every_layer_and_appends(model):
    ids = model.tokenizer.encode(SHORT)
    cache, cap = model.new_cache(), Capture()
    model.prefill(cache, ids, chunk=5, capture=cap)
    model.forward(cache, ids=[13], capture=cap)
    assert cap.n == 10 and cap.positions.tolist() == list(range(10))
    assert cap.layers == tuple(range(30))
    for layer in (0, 17, 29):
        assert cap.q_pre(layer).shape == cap.q_post(layer).shape == (9, 10, 64)
        assert cap.k_pre(layer).shape == cap.v(layer).shape == (3, 10, 64)
        np.testing.assert_array_equal(
            cap.q_post(layer), rope(cap.q_pre(layer), cap.positions, base=model.config.rope_base)
        )
        np.testing.assert_array_equal(
            cap.k_post(layer), rope(cap.k_pre(layer), cap.positions, base=model.config.rope_base)
        )
        np.testing.assert_array_equal(cap.k_post(layer), cache.keys(layer))
        np.testing.assert_array_equal(cap.v(layer), cache.values(layer))
    some = Capture(layers=[2])
    model.forward(model.new_cache(), ids=ids, capture=some)
    assert some.layers == (2,)
    np.testing.assert_allclose(some.k_post(2), cap.k_post(2)[:, :9], rtol=0, atol=1e-4)
    with pytest.raises(
        ValueError, match=r"^layer must be one of the recorded layers \(2,\), not 3$"
    ):
        some.q_pre(3)


def test_cache_copy_and_truncate(model):
    ids = model.tokenizer.encode(SHORT)
    cache = model.new_cache()
    want = model.forward(cache, ids=ids)
    snap = cache.copy()
    model.forward(cache, ids=[11, 12])
    assert (cache.n, snap.n) == (11, 9)
    cache.truncate(6)
    assert cache.n == 6 and cache.keys(4).shape == (3, 6, 64)
    np.testing.assert_allclose(model.forward(cache, ids=ids[6:]), want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(snap.keys(3), cache.keys(3), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match=r"read-only"):
        cache.keys(0)[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match=r"^n must be in 0\.\.9 \(the tokens held\), not 10$"):
        cache.truncate(10)
    rebuilt = KVCache.from_arrays(
        np.stack([snap.keys(layer) for layer in range(30)]),
        np.stack([snap.values(layer) for layer in range(30)]),
    )
    assert rebuilt.n == 9
    np.testing.assert_array_equal(
        model.forward(rebuilt, ids=[11]), model.forward(snap.copy(), ids=[11])
    )
    with pytest.raises(
        ValueError, match=r"^values must be a float array of shape \(30, 3, 9, 64\)"
    ):
        KVCache.from_arrays(np.zeros((30, 3, 9, 64)), np.zeros((30, 3, 8, 64)))


def perplexity(model: LlamaModel, ids: list[int]) -> float:
    """exp of the mean next-token loss over ``ids``, after a leading <|endoftext|>."""
    seq = [0, *ids]
    logits = model.forward(model.new_cache(), ids=seq, logits="all")[:-1].astype(np.float64)
    top = logits.max(axis=1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return float(np.exp(np.mean(lse - logits[np.arange(len(ids)), ids])))


def test_perplexity_of_english_prose(model):
    """The opening of chapter 1 of Pride and Prejudice (Jane Austen, 1813; 572 tokens):
    measured 16.7; the same tokens shuffled measured 940. A leak of future tokens would drive
    it towards 1, a broken layer far up."""
    ids = model.tokenizer.encode(PROSE.read_text())
    assert len(ids) == 572
    ppl = perplexity(model, ids)
    assert 10 < ppl < 25, ppl
    shuffled = perplexity(model, np.random.default_rng(0).permutation(ids).tolist())
    assert shuffled > 300, shuffled


COMMON = {
    *("a", "an", "the", "is", "are", "was", "be", "of", "and", "or", "to", "in", "on", "at"),
    *("for", "with", "as", "by", "it", "its", "this", "that", "where", "which", "between"),
    *("from", "their", "they", "we", "you", "i"),
}


def test_greedy_answers_are_readable_english(model):
    tok = model.tokenizer
    cache = model.new_cache()
    out = model.generate(cache, tok.chat("What is the capital of France?"), max_new_tokens=20)
    assert out[-1] == tok.eos_id
    assert "Paris" in tok.decode(out)
    out = model.generate(
        model.new_cache(), tok.chat("Write two sentences about the sea."), max_new_tokens=48
    )
    words = re.findall(r"\S+", tok.decode(out))
    assert len(words) >= 25
    plain = [w for w in words if re.fullmatch(r"[A-Za-z][a-z']*[.,;:!?]?", w)]
    assert len(plain) >= 0.9 * len(words), words
    assert len({w.strip(".,;:!?").lower() for w in words} & COMMON) >= 5, words


def test_context_overflow(model):
    msg = (
        r"^stream length must be at most the model's context_length 8192, not 8193 "
        r"\(0 cached \+ 8193 new\): the stream is longer than the model's context$"
    )
    with pytest.raises(ValueError, match=msg):
        model.forward(model.new_cache(), ids=np.zeros(8193, np.int64))
    cache = model.new_cache()
    model.forward(cache, ids=[5, 6, 7, 8, 9])
    msg = msg.replace("8193 \\(0 cached \\+ 8193", "8193 \\(5 cached \\+ 8188")
    with pytest.raises(ValueError, match=msg):
        model.prefill(cache, np.zeros(8188, np.int64))
    assert cache.n == 5


def test_bad_arguments(model):
    cache = model.new_cache()
    with pytest.raises(ValueError, match=r"^ids must be in 0\.\.49151, not 49152$"):
        model.forward(cache, ids=[1, 49152])
    with pytest.raises(ValueError, match=r"^ids must be a non-empty 1-D sequence of token ids"):
        model.forward(cache, ids=[])
    with pytest.raises(ValueError, match=r"^forward needs exactly one of ids= or embeddings="):
        model.forward(cache, ids=[1], embeddings=np.zeros((1, 576), np.float32))
    with pytest.raises(ValueError, match=r"^embeddings must be a float array of shape \(m, 576\)"):
        model.forward(cache, embeddings=np.zeros((2, 5), np.float32))
    with pytest.raises(
        ValueError, match=r"^logits must be one of \('all', 'last', 'none'\), not 'x'$"
    ):
        model.forward(cache, ids=[1], logits="x")
    with pytest.raises(ValueError, match=r"^cache must have \(n_layers, n_kv_heads, head_dim\)"):
        model.forward(KVCache(n_layers=2, n_kv_heads=3, head_dim=64), ids=[1])
    model.forward(cache, ids=[1, 2, 3], logits="none")
    hooks = {
        r"^attend\(layer=0\) must return None or a list of 3 id arrays \(one per KV head\)": [[0]],
        r"^attend\(layer=0\)\[1\] must hold ids of old tokens \(0 <= id < 3\), not 0\.\.3$": [
            [0],
            [0, 3],
            [1],
        ],
        r"^attend\(layer=0\)\[2\] must not repeat an id$": [[0], [1], [2, 2]],
    }
    for msg, sel in hooks.items():
        with pytest.raises(ValueError, match=msg):
            model.forward(cache, ids=[4], attend=lambda *_, sel=sel: sel)
    assert cache.n == 3
    with pytest.raises(ValueError, match=r"^max_new_tokens must be a positive integer, not 0$"):
        model.generate(cache, [1], max_new_tokens=0)
