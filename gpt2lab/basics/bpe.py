"""Training a byte-level BPE tokenizer of GPT-2's kind on your own text.

GPT-2's tokenizer is byte-level BPE: text is first turned into bytes (so nothing is ever
unknown), each byte is shown as a printable character (a space becomes ``Ġ``, a newline ``Ċ``),
and frequent adjacent pairs are merged into new tokens, most frequent first. ``train_bpe`` does
the same with the ``tokenizers`` library and returns a tokenizer that ``transformers`` loads as a
``GPT2TokenizerFast``.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["END_OF_TEXT", "train_bpe", "byte_to_char", "readable_token"]

END_OF_TEXT = "<|endoftext|>"


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
