"""The SmolLM2 tokenizer: byte-level BPE (the GPT-2 algorithm) built from the GGUF's own
vocabulary and merges, nothing downloaded.

``Tokenizer.from_gguf(path=None)`` (default: the shipped model, ``workloads.smollm``) reads
``tokenizer.ggml.tokens``, ``token_type``, ``merges``, ``bos/eos_token_id`` and checks
``tokenizer.ggml.model == "gpt2"`` and ``tokenizer.ggml.pre == "smollm"``.

``encode(text)``:

1. Special tokens (token type CONTROL or USER_DEFINED: ``<|endoftext|>``, ``<|im_start|>``,
   ``<|im_end|>``, ``<file_sep>`` …) written literally in the text become their single id
   (longest match first); ``encode(text, special=False)`` treats them as plain text.
2. The rest is pre-tokenised as llama.cpp does for ``tokenizer.ggml.pre = "smollm"`` (and as
   the Hugging Face ``Digits(individual_digits=True)`` + ``ByteLevel`` pre-tokenizer does):
   every ``\\p{N}`` character is a piece of its own, then the GPT-2 regex
   ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``
   splits what lies between.
3. Each piece's UTF-8 bytes are mapped to printable characters (GPT-2's
   ``bytes_to_unicode``), then merged pairwise, lowest merge rank first, until no ranked pair
   is left; the resulting strings are vocabulary tokens.

No normalisation, no prefix space, no BOS is added (``tokenizer.ggml.add_bos_token`` is false
for this model). ``decode(ids)`` inverts ``encode`` exactly for any text (specials decode to
their literal text); a byte sequence cut inside a UTF-8 character decodes to U+FFFD.

The vocabulary has no token for 21 of the 256 byte values (the control bytes 0x04 0x06 0x13
0x14 0x16 0x1d, bytes never found in UTF-8, and 0xf1/0xf2, which lead the code points
U+40000..U+BFFFF): text holding such a character raises ``ValueError`` naming it (llama.cpp
drops those bytes silently).
"""

from __future__ import annotations

import functools
import itertools
import numbers
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex
from gguf import TokenType

from workloads.smollm import open_gguf, read_field, resolve_gguf

__all__ = ["PRE_TOKENIZER", "Tokenizer", "bytes_to_unicode"]

#: The ``tokenizer.ggml.pre`` whose pre-tokenisation this module implements.
PRE_TOKENIZER = "smollm"
_DIGIT = regex.compile(r"(\p{N})")
_GPT2 = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
_SPECIAL_TYPES = (TokenType.CONTROL, TokenType.USER_DEFINED)


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map of the 256 byte values to printable characters: printable
    Latin-1 bytes map to themselves, the others to U+0100 onwards in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Tokenizer:
    """Byte-level BPE over ``tokens`` with merge ranks ``merges`` (``"a b"`` strings)."""

    def __init__(
        self,
        *,
        tokens: Sequence[str],
        token_types: Sequence[int],
        merges: Sequence[str],
        bos_id: int,
        eos_id: int,
    ):
        tokens = list(tokens)
        if not tokens:
            raise ValueError("tokens must be a non-empty sequence of strings, not []")
        if len(token_types) != len(tokens):
            raise ValueError(
                f"token_types must have one entry per token ({len(tokens)}), not {len(token_types)}"
            )
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if not 0 <= value < len(tokens):
                raise ValueError(f"{name} must be in 0..{len(tokens) - 1}, not {value!r}")
        self._tokens = tokens
        self._ids = {t: i for i, t in enumerate(tokens)}
        self._ranks: dict[tuple[str, str], int] = {}
        for rank, merge in enumerate(merges):
            pair = tuple(merge.split(" "))
            if len(pair) != 2:
                raise ValueError(
                    f"merges[{rank}] must be two tokens joined by a space, not {merge!r}"
                )
            self._ranks.setdefault(pair, rank)
        self._byte_char = bytes_to_unicode()
        self._char_byte = {c: b for b, c in self._byte_char.items()}
        self._special = {
            t: i
            for i, (t, k) in enumerate(zip(tokens, token_types, strict=True))
            if k in _SPECIAL_TYPES
        }
        self._special_re = (
            regex.compile("|".join(regex.escape(t) for t in sorted(self._special, key=len)[::-1]))
            if self._special
            else None
        )
        self._bos_id, self._eos_id = int(bos_id), int(eos_id)
        self._words: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_gguf(cls, path: str | Path | None = None) -> Tokenizer:
        """The tokenizer stored in a GGUF (default: the shipped SmolLM2), cached per file."""
        path = resolve_gguf(path).resolve()
        stat = path.stat()
        return _from_gguf(str(path), stat.st_mtime_ns, stat.st_size)

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    @property
    def bos_id(self) -> int:
        return self._bos_id

    @property
    def eos_id(self) -> int:
        return self._eos_id

    @property
    def special_ids(self) -> dict[str, int]:
        """Special (CONTROL / USER_DEFINED) tokens and their ids."""
        return dict(self._special)

    def token_id(self, token: str) -> int:
        """The id of vocabulary entry ``token`` (in its byte-mapped spelling, ``Ġ`` = space)."""
        try:
            return self._ids[token]
        except KeyError:
            raise ValueError(f"token must be in the vocabulary, not {token!r}") from None

    def token(self, token_id: int) -> str:
        """Vocabulary entry ``token_id`` (byte-mapped spelling)."""
        return self._tokens[self._check_id(token_id)]

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, not {text!r}")
        if not special or self._special_re is None:
            return self._encode_plain(text)
        ids: list[int] = []
        start = 0
        for m in self._special_re.finditer(text):
            ids += self._encode_plain(text[start : m.start()])
            ids.append(self._special[m.group()])
            start = m.end()
        ids += self._encode_plain(text[start:])
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        out = bytearray()
        for i in ids:
            token = self._tokens[self._check_id(i)]
            if token in self._special and self._special[token] == i:
                out += token.encode("utf-8")
            else:
                out += bytes(self._char_byte[c] for c in token)
        return out.decode("utf-8", errors="replace")

    def chat(self, user: str, *, system: str | None = None) -> list[int]:
        """ChatML prompt ids: an optional system turn, the user turn, then the opening of the
        assistant's turn (``<|im_start|>assistant\\n``). The GGUF's ``chat_template`` adds a
        default system turn ("You are a helpful AI assistant named SmolLM, trained by Hugging
        Face") when none is given; this does not."""
        text = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
        text += f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        return self.encode(text)

    def _check_id(self, token_id) -> int:
        if isinstance(token_id, bool) or not isinstance(token_id, numbers.Integral):
            raise TypeError(f"token id must be an integer, not {token_id!r}")
        if not 0 <= token_id < len(self._tokens):
            raise ValueError(f"token id must be in 0..{len(self._tokens) - 1}, not {token_id!r}")
        return int(token_id)

    def _encode_plain(self, text: str) -> list[int]:
        ids: list[int] = []
        for part in _DIGIT.split(text):
            if not part:
                continue
            for word in _GPT2.findall(part):
                cached = self._words.get(word)
                if cached is None:
                    cached = self._words[word] = self._bpe(word)
                ids += cached
        return ids

    def _bpe(self, word: str) -> tuple[int, ...]:
        parts = [self._byte_char[b] for b in word.encode("utf-8")]
        ranks = self._ranks
        while len(parts) > 1:
            pairs = [ranks.get(p, -1) for p in itertools.pairwise(parts)]
            ranked = [r for r in pairs if r >= 0]
            if not ranked:
                break
            best = min(ranked)
            i, merged = 0, []
            while i < len(parts):
                if i + 1 < len(parts) and pairs[i] == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        try:
            return tuple(self._ids[p] for p in parts)
        except KeyError:
            pass
        for ch in word:  # a byte with no token of its own (this vocabulary lacks 21 of 256)
            raw = ch.encode("utf-8")
            if any(self._byte_char[b] not in self._ids for b in raw):
                raise ValueError(
                    f"text must only hold characters the vocabulary can spell, not {ch!r} "
                    f"(its UTF-8 bytes {raw.hex(' ')} include one with no token)"
                )
        raise AssertionError(f"no token for a piece of {word!r}")  # unreachable


@functools.lru_cache(maxsize=2)
def _from_gguf(path: str, _mtime_ns: int, _size: int) -> Tokenizer:
    reader = open_gguf(path)
    model = read_field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise ValueError(f"tokenizer.ggml.model must be 'gpt2' (byte-level BPE), not {model!r}")
    pre = read_field(reader, "tokenizer.ggml.pre")
    if pre != PRE_TOKENIZER:
        raise ValueError(f"tokenizer.ggml.pre must be {PRE_TOKENIZER!r}, not {pre!r}")
    return Tokenizer(
        tokens=read_field(reader, "tokenizer.ggml.tokens"),
        token_types=read_field(reader, "tokenizer.ggml.token_type"),
        merges=read_field(reader, "tokenizer.ggml.merges"),
        bos_id=int(read_field(reader, "tokenizer.ggml.bos_token_id")),
        eos_id=int(read_field(reader, "tokenizer.ggml.eos_token_id")),
    )
