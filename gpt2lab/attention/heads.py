"""Statistics that tell attention heads apart, one number per (layer, head).

Each takes attention weights shaped (layers, heads, query, key) - the ``attention`` of an
:class:`~gpt2lab.attention.capture.AttentionCapture` - or a capture itself, and returns a (layers, heads)
numpy array. Query position 0 can only attend to itself, so it is left out of every average.

* ``attention_entropy``: how spread out a head's attention is, in bits (0 = all on one token,
  log2(n) = evenly over n tokens).
* ``first_token_share``: weight on the very first token. Trained GPT-2 heads park much of their
  attention there when they have nothing better to do (an "attention sink": Xiao et al. 2023,
  "Efficient Streaming Language Models with Attention Sinks").
* ``previous_token_score``: weight on the token just before the query (the "previous-token heads"
  that induction heads build on).
* ``induction_score``: on a random token sequence repeated twice, weight a query in the second copy
  puts on the token that *followed* its earlier occurrence. Heads that do this ("induction heads":
  Olsson et al. 2022, "In-context Learning and Induction Heads", Anthropic) let a model continue a
  pattern it has seen before in the same text; the repeated-random-tokens test is theirs.

``head_stats(lm, text)`` measures all four and returns a :class:`HeadStats` with ``plot()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from gpt2lab.attention import views
from gpt2lab.attention.capture import AttentionCapture, attention_weights, capture_attention, check_lm
from gpt2lab.tokens import bos_id

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["Stat", "STAT_NAMES", "attention_entropy", "first_token_share", "previous_token_score", "induction_score",
           "repeated_random_tokens", "measure_induction", "HeadStats", "head_stats"]

Stat = Literal["entropy", "first_token", "previous_token", "induction"]
STAT_NAMES: dict[Stat, str] = {
    "entropy": "attention entropy (bits)",
    "first_token": "share of attention on the first token",
    "previous_token": "previous-token score",
    "induction": "induction score (repeated random tokens)",
}


def _weights(attention) -> torch.Tensor:
    """(layers, heads, T, T) float64 tensor from a capture, tensor or array, checked to be attention."""
    if isinstance(attention, AttentionCapture):
        attention = attention.attention
    if isinstance(attention, np.ndarray):
        attention = torch.from_numpy(attention)
    if not isinstance(attention, torch.Tensor):
        raise TypeError(f"attention must be an AttentionCapture or a (layers, heads, query, key) tensor, "
                        f"got {type(attention).__name__}")
    if attention.dim() != 4 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention must have shape (layers, heads, query, key) with query == key, "
                         f"got {tuple(attention.shape)}")
    weights = attention.detach().to("cpu", torch.float64)
    if weights.shape[-1] < 2:
        raise ValueError("attention covers a single token; head statistics need at least 2 tokens")
    row_sums = weights.sum(dim=-1)
    if (weights < -1e-6).any() or not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-3):
        raise ValueError("attention rows must be probability distributions (non-negative, each row summing to 1); "
                         f"row sums range from {float(row_sums.min()):.4f} to {float(row_sums.max()):.4f}")
    return weights


def attention_entropy(attention) -> np.ndarray:
    """(layers, heads): mean entropy in bits of each head's attention rows (query positions 1..T-1).

    attention: an AttentionCapture or weights (layers, heads, T, T) whose rows are distributions.
    Raises TypeError for another type, ValueError for another shape, a single token or rows that are
    not probability distributions (the same for every statistic here).
    """
    weights = _weights(attention)[..., 1:, :]
    logs = torch.where(weights > 0, torch.log2(weights.clamp_min(1e-300)), torch.zeros_like(weights))
    entropy = -(weights * logs).sum(dim=-1)  # (layers, heads, T-1); 0 * log 0 counts as 0
    return entropy.mean(dim=-1).numpy()


def first_token_share(attention) -> np.ndarray:
    """(layers, heads): mean weight, in [0, 1], each head puts on token 0 (query positions 1..T-1)."""
    weights = _weights(attention)
    return weights[..., 1:, 0].mean(dim=-1).numpy()


def previous_token_score(attention) -> np.ndarray:
    """(layers, heads): mean weight, in [0, 1], each head puts on the token right before the query
    (query positions 1..T-1)."""
    weights = _weights(attention)
    return torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1).mean(dim=-1).numpy()


def induction_score(attention, period: int, start: int = 0) -> np.ndarray:
    """Mean weight on "the token after my previous occurrence", for a sequence that repeats.

    The tokens at ``start .. start+period-1`` are repeated at ``start+period .. start+2*period-1``
    (``start`` = 1 when a beginning-of-text token comes first). A query at position q in the
    repeat saw the same token at q - period; an induction head attends to the one after it,
    q - period + 1. Averaged over every query of the repeat: (layers, heads), in [0, 1] (Olsson et
    al. 2022). Raises TypeError for a period or start that is not an int, ValueError when they leave
    no repeated tokens.
    """
    weights = _weights(attention)
    n_tokens = weights.shape[-1]
    for name, value in (("period", period), ("start", start)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if period < 2:
        raise ValueError(f"period must be at least 2 (the repeated chunk's length), got {period}")
    if start < 0 or start + period >= n_tokens:
        raise ValueError(f"start={start} and period={period} leave no repeated tokens in a sequence of "
                         f"{n_tokens}; need start + period < {n_tokens}")
    queries = torch.arange(start + period, min(n_tokens, start + 2 * period))
    targets = queries - period + 1
    return weights[..., queries, targets].mean(dim=-1).numpy()


def repeated_random_tokens(lm: LM, length: int = 50, n_sequences: int = 4,
                           seed: int = 0) -> tuple[torch.Tensor, int, int]:
    """``n_sequences`` rows of: a beginning-of-text token, then ``length`` random tokens, twice.

    Returns (ids tensor (n_sequences, 1 + 2*length) int64 on the CPU, start=1, period=length). Random
    tokens (no special ones) make the second half predictable only by copying from the first, which is
    what induction heads do (Olsson et al. 2022). Raises ValueError for length < 2, n_sequences < 1 or
    sequences longer than the model's context.
    """
    check_lm(lm)
    for name, value, low in (("length", length, 2), ("n_sequences", n_sequences, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if 1 + 2 * length > lm.context_length:
        raise ValueError(f"length={length} gives {1 + 2 * length} tokens, more than the context length "
                         f"{lm.context_length} of {lm.name!r}; use length <= {(lm.context_length - 1) // 2}")
    tokenizer = lm.tokenizer
    vocab = lm.model.config.vocab_size
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    allowed = torch.tensor([i for i in range(min(vocab, len(tokenizer))) if i not in special])
    generator = torch.Generator().manual_seed(seed)
    chunks = allowed[torch.randint(len(allowed), (n_sequences, length), generator=generator)]
    bos = bos_id(tokenizer)
    first = torch.full((n_sequences, 1), bos, dtype=torch.long)
    return torch.cat([first, chunks, chunks], dim=1), 1, length


def measure_induction(lm: LM, length: int = 50, n_sequences: int = 4, seed: int = 0) -> np.ndarray:
    """(layers, heads) induction scores of ``lm`` in [0, 1], averaged over ``n_sequences`` random repeated
    sequences (:func:`repeated_random_tokens`), captured in one batched forward pass. Olsson et al.
    2022 call heads scoring well above 1/length induction heads."""
    ids, start, period = repeated_random_tokens(lm, length=length, n_sequences=n_sequences, seed=seed)
    attention = attention_weights(lm, ids)  # (batch, layers, heads, T, T); no padding: every row is as long
    scores = [induction_score(attention[b], period=period, start=start) for b in range(attention.shape[0])]
    return np.mean(scores, axis=0)


@dataclass
class HeadStats:
    """The four statistics of every head, each a (layers, heads) array; rows are model layers."""

    entropy: np.ndarray
    first_token: np.ndarray
    previous_token: np.ndarray
    induction: np.ndarray
    layers: list[int]
    model_name: str = ""
    text: str = ""
    n_tokens: int = 0

    def to_frame(self):
        """One row per (layer, head) with a column per statistic."""
        import pandas as pd

        rows = []
        for i, layer in enumerate(self.layers):
            for head in range(self.entropy.shape[1]):
                rows.append({"layer": layer, "head": head,
                             **{name: float(getattr(self, name)[i, head]) for name in STAT_NAMES}})
        return pd.DataFrame(rows)

    def top(self, stat: Stat, k: int = 5):
        """The ``k`` heads with the highest value of ``stat`` (one of STAT_NAMES), as a DataFrame."""
        if stat not in STAT_NAMES:
            raise ValueError(f"stat must be one of {list(STAT_NAMES)}, got {stat!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        return self.to_frame().sort_values(stat, ascending=False).head(k).reset_index(drop=True)

    def plot(self, stats=None):
        """Heatmaps (layers x heads) of the chosen statistics (default: all four); see ``views.plot_head_stats``."""
        return views.plot_head_stats(self, stats)


def head_stats(lm: LM, text: str, layers=None, induction_length: int | None = None, induction_sequences: int = 4,
               seed: int = 0, max_tokens: int = 256) -> HeadStats:
    """Entropy, first-token share and previous-token score on ``text``; induction on repeated random tokens.

    layers: None (all) or the model layers to measure; max_tokens: ``text`` is cut to this many tokens
    (see :func:`~gpt2lab.attention.capture.capture_attention`). induction_length: length of the random
    chunk that is repeated (default 50, less when the model's context is shorter than 101 tokens);
    induction_sequences, seed: how many random sequences, and their seed. Returns a :class:`HeadStats`
    of (layers, heads) arrays. Raises ValueError for a text of one token and for the arguments
    ``capture_attention`` and ``repeated_random_tokens`` refuse.
    """
    check_lm(lm)
    if induction_length is None:
        induction_length = min(50, (lm.context_length - 1) // 2)
    capture = capture_attention(lm, text, layers=layers, max_tokens=max_tokens)
    if capture.n_tokens < 2:
        raise ValueError(f"text {text!r} is a single token; head statistics need at least 2")
    induction = measure_induction(lm, length=induction_length, n_sequences=induction_sequences, seed=seed)
    induction = induction[capture.layers]  # same layers as the text statistics
    return HeadStats(entropy=attention_entropy(capture), first_token=first_token_share(capture),
                     previous_token=previous_token_score(capture), induction=induction, layers=capture.layers,
                     model_name=lm.name, text=capture.text, n_tokens=capture.n_tokens)
