"""The induction-heads explorer of notebook 06: slide over the steps of the toy's training and pick a
head, to see its attention on a repeated random sequence and its induction and previous-token scores
at that step.

Everything shown was recorded while the toy trained (:class:`~gpt2lab.model.induction.InductionRun`:
the scores and every head's attention on one ``[BOS, A, A]`` sequence at each measured step), so an
interaction only draws: :func:`head_at` reads one head at one step, :func:`head_figure` draws it and
:func:`induction_explorer` wires them to a step slider and a head menu.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpt2lab.model.induction import InductionRun
from gpt2lab.widgets.common import figure_png, live_explorer, task_line

__all__ = ["INDUCTION_TASK", "HeadAtStep", "head_at", "uniform_scores", "head_html", "head_figure",
           "induction_explorer"]

INDUCTION_TASK = ("pick the induction head (layer 1) and drag the training step from the start: at the step where "
                  "its score jumps, a stripe appears in the second copy; then pick the layer-0 head it relies on.")


@dataclass
class HeadAtStep:
    """One head at one recorded step: its attention on the run's ``[BOS, A, A]`` sequence (T, T) and its
    induction and previous-token scores there (as ``run.induction`` / ``run.previous_token`` hold them)."""

    step: int
    layer: int
    head: int
    pattern: np.ndarray
    induction: float
    previous_token: float


def head_at(run: InductionRun, step: int, layer: int, head: int) -> HeadAtStep:
    """Head ``head`` of layer ``layer`` at the recorded step ``step`` of ``run``. Raises ValueError for
    a step that was not recorded or a run without recorded attention patterns."""
    if run.patterns is None:
        raise ValueError("this run recorded no attention patterns (train it with train_induction_toy)")
    if step not in run.steps:
        raise ValueError(f"step {step} was not recorded; recorded: {run.steps[0]} .. {run.steps[-1]}")
    i = run.steps.index(step)
    return HeadAtStep(step, layer, head, run.patterns[i, layer, head], float(run.induction[i, layer, head]),
                      float(run.previous_token[i, layer, head]))


def uniform_scores(run: InductionRun) -> tuple[float, float]:
    """(induction, previous-token) scores of a head that spreads its attention evenly over what it may
    see, averaged over the task's segment lengths: the baselines."""
    import torch

    from gpt2lab.attention.heads import induction_score, previous_token_score

    def even(n):
        weights = torch.ones(n, n).tril()
        return (weights / weights.sum(-1, keepdim=True))[None, None]

    periods = run.task.periods
    return (float(np.mean([induction_score(even(1 + 2 * p), p, 1)[0, 0] for p in periods])),
            float(np.mean([previous_token_score(even(1 + 2 * p))[0, 0] for p in periods])))


def head_html(shown: HeadAtStep, uniform: tuple[float, float]) -> str:
    """The head's scores as HTML (class ``gpt2lab-head-scores``; the scores in ``gpt2lab-induction-score``
    and ``gpt2lab-previous-score``)."""
    return (f"<div class='gpt2lab-head-scores' data-step='{shown.step}' data-head='L{shown.layer}.H{shown.head}'>"
            f"step {shown.step}, layer {shown.layer} head {shown.head}: induction score "
            f"<b class='gpt2lab-induction-score'>{shown.induction:.2f}</b>, previous-token score "
            f"<b class='gpt2lab-previous-score'>{shown.previous_token:.2f}</b> "
            f"(a uniform head: {uniform[0]:.2f} and {uniform[1]:.2f})</div>")


def head_figure(run: InductionRun, shown: HeadAtStep):
    """The head's attention on the recorded sequence (copies split by orange lines) beside its two
    scores over training, the chosen step marked."""
    import matplotlib.pyplot as plt

    period = (len(run.pattern_ids) - 1) // 2
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6), gridspec_kw={"width_ratios": [1, 1.3]})
    left.imshow(shown.pattern, cmap="Blues", vmin=0, vmax=1)
    for line in (left.axvline, left.axhline):
        line(period + 0.5, color="orange", lw=1)
    left.set_title(f"L{shown.layer}.H{shown.head} at step {shown.step}", fontsize=9)
    left.set_xlabel("key")
    left.set_ylabel("query")
    right.plot(run.steps, run.induction[:, shown.layer, shown.head], ".-", label="induction score")
    right.plot(run.steps, run.previous_token[:, shown.layer, shown.head], ".-", label="previous-token score")
    right.axvline(shown.step, color="gray", lw=1)
    right.set_ylim(0, 1)
    right.set_xlabel("training step")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def induction_explorer(run: InductionRun, step: int | None = None, head: tuple[int, int] | None = None):
    """An ipywidgets explorer over a trained toy's ``run``: a training-step slider (the steps measured),
    a head menu (every head; the induction head marked) and the chosen head's attention on the recorded
    ``[BOS, A, A]`` sequence and its scores at that step. Starts at ``step`` (default: the first) and
    ``head`` (default: ``run.induction_head``).

    Returns a ``VBox``; ``.controls`` maps names to the controls, ``.outputs`` names the HTML and image
    widgets, ``.refresh()`` redraws and ``.last`` is the :class:`HeadAtStep` shown.
    """
    import ipywidgets as w

    config = run.model.config
    heads = [(layer, h) for layer in range(config.n_layer) for h in range(config.n_head)]
    head = run.induction_head if head is None else tuple(head)
    if head not in heads:
        raise ValueError(f"head must be a (layer, head) of this model, one of {heads}, got {head!r}")
    step = run.steps[0] if step is None else step
    if step not in run.steps:
        raise ValueError(f"step={step!r} was not recorded; recorded: {run.steps[0]} .. {run.steps[-1]}")
    marks = {run.induction_head: " (induction head)", run.previous_token_head: " (previous-token head)"}
    style = {"description_width": "100px"}
    controls = {
        "step": w.SelectionSlider(options=list(run.steps), value=step, description="training step",
                                  continuous_update=False, style=style, layout=w.Layout(width="520px")),
        "head": w.Dropdown(options=[(f"layer {lh[0]}, head {lh[1]}{marks.get(lh, '')}", lh) for lh in heads],
                           value=head, description="head", style=style),
    }
    scores = w.HTML()
    chart = w.Image(format="png", layout=w.Layout(width="760px"))
    uniform = uniform_scores(run)

    def refresh(*_):
        box.last = head_at(run, controls["step"].value, *controls["head"].value)
        scores.value = head_html(box.last, uniform)
        chart.value = figure_png(head_figure(run, box.last))

    box = w.VBox([task_line(INDUCTION_TASK), w.HBox([controls["step"], controls["head"]]), scores, chart])
    return live_explorer(box, controls, refresh, {"scores": scores, "chart": chart})
