"""The n-gram explorer of notebook 01: its numbers are NGramLM's, and it reacts to its controls."""
from __future__ import annotations

import math

import pytest

from gpt2lab import data
from gpt2lab.basics.ngram import NGramLM
from gpt2lab.widgets.ngram import evaluate_ngram, ngram_explorer


@pytest.fixture(scope="module")
def texts():
    train, valid = data.tinyshakespeare_split()
    return train[:60_000], valid[:3_000]


def test_report_numbers_are_the_models(texts):
    train, valid = texts
    report = evaluate_ngram(train, valid, n=4, smoothing="kneser-ney", sample_length=50, seed=3)
    model = NGramLM(n=4, smoothing="kneser-ney").fit(train)
    assert math.isclose(report.heldout_bits_per_char, model.bits_per_char(valid), rel_tol=1e-12)
    assert math.isclose(report.heldout_perplexity, model.perplexity(valid), rel_tol=1e-12)
    # for a character model perplexity per character = 2 ** bits per character
    assert math.isclose(report.heldout_perplexity, 2 ** report.heldout_bits_per_char, rel_tol=1e-9)
    assert math.isclose(report.train_bits_per_char, model.bits_per_char(train), rel_tol=1e-12)
    assert report.sample == model.generate(50, seed=3) and len(report.sample) == 50
    assert report.train_bits_per_char < report.heldout_bits_per_char  # it has seen its training text


def test_explorer_refits_when_controls_change(texts):
    train, valid = texts
    box = ngram_explorer(train, valid, max_n=6, sample_length=40, n=2)
    assert box.last.n == 2 and "2-gram, kneser-ney" in box.report.value
    bigram_bits = box.last.heldout_bits_per_char
    box.n.value = 5
    assert box.last.n == 5 and "5-gram" in box.report.value
    assert box.last.heldout_bits_per_char < bigram_bits  # more context helps at this size
    assert box.k.disabled  # k only matters for add-k
    box.smoothing.value = "add-k"
    assert not box.k.disabled and box.last.smoothing == "add-k" and "k = 1" in box.report.value
    box.k.value = 0.01
    assert box.last.k == pytest.approx(0.01)
    expected = NGramLM(n=5, smoothing="add-k", k=box.k.value).fit(train).bits_per_char(valid)
    assert box.last.heldout_bits_per_char == pytest.approx(expected, rel=1e-12)
    sample = box.last.sample
    box.seed.value = 7
    assert box.last.sample != sample and len(box.last.sample) == 40


def test_explorer_reports_impossible_settings_instead_of_crashing(texts, gpt2_tokenizer):
    train, valid = texts
    box = ngram_explorer(train[:5_000], valid[:500], tokenizer=gpt2_tokenizer, max_n=6, sample_length=10, n=5)
    box.level.value = "token"  # 5-grams over 50,257 tokens do not fit 64-bit keys
    assert box.last is None and "Not possible" in box.report.value and "n &lt;= 3" in box.report.value
    box.n.value = 2
    assert box.last.level == "token" and "held-out perplexity per token" in box.report.value


def test_explorer_rejects_bad_arguments(texts):
    train, valid = texts
    with pytest.raises(ValueError, match="valid must be a non-empty string"):
        ngram_explorer(train, "")
    with pytest.raises(ValueError, match="n must be between 1 and max_n=4, got 5"):
        ngram_explorer(train, valid, max_n=4, n=5)
    with pytest.raises(ValueError, match="smoothing='witten-bell' is not known"):
        ngram_explorer(train, valid, smoothing="witten-bell")
