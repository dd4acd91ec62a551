"""Word importance by perturbation (gpt2lab.explain.importance) and word grouping (gpt2lab.explain.words)."""
from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
import torch
from conftest import make_value_blind_lm

SENTENCE = "I disapprove of what you say, but"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # r^2 is cached on disk; tests keep theirs out of the user's cache
    monkeypatch.setenv("GPT2LAB_CACHE", str(tmp_path_factory.getbasetemp() / "gpt2lab-cache"))


# ----------------------------------------------------------------------------- words

def test_canonical_sentence_has_eight_words(gpt2_tokenizer):
    from gpt2lab.explain.words import split_words

    split = split_words(gpt2_tokenizer, SENTENCE)
    assert split.word_texts() == ["I", "disapprove", "of", "what", "you", "say", ",", "but"]
    assert split.n_tokens == 8
    # the comma is its own word; the space before "disapprove" belongs to that word's piece
    assert split.words[1].start == 1 and SENTENCE[split.words[1].start:split.words[1].end] == " disapprove"


def test_multi_piece_words_share_one_word(gpt2_tokenizer):
    from gpt2lab.explain.words import split_words

    text = "He said: \"don't\" -- a well-known résumé (antidisestablishmentarianism)."
    split = split_words(gpt2_tokenizer, text)
    words = split.word_texts()
    assert words == ["He", "said", ":", '"', "don't", '"', "--", "a", "well-known", "résumé", "(",
                     "antidisestablishmentarianism", ")."]
    pieces = {w.text: len(w.tokens) for w in split.words}
    assert pieces["don't"] == 2 and pieces["well-known"] == 3 and pieces["résumé"] == 3
    assert pieces["antidisestablishmentarianism"] > 2
    # every piece belongs to exactly one word, in reading order, and words cover all pieces
    assert list(split.token_to_word) == sorted(split.token_to_word)
    assert sum(len(w.tokens) for w in split.words) == split.n_tokens


def test_whitespace_pieces_join_the_next_word(gpt2_tokenizer):
    from gpt2lab.explain.words import split_words

    split = split_words(gpt2_tokenizer, "To be,\n\nor not  to be\n")
    assert split.word_texts() == ["To", "be", ",", "or", "not", "to", "be"]
    ids = gpt2_tokenizer("To be,\n\nor not  to be\n")["input_ids"]
    newline = [t for t, piece in enumerate(gpt2_tokenizer.convert_ids_to_tokens(ids)) if "Ċ" in piece][0]
    assert split.words[split.token_to_word[newline]].text == "or"  # blank line goes with the next word
    assert split.token_to_word[-1] == len(split.words) - 1  # a trailing newline joins the last word


def test_token_units_and_bad_text(gpt2_tokenizer):
    from gpt2lab.explain.words import split_tokens, split_words

    assert split_tokens(gpt2_tokenizer, "a résumé").n_words == 4
    with pytest.raises(ValueError, match="no words"):
        split_words(gpt2_tokenizer, "   ")
    with pytest.raises(TypeError, match="string"):
        split_words(gpt2_tokenizer, 42)


# ----------------------------------------------------------------------------- importance

def test_sigma_stays_in_range_and_result_views(tiny_lm):
    import matplotlib

    matplotlib.use("Agg")
    import gpt2lab

    # a large learning rate and entropy weight push rho far out: sigma must still lie in (0, scale]
    res = gpt2lab.word_importance(tiny_lm, SENTENCE, steps=25, samples=4, lr=2.0, rate=5.0, progress=False)
    assert res.words == ["I", "disapprove", "of", "what", "you", "say", ",", "but"]
    assert np.all(res.sigma > 0) and np.all(res.sigma <= res.scale)
    assert res.importance.min() == 0.0 and res.importance.max() == 1.0
    assert res.loss_trace.shape == (25,) and np.isfinite(res.loss_trace).all()
    # the kept state is judged on a smoothed loss: a weighted average of the raw losses
    assert res.loss_trace.min() - 1e-6 <= res.best_loss <= res.loss_trace.max() + 1e-6
    raw = gpt2lab.word_importance(tiny_lm, SENTENCE, steps=25, samples=4, smoothing=0.0, progress=False)
    assert raw.best_loss == pytest.approx(raw.loss_trace.min(), rel=1e-5)  # the original's rule
    assert raw.best_step == int(np.argmin(raw.loss_trace))
    frame = res.to_dataframe()
    assert list(frame["word"]) == res.words and sorted(frame["rank"]) == list(range(1, 9))
    page = res._repr_html_()
    assert "disapprove" in page and page.count("<span") == 8
    fig = res.plot(show_loss=True)
    assert len(fig.axes) >= 3
    matplotlib.pyplot.close(fig)


def test_words_that_cannot_influence_get_the_largest_sigma(gpt2_tokenizer):
    import gpt2lab

    lm = make_value_blind_lm(gpt2_tokenizer)
    res = gpt2lab.word_importance(lm, "The cat sat on the mat", steps=120, samples=8, progress=False)
    *blind, last = res.sigma
    assert min(blind) > last
    assert min(blind) > 0.95 * res.scale  # nothing holds them back: they take (almost) all the noise
    assert res.ranking()[0] == "mat"


class _ToyBase(torch.nn.Module):
    """h_t = tanh(W * sum_{s<=t} w_s x_s): position ``deaf`` has weight 0, so it cannot matter."""

    def __init__(self, dim: int, length: int, deaf: int):
        super().__init__()
        self.mix = torch.nn.Linear(dim, dim)
        weights = torch.ones(length)
        weights[deaf] = 0.0
        self.register_buffer("weights", weights)

    def forward(self, inputs_embeds, attention_mask=None, use_cache=False):
        t = inputs_embeds.shape[1]
        summed = torch.cumsum(inputs_embeds * self.weights[:t, None], dim=1)
        return types.SimpleNamespace(last_hidden_state=torch.tanh(self.mix(summed)))


class _ToyLM(torch.nn.Module):
    def __init__(self, vocab: int, dim: int = 16, length: int = 32, deaf: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.config = types.SimpleNamespace(n_positions=length, pad_token_id=None)
        self.embed = torch.nn.Embedding(vocab, dim)
        self.base_model = _ToyBase(dim, length, deaf)
        self.head = torch.nn.Linear(dim, 50, bias=False)

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return self.head


def test_a_deaf_middle_position_gets_the_largest_sigma(gpt2_tokenizer):
    import gpt2lab

    # BOS sits at position 0, so position 3 holds the third word, " sat"
    lm = gpt2lab.from_model(_ToyLM(len(gpt2_tokenizer), deaf=3), gpt2_tokenizer, name="toy", device="cpu")
    res = gpt2lab.word_importance(lm, "The cat sat on the mat", steps=120, samples=8, normaliser="self",
                                  progress=False)
    assert res.words[int(np.argmax(res.sigma))] == "sat"
    others = np.delete(res.sigma, 2)
    assert res.sigma[2] > 0.95 * res.scale and others.max() < res.sigma[2]


def test_batched_equals_one_by_one_under_the_same_seed(tiny_lm):
    import gpt2lab

    texts = [SENTENCE, "To be or not", "Now is the winter of our discontent made glorious"]
    kw = dict(steps=15, samples=4, seed=7, progress=False)
    batched = gpt2lab.word_importance(tiny_lm, texts, **kw)
    for text, res in zip(texts, batched):
        alone = gpt2lab.word_importance(tiny_lm, text, **kw)
        assert alone.words == res.words
        np.testing.assert_allclose(res.sigma, alone.sigma, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(res.loss_trace, alone.loss_trace, rtol=1e-4, atol=1e-6)
    # a small memory cap (several forward chunks per step) gives the same answer too
    chunked = gpt2lab.word_importance(tiny_lm, texts, max_rows=3, **kw)
    for a, b in zip(batched, chunked):
        np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-4, atol=1e-6)


def test_early_stop_is_the_full_run_cut_where_the_answer_settled(tiny_lm):
    import gpt2lab

    kw = dict(steps=300, samples=4, seed=3, progress=False)
    full = gpt2lab.word_importance(tiny_lm, SENTENCE, stop_tol=None, record_every=1, **kw)
    assert full.steps_run == 300 and full.loss_trace.shape == (300,)
    early = gpt2lab.word_importance(tiny_lm, SENTENCE, stop_tol=0.05, patience=30, **kw)
    assert 30 < early.steps_run < 300, early.steps_run
    assert early.loss_trace.shape == (early.steps_run,)
    # stopping changes nothing before the stop: the answer is the full run's kept sigma at that step
    np.testing.assert_allclose(early.loss_trace, full.loss_trace[:early.steps_run], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(early.sigma, full.sigma_trace[early.steps_run - 1], rtol=1e-5)
    # and the rule held: at every check (each 5 steps) of the last 30, no word's kept sigma was 5 % off
    window = np.log(full.sigma_trace[early.steps_run - 31:early.steps_run:5])
    assert np.abs(window - window[-1]).max() < 0.05


def test_texts_stopping_at_different_steps_still_match_one_by_one(tiny_lm):
    import gpt2lab

    texts = [SENTENCE, "To be or not", "Now is the winter of our discontent made glorious"]
    kw = dict(steps=300, samples=4, seed=5, stop_tol=0.05, patience=20, progress=False)
    batched = gpt2lab.word_importance(tiny_lm, texts, record_every=10, **kw)
    stops = [r.steps_run for r in batched]
    assert len(set(stops)) > 1 and min(stops) < 300, stops  # they really left the batch at different times
    for text, res in zip(texts, batched):
        alone = gpt2lab.word_importance(tiny_lm, text, **kw)
        assert alone.steps_run == res.steps_run
        np.testing.assert_allclose(res.sigma, alone.sigma, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(res.loss_trace, alone.loss_trace, rtol=1e-4, atol=1e-6)
        assert np.allclose(res.sigma_trace[-1], res.sigma)  # a stopped text's sigma stays put in the batch


def test_deterministic_under_a_seed(tiny_lm):
    import gpt2lab

    kw = dict(steps=10, samples=4, progress=False)
    first = gpt2lab.word_importance(tiny_lm, SENTENCE, seed=1, **kw)
    again = gpt2lab.word_importance(tiny_lm, SENTENCE, seed=1, **kw)
    other = gpt2lab.word_importance(tiny_lm, SENTENCE, seed=2, **kw)
    assert np.array_equal(first.sigma, again.sigma)
    assert np.array_equal(first.loss_trace, again.loss_trace)
    assert not np.array_equal(first.sigma, other.sigma)


def test_token_unit_gives_one_sigma_per_piece(tiny_lm):
    import gpt2lab

    text = "a résumé"
    words = gpt2lab.word_importance(tiny_lm, text, steps=3, samples=2, progress=False)
    pieces = gpt2lab.word_importance(tiny_lm, text, steps=3, samples=2, unit="token", progress=False)
    assert words.words == ["a", "résumé"] and len(words.sigma) == 2
    assert len(pieces.sigma) == 4 and words.pieces[1] == [" ré", "sum", "é"]


def test_output_variance_is_cached_per_model(tiny_lm):
    from gpt2lab.explain import outputs

    path = outputs.cache_path(tiny_lm, "logits", True, outputs.CORPUS_SENTENCES)
    path.unlink(missing_ok=True)
    first = outputs.output_variance(tiny_lm)
    assert path.is_file() and first.shape == (tiny_lm.model.config.vocab_size,) and bool((first > 0).all())
    again = outputs.output_variance(tiny_lm)
    assert torch.equal(first, again)
    # another model (different weights) gets another cache entry
    other = outputs.cache_path(make_value_blind_lm(tiny_lm.tokenizer), "logits", True,
                               outputs.CORPUS_SENTENCES)
    assert other != path


def test_falls_back_to_self_normaliser_without_a_corpus(tiny_lm, monkeypatch):
    import gpt2lab
    from gpt2lab import data
    from gpt2lab.explain import importance

    def unavailable(*_, **__):
        raise data.DataUnavailableError("no corpus here")

    monkeypatch.setattr(importance, "output_variance", unavailable)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = gpt2lab.word_importance(tiny_lm, "To be or not", steps=3, samples=2, progress=False)
    assert any("normalising by mean" in str(w.message) for w in caught)
    assert res.settings["normaliser"] == "self"
    same = gpt2lab.word_importance(tiny_lm, "To be or not", steps=3, samples=2, normaliser="self", progress=False)
    np.testing.assert_array_equal(res.sigma, same.sigma)


def test_objective_is_fit_minus_rate_times_entropy(tiny_lm):
    import gpt2lab
    from gpt2lab.explain import importance

    res = gpt2lab.word_importance(tiny_lm, SENTENCE, steps=5, samples=2, progress=False)
    quiet = importance.objective(tiny_lm, res, np.full(8, 1e-6), samples=64)
    assert quiet.fit < 1e-6  # (almost) no noise: the output does not move
    assert quiet.entropy == pytest.approx(np.log(1e-6))
    assert quiet.loss == pytest.approx(quiet.fit - 0.1 * quiet.entropy)
    loud = importance.objective(tiny_lm, res, np.full(8, res.scale), samples=64)
    assert loud.fit > 100 * quiet.fit and loud.fit_error > 0 and loud.samples == 64
    # the same noise for the same seed: the estimate is reproducible
    assert importance.objective(tiny_lm, res, samples=64) == importance.objective(tiny_lm, res, samples=64)
    with pytest.raises(ValueError, match="8 positive finite numbers"):
        importance.objective(tiny_lm, res, np.ones(3))
    with pytest.raises(ValueError, match="8 positive finite numbers"):
        importance.objective(tiny_lm, res, -np.ones(8))
    with pytest.raises(ValueError, match="samples=1"):
        importance.objective(tiny_lm, res, samples=1)
    with pytest.raises(ValueError, match="chunk=0"):
        importance.objective(tiny_lm, res, chunk=0)
    with pytest.raises(TypeError, match="WordImportance"):
        importance.objective(tiny_lm, res.sigma)


def test_the_answer_beats_its_neighbours_on_the_objective(tiny_lm):
    import gpt2lab
    from gpt2lab.explain import importance

    res = gpt2lab.word_importance(tiny_lm, SENTENCE, steps=200, samples=8, progress=False)
    found = importance.objective(tiny_lm, res, samples=512).loss
    for factor in (0.5, 2.0):  # every sigma halved or doubled (within the ceiling)
        moved = np.minimum(res.sigma * factor, res.scale)
        assert found < importance.objective(tiny_lm, res, moved, samples=512).loss, factor


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "steps=0"), (dict(samples=-1), "samples=-1"), (dict(lr=0.0), "lr=0.0"),
    (dict(output="attention"), "output='attention'"), (dict(unit="char"), "unit='char'"),
    (dict(scale=-1.0), "scale=-1.0"), (dict(record_every=0), "record_every=0"), (dict(init=1.0), "init=1.0"),
    (dict(smoothing=1.0), "smoothing=1.0"), (dict(final_lr_ratio=0), "final_lr_ratio=0"),
    (dict(stop_tol=0.0), "stop_tol=0.0"), (dict(stop_tol=float("nan")), "stop_tol=nan"),
    (dict(patience=0), "patience=0"),
])
def test_bad_settings_name_the_field(tiny_lm, kwargs, match):
    import gpt2lab

    with pytest.raises(ValueError, match=match):
        gpt2lab.word_importance(tiny_lm, SENTENCE, progress=False, **kwargs)


def test_bad_texts_are_refused_clearly(tiny_lm):
    import gpt2lab

    with pytest.raises(ValueError, match="no words"):
        gpt2lab.word_importance(tiny_lm, "  ", progress=False)
    with pytest.raises(TypeError, match=r"text_or_texts\[1\]"):
        gpt2lab.word_importance(tiny_lm, ["fine", 3], progress=False)
    with pytest.raises(ValueError, match="reads at most"):
        gpt2lab.word_importance(tiny_lm, "word " * 100, progress=False)


def test_embedded_model_explains_a_line(embedded_lm):
    import gpt2lab

    res = gpt2lab.word_importance(embedded_lm, "Shall I compare thee to a summer's", steps=30, samples=8,
                                  record_every=10, progress=False)
    assert res.words == ["Shall", "I", "compare", "thee", "to", "a", "summer's"]
    assert res.sigma_trace.shape == (3, 7) and list(res.trace_steps) == [10, 20, 30]
    assert np.all(np.diff(res.trace_seconds) > 0)
    assert np.allclose(res.sigma_trace[-1], res.sigma)


def test_the_small_start_finds_a_better_optimum_than_half_the_ceiling(embedded_lm):
    """The claim behind the default init: started at half the ceiling (the published code's typical
    start), words whose information is already gone drift to the ceiling and the loss ends higher."""
    import gpt2lab
    from gpt2lab.explain import importance

    text = "To be, or not to be, that is the"
    small = gpt2lab.word_importance(embedded_lm, text, progress=False)
    half = gpt2lab.word_importance(embedded_lm, text, init=0.5, progress=False)
    assert small.settings["init"] == 0.05
    low, high = importance.objective(embedded_lm, small), importance.objective(embedded_lm, half)
    assert low.loss < high.loss - 10 * (low.fit_error + high.fit_error), (low, high)


# ----------------------------------------------------------------------------- the benchmark's original

def _bench():
    import importlib
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module("bench_importance")
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_the_bench_original_minimises_the_same_objective(tiny_lm):
    """The re-implemented original must solve gpt2lab's problem, or the bench compares apples and pears:
    its loss is gpt2lab's objective plus the constant rate * log(scale) (it logs sigmoid(ratio), not sigma)."""
    import gpt2lab
    from gpt2lab.explain import importance
    from gpt2lab.explain import outputs as explain_outputs

    bench = _bench()
    # a word of several pieces, and a large rate: the entropy term must be a mean over words, not pieces
    text, rate = "The antidisestablishmentarianism of thee, said", 2.0
    res = gpt2lab.word_importance(tiny_lm, text, steps=1, samples=1, rate=rate, progress=False)
    r2 = explain_outputs.output_variance(tiny_lm)
    original = bench.original_interpreter(tiny_lm, text, r2, res.scale, rate, init=0.2)
    fractions = torch.linspace(0.01, 0.3, len(res.words))
    with torch.no_grad():
        original.ratio.copy_(torch.logit(fractions).unsqueeze(1))
        torch.manual_seed(0)
        draws = torch.stack([original() for _ in range(3000)]).double()
    expected = importance.objective(tiny_lm, res, fractions.double().numpy() * res.scale, samples=3000)
    tolerance = 4 * (expected.fit_error + float(draws.std()) / 3000 ** 0.5)
    assert float(draws.mean()) == pytest.approx(expected.loss + rate * np.log(res.scale), abs=tolerance)


@pytest.mark.slow
def test_the_bench_runs_end_to_end(embedded_lm, capsys):
    bench = _bench()
    bench.main(["--sentences", "1", "--reference-steps", "100", "--reference-samples", "4", "--max-original-steps",
                "50", "--ladder", "25", "--original-start", "gpt2lab", "--skip-faithfulness"])
    out = capsys.readouterr().out
    assert "the default start ends lower on" in out and "explaining one 10-word sentence" in out
    assert "original started where gpt2lab starts" in out and "cost per step" in out
