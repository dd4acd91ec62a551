"""Issue 18's measurements (induction on repeated seen tokens, copying, whole-word tokens) and the
training windows that repeat: checked on hand-built models whose answers are known."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from gpt2lab import from_model
from gpt2lab.attention import induction
from gpt2lab.basics.bpe import single_token_share, top_words, train_bpe
from gpt2lab.training.loop import RandomWindows
from gpt2lab.training.repeats import RepeatingWindows

TEXT = ("the king is dead , long live the king . the queen is here and the king is there . " * 40
        + "a rare zyzzyva word . " * 2)


@pytest.fixture(scope="module")
def small_bpe():
    return train_bpe(TEXT, vocab_size=300)


class InductionByHand(torch.nn.Module):
    """One layer, one head that attends from each token to the token after its latest earlier occurrence
    (to position 0 when there is none) and predicts that token: an induction head written out."""

    def __init__(self, vocab: int, context: int = 64):
        super().__init__()
        self.config = types.SimpleNamespace(n_positions=context, vocab_size=vocab, pad_token_id=None)
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, output_attentions=False, **_):
        n, length = input_ids.shape
        logits = torch.zeros(n, length, self.config.vocab_size)
        weights = torch.zeros(n, 1, 1, length, length)
        for b in range(n):
            row = input_ids[b].tolist()
            for q in range(length):
                earlier = [p for p in range(q) if row[p] == row[q]]
                target = earlier[-1] + 1 if earlier else 0
                weights[b, 0, 0, q, target] = 1.0
                if earlier:
                    logits[b, q, row[target]] = 30.0
        return types.SimpleNamespace(logits=logits, attentions=(weights[:, 0],) if output_attentions else None)


def test_top_words_and_single_token_share(small_bpe):
    words = top_words(TEXT, 3)
    assert words[0] == " the" and set(words[1:]) == {" king", " is"}  # with their leading space
    assert single_token_share(small_bpe, TEXT, n=3) == 1.0  # frequent words were merged whole
    assert len(small_bpe(" zyzzyva")["input_ids"]) > 1
    assert single_token_share(small_bpe, "zyzzyva", n=1) == 0.0
    with pytest.raises(ValueError, match="no words"):
        single_token_share(small_bpe, "1 2 3")
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        top_words(TEXT, 0)


def test_seen_token_ids_leave_out_special_tokens(small_bpe):
    ids = small_bpe(TEXT + "<|endoftext|>")["input_ids"]
    allowed = induction.seen_token_ids(small_bpe, ids)
    assert small_bpe.eos_token_id in ids and small_bpe.eos_token_id not in allowed
    assert list(allowed) == sorted(set(ids) - {small_bpe.eos_token_id})
    with pytest.raises(ValueError, match="no ordinary token"):
        induction.seen_token_ids(small_bpe, [small_bpe.eos_token_id])


def test_an_induction_head_scores_one_and_copies(gpt2_tokenizer):
    lm = from_model(InductionByHand(len(gpt2_tokenizer)), gpt2_tokenizer, name="induction-by-hand", device="cpu")
    ids = gpt2_tokenizer("The quick brown fox jumps over one lazy dog while seven wizards quietly juggle boxes "
                         "near Paris")["input_ids"]  # no token twice: the latest earlier occurrence is the copy
    assert len(set(ids)) == len(ids)
    found = induction.induction_figures(lm, np.arange(1000, 5000), length=20, n=4)
    assert found["scores"].shape == (1, 1) and found["best_head"] == [0, 0]
    assert found["best"] > 0.9 and found["ratio"] > 10  # uniform attention would score ~1/30
    assert found["uniform_baseline"] == pytest.approx(np.mean(1 / (np.arange(21, 41) + 1)))
    assert found["loss_second"] < 0.01 < found["loss_first"]
    copying = induction.copy_figures(lm, ids, length=10, n=4)
    # every token of the repeat is copied but its first, which follows the first copy's last token: 1 in 10
    assert copying["ratio"] == pytest.approx(1 / 10, abs=1e-3)
    assert copying["loss_first"] == pytest.approx(np.log(len(gpt2_tokenizer)), rel=1e-3)  # nothing seen before


def test_a_model_that_cannot_see_earlier_tokens_does_not_copy(tiny_lm):
    ids = tiny_lm.tokenizer("To be, or not to be, that is the question. " * 10)["input_ids"]
    copying = induction.copy_figures(tiny_lm, ids, length=20, n=3)
    assert 0.8 < copying["ratio"] < 1.2  # random weights: the repeat is no easier than the first copy
    with pytest.raises(ValueError, match="2 <= length <= 31"):
        induction.copy_figures(tiny_lm, ids, length=40)
    with pytest.raises(ValueError, match="at least length \\+ 1"):
        induction.copy_figures(tiny_lm, ids[:10], length=20)
    with pytest.raises(ValueError, match="the pool is empty"):
        induction.induction_figures(tiny_lm, [], length=10)


def test_repeating_windows_repeat_as_documented():
    ids = np.arange(1000) % 97 + 1  # no token 0, the bos here
    allowed = np.arange(200, 260)
    windows = RepeatingWindows(ids, 64, seed=3, span_share=0.3, span_min=5, span_max=20, random_share=0.4,
                               random_min=5, random_max=20, allowed=allowed, bos=0)
    plain = RandomWindows(ids, 64, seed=3)
    kinds = [windows.kind(i) for i in range(600)]
    assert 0.2 < kinds.count("span") / 600 < 0.4 and 0.3 < kinds.count("random") / 600 < 0.5
    for i, kind in enumerate(kinds[:200]):
        item, again = windows[i], windows[i]
        assert torch.equal(item["input_ids"], again["input_ids"])  # item i is always the same window
        x, y = item["input_ids"], item["labels"]
        assert x.shape == y.shape == (64,)
        if kind == "plain":
            assert torch.equal(x, plain[i]["input_ids"]) and torch.equal(y, plain[i]["labels"])
        elif kind == "random":
            assert x[0] == 0
            span = int(np.argmax(np.isin(x[1:].numpy(), allowed, invert=True)))  # the text follows the copies
            span = span // 2
            assert torch.equal(x[1:1 + span], x[1 + span:1 + 2 * span]) and np.isin(x[1:1 + span], allowed).all()
            assert (y[:span - 1] == -100).all() and (y[span - 1:] != -100).all()
        else:
            assert (y != -100).all() and not torch.equal(x, plain[i]["input_ids"])
            assert torch.equal(x[1:], y[:-1])  # labels are still the inputs shifted by one


def test_repeating_windows_refuse_bad_settings():
    ids = np.arange(500)
    with pytest.raises(ValueError, match="random_share > 0 needs the allowed token ids"):
        RepeatingWindows(ids, 256, random_share=0.2)
    with pytest.raises(ValueError, match="must fit in one window of 65 tokens: span_max <= 32"):
        RepeatingWindows(ids, 64, span_max=40)
    with pytest.raises(ValueError, match="must be <= 1"):
        RepeatingWindows(ids, 64, span_share=0.7, random_share=0.5, allowed=[1], bos=0, span_max=20)
    with pytest.raises(ValueError, match="span_share must be in"):
        RepeatingWindows(ids, 64, span_share=-0.1, span_max=20)
