"""Drawing what :mod:`gpt2lab.explain` computes: HTML and matplotlib views of word importance,
attributions, deletion curves and faithfulness reports.

The result objects keep one-line delegations here (``WordImportance.plot()``, ``.to_html()``,
``Attributions.plot()``, ``DeletionResult.plot()``, ``_repr_html_`` for Jupyter), so a change of
look is made in this module alone. matplotlib and pandas are imported when something is drawn.
"""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gpt2lab.explain.attribution import Attributions, DeletionResult, FaithfulnessReport
    from gpt2lab.explain.importance import WordImportance

__all__ = ["importance_html", "plot_importance", "draw_shaded_text", "attributions_html", "plot_attributions",
           "plot_deletion", "faithfulness_html"]


# ----------------------------------------------------------------------------- word importance

def importance_html(result: WordImportance, cmap: str = "Reds") -> str:
    """The text of ``result`` with every word shaded by its importance (darker = more important; hover a
    word for its sigma and importance), and a caption with the predicted next piece. ``cmap``: a
    matplotlib colour map name. Returns an HTML string (``WordImportance._repr_html_`` shows it)."""
    import matplotlib

    colours = matplotlib.colormaps[cmap]
    parts, cursor = [], 0
    for _word, (start, end), imp, sig in zip(result.words, result.spans, result.importance, result.sigma):
        lead = len(result.text[start:end]) - len(result.text[start:end].lstrip())
        parts.append(html.escape(result.text[cursor:start + lead]))
        r, g, b, _ = colours(0.1 + 0.8 * float(imp))
        ink = "#fff" if imp > 0.6 else "#000"
        parts.append(f'<span title="sigma={sig:.3g}, importance={imp:.2f}" style="background:'
                     f'rgb({int(r * 255)},{int(g * 255)},{int(b * 255)});color:{ink};padding:1px 2px;'
                     f'border-radius:3px">{html.escape(result.text[start + lead:end])}</span>')
        cursor = end
    parts.append(html.escape(result.text[cursor:]))
    body = "".join(parts).replace("\n", "<br>")
    caption = (f"next piece predicted: <b>{html.escape(repr(result.prediction))}</b> "
               f"(p={result.prediction_prob:.2f}); darker = more important; {result.steps_run} steps x "
               f"{result.settings['samples']} samples, {result.seconds:.2f} s")
    return (f'<div style="font-family:sans-serif;line-height:1.9">{body}'
            f'<div style="font-size:80%;color:#555">{caption}</div></div>')


def plot_importance(result: WordImportance, ax=None, show_loss: bool = False, cmap: str = "Reds"):
    """Bar chart of importance per word (0..1, with sigma on a second axis) above the text shaded by
    importance; with ``show_loss`` a third panel shows the loss trace. ``ax``: draw only the bars into
    this axes. Returns the matplotlib figure."""
    import matplotlib
    import matplotlib.pyplot as plt

    colours = matplotlib.colormaps[cmap]
    if ax is None:
        rows = 3 if show_loss else 2
        width = min(14.0, max(6.0, 0.7 * len(result.words) + 2))
        lines = math.ceil(sum(len(w) + 3 for w in result.words) / (8 * width))  # ~8 characters per inch
        text_height = 0.3 + 0.35 * lines
        fig, axes = plt.subplots(rows, 1, figsize=(width, 3.0 + text_height + 1.8 * (rows - 2)),
                                 gridspec_kw={"height_ratios": [3, text_height] + ([1.8] if show_loss else [])})
    else:
        fig, axes = ax.figure, [ax]
    bar_ax = axes[0]
    x = np.arange(len(result.words))
    bar_ax.bar(x, result.importance, color=[colours(0.1 + 0.8 * v) for v in result.importance],
               edgecolor="black", linewidth=0.5)
    bar_ax.set_xticks(x, result.words, rotation=45 if len(result.words) > 8 else 0, ha="right"
                      if len(result.words) > 8 else "center")
    bar_ax.set_ylabel("importance (0..1)")
    bar_ax.set_ylim(0, 1.05)
    twin = bar_ax.twinx()
    twin.plot(x, result.sigma, "o", color="tab:blue", markersize=4)
    twin.set_ylabel("sigma (noise tolerated)", color="tab:blue")
    twin.set_ylim(0, result.scale * 1.05)
    bar_ax.set_title(f"which words drive the next piece {result.prediction!r}?")
    if len(axes) > 1:
        draw_shaded_text(axes[1], result.words, result.importance, colours)
    if show_loss and len(axes) > 2:
        axes[2].plot(result.loss_trace, lw=1)
        axes[2].axvline(result.best_step, color="grey", ls=":", label=f"best step {result.best_step}")
        axes[2].set_xlabel("step")
        axes[2].set_ylabel("loss")
        axes[2].legend(loc="upper right")
    fig.tight_layout()
    return fig


def draw_shaded_text(ax, words, importance, colours, fontsize: int = 12) -> None:
    """Draw ``words`` into ``ax`` left to right, wrapping, each on a background coloured by its importance
    (0..1, through the colour map ``colours``)."""
    ax.set_axis_off()
    renderer = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    x, y, line_height = 0.0, 1.0, None
    for word, imp in zip(words, importance):
        t = ax.text(x, y, word, fontsize=fontsize, transform=ax.transAxes, va="top",
                    color="white" if imp > 0.6 else "black",
                    bbox=dict(boxstyle="round,pad=0.25", facecolor=colours(0.1 + 0.8 * float(imp)),
                              edgecolor="none"))
        extent = t.get_window_extent(renderer)
        if line_height is None:
            line_height = 1.8 * extent.height / max(box.height, 1.0)
        # the coloured box adds its padding on both sides, plus a small gap
        width = (extent.width + renderer.points_to_pixels(fontsize * 0.8)) / max(box.width, 1.0)
        if x > 0 and x + width > 1.0:  # wrap to the next line
            x, y = 0.0, y - line_height
            t.set_position((x, y))
        x += width


# ----------------------------------------------------------------------------- attributions and faithfulness

def attributions_html(attributions: Attributions) -> str:
    """A caption naming the target and a table: one row per word, one column per method."""
    caption = (f"<p>scores for the next piece <b>{html.escape(repr(attributions.target))}</b> "
               f"(higher = more important)</p>")
    return caption + attributions.to_dataframe().to_html(float_format=lambda v: f"{v:.3g}")


def plot_attributions(attributions: Attributions, ax=None):
    """Heat map: methods (rows) x words (columns), each method's scores divided by its largest |score|,
    so every row lies in [-1, 1]. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    frame = attributions.normalised()
    words = attributions.words
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.75 * len(words) + 2), 0.5 * frame.shape[1] + 1.6))
    image = ax.imshow(frame.T.values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(words)), words, rotation=45 if len(words) > 8 else 0)
    ax.set_yticks(range(frame.shape[1]), frame.columns)
    ax.set_title(f"which words drive {attributions.target!r}? (each row scaled to its largest |score|)")
    ax.figure.colorbar(image, ax=ax, fraction=0.03)
    ax.figure.tight_layout()
    return ax.figure


def plot_deletion(result: DeletionResult, ax=None):
    """Deletion curves: the movement of the prediction (KL in nats, or the drop of log p(target)) after
    removing the k most important words of each method, against the range and mean of random orders.
    Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    k = np.arange(len(result.words) + 1)
    if len(result.random_curves):
        ax.fill_between(k, result.random_curves.min(axis=0), result.random_curves.max(axis=0), color="grey",
                        alpha=0.2, label="random orders (range)")
        ax.plot(k, result.random_curves.mean(axis=0), color="grey", ls="--",
                label=f"random (area {result.random_area:.3g})")
    areas = result.areas
    for method, curve in result.curves.items():
        ax.plot(k, curve, marker="o", ms=3, label=f"{method} (area {areas[method]:.3g})")
    ax.set_xlabel(f"words {'removed' if result.mode == 'remove' else 'blanked'}, most important first")
    ax.set_ylabel("KL(full || after removal)" if result.metric == "kl" else "drop of log p(target)")
    ax.set_title(f"deletion curves: {result.text[:50]!r}")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax.figure.tight_layout()
    return ax.figure


def faithfulness_html(report: FaithfulnessReport) -> str:
    """The most faithful method and the table of deletion areas, as HTML."""
    return (f"<p>most faithful here: <b>{html.escape(report.best_method)}</b> (deletion metric {report.metric}, "
            f"mode {report.mode})</p>" + report.table.to_html(float_format=lambda v: f"{v:.3g}"))
