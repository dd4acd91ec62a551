"""The logit-lens explorer: pick a layer and a position, see the tokens the residual stream there points to."""
from __future__ import annotations

import warnings

from gpt2lab.attention.capture import display_label
from gpt2lab.interpret.lens import LogitLens, logit_lens

__all__ = ["LensExplorer", "lens_explorer"]


class LensExplorer:
    """A layer slider and a position menu over a :class:`LogitLens`, with a bar chart of the ``top_k``
    likeliest tokens read from the residual stream there. Attributes a test can drive:
    ``layer_slider``, ``position_menu``; ``figure`` is the last chart drawn and ``shown`` its tokens."""

    def __init__(self, lens: LogitLens, layer: int = 0, position: int = -1, top_k: int = 10):
        import ipywidgets as widgets

        if not isinstance(lens, LogitLens):
            raise TypeError(f"lens must be a LogitLens (from gpt2lab.interpret.logit_lens), got {type(lens).__name__}")
        n_tokens = len(lens.tokens)
        if not -n_tokens <= position < n_tokens:
            raise ValueError(f"position={position} is out of range for {n_tokens} tokens")
        if not 0 <= layer < lens.n_rows:
            raise ValueError(f"layer={layer} is out of range: rows 0..{lens.n_rows - 1}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        self.lens, self.top_k = lens, top_k
        self.figure, self.shown = None, []
        self.layer_slider = widgets.IntSlider(value=layer, min=0, max=lens.n_rows - 1, description="row",
                                              continuous_update=False)
        self.position_menu = widgets.Dropdown(
            options=[(f"{i}: {display_label(t)!r}", i) for i, t in enumerate(lens.tokens)],
            value=position % n_tokens, description="position")
        self.output = widgets.Output()
        self.layer_slider.observe(lambda change: self.redraw(), names="value")
        self.position_menu.observe(lambda change: self.redraw(), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.layer_slider, self.position_menu]), self.output])
        self.redraw()

    def redraw(self):
        """Draw the top tokens of the chosen row and position."""
        import matplotlib.pyplot as plt
        import torch
        from IPython import get_ipython
        from IPython.display import clear_output, display

        row, position = self.layer_slider.value, self.position_menu.value
        probs = torch.softmax(self.lens.logits[row, position], dim=-1)
        top = probs.topk(min(self.top_k, probs.numel()))
        self.shown = [display_label(self.lens.token_text(int(i))) for i in top.indices]
        figure, ax = plt.subplots(figsize=(7, 2.8))
        ax.bar(range(len(self.shown)), top.values.numpy())
        ax.set_xticks(range(len(self.shown)), [repr(t)[1:-1] for t in self.shown], rotation=45, fontsize=8)
        ax.set_ylabel("probability")
        ax.set_ylim(0, 1)
        ax.set_title(f"{self.lens.layer_labels[row]}, position {position} "
                     f"({display_label(self.lens.tokens[position])!r}): the {len(self.shown)} likeliest next tokens",
                     fontsize=9)
        if self.figure is not None:
            plt.close(self.figure)
        self.figure = figure
        with warnings.catch_warnings():  # a token in a script the font lacks is drawn as a box, not a warning
            warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
            figure.tight_layout()
            figure.canvas.draw()
            if get_ipython() is not None:
                with self.output:
                    clear_output(wait=True)
                    display(figure)
        plt.close(figure)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def lens_explorer(lm_or_lens, text=None, layer: int = 0, position: int = -1, top_k: int = 10) -> LensExplorer:
    """An explorer over ``logit_lens(lm, text)``, or over a :class:`LogitLens` you already have."""
    lens = lm_or_lens if isinstance(lm_or_lens, LogitLens) else logit_lens(lm_or_lens, text)
    return LensExplorer(lens, layer=layer, position=position, top_k=top_k)
