import math

import pytest
import torch

from gpt2lab.basics.evaluation import score_ids, score_text


def _manual_nll(model, ids):
    logits = model(torch.tensor([ids])).logits[0, :-1]
    return torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum").item()


def test_single_window_equals_manual_cross_entropy(tiny_lm):
    ids = tiny_lm.tokenizer("the quick brown fox jumps over the lazy dog")["input_ids"]
    nll, count = score_ids(tiny_lm.model, torch.tensor(ids), block=64)
    assert count == len(ids) - 1
    assert math.isclose(nll, _manual_nll(tiny_lm.model, ids), rel_tol=1e-5)


@pytest.mark.parametrize("stride", [64, 32, 7, 1])
def test_sliding_window_scores_every_token_once(tiny_lm, stride):
    ids = torch.randint(0, 50257, (150,), generator=torch.Generator().manual_seed(0))
    nll, count = score_ids(tiny_lm.model, ids, block=64, stride=stride, batch_size=3)
    assert count == 149
    # the first window is scored exactly like a manual pass over it
    first, _ = score_ids(tiny_lm.model, ids[:64], block=64)
    assert nll > first


def test_smaller_stride_gives_the_same_result_when_text_fits(tiny_lm):
    ids = torch.arange(100, 140)
    a, _ = score_ids(tiny_lm.model, ids, block=64, stride=64)
    b, _ = score_ids(tiny_lm.model, ids, block=64, stride=16)
    assert math.isclose(a, b, rel_tol=1e-5)


def test_score_text_counts_every_character(tiny_lm):
    s = score_text(tiny_lm, "Hello there, world.")
    assert s.chars == len("Hello there, world.")
    assert s.tokens == len(tiny_lm.tokenizer("Hello there, world.")["input_ids"])
    assert math.isclose(s.bits_per_char, s.nll / math.log(2) / s.chars)
    assert math.isclose(s.perplexity, math.exp(s.loss))
    with pytest.raises(ValueError, match="empty"):
        score_text(tiny_lm, "")
    with pytest.raises(ValueError, match="stride"):
        score_ids(tiny_lm.model, torch.arange(10), block=8, stride=9)
