"""Heatmaps of the residual-stream tools: the logit lens, direct logit attribution, activation patching.

Each ``plot_*`` takes the result object and returns the matplotlib figure (the results' ``.plot()``
methods call these).
"""
from __future__ import annotations

import numpy as np

from gpt2lab.attention.capture import display_label

__all__ = ["plot_logit_lens", "plot_dla", "plot_patching", "token_labels"]


def token_labels(tokens: list[str]) -> list[str]:
    """Axis labels for tokens: position and the token, newlines and tabs made visible."""
    return [f"{i}:{display_label(t)}" for i, t in enumerate(tokens)]


def _figure(ax, width: float, height: float):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=(width, height))


def _check(result, kind: str, name: str):
    from gpt2lab.interpret import attribution, lens, patching

    kinds = {"LogitLens": lens.LogitLens, "DirectLogitAttribution": attribution.DirectLogitAttribution,
             "PatchingResult": patching.PatchingResult}
    if not isinstance(result, kinds[kind]):
        raise TypeError(f"{name} takes a {kind} (from gpt2lab.interpret), got {type(result).__name__}")


def plot_logit_lens(lens, targets="final", ax=None, annotate: bool = True, max_tokens: int = 40):
    """Rows: the residual stream after 0..n_layer blocks; columns: positions (the last ``max_tokens``).
    Colour: the probability each row gives ``targets`` (see ``LogitLens.probability_of``); text: the
    row's top token there (cells are labelled when the grid is small enough to read)."""
    _check(lens, "LogitLens", "plot_logit_lens")
    values = lens.probability_of(targets)
    first = max(0, values.shape[1] - max_tokens)
    values = values[:, first:]
    n_rows, n_cols = values.shape
    fig, ax = _figure(ax, max(5.0, 0.55 * n_cols + 2.5), max(3.0, 0.3 * n_rows + 1.8))
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", origin="lower")
    ax.set_xticks(range(n_cols), token_labels(lens.tokens)[first:], rotation=70, fontsize=7)
    step = max(1, n_rows // 16)
    ax.set_yticks(range(0, n_rows, step), lens.layer_labels[::step], fontsize=7)
    if annotate and n_rows * n_cols <= 900:
        top = lens.logits[:, first:].argmax(dim=-1)
        for (row, col), value in np.ndenumerate(values):
            text = display_label(lens.token_text(int(top[row, col])))[:6]
            ax.text(col, row, text, ha="center", va="center", fontsize=5,
                    color="white" if np.nan_to_num(value) > 0.55 else "black")
    what = {"final": "the model's final prediction", "next": "the actual next token"}.get(targets, "the target")
    ax.set_title(f"Logit lens of {lens.model_name}: probability of {what}", fontsize=9)
    ax.set_xlabel("position")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return fig


def plot_dla(dla, ax=None):
    """One row per layer: a column per head, then the attention output bias and the MLP. Red pushes the
    target's logit up, blue down; the embeddings, the final LayerNorm bias and the total are in the title."""
    _check(dla, "DirectLogitAttribution", "plot_dla")
    grid = np.column_stack([dla.heads(), [dla.contributions[f"L{i}.attn_bias"] for i in range(dla.n_layer)],
                            dla.mlps()])
    fig, ax = _figure(ax, max(5.0, 0.5 * grid.shape[1] + 2.5), max(3.0, 0.32 * dla.n_layer + 1.8))
    limit = max(float(np.abs(grid).max()), 1e-9)
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [f"H{h}" for h in range(dla.n_head)] + ["bias", "MLP"], fontsize=7)
    ax.set_yticks(range(dla.n_layer), [f"L{i}" for i in range(dla.n_layer)], fontsize=7)
    if grid.size <= 300:
        for (row, col), value in np.ndenumerate(grid):
            ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=6)
    ax.axvline(dla.n_head - 0.5, color="black", lw=0.8)
    ax.set_title(f"Direct logit attribution to {dla.target_token!r} (logit {dla.logit:.2f}; embed "
                 f"{dla.contributions['embed']:.2f}, ln_f bias {dla.contributions['ln_f.bias']:.2f})", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="share of the logit")
    fig.tight_layout()
    return fig


def plot_patching(result, axes=None, max_tokens: int = 40):
    """Left: the residual stream patched at one (row, position); right: one head patched at every
    position. Colour: the share of the clean answer restored (1) or not (0)."""
    import matplotlib.pyplot as plt

    _check(result, "PatchingResult", "plot_patching")
    effect = result.effect[:, -max_tokens:]
    first = result.effect.shape[1] - effect.shape[1]
    n_layer, n_head = result.head_effect.shape
    if axes is None:
        width = max(5.0, 0.5 * effect.shape[1] + 2.0) + max(3.5, 0.4 * n_head + 2.0)
        fig, axes = plt.subplots(1, 2, figsize=(width, max(3.2, 0.3 * (n_layer + 1) + 2.2)),
                                 gridspec_kw={"width_ratios": [max(effect.shape[1], 4), max(n_head, 3)]})
    fig = axes[0].figure
    labels = [f"{i}:{display_label(c)}" if c == w else f"{i}:{display_label(c)}/{display_label(w)}"
              for i, (c, w) in enumerate(zip(result.clean_tokens, result.corrupt_tokens))][first:]
    for ax, values, title in ((axes[0], effect, "residual stream, one position patched"),
                              (axes[1], result.head_effect, "one head patched at every position")):
        image = ax.imshow(values, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto", origin="lower")
        ax.set_title(title, fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    axes[0].set_xticks(range(effect.shape[1]), labels, rotation=70, fontsize=6)
    step = max(1, (n_layer + 1) // 16)
    axes[0].set_yticks(range(0, n_layer + 1, step), result.layer_labels[::step], fontsize=7)
    axes[1].set_xticks(range(n_head), [f"H{h}" for h in range(n_head)], fontsize=7)
    axes[1].set_yticks(range(0, n_layer, step), [f"L{i}" for i in range(0, n_layer, step)], fontsize=7)
    fig.suptitle(f"Activation patching on {result.model_name}: logit of {result.target_token!r} "
                 f"(clean {result.clean_logit:.2f}, corrupt {result.corrupt_logit:.2f})", fontsize=9)
    fig.tight_layout()
    return fig
