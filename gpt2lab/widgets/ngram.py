"""An interactive explorer for n-gram language models: pick n and the smoothing, see samples and
how well the model predicts held-out text.

Fitting an n-gram model on tinyshakespeare takes a fraction of a second (see :mod:`gpt2lab.basics.ngram`),
so the explorer refits on every change and keeps the fitted models in a cache.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

from gpt2lab.basics.ngram import SMOOTHINGS, Level, NGramLM, Smoothing
from gpt2lab.widgets.common import task_line, with_static_view

__all__ = ["NGRAM_TASK", "TRAIN_SCORE_CHARS", "NGramReport", "evaluate_ngram", "report_html", "ngram_explorer"]

NGRAM_TASK = ("set n to 1: the sample ignores all context (letters at their overall frequencies); raise n and "
              "watch held-out bits per character fall, then rise again while the training-text bits keep falling.")
TRAIN_SCORE_CHARS = 100_000  # score this much training text to show over-fitting (cheap, and enough)


@dataclass(frozen=True)
class NGramReport:
    """What the explorer shows for one setting."""

    n: int
    smoothing: str
    k: float
    level: str
    heldout_bits_per_char: float
    heldout_perplexity: float  # per symbol (character or token)
    train_bits_per_char: float
    sample: str

    @property
    def symbol(self) -> str:
        return "character" if self.level == "char" else "token"


def evaluate_ngram(train: str, valid: str, n: int, smoothing: Smoothing = "kneser-ney", k: float = 1.0,
                   level: Level = "char", tokenizer=None, sample_length: int = 300, seed: int = 0,
                   prompt: str = "", model: NGramLM | None = None) -> NGramReport:
    """Fit (unless ``model`` is given) and measure one n-gram model; the numbers the explorer shows."""
    if model is None:
        model = NGramLM(n=n, smoothing=smoothing, k=k, level=level, tokenizer=tokenizer).fit(train)
    heldout = model.log_probs(valid)
    bits = float(-heldout.sum() / math.log(2) / len(valid))
    ppl = float(math.exp(-heldout.mean()))
    train_bits = model.bits_per_char(train[:TRAIN_SCORE_CHARS])
    sample = model.generate(sample_length, prompt=prompt, seed=seed)
    return NGramReport(n, smoothing, k, level, bits, ppl, train_bits, sample)


def report_html(report: NGramReport) -> str:
    k_text = f", k = {report.k:g}" if report.smoothing == "add-k" else ""
    return (
        f"<div class='gpt2lab-ngram-report'>"
        f"<b>{report.level}-level {report.n}-gram, {report.smoothing}{k_text}</b>"
        "<table>"
        f"<tr><td>held-out bits per character</td><td><b>{report.heldout_bits_per_char:.3f}</b></td></tr>"
        f"<tr><td>held-out perplexity per {report.symbol}</td><td>{report.heldout_perplexity:.2f}</td></tr>"
        f"<tr><td>training-text bits per character</td><td>{report.train_bits_per_char:.3f}</td></tr>"
        "</table>"
        f"<pre style='white-space:pre-wrap;border-left:3px solid #999;padding-left:8px'>"
        f"{html.escape(report.sample)}</pre></div>")


def ngram_explorer(train: str, valid: str, tokenizer=None, max_n: int = 10, sample_length: int = 300,
                   prompt: str = "", n: int = 3, smoothing: Smoothing = "kneser-ney"):
    """A widget: sliders for n, the smoothing and add-k's k (and the level when a ``tokenizer`` is
    given) next to a sample and the held-out bits/char and perplexity of that model.

    Returns a ``VBox`` whose ``.n``, ``.smoothing``, ``.k``, ``.seed``, ``.level`` attributes are
    the controls and ``.report`` the HTML widget with the result (``.last`` holds the
    :class:`NGramReport` behind it, or ``None`` when the setting is not possible).
    """
    import ipywidgets as widgets

    for name, text in (("train", train), ("valid", valid)):
        if not isinstance(text, str) or not text:
            raise ValueError(f"{name} must be a non-empty string, got {type(text).__name__} of length "
                             f"{len(text) if hasattr(text, '__len__') else '?'}")
    if not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be an integer >= 1, got {max_n!r}")
    if not 1 <= n <= max_n:
        raise ValueError(f"n must be between 1 and max_n={max_n}, got {n!r}")
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"smoothing={smoothing!r} is not known; use one of {SMOOTHINGS}")
    if tokenizer is not None and (not callable(tokenizer) or not hasattr(tokenizer, "decode")):
        raise TypeError(f"tokenizer must be a tokenizer object (e.g. lm.tokenizer) or None, "
                        f"got {type(tokenizer).__name__}")

    style = {"description_width": "initial"}
    n_slider = widgets.IntSlider(value=n, min=1, max=max_n, description="n (context = n-1)",
                                 continuous_update=False, style=style)
    smoothing_buttons = widgets.ToggleButtons(options=list(SMOOTHINGS), value=smoothing, description="smoothing",
                                              style=style)
    k_slider = widgets.FloatLogSlider(value=1.0, base=10, min=-3, max=1, step=0.25, description="add-k: k",
                                      continuous_update=False, style=style, disabled=smoothing != "add-k")
    seed_box = widgets.BoundedIntText(value=0, min=0, max=2**31 - 1, description="sample seed", style=style,
                                      layout=widgets.Layout(width="200px"))
    level_buttons = widgets.ToggleButtons(options=["char", "token"] if tokenizer is not None else ["char"],
                                          value="char", description="level", style=style)
    status = widgets.HTML()
    report = widgets.HTML()
    cache: dict[tuple, NGramLM] = {}

    def update(_change=None):
        k_slider.disabled = smoothing_buttons.value != "add-k"
        key = (level_buttons.value, n_slider.value, smoothing_buttons.value,
               k_slider.value if smoothing_buttons.value == "add-k" else None)
        status.value = "<i>fitting ...</i>"
        try:
            if key not in cache:
                cache[key] = NGramLM(n=n_slider.value, smoothing=smoothing_buttons.value, k=k_slider.value,
                                     level=level_buttons.value, tokenizer=tokenizer).fit(train)
            result = evaluate_ngram(train, valid, n_slider.value, smoothing_buttons.value, k_slider.value,
                                    level_buttons.value, tokenizer, sample_length, seed_box.value, prompt,
                                    model=cache[key])
        except ValueError as err:  # e.g. n too large to pack for a big token vocabulary
            box.last = None
            status.value = ""
            report.value = f"<b style='color:#c92a2a'>Not possible: {html.escape(str(err))}</b>"
            return
        box.last = result
        status.value = ""
        report.value = report_html(result)

    box = widgets.VBox([task_line(NGRAM_TASK), widgets.HBox([n_slider, level_buttons]), smoothing_buttons,
                        widgets.HBox([k_slider, seed_box]), status, report])
    box.n, box.smoothing, box.k, box.seed, box.level, box.report, box.last = (
        n_slider, smoothing_buttons, k_slider, seed_box, level_buttons, report, None)
    for control in (n_slider, smoothing_buttons, k_slider, seed_box, level_buttons):
        control.observe(update, names="value")
    update()
    return with_static_view(box)
