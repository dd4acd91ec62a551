"""Which words of a prompt drive the model's next-word prediction? Word importance by perturbation.

The method is the one of Guan et al. (ICML 2019), "Towards a Deep and Unified Understanding of
Deep Neural Models in NLP". Each word i of the prompt gets a noise level

    sigma_i = scale * sigmoid(rho_i)

and its embedding x_i is replaced by x~_i = x_i + sigma_i * eps_i with eps_i ~ N(0, I). We look
for the largest noise the model tolerates without changing its output Phi (the logits at the last
position, or the final hidden state there):

    loss(sigma) = E_eps[ mean_d (Phi(x~) - Phi(x))_d^2 / r_d^2 ]  -  lambda * mean_i log sigma_i

r_d^2 is the variance of output d over a sample of corpus sentences (so every output dimension
counts in its own units). The first term wants little noise, the second as much as possible: a
word that can take a lot of noise carries little information the output needs (large sigma =
unimportant); a word that cannot take noise is important (small sigma).

The original implementation draws one noise sample per step, for one sentence, recomputes
Phi(x) every step and runs thousands of steps at a small learning rate. Here Phi(x) is computed
once, K noise samples are drawn per step and pushed through the model as one batch, several
sentences share a batch (right padding; the causal mask keeps padding invisible to real
positions), the model's weights are frozen during the search, only the last position goes
through the output layer, and the learning rate starts large and decays (cosine). The kept "best"
sigma is judged on the loss averaged over the last few steps: judged on one step's noisy loss (as
in the original), a lucky draw pins an early, unconverged sigma as best for good.
``bench/bench_importance.py`` measures the time both need to reach the same answer.

The objective is not convex. A word whose noise has already destroyed its information gains
nothing from a little less noise (the fit term is flat there), so it drifts up to the ceiling. Which
basin a word ends in depends on where it starts. gpt2lab starts every word at a small sigma
(``init`` = 5 % of the ceiling): there the output reacts to every word's noise, so every sigma gets
a live gradient and rises only as far as the output tolerates. Measured by
``bench/bench_importance.py`` on the embedded model (8 sentences, default settings): from the small
start the loss ends lower on all 8 (0.26-0.34 against 0.41-1.33 from half the ceiling, where the
published code's random start lies on average; :func:`objective` estimates it with 1024 fresh noise
samples), and two seeds rank the words alike (Spearman 0.82-1.00, against 0.80 at best and often
near 0 from half the ceiling).

Pieces of one word share one sigma (``unit="word"``, see :mod:`gpt2lab.explain.words`), so results read
per word; ``unit="token"`` gives every BPE piece its own sigma, like the original code. Per piece
the answer is less well posed: the model often copes when any few pieces of a long word are lost,
so which of them take the noise varies from seed to seed.
"""
from __future__ import annotations

import hashlib
import math
import time
import types
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from gpt2lab.explain import views
from gpt2lab.explain.outputs import OUTPUTS, Output, frozen, last_hidden, output_variance, phi
from gpt2lab.explain.words import WordSplit, split_tokens, split_words
from gpt2lab.tokens import bos_id, pad_id, right_pad

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["Unit", "Normaliser", "UNITS", "NORMALISERS", "DEFAULT_SCALE_FACTOR", "ImportanceSettings",
           "WordImportance", "text_seed", "default_scale", "word_importance", "ObjectiveEstimate", "objective"]

Unit = Literal["word", "token"]
Normaliser = Literal["corpus", "self"]
UNITS: tuple[Unit, ...] = ("word", "token")
NORMALISERS: tuple[Normaliser, ...] = ("corpus", "self")
DEFAULT_SCALE_FACTOR = 10.0  # sigma's ceiling in units of the embedding table's std (the paper's advice)


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class ImportanceSettings:
    """How :func:`word_importance` searched; stored with every result so it can be reproduced."""

    steps: int = 200
    samples: int = 4  # K: noise samples per step, pushed through the model as one batch
    lr: float = 0.3
    final_lr_ratio: float = 0.05  # the learning rate decays (cosine) to this fraction of lr
    init: float = 0.05  # starting sigma, as a fraction of scale (small: see the module docstring)
    smoothing: float = 0.97  # EMA factor for judging "best": loss and rho averaged over ~1/(1-x) steps
    rate: float = 0.1  # lambda: weight of the "as much noise as possible" term
    scale: float | None = None  # sigma's ceiling; None = 10 x std of the token-embedding table
    output: Output = "logits"  # Phi: "logits" or "hidden" (final hidden state) at the last position
    unit: Unit = "word"  # "word": pieces of a word share sigma; "token": one sigma per BPE piece
    normaliser: Normaliser = "corpus"  # r^2: "corpus" variance (cached per model) or "self" = mean(Phi(x)^2)
    bos: bool = True  # condition on <|endoftext|> first, as at the start of a GPT-2 document
    seed: int = 0
    max_rows: int | None = None  # rows per forward pass (memory cap); None = by device
    texts_per_batch: int = 16  # sentences optimised together
    stop_tol: float | None = 0.05  # a text stops once its sigmas move less than this (in log sigma) ...
    patience: int = 30  # ... over this many steps; stop_tol=None always runs every step

    def validate(self) -> None:
        """Raises ValueError naming the first field whose value is not allowed, and what is."""

        def need(cond, name, value, allowed):
            if not cond:
                raise ValueError(f"{name}={value!r} is not allowed; {allowed}")

        need(isinstance(self.steps, int) and self.steps >= 1, "steps", self.steps, "use an integer >= 1")
        need(isinstance(self.samples, int) and self.samples >= 1, "samples", self.samples,
             "use an integer >= 1")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0, "lr", self.lr,
             "use a positive number")
        need(isinstance(self.final_lr_ratio, (int, float)) and 0 < self.final_lr_ratio <= 1, "final_lr_ratio",
             self.final_lr_ratio, "use a number in (0, 1]")
        need(isinstance(self.init, (int, float)) and 0 < self.init < 1, "init", self.init,
             "use a number in (0, 1)")
        need(isinstance(self.smoothing, (int, float)) and 0 <= self.smoothing < 1, "smoothing", self.smoothing,
             "use a number in [0, 1)")
        need(isinstance(self.rate, (int, float)) and math.isfinite(self.rate) and self.rate >= 0, "rate",
             self.rate, "use a number >= 0")
        need(self.scale is None or (isinstance(self.scale, (int, float)) and math.isfinite(self.scale)
                                    and self.scale > 0), "scale", self.scale, "use a positive number or None")
        need(self.output in OUTPUTS, "output", self.output, f"use one of {OUTPUTS}")
        need(self.unit in UNITS, "unit", self.unit, f"use one of {UNITS}")
        need(self.normaliser in NORMALISERS, "normaliser", self.normaliser, f"use one of {NORMALISERS}")
        need(isinstance(self.seed, int), "seed", self.seed, "use an integer")
        need(self.max_rows is None or (isinstance(self.max_rows, int) and self.max_rows >= 1), "max_rows",
             self.max_rows, "use an integer >= 1 or None")
        need(isinstance(self.texts_per_batch, int) and self.texts_per_batch >= 1, "texts_per_batch",
             self.texts_per_batch, "use an integer >= 1")
        need(self.stop_tol is None or (isinstance(self.stop_tol, (int, float)) and math.isfinite(self.stop_tol)
                                       and self.stop_tol > 0), "stop_tol", self.stop_tol,
             "use a positive number (change of log sigma) or None to run every step")
        need(isinstance(self.patience, int) and self.patience >= 1, "patience", self.patience,
             "use an integer >= 1")


# ----------------------------------------------------------------------------- result

@dataclass
class WordImportance:
    """The importance of every word of one text for the model's next-word prediction.

    ``sigma[i]``: the noise level word i tolerates (small = important).
    ``importance[i]``: -log sigma rescaled within the text to [0, 1] (1 = most important word).
    ``loss_trace``: the loss at every step run; ``best_step``: where the kept sigma came from;
    ``steps_run``: steps actually run (fewer than ``settings["steps"]`` when the text settled early).

    Shapes (W = words of the text, or BPE pieces with ``unit="token"``): ``sigma``, ``importance``
    (W,) float64; ``loss_trace`` (steps_run,); ``sigma_trace`` (checkpoints, W) with ``trace_steps``
    and ``trace_seconds`` (checkpoints,). sigma is in the units of the input embeddings (a standard
    deviation of added Gaussian noise), at most ``scale``; ``seconds`` is wall time.
    """

    text: str
    words: list[str]
    sigma: np.ndarray
    importance: np.ndarray
    pieces: list[list[str]]  # BPE pieces of every word
    spans: list[tuple[int, int]]  # character span of every word in ``text``
    loss_trace: np.ndarray
    best_step: int
    best_loss: float
    prediction: str  # the model's most likely next piece after the text
    prediction_prob: float
    settings: dict
    seconds: float  # wall time of the search, divided among the texts searched together
    model_name: str = ""
    sigma_trace: np.ndarray | None = None  # (checkpoints, words): best sigma so far, when recorded
    trace_steps: np.ndarray | None = None
    trace_seconds: np.ndarray | None = None
    steps_run: int = 0

    @property
    def scale(self) -> float:
        """sigma's ceiling, in embedding units (``settings["scale"]``)."""
        return float(self.settings["scale"])

    def ranking(self) -> list[str]:
        """Words from most to least important."""
        return [self.words[i] for i in np.argsort(self.sigma, kind="stable")]

    def to_dataframe(self):
        """One row per word: word, sigma, importance (0..1), rank (1 = most important), pieces."""
        import pandas as pd

        ranks = np.empty(len(self.words), dtype=int)
        ranks[np.argsort(self.sigma, kind="stable")] = np.arange(1, len(self.words) + 1)
        return pd.DataFrame({"word": self.words, "sigma": self.sigma, "importance": self.importance,
                             "rank": ranks, "pieces": ["".join(p) for p in self.pieces]})

    def to_html(self, cmap: str = "Reds") -> str:
        """The text with every word shaded by its importance (hover a word for its numbers); see
        :func:`gpt2lab.explain.views.importance_html`."""
        return views.importance_html(self, cmap)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        shown = ", ".join(f"{w!r}:{s:.2f}" for w, s in zip(self.words, self.sigma))
        return f"WordImportance({self.text!r}, sigma={{{shown}}}, next={self.prediction!r})"

    def plot(self, ax=None, show_loss: bool = False, cmap: str = "Reds"):
        """Bar chart of importance per word above the shaded text (and the loss trace with ``show_loss``);
        see :func:`gpt2lab.explain.views.plot_importance`. Returns the matplotlib figure."""
        return views.plot_importance(self, ax, show_loss=show_loss, cmap=cmap)


# ----------------------------------------------------------------------------- noise

def text_seed(seed: int, text: str) -> int:
    """The noise seed of one text (a 63-bit int from SHA-256 of seed and text): it depends on (seed, text)
    only, so a text draws the same noise whether it is explained alone or inside a batch."""
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def default_scale(lm: LM, factor: float = DEFAULT_SCALE_FACTOR) -> float:
    """sigma's ceiling, in embedding units: ``factor`` x the standard deviation of the token-embedding
    table (Guan et al. 2019 advise about 10 x the embeddings' spread, so the noise can drown a word)."""
    weight = lm.model.get_input_embeddings().weight
    return float(factor * weight.detach().float().std())


# ----------------------------------------------------------------------------- the search

def _check_texts(text_or_texts) -> tuple[list[str], bool]:
    if isinstance(text_or_texts, str):
        return [text_or_texts], True
    if isinstance(text_or_texts, (list, tuple)):
        if not text_or_texts:
            raise ValueError("text_or_texts is an empty list; give at least one text")
        for i, t in enumerate(text_or_texts):
            if not isinstance(t, str):
                raise TypeError(f"text_or_texts[{i}] must be a string, got {type(t).__name__}")
        return list(text_or_texts), False
    raise TypeError(f"text_or_texts must be a string or a list of strings, got {type(text_or_texts).__name__}")


def word_importance(lm: LM, text_or_texts: str | list[str], *, steps: int = 200, samples: int = 4,
                    lr: float = 0.3, final_lr_ratio: float = 0.05, init: float = 0.05, smoothing: float = 0.97,
                    rate: float = 0.1, scale: float | None = None, output: Output = "logits", unit: Unit = "word",
                    normaliser: Normaliser = "corpus", bos: bool = True, seed: int = 0, max_rows: int | None = None,
                    texts_per_batch: int = 16, stop_tol: float | None = 0.05, patience: int = 30,
                    record_every: int | None = None, progress: bool = True) -> WordImportance | list[WordImportance]:
    """How important is every word of a prompt for what the model predicts next?

    Guan et al. 2019, "Towards a Deep and Unified Understanding of Deep Neural Models in NLP" (ICML):
    the perturbation method of the module docstring, batched. Returns a :class:`WordImportance`
    (sigma and importance of shape (words,)) for a string, a list of them for a list of strings.
    Raises ValueError naming the setting for a value that is not allowed, for an empty list or a text
    without words or longer than the model's context; TypeError for a text that is not a string.

    steps, samples, lr: Adam steps, noise samples per step (one batch), learning rate; it decays
        (cosine) to ``final_lr_ratio`` x lr by the last step.
    init: the starting sigma of every word as a fraction of scale. Keep it small: started high, a
        word whose information the noise already destroys feels no pull back and drifts to the
        ceiling, a worse optimum (see the module docstring).
    smoothing: the kept "best" sigma is judged on the loss averaged over recent steps (EMA with this
        factor, 0 = the raw loss of one step as in the original) and is the EMA of those steps' rho.
    rate: lambda, the weight of the entropy term (more = more words allowed to take noise).
    scale: sigma's ceiling (default 10 x std of the embedding table, as the paper advises).
    output: "logits" (the next-token scores) or "hidden" (the final hidden state).
    unit: "word" (pieces of a word share sigma) or "token" (one sigma per BPE piece).
    normaliser: "corpus" (per-dimension variance over corpus sentences, cached per model; falls back
        to "self" with a warning when the corpus is unavailable) or "self" (mean(Phi(x)^2)).
    bos: put <|endoftext|> before the text (not a word, never perturbed), like a document start.
    seed: the noise of each text depends only on (seed, text): batched == one by one.
    max_rows: most rows per forward pass (caps memory); texts_per_batch: texts optimised together.
    stop_tol, patience: a text stops early once neither its kept sigma nor its current (smoothed) sigma
        has moved by more than ``stop_tol`` in log sigma (0.05 = 5 %) over the last ``patience`` steps,
        and the two agree that closely; its rows then leave the batch, so the others run faster.
        ``stop_tol=None`` runs every one of ``steps``. Stopping depends on the text alone, so batched
        results still equal one-by-one results.
    record_every: also keep the best sigma so far every that many steps (``sigma_trace``).
    """
    settings = ImportanceSettings(steps=steps, samples=samples, lr=lr, final_lr_ratio=final_lr_ratio, init=init,
                                  smoothing=smoothing, rate=rate, scale=scale, output=output, unit=unit,
                                  normaliser=normaliser, bos=bos, seed=seed, max_rows=max_rows,
                                  texts_per_batch=texts_per_batch, stop_tol=stop_tol, patience=patience)
    settings.validate()
    if record_every is not None and not (isinstance(record_every, int) and record_every >= 1):
        raise ValueError(f"record_every={record_every!r} is not allowed; use an integer >= 1 or None")
    texts, single = _check_texts(text_or_texts)
    splitter = split_words if unit == "word" else split_tokens
    splits = []
    for i, t in enumerate(texts):
        try:
            s = splitter(lm.tokenizer, t)
        except ValueError as err:
            raise ValueError(f"text_or_texts[{i}]: {err}") from None
        if s.n_tokens + int(bos) > lm.context_length:
            raise ValueError(f"text_or_texts[{i}] has {s.n_tokens} tokens; the model reads at most "
                             f"{lm.context_length - int(bos)} here (context {lm.context_length})")
        splits.append(s)

    the_scale = float(scale) if scale is not None else default_scale(lm)
    r2 = None
    if normaliser == "corpus":
        from gpt2lab.data import DataUnavailableError

        try:
            r2 = output_variance(lm, output=output, bos=bos)
        except DataUnavailableError as err:
            warnings.warn(f"word_importance: no corpus for the output variance ({err}); "
                          "normalising by mean(Phi(x)^2) instead (normaliser='self')", stacklevel=2)
    if max_rows is None:
        max_rows = 512 if lm.device.type == "cuda" else 64
    stored = dict(settings.__dict__, scale=the_scale, max_rows=max_rows,
                  normaliser=normaliser if (r2 is not None or normaliser == "self") else "self")

    # similar lengths together: less padding
    order = sorted(range(len(texts)), key=lambda i: splits[i].n_tokens)
    results: dict[int, WordImportance] = {}
    for g in range(0, len(order), texts_per_batch):
        group = order[g:g + texts_per_batch]
        for i, res in zip(group, _search(lm, [splits[i] for i in group], settings, the_scale, r2, max_rows,
                                         record_every, progress, stored)):
            results[i] = res
    out = [results[i] for i in range(len(texts))]
    return out[0] if single else out


class _Settling:
    """Says when a text's answer has settled: over the last ``patience`` steps (seen at checks every
    few steps, one host sync each) no word's kept log sigma moved by ``tol`` or more, and the current
    (smoothed) log sigma is that close to the kept one too."""

    def __init__(self, tol: float, patience: int, first: np.ndarray):
        self.tol, self.patience, self.first = tol, patience, first[:-1]  # first: unit offsets per text
        self.every = min(5, patience)
        self.history: list[tuple[int, torch.Tensor]] = []  # (step, kept log sigma) at each check

    def settled(self, step: int, kept: torch.Tensor, now: torch.Tensor, texts_on: list[int]) -> list[int]:
        if step % self.every:
            return []
        self.history.append((step, kept))
        horizon = step - self.patience
        older = [h for h in self.history if h[0] <= horizon]
        if not older:  # the window is not covered yet
            return []
        self.history = [older[-1]] + [h for h in self.history if h[0] > horizon]
        moved = (kept - now).abs()
        for _, past in self.history:
            moved = moved.maximum((kept - past).abs())
        worst = np.maximum.reduceat(moved.cpu().numpy(), self.first)  # per text
        return [b for b in texts_on if worst[b] < self.tol]


@dataclass
class _Problem:
    """A group of texts made ready for the search (the set-up): fixed while sigma is optimised.

    Units are the words (or pieces) of all texts numbered globally; ``first[b]`` is text b's first
    unit, and unit ``total`` is a dummy with sigma 0 that BOS and padding positions point at.
    """

    splits: list[WordSplit]
    lengths: list[int]  # positions per row (BOS included)
    x: torch.Tensor  # (n, width, D) input embeddings
    mask: torch.Tensor  # (n, width) attention mask
    last: torch.Tensor  # (n,) position explained in each row
    unit_of: torch.Tensor  # (n, width) position -> global unit
    owner: torch.Tensor  # (total,) unit -> text
    first: np.ndarray  # (n + 1,) unit offsets
    target: torch.Tensor  # (n, out) Phi(x), computed once
    norm: torch.Tensor  # (n, out) r^2 per output dimension
    probs: torch.Tensor  # (n, vocab) next-piece distribution of the clean text
    weight: torch.Tensor  # (n,) units per text
    generators: list[torch.Generator]  # one noise stream per text

    @property
    def n(self) -> int:
        return len(self.splits)

    @property
    def total(self) -> int:
        return int(self.first[-1])


def _set_up(lm: LM, splits: list[WordSplit], s: ImportanceSettings, r2) -> _Problem:
    """Pad the texts into one batch, map positions to units and compute Phi(x) and r^2 once."""
    model, device = lm.model, lm.device
    n = len(splits)
    rows = [([bos_id(lm.tokenizer)] if s.bos else []) + list(sp.input_ids) for sp in splits]
    ids, mask, last = right_pad(rows, pad_id(lm.tokenizer), device)
    shift = int(s.bos)
    n_units = [sp.n_words for sp in splits]
    first = np.cumsum([0] + n_units)
    total = int(first[-1])
    unit_of = torch.full((n, ids.shape[1]), total, dtype=torch.long)
    for b, sp in enumerate(splits):
        unit_of[b, shift:shift + sp.n_tokens] = torch.tensor(sp.token_to_word, dtype=torch.long) + int(first[b])
    owner = torch.repeat_interleave(torch.arange(n), torch.tensor(n_units)).to(device)
    generators = []
    for sp in splits:
        gen = torch.Generator(device=device)
        gen.manual_seed(text_seed(s.seed, sp.text))
        generators.append(gen)
    with torch.no_grad():
        x = model.get_input_embeddings()(ids).detach()  # (n, width, D)
        hidden = last_hidden(model, x, last, mask)
        logits = model.get_output_embeddings()(hidden).float()
        target = logits if s.output == "logits" else hidden.float()
        probs = torch.softmax(logits, dim=-1)
    norm = (r2.unsqueeze(0).expand(n, -1) if r2 is not None
            else target.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-12).expand_as(target))
    weight = torch.zeros(n, device=device).index_add_(0, owner, torch.ones(total, device=device))
    return _Problem(splits=splits, lengths=[len(r) for r in rows], x=x, mask=mask, last=last,
                    unit_of=unit_of.to(device), owner=owner, first=first, target=target, norm=norm, probs=probs,
                    weight=weight, generators=generators)


@dataclass
class _Active:
    """The texts still being optimised and their rows (each text repeated once per noise sample)."""

    texts: list[int]
    units: torch.Tensor  # (total,) bool: unit belongs to a running text
    on: torch.Tensor  # (n,) bool: text is running
    rows: types.SimpleNamespace  # the problem's per-row tensors, gathered for the running texts


def _gather(p: _Problem, active: list[bool], k: int) -> _Active:
    """Gather the rows of the running texts anew (a settled text then costs nothing)."""
    device = p.x.device
    texts = [b for b in range(p.n) if active[b]]
    text_rows = torch.tensor(texts, device=device).repeat_interleave(k)
    units = torch.tensor([active[int(o)] for o in p.owner.tolist()], device=device)
    on = torch.zeros(p.n, dtype=torch.bool, device=device)
    on[texts] = True
    return _Active(texts=texts, units=units, on=on, rows=types.SimpleNamespace(
        text=text_rows, x=p.x[text_rows], mask=p.mask[text_rows], last=p.last[text_rows],
        unit=p.unit_of[text_rows], target=p.target[text_rows], norm=p.norm[text_rows]))


def _noise(p: _Problem, act: _Active, k: int) -> torch.Tensor:
    """(running texts x k, width, D) standard normal noise; each text draws from its own generator,
    so its noise does not depend on which other texts share the batch."""
    width, dim = p.x.shape[1], p.x.shape[2]
    noise = torch.zeros((len(act.texts), k, width, dim), device=p.x.device, dtype=p.x.dtype)
    for j, b in enumerate(act.texts):
        noise[j, :, :p.lengths[b]] = torch.randn((k, p.lengths[b], dim), generator=p.generators[b],
                                                 device=p.x.device, dtype=p.x.dtype)
    return noise.view(len(act.texts) * k, width, dim)


def _step(model, p: _Problem, act: _Active, rho: torch.Tensor, optimiser, schedule, s: ImportanceSettings,
          scale: float, max_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step for the running texts: K noise samples each, the loss and its gradient,
    one Adam step. Returns (loss per text (n,), rho before the step)."""
    k = s.samples
    x, r = p.x, act.rows
    rows_on = len(act.texts) * k
    noise = _noise(p, act, k)
    zero = torch.zeros(1, device=x.device)
    optimiser.zero_grad(set_to_none=True)
    fit = torch.zeros(p.n, device=x.device)
    for a in range(0, rows_on, max_rows):  # chunks bound the memory; gradients accumulate
        z = slice(a, min(a + max_rows, rows_on))
        sigma_tok = torch.cat([scale * torch.sigmoid(rho), zero])[r.unit[z]]
        x_tilde = r.x[z] + sigma_tok.unsqueeze(-1).to(x.dtype) * noise[z]
        out = phi(model, x_tilde, r.last[z], r.mask[z], s.output)
        per_row = ((out - r.target[z]).pow(2) / r.norm[z]).mean(dim=1) / k
        per_row.sum().backward()
        fit.index_add_(0, r.text[z], per_row.detach())
    log_sigma = math.log(scale) + torch.nn.functional.logsigmoid(rho)  # stable for very negative rho
    entropy = torch.zeros(p.n, device=x.device).index_add_(0, p.owner, log_sigma * act.units) / p.weight
    (-s.rate * entropy.sum()).backward()
    held = rho.detach().clone()
    optimiser.step()
    with torch.no_grad():  # Adam's momentum must not move the sigma of a text that has stopped
        rho.copy_(torch.where(act.units, rho, held))
    schedule.step()
    return fit - s.rate * entropy.detach(), held


class _Best:
    """The best sigma so far of every text, judged on smoothed values: one step's loss is a noisy
    estimate, and a lucky draw would otherwise pin an early, unconverged sigma as "best" for good.
    Loss and rho are exponential moving averages (factor ``smoothing``, debiased like Adam's)."""

    def __init__(self, p: _Problem, rho: torch.Tensor, smoothing: float):
        device = rho.device
        self.owner, self.smoothing = p.owner, smoothing
        self.loss = torch.full((p.n,), float("inf"), device=device)
        self.rho = rho.detach().clone()
        self.step = torch.zeros(p.n, dtype=torch.long, device=device)
        self.ema_loss = torch.zeros(p.n, device=device)
        self.ema_rho = torch.zeros_like(self.rho)
        self.debias = 1.0

    def update(self, step: int, loss: torch.Tensor, rho: torch.Tensor, act: _Active) -> None:
        c = self.smoothing
        self.ema_loss = torch.where(act.on, self.ema_loss * c + (1 - c) * loss, self.ema_loss)
        self.ema_rho = torch.where(act.units, self.ema_rho * c + (1 - c) * rho, self.ema_rho)
        self.debias = 1 - c ** (step + 1)
        smooth = self.ema_loss / self.debias
        better = (smooth < self.loss) & act.on  # keep the sigma with each text's lowest (smoothed) loss
        self.loss = torch.where(better, smooth, self.loss)
        self.step = torch.where(better, torch.full_like(self.step, step), self.step)
        self.rho = torch.where(better[self.owner], self.ema_rho / self.debias, self.rho)

    def kept_log_sigma(self) -> torch.Tensor:
        return torch.nn.functional.logsigmoid(self.rho)

    def current_log_sigma(self) -> torch.Tensor:
        return torch.nn.functional.logsigmoid(self.ema_rho / self.debias)


class _Recorder:
    """The kept sigma every ``every`` steps (``WordImportance.sigma_trace``), when asked for."""

    def __init__(self, every: int | None, scale: float, t0: float):
        self.every, self.scale, self.t0 = every, scale, t0
        self.sigmas, self.steps, self.times = [], [], []

    def maybe(self, done: int, best: _Best, last: bool = False) -> None:
        if not self.every or self.steps[-1:] == [done] or not (done % self.every == 0 or last):
            return
        self.sigmas.append((self.scale * torch.sigmoid(best.rho)).cpu().numpy())
        self.steps.append(done)
        self.times.append(time.perf_counter() - self.t0)

    def for_text(self, sl: slice) -> dict:
        if not self.sigmas:
            return {"sigma_trace": None, "trace_steps": None, "trace_seconds": None}
        return {"sigma_trace": np.stack([snap[sl] for snap in self.sigmas]), "trace_steps": np.array(self.steps),
                "trace_seconds": np.array(self.times)}


def _search(lm: LM, splits: list[WordSplit], s: ImportanceSettings, scale: float, r2, max_rows: int,
            record_every, progress: bool, stored: dict) -> list[WordImportance]:
    """Optimise sigma for a group of texts at once (one Adam over all their rho)."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    with frozen(lm.model):
        p = _set_up(lm, splits, s, r2)
        rho = torch.full((p.total,), math.log(s.init / (1 - s.init)), device=lm.device, requires_grad=True)
        optimiser = torch.optim.Adam([rho], lr=s.lr)
        # cosine decay: big steps while sigma travels, small ones so that it settles (and the kept best is stable)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda t: s.final_lr_ratio + (
            1 - s.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t / s.steps)))
        best, record = _Best(p, rho, s.smoothing), _Recorder(record_every, scale, t0)
        trace = torch.zeros((s.steps, p.n), device=lm.device)  # stays on the device: no sync per step
        # texts stop one by one (see stop_tol), and their rows leave the batch
        active, steps_run = [True] * p.n, [s.steps] * p.n
        watch = _Settling(s.stop_tol, s.patience, p.first) if s.stop_tol is not None else None
        act = _gather(p, active, s.samples)
        bar = tqdm(range(s.steps), desc=f"word importance ({p.n} text{'s' if p.n > 1 else ''})",
                   disable=not progress, leave=False)
        for step in bar:
            loss, before = _step(lm.model, p, act, rho, optimiser, schedule, s, scale, max_rows)
            best.update(step, loss, before, act)
            trace[step] = loss
            record.maybe(step + 1, best, last=step + 1 == s.steps)
            if progress and step % 10 == 0:
                bar.set_postfix(loss=f"{float(loss[act.texts].mean()):.4f}")
            if watch is None or step + 1 == s.steps:
                continue
            settled = watch.settled(step + 1, best.kept_log_sigma(), best.current_log_sigma(), act.texts)
            for b in settled:
                active[b], steps_run[b] = False, step + 1
            if settled and not any(active):
                record.maybe(step + 1, best, last=True)
                break
            if settled:
                act = _gather(p, active, s.samples)
        bar.close()
    return _results(lm, p, best, trace, steps_run, record, (time.perf_counter() - t0) / p.n, scale, stored)


def _results(lm: LM, p: _Problem, best: _Best, trace: torch.Tensor, steps_run: list[int], record: _Recorder,
             seconds: float, scale: float, stored: dict) -> list[WordImportance]:
    """One :class:`WordImportance` per text from the kept sigma."""
    sigma_all = (scale * torch.sigmoid(best.rho)).cpu().numpy().astype(np.float64)
    trace_np = trace.cpu().numpy()
    results = []
    for b, sp in enumerate(p.splits):
        sl = slice(int(p.first[b]), int(p.first[b + 1]))
        sigma = sigma_all[sl]
        neg_log = -np.log(sigma)
        spread = neg_log.max() - neg_log.min()
        importance = (neg_log - neg_log.min()) / spread if spread > 1e-12 else np.zeros_like(sigma)
        top = int(torch.argmax(p.probs[b]))
        results.append(WordImportance(
            text=sp.text, words=sp.word_texts(), sigma=sigma, importance=importance,
            pieces=[[lm.tokenizer.decode([sp.input_ids[t]]) for t in w.tokens] for w in sp.words],
            spans=[(w.start, w.end) for w in sp.words], loss_trace=trace_np[:steps_run[b], b].copy(),
            best_step=int(best.step[b]), best_loss=float(best.loss[b]),
            prediction=lm.tokenizer.decode([top]), prediction_prob=float(p.probs[b, top]), settings=dict(stored),
            seconds=seconds, model_name=str(lm.name), steps_run=steps_run[b], **record.for_text(sl)))
    return results


# ----------------------------------------------------------------------------- judging an answer

@dataclass(frozen=True)
class ObjectiveEstimate:
    """The objective of one sigma, estimated with many noise samples: ``loss = fit - rate * entropy``."""

    loss: float
    fit: float  # E_eps[mean_d (Phi(x~) - Phi(x))_d^2 / r_d^2]
    fit_error: float  # standard error of ``fit`` (the noise samples are finite)
    entropy: float  # mean_i log sigma_i
    samples: int


def objective(lm: LM, result: WordImportance, sigma=None, *, samples: int = 1024, seed: int = 12345,
              chunk: int = 256) -> ObjectiveEstimate:
    """Estimate the loss that :func:`word_importance` minimised, at ``result.sigma`` (or at ``sigma``,
    one value per word of ``result``, shape (words,)), with ``samples`` fresh noise draws and the
    settings of ``result``.

    The optimiser sees only a few noisy draws per step; this answers "which of two answers is the
    better optimum?" (two starts, two seeds, or gpt2lab against another implementation) on equal terms.
    ``chunk`` noise samples go through the model per forward pass (memory). Raises TypeError when
    ``result`` is not a WordImportance, ValueError for a sigma of the wrong shape or not positive, too
    few samples, or a result that this model's tokenizer splits differently.
    """
    if not isinstance(result, WordImportance):
        raise TypeError(f"result must be a WordImportance from word_importance, got {type(result).__name__}")
    sigma = np.asarray(result.sigma if sigma is None else sigma, dtype=np.float64)
    if sigma.shape != (len(result.words),):
        raise ValueError(f"sigma must hold {len(result.words)} positive finite numbers (one per word of the "
                         f"result), got shape {sigma.shape}")
    if not (np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
        raise ValueError(f"sigma must hold {len(result.words)} positive finite numbers (one per word of the "
                         f"result), got {np.round(sigma, 4).tolist()}")
    if not (isinstance(samples, int) and samples >= 2):
        raise ValueError(f"samples={samples!r} is not allowed; use an integer >= 2")
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk={chunk!r} is not allowed; use an integer >= 1 (noise samples per forward pass)")
    s = result.settings
    split = (split_words if s["unit"] == "word" else split_tokens)(lm.tokenizer, result.text)
    if split.n_words != len(result.words):
        raise ValueError("this result does not match this model's tokenizer (its words split differently); "
                         "pass the lm that produced it")
    row = ([bos_id(lm.tokenizer)] if s["bos"] else []) + list(split.input_ids)
    ids, mask, last = right_pad([row], pad_id(lm.tokenizer), lm.device)
    per_token = np.concatenate([[0.0] * int(s["bos"]), sigma[list(split.token_to_word)]])
    sigma_tok = torch.tensor(per_token, dtype=torch.float32, device=lm.device)[None, :, None]
    generator = torch.Generator(device=lm.device)
    generator.manual_seed(seed)
    with torch.inference_mode():
        x = lm.model.get_input_embeddings()(ids)
        target = phi(lm.model, x, last, mask, s["output"])
        if s["normaliser"] == "corpus":
            norm = output_variance(lm, output=s["output"], bos=s["bos"])
        else:
            norm = target.pow(2).mean().clamp_min(1e-12)
        fits = []
        for a in range(0, samples, chunk):
            m = min(chunk, samples - a)
            noise = torch.randn((m, *x.shape[1:]), generator=generator, device=lm.device, dtype=x.dtype)
            out = phi(lm.model, x + sigma_tok.to(x.dtype) * noise, last.expand(m), mask.expand(m, -1), s["output"])
            fits.append(((out - target).pow(2) / norm).mean(dim=1))
        fits = torch.cat(fits).double().cpu().numpy()
    entropy = float(np.log(sigma).mean())
    fit = float(fits.mean())
    return ObjectiveEstimate(loss=fit - s["rate"] * entropy, fit=fit,
                             fit_error=float(fits.std(ddof=1) / math.sqrt(samples)), entropy=entropy, samples=samples)
