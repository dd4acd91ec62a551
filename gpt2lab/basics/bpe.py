"""Training a byte-level BPE tokenizer of GPT-2's kind on your own text.

GPT-2's tokenizer is byte-level BPE: text is first turned into bytes (so nothing is ever
unknown), each byte is shown as a printable character (a space becomes ``Ġ``, a newline ``Ċ``),
and frequent adjacent pairs are merged into new tokens, most frequent first. ``train_bpe`` does
the same with the ``tokenizers`` library and returns a tokenizer that ``transformers`` loads as a
``GPT2TokenizerFast``.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

__all__ = ["END_OF_TEXT", "train_bpe", "byte_to_char", "readable_token", "top_words", "single_token_share"]

END_OF_TEXT = "<|endoftext|>"
_WORD = re.compile(r"[A-Za-z']+")


def train_bpe(texts, vocab_size: int = 4096, min_frequency: int = 2, special_tokens=(END_OF_TEXT,),
              save_dir: str | Path | None = None):
    """Train a GPT-2-style byte-level BPE on ``texts`` (a string or an iterable of strings).

    Returns a ``GPT2TokenizerFast`` with ``<|endoftext|>`` as bos/eos/unk token (like GPT-2's).
    With ``save_dir`` the tokenizer files are written there too (``tokenizer.json`` and friends).
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    if vocab_size < 257 + len(special_tokens):
        raise ValueError(f"vocab_size must be at least 256 bytes + {len(special_tokens)} special tokens + 1, "
                         f"got {vocab_size}")
    if isinstance(texts, str):
        texts = [texts]
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency,
                            special_tokens=list(special_tokens), show_progress=False)
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
                                  unk_token=END_OF_TEXT, model_max_length=1024)
    if save_dir is not None:
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer


def byte_to_char() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to printable characters.

    Printable Latin-1 bytes stand for themselves; the others (control characters, space, ...)
    are moved to code points from 256 up, in byte order. So space (32) becomes 'Ġ' (288) and
    newline (10) becomes 'Ċ' (266).
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table, shifted = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def readable_token(token: str) -> str:
    """Show a byte-level BPE token as a person reads it: ``Ġ`` -> space, ``Ċ`` -> newline, etc."""
    byte_decoder = {v: k for k, v in byte_to_char().items()}
    try:
        return bytes(byte_decoder[ch] for ch in token).decode("utf-8", errors="replace")
    except KeyError:  # special tokens such as <|endoftext|> are not byte-encoded
        return token


def top_words(text: str, n: int = 200) -> list[str]:
    """The ``n`` most frequent words of ``text`` (runs of ASCII letters and apostrophes, case kept), most
    frequent first, each with the leading space it has inside a sentence. Raises ValueError for n < 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    counts = Counter(" " + word for word in _WORD.findall(text))
    return [word for word, _ in counts.most_common(n)]


def single_token_share(tokenizer, text: str, n: int = 200) -> float:
    """Share (0..1) of the ``n`` most frequent words of ``text`` (:func:`top_words`, with their leading
    space) that ``tokenizer`` encodes as one token. GPT-2's 50,257-token BPE keeps nearly all common
    English words whole; a small BPE splits them into pieces. Raises ValueError for a text without words."""
    words = top_words(text, n)
    if not words:
        raise ValueError("text holds no words")
    return sum(len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1 for word in words) / len(words)
