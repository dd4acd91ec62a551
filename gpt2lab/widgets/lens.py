"""The logit-lens explorer of notebook 07: pick a row of the residual stream (the embeddings, or after
block i) and a position, and see the tokens that row points to there.

:func:`lens_top` does the reading (the ``top_k`` likeliest tokens of one row and position of a
:class:`~gpt2lab.interpret.lens.LogitLens`), :func:`lens_table_html` and :func:`lens_figure` show it, and
:func:`lens_explorer` wires them to a row slider and a position menu. The lens is computed once; every
interaction only reads it.
"""
from __future__ import annotations

import html
import warnings
from typing import TYPE_CHECKING

import torch

from gpt2lab.attention.capture import display_label
from gpt2lab.interpret.lens import LogitLens, logit_lens
from gpt2lab.widgets.common import check_ranges, figure_png, task_line, with_static_view

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["LENS_TASK", "lens_top", "lens_table_html", "lens_figure", "lens_explorer"]

LENS_TASK = ("keep the last position and drag the row slider up from embed: watch the top tokens change until, "
             "at the last row, they are the model's own prediction; then pick an earlier position.")


def lens_top(lens: LogitLens, row: int, position: int, top_k: int = 10) -> list[tuple[int, str, float]]:
    """The ``top_k`` likeliest next tokens read from row ``row`` at ``position`` of ``lens``, likeliest
    first, as (token id, text, probability). The last row's are the model's own top tokens."""
    probs = torch.softmax(lens.logits[row, position].float(), dim=-1)
    top = probs.topk(min(top_k, probs.numel()))
    return [(int(i), lens.token_text(int(i)), float(p)) for p, i in zip(top.values, top.indices)]


def lens_table_html(lens: LogitLens, row: int, position: int, top: list) -> str:
    """The tokens of :func:`lens_top` as an HTML table (class ``gpt2lab-lens``; each row carries its
    token id in ``data-token``)."""
    rows = "".join(f"<tr data-token='{i}'><td>{rank}</td><td><code>{html.escape(repr(display_label(t))[1:-1])}"
                   f"</code></td><td>{p:.3f}</td></tr>" for rank, (i, t, p) in enumerate(top, 1))
    label = html.escape(repr(display_label(lens.tokens[position])))
    return (f"<div class='gpt2lab-lens' data-row='{row}' data-position='{position}'>"
            f"<b>{html.escape(lens.layer_labels[row])}</b>, position {position} ({label}): the likeliest next tokens"
            f"<table style='font-size:90%'><thead><tr><th>#</th><th>token</th><th>p</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


def lens_figure(lens: LogitLens, row: int, position: int, top: list):
    """A bar chart of the tokens of :func:`lens_top` (probability 0..1)."""
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6.5, 2.8))
    ax.bar(range(len(top)), [p for _, _, p in top])
    ax.set_xticks(range(len(top)), [repr(display_label(t))[1:-1] for _, t, _ in top], rotation=45, fontsize=8)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title(f"{lens.layer_labels[row]}, position {position} ({display_label(lens.tokens[position])!r})",
                 fontsize=9)
    with warnings.catch_warnings():  # a token in a script the font lacks is drawn as a box, not a warning
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        figure.tight_layout()
    return figure


def lens_explorer(lm_or_lens: LM | LogitLens, text: str | None = None, layer: int = 0, position: int = -1,
                  top_k: int = 10):
    """An ipywidgets explorer over ``logit_lens(lm, text)`` (or a :class:`LogitLens` you already have):
    a row slider (0 = the embeddings, i = after block i), a position menu, the ``top_k`` likeliest
    next tokens read there as a table and a chart.

    Returns a ``VBox``; ``.controls`` maps names to the controls, ``.outputs`` names the HTML and image
    widgets, ``.refresh()`` redraws, ``.lens`` is the lens and ``.shown`` the (id, text, probability)
    rows shown. Raises ValueError for a starting row or position out of range.
    """
    import ipywidgets as w

    lens = lm_or_lens if isinstance(lm_or_lens, LogitLens) else logit_lens(lm_or_lens, text)
    n_tokens = len(lens.tokens)
    check_ranges(layer=(layer, 0, lens.n_rows - 1), position=(position, -n_tokens, n_tokens - 1),
                 top_k=(top_k, 1, 50))
    style = {"description_width": "70px"}
    controls = {
        "row": w.IntSlider(value=layer, min=0, max=lens.n_rows - 1, description="row", continuous_update=False,
                           style=style),
        "position": w.Dropdown(options=[(f"{i}: {display_label(t)!r}", i) for i, t in enumerate(lens.tokens)],
                               value=position % n_tokens, description="position", style=style),
    }
    row_name = w.HTML()
    table = w.HTML(layout=w.Layout(width="330px"))
    chart = w.Image(format="png", layout=w.Layout(width="560px"))

    def refresh(*_):
        row, where = controls["row"].value, controls["position"].value
        box.shown = lens_top(lens, row, where, top_k)
        row_name.value = f"<i>{html.escape(lens.layer_labels[row])}</i>"
        table.value = lens_table_html(lens, row, where, box.shown)
        chart.value = figure_png(lens_figure(lens, row, where, box.shown))

    box = w.VBox([task_line(LENS_TASK), w.HBox([controls["row"], row_name, controls["position"]]),
                  w.HBox([table, chart], layout=w.Layout(align_items="flex-start"))])
    box.controls, box.refresh, box.lens, box.shown = controls, refresh, lens, []
    box.outputs = {"table": table, "chart": chart}
    for control in controls.values():
        control.observe(refresh, names="value")
    refresh()
    return with_static_view(box)
