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

Each method is a function ``f(lm, inp, options) -> scores (n_words,)`` registered under its name with
:func:`register_method` (with a description and its source); ``registered_methods()`` lists them. A
new method is that one decorated function: ``compare_attributions`` and ``faithfulness_table`` accept
its name from then on.

Faithfulness: a method is faithful when the words it calls important really move the prediction.
``deletion_curve`` removes words from most to least important and measures how far the model's
next-token distribution moves (KL divergence from the full-text distribution) and how much the
target's log-probability drops; the area under that curve is compared with random orders.
``faithfulness_table`` does it over a set of sentences and ranks the methods.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from gpt2lab.attention.capture import attention_weights
from gpt2lab.explain import views
from gpt2lab.explain.outputs import frozen
from gpt2lab.explain.words import WordSplit, split_words
from gpt2lab.tokens import bos_id, pad_id, right_pad

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["METHODS", "CAPTUM_METHODS", "DeletionMode", "Metric", "Correlation", "DELETION_MODES", "METRICS",
           "AttributionInput", "AttributionOptions", "AttributionMethod", "register_method", "registered_methods",
           "Attributions", "rank_agreement", "compare_attributions", "order_from_scores", "deletion_areas",
           "curve_area", "DeletionResult", "deletion_curve", "FaithfulnessReport", "faithfulness_table"]

DeletionMode = Literal["remove", "mask"]
Metric = Literal["kl", "logprob"]
Correlation = Literal["spearman", "kendall"]
DELETION_MODES: tuple[DeletionMode, ...] = ("remove", "mask")
METRICS: tuple[Metric, ...] = ("kl", "logprob")


# ----------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class AttributionInput:
    """One text made ready for attribution: what every registered method receives.

    split: the text's words (:func:`gpt2lab.explain.words.split_words`); context: token ids, BOS first
    when ``shift`` is 1; target: the token ids explained; blank: the piece that stands in for an
    occluded word; cache: scratch space for work several methods share (e.g. one attention capture).
    """

    split: WordSplit
    context: tuple[int, ...]
    target: tuple[int, ...]
    shift: int
    blank: int
    cache: dict = field(default_factory=dict, compare=False, repr=False)


def _blank_id(tokenizer, blank: str) -> int:
    ids = tokenizer(blank, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"blank={blank!r} must be a single piece for this tokenizer, it is {len(ids)} pieces")
    return int(ids[0])


def _prepare(lm: LM, text: str, target, bos: bool, blank: str) -> AttributionInput:
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
    return AttributionInput(split, tuple(context), target_ids, int(bos), _blank_id(lm.tokenizer, blank))


# ----------------------------------------------------------------------------- batched scoring

def _score_contexts(lm: LM, contexts: list[list[int]], target: tuple[int, ...], batch_size: int = 32):
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


def _context_without(inp: AttributionInput, removed, mode: DeletionMode) -> list[int]:
    """The context with the pieces of the ``removed`` words deleted ("remove") or blanked ("mask")."""
    gone = {t for w in removed for t in inp.split.words[w].tokens}
    head = list(inp.context[:inp.shift])
    body = inp.context[inp.shift:]
    if mode == "remove":
        kept = [tok for t, tok in enumerate(body) if t not in gone]
        if not head and not kept:  # nothing left to condition on: keep one blank
            kept = [inp.blank]
        return head + kept
    return head + [inp.blank if t in gone else tok for t, tok in enumerate(body)]


# ----------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class AttributionOptions:
    """The knobs of :func:`compare_attributions`, handed to every method (each reads what it needs)."""

    bos: bool = True
    blank: str = " "
    shapley_samples: int = 10
    ig_steps: int = 20
    importance_steps: int = 200
    importance_samples: int = 4
    seed: int = 0
    importance_stop_tol: float | None = 0.05
    importance_patience: int = 30


AttributionFunction = Callable[["LM", AttributionInput, AttributionOptions], np.ndarray]


@dataclass(frozen=True)
class AttributionMethod:
    """One registered attribution method: ``function(lm, inp, options)`` returns one score per word
    of ``inp.split`` (shape (n_words,), higher = more important)."""

    name: str
    function: AttributionFunction
    description: str
    source: str  # the paper or library the method comes from
    library: str = "gpt2lab"  # who computes it: "gpt2lab" or "captum"


_REGISTRY: dict[str, AttributionMethod] = {}


def register_method(name: str, *, description: str, source: str, library: str = "gpt2lab"):
    """Decorator: register ``function(lm, inp, options) -> scores (n_words,)`` under ``name``.

    This is the one place a new method is added; :func:`compare_attributions` and
    :func:`faithfulness_table` then accept ``name``. Raises ValueError when ``name`` is taken.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name={name!r} is not allowed; use a Python identifier such as 'my_method'")
    if name in _REGISTRY:
        raise ValueError(f"an attribution method named {name!r} is already registered; choose another name")

    def add(function: AttributionFunction) -> AttributionFunction:
        _REGISTRY[name] = AttributionMethod(name, function, description, source, library)
        return function

    return add


def registered_methods() -> dict[str, AttributionMethod]:
    """Every registered method by name, in registration order (the built-in ones first)."""
    return dict(_REGISTRY)


@register_method("importance", library="gpt2lab", source="Guan et al. 2019 (ICML), gpt2lab.explain.importance",
                 description="-log sigma of the perturbation search; explains the whole next-piece distribution")
def _importance(lm: LM, inp: AttributionInput, options: AttributionOptions) -> np.ndarray:
    from gpt2lab.explain.importance import word_importance

    res = word_importance(lm, inp.split.text, steps=options.importance_steps, samples=options.importance_samples,
                          bos=options.bos, seed=options.seed, stop_tol=options.importance_stop_tol,
                          patience=options.importance_patience, progress=False)
    return -np.log(res.sigma)


def _captum_input(lm: LM, inp: AttributionInput):
    from captum.attr import TextTokenInput

    # captum re-tokenizes the text with special tokens; hand it gpt2lab's ids instead, so a tokenizer that
    # adds its own beginning-of-text token (Llama, OPT) does not get a second one
    ids = torch.tensor([inp.context])
    given = SimpleNamespace(encode=lambda text, return_tensors=None: ids,
                            convert_ids_to_tokens=lm.tokenizer.convert_ids_to_tokens)
    text_input = TextTokenInput(inp.split.text, given, baselines=inp.blank,
                                skip_tokens=[inp.context[0]] if inp.shift else None)
    text_input.tokenizer = lm.tokenizer
    mask = torch.tensor([inp.split.token_to_word], device=lm.device)  # pieces of a word move together
    return text_input, mask


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


def _captum_perturbation(lm: LM, inp: AttributionInput, algorithm, seed: int, **extra) -> np.ndarray:
    """A captum perturbation method (words blanked together) through ``LLMAttribution``."""
    from captum.attr import LLMAttribution

    text_input, mask = _captum_input(lm, inp)
    with frozen(lm.model), _quiet_transformers():  # no gradients needed at all
        algo = LLMAttribution(algorithm(lm.model), lm.tokenizer)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)  # Shapley sampling draws its orders from the global generator
            result = algo.attribute(text_input, target=torch.tensor(inp.target), feature_mask=mask,
                                    forward_in_tokens=False, **extra)
    token_scores = result.seq_attr.detach().float().cpu().numpy()
    # every piece of a word carries the word's value; read it from the word's first piece
    return np.array([token_scores[w.tokens[0]] for w in inp.split.words])


@register_method("occlusion", library="captum", source="captum FeatureAblation through LLMAttribution",
                 description="change of log p(target) when the word's pieces are replaced by the blank piece")
def _occlusion(lm: LM, inp: AttributionInput, options: AttributionOptions) -> np.ndarray:
    from captum.attr import FeatureAblation

    return _captum_perturbation(lm, inp, FeatureAblation, options.seed)


@register_method("shapley", library="captum", source="captum ShapleyValueSampling through LLMAttribution "
                 "(Castro et al. 2009)", description="the word's blanking effect averaged over random orders")
def _shapley(lm: LM, inp: AttributionInput, options: AttributionOptions) -> np.ndarray:
    from captum.attr import ShapleyValueSampling

    return _captum_perturbation(lm, inp, ShapleyValueSampling, options.seed, n_samples=options.shapley_samples)


@register_method("integrated_gradients", library="captum",
                 source="captum LayerIntegratedGradients through LLMGradientAttribution (Sundararajan et al. 2017)",
                 description="gradients along the path from blank embeddings to the real ones, summed per word")
def _integrated_gradients(lm: LM, inp: AttributionInput, options: AttributionOptions) -> np.ndarray:
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution

    text_input, _ = _captum_input(lm, inp)
    with frozen(lm.model), _quiet_transformers():  # gradients for the embeddings only, never for the weights
        lig = LayerIntegratedGradients(lm.model, lm.model.get_input_embeddings())
        result = LLMGradientAttribution(lig, lm.tokenizer).attribute(text_input, target=torch.tensor(inp.target),
                                                                     n_steps=options.ig_steps)
    token_scores = result.seq_attr
    return np.array([float(token_scores[list(w.tokens)].sum()) for w in inp.split.words])


@register_method("leave_one_out", library="gpt2lab", source="deletion (Li et al. 2016, 'Understanding Neural "
                 "Networks through Representation Erasure')", description="drop of log p(target) when the word "
                 "is deleted altogether (the text gets shorter)")
def _leave_one_out(lm: LM, inp: AttributionInput, options: AttributionOptions) -> np.ndarray:
    n = inp.split.n_words
    contexts = [list(inp.context)] + [_context_without(inp, [w], "remove") for w in range(n)]
    logp, _ = _score_contexts(lm, contexts, inp.target)
    return logp[0] - logp[1:]


def _attention_maps(lm: LM, inp: AttributionInput) -> tuple[np.ndarray, np.ndarray]:
    """Per-word attention from the last position: last layer, and rolled out through all layers.
    Computed once per input (both attention methods read it)."""
    if "attention" not in inp.cache:
        attentions = attention_weights(lm, [list(inp.context)])[0].mean(dim=1)  # head average: (layers, T, T)
        eye = torch.eye(attentions.shape[-1])
        rollout = eye
        for a in attentions:  # residual connection: half attention, half identity, rows sum to 1
            mixed = 0.5 * a + 0.5 * eye
            rollout = (mixed / mixed.sum(dim=-1, keepdim=True)) @ rollout
        inp.cache["attention"] = (_per_word(inp, attentions[-1][-1]), _per_word(inp, rollout[-1]))
    return inp.cache["attention"]


@register_method("attention_last", library="gpt2lab", source="raw attention weights (e.g. Jain & Wallace 2019 "
                 "on why they may mislead)", description="the last layer's attention from the last position, "
                 "averaged over heads")
def _attention_last(lm: LM, inp: AttributionInput, options: AttributionOptions) -> np.ndarray:
    return _attention_maps(lm, inp)[0]


@register_method("attention_rollout", library="gpt2lab", source="Abnar & Zuidema 2020, 'Quantifying Attention "
                 "Flow in Transformers'", description="attention rolled out through all layers, half identity "
                 "for the residual connection")
def _attention_rollout(lm: LM, inp: AttributionInput, options: AttributionOptions) -> np.ndarray:
    return _attention_maps(lm, inp)[1]


def _per_word(inp: AttributionInput, token_scores: torch.Tensor) -> np.ndarray:
    """Sum a score over the pieces of each word (BOS excluded)."""
    values = token_scores.detach().float().cpu().numpy()[inp.shift:]
    return np.array([values[list(w.tokens)].sum() for w in inp.split.words])


METHODS = tuple(_REGISTRY)  # the built-in methods
CAPTUM_METHODS = tuple(m.name for m in _REGISTRY.values() if m.library == "captum")


# ----------------------------------------------------------------------------- results

@dataclass
class Attributions:
    """Word scores of several methods for one text and one target (higher = more important).

    ``scores[method]``: float64 (words,), in the method's own units (see :func:`compare_attributions`);
    ``seconds[method]``: its wall time; ``target``/``target_ids``: the piece(s) explained;
    ``spans``: every word's character span in ``text``.
    """

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
        """The same as :meth:`to_dataframe`."""
        return self.to_dataframe()

    def normalised(self):
        """Each method's scores divided by its largest absolute value (so methods share one scale)."""
        frame = self.to_dataframe()
        return frame / frame.abs().max().replace(0, 1)

    def ranks(self):
        """Rank of every word under every method (1 = most important)."""
        return self.to_dataframe().rank(ascending=False, method="average")

    def rank_agreement(self, kind: Correlation = "spearman"):
        """Rank correlation between every pair of methods ("spearman" or "kendall")."""
        return rank_agreement(self.scores, kind)

    def plot(self, ax=None):
        """Heat map: methods x words, each scaled to [-1, 1]; see :func:`gpt2lab.explain.views.plot_attributions`."""
        return views.plot_attributions(self, ax)

    def _repr_html_(self) -> str:
        return views.attributions_html(self)

    def __repr__(self) -> str:
        return f"Attributions({self.text!r}, target={self.target!r}, methods={list(self.scores)})"


def rank_agreement(scores: dict[str, np.ndarray], kind: Correlation = "spearman"):
    """A methods x methods pandas table of rank correlations (scipy's Spearman rho or Kendall tau, in
    [-1, 1]; NaN where a method gives every word the same score). Raises ValueError for another kind."""
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
    if methods is None:
        return tuple(_REGISTRY)
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    unknown = [m for m in methods if m not in _REGISTRY]
    if unknown or not methods:
        raise ValueError(f"methods={list(methods)!r} is not allowed; choose from the registered methods "
                         f"{list(_REGISTRY)} (add one with register_method)")
    return methods


def compare_attributions(lm: LM, text: str | list[str], target=None, methods=None, *, bos: bool = True,
                         blank: str = " ", shapley_samples: int = 10, ig_steps: int = 20,
                         importance_steps: int = 200, importance_samples: int = 4, seed: int = 0,
                         importance_stop_tol: float | None = 0.05, importance_patience: int = 30,
                         progress: bool = True):
    """Score every word of ``text`` with several attribution methods, for one target.

    text: a string (returns one :class:`Attributions`) or a list of strings (one per text).
    target: what to explain: None = the model's most likely next piece, a string (e.g. " love"),
        a token id or a tuple of token ids. ``importance`` always explains the whole next-piece distribution.
    methods: names of registered methods (None = all of them; see :func:`registered_methods`, the
        built-in ones are ``METHODS``). bos: start the context with <|endoftext|> (never scored).
    blank: the piece that replaces a word for occlusion, Shapley sampling and the IG baseline.
    shapley_samples, ig_steps: captum's n_samples and n_steps. importance_*: word_importance's
        steps, samples, stop_tol and patience. seed: makes Shapley sampling and the importance noise reproducible.

    Returns scores of shape (n_words,) per method (higher = more important; units differ between
    methods: log-probability for occlusion/Shapley/IG/leave-one-out, attention weight for the
    attention methods, -log sigma for importance) and the seconds each took.
    Raises ValueError for an unknown method, a count below 1, a blank that is not one piece or a text
    longer than the context; TypeError for a target or text of the wrong type.
    """
    from tqdm.auto import tqdm

    methods = _check_methods(methods)
    options = AttributionOptions(bos=bos, blank=blank, shapley_samples=shapley_samples, ig_steps=ig_steps,
                                 importance_steps=importance_steps, importance_samples=importance_samples, seed=seed,
                                 importance_stop_tol=importance_stop_tol, importance_patience=importance_patience)
    for name in ("shapley_samples", "ig_steps", "importance_steps", "importance_samples"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is not allowed; use an integer >= 1")
    if isinstance(text, (list, tuple)):
        return [compare_attributions(lm, t, target, methods, progress=progress, **options.__dict__) for t in text]
    if not isinstance(text, str):
        raise TypeError(f"text must be a string or a list of strings, got {type(text).__name__}")
    inp = _prepare(lm, text, target, bos, blank)
    scores, seconds = {}, {}
    for method in tqdm(methods, desc="attribution methods", disable=not progress, leave=False):
        t0 = time.perf_counter()
        scores[method] = np.asarray(_REGISTRY[method].function(lm, inp, options), dtype=np.float64)
        if scores[method].shape != (inp.split.n_words,):
            raise RuntimeError(f"attribution method {method!r} returned shape {scores[method].shape}; "
                               f"it must return one score per word ({inp.split.n_words},)")
        seconds[method] = time.perf_counter() - t0
    return Attributions(text=text, words=inp.split.word_texts(), target=lm.tokenizer.decode(list(inp.target)),
                        target_ids=inp.target, scores=scores, seconds=seconds,
                        spans=[(w.start, w.end) for w in inp.split.words], model_name=str(lm.name))


# ----------------------------------------------------------------------------- faithfulness

def order_from_scores(scores: np.ndarray) -> list[int]:
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


def curve_area(curve: np.ndarray) -> float | np.ndarray:
    """Area under a deletion curve (n_words + 1,), as the mean movement over k = 1..n removed words (in
    the curve's units); for curves stacked as (curves, n_words + 1), one area per curve."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(curve[..., 1:].mean(axis=-1)) if curve.ndim == 1 else curve[..., 1:].mean(axis=-1)


@dataclass
class DeletionResult:
    """Deletion curves of several methods (and of random orders) for one text.

    Movement is in nats (``metric="kl"``) or in log-probability of the target (``"logprob"``);
    ``areas``: :func:`curve_area` of each method's curve, ``random_area``: the mean over random orders.
    """

    text: str
    words: list[str]
    target: str
    metric: Metric
    mode: DeletionMode
    curves: dict[str, np.ndarray]  # method -> (n_words + 1,) movement after k words removed
    random_curves: np.ndarray  # (n_random, n_words + 1)

    @property
    def areas(self) -> dict[str, float]:
        """Area under each method's curve."""
        return {m: curve_area(c) for m, c in self.curves.items()}

    @property
    def random_area(self) -> float:
        """Mean area under the random orders' curves (NaN without random orders)."""
        return float(np.mean(curve_area(self.random_curves))) if len(self.random_curves) else float("nan")

    def plot(self, ax=None):
        """The deletion curves against random orders; see :func:`gpt2lab.explain.views.plot_deletion`."""
        return views.plot_deletion(self, ax)


def _movement_evaluator(lm: LM, inp: AttributionInput, mode: DeletionMode, metric: Metric):
    full_logp, full_dist = _score_contexts(lm, [list(inp.context)], inp.target)

    def evaluate(removed_sets):
        contexts = [_context_without(inp, sorted(s), mode) for s in removed_sets]
        logp, dist = _score_contexts(lm, contexts, inp.target)
        if metric == "logprob":
            return full_logp[0] - logp
        p_full = full_dist[0].exp()
        kl = (p_full * (full_dist[0] - dist)).sum(dim=-1)
        return kl.clamp_min(0).cpu().numpy()

    return evaluate


def deletion_curve(lm: LM, attributions: Attributions, *, metric: Metric = "kl", mode: DeletionMode = "remove",
                   n_random: int = 20, bos: bool = True, blank: str = " ", seed: int = 0) -> DeletionResult:
    """Remove words from most to least important (per method) and measure how far the prediction moves.

    metric: "kl" (KL divergence, in nats, of the next-piece distribution from the full text's) or
        "logprob" (drop of log p(target)). mode: "remove" deletes the words, "mask" replaces them with
        ``blank``. A faithful method moves the prediction sooner than random orders do: larger area
        (the deletion metric of Samek et al. 2017, "Evaluating the visualization of what a deep neural
        network has learned"; DeYoung et al. 2020 call it comprehensiveness). Curves have shape
        (n_words + 1,); ``n_random`` random orders (seeded by ``seed``) give the baseline. Raises
        ValueError for an unknown metric or mode or a negative n_random.
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not allowed; use one of {METRICS}")
    if mode not in DELETION_MODES:
        raise ValueError(f"mode={mode!r} is not allowed; use one of {DELETION_MODES}")
    if not isinstance(n_random, int) or n_random < 0:
        raise ValueError(f"n_random={n_random!r} is not allowed; use an integer >= 0")
    target = attributions.target_ids or attributions.target
    inp = _prepare(lm, attributions.text, target, bos, blank)
    n = inp.split.n_words
    rng = np.random.default_rng(seed)
    orders = [order_from_scores(s) for s in attributions.scores.values()]
    random_orders = [list(rng.permutation(n)) for _ in range(n_random)]
    table = deletion_areas(_movement_evaluator(lm, inp, mode, metric), n, orders + random_orders)
    curves = dict(zip(attributions.scores, table[:len(orders)]))
    return DeletionResult(text=attributions.text, words=attributions.words, target=attributions.target,
                          metric=metric, mode=mode, curves=curves, random_curves=table[len(orders):])


@dataclass
class FaithfulnessReport:
    """Deletion-curve areas of every method over a set of sentences."""

    table: object  # pandas DataFrame, one row per method, best first
    per_text: object  # pandas DataFrame, one row per (text, method)
    agreement: object  # mean Spearman correlation between methods over the texts
    metric: Metric
    mode: DeletionMode

    @property
    def best_method(self) -> str:
        """The method ranked first (lowest mean rank, then largest area)."""
        return str(self.table.index[0])

    def _repr_html_(self) -> str:
        return views.faithfulness_html(self)

    def __str__(self) -> str:
        return (f"deletion metric={self.metric}, mode={self.mode}; most faithful: {self.best_method}\n"
                + self.table.to_string(float_format=lambda v: f"{v:.3f}"))


def faithfulness_table(lm: LM, texts: str | list[str], methods=None, *, metric: Metric = "kl",
                       mode: DeletionMode = "remove",
                       n_random: int = 20, bos: bool = True, blank: str = " ", seed: int = 0,
                       progress: bool = True, **method_kwargs) -> FaithfulnessReport:
    """Which method is most faithful on these sentences?

    For every text: attributions of every method (``compare_attributions``), their deletion curves
    and random orders. Columns: mean area (higher = the method finds words that move the
    prediction), mean area of random orders, ``gain`` = area / random area, ``wins`` (texts on
    which the method had the largest area) and ``mean_rank`` (1 = best). Rows sorted by mean rank.
    ``method_kwargs`` go to :func:`compare_attributions` (e.g. ``shapley_samples``). Raises ValueError
    for no texts, an unknown method, metric or mode (see :func:`deletion_curve`).
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
