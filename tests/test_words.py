"""Words are runs of whole grapheme clusters: one visible character is never split, in NFC or NFD text,
in every word pattern of the package (explain.words, experiments.analysis, training.memorisation)."""
from __future__ import annotations

import unicodedata

import pytest

from gpt2lab import graphemes
from gpt2lab.experiments import analysis
from gpt2lab.explain.words import split_words
from gpt2lab.training.memorisation import NoveltyIndex

SENTENCE = "Le café de José était déjà fermé à minuit."  # 9 words and a full stop
NFD = unicodedata.normalize("NFD", SENTENCE)
EMOJI = "Hi 👩\u200d👩\u200d👧 and 👍🏽 ❤\ufe0f 🇫🇷!!"  # ZWJ family, skin tone, variation selector, flag


def test_the_decomposed_form_really_has_combining_marks():
    assert len(NFD) == len(SENTENCE) + 7 and "e\u0301" in NFD  # seven accents


@pytest.mark.parametrize("text", [SENTENCE, NFD], ids=["NFC", "NFD"])
def test_split_words_keeps_accented_letters_whole_with_right_offsets(gpt2_tokenizer, text):
    split = split_words(gpt2_tokenizer, text)
    words = ["Le", "café", "de", "José", "était", "déjà", "fermé", "à", "minuit", "."]
    assert split.word_texts() == [unicodedata.normalize("NFD", w) if text == NFD else w for w in words]
    for word in split.words:  # the offsets index the text as given
        assert text[word.start:word.end].strip() == word.text


def test_the_examples_of_the_issue(gpt2_tokenizer):
    assert split_words(gpt2_tokenizer, "cafe\u0301").word_texts() == ["cafe\u0301"]  # was ['cafe', '\u0301']
    assert analysis.words("cafe\u0301") == ["café"]  # was ['cafe']


def test_split_words_keeps_emoji_sequences_whole(gpt2_tokenizer):
    split = split_words(gpt2_tokenizer, EMOJI)
    assert split.word_texts() == ["Hi", "👩\u200d👩\u200d👧", "and", "👍🏽", "❤\ufe0f", "🇫🇷", "!!"]
    assert [EMOJI[w.start:w.end].strip() for w in split.words] == split.word_texts()


def test_analysis_counts_the_same_words_in_nfc_and_nfd():
    assert analysis.words(NFD) == analysis.words(SENTENCE) == ["le", "café", "de", "josé", "était", "déjà",
                                                                "fermé", "à", "minuit"]
    assert analysis.tokenize(NFD) == analysis.tokenize(SENTENCE)
    assert analysis.symbols(EMOJI) == ["hi", "👩\u200d👩\u200d👧", "and", "👍🏽", "❤\ufe0f", "🇫🇷", "!", "!"]
    assert analysis.words(EMOJI) == ["hi", "and"]  # emoji are symbols, not words
    assert analysis.repetition_metrics(NFD) == analysis.repetition_metrics(SENTENCE)
    assert analysis.distinct_n(SENTENCE + " " + NFD, 1) == 9 / 18  # the NFD words repeat the NFC ones


def test_parts_of_speech_see_whole_words():
    tags = analysis.pos_tags(NFD)
    assert [t for t, _, _ in tags] == analysis.tokenize(SENTENCE)[:-1]  # nine words, the stop left out
    assert all(len(t) > 1 or t == "à" for t, _, _ in tags)  # no lone letter cut from its accent


def test_memorisation_matches_words_however_they_are_written():
    index = NoveltyIndex([SENTENCE], n=3)
    report = index.check(NFD)
    assert report.copied_fraction == 1.0 and report.total_ngrams == 8  # 9 words + "." -> 10 units
    assert report.longest_copied_text == NFD  # shown as written
    emoji = index.check(EMOJI)
    assert emoji.total_ngrams == len(["Hi", "👩\u200d👩\u200d👧", "and", "👍🏽", "❤\ufe0f", "🇫🇷", "!", "!"]) - 2


@pytest.mark.parametrize("text, expected", [
    ("!!!", ["!!!"]),
    ("!!\u0301", ["!", "!\u0301"]),  # the second '!' carries an accent: another visible character
    ("❤\ufe0f❤\ufe0f", ["❤\ufe0f❤\ufe0f"]),
    ("🇫🇷🇫🇷", ["🇫🇷🇫🇷"]),
    ("don't well-known", ["don't", "well-known"]),
    ("x\u0301\u0302y नमस्ते", ["x\u0301\u0302y", "नमस्ते"]),
])
def test_grapheme_patterns(text, expected):
    pattern = graphemes.compile_pattern(f"{graphemes.WORD}|{graphemes.SYMBOL_RUN}")
    assert [m.group() for m in pattern.finditer(text)] == expected
