"""workloads.bpe: the SmolLM2 byte-level BPE built from the GGUF: round trips, the SmolLM
pre-tokenisation (single digits, GPT-2 regex), special tokens, known ids, errors."""

import re

import numpy as np
import pytest
from gguf import GGUFWriter

from workloads.bpe import Tokenizer, bytes_to_unicode
from workloads.smollm import open_gguf, read_field

TEXTS = [
    "Hello world!",
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife.",
    "  leading spaces, trailing   \n\n\t\tindented\r\nCRLF line\n",
    "Digits 3.14159, 1,000,000, ٣٤٥ and ½ Ⅻ; 2nd 10th 2024-12-01",
    "I'm, you're, they've, he'd, she'll, it's, WE'LL — 'single' \"double\"",
    "naïve café résumé Zürich Ελληνικά русский 中文 日本語 한국어 🦙🚀👍🏽",
    "def f(x):\n    return x**2  # comment\n",
    "a  b   c\u00a0d\u2003e\u3000f",
    "<|im_start|>user\nHi<|im_end|>\n<|endoftext|><file_sep>x<jupyter_code>",
    "",
    " ",
    "\n",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_gguf()


def spell(tok: Tokenizer, text: str) -> list[str]:
    return [tok.token(i) for i in tok.encode(text)]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)


def test_round_trip_random_text(tok):
    rng = np.random.default_rng(1)
    alphabet = [*"abcXYZ 0123456789\n\t.,;'\"!?-_()[]{}éüß中文🙂\u00a0", "'s", "'ll"]
    for _ in range(200):
        text = "".join(rng.choice(alphabet, size=rng.integers(1, 40)))
        assert tok.decode(tok.encode(text)) == text


def test_known_pieces(tok):
    # Checked against Hugging Face `tokenizers` (BPE over the same vocabulary and merges,
    # Digits(individual_digits=True) + ByteLevel(add_prefix_space=False)): same ids on 309 texts.
    assert spell(tok, "Hello world!") == ["Hello", "Ġworld", "!"]
    assert spell(tok, "In 1813,") == ["In", "Ġ", "1", "8", "1", "3", ","]
    assert spell(tok, "I'm you'll WE'LL") == ["I", "'m", "Ġyou", "'ll", "ĠWE", "'", "LL"]
    assert spell(tok, "a  b") == ["a", "Ġ", "Ġb"]
    assert spell(tok, "end\n\n  next") == ["end", "ĊĊĠ", "Ġnext"]
    assert spell(tok, "x\ty ") == ["x", "ĉ", "y", "Ġ"]
    assert spell(tok, "café") == ["c", "af", "Ã©"]
    assert tok.encode("Hello world!") == [19556, 905, 17]
    assert tok.encode("a  b") == [81, 216, 278]


def test_chat_template_ids(tok):
    """The ChatML strings of the GGUF's chat_template map to the ids its vocabulary gives."""
    template = read_field(open_gguf(), "tokenizer.chat_template")
    for piece in ("'<|im_start|>' + message['role'] + '\n'", "'<|im_start|>assistant\n'"):
        assert piece in template
    ids = tok.encode("<|im_start|>assistant\n")
    assert ids == [1, 520, 9531, 198]
    assert [tok.token(i) for i in ids] == ["<|im_start|>", "ass", "istant", "Ċ"]
    assert tok.encode("<|im_start|>user\n") == [1, tok.token_id("user"), tok.token_id("Ċ")]
    assert tok.encode("<|im_end|>\n") == [2, 198]
    chat = tok.chat("Hi", system="Be brief.")
    assert tok.decode(chat) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert chat.count(1) == 3 and chat.count(2) == 2


def test_special_tokens_are_single_ids(tok):
    special = tok.special_ids
    assert len(special) == 17
    assert special["<|endoftext|>"] == 0
    assert special["<|im_start|>"] == tok.bos_id == 1
    assert special["<|im_end|>"] == tok.eos_id == 2
    for text, i in special.items():
        assert tok.encode(text) == [i]
        assert tok.encode(f"a{text}b") == [tok.token_id("a"), i, tok.token_id("b")]
        assert tok.decode([i]) == text
    plain = tok.encode("<|im_end|>", special=False)
    assert len(plain) > 1 and 2 not in plain
    assert tok.decode(plain) == "<|im_end|>"


def test_byte_map():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert (table[ord(" ")], table[ord("\n")], table[ord("\t")]) == ("Ġ", "Ċ", "ĉ")
    assert table[ord("A")] == "A" and table[0xE9] == "é"


def test_partial_utf8_decodes_to_replacement(tok):
    ids = tok.encode("🦙")
    assert len(ids) > 1
    assert tok.decode(ids[:1]).endswith("\ufffd")


def test_unspellable_character(tok):
    msg = (
        r"^text must only hold characters the vocabulary can spell, not '\\x04' "
        r"\(its UTF-8 bytes 04 include one with no token\)$"
    )
    with pytest.raises(ValueError, match=msg):
        tok.encode("a\x04b")


def test_bad_arguments(tok):
    with pytest.raises(TypeError, match=r"^text must be a string, not b'x'$"):
        tok.encode(b"x")
    with pytest.raises(ValueError, match=r"^token id must be in 0\.\.49151, not 49152$"):
        tok.decode([49152])
    with pytest.raises(ValueError, match=r"^token must be in the vocabulary, not 'no such'$"):
        tok.token_id("no such")
    with pytest.raises(ValueError, match=r"^bos_id must be in 0\.\.1, not 5$"):
        Tokenizer(tokens=["a", "b"], token_types=[1, 1], merges=[], bos_id=5, eos_id=0)
    with pytest.raises(ValueError, match=r"^merges\[0\] must be two tokens joined by a space"):
        Tokenizer(tokens=["a", "b"], token_types=[1, 1], merges=["ab"], bos_id=0, eos_id=0)


def test_other_pre_tokenizer_is_refused(tmp_path):
    path = tmp_path / "llama3.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(
        ValueError, match=r"^tokenizer\.ggml\.pre must be 'smollm', not 'llama-bpe'$"
    ):
        Tokenizer.from_gguf(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not a readable GGUF file"):
        Tokenizer.from_gguf(path)
