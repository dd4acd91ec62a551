"""Words as people see them: runs of grapheme clusters. The one home of the word patterns that
``explain.words``, ``experiments.analysis`` and ``training.memorisation`` build on.

One visible character can be several code points: "é" written as "e" + U+0301 (the decomposed form, NFD),
an emoji with a skin tone or several emoji joined by zero-width joiners, a flag (two regional indicators),
a symbol with a variation selector. A pattern built on ``\\w`` alone cuts such characters apart (Python's
``re`` sees U+0301 as a separate non-word symbol, so ``"cafe\\u0301"`` becomes "cafe" plus a stray accent).
Unicode's extended grapheme clusters (UAX #29) never are: ``\\X`` of the `regex` library
(https://pypi.org/project/regex/) matches exactly one. The pieces below work cluster by cluster, so a word
is a run of whole clusters, the same in NFC and NFD text, and match offsets index the text as given.

Pieces for :func:`regex.compile`:

* :data:`WORD_CHAR`: one cluster that starts with a letter, digit or underscore (with all its marks);
* :data:`SYMBOL`: one cluster that starts with neither a word character nor whitespace (punctuation, emoji);
* :data:`WORD`: word characters, optionally joined inside by an apostrophe or hyphen ("don't", "well-known");
* :data:`SYMBOL_RUN`: one symbol repeated ("...", "!!!"), each copy a whole cluster.

:func:`nfc` gives the composed form, for comparing words written either way.
"""
from __future__ import annotations

import unicodedata

import regex

__all__ = ["WORD_CHAR", "SYMBOL", "WORD", "SYMBOL_RUN", "compile_pattern", "nfc"]

WORD_CHAR = r"(?:(?=\w)\X)"
SYMBOL = r"(?:(?![\w\s])\X)"
WORD = rf"{WORD_CHAR}+(?:(?=['’\-]){SYMBOL}{WORD_CHAR}+)*"
# a further copy of the symbol counts only when nothing attaches to it (else it starts a longer cluster)
SYMBOL_RUN = rf"(?P<symbol>{SYMBOL})(?:(?P=symbol)(?![\p{{GCB=Extend}}\p{{GCB=ZWJ}}\p{{GCB=SpacingMark}}]))*"


def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a pattern made of the pieces above (the `regex` library: ``\\X`` and Unicode properties)."""
    return regex.compile(pattern)


def nfc(text: str) -> str:
    """``text`` in Unicode normalisation form C (composed: "e" + U+0301 -> "é"), so the same word written in
    NFC or NFD compares equal."""
    return unicodedata.normalize("NFC", text)
