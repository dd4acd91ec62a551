"""Looking at attention: bertviz views, an offline HTML view and matplotlib heatmaps (drawing only).

The computation lives elsewhere: captures in :mod:`gpt2lab.attention.capture`, head statistics in
:mod:`gpt2lab.attention.heads`. Every view takes an :class:`~gpt2lab.attention.capture.AttentionCapture`
(from ``capture_attention``) and labels tokens the same way: as a person reads them, with newlines
shown as ``↵``.

* ``head_view`` / ``model_view``: bertviz's interactive views (Vig 2019, "A Multiscale Visualization
  of Attention in the Transformer Model"). bertviz loads d3, jQuery and require.js from a CDN, so
  they stay blank without internet. They also get slow on long inputs (they draw heads x tokens^2
  lines), so both refuse inputs above a size limit with a message offering ``truncate=True`` or
  ``layers=[...]``.
* ``offline_html`` / ``show_offline`` / ``save_offline_html``: a self-contained page (inline SVG and
  a little JavaScript, no network) with layer/head selectors, a heatmap and a lines view. Its
  script and styles are package data: ``gpt2lab/attention/static/offline_view.js`` and ``.css``.
* ``plot_head`` / ``plot_layer`` / ``plot_model``: matplotlib heatmaps of the weights;
  ``plot_head_stats``: heatmaps of head statistics (``HeadStats.plot()`` draws with it).

The ipywidgets explorer is :class:`gpt2lab.widgets.attention.AttentionExplorer`.
"""
from __future__ import annotations

import functools
import html
import json
import uuid
import warnings
from importlib import resources
from typing import TYPE_CHECKING, Literal

import torch

from gpt2lab import files
from gpt2lab.attention.capture import DEFAULT_MAX_TOKENS, AttentionCapture

if TYPE_CHECKING:
    from gpt2lab.attention.heads import HeadStats

__all__ = ["check_heads", "HEAD_VIEW_MAX_TOKENS", "HEAD_VIEW_MAX_LINES", "MODEL_VIEW_MAX_LINES",
           "OFFLINE_MAX_CELLS", "PLOT_MAX_TOKENS", "head_view", "model_view", "bertviz_html",
           "offline_fragment", "offline_html", "save_offline_html", "show_offline", "plot_head",
           "plot_layer", "plot_model", "plot_head_stats"]

# Size limits, measured in headless Chromium on a 2-core CPU (bench/bench_attention_views.py):
# bertviz draws one SVG line per (head, query, key); ~50k lines take ~2.5 s, 590k lines ~12 s.
HEAD_VIEW_MAX_TOKENS = 100
HEAD_VIEW_MAX_LINES = 125_000  # lines of the one layer shown: heads x tokens^2 (12 heads: ~100 tokens)
MODEL_VIEW_MAX_LINES = 200_000  # all thumbnails at once: layers x heads x tokens^2 (12x12 heads: 37 tokens)
OFFLINE_MAX_CELLS = 3_000_000  # offline page: lower-triangle weights of all layers embedded as JSON
PLOT_MAX_TOKENS = 80  # beyond this, heatmap tick labels become unreadable


# ----------------------------------------------------------------------------------------------
# shared helpers


def _check_capture(capture) -> AttentionCapture:
    if not isinstance(capture, AttentionCapture):
        raise TypeError(f"capture must be an AttentionCapture from gpt2lab.capture_attention(lm, text), "
                        f"got {type(capture).__name__}")
    return capture


def _select_layers(capture: AttentionCapture, layers) -> list[int]:
    if layers is None:
        return list(capture.layers)
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    chosen = list(layers)
    if not chosen:
        raise ValueError(f"layers must name at least one of the captured layers {capture.layers}")
    for layer in chosen:
        capture.layer_position(layer)  # raises a clear error for a layer not captured
    return chosen


def check_heads(capture: AttentionCapture, heads) -> list[int] | None:
    """None, or ``heads`` (an int or a list of ints) as a list checked against the capture's head count
    (ValueError naming the valid range)."""
    if heads is None:
        return None
    if isinstance(heads, int) and not isinstance(heads, bool):
        heads = [heads]
    chosen = list(heads)
    for head in chosen:
        if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < capture.n_heads:
            raise ValueError(f"heads={chosen} is out of range: there are {capture.n_heads} heads, "
                             f"use 0..{capture.n_heads - 1}")
    return chosen


def _sliced(capture: AttentionCapture, layers: list[int], n_tokens: int) -> torch.Tensor:
    """(len(layers), heads, n_tokens, n_tokens) weights; the first n tokens only see each other (causal)."""
    positions = [capture.layer_position(layer) for layer in layers]
    return capture.attention[positions][:, :, :n_tokens, :n_tokens]


def _fit_tokens(view: str, capture: AttentionCapture, layers: list[int], max_tokens: int | None,
                truncate: bool, max_lines: int | None = None, layers_drawn: int | None = None,
                heads_drawn: int | None = None) -> int:
    """How many tokens a view shows; refuses (ValueError) with the ways out when the input is too big.

    max_lines bounds what is drawn at once: layers_drawn (default: all layers) x heads x tokens^2.
    max_tokens=None lifts both limits (draw everything, however slow).
    """
    n = capture.n_tokens
    if max_tokens is None:
        return n
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int or None (no limit), got {max_tokens!r}")
    limit = max_tokens
    if max_lines is not None:  # the size that matters is layers x heads x tokens^2
        per_token2 = ((len(layers) if layers_drawn is None else layers_drawn)
                      * (capture.n_heads if heads_drawn is None else heads_drawn))
        limit = min(limit, int((max_lines / per_token2) ** 0.5))
    if n <= limit:
        return n
    if truncate:
        warnings.warn(f"{view}: showing the first {limit} of {n} tokens (truncate=True).", UserWarning, stacklevel=3)
        return max(limit, 1)
    ways = [f"truncate=True to show the first {limit} tokens"]
    if layers_drawn is None and max_lines is not None:
        ways.append(f"layers=[...] to show fewer than these {len(layers)} layers")
    ways.append("max_tokens=None to draw everything anyway (slow)")
    raise ValueError(
        f"{view}: this capture has {n} tokens, more than this view draws quickly (at most {limit} tokens with "
        f"{len(layers)} layer(s) x {capture.n_heads} heads; the drawing grows with tokens^2). Pass "
        + ", ".join(ways) + ", or use plot_layer()/offline_html() instead.")


# ----------------------------------------------------------------------------------------------
# bertviz


def _bertviz_attention(capture: AttentionCapture, layers: list[int], n_tokens: int, n_model_layers: int):
    """bertviz wants a list indexed by model layer of (1, heads, T, T) tensors.

    Layers not shown get an empty placeholder of the right head count (bertviz reads the head count
    from the first entry and then picks ``include_layers`` only), so layer numbers stay the model's.

    Weights are rounded to 3 decimals in float64 so the JSON bertviz embeds stays small
    (a float32 value prints with ~17 digits); line opacity needs no more.
    """
    weights = _sliced(capture, layers, n_tokens).double().round(decimals=3)
    per_layer = [torch.zeros(1, capture.n_heads, 0, 0, dtype=weights.dtype)] * n_model_layers
    for i, layer in enumerate(layers):
        per_layer[layer] = weights[i][None]
    return per_layer


def _bertviz_call(kind: Literal["head_view", "model_view"], capture: AttentionCapture, layers, max_tokens, truncate,
                  html_action: Literal["view", "return"], heads_drawn=None, **options):
    capture = _check_capture(capture)
    chosen = _select_layers(capture, layers)
    if html_action not in ("view", "return"):
        raise ValueError(f"html_action must be 'view' (display in the notebook) or 'return' (get the HTML object), "
                         f"got {html_action!r}")
    if kind == "head_view":
        n = _fit_tokens("head_view", capture, chosen, max_tokens, truncate, max_lines=HEAD_VIEW_MAX_LINES,
                        layers_drawn=1)
    else:
        n = _fit_tokens("model_view", capture, chosen, max_tokens, truncate, max_lines=MODEL_VIEW_MAX_LINES,
                        heads_drawn=heads_drawn)
    n_model_layers = max(capture.n_model_layers, max(chosen) + 1)
    attention = _bertviz_attention(capture, chosen, n, n_model_layers)
    labels = capture.labels[:n]
    import bertviz

    # prettify_tokens=False: our labels are already readable (bertviz would only strip "Ġ" itself)
    view = getattr(bertviz, kind)
    return view(attention, labels, include_layers=chosen, prettify_tokens=False, html_action=html_action, **options)


def head_view(capture: AttentionCapture, layers=None, layer: int | None = None, heads=None,
              max_tokens: int | None = HEAD_VIEW_MAX_TOKENS, truncate: bool = False,
              html_action: Literal["view", "return"] = "view"):
    """bertviz's head view: lines from each token to the tokens it attends to, one colour per head.

    layers: the captured layers to include (fewer layers = faster); layer: the one shown first;
    heads: heads ticked at start. Inputs above ``max_tokens`` tokens, or drawing more than
    ``HEAD_VIEW_MAX_LINES`` lines per layer, raise ValueError unless truncate=True (first tokens only);
    max_tokens=None lifts the limits. html_action="return" gives the HTML object instead of
    displaying it. Needs internet: bertviz loads its scripts from a CDN.
    """
    capture = _check_capture(capture)
    if layer is not None:
        capture.layer_position(layer)
        if layers is not None and layer not in _select_layers(capture, layers):
            raise ValueError(f"layer={layer} is not among layers={list(layers)}")
    return _bertviz_call("head_view", capture, layers, max_tokens, truncate, html_action, layer=layer,
                         heads=check_heads(capture, heads))


def model_view(capture: AttentionCapture, layers=None, heads=None, max_tokens: int | None = HEAD_VIEW_MAX_TOKENS,
               truncate: bool = False, html_action: Literal["view", "return"] = "view"):
    """bertviz's model view: a thumbnail per (layer, head); click one to see it with token labels.

    It draws layers x heads x tokens^2 lines, so the size limit counts all of them
    (``MODEL_VIEW_MAX_LINES``); ``layers=[...]``/``heads=[...]`` or truncate=True bring it down,
    max_tokens=None lifts the limit. Needs internet: bertviz loads its scripts from a CDN.
    """
    capture = _check_capture(capture)
    include_heads = check_heads(capture, heads)
    return _bertviz_call("model_view", capture, layers, max_tokens, truncate, html_action,
                         heads_drawn=None if include_heads is None else len(include_heads), include_heads=include_heads)


def bertviz_html(capture: AttentionCapture, view: Literal["head", "model"] = "head", **kwargs) -> str:
    """A standalone HTML page holding a bertviz view (``view`` = "head" or "model"), e.g. to save to a file."""
    if view not in ("head", "model"):
        raise ValueError(f"view must be 'head' or 'model', got {view!r}")
    function = head_view if view == "head" else model_view
    fragment = function(capture, html_action="return", **kwargs).data
    title = html.escape(f"bertviz {view} view - {capture.model_name}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
            f"<body>\n{fragment}\n</body></html>\n")


# ----------------------------------------------------------------------------------------------
# offline: self-contained HTML

@functools.cache
def _static(name: str) -> str:
    """A file of the offline view shipped as package data (gpt2lab/attention/static/), read once."""
    return resources.files("gpt2lab.attention").joinpath("static", name).read_text(encoding="utf-8")


def _triangle_thousandths(weights: torch.Tensor) -> list[int]:
    """Lower triangle of a (T, T) matrix, row by row, as integers in thousandths (compact JSON)."""
    rows, cols = torch.tril_indices(weights.shape[0], weights.shape[1])
    return (weights[rows, cols] * 1000).round().to(torch.int32).tolist()


def offline_fragment(capture: AttentionCapture, layers=None, layer: int | None = None, head: int | None = 0,
                     max_tokens: int | None = DEFAULT_MAX_TOKENS, truncate: bool = False) -> str:
    """The offline view as an HTML fragment (a <div>, <style> and <script>) with a unique id."""
    capture = _check_capture(capture)
    chosen = _select_layers(capture, layers)
    n = _fit_tokens("offline view", capture, chosen, max_tokens, truncate, max_lines=2 * OFFLINE_MAX_CELLS)
    start_layer = chosen[0] if layer is None else layer
    if start_layer not in chosen:
        raise ValueError(f"layer={layer} is not among the layers shown {chosen}")
    if head is not None:
        check_heads(capture, head)
    weights = _sliced(capture, chosen, n)
    labels = capture.labels[:n]
    root_id = f"g2l-attn-{uuid.uuid4().hex[:12]}"
    data = {
        "rootId": root_id,
        "labels": labels,
        "layers": chosen,
        "nHeads": capture.n_heads,
        "startLayer": chosen.index(start_layer),
        "startHead": -1 if head is None else head,
        "labelWidth": 14 + 7 * min(24, max(len(label) for label in labels)),
        "weights": [[_triangle_thousandths(weights[i, h]) for h in range(capture.n_heads)]
                    for i in range(len(chosen))],
    }
    # "</" inside the JSON would end the <script> early; escaping the slash keeps it valid JSON
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    cut = f" (first {n} of {capture.n_tokens} tokens)" if n < capture.n_tokens else ""
    title = html.escape(f"Attention of {capture.model_name or 'the model'}: {n} tokens{cut}")
    return (f"<div id='{root_id}' class='g2l-attn'>\n<style>{_static('offline_view.css')}</style>\n"
            f"<div><b>{title}</b></div>\n"
            f"<div class='controls'><label>Layer <select class='layer'></select></label>"
            f"<label>Head <select class='head'></select></label> <span class='status'></span></div>\n"
            f"<div class='panels'>"
            f"<div><div class='caption'>rows: query token, columns: key token; darker = more attention</div>"
            f"<svg class='heatmap' xmlns='http://www.w3.org/2000/svg'></svg></div>"
            f"<div><div class='caption'>lines: query (left) to key (right); hover a left token</div>"
            f"<svg class='lines' xmlns='http://www.w3.org/2000/svg'></svg></div>"
            f"</div>\n<script>{_static('offline_view.js').replace('__DATA__', payload)}</script>\n</div>")


def offline_html(capture: AttentionCapture, **kwargs) -> str:
    """A complete, self-contained HTML page of the offline view (no network needed to render it).

    Same options as ``offline_fragment``: layers, layer (shown first), head (None = mean of heads),
    max_tokens, truncate.
    """
    fragment = offline_fragment(capture, **kwargs)
    title = html.escape(f"Attention - {capture.model_name}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
            f"<body>\n{fragment}\n</body></html>\n")


def save_offline_html(capture: AttentionCapture, path, **kwargs):
    """Write ``offline_html(capture)`` to ``path`` (open it in any browser, offline). Returns the path."""
    from pathlib import Path

    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"path should end in .html, got {str(path)!r}")
    files.write_text(target, offline_html(capture, **kwargs))
    return target


def show_offline(capture: AttentionCapture, height: int | None = None, **kwargs):
    """Display the offline view in a notebook, inside an iframe so its script and styles stay separate."""
    from IPython.display import HTML

    page = offline_html(capture, **kwargs)
    n = min(capture.n_tokens, kwargs.get("max_tokens") or capture.n_tokens)
    if height is None:
        height = 160 + max(18 * n, 120 + 12 * n)
    # wrapped in a <div>: IPython warns about HTML that starts with <iframe>
    return HTML(f"<div class='g2l-attn-frame'><iframe srcdoc=\"{html.escape(page, quote=True)}\" "
                f"style='width:100%;height:{height}px;border:none' sandbox='allow-scripts'></iframe></div>")


# ----------------------------------------------------------------------------------------------
# matplotlib


def _heatmap(ax, weights: torch.Tensor, labels: list[str], title: str, show_labels: bool = True):
    image = ax.imshow(weights.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    if show_labels:
        positions = list(range(len(labels)))
        ax.set_xticks(positions, labels, rotation=90, fontsize=7)
        ax.set_yticks(positions, labels, fontsize=7)
        ax.set_xlabel("key (attended to)", fontsize=8)
        ax.set_ylabel("query (attending)", fontsize=8)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return image


def _plot_tokens(capture, max_tokens, truncate, layers) -> int:
    return _fit_tokens("plot", capture, layers, max_tokens, truncate)


def plot_head(capture: AttentionCapture, layer: int, head: int | None, ax=None,
              max_tokens: int | None = PLOT_MAX_TOKENS, truncate: bool = False):
    """Heatmap of one head (rows: query token, columns: key token); head=None shows the mean of the heads."""
    import matplotlib.pyplot as plt

    capture = _check_capture(capture)
    n = _plot_tokens(capture, max_tokens, truncate, [layer])
    if head is None:
        weights, name = capture.layer(layer).mean(dim=0), "mean of heads"
    else:
        weights, name = capture.head(layer, head), f"head {head}"
    if ax is None:
        size = 2.5 + 0.16 * n
        _, ax = plt.subplots(figsize=(size, size))
    _heatmap(ax, weights[:n, :n], capture.labels[:n], f"layer {layer}, {name}")
    ax.figure.tight_layout()
    return ax.figure


def plot_layer(capture: AttentionCapture, layer: int, heads=None, max_tokens: int | None = PLOT_MAX_TOKENS,
               truncate: bool = False, columns: int = 4):
    """One heatmap per head of ``layer`` (token labels on the first column and bottom row)."""
    import matplotlib.pyplot as plt

    capture = _check_capture(capture)
    n = _plot_tokens(capture, max_tokens, truncate, [layer])
    chosen = check_heads(capture, heads) or list(range(capture.n_heads))
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive int, got {columns!r}")
    columns = min(columns, len(chosen))
    rows = -(-len(chosen) // columns)
    cell = 1.2 + 0.08 * n
    fig, axes = plt.subplots(rows, columns, figsize=(cell * columns + 1, cell * rows + 1), squeeze=False)
    weights = capture.layer(layer)
    labels = capture.labels[:n]
    for i, ax in enumerate(axes.flat):
        if i >= len(chosen):
            ax.axis("off")
            continue
        _heatmap(ax, weights[chosen[i], :n, :n], labels, f"head {chosen[i]}", show_labels=n <= 40)
    fig.suptitle(f"Layer {layer} of {capture.model_name}: attention per head", fontsize=10)
    fig.tight_layout()
    return fig


def plot_model(capture: AttentionCapture, layers=None, max_tokens: int | None = 128, truncate: bool = False):
    """A small heatmap for every (layer, head): the whole model at a glance, like bertviz's model view.

    All heads are tiled into one image (rows: layers, columns: heads), which draws far faster than
    one matplotlib axes per head.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    capture = _check_capture(capture)
    chosen = _select_layers(capture, layers)
    n = _plot_tokens(capture, max_tokens, truncate, chosen)
    heads = capture.n_heads
    gap = max(1, n // 8)  # blank strip between tiles
    step = n + gap
    mosaic = np.full((len(chosen) * step - gap, heads * step - gap), np.nan)
    weights = _sliced(capture, chosen, n).numpy()
    for row in range(len(chosen)):
        for head in range(heads):
            mosaic[row * step:row * step + n, head * step:head * step + n] = weights[row, head]
    fig, ax = plt.subplots(figsize=(0.75 * heads + 1.5, 0.75 * len(chosen) + 1.2))
    cmap = plt.get_cmap("Blues").with_extremes(bad="white")  # white gaps between the tiles
    ax.imshow(mosaic, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    centres = [i * step + (n - 1) / 2 for i in range(max(heads, len(chosen)))]
    ax.set_xticks(centres[:heads], [f"h{h}" for h in range(heads)], fontsize=7)
    ax.set_yticks(centres[:len(chosen)], [f"L{layer}" for layer in chosen], fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"All heads of {capture.model_name} on {n} tokens (rows: layers, columns: heads)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_head_stats(stats: HeadStats, which=None):
    """One heatmap per statistic: rows are layers, columns heads, colour the value (numbers written in)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from gpt2lab.attention.heads import STAT_NAMES, HeadStats  # heads imports this module: import when drawing

    if not isinstance(stats, HeadStats):
        raise TypeError(f"stats must be a HeadStats from head_stats(lm, text), got {type(stats).__name__}")
    chosen = list(STAT_NAMES) if which is None else ([which] if isinstance(which, str) else list(which))
    for name in chosen:
        if name not in STAT_NAMES:
            raise ValueError(f"statistic {name!r} is not known; choose from {list(STAT_NAMES)}")
    n_layers, n_heads = stats.entropy.shape
    columns = min(2, len(chosen))
    rows = -(-len(chosen) // columns)
    width = max(4.0, 0.45 * n_heads + 1.8)
    height = max(3.0, 0.35 * n_layers + 1.4)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    annotate = n_layers * n_heads <= 150
    for ax, name in zip(axes.flat, chosen):
        values = getattr(stats, name)
        vmax = max(float(values.max()), 1e-9) if name == "entropy" else 1.0
        image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_title(STAT_NAMES[name], fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(n_heads))
        ax.set_yticks(range(n_layers), [str(layer) for layer in stats.layers])
        if annotate:
            for (i, j), value in np.ndenumerate(values):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if value < 0.6 * vmax else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for ax in list(axes.flat)[len(chosen):]:
        ax.axis("off")
    fig.suptitle(f"Head statistics of {stats.model_name} ({stats.n_tokens} tokens of text)", fontsize=10)
    fig.tight_layout()
    return fig
