"""The attention explorer: type a text, pick a layer and a head, see the heatmap (works offline)."""
from __future__ import annotations

import html
import warnings
from typing import TYPE_CHECKING

from gpt2lab.attention.capture import capture_attention
from gpt2lab.attention.views import check_heads, plot_head
from gpt2lab.widgets.common import figure_png, task_line, with_static_view

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["ATTENTION_TASK", "AttentionExplorer", "attention_explorer"]

ATTENTION_TASK = ("step through the layers and heads: find a head where every token looks at the one just before it, "
                  "and one where a repeated word looks at what followed its first occurrence.")


class AttentionExplorer:
    """Type a text, pick a layer and a head, see the heatmap (works offline).

    Attributes a notebook (or a test) can drive: ``text_box``, ``layer_selector``, ``head_selector``;
    ``capture`` holds the current AttentionCapture, ``figure`` the last heatmap drawn and ``image`` the
    widget showing it (a PNG).
    """

    def __init__(self, lm: LM, text: str = "The cat sat on the mat. The cat sat on the", layer: int = 0,
                 head: int | None = 0, max_tokens: int = 48):
        import ipywidgets as widgets

        self.lm = lm
        self.max_tokens = max_tokens
        self.capture = capture_attention(lm, text, max_tokens=max_tokens)
        self.capture.layer_position(layer)
        if head is not None:
            check_heads(self.capture, head)
        self.figure = None
        self.text_box = widgets.Textarea(value=text, description="Text", continuous_update=False,
                                         layout=widgets.Layout(width="95%", height="60px"))
        self.layer_selector = widgets.Dropdown(options=[(f"layer {i}", i) for i in self.capture.layers],
                                               value=layer, description="Layer")
        self.head_selector = widgets.Dropdown(
            options=[("mean of heads", -1)] + [(f"head {h}", h) for h in range(self.capture.n_heads)],
            value=-1 if head is None else head, description="Head")
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.text_box.observe(self._on_text, names="value")
        self.layer_selector.observe(self._on_choice, names="value")
        self.head_selector.observe(self._on_choice, names="value")
        self.widget = widgets.VBox([task_line(ATTENTION_TASK), self.text_box,
                                    widgets.HBox([self.layer_selector, self.head_selector]),
                                    self.status, self.image])
        with_static_view(self.widget)
        self.redraw()

    def _on_text(self, change):
        text = change["new"]
        if not text.strip():
            self.status.value = "<i>type some text</i>"
            return
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            self.capture = capture_attention(self.lm, text, max_tokens=self.max_tokens)
        self.redraw()

    def _on_choice(self, change):
        self.redraw()

    def redraw(self):
        """Draw the heatmap for the current text, layer and head."""
        import matplotlib.pyplot as plt

        head = self.head_selector.value
        capture = self.capture
        note = f"{capture.n_tokens} tokens"
        if capture.truncated_from:
            note += f" (first {capture.n_tokens} of {capture.truncated_from})"
        self.status.value = html.escape(note)
        figure = plot_head(capture, self.layer_selector.value, None if head < 0 else head,
                           max_tokens=None)
        if self.figure is not None:
            plt.close(self.figure)
        self.figure = figure
        self.image.value = figure_png(figure)  # also closes it: pyplot does not show it a second time

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def attention_explorer(lm: LM, text: str = "The cat sat on the mat. The cat sat on the", layer: int = 0,
                       head: int | None = 0, max_tokens: int = 48) -> AttentionExplorer:
    """An ipywidgets explorer: text box, layer and head selectors, heatmap of the chosen head."""
    return AttentionExplorer(lm, text=text, layer=layer, head=head, max_tokens=max_tokens)

