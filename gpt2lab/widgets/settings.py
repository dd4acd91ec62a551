"""The parameter-settings explorer of notebook 09: one continuation of a prompt, generated with the
settings on the sliders, measured (repetition, loops, perplexity), judged by an incoherence filter and
compared with a reference text by parts of speech.

:func:`measure_continuation` does the work (through :func:`gpt2lab.experiments.sweep.run_sweep`, so a
setting seen before is read from the generation cache), :func:`continuation_html` shows it, and
:func:`settings_explorer` wires the two to the controls.
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gpt2lab.widgets.common import check_ranges, figure_png, live_explorer, task_line

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["SETTINGS_MODES", "SETTINGS_TASK", "generation_params", "measure_continuation", "continuation_html",
           "settings_explorer"]

SETTINGS_MODES = ("sample-top-p", "sample-top-k", "sample", "greedy")
SETTINGS_TASK = ("pick greedy and move the seed: the text stays the same; pick sample and raise the temperature "
                 "towards 3: perplexity and the filter score climb as the text turns to word salad.")
_USES = {"temperature": ("sample-top-p", "sample-top-k", "sample"), "top_p": ("sample-top-p",),
         "top_k": ("sample-top-k",), "seed": ("sample-top-p", "sample-top-k", "sample")}


def generation_params(mode: str, temperature: float, top_p: float, top_k: int) -> dict:
    """The generation parameters of ``mode``: only those the mode uses (greedy uses none)."""
    if mode not in SETTINGS_MODES:
        raise ValueError(f"mode={mode!r} is not one of {SETTINGS_MODES}")
    chosen = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
    return {"mode": mode, **{k: v for k, v in chosen.items() if mode in _USES[k]}}


def measure_continuation(lm: LM, prompt: str, params: Mapping, seed: int = 0, max_length: int = 60, scorer=None):
    """Generate one continuation of ``prompt`` with ``params`` and measure it.

    Returns (row, score, flagged): the measured row of :func:`~gpt2lab.experiments.sweep.run_sweep`
    (text, distinct-n, repeated 3-grams, loop share, perplexity, parts of speech) and, when a fitted
    :class:`~gpt2lab.experiments.incoherence.IncoherenceScorer` is given, its score and verdict (else None;
    the verdict is None too for a scorer without a threshold).
    """
    from gpt2lab.experiments import sweep

    one = sweep.run_sweep(lm, {"explorer": dict(params)}, {"prompt": prompt}, seeds=[seed],
                          defaults={"max_length": max_length}, progress=False)
    if scorer is None:
        return one.iloc[0], None, None
    flagged = None if scorer.threshold is None else bool(scorer.flag(one).iloc[0])
    return one.iloc[0], float(scorer.score(one).iloc[0]), flagged


def continuation_html(row, score: float | None = None, flagged: bool | None = None) -> str:
    """The continuation and its measurements as HTML (classes ``gpt2lab-continuation``, ``gpt2lab-measures``)."""
    measures = [("distinct-2", f"{row.distinct_2:.2f}"), ("repeated 3-grams", f"{row.repeated_3gram_share:.2f}"),
                ("loop share", f"{row.loop_share:.2f}"), ("perplexity", f"{row.perplexity:.1f}")]
    if score is not None:
        measures.append(("filter score", f"{score:.2f}"))
    if flagged is not None:
        measures.append(("verdict", "FLAGGED as incoherent" if flagged else "looks fine"))
    cells = "".join(f"<tr><td>{name}</td><td><b>{value}</b></td></tr>" for name, value in measures)
    return (f"<pre class='gpt2lab-continuation' style='white-space:pre-wrap;border-left:3px solid #999;"
            f"padding-left:8px'>{html.escape(row.text.strip())}</pre>"
            f"<table class='gpt2lab-measures'>{cells}</table>")


def settings_explorer(lm: LM, prompt: str, reference: str | None = None, scorer=None, *, max_length: int = 60,
                      mode: str = "sample-top-p", temperature: float = 1.0, top_p: float = 0.9, top_k: int = 40,
                      seed: int = 0, reference_label: str = "reference"):
    """An ipywidgets explorer: mode, temperature, top_p, top_k and seed controls next to one continuation
    of ``prompt`` (``max_length`` new tokens), its measurements, the ``scorer``'s verdict (when given)
    and its parts of speech beside those of ``reference`` (when given).

    Returns a ``VBox``; ``.controls`` maps names to the controls, ``.outputs`` names the HTML and image
    widgets, ``.refresh()`` recomputes and ``.last`` holds (row, score, flagged) of what is shown.
    Controls a mode does not use are disabled.
    """
    import ipywidgets as w

    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be an integer >= 1, got {max_length!r}")
    if mode not in SETTINGS_MODES:
        raise ValueError(f"mode={mode!r} is not one of the explorer's modes {list(SETTINGS_MODES)}")
    check_ranges(temperature=(temperature, 0.2, 3.0), top_p=(top_p, 0.05, 1.0), top_k=(top_k, 1, 200),
                 seed=(seed, 0, 20))
    style, layout = {"description_width": "90px"}, w.Layout(width="360px")
    controls = {
        "mode": w.Dropdown(options=list(SETTINGS_MODES), value=mode, description="mode", style=style),
        "temperature": w.FloatSlider(value=temperature, min=0.2, max=3.0, step=0.1, description="temperature",
                                     continuous_update=False, style=style, layout=layout),
        "top_p": w.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top_p",
                               continuous_update=False, style=style, layout=layout),
        "top_k": w.IntSlider(value=top_k, min=1, max=200, description="top_k", continuous_update=False,
                             style=style, layout=layout),
        "seed": w.IntSlider(value=seed, min=0, max=20, description="seed", continuous_update=False, style=style,
                            layout=layout),
    }
    shown = w.HTML(layout=w.Layout(width="520px"))
    chart = w.Image(format="png", layout=w.Layout(width="620px"))
    status = w.HTML()

    def refresh(*_):
        choice = controls["mode"].value
        for name, modes in _USES.items():
            controls[name].disabled = choice not in modes
        status.value = "<i>generating ...</i>"
        params = generation_params(choice, controls["temperature"].value, controls["top_p"].value,
                                   controls["top_k"].value)
        row, score, flagged = measure_continuation(lm, prompt, params, controls["seed"].value, max_length, scorer)
        box.last = (row, score, flagged)
        shown.value = continuation_html(row, score, flagged)
        chart.value = _pos_png(row.text, reference, reference_label)
        status.value = ""

    box = w.VBox([task_line(SETTINGS_TASK),
                  w.HBox([w.VBox(list(controls.values()) + [status]), shown]), chart])
    return live_explorer(box, controls, refresh, {"text": shown, "chart": chart})


def _pos_png(text: str, reference: str | None, reference_label: str) -> bytes:
    import matplotlib.pyplot as plt

    from gpt2lab.experiments import sweep

    texts = {reference_label: reference} if reference else {}
    texts["this continuation"] = text
    fig, ax = plt.subplots(figsize=(8, 3.2))
    sweep.plot_pos_comparison(texts, ax=ax)
    fig.tight_layout()
    return figure_png(fig)
