import math

import numpy as np
import pytest

from gpt2lab import data
from gpt2lab.basics.ngram import UNK, NGramLM

CORPUS = "the cat sat on the mat. the dog sat on the log. a cat and a dog."


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_distribution_sums_to_one_for_every_context(n, smoothing):
    lm = NGramLM(n, smoothing=smoothing, k=0.5).fit(CORPUS)
    contexts = {CORPUS[max(0, i - n + 1): i] for i in range(len(CORPUS))}
    rng = np.random.default_rng(0)
    contexts |= {"".join(rng.choice(list("xyz tac"), size=n)) for _ in range(20)}  # mostly unseen
    for ctx in contexts:
        p = lm.next_distribution(ctx)
        assert p.shape == (lm.vocab_size,)
        assert np.all(p > 0)
        assert math.isclose(p.sum(), 1.0, rel_tol=0, abs_tol=1e-9), ctx


def test_add_k_hand_computed():
    lm = NGramLM(2, smoothing="add-k", k=1.0).fit("abcab")  # vocab a b c + unk: V = 4
    assert lm.vocab == ["a", "b", "c", UNK]
    # bigram counts: ab 2, bc 1, ca 1
    assert math.isclose(lm.next_distribution("a")[1], (2 + 1) / (2 + 4))
    assert math.isclose(lm.next_distribution("a")[2], (0 + 1) / (2 + 4))
    # the first symbol has no context: unigram counts a 2, b 2, c 1
    assert math.isclose(math.exp(lm.log_probs("a")[0]), (2 + 1) / (5 + 4))
    # log_prob of a sequence is the sum of its conditional log-probs
    expected = math.log(3 / 9) + math.log(3 / 6)
    assert math.isclose(lm.log_prob("ab"), expected)


def test_kneser_ney_hand_computed():
    lm = NGramLM(2, smoothing="kneser-ney").fit("abcab")
    # bigram counts ab 2, bc 1, ca 1 -> n1 = 2, n2 = 1 -> D = 2 / (2 + 2 * 1) = 0.5
    # unigram continuation counts: each of a, b, c follows exactly one symbol -> D clamps to 0.95
    d2, d1 = 0.5, 0.95
    p1 = {w: max(1 - d1, 0) / 3 + d1 * 3 / 3 / 4 for w in "abc"}
    p1[UNK] = d1 * 3 / 3 / 4
    assert math.isclose(sum(p1.values()), 1.0)
    p_b_given_a = max(2 - d2, 0) / 2 + d2 * 1 / 2 * p1["b"]
    p_c_given_a = 0 + d2 * 1 / 2 * p1["c"]
    dist = lm.next_distribution("a")
    assert math.isclose(dist[1], p_b_given_a)
    assert math.isclose(dist[2], p_c_given_a)
    # unseen context "c?" -> "ca" seen once; context "x" is unknown -> pure lower order
    assert np.allclose(lm.next_distribution("x"), [p1[w] for w in lm.vocab])


def test_perplexity_and_bits_per_char_agree():
    lm = NGramLM(3).fit(CORPUS)
    text = "the cat sat on the log."
    nll = -lm.log_probs(text)
    assert math.isclose(lm.perplexity(text), math.exp(nll.mean()))
    assert math.isclose(lm.bits_per_char(text), nll.sum() / math.log(2) / len(text))


def test_unknown_characters_get_probability():
    lm = NGramLM(3).fit(CORPUS)
    assert np.isfinite(lm.log_prob("zebra!"))


def test_generation_is_seeded_and_uses_the_prompt():
    lm = NGramLM(4).fit(CORPUS * 3)
    a = lm.generate(40, prompt="the ", seed=1)
    assert a == lm.generate(40, prompt="the ", seed=1)
    assert a.startswith("the ") and len(a) == 44 and UNK not in a
    assert a != lm.generate(40, prompt="the ", seed=2)


def test_token_level_with_real_gpt2_tokenizer():
    tok = data.gpt2_tokenizer()
    lm = NGramLM(3, level="token", tokenizer=tok).fit(CORPUS * 2)
    assert lm.vocab_size == 50257
    assert math.isclose(lm.next_distribution(" the cat").sum(), 1.0, abs_tol=1e-9)
    assert lm.bits_per_char("the cat sat on the log.") > 0
    assert lm.generate(5, prompt="the", seed=0).startswith("the")


def test_higher_order_helps_on_shakespeare():
    train, val = data.tinyshakespeare_split()
    bpc = {n: NGramLM(n).fit(train).bits_per_char(val[:20000]) for n in (1, 3, 5)}
    assert bpc[1] > bpc[3] > bpc[5]
    assert 2.0 < bpc[5] < 2.6  # a character 5-gram is about 2.3 bits/char on this split


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be"), ({"n": 2.5}, "n must be"), ({"smoothing": "witten-bell"}, "smoothing"),
    ({"smoothing": "add-k", "k": 0}, "k must be > 0"), ({"discount": 1.5}, "discount"),
    ({"level": "word"}, "level"), ({"level": "token"}, "needs a tokenizer"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NGramLM(**kwargs)


def test_use_before_fit_and_empty_text():
    with pytest.raises(RuntimeError, match="not fitted"):
        NGramLM(2).log_prob("abc")
    with pytest.raises(ValueError, match="non-empty"):
        NGramLM(2).fit("")


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k"])
def test_short_history_matches_sequence_scoring(smoothing):
    """next_distribution after fewer than n-1 symbols must use exactly those symbols as context,
    the same conditional that log_probs uses for the start of a text."""
    lm = NGramLM(4, smoothing=smoothing).fit(CORPUS)
    for context in ["t", "th", "the", "the c"]:
        for target in "e ac":
            via_sequence = math.exp(lm.log_probs(target, context=context)[0])
            assert math.isclose(lm.next_distribution(context)[lm.vocab.index(target)], via_sequence), context
