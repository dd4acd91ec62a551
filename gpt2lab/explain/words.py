"""Grouping BPE pieces into words as people read them.

GPT-2 splits text into byte-level BPE pieces: " disapprove" is one piece, " résumé" three, and a
space belongs to the piece after it. Explanations are easier to read per word, so this module
maps pieces to words:

* a word is a run of letters/digits, optionally joined by an apostrophe or hyphen inside it
  ("don't", "well-known", "John's"), or a run of one repeated punctuation mark ("," or "..."), counted in
  whole grapheme clusters (:mod:`gpt2lab.graphemes`): a letter with combining accents (NFC or NFD), an
  emoji sequence joined by zero-width joiners, a flag, is one visible character and never split;
* each piece belongs to the word(s) whose characters it covers; a piece that covers characters of
  two words (GPT-2 has pieces such as ")." ) joins them into one unit, because a piece cannot be
  split;
* a piece made only of whitespace (a newline, a lone space) joins the word that follows it, the
  way GPT-2 attaches a space to the next piece; at the very end it joins the word before it.

``"I disapprove of what you say, but"`` gives the 8 words
``I | disapprove | of | what | you | say | , | but``.
"""
from __future__ import annotations

from dataclasses import dataclass

from gpt2lab import graphemes

__all__ = ["Word", "WordSplit", "split_words", "split_tokens"]

# A word: letters/digits with inner ' ’ or - joins; or a run of the same non-space symbol (whole clusters).
_WORD_RE = graphemes.compile_pattern(f"{graphemes.WORD}|{graphemes.SYMBOL_RUN}")


@dataclass(frozen=True)
class Word:
    """One word of a text and the BPE pieces (token positions) that spell it."""

    text: str  # the word as printed, without surrounding whitespace
    start: int  # character span of the word's pieces in the text (includes a leading space)
    end: int
    tokens: tuple[int, ...]  # positions in the token sequence

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class WordSplit:
    """A text, its token ids and the words those tokens form."""

    text: str
    input_ids: tuple[int, ...]
    words: tuple[Word, ...]
    token_to_word: tuple[int, ...]  # word index of every token

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    def word_texts(self) -> list[str]:
        return [w.text for w in self.words]


def _char_words(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` (before looking at tokens)."""
    return [m.span() for m in _WORD_RE.finditer(text)]


def split_words(tokenizer, text: str) -> WordSplit:
    """Tokenize ``text`` and group its pieces into words (see the module docstring).

    ``tokenizer`` must be a fast Hugging Face tokenizer (it reports character offsets).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text={text!r} has no words; give at least one non-blank character")
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("split_words needs a fast tokenizer (one with character offsets), "
                        f"got {type(tokenizer).__name__}")
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    spans = _char_words(text)

    # which character-level word each character belongs to (-1: whitespace)
    owner = [-1] * len(text)
    for w, (a, b) in enumerate(spans):
        for c in range(a, b):
            owner[c] = w

    # union-find over character-level words: a piece spanning two words joins them
    parent = list(range(len(spans)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    token_words: list[set[int]] = []
    for a, b in offsets:
        covered = {owner[c] for c in range(a, b) if 0 <= c < len(text) and owner[c] >= 0}
        token_words.append(covered)
        covered = sorted(covered)
        for other in covered[1:]:
            parent[find(other)] = find(covered[0])

    # tokens -> unit id (root of their word); whitespace-only tokens get the next token's unit
    unit_of_token: list[int | None] = [find(min(ws)) if ws else None for ws in token_words]
    next_unit = None
    for t in range(len(ids) - 1, -1, -1):
        if unit_of_token[t] is None:
            unit_of_token[t] = next_unit
        else:
            next_unit = unit_of_token[t]
    prev_unit = None
    for t in range(len(ids)):  # trailing whitespace: join the word before
        if unit_of_token[t] is None:
            unit_of_token[t] = prev_unit
        prev_unit = unit_of_token[t]

    # number units in reading order; a unit is a contiguous run of tokens
    order: dict[int, int] = {}
    token_to_word = []
    for u in unit_of_token:
        if u not in order:
            order[u] = len(order)
        token_to_word.append(order[u])
    words = []
    for w in range(len(order)):
        toks = tuple(t for t, k in enumerate(token_to_word) if k == w)
        start = min(offsets[t][0] for t in toks)
        end = max(offsets[t][1] for t in toks)
        words.append(Word(text=text[start:end].strip(), start=start, end=end, tokens=toks))
    return WordSplit(text=text, input_ids=tuple(ids), words=tuple(words), token_to_word=tuple(token_to_word))


def split_tokens(tokenizer, text: str) -> WordSplit:
    """Like :func:`split_words` but every BPE piece is its own unit (the original, per-token view)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text={text!r} has no words; give at least one non-blank character")
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    ids = list(enc["input_ids"])
    words = []
    for t, (a, b) in enumerate(enc["offset_mapping"]):
        piece = tokenizer.decode([ids[t]])
        words.append(Word(text=piece.strip() or piece, start=a, end=b, tokens=(t,)))
    return WordSplit(text=text, input_ids=tuple(ids), words=tuple(words), token_to_word=tuple(range(len(ids))))
