"""Novelty check: copied n-grams and the nearest training example, on memorised and fresh texts."""
from __future__ import annotations

import csv

import pytest
from conftest import ROOT

from gpt2lab.training.memorisation import NoveltyIndex, novelty


def rows() -> list[str]:
    with open(ROOT / "data" / "short_texts.csv", newline="") as fh:
        return [r[0] for r in csv.reader(fh)][1:]


def test_known_answer_on_letters():
    report = novelty("a b c d e f g h x y", ["a b c d e f g h i j", "p q r"], n=4)
    # 7 generated 4-grams; abcd, bcde, cdef, defg, efgh occur in the training text, the two with x/y do not
    assert (report.total_ngrams, report.copied_ngrams) == (7, 5)
    assert report.copied_fraction == pytest.approx(5 / 7)
    assert report.longest_copied == 8 and report.longest_copied_text == "a b c d e f g h"
    assert report.nearest_index == 0 and report.nearest_shared == 5 and report.nearest_n == 4
    assert report.flagged


def test_a_memorised_row_and_a_fresh_text():
    index = NoveltyIndex(rows(), n=8)
    memorised = rows()[41]
    copied = index.check(memorised)
    assert copied.copied_fraction == 1.0 and copied.flagged
    assert copied.nearest_text == memorised and copied.nearest_index == 41
    assert copied.longest_copied_text == memorised

    fresh = "A quiet lantern hums above the empty market while the cats negotiate with the moon."
    new = index.check(fresh)
    assert new.total_ngrams > 0 and new.copied_ngrams == 0 and not new.flagged
    assert new.longest_copied == 0 and new.novel_fraction == 1.0
    assert new.nearest_n < 8 and new.nearest_text in rows()  # the best shorter-n-gram match is still named

    # half copied: a known fraction of the n-grams
    half = rows()[7] + " Then three purple engines whistled softly across the frozen tundra of nowhere."
    mixed = index.check(half)
    words_copied = len(index._split(rows()[7])[0])
    assert mixed.copied_ngrams == words_copied - 8 + 1
    assert 0 < mixed.copied_fraction < 1 and mixed.nearest_index == 7


def test_copies_across_a_paragraph_break_count():
    text = "\n\n".join(" ".join(f"w{i}_{j}" for j in range(300)) for i in range(3))  # long: split into passages
    index = NoveltyIndex([text], n=5)
    assert len(index.passages) == 3
    span = " ".join(f"w0_{j}" for j in range(296, 300)) + "\n\n" + " ".join(f"w1_{j}" for j in range(4))
    assert index.check(span).copied_fraction == 1.0


def test_token_level_needs_and_uses_the_tokenizer(gpt2_tokenizer):
    with pytest.raises(ValueError, match="level='token' needs the tokenizer"):
        NoveltyIndex(rows(), level="token")
    index = NoveltyIndex(rows(), n=8, level="token", tokenizer=gpt2_tokenizer)
    assert index.check(rows()[3]).copied_fraction == 1.0
    assert index.check("Seven violet submarines queued politely for the carnival.").copied_ngrams == 0


def test_short_and_bad_inputs():
    index = NoveltyIndex(rows(), n=8)
    short = index.check("Too short.")
    # too short for one 8-gram: nothing measured, so "n/a", never 0 (which would read as "all new")
    assert short.total_ngrams == 0 and short.copied_fraction is None and short.novel_fraction is None
    assert short.copied_text == "n/a" and not short.flagged
    assert "n/a" in str(short) and "too short" in str(short)
    # one word short of n is still n/a; exactly n words give one n-gram and a real fraction
    words = "the wind blew over the quiet sea tonight".split()
    assert index.check(" ".join(words[:7])).copied_text == "n/a"
    assert index.check(" ".join(words)).copied_fraction == 0.0 and index.check(" ".join(words)).total_ngrams == 1
    with pytest.raises(ValueError, match="level='char' is not allowed"):
        NoveltyIndex(rows(), level="char")
    with pytest.raises(ValueError, match="n=0 must be a whole number >= 1"):
        NoveltyIndex(rows(), n=0)
    with pytest.raises(ValueError, match="no training texts"):
        NoveltyIndex(["", "  "])
    with pytest.raises(TypeError, match="generated must be a string"):
        index.check(42)


def test_a_real_corpus_memorised_sonnet_vs_fresh_verse():
    from gpt2lab import data

    sonnets = data.sonnets()
    index = NoveltyIndex([s.text for s in sonnets], n=8)
    eighteen = "\n".join(sonnets[17].lines[:4])  # "Shall I compare thee to a summer's day? ..."
    report = index.check(eighteen)
    assert report.copied_fraction == 1.0 and report.nearest_index == 17
    fresh = ("My lamp is low, the winter hours are long,\nAnd every clock forgets the hour I keep;\n"
             "Yet still the kettle hums its patient song,\nAnd still the stairs complain before I sleep.")
    assert index.check(fresh).copied_fraction < 0.05
