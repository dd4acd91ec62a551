"""gpt2lab.experiments.incoherence: the scorer and its evaluation on constructed labelled data with known answers."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from gpt2lab.experiments import incoherence as inc
from gpt2lab.experiments.analysis import POS_CATEGORIES

REFERENCE_POS = {"conjunctions": 0.04, "prepositions": 0.12, "adjectives": 0.08, "modals": 0.02, "nouns": 0.26,
                 "pronouns": 0.14, "adverbs": 0.06, "verbs": 0.18, "other": 0.10}
ALL_NOUNS = {c: (1.0 if c == "nouns" else 0.0) for c in POS_CATEGORIES}


def row(kind: str, seed: int, prompt: str, degenerate: bool, jitter: float = 0.0) -> dict:
    """A measured text with the features of a sane text, a loop or word salad."""
    pos, repetition, loop, ppl = dict(REFERENCE_POS), 0.05 + jitter, 0.0, 30.0 * (1 + jitter)
    if kind == "loop":
        repetition, loop, ppl = 0.9, 0.8, 1.5
    elif kind == "salad":
        pos, ppl = ALL_NOUNS, 5000.0
    return {"setting": kind, "seed": seed, "prompt_id": prompt, "text": f"{kind} {seed} {prompt}",
            "degenerate": degenerate, "pos_words": 50, "repeated_3gram_share": repetition, "loop_share": loop,
            "perplexity": ppl,
            **{f"pos_{c}": pos[c] for c in POS_CATEGORIES}}


def test_precision_recall_known_values():
    m = inc.precision_recall([True, True, False, False, True], [True, False, True, False, True])
    assert (m.tp, m.fp, m.fn, m.tn) == (2, 1, 1, 1)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    none_flagged = inc.precision_recall([False, False], [True, False])
    assert math.isnan(none_flagged.precision) and none_flagged.recall == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        inc.precision_recall([True], [True, False])
    with pytest.raises(ValueError, match="labels must hold booleans"):
        inc.precision_recall([True], ["yes"])


def test_threshold_curve_and_choice_known_values():
    scores, labels = [0.1, 0.4, 0.35, 0.8], [False, False, True, True]
    curve = inc.threshold_curve(scores, labels)
    assert list(curve["threshold"]) == pytest.approx([-0.9, 0.225, 0.375, 0.6, 0.8])
    flag_all, t225, _, t06, flag_none = (curve.iloc[i] for i in range(5))
    assert flag_all["precision"] == pytest.approx(0.5) and flag_all["recall"] == 1.0
    assert t225["precision"] == pytest.approx(2 / 3) and t225["f1"] == pytest.approx(0.8)
    assert t06["precision"] == 1.0 and t06["recall"] == 0.5
    assert math.isnan(flag_none["precision"])  # nothing flagged
    assert inc.choose_threshold(scores, labels) == pytest.approx(0.225)
    # ties in F1 go to the higher threshold (flag less)
    assert inc.choose_threshold([0.1, 0.9], [False, True]) == pytest.approx(0.5)


def test_holdout_split_shares_no_seed_or_prompt():
    df = pd.DataFrame([{"seed": s, "prompt_id": p} for s in range(4) for p in "abcd"])
    train, test = inc.holdout_split(df, test_seeds=[3], test_prompts=["c", "d"])
    assert len(train) == 3 * 2 and len(test) == 1 * 2
    assert set(train.seed).isdisjoint(test.seed) and set(train.prompt_id).isdisjoint(test.prompt_id)
    with pytest.raises(ValueError, match="leaves 0 training"):
        inc.holdout_split(df, test_seeds=range(4), test_prompts="abcd")


def test_scorer_flags_loops_and_word_salad_but_not_typical_text():
    reference = pd.DataFrame([row("sane", s, "p", False, jitter=0.01 * s) for s in range(6)])
    scorer = inc.IncoherenceScorer.fit(reference)
    assert scorer.reference_pos == pytest.approx(REFERENCE_POS)
    test = pd.DataFrame([row("sane", 9, "q", False), row("loop", 9, "q", True), row("salad", 9, "q", True)])
    dev = scorer.deviations(test)
    assert dev.loc[0].max() < 1  # typical on every feature
    assert dev.loc[1, "repetition"] > 5 and dev.loc[1, "loop"] > 5  # loop: too repetitive ...
    assert dev.loc[1, "log_perplexity"] > 5  # ... and too likely
    assert dev.loc[2, "pos_js"] > 5 and dev.loc[2, "log_perplexity"] > 5  # salad: odd POS, too unlikely
    assert dev.loc[1, "pos_js"] == pytest.approx(0.0)  # same POS mix as the reference
    scores = scorer.score(test)
    assert scores[0] < 1 < scores[1] and scores[0] < 1 < scores[2]
    assert list(scorer.flag(test, threshold=1.0)) == [False, True, True]
    with pytest.raises(ValueError, match="no threshold"):
        scorer.flag(test)
    with pytest.raises(ValueError, match="lacks columns.*perplexity"):
        scorer.score(test.drop(columns=["perplexity"]))
    # weights: switching the repetition features off leaves the loop unflagged by them
    no_repeat = inc.IncoherenceScorer(scorer.reference_pos, scorer.center, scorer.scale,
                                      weights={"repetition": 0, "loop": 0})
    assert no_repeat.score(test)[1] == pytest.approx(math.sqrt(dev.loc[1, "log_perplexity"] ** 2 / 2))
    with pytest.raises(ValueError, match="unknown features in weights: \\['loops'\\]"):
        inc.IncoherenceScorer(scorer.reference_pos, scorer.center, scorer.scale, weights={"loops": 1})
    with pytest.raises(ValueError, match="not all 0"):
        inc.IncoherenceScorer(scorer.reference_pos, scorer.center, scorer.scale, weights=dict.fromkeys(inc.FEATURES, 0))


def labelled_data() -> pd.DataFrame:
    """Train: seeds 0-2 x prompts a-c, cleanly separable. Held-out: seed 3 x prompt d with 4 degenerate
    texts (one camouflaged as sane -> a miss) and 4 sane ones (one repetitive -> a false alarm)."""
    rows = []
    for s in range(3):
        for p in "abc":
            rows += [row("sane", s, p, False, jitter=0.01 * (s + 1)), row("loop", s, p, True),
                     row("salad", s, p, True)]
    held = [row("sane", 3, "d", False, jitter=j) for j in (0.0, 0.01, 0.02)]
    held.append({**row("loop", 3, "d", False), "setting": "sane"})  # a sane setting's text that loops
    held += [row("loop", 3, "d", True), row("loop", 3, "d", True), row("salad", 3, "d", True)]
    held.append({**row("sane", 3, "d", True), "setting": "loop"})  # a degenerate setting's fine text
    # rows mixing a training seed with the held-out prompt (or vice versa) must be dropped
    rows += held + [row("loop", 0, "d", False), row("sane", 3, "a", True)]
    return pd.DataFrame(rows)


def test_evaluate_filter_reports_known_held_out_precision_and_recall():
    ev = inc.evaluate_filter(labelled_data(), test_seeds=[3], test_prompts=["d"])
    assert len(ev.train) == 27 and len(ev.test) == 8
    assert ev.train_metrics.precision == 1.0 and ev.train_metrics.recall == 1.0
    m = ev.test_metrics
    assert (m.tp, m.fp, m.fn, m.tn) == (3, 1, 1, 3)
    assert m.precision == pytest.approx(0.75) and m.recall == pytest.approx(0.75)
    assert "precision 0.750, recall 0.750" in ev.report()
    per_setting = ev.per_setting()
    assert per_setting.loc["salad", "flagged"] == 1.0


def test_plot_threshold_marks_the_chosen_threshold():
    import matplotlib.pyplot as plt

    ev = inc.evaluate_filter(labelled_data(), test_seeds=[3], test_prompts=["d"])
    ax, _ = inc.plot_threshold(ev)
    assert any(list(line.get_xdata()) == [ev.scorer.threshold] * 2 for line in ax.get_lines())
    assert len(ax.get_lines()) == 7  # 3 metrics x (train, held-out) + the threshold
    plt.close("all")


def test_labelled_sweep_labels_by_setting(tiny_lm):
    def fake(lm, prompts, seed=None, num_return_sequences=1, **params):
        return [[f"text at {params.get('temperature')}"] * num_return_sequences for _ in prompts]

    df = inc.labelled_sweep(tiny_lm, ["x y"], [0], sane={"ok": {"temperature": 0.8}},
                            degenerate={"bad": {"temperature": 2.5}}, generate_fn=fake, cache=False,
                            perplexity=False, progress=False)
    assert dict(zip(df.setting, df.degenerate)) == {"ok": False, "bad": True}
    with pytest.raises(ValueError, match="both sane and degenerate"):
        inc.labelled_sweep(tiny_lm, ["x"], [0], sane={"a": {}}, degenerate={"a": {}}, generate_fn=fake)


def test_select_features_chooses_on_the_training_split_only():
    df = labelled_data()
    ev = inc.evaluate_filter(df, test_seeds=[3], test_prompts=["d"], select_features=True)
    assert len(ev.selection) == 2 ** len(inc.FEATURES) - 1  # every non-empty subset was tried
    best = ev.selection.loc[0]
    assert best.train_f1 == ev.selection.train_f1.max() == pytest.approx(ev.train_metrics.f1)
    # among the subsets tied at the best training F1, the largest wins (a feature goes only if dropping it helps)
    assert best.n_features == ev.selection[ev.selection.train_f1 == best.train_f1].n_features.max()
    assert "+".join(ev.features) == best.features
    assert all(ev.scorer.weights[f] == (1.0 if f in ev.features else 0.0) for f in inc.FEATURES)
    assert f"features {best.features} (chosen on the training split)" in ev.report()
    # relabelling the held-out split changes nothing that was chosen
    held = (df.seed == 3) & (df.prompt_id == "d")
    flipped = inc.evaluate_filter(df.assign(degenerate=df.degenerate ^ held), test_seeds=[3], test_prompts=["d"],
                                  select_features=True)
    assert flipped.features == ev.features and flipped.scorer.threshold == ev.scorer.threshold
    assert inc.evaluate_filter(df, test_seeds=[3], test_prompts=["d"]).selection is None
