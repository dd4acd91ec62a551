"""Attribution baselines through captum, attention scores, and the faithfulness measures."""
from __future__ import annotations

import html

import numpy as np
import pytest
import torch
from conftest import make_value_blind_lm

SENTENCE = "I disapprove of what you say, but"
FAST = ("occlusion", "shapley", "integrated_gradients", "leave_one_out", "attention_last", "attention_rollout")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GPT2LAB_CACHE", str(tmp_path_factory.getbasetemp() / "gpt2lab-cache"))


def _logp(lm, ids, target_id):
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids], device=lm.device)).logits[0, -1]
    return float(torch.log_softmax(logits.float(), -1)[target_id])


def test_captum_baselines_run_on_the_gpt2_shaped_model(gpt2_shaped_lm):
    import gpt2lab

    res = gpt2lab.compare_attributions(gpt2_shaped_lm, SENTENCE, methods=FAST, shapley_samples=1, ig_steps=4,
                                       progress=False)
    assert res.words == ["I", "disapprove", "of", "what", "you", "say", ",", "but"]
    frame = res.to_dataframe()
    assert list(frame.columns) == list(FAST) and frame.shape == (8, len(FAST))
    assert np.isfinite(frame.values).all()
    # occlusion is captum's FeatureAblation: log p(target) with the word vs with a blank in its place
    lm, tok = gpt2_shaped_lm, gpt2_shaped_lm.tokenizer
    bos, blank = tok.eos_token_id, tok(" ")["input_ids"][0]
    ids = [bos] + tok(SENTENCE)["input_ids"]
    target = tok(res.target)["input_ids"][0]
    word = 1  # "disapprove" is one piece, at position 2 after BOS
    blanked = list(ids)
    blanked[2] = blank
    expected = _logp(lm, ids, target) - _logp(lm, blanked, target)
    assert res.scores["occlusion"][word] == pytest.approx(expected, abs=1e-4)
    # attention: head-averaged rows sum to one, so words + BOS share exactly 1
    assert 0 < res.scores["attention_last"].sum() <= 1 + 1e-5
    assert res.rank_agreement().shape == (len(FAST), len(FAST))


def test_shapley_and_integrated_gradients_add_up(tiny_lm):
    """Known answers: Shapley values (any sampled orders) and integrated gradients (many steps) both
    sum to log p(target | text) - log p(target | every word blanked)."""
    import gpt2lab

    text = "To be or not to be"
    res = gpt2lab.compare_attributions(tiny_lm, text, methods=("shapley", "integrated_gradients"),
                                       shapley_samples=3, ig_steps=200, progress=False)
    tok = tiny_lm.tokenizer
    ids = [tok.eos_token_id] + tok(text)["input_ids"]
    blanks = [tok.eos_token_id] + [tok(" ")["input_ids"][0]] * (len(ids) - 1)
    target = tok(res.target)["input_ids"][0]
    total = _logp(tiny_lm, ids, target) - _logp(tiny_lm, blanks, target)
    assert res.scores["shapley"].sum() == pytest.approx(total, abs=1e-4)
    assert res.scores["integrated_gradients"].sum() == pytest.approx(total, rel=0.02, abs=2e-3)


def test_leave_one_out_deletes_the_word(tiny_lm):
    import gpt2lab

    res = gpt2lab.compare_attributions(tiny_lm, SENTENCE, target=" and", methods=("leave_one_out",),
                                       progress=False)
    tok = tiny_lm.tokenizer
    ids = [tok.eos_token_id] + tok(SENTENCE)["input_ids"]
    without_comma = [t for i, t in enumerate(ids) if i != 7]
    target = tok(" and")["input_ids"][0]
    assert res.target == " and"
    assert res.scores["leave_one_out"][6] == pytest.approx(_logp(tiny_lm, ids, target)
                                                          - _logp(tiny_lm, without_comma, target), abs=1e-4)


def test_importance_column_matches_word_importance(tiny_lm):
    import gpt2lab

    res = gpt2lab.compare_attributions(tiny_lm, SENTENCE, methods=("importance",), importance_steps=5,
                                       importance_samples=2, progress=False)
    alone = gpt2lab.word_importance(tiny_lm, SENTENCE, steps=5, samples=2, progress=False)
    np.testing.assert_allclose(res.scores["importance"], -np.log(alone.sigma), rtol=1e-6)
    # the stopping rule is handed on too: a loose one stops the search early, as in word_importance
    loose = dict(stop_tol=0.5, patience=5)
    res = gpt2lab.compare_attributions(tiny_lm, SENTENCE, methods=("importance",), importance_steps=60,
                                       importance_samples=2, importance_stop_tol=0.5, importance_patience=5,
                                       progress=False)
    alone = gpt2lab.word_importance(tiny_lm, SENTENCE, steps=60, samples=2, progress=False, **loose)
    assert alone.steps_run < 60
    np.testing.assert_allclose(res.scores["importance"], -np.log(alone.sigma), rtol=1e-6)


def test_deletion_areas_on_an_additive_model():
    """A model whose output is the sum of its words' weights: the deletion curve of an order is the
    running sum of the removed weights, and random orders average k/n of the total."""
    from gpt2lab.explain.attribution import curve_area, deletion_areas, order_from_scores

    weights = np.array([0.5, 3.0, 0.0, 1.5])

    def evaluate(removed_sets):
        return [sum(weights[i] for i in s) for s in removed_sets]

    best = order_from_scores(weights)
    assert best == [1, 3, 0, 2]
    worst = best[::-1]
    curves = deletion_areas(evaluate, 4, [best, worst])
    np.testing.assert_allclose(curves[0], [0, 3.0, 4.5, 5.0, 5.0])
    np.testing.assert_allclose(curves[1], [0, 0.0, 0.5, 2.0, 5.0])
    assert curve_area(curves[0]) == pytest.approx((3.0 + 4.5 + 5.0 + 5.0) / 4)
    rng = np.random.default_rng(0)
    random_curves = deletion_areas(evaluate, 4, [list(rng.permutation(4)) for _ in range(4000)])
    np.testing.assert_allclose(random_curves.mean(axis=0), 5.0 * np.arange(5) / 4, atol=0.06)
    with pytest.raises(ValueError, match="every word index"):
        deletion_areas(evaluate, 4, [[0, 1, 1, 2]])


def test_faithfulness_finds_the_only_word_that_matters(gpt2_tokenizer):
    """Attention reads nothing (zero value weights), so only the last word moves the prediction.
    Blanking words (positions kept): the deletion curve is 0 until the last word goes, then flat."""
    from gpt2lab.explain import attribution

    lm = make_value_blind_lm(gpt2_tokenizer)
    texts = ["The cat sat on the mat", "We few, we happy few, we band of"]
    report = attribution.faithfulness_table(lm, texts, methods=("occlusion", "attention_last", "importance"),
                                            metric="kl", mode="mask", n_random=8, importance_steps=60,
                                            importance_samples=4, progress=False)
    table = report.table
    assert table.loc["occlusion", "mean_rank"] == 1 and table.loc["occlusion", "wins"] == len(texts)
    assert table.loc["occlusion", "area"] >= table["area"].max() - 1e-9
    assert table.loc["occlusion", "area"] > table.loc["occlusion", "random_area"]
    assert report.best_method in ("occlusion", "importance")
    # the exact curve for one text
    comparison = attribution.compare_attributions(lm, texts[0], methods=("occlusion",), progress=False)
    curve = attribution.deletion_curve(lm, comparison, metric="kl", mode="mask", n_random=0)
    flat = curve.curves["occlusion"]
    assert flat[0] == 0 and flat[1] > 0
    np.testing.assert_allclose(flat[1:], flat[1], rtol=1e-4)  # nothing else ever matters
    assert report.agreement.shape == (3, 3)


def test_bad_arguments_are_refused_clearly(tiny_lm):
    import gpt2lab
    from gpt2lab.explain import attribution

    with pytest.raises(ValueError, match="methods="):
        gpt2lab.compare_attributions(tiny_lm, SENTENCE, methods=("lime",), progress=False)
    with pytest.raises(ValueError, match="shapley_samples=0"):
        gpt2lab.compare_attributions(tiny_lm, SENTENCE, shapley_samples=0, progress=False)
    with pytest.raises(TypeError, match="target"):
        gpt2lab.compare_attributions(tiny_lm, SENTENCE, target=1.5, methods=("leave_one_out",), progress=False)
    with pytest.raises(ValueError, match="blank"):
        gpt2lab.compare_attributions(tiny_lm, SENTENCE, blank="two words", methods=("occlusion",), progress=False)
    res = gpt2lab.compare_attributions(tiny_lm, SENTENCE, methods=("leave_one_out",), progress=False)
    with pytest.raises(ValueError, match="metric="):
        attribution.deletion_curve(tiny_lm, res, metric="auc")
    with pytest.raises(ValueError, match="mode="):
        attribution.deletion_curve(tiny_lm, res, mode="shuffle")


def test_a_registered_method_is_compared_like_the_built_in_ones(tiny_lm):
    """Adding a method is one decorated function; compare_attributions then runs it by name."""
    import gpt2lab
    from gpt2lab.explain import attribution

    assert list(attribution.registered_methods())[:len(attribution.METHODS)] == list(attribution.METHODS)
    assert attribution.CAPTUM_METHODS == ("occlusion", "shapley", "integrated_gradients")
    assert all(m.source and m.description for m in attribution.registered_methods().values())

    @attribution.register_method("word_length_test", description="characters per word", source="this test")
    def _length(lm, inp, options):
        return np.array([len(w.text) for w in inp.split.words], dtype=float)

    try:
        res = gpt2lab.compare_attributions(tiny_lm, SENTENCE, methods=("word_length_test", "leave_one_out"),
                                           progress=False)
        assert res.scores["word_length_test"].tolist() == [1, 10, 2, 4, 3, 3, 1, 3]
        assert list(res.scores) == ["word_length_test", "leave_one_out"]
        with pytest.raises(ValueError, match="already registered"):
            attribution.register_method("word_length_test", description="again", source="this test")
    finally:
        del attribution._REGISTRY["word_length_test"]
    with pytest.raises(ValueError, match=r"choose from the registered methods \['importance', 'occlusion'"):
        gpt2lab.compare_attributions(tiny_lm, SENTENCE, methods=("word_length_test",), progress=False)


def test_views_draw_what_the_results_hold(tiny_lm):
    """The result objects delegate their drawing to gpt2lab.explain.views; the pictures hold the numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import gpt2lab
    from gpt2lab.explain import attribution, views

    res = gpt2lab.compare_attributions(tiny_lm, SENTENCE, methods=("leave_one_out", "attention_last"),
                                       progress=False)
    fig = res.plot()
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (2, 8)
    np.testing.assert_allclose(image[0], res.scores["leave_one_out"] / np.abs(res.scores["leave_one_out"]).max())
    plt.close(fig)
    page = res._repr_html_()
    assert page == views.attributions_html(res) and "disapprove" in page and html.escape(repr(res.target)) in page
    deletion = attribution.deletion_curve(tiny_lm, res, n_random=3)
    fig = deletion.plot()
    drawn = {line.get_label(): line.get_ydata() for line in fig.axes[0].get_lines()}
    label = f"leave_one_out (area {deletion.areas['leave_one_out']:.3g})"
    np.testing.assert_allclose(drawn[label], deletion.curves["leave_one_out"])
    np.testing.assert_allclose(drawn[f"random (area {deletion.random_area:.3g})"], deletion.random_curves.mean(0))
    plt.close(fig)
