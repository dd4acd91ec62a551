"""gpt2lab.experiments.analysis: POS categories on hand-checked sentences, metrics on texts with known answers."""
from __future__ import annotations

import math

import pytest

from gpt2lab.experiments import analysis as A

# ------------------------------------------------------------------ tokenising

def test_tokenize_splits_clitics_and_punctuation_like_the_penn_treebank():
    assert A.tokenize("Don't stop, John's dog!") == ["Do", "n't", "stop", ",", "John", "'s", "dog", "!"]
    # curly apostrophes are straightened; archaic endings and hyphenated words stay whole
    assert A.tokenize("Feed’st thy light’s self-substantial fuel") == [
        "Feed'st", "thy", "light", "'s", "self-substantial", "fuel"]


def test_words_are_lowercased_without_punctuation():
    assert A.words("The cat -- the CAT! Don't.") == ["the", "cat", "the", "cat", "don't"]
    with pytest.raises(TypeError, match="str"):
        A.words(42)


# ------------------------------------------------------------------ parts of speech (hand-checked)

@pytest.mark.parametrize("sentence, expected", [
    ("The cat sat on the mat.",
     ["other", "nouns", "verbs", "prepositions", "other", "nouns"]),
    ("She quickly ate a red apple and he can run.",
     ["pronouns", "adverbs", "verbs", "other", "adjectives", "nouns", "conjunctions", "pronouns", "modals",
      "verbs"]),
    ("I will go to London because it is big.",
     ["pronouns", "modals", "verbs", "prepositions", "nouns", "prepositions", "pronouns", "verbs",
      "adjectives"]),
])
def test_pos_categories_of_hand_checked_sentences(sentence, expected):
    assert [c for _, _, c in A.pos_tags(sentence)] == expected


def test_archaic_pronouns_and_modals_are_tagged_as_such():
    # Without the table the newspaper-trained tagger calls "thou" a noun and "thy" a verb.
    plain = {w: c for w, _, c in A.pos_tags("But thou, contracted to thine own bright eyes", archaic=False)}
    fixed = {w: c for w, _, c in A.pos_tags("But thou, contracted to thine own bright eyes")}
    assert plain["thou"] != "pronouns"
    assert fixed["thou"] == "pronouns" and fixed["thine"] == "pronouns"
    assert {w: c for w, _, c in A.pos_tags("Thou shalt not pass")}["shalt"] == "modals"


def test_pos_distribution_counts_words_only_and_frequencies_sum_to_one():
    dist = A.pos_distribution("She quickly ate a red apple and he can run.")
    assert dist.total == 10  # the full stop is not a word
    assert dist.counts == {"conjunctions": 1, "prepositions": 0, "adjectives": 1, "modals": 1, "nouns": 1,
                           "pronouns": 2, "adverbs": 1, "verbs": 2, "other": 1}
    assert math.isclose(sum(dist.frequencies.values()), 1.0)
    assert dist.frequencies["pronouns"] == pytest.approx(0.2)
    series = dist.as_series("count")
    assert list(series.index) == list(A.POS_CATEGORIES) and series["verbs"] == 2
    pooled = A.pos_distribution(["The cat sat on the mat.", "She quickly ate a red apple and he can run."])
    assert pooled.total == 16 and pooled.counts["nouns"] == 3


def test_pos_distribution_of_text_without_words_is_empty():
    dist = A.pos_distribution("... !!")
    assert dist.total == 0 and set(dist.frequencies.values()) == {0.0}
    assert math.isnan(A.pos_divergence(dist, A.pos_distribution("The cat sat.")))


# ------------------------------------------------------------------ divergence

def test_js_divergence_known_values():
    assert A.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: 1 bit
    assert A.js_divergence([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4);
    # KL(p||m) = log2(4/3); KL(q||m) = 1/2 log2(2/3) + 1/2 log2(2)
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert A.js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(expected)


def test_pos_divergence_accepts_counts_and_frequencies_and_checks_categories():
    a = {"nouns": 3, "verbs": 1}
    b = {"nouns": 0.75, "verbs": 0.25}
    assert A.pos_divergence(a, b) == pytest.approx(0.0)
    assert A.pos_divergence({"nouns": 1}, {"verbs": 1}) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown POS categories.*'noun'"):
        A.pos_divergence({"noun": 1}, b)
    with pytest.raises(TypeError, match="pos_distribution"):
        A.pos_divergence("some text", b)


# ------------------------------------------------------------------ repetition

def test_distinct_n_known_values():
    text = "a b a b c"  # unigrams a,b,a,b,c -> 3 of 5; bigrams ab,ba,ab,bc -> 3 of 4
    assert A.distinct_n(text, 1) == pytest.approx(3 / 5)
    assert A.distinct_n(text, 2) == pytest.approx(3 / 4)
    assert A.distinct_n(text, 3) == pytest.approx(1.0)  # aba, bab, abc
    assert math.isnan(A.distinct_n("a b", 3))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        A.distinct_n(text, 0)


def test_corpus_distinct_pools_texts_without_crossing_boundaries():
    # "a b" + "b c": bigrams ab, bc (the "b b" across the boundary is not one) -> 2 of 2
    assert A.corpus_distinct_n(["a b", "b c"], 2) == pytest.approx(1.0)
    assert A.corpus_distinct_n(["a b", "a b"], 2) == pytest.approx(0.5)
    with pytest.raises(TypeError, match="list of texts"):
        A.corpus_distinct_n("a b", 1)


def test_repeated_ngram_share_counts_first_occurrences_too():
    assert A.repeated_ngram_share("a b a b", 1) == pytest.approx(1.0)
    # trigrams: xyz, yzx, zxy, xyz, yzw -> xyz occurs twice: 2 of 5 positions
    assert A.repeated_ngram_share("x y z x y z w", 3) == pytest.approx(2 / 5)
    assert A.repeated_ngram_share("one two three four", 3) == 0.0


def test_longest_repeated_span():
    assert A.longest_repeated_span("a b c d a b c e") == (3, ("a", "b", "c"))
    assert A.longest_repeated_span("no word here repeats") == (0, ())
    # overlapping occurrences count: "a a a a" holds "a a a" at positions 0 and 1
    assert A.longest_repeated_span("a a a a")[0] == 3


def test_loop_tail_and_ends_in_loop():
    assert A.loop_tail("x a b c a b c a b") == (3, 8)  # the last copy is cut off
    assert A.loop_tail("one two three") == (0, 0)
    assert A.ends_in_loop("and so the night went on " + "and I said no " * 3)
    assert not A.ends_in_loop("very very good")  # a short natural repetition is not a loop
    assert A.ends_in_loop("the " * 8)


def test_loops_of_blank_lines_and_punctuation_count_too():
    assert A.symbols("I'll go,\n\nNow.") == ["i'll", "go", ",", "\n", "\n", "now", "."]
    stuck = "I'll give me," + "\n" * 10  # 4 symbols, then 10 line breaks
    assert A.loop_tail(stuck) == (1, 10) and A.ends_in_loop(stuck)
    assert A.loop_share(stuck) == pytest.approx(10 / 14)
    assert A.loop_share("Shall I compare thee to a summer's day?") == 0.0
    # the words alone do not loop, so the word-level metrics cannot see this failure
    assert A.repetition_metrics(stuck)["distinct_1"] == 1.0


def test_repetition_metrics_of_a_loop():
    m = A.repetition_metrics("I love thee. " * 5)
    assert m["n_words"] == 15 and m["distinct_1"] == pytest.approx(3 / 15)
    assert m["repeated_3gram_share"] == pytest.approx(1.0) and m["longest_repeat"] == 12
    assert m["ends_in_loop"] is True and m["loop_share"] == 1.0  # "i love thee ." x 5


# ------------------------------------------------------------------ BLEU

def test_bleu_equals_nltk_sentence_bleu_with_method1_smoothing():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    cases = [
        ("the cat is on the mat today", ["there is a cat on the mat", "a cat is on the mat"]),
        ("a completely different sentence", ["the cat is on the mat"]),
        ("the the the the the the the", ["the cat is on the mat"]),
        ("short", ["a much longer reference sentence here"]),
    ]
    smooth = SmoothingFunction().method1
    for hyp, refs in cases:
        ours = A.bleu(hyp, refs)
        theirs = sentence_bleu([r.split() for r in refs], hyp.split(), smoothing_function=smooth)
        assert ours == pytest.approx(theirs, abs=1e-12), (hyp, refs)


def test_bleu_of_identical_text_is_one_and_disjoint_is_zero():
    assert A.bleu("the cat sat on the mat", ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert A.bleu("alpha beta gamma delta", ["one two three four"]) == 0.0
    with pytest.raises(ValueError, match="at least one reference"):
        A.bleu("a b", [])


def test_self_bleu_known_values():
    same = ["the cat sat on the mat"] * 3
    assert A.self_bleu(same) == pytest.approx(1.0)
    assert A.self_bleu(["alpha beta gamma", "one two three", "red green blue"]) == 0.0
    with pytest.raises(ValueError, match="at least two texts"):
        A.self_bleu(["only one"])


# ------------------------------------------------------------------ perplexity

def test_text_perplexity_matches_score_text_and_conditions_on_prompt(tiny_lm):
    import torch

    from gpt2lab.basics.evaluation import score_text

    text = " and then the cat sat on the mat"
    assert A.text_perplexity(tiny_lm, text) == pytest.approx(score_text(tiny_lm, text).perplexity)
    # conditional perplexity from one forward pass over prompt + text, scoring only the text's tokens
    prompt = "Once upon a time"
    ids = [tiny_lm.tokenizer.eos_token_id] + tiny_lm.tokenizer(prompt)["input_ids"]
    n_prompt = len(ids)
    ids += tiny_lm.tokenizer(text)["input_ids"]
    with torch.no_grad():
        logits = tiny_lm.model(torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits[:-1].float(), -1)
    targets = torch.tensor(ids[1:])
    nll = -logp[torch.arange(len(targets)), targets][n_prompt - 1:].mean()
    assert A.text_perplexity(tiny_lm, text, prompt=prompt) == pytest.approx(math.exp(nll.item()), rel=1e-4)
    with pytest.raises(ValueError, match="non-empty"):
        A.text_perplexity(tiny_lm, "")


def test_missing_tagger_data_gives_a_clear_error_with_the_fix(monkeypatch, tmp_path):
    import nltk

    from gpt2lab import data

    monkeypatch.setenv("GPT2LAB_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("GPT2LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    monkeypatch.setattr(nltk, "download", lambda *a, **k: False)  # offline: the download fails
    monkeypatch.setattr(A, "_TAGGER", None)
    with pytest.raises(data.DataUnavailableError, match=r"averaged_perceptron_tagger_eng.*Fix:.*nltk\.downloader"):
        A.pos_tags("The cat sat.")
