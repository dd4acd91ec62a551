"""The logit transforms against transformers' logits processors, on random inputs with ties and edge values."""
from __future__ import annotations

import inspect

import pytest
import torch
from transformers.generation.logits_process import (
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from gpt2lab.generation import transforms


# ------------------------------------------------------------------ random inputs with ties and edge values
def _logit_batches(vocab: int = 40, seed: int = 0):
    """Batches of scores: continuous, heavily tied (small integers), with -inf entries, huge values,
    a constant row, and log-probabilities (what beam search transforms)."""
    g = torch.Generator().manual_seed(seed)
    yield "normal", torch.randn(4, vocab, generator=g) * 3
    yield "ties", torch.randint(-2, 3, (5, vocab), generator=g).float()
    with_inf = torch.randn(3, vocab, generator=g)
    with_inf[with_inf < -0.5] = -float("inf")
    yield "-inf", with_inf
    yield "huge", torch.randn(2, vocab, generator=g) * 1e4
    yield "constant", torch.full((2, vocab), 1.5)
    yield "log-probs", torch.log_softmax(torch.randn(3, vocab, generator=g) * 2, dim=-1)


def _histories(rows: int, vocab: int, seed: int = 0):
    """Token histories with many repeats (tiny alphabet), including ids at the vocabulary's edge."""
    g = torch.Generator().manual_seed(seed)
    for length in (1, 2, 3, 7, 20):
        yield torch.randint(0, 4, (rows, length), generator=g)
    edge = torch.randint(0, vocab, (rows, 12), generator=g)
    edge[:, 0] = vocab - 1
    yield edge


@pytest.mark.parametrize("temperature", [1e-3, 0.5, 0.7, 1.0, 1.7, 100.0])
def test_temperature_equals_transformers(temperature):
    for name, scores in _logit_batches():
        ours = transforms.apply_temperature(scores, temperature)
        theirs = TemperatureLogitsWarper(temperature)(None, scores.clone())
        assert torch.equal(ours, theirs), name


CUTOFFS = {"top-k": (transforms.top_k_filter, TopKLogitsWarper), "top-p": (transforms.top_p_filter, TopPLogitsWarper)}


@pytest.mark.parametrize("kind, value", [("top-k", k) for k in (1, 2, 5, 39, 40, 41, 1000)]
                         + [("top-p", p) for p in (1e-6, 0.1, 0.5, 0.92, 0.999, 1.0)])
@pytest.mark.parametrize("min_keep", [1, 2, 3])
def test_cutoffs_equal_transformers(kind, value, min_keep):
    ours, theirs = CUTOFFS[kind]
    for name, scores in _logit_batches():
        expected = theirs(value, min_tokens_to_keep=min_keep)(None, scores.clone())
        assert torch.equal(ours(scores, value, min_keep), expected), (name, kind, value)


def test_top_k_keeps_ties_and_zero_means_off():
    scores = torch.tensor([[3.0, 1.0, 2.0, 2.0, 0.0]])
    assert torch.isfinite(transforms.top_k_filter(scores, 2)).tolist() == [[True, False, True, True, False]]
    assert torch.equal(transforms.top_k_filter(scores, 0), scores)


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(transforms.top_p_filter(probs.log(), 0.7)).tolist()
    assert kept == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.5 + 0.3
    assert torch.isfinite(transforms.top_p_filter(probs.log(), 0.85)).sum() == 3


HISTORY_READERS = {"repetition penalty": (transforms.penalize_repetition, RepetitionPenaltyLogitsProcessor),
                   "n-gram blocking": (transforms.block_repeated_ngrams, NoRepeatNGramLogitsProcessor)}


@pytest.mark.parametrize("kind, value", [("repetition penalty", v) for v in (0.5, 1.0, 1.3, 3.0)]
                         + [("n-gram blocking", n) for n in (1, 2, 3, 4)])
def test_history_readers_equal_transformers(kind, value):
    ours, theirs = HISTORY_READERS[kind]
    for name, scores in _logit_batches():
        for history in _histories(scores.shape[0], scores.shape[1]):
            expected = theirs(value)(history, scores.clone())
            assert torch.equal(ours(scores, history, value), expected), (name, kind, value, history.tolist())


@pytest.mark.parametrize("penalty", [0.5, 1.3, 3.0])
def test_repetition_penalty_skips_left_padding_as_transformers_does(penalty):
    """``ignore_before`` against transformers' ``prompt_ignore_length`` (in recent transformers only)."""
    if "prompt_ignore_length" not in inspect.signature(RepetitionPenaltyLogitsProcessor).parameters:
        pytest.skip("this transformers has no prompt_ignore_length to compare with")
    g = torch.Generator().manual_seed(1)
    for name, scores in _logit_batches():
        for history in _histories(scores.shape[0], scores.shape[1]):
            skip = torch.randint(0, history.shape[1] + 1, (scores.shape[0],), generator=g)
            ours = transforms.penalize_repetition(scores, history, penalty, ignore_before=skip)
            theirs = RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=skip)(history, scores.clone())
            assert torch.equal(ours, theirs), (name, history.shape)


def test_repetition_penalty_moves_seen_tokens_down_whatever_their_sign():
    scores = torch.tensor([[2.0, -2.0, 1.0]])
    out = transforms.penalize_repetition(scores, torch.tensor([[0, 1, 1]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


def test_no_repeat_ngram_bans_exactly_the_completing_tokens():
    history = torch.tensor([[5, 6, 7, 5, 6, 8, 5]])  # 2-grams starting with 5: (5,6) twice
    out = transforms.block_repeated_ngrams(torch.zeros(1, 10), history, 2)
    assert torch.isinf(out[0]).nonzero().flatten().tolist() == [6]
    out3 = transforms.block_repeated_ngrams(torch.zeros(1, 10), torch.tensor([[5, 6, 7, 5, 6]]), 3)
    assert torch.isinf(out3[0]).nonzero().flatten().tolist() == [7]


def test_pipeline_order_matches_transformers_and_skips_no_ops():
    names = [t.name for t in transforms.logit_transforms(sampling=True, temperature=0.7, top_k=5, top_p=0.9,
                                                        repetition_penalty=1.2, no_repeat_ngram_size=2)]
    assert names == ["repetition penalty 1.2", "no repeated 2-gram", "temperature 0.7", "top-k 5", "top-p 0.9"]
    assert transforms.logit_transforms(sampling=True) == []
    assert [t.name for t in transforms.logit_transforms(sampling=False, temperature=0.5, top_k=3)] == []


# ------------------------------------------------------------------ temperatures at their limits
def test_temperature_limits_in_the_transform():
    scores = torch.tensor([[3.0, 1.0, 3.0, -2.0], [0.5, -1.0, 2.0, 2.0]])
    for tiny in (5e-324, 2e-38, 9.9e-31):  # T -> 0: only the highest score(s) stay, unchanged
        limit = transforms.apply_temperature(scores, tiny)
        assert torch.isfinite(limit).tolist() == [[True, False, True, False], [False, False, True, True]]
        assert torch.equal(torch.softmax(limit, -1)[0], torch.tensor([0.5, 0.0, 0.5, 0.0]))
    assert torch.equal(transforms.apply_temperature(scores, 1e-30), scores / 1e-30)  # the floor itself divides
    blocked = scores.masked_fill(scores < 0, -float("inf"))
    for huge in (1e30, 1e38, 1.7e308):  # T -> infinity: uniform over the allowed tokens, never nan
        out = torch.softmax(transforms.apply_temperature(blocked, huge), -1)
        assert not torch.isnan(out).any() and torch.equal(out[0], torch.tensor([0.5, 0.5, 0.5, 0.0]) * 2 / 3)
