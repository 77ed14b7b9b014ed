"""workloads.llm_stream and workloads.llm_quality: the SmolLM2 stream trace and answer reruns."""

import numpy as np
import pytest

from golden.baselines import Oracle, Window
from golden.config import SPEC_RULE, preset
from golden.evaluate import Stream
from golden.rope import rope
from workloads.llama import LlamaModel
from workloads.llm_quality import answers, quality, rerun
from workloads.llm_stream import PRESETS, QUESTIONS, StreamConfig, make_llm_trace
from workloads.trace import NOT_SEEN_TOKENS, Segment, load, save

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def model():
    return LlamaModel.load()


@pytest.fixture(scope="module")
def tiny(model):
    return make_llm_trace(TINY, progress=False, model=model)


def test_stream_layout(tiny, model):
    kinds = tiny.segment_kind.tolist()
    assert kinds[0] == Segment.TEXT and kinds.count(Segment.ANSWER) == TINY.questions
    assert tiny.n_tokens <= TINY.max_tokens
    tok = model.tokenizer
    ids = tiny.meta["tokens"]
    assert len(ids) == tiny.n_tokens
    text = tok.decode(ids[: tiny.frame_offsets[1]])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant watching")
    for s in np.flatnonzero(tiny.segment_kind == Segment.FRAME):
        a, b = tiny.frame_offsets[s], tiny.frame_offsets[s + 1]
        frame = tok.decode(ids[a:b])
        assert frame.endswith("\n") and "s:" in frame  # "0.5s: <visual words>\n"
        assert b - a == TINY.tokens_per_frame + len(tok.encode(frame.split(":")[0] + ":")) + 1
    for i, s in enumerate(np.flatnonzero(tiny.segment_kind == Segment.ANSWER)):
        a, b = tiny.frame_offsets[s], tiny.frame_offsets[s + 1]
        assert tok.decode(ids[tiny.frame_offsets[s - 1] : a]).startswith(
            f"Question: {QUESTIONS[i]}"
        )
        assert tiny.meta["qa"][i]["start"] == a and 1 <= b - a <= TINY.answer_tokens
        assert tiny.meta["qa"][i]["answer"] == tok.decode(ids[a:b])
    assert NOT_SEEN_TOKENS in tiny.meta["note"] and tiny.meta["workload"] == "llm"


def test_decode_queries_are_the_answer_tokens(tiny):
    ans = np.concatenate(
        [
            np.arange(tiny.frame_offsets[s], tiny.frame_offsets[s + 1])
            for s in np.flatnonzero(tiny.segment_kind == Segment.ANSWER)
        ]
    )
    np.testing.assert_array_equal(tiny.decode_positions, ans)
    np.testing.assert_array_equal(tiny.decode_context, ans + 1)
    np.testing.assert_array_equal(tiny.decode_queries, tiny.queries[:, :, ans])
    np.testing.assert_array_equal(tiny.decode_queries_post, tiny.queries_post[:, :, ans])


def test_captured_tensors_are_the_models(tiny, model):
    c = model.config
    assert (tiny.layers, tiny.kv_heads, tiny.q_heads, tiny.head_dim) == (
        c.n_layers,
        c.n_kv_heads,
        c.n_heads,
        c.head_dim,
    )
    assert tiny.rope_base == c.rope_base == 100000.0
    pos = np.arange(tiny.n_tokens)
    ref = rope(tiny.keys, pos, base=tiny.rope_base)
    rel = np.linalg.norm(tiny.keys_post - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert rel.max() < 2**-7  # BF16 rounding before and after the rotation
    # Re-running the stream's first segment reproduces the recorded keys.
    cache = model.new_cache()
    from workloads.llama import Capture

    cap = Capture(layers=[5])
    model.forward(
        cache, ids=tiny.meta["tokens"][: tiny.frame_offsets[1]], capture=cap, logits="none"
    )
    got = cap.k_post(5)
    want = tiny.keys_post[5, :, : tiny.frame_offsets[1]]
    assert np.abs(got - want).max() <= 2**-7 * np.abs(want).max()


def test_trace_round_trips(tiny, tmp_path):
    back = load(save(tiny, tmp_path / "llm.npz"))
    np.testing.assert_array_equal(back.keys_post, tiny.keys_post)
    np.testing.assert_array_equal(back.segment_kind, tiny.segment_kind)
    assert back.meta["tokens"] == tiny.meta["tokens"]


def test_linear_visual_tokens(model):
    cfg = TINY.replace(visual="linear", questions=1, max_tokens=96)
    t = make_llm_trace(cfg, progress=False, model=model)
    frames = np.flatnonzero(t.segment_kind == Segment.FRAME)
    a, b = t.frame_offsets[frames[0]], t.frame_offsets[frames[0] + 1]
    assert t.meta["tokens"][a:b].count(-1) == cfg.tokens_per_frame  # embeddings, no ids


def test_bad_configs_name_the_parameter(model):
    with pytest.raises(
        ValueError, match=r"^max_tokens must be at most the model's context of 8192"
    ):
        make_llm_trace(TINY.replace(max_tokens=9000), progress=False, model=model)
    with pytest.raises(ValueError, match=r"^max_tokens must leave room for at least 2 frames"):
        make_llm_trace(TINY.replace(max_tokens=64), progress=False, model=model)
    with pytest.raises(ValueError, match=r"^clips must be one of .*, not 'nope'$"):
        StreamConfig(clips=("nope",))
    with pytest.raises(ValueError, match=r"^tokens_per_frame must be one of 10, 49, 196, not 50$"):
        StreamConfig(tokens_per_frame=50)
    with pytest.raises(ValueError, match=r"^visual must be one of 'codebook', 'linear', not 'x'$"):
        StreamConfig(visual="x")


# Answer reruns (workloads.llm_quality) ------------------------------------------------------


def test_rerun_with_every_old_token_equals_full_attention(tiny, model):
    cfg = preset("tiny").replace(**SPEC_RULE).replace(sink_tokens=2, recent_tokens=8)
    stream = Stream.of(tiny)
    (_s, a, b), *_ = answers(tiny, 0)
    ref, none = rerun(model, tiny, stream, a, b, sink_tokens=2, recent_tokens=8)
    assert none == [] and ref.shape == (b - a, model.config.vocab_size)
    np.testing.assert_allclose(np.exp(ref).sum(axis=1), 1, rtol=1e-6)
    # The recorded answer is the model's greedy choice at every step.
    assert np.argmax(ref, axis=1).tolist() == tiny.meta["tokens"][a:b]
    everything, by = rerun(
        model, tiny, stream, a, b, method=Window(cfg), param=1.0, sink_tokens=2, recent_tokens=8
    )
    np.testing.assert_allclose(everything, ref, atol=1e-4)
    assert by == pytest.approx([1.0] * (b - a))
    q = quality(ref, everything)
    assert max(q["kl"]) < 1e-6 and q["agreement"] == [1.0] * (b - a)
    nothing, by = rerun(
        model, tiny, stream, a, b, method=Oracle(cfg), param=0.01, sink_tokens=2, recent_tokens=8
    )
    assert by == [0.0] * (b - a)
    assert max(quality(ref, nothing)["kl"]) > 1e-4  # dropping old tokens changes the output


def test_cli_traces_an_llm_stream(tmp_path, capsys):
    from workloads.__main__ import main

    out = tmp_path / "llm.npz"
    assert main(["llm", "--preset", "tiny", "--questions", "1", "-q", "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"trace: wrote {out}") and line.endswith(NOT_SEEN_TOKENS)
    assert load(out).segment_kind.tolist().count(Segment.ANSWER) == 1
    with pytest.raises(SystemExit):
        main(["llm", "--max-tokens", "9000", "-o", str(tmp_path / "x.npz")])
    assert "max_tokens must be at most the model's context of 8192" in capsys.readouterr().err
