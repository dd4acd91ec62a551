"""The word-importance explorer of notebook 10: type a prompt, choose the search's settings, press
*explain*, and see which words the model's next-word prediction depends on.

The search (:func:`gpt2lab.word_importance`) takes seconds, so it runs only when the button is
pressed, shows a progress bar while it runs (the button is disabled meanwhile), and every answer is
kept: asking again for a prompt and settings seen before shows the kept answer at once.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

from gpt2lab.widgets.common import check_ranges, figure_png, task_line, with_static_view

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["IMPORTANCE_TASK", "importance_report_html", "importance_explorer"]

IMPORTANCE_TASK = ("press explain, then change one word of the prompt (or raise lambda) and explain again: "
                   "which words darken, and does the predicted next word change?")


def importance_report_html(result) -> str:
    """A :class:`~gpt2lab.explain.importance.WordImportance` as HTML: the shaded text and the ranking
    (class ``gpt2lab-importance``; the ranking line has class ``gpt2lab-ranking``)."""
    ranking = " &gt; ".join(html.escape(word.strip()) for word in result.ranking())
    return (f"<div class='gpt2lab-importance'>{result.to_html()}"
            f"<div class='gpt2lab-ranking'>most to least important: {ranking}</div></div>")


def importance_explorer(lm: LM, text: str = "The quality of mercy is not strained; it droppeth as the gentle", *,
                        steps: int = 80, samples: int = 4, rate: float = 0.1, run: bool = True):
    """An ipywidgets explorer of :func:`gpt2lab.word_importance`: a prompt box, sliders for steps
    (10-300), noise samples per step (1-16) and lambda (0.01-1), an *explain* button, and the
    shaded prompt with its ranking and bar chart. ``run``: explain the first prompt right away.
    The bounds keep the slowest search (300 steps x 16 samples) to about a minute on a laptop CPU; the
    search usually stops earlier, once the answer has settled.

    Returns a ``VBox``; ``.controls`` maps names to the controls (``"explain"`` is the button),
    ``.outputs`` names the status, progress, result and chart widgets, ``.explain()`` runs the search
    as the button does, and ``.last`` holds the shown :class:`WordImportance` (None before the first).
    """
    import ipywidgets as w

    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    check_ranges(steps=(steps, 10, 300), samples=(samples, 1, 16), rate=(rate, 0.01, 1))
    style = {"description_width": "70px"}
    controls = {
        "prompt": w.Text(value=text, description="prompt", style=style, layout=w.Layout(width="90%")),
        "steps": w.IntSlider(value=steps, min=10, max=300, step=10, description="steps", continuous_update=False,
                             style=style),
        "samples": w.IntSlider(value=samples, min=1, max=16, description="samples", continuous_update=False,
                               style=style),
        "rate": w.FloatLogSlider(value=rate, base=10, min=-2, max=0, step=0.1, description="lambda",
                                 continuous_update=False, style=style),
        "explain": w.Button(description="explain", button_style="primary"),
    }
    status = w.HTML()
    progress = w.Output()  # the search's own progress bar appears here while it runs
    shown = w.HTML()
    chart = w.Image(format="png", layout=w.Layout(width="720px"))
    answers: dict[tuple, object] = {}

    def key() -> tuple:
        return (controls["prompt"].value, controls["steps"].value, controls["samples"].value,
                round(controls["rate"].value, 6))

    def stale(_change=None):
        if box.last is not None and key() not in answers:
            text_now, steps_now, samples_now, rate_now = key()
            words = len(text_now.split())
            status.value = (f"<i class='gpt2lab-stale'>{words} word{'s' * (words != 1)}, {steps_now} steps, "
                            f"{samples_now} samples, lambda {rate_now:.3g}: press <b>explain</b></i>")
        elif key() in answers:
            show(answers[key()])

    def show(result):
        box.last = result
        shown.value = importance_report_html(result)
        chart.value = figure_png(result.plot())
        status.value = ""

    def explain(_button=None):
        from gpt2lab.explain.importance import word_importance

        text_now, steps_now, samples_now, rate_now = key()
        if not text_now.strip():
            status.value = "<b class='gpt2lab-error'>type a sentence first</b>"
            return
        if key() in answers:
            show(answers[key()])
            return
        controls["explain"].disabled = True
        status.value = f"<i class='gpt2lab-working'>explaining: up to {steps_now} steps ...</i>"
        try:
            with progress:
                result = word_importance(lm, text_now, steps=steps_now, samples=samples_now, rate=rate_now,
                                         progress=True)
        except ValueError as err:  # a prompt longer than the model's context, or one with no words
            status.value = f"<b class='gpt2lab-error'>{html.escape(str(err))}</b>"
            return
        finally:
            controls["explain"].disabled = False
            progress.clear_output()
        answers[key()] = result
        show(result)

    box = w.VBox([task_line(IMPORTANCE_TASK), controls["prompt"],
                  w.HBox([controls["steps"], controls["samples"], controls["rate"]]),
                  w.HBox([controls["explain"], status]), progress, shown, chart])
    box.controls, box.explain, box.last = controls, explain, None
    box.outputs = {"status": status, "progress": progress, "result": shown, "chart": chart}
    controls["explain"].on_click(explain)
    for name in ("prompt", "steps", "samples", "rate"):
        controls[name].observe(stale, names="value")
    if run:
        explain()
    return with_static_view(box)
