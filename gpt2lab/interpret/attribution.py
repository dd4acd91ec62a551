"""Direct logit attribution: how much each component writes the target token's logit, directly.

The final residual stream at the last position is a sum of component outputs (Elhage et al. 2021):

    x = embed + sum_l ( sum_h head_l,h + attn_bias_l ) + sum_l mlp_l

The final LayerNorm centres x, divides it by its standard deviation s and applies a gain g and a bias b.
Holding s at the value it had in this run (it depends on all of x, so it is "frozen"), the LayerNorm
is linear, and the target's logit splits exactly into one share per component,

    share(c) = ((c - mean(c)) / s * g) . W_U[target],      plus the constant b . W_U[target],

which sum to the model's logit. A component with a large positive share pushes the target up by
what it writes into the stream, not through later layers: that is "direct". Head outputs are
``z_h @ W_O[h]``, the head's slice of the merged heads times its rows of the output projection.
GPT-2-family models only (others raise a clear error before any work).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gpt2lab.interpret.stream import gpt2_lm, record_stream, target_id

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["DirectLogitAttribution", "direct_logit_attribution"]


@dataclass
class DirectLogitAttribution:
    """The target's logit at the last position, split into components.

    contributions: ordered ``{name: share}`` in the order the components write to the stream:
        ``"embed"``, then per layer ``"L{l}.H{h}"`` for each head, ``"L{l}.attn_bias"`` (the attention
        output bias) and ``"L{l}.mlp"``, and last ``"ln_f.bias"`` (the final LayerNorm's bias).
    logit: the model's own logit for the target (float32); ``sum(contributions.values())`` equals it
        up to float rounding (the shares are computed in float64).
    """

    contributions: dict
    logit: float
    target: int
    target_token: str
    tokens: list[str]
    n_layer: int
    n_head: int
    model_name: str = ""

    @property
    def total(self) -> float:
        return float(sum(self.contributions.values()))

    def heads(self) -> np.ndarray:
        """(n_layer, n_head) shares of the attention heads."""
        return np.array([[self.contributions[f"L{layer}.H{head}"] for head in range(self.n_head)]
                         for layer in range(self.n_layer)])

    def mlps(self) -> np.ndarray:
        """(n_layer,) shares of the MLPs."""
        return np.array([self.contributions[f"L{layer}.mlp"] for layer in range(self.n_layer)])

    def top(self, k: int = 5, by_size: bool = True) -> list[tuple[str, float]]:
        """The ``k`` components with the largest shares (by absolute size, or the most positive)."""
        key = (lambda item: -abs(item[1])) if by_size else (lambda item: -item[1])
        return sorted(self.contributions.items(), key=key)[:k]

    def to_frame(self):
        """One row per component: name, share."""
        import pandas as pd

        return pd.DataFrame(list(self.contributions.items()), columns=["component", "share"])

    def plot(self, ax=None):
        """Heatmap of heads, attention biases and MLPs per layer (see :func:`gpt2lab.interpret.views.plot_dla`)."""
        from gpt2lab.interpret.views import plot_dla

        return plot_dla(self, ax=ax)


@torch.no_grad()
def direct_logit_attribution(lm: LM, text, target) -> DirectLogitAttribution:
    """Split ``lm``'s logit for ``target`` (a token id or a one-token string) after ``text`` (a string or
    token ids) into the direct shares of the embeddings, every head, every attention output bias, every
    MLP and the final LayerNorm bias, with the final LayerNorm's scale taken from this run.

    Raises TypeError / ValueError (naming what is supported) for non-GPT-2 models, a target that is not
    one token, or an empty or too long text.
    """
    model = gpt2_lm(lm)
    target = target_id(lm, target)
    record = record_stream(lm, text)
    cfg = model.config
    n_layer, n_head = cfg.n_layer, cfg.n_head
    head_dim = cfg.n_embd // n_head
    ln_f = model.transformer.ln_f
    x = record.resid[-1, -1].double()
    scale = torch.sqrt(x.var(unbiased=False) + ln_f.eps)
    direction = ln_f.weight.double() * model.get_output_embeddings().weight[target].double()  # g * W_U[target]

    def share(component: torch.Tensor) -> float:
        return float(((component - component.mean()) / scale) @ direction)

    contributions = {"embed": share(record.resid[0, -1].double())}
    for layer, block in enumerate(model.transformer.h):
        w_out = block.attn.c_proj.weight.double()  # Conv1D: (in, out), so a head's rows are its input slice
        z = record.z[layer, -1].double()
        for head in range(n_head):
            cols = slice(head * head_dim, (head + 1) * head_dim)
            contributions[f"L{layer}.H{head}"] = share(z[cols] @ w_out[cols])
        contributions[f"L{layer}.attn_bias"] = share(block.attn.c_proj.bias.double())
        contributions[f"L{layer}.mlp"] = share(record.mlp[layer, -1].double())
    contributions["ln_f.bias"] = float(ln_f.bias.double() @ model.get_output_embeddings().weight[target].double())
    return DirectLogitAttribution(contributions=contributions, logit=float(record.logits[-1, target]),
                                  target=target, target_token=lm.tokenizer.decode([target]), tokens=record.tokens,
                                  n_layer=n_layer, n_head=n_head, model_name=lm.name)
