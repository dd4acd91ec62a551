"""Flagging incoherent or degenerate generations automatically, and measuring how well that works.

Degenerate text fails in two opposite ways (Holtzman et al. 2019): it *loops* (greedy decoding,
very low temperature: the same phrase again and again, absurdly low perplexity) or it *rambles*
(very high temperature, pure sampling: a word salad with absurdly high perplexity and an
un-English mix of parts of speech). The scorer measures three things per text:

* ``pos_js``: Jensen-Shannon divergence of the text's part-of-speech mix from a reference mix;
* ``repetition``: share of word 3-grams that occur more than once in the text;
* ``loop``: share of the text taken by a final loop (words, punctuation or blank lines repeated
  back to back until the end);
* ``log_perplexity``: log perplexity of the text (as a continuation of its prompt) under the model.

Each is turned into a robust z-score against reference texts known to be fine (median and scaled
MAD), only the harmful direction counts (more divergence, more repetition, more loop; perplexity
too high *or* too low), and the score is the root mean square of the four. A text is flagged when its score
exceeds a threshold.

The evaluation is honest in the usual way: texts are labelled by the setting that produced them
(settings known to be sane vs known to be degenerate), the reference statistics *and* the threshold
are fitted on a training split of seeds and prompts, and precision/recall are reported on seeds and
prompts the fitting never saw. Labels come from settings, not from reading each text, so a
degenerate setting's occasional fine sample counts against recall: the numbers are conservative.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations, pairwise
from typing import TYPE_CHECKING

from gpt2lab.experiments import analysis

__all__ = ["FEATURES", "FEATURE_DIRECTION", "MAD_TO_SD", "MIN_SCALE", "SANE_SETTINGS", "DEGENERATE_SETTINGS",
           "features", "IncoherenceScorer", "Metrics", "precision_recall", "threshold_curve",
           "choose_threshold", "holdout_split", "FilterEvaluation", "evaluate_filter", "labelled_sweep",
           "plot_threshold"]

if TYPE_CHECKING:
    import pandas as pd

    from gpt2lab.loading import LM

FEATURES = ("pos_js", "repetition", "loop", "log_perplexity")
# which direction of each feature is bad: "high", "low" or "both"
FEATURE_DIRECTION = {"pos_js": "high", "repetition": "high", "loop": "high", "log_perplexity": "both"}
MAD_TO_SD = 1.4826  # scaled MAD estimates the standard deviation for normal data
# floors for the scales: fine texts rarely repeat or loop at all, so their MAD is often 0
MIN_SCALE = {"pos_js": 0.02, "repetition": 0.05, "loop": 0.05, "log_perplexity": 0.1}

# Settings whose output is known to be sane vs degenerate (labels for the evaluation).
SANE_SETTINGS: dict[str, dict] = {
    "nucleus p=0.9, T=0.8": {"mode": "sample-top-p", "top_p": 0.9, "temperature": 0.8},
    "top-k k=40, T=0.8": {"mode": "sample-top-k", "top_k": 40, "temperature": 0.8},
    "nucleus p=0.95, T=1.0": {"mode": "sample-top-p", "top_p": 0.95, "temperature": 1.0},
}
DEGENERATE_SETTINGS: dict[str, dict] = {
    # "temperature 2, top_p 0.1, top_k 2" applied together is exactly greedy decoding (see
    # gpt2lab.experiments.sweep.CLASSIC_SETTINGS): repetition loops
    "classic T=2, p=0.1, k=2 (= greedy)": {"mode": "greedy"},
    # a distribution flattened this much gives word salad
    "pure sampling T=2.5": {"mode": "sample", "temperature": 2.5, "top_k": 0, "top_p": 1.0},
    # nearly greedy, but random: loops that differ from seed to seed
    "near-greedy sampling T=0.3": {"mode": "sample", "temperature": 0.3, "top_k": 0, "top_p": 1.0},
}


def features(df) -> pd.DataFrame:
    """The raw features of every row of a measured sweep DataFrame (see :func:`gpt2lab.experiments.sweep.add_metrics`).

    Needs columns ``repeated_3gram_share``, ``loop_share`` and ``perplexity``; ``pos_js`` is computed
    by :class:`IncoherenceScorer` against its own reference, so it is not read from ``df``.
    """
    import pandas as pd

    missing = [c for c in ("repeated_3gram_share", "loop_share", "perplexity") if c not in df.columns]
    if missing:
        raise ValueError(f"the DataFrame lacks columns {missing}; measure it with "
                         "gpt2lab.experiments.sweep.add_metrics(df, lm) (perplexity needs the model)")
    out = pd.DataFrame(index=df.index)
    # a text too short to have a 3-gram cannot repeat one: 0, not unknown
    out["repetition"] = df["repeated_3gram_share"].astype(float).fillna(0.0)
    out["loop"] = df["loop_share"].astype(float)
    out["log_perplexity"] = df["perplexity"].astype(float).map(lambda v: math.log(v) if v > 0 else float("nan"))
    return out


def _pos_columns(df):
    cols = [f"pos_{c}" for c in analysis.POS_CATEGORIES]
    missing = [c for c in cols + ["pos_words"] if c not in df.columns]
    if missing:
        raise ValueError(f"the DataFrame lacks POS columns {missing}; measure it with "
                         "gpt2lab.experiments.sweep.add_metrics")
    return cols


def _median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    if n == 0:
        return float("nan")
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


@dataclass
class IncoherenceScorer:
    """Scores texts by how far their POS mix, repetition and perplexity stray from reference texts.

    Build with :meth:`fit` on measured reference texts (human text or generations known to be
    fine); choose :attr:`threshold` with :func:`choose_threshold` on labelled training data.
    """

    reference_pos: dict[str, float]
    center: dict[str, float]
    scale: dict[str, float]
    threshold: float | None = None
    weights: dict[str, float] = field(default_factory=lambda: {f: 1.0 for f in FEATURES})

    def __post_init__(self):
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features in weights: {sorted(unknown)}; features are {list(FEATURES)}")
        self.weights = {f: float(self.weights.get(f, 1.0)) for f in FEATURES}
        if any(w < 0 or not math.isfinite(w) for w in self.weights.values()) or sum(self.weights.values()) == 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0; got {self.weights}")

    @classmethod
    def fit(cls, reference_df, threshold: float | None = None) -> IncoherenceScorer:
        """Reference statistics from a measured DataFrame of texts known to be fine."""
        if len(reference_df) < 3:
            raise ValueError(f"fit needs at least 3 reference texts, got {len(reference_df)}")
        cols = _pos_columns(reference_df)
        weights = reference_df["pos_words"].astype(float)
        counts = {c.removeprefix("pos_"): float((reference_df[c] * weights).sum()) for c in cols}
        total = sum(counts.values())
        if total == 0:
            raise ValueError("the reference texts contain no words")
        reference_pos = {c: v / total for c, v in counts.items()}
        scorer = cls(reference_pos=reference_pos, center={}, scale={}, threshold=threshold)
        raw = scorer.raw_features(reference_df)
        for f in FEATURES:
            values = [v for v in raw[f] if math.isfinite(v)]
            if not values:
                raise ValueError(f"no finite values of feature {f!r} among the reference texts")
            med = _median(values)
            mad = _median([abs(v - med) for v in values])
            scorer.center[f] = med
            scorer.scale[f] = max(MAD_TO_SD * mad, MIN_SCALE[f])
        return scorer

    def raw_features(self, df):
        """The features of every row (``pos_js`` against this scorer's reference)."""
        out = features(df)
        cols = _pos_columns(df)
        js = []
        for _, row in df[cols + ["pos_words"]].iterrows():
            if row["pos_words"] == 0:
                js.append(1.0)  # no words at all: as far from language as it gets
            else:
                js.append(analysis.pos_divergence({c.removeprefix("pos_"): row[c] for c in cols}, self.reference_pos))
        out.insert(0, "pos_js", js)
        return out

    def deviations(self, df):
        """Per-feature one-sided robust z-scores (0 = as typical as the reference, or better)."""
        raw = self.raw_features(df)
        out = raw.copy()
        for f in FEATURES:
            z = (raw[f] - self.center[f]) / self.scale[f]
            direction = FEATURE_DIRECTION[f]
            if direction == "high":
                z = z.clip(lower=0)
            elif direction == "low":
                z = (-z).clip(lower=0)
            else:
                z = z.abs()
            # an unknown feature (e.g. perplexity not computable) counts as typical, not as alarming
            out[f] = z.fillna(0.0)
        return out

    def score(self, df):
        """One number per row: the weighted root mean square of the feature deviations."""
        dev = self.deviations(df)
        total_w = sum(self.weights[f] for f in FEATURES)
        return (sum(self.weights[f] * dev[f] ** 2 for f in FEATURES) / total_w) ** 0.5

    def flag(self, df, threshold: float | None = None):
        """True for rows scored above the threshold (this scorer's own unless one is given)."""
        threshold = self.threshold if threshold is None else threshold
        if threshold is None:
            raise ValueError("no threshold: pass threshold=... or set one with choose_threshold() on labelled data")
        return self.score(df) > threshold


# ------------------------------------------------------------------ evaluation

@dataclass(frozen=True)
class Metrics:
    """How a filter's flags compare with the labels: precision, recall, F1 and the four counts of the
    confusion matrix (true/false positives and negatives)."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int

    def as_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "tn": self.tn}


def _bools(values, name: str) -> list[bool]:
    out = []
    for v in values:
        if isinstance(v, bool) or v in (0, 1):
            out.append(bool(v))
        else:
            raise ValueError(f"{name} must hold booleans (True = degenerate), got {v!r}")
    return out


def precision_recall(flags: Sequence[bool], labels: Sequence[bool]) -> Metrics:
    """Precision, recall and F1 of ``flags`` (predicted degenerate) against ``labels`` (truly degenerate).

    Precision is NaN when nothing is flagged; recall is NaN when nothing is degenerate.
    """
    flags, labels = _bools(list(flags), "flags"), _bools(list(labels), "labels")
    if len(flags) != len(labels):
        raise ValueError(f"flags and labels differ in length: {len(flags)} vs {len(labels)}")
    tp = sum(f and y for f, y in zip(flags, labels))
    fp = sum(f and not y for f, y in zip(flags, labels))
    fn = sum(not f and y for f, y in zip(flags, labels))
    tn = len(flags) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return Metrics(precision, recall, f1, tp, fp, fn, tn)


def threshold_curve(scores: Sequence[float], labels: Sequence[bool]):
    """Precision, recall and F1 for every useful threshold (flag = score > threshold).

    The candidate thresholds lie halfway between consecutive distinct scores, plus one below the
    lowest (flag everything) and the highest score (flag nothing).
    """
    import pandas as pd

    scores = [float(s) for s in scores]
    labels = _bools(list(labels), "labels")
    if len(scores) != len(labels):
        raise ValueError(f"scores and labels differ in length: {len(scores)} vs {len(labels)}")
    if not scores:
        raise ValueError("no scores given")
    distinct = sorted(set(scores))
    cuts = [distinct[0] - 1.0] + [(a + b) / 2 for a, b in pairwise(distinct)] + [distinct[-1]]
    rows = []
    for t in cuts:
        m = precision_recall([s > t for s in scores], labels)
        rows.append({"threshold": t, **m.as_dict()})
    return pd.DataFrame(rows)


def choose_threshold(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The threshold with the best F1 on these (training) scores; ties go to the highest threshold
    (fewest texts flagged)."""
    curve = threshold_curve(scores, labels)
    f1 = curve["f1"].fillna(-1.0)
    best = f1.max()
    return float(curve.loc[f1 == best, "threshold"].max())


def holdout_split(df, test_seeds: Sequence[int], test_prompts: Sequence):
    """(train, test): rows whose seed AND prompt id are both held out form the test set; rows whose
    seed and prompt id are both outside the held-out ones form the training set; mixed rows are
    dropped, so no test text shares a seed or a prompt with any training text."""
    for col in ("seed", "prompt_id"):
        if col not in df.columns:
            raise ValueError(f"holdout_split needs a {col!r} column; got {list(df.columns)}")
    seed_test = df["seed"].isin(list(test_seeds))
    prompt_test = df["prompt_id"].isin(list(test_prompts))
    train, test = df[~seed_test & ~prompt_test], df[seed_test & prompt_test]
    if train.empty or test.empty:
        raise ValueError(f"the split leaves {len(train)} training and {len(test)} test rows; choose test_seeds "
                         "and test_prompts that leave both non-empty")
    return train, test


@dataclass
class FilterEvaluation:
    """Everything :func:`evaluate_filter` measured (see its docstring)."""

    scorer: IncoherenceScorer
    train: pd.DataFrame
    test: pd.DataFrame
    train_metrics: Metrics
    test_metrics: Metrics
    curve: pd.DataFrame  # threshold curve on the training split
    test_curve: pd.DataFrame
    # with select_features: training-split F1 of every feature subset tried, best first
    selection: pd.DataFrame | None = None

    @property
    def features(self) -> list[str]:
        """The features the scorer uses (weight > 0)."""
        return [f for f in FEATURES if self.scorer.weights[f] > 0]

    def report(self) -> str:
        tm, hm = self.train_metrics, self.test_metrics
        chosen = (f"features {'+'.join(self.features)} (chosen on the training split); "
                  if self.selection is not None else "")
        return (f"{chosen}threshold {self.scorer.threshold:.3f} chosen on {len(self.train)} training texts "
                f"(precision {tm.precision:.3f}, recall {tm.recall:.3f}, F1 {tm.f1:.3f});\n"
                f"held-out: {len(self.test)} texts, {hm.tp + hm.fn} degenerate: precision {hm.precision:.3f}, "
                f"recall {hm.recall:.3f}, F1 {hm.f1:.3f} (tp {hm.tp}, fp {hm.fp}, fn {hm.fn}, tn {hm.tn})")

    def per_setting(self):
        """Share of held-out texts flagged, per setting (what the filter catches, and what it wrongly flags)."""
        t = self.test.assign(flagged=self.scorer.flag(self.test))
        return t.groupby("setting", sort=False).agg(degenerate=("degenerate", "first"), texts=("text", "size"),
                                                    flagged=("flagged", "mean"))


def evaluate_filter(df, test_seeds: Sequence[int], test_prompts: Sequence, label: str = "degenerate",
                    reference=None, select_features: bool = False) -> FilterEvaluation:
    """Fit and evaluate the scorer on a measured, labelled sweep DataFrame.

    ``df[label]`` is True for texts from degenerate settings. The scorer's reference statistics come
    from the training split's non-degenerate texts (or from ``reference``, a measured DataFrame of
    e.g. human text); the threshold maximises F1 on the training split; precision/recall are then
    measured on the held-out split (see :func:`holdout_split`).

    select_features: also choose *which* features to use on the training split: every non-empty
    subset of :data:`FEATURES` gets its own best threshold, and the subset with the best training F1
    wins (on a tie, the one with more features: a feature is dropped only when the training split
    says that leaving it out helps). A feature that only adds noise on a model (the
    part-of-speech mix of a small model's text can be as un-English in its fine samples as in its
    degenerate ones) is then left out, and the held-out split still never influences the choice.
    """
    if label not in df.columns:
        raise ValueError(f"no label column {label!r}; columns: {list(df.columns)}")
    train, test = holdout_split(df, test_seeds, test_prompts)
    y_train = _bools(train[label], label)
    if all(y_train) or not any(y_train):
        raise ValueError("the training split needs both degenerate and sane texts")
    scorer = IncoherenceScorer.fit(train[[not y for y in y_train]] if reference is None else reference)
    selection = None
    if select_features:
        import pandas as pd

        tried = []
        for r in range(1, len(FEATURES) + 1):
            for subset in combinations(FEATURES, r):
                scorer.weights = {f: (1.0 if f in subset else 0.0) for f in FEATURES}
                scores = scorer.score(train)
                m = precision_recall(scores > choose_threshold(scores, y_train), y_train)
                tried.append({"features": "+".join(subset), "n_features": r, "train_f1": m.f1})
        selection = pd.DataFrame(tried).sort_values(["train_f1", "n_features"], ascending=[False, False],
                                                     kind="stable").reset_index(drop=True)
        best = selection.loc[0, "features"].split("+")
        scorer.weights = {f: (1.0 if f in best else 0.0) for f in FEATURES}
    train_scores = scorer.score(train)
    scorer.threshold = choose_threshold(train_scores, y_train)
    test_scores = scorer.score(test)
    y_test = _bools(test[label], label)
    return FilterEvaluation(
        scorer=scorer, train=train.assign(score=train_scores), test=test.assign(score=test_scores),
        train_metrics=precision_recall(train_scores > scorer.threshold, y_train),
        test_metrics=precision_recall(test_scores > scorer.threshold, y_test),
        curve=threshold_curve(train_scores, y_train), test_curve=threshold_curve(test_scores, y_test),
        selection=selection)


def labelled_sweep(lm: LM, prompts, seeds, sane: Mapping[str, Mapping] | None = None,
                   degenerate: Mapping[str, Mapping] | None = None, **sweep_kw):
    """Generate and measure a labelled set: every sane and degenerate setting x seeds x prompts.

    Returns the sweep DataFrame with a boolean ``degenerate`` column. Keyword arguments go to
    :func:`gpt2lab.experiments.sweep.run_sweep` (e.g. ``defaults={"max_length": 60}``, ``generate_fn``, ``cache``).
    """
    from gpt2lab.experiments.sweep import run_sweep

    sane = SANE_SETTINGS if sane is None else dict(sane)
    degenerate = DEGENERATE_SETTINGS if degenerate is None else dict(degenerate)
    overlap = set(sane) & set(degenerate)
    if overlap:
        raise ValueError(f"settings {sorted(overlap)} are labelled both sane and degenerate")
    df = run_sweep(lm, {**sane, **degenerate}, prompts, seeds, **sweep_kw)
    df["degenerate"] = df["setting"].isin(list(degenerate))
    return df


def plot_threshold(evaluation: FilterEvaluation, axes=None):
    """Left: precision/recall/F1 against the threshold on the training split, the chosen one marked
    and the held-out curve dashed. Right: score histograms of sane and degenerate held-out texts."""
    import matplotlib.pyplot as plt
    import numpy as np

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax, hx = axes
    for metric, color in (("precision", "tab:blue"), ("recall", "tab:orange"), ("f1", "tab:green")):
        ax.plot(evaluation.curve["threshold"], evaluation.curve[metric], color=color, label=f"{metric} (train)")
        ax.plot(evaluation.test_curve["threshold"], evaluation.test_curve[metric], color=color, ls="--",
                alpha=0.7, label=f"{metric} (held-out)")
    t = evaluation.scorer.threshold
    ax.axvline(t, color="k", lw=1)
    ax.text(t, 0.02, f" threshold {t:.2f}", fontsize=9)
    ax.set_xlabel("incoherence score")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Choosing the threshold on the training split")
    test = evaluation.test
    top = max(float(np.nanmax(test["score"])), t) * 1.05
    bins = np.linspace(0, top, 30)
    hx.hist(test.loc[~test["degenerate"], "score"], bins=bins, alpha=0.6, label="sane settings")
    hx.hist(test.loc[test["degenerate"], "score"], bins=bins, alpha=0.6, label="degenerate settings")
    hx.axvline(t, color="k", lw=1)
    hx.set_xlabel("incoherence score")
    hx.set_ylabel("held-out texts")
    hx.legend()
    hx.set_title("Held-out scores")
    return axes
