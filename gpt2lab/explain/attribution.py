"""Other ways to ask "which words matter?", and evidence for which answer to believe.

``compare_attributions(lm, text)`` scores every word of ``text`` for the model's next-token
prediction with several methods, on the same words (:mod:`gpt2lab.explain.words`) and the same target:

* ``importance``           Guan et al.'s perturbation method (:func:`gpt2lab.word_importance`):
                           -log sigma; it explains the whole next-token distribution, not one target;
* ``occlusion``            captum ``FeatureAblation`` through ``LLMAttribution``: replace the word's
                           pieces by a blank piece and measure the change of log p(target);
* ``shapley``              captum ``ShapleyValueSampling`` (same blanks, averaged over random orders);
* ``integrated_gradients`` captum ``LayerIntegratedGradients`` on the token embeddings through
                           ``LLMGradientAttribution`` (path from blank embeddings to the real ones);
* ``leave_one_out``        delete the word altogether (the text gets shorter) and measure the change;
* ``attention_last``       the last layer's attention from the last position, averaged over heads;
* ``attention_rollout``    attention rolled out through all layers (Abnar & Zuidema 2020).

Higher score = more important, for every method.

Faithfulness: a method is faithful when the words it calls important really move the prediction.
``deletion_curve`` removes words from most to least important and measures how far the model's
next-token distribution moves (KL divergence from the full-text distribution) and how much the
target's log-probability drops; the area under that curve is compared with random orders.
``faithfulness_table`` does it over a set of sentences and ranks the methods.
"""
from __future__ import annotations

import contextlib
import html
import math
import time
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch

from gpt2lab.explain.importance import frozen
from gpt2lab.explain.words import WordSplit, split_words
from gpt2lab.tokens import bos_id, pad_id, right_pad

__all__ = ["METHODS", "CAPTUM_METHODS", "DELETION_MODES", "METRICS", "Attributions", "rank_agreement",
           "compare_attributions", "order_from_scores", "deletion_areas", "curve_area", "DeletionResult",
           "deletion_curve", "FaithfulnessReport", "faithfulness_table"]

METHODS = ("importance", "occlusion", "shapley", "integrated_gradients", "leave_one_out", "attention_last",
           "attention_rollout")
CAPTUM_METHODS = ("occlusion", "shapley", "integrated_gradients")
DELETION_MODES = ("remove", "mask")
METRICS = ("kl", "logprob")


# ----------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class _Setup:
    """One text made ready for attribution: its words, context ids and target ids."""

    split: WordSplit
    context: tuple[int, ...]  # [bos] + text ids
    target: tuple[int, ...]
    shift: int  # 1 when a BOS piece leads the context
    blank: int  # the piece that stands in for an occluded word


def _blank_id(tokenizer, blank: str) -> int:
    ids = tokenizer(blank, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"blank={blank!r} must be a single piece for this tokenizer, it is {len(ids)} pieces")
    return int(ids[0])


def _prepare(lm, text: str, target, bos: bool, blank: str) -> _Setup:
    split = split_words(lm.tokenizer, text)
    context = ([bos_id(lm.tokenizer)] if bos else []) + list(split.input_ids)
    if len(context) >= lm.context_length:
        raise ValueError(f"text has {len(context)} pieces; the model reads at most {lm.context_length - 1} here")
    if isinstance(target, tuple) and target and all(isinstance(t, (int, np.integer)) for t in target):
        target_ids = tuple(int(t) for t in target)  # token ids, as stored in an Attributions
    elif target is None:
        with torch.inference_mode():
            ids = torch.tensor([context], device=lm.device)
            logits = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[0, -1]
        target_ids = (int(torch.argmax(logits)),)
    elif isinstance(target, str):
        target_ids = tuple(lm.tokenizer(target, add_special_tokens=False)["input_ids"])
        if not target_ids:
            raise ValueError(f"target={target!r} encodes to no pieces; give a non-empty string or None")
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= target < len(lm.tokenizer):
            raise ValueError(f"target={target} is not a token id of this tokenizer (0..{len(lm.tokenizer) - 1})")
        target_ids = (int(target),)
    else:
        raise TypeError(f"target must be None (the model's top next piece), a string, a token id or a tuple of ids, "
                        f"got {type(target).__name__}")
    if len(context) + len(target_ids) - 1 > lm.context_length:
        raise ValueError(f"text and target have {len(context) + len(target_ids) - 1} pieces together; the model reads "
                         f"at most {lm.context_length}")
    return _Setup(split, tuple(context), target_ids, int(bos), _blank_id(lm.tokenizer, blank))


# ----------------------------------------------------------------------------- batched scoring

def _score_contexts(lm, contexts: list[list[int]], target: tuple[int, ...], batch_size: int = 32):
    """For every context: log p(target | context) and the next-piece log-distribution after it."""
    logps, dists = [], []
    with torch.inference_mode():
        for a in range(0, len(contexts), batch_size):
            chunk = contexts[a:a + batch_size]
            rows = [list(c) + list(target) for c in chunk]
            ids, mask, _ = right_pad(rows, pad_id(lm.tokenizer), lm.device)
            logits = lm.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            for b, c in enumerate(chunk):
                pos = torch.arange(len(c) - 1, len(c) - 1 + len(target), device=lm.device)
                tgt = torch.tensor(target, device=lm.device)
                logps.append(float(logp[b, pos, tgt].sum()))
                dists.append(logp[b, len(c) - 1])
    return np.array(logps), torch.stack(dists)


def _context_without(setup: _Setup, removed, mode: str) -> list[int]:
    """The context with the pieces of the ``removed`` words deleted ("remove") or blanked ("mask")."""
    gone = {t for w in removed for t in setup.split.words[w].tokens}
    head = list(setup.context[:setup.shift])
    body = setup.context[setup.shift:]
    if mode == "remove":
        kept = [tok for t, tok in enumerate(body) if t not in gone]
        if not head and not kept:  # nothing left to condition on: keep one blank
            kept = [setup.blank]
        return head + kept
    return head + [setup.blank if t in gone else tok for t, tok in enumerate(body)]


# ----------------------------------------------------------------------------- the methods

def _leave_one_out(lm, setup: _Setup) -> np.ndarray:
    n = setup.split.n_words
    contexts = [list(setup.context)] + [_context_without(setup, [w], "remove") for w in range(n)]
    logp, _ = _score_contexts(lm, contexts, setup.target)
    return logp[0] - logp[1:]


def _attention_scores(lm, setup: _Setup) -> tuple[np.ndarray, np.ndarray]:
    """Per-word attention from the last position: last layer, and rolled out through all layers."""
    with lm.eager_attention(), torch.inference_mode():
        ids = torch.tensor([setup.context], device=lm.device)
        out = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True, use_cache=False)
    attentions = [a[0].float().mean(dim=0) for a in out.attentions]  # per layer: (T, T), head average
    if not attentions or attentions[0].numel() == 0:
        raise RuntimeError("the model returned no attention weights; it needs eager attention support")
    last_layer = attentions[-1][-1]
    size = attentions[0].shape[-1]
    eye = torch.eye(size, device=attentions[0].device)
    rollout = eye
    for a in attentions:  # residual connection: half attention, half identity, rows sum to 1
        mixed = 0.5 * a + 0.5 * eye
        rollout = (mixed / mixed.sum(dim=-1, keepdim=True)) @ rollout
    return _per_word(setup, last_layer), _per_word(setup, rollout[-1])


def _per_word(setup: _Setup, token_scores: torch.Tensor) -> np.ndarray:
    """Sum a score over the pieces of each word (BOS excluded)."""
    values = token_scores.detach().float().cpu().numpy()[setup.shift:]
    return np.array([values[list(w.tokens)].sum() for w in setup.split.words])


def _captum_input(lm, setup: _Setup):
    from captum.attr import TextTokenInput

    # captum re-tokenizes the text with special tokens; hand it gpt2lab's ids instead, so a tokenizer that
    # adds its own beginning-of-text token (Llama, OPT) does not get a second one
    ids = torch.tensor([setup.context])
    given = SimpleNamespace(encode=lambda text, return_tensors=None: ids,
                            convert_ids_to_tokens=lm.tokenizer.convert_ids_to_tokens)
    inp = TextTokenInput(setup.split.text, given, baselines=setup.blank,
                         skip_tokens=[setup.context[0]] if setup.shift else None)
    inp.tokenizer = lm.tokenizer
    mask = torch.tensor([setup.split.token_to_word], device=lm.device)  # pieces of a word move together
    return inp, mask


@contextlib.contextmanager
def _quiet_transformers():
    """captum calls the model without an attention mask (there is no padding); transformers would
    warn about that on every call. Also silences captum's notes about display tokens."""
    from captum.attr._core import llm_attr
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    pretty = llm_attr._convert_ids_to_pretty_tokens

    def safe_pretty(ids, tokenizer):  # display labels only; captum indexes past the end on a lone partial byte
        try:
            return pretty(ids, tokenizer)
        except IndexError:
            return [tokenizer.decode([int(i)]) for i in ids]

    llm_attr._convert_ids_to_pretty_tokens = safe_pretty
    try:
        with warnings.catch_warnings():
            # captum also decodes the target into display tokens, which we do not use; pieces that are
            # not whole characters make it warn about that
            warnings.filterwarnings("ignore", message=r".*(Skipping this token|Pretty tokens length).*")
            yield
    finally:
        hf_logging.set_verbosity(previous)
        llm_attr._convert_ids_to_pretty_tokens = pretty


def _captum_scores(lm, setup: _Setup, method: str, *, shapley_samples: int, ig_steps: int, seed: int):
    from captum.attr import (
        FeatureAblation,
        LayerIntegratedGradients,
        LLMAttribution,
        LLMGradientAttribution,
        ShapleyValueSampling,
    )

    inp, mask = _captum_input(lm, setup)
    target = torch.tensor(setup.target)
    with frozen(lm.model), _quiet_transformers():  # gradients are needed for the embeddings only, never for the weights
        if method == "integrated_gradients":
            lig = LayerIntegratedGradients(lm.model, lm.model.get_input_embeddings())
            result = LLMGradientAttribution(lig, lm.tokenizer).attribute(inp, target=target, n_steps=ig_steps)
            token_scores = result.seq_attr
            return np.array([float(token_scores[list(w.tokens)].sum()) for w in setup.split.words])
        if method == "occlusion":
            algo = LLMAttribution(FeatureAblation(lm.model), lm.tokenizer)
            extra = {}
        else:
            algo = LLMAttribution(ShapleyValueSampling(lm.model), lm.tokenizer)
            extra = {"n_samples": shapley_samples}
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)  # Shapley sampling draws its orders from the global generator
            result = algo.attribute(inp, target=target, feature_mask=mask, forward_in_tokens=False, **extra)
    token_scores = result.seq_attr.detach().float().cpu().numpy()
    # every piece of a word carries the word's value; read it from the word's first piece
    return np.array([token_scores[w.tokens[0]] for w in setup.split.words])


# ----------------------------------------------------------------------------- results

@dataclass
class Attributions:
    """Word scores of several methods for one text and one target (higher = more important)."""

    text: str
    words: list[str]
    target: str
    scores: dict[str, np.ndarray]
    seconds: dict[str, float]
    target_ids: tuple[int, ...] = ()
    spans: list[tuple[int, int]] = field(default_factory=list)
    model_name: str = ""

    def to_dataframe(self):
        """One row per word, one column per method."""
        import pandas as pd

        frame = pd.DataFrame({m: s for m, s in self.scores.items()}, index=pd.Index(self.words, name="word"))
        return frame

    @property
    def table(self):
        return self.to_dataframe()

    def normalised(self):
        """Each method's scores divided by its largest absolute value (so methods share one scale)."""
        frame = self.to_dataframe()
        return frame / frame.abs().max().replace(0, 1)

    def ranks(self):
        """Rank of every word under every method (1 = most important)."""
        return self.to_dataframe().rank(ascending=False, method="average")

    def rank_agreement(self, kind: str = "spearman"):
        """Rank correlation between every pair of methods ("spearman" or "kendall")."""
        return rank_agreement(self.scores, kind)

    def plot(self, ax=None):
        """Heat map: methods x words, each method scaled to [-1, 1]."""
        import matplotlib.pyplot as plt

        frame = self.normalised()
        if ax is None:
            _, ax = plt.subplots(figsize=(max(6, 0.75 * len(self.words) + 2), 0.5 * frame.shape[1] + 1.6))
        image = ax.imshow(frame.T.values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(self.words)), self.words, rotation=45 if len(self.words) > 8 else 0)
        ax.set_yticks(range(frame.shape[1]), frame.columns)
        ax.set_title(f"which words drive {self.target!r}? (each row scaled to its largest |score|)")
        ax.figure.colorbar(image, ax=ax, fraction=0.03)
        ax.figure.tight_layout()
        return ax.figure

    def _repr_html_(self) -> str:
        caption = f"<p>scores for the next piece <b>{html.escape(repr(self.target))}</b> (higher = more important)</p>"
        return caption + self.to_dataframe().to_html(float_format=lambda v: f"{v:.3g}")

    def __repr__(self) -> str:
        return f"Attributions({self.text!r}, target={self.target!r}, methods={list(self.scores)})"


def rank_agreement(scores: dict[str, np.ndarray], kind: str = "spearman"):
    """A methods x methods table of rank correlations (Spearman's rho or Kendall's tau)."""
    import pandas as pd
    from scipy import stats

    if kind not in ("spearman", "kendall"):
        raise ValueError(f"kind={kind!r} is not allowed; use 'spearman' or 'kendall'")
    names = list(scores)
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = np.asarray(scores[a]), np.asarray(scores[b])
            if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
                value = float("nan")
            elif kind == "spearman":
                value = float(stats.spearmanr(x, y).statistic)
            else:
                value = float(stats.kendalltau(x, y).statistic)
            out.loc[a, b] = out.loc[b, a] = value
    return out


def _check_methods(methods) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods={list(methods)!r} is not allowed; choose from {list(METHODS)}")
    return methods


def compare_attributions(lm, text, target=None, methods=METHODS, *, bos: bool = True, blank: str = " ",
                         shapley_samples: int = 10, ig_steps: int = 20, importance_steps: int = 200,
                         importance_samples: int = 4, seed: int = 0, progress: bool = True):
    """Score every word of ``text`` with several attribution methods, for one target.

    text: a string (returns one :class:`Attributions`) or a list of strings (one per text).
    target: what to explain: None = the model's most likely next piece, a string (e.g. " love"),
        a token id or a tuple of token ids. ``importance`` always explains the whole next-piece distribution.
    methods: any of ``METHODS``. bos: start the context with <|endoftext|> (never scored).
    blank: the piece that replaces a word for occlusion, Shapley sampling and the IG baseline.
    shapley_samples, ig_steps: captum's n_samples and n_steps. importance_*: word_importance's
        steps and samples. seed: makes Shapley sampling and the importance noise reproducible.
    """
    from tqdm.auto import tqdm

    methods = _check_methods(methods)
    for name, value in (("shapley_samples", shapley_samples), ("ig_steps", ig_steps),
                        ("importance_steps", importance_steps), ("importance_samples", importance_samples)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is not allowed; use an integer >= 1")
    if isinstance(text, (list, tuple)):
        return [compare_attributions(lm, t, target, methods, bos=bos, blank=blank, shapley_samples=shapley_samples,
                                     ig_steps=ig_steps, importance_steps=importance_steps,
                                     importance_samples=importance_samples, seed=seed, progress=progress)
                for t in text]
    if not isinstance(text, str):
        raise TypeError(f"text must be a string or a list of strings, got {type(text).__name__}")
    setup = _prepare(lm, text, target, bos, blank)
    scores, seconds = {}, {}
    attention = None
    for method in tqdm(methods, desc="attribution methods", disable=not progress, leave=False):
        t0 = time.perf_counter()
        if method == "importance":
            from gpt2lab.explain.importance import word_importance

            res = word_importance(lm, text, steps=importance_steps, samples=importance_samples, bos=bos, seed=seed,
                                  progress=False)
            scores[method] = -np.log(res.sigma)
        elif method in CAPTUM_METHODS:
            scores[method] = _captum_scores(lm, setup, method, shapley_samples=shapley_samples, ig_steps=ig_steps,
                                            seed=seed)
        elif method == "leave_one_out":
            scores[method] = _leave_one_out(lm, setup)
        else:
            if attention is None:
                attention = _attention_scores(lm, setup)
            scores[method] = attention[0] if method == "attention_last" else attention[1]
        seconds[method] = time.perf_counter() - t0
    return Attributions(text=text, words=setup.split.word_texts(), target=lm.tokenizer.decode(list(setup.target)),
                        target_ids=setup.target, scores={m: np.asarray(v, dtype=np.float64) for m, v in scores.items()},
                        seconds=seconds, spans=[(w.start, w.end) for w in setup.split.words], model_name=str(lm.name))


# ----------------------------------------------------------------------------- faithfulness

def order_from_scores(scores) -> list[int]:
    """Word indices from the highest score to the lowest (ties keep reading order)."""
    return [int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")]


def deletion_areas(evaluate, n_words: int, orders: list[list[int]]) -> np.ndarray:
    """Deletion curves for several orders with one evaluator.

    ``evaluate(list_of_removed_sets) -> array`` gives, for each set of removed word indices, how far
    the model's output moved (0 when nothing is removed). Returns an array (orders, n_words + 1):
    row o, column k = the movement after removing the first k words of ``orders[o]``. Identical
    sets are evaluated once.
    """
    wanted = []
    for order in orders:
        if sorted(order) != list(range(n_words)):
            raise ValueError(f"an order must list every word index 0..{n_words - 1} once, got {order}")
        for k in range(n_words + 1):
            wanted.append(frozenset(order[:k]))
    unique = list(dict.fromkeys(wanted))
    values = dict(zip(unique, np.asarray(evaluate(unique), dtype=np.float64)))
    return np.array([[values[frozenset(order[:k])] for k in range(n_words + 1)] for order in orders])


def curve_area(curve: np.ndarray) -> float:
    """Area under a deletion curve, as the mean movement over k = 1..n removed words."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(curve[..., 1:].mean(axis=-1)) if curve.ndim == 1 else curve[..., 1:].mean(axis=-1)


@dataclass
class DeletionResult:
    """Deletion curves of several methods (and of random orders) for one text."""

    text: str
    words: list[str]
    target: str
    metric: str
    mode: str
    curves: dict[str, np.ndarray]  # method -> (n_words + 1,) movement after k words removed
    random_curves: np.ndarray  # (n_random, n_words + 1)

    @property
    def areas(self) -> dict[str, float]:
        return {m: curve_area(c) for m, c in self.curves.items()}

    @property
    def random_area(self) -> float:
        return float(np.mean(curve_area(self.random_curves))) if len(self.random_curves) else float("nan")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(9, 4))
        k = np.arange(len(self.words) + 1)
        if len(self.random_curves):
            mean = self.random_curves.mean(axis=0)
            ax.fill_between(k, self.random_curves.min(axis=0), self.random_curves.max(axis=0), color="grey",
                            alpha=0.2, label="random orders (range)")
            ax.plot(k, mean, color="grey", ls="--", label=f"random (area {self.random_area:.3g})")
        for method, curve in self.curves.items():
            ax.plot(k, curve, marker="o", ms=3, label=f"{method} (area {curve_area(curve):.3g})")
        label = "KL(full || after removal)" if self.metric == "kl" else "drop of log p(target)"
        ax.set_xlabel(f"words {'removed' if self.mode == 'remove' else 'blanked'}, most important first")
        ax.set_ylabel(label)
        ax.set_title(f"deletion curves: {self.text[:50]!r}")
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
        ax.figure.tight_layout()
        return ax.figure


def _movement_evaluator(lm, setup: _Setup, mode: str, metric: str):
    full_logp, full_dist = _score_contexts(lm, [list(setup.context)], setup.target)

    def evaluate(removed_sets):
        contexts = [_context_without(setup, sorted(s), mode) for s in removed_sets]
        logp, dist = _score_contexts(lm, contexts, setup.target)
        if metric == "logprob":
            return full_logp[0] - logp
        p_full = full_dist[0].exp()
        kl = (p_full * (full_dist[0] - dist)).sum(dim=-1)
        return kl.clamp_min(0).cpu().numpy()

    return evaluate


def deletion_curve(lm, attributions: Attributions, *, metric: str = "kl", mode: str = "remove",
                   n_random: int = 20, bos: bool = True, blank: str = " ", seed: int = 0) -> DeletionResult:
    """Remove words from most to least important (per method) and measure how far the prediction moves.

    metric: "kl" (KL divergence of the next-piece distribution from the full text's) or "logprob"
        (drop of log p(target)). mode: "remove" deletes the words, "mask" replaces them with ``blank``.
    A faithful method moves the prediction sooner than random orders do: larger area.
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not allowed; use one of {METRICS}")
    if mode not in DELETION_MODES:
        raise ValueError(f"mode={mode!r} is not allowed; use one of {DELETION_MODES}")
    if not isinstance(n_random, int) or n_random < 0:
        raise ValueError(f"n_random={n_random!r} is not allowed; use an integer >= 0")
    target = attributions.target_ids or attributions.target
    setup = _prepare(lm, attributions.text, target, bos, blank)
    n = setup.split.n_words
    rng = np.random.default_rng(seed)
    orders = [order_from_scores(s) for s in attributions.scores.values()]
    random_orders = [list(rng.permutation(n)) for _ in range(n_random)]
    table = deletion_areas(_movement_evaluator(lm, setup, mode, metric), n, orders + random_orders)
    curves = dict(zip(attributions.scores, table[:len(orders)]))
    return DeletionResult(text=attributions.text, words=attributions.words, target=attributions.target,
                          metric=metric, mode=mode, curves=curves, random_curves=table[len(orders):])


@dataclass
class FaithfulnessReport:
    """Deletion-curve areas of every method over a set of sentences."""

    table: object  # pandas DataFrame, one row per method, best first
    per_text: object  # pandas DataFrame, one row per (text, method)
    agreement: object  # mean Spearman correlation between methods over the texts
    metric: str
    mode: str

    @property
    def best_method(self) -> str:
        return str(self.table.index[0])

    def _repr_html_(self) -> str:
        return (f"<p>most faithful here: <b>{html.escape(self.best_method)}</b> (deletion metric {self.metric}, "
                f"mode {self.mode})</p>" + self.table.to_html(float_format=lambda v: f"{v:.3g}"))

    def __str__(self) -> str:
        return (f"deletion metric={self.metric}, mode={self.mode}; most faithful: {self.best_method}\n"
                + self.table.to_string(float_format=lambda v: f"{v:.3f}"))


def faithfulness_table(lm, texts, methods=METHODS, *, metric: str = "kl", mode: str = "remove",
                       n_random: int = 20, bos: bool = True, blank: str = " ", seed: int = 0,
                       progress: bool = True, **method_kwargs) -> FaithfulnessReport:
    """Which method is most faithful on these sentences?

    For every text: attributions of every method (``compare_attributions``), their deletion curves
    and random orders. Columns: mean area (higher = the method finds words that move the
    prediction), mean area of random orders, ``gain`` = area / random area, ``wins`` (texts on
    which the method had the largest area) and ``mean_rank`` (1 = best). Rows sorted by mean rank.
    ``method_kwargs`` go to :func:`compare_attributions` (e.g. ``shapley_samples``).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise ValueError("texts is empty; give at least one sentence")
    methods = _check_methods(methods)
    rows, agreements = [], []
    for i, text in enumerate(tqdm(texts, desc="faithfulness", disable=not progress)):
        attr = compare_attributions(lm, text, None, methods, bos=bos, blank=blank, seed=seed, progress=False,
                                    **method_kwargs)
        deletion = deletion_curve(lm, attr, metric=metric, mode=mode, n_random=n_random, bos=bos, blank=blank,
                                  seed=seed + i)
        areas = deletion.areas
        ranking = pd.Series(areas).rank(ascending=False, method="min")
        for m in methods:
            rows.append({"text": text, "method": m, "area": areas[m], "random_area": deletion.random_area,
                         "rank": float(ranking[m]), "seconds": attr.seconds[m]})
        agreements.append(attr.rank_agreement("spearman"))
    per_text = pd.DataFrame(rows)
    per_text["win"] = per_text["rank"] == 1
    table = per_text.groupby("method", sort=False).agg(
        area=("area", "mean"), random_area=("random_area", "mean"), mean_rank=("rank", "mean"),
        wins=("win", "sum"), seconds=("seconds", "mean"))
    table["gain"] = table["area"] / table["random_area"].where(table["random_area"] > 0, math.nan)
    table = table[["area", "random_area", "gain", "wins", "mean_rank", "seconds"]]
    table = table.sort_values(["mean_rank", "area"], ascending=[True, False])
    agreement = sum(a.fillna(0) for a in agreements) / len(agreements)
    return FaithfulnessReport(table=table, per_text=per_text, agreement=agreement, metric=metric, mode=mode)
