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
           "INDUCTION_MARGIN", "SEEN_MIN_COUNT", "seen_tokens", "repeated_random_tokens", "measure_induction",
           "uniform_baselines", "HeadStats", "head_stats"]

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


INDUCTION_MARGIN = 4.0  # an induction head scores at least this many times a uniform head's induction score
SEEN_MIN_COUNT = 5  # a token must occur this often in the course's training text to count as seen
_SEEN_CACHE: dict[tuple, list[int]] = {}


def seen_tokens(tokenizer, text: str | None = None, min_count: int = SEEN_MIN_COUNT) -> list[int]:
    """Ids of the non-special tokens that occur at least ``min_count`` times in ``text``.

    text: default the course's training text (the first 90 % of tinyshakespeare, which the embedded
    model trained on and GPT-2's web text covers many times over). A small model trained on one text
    has never seen most of its vocabulary (their embeddings are still near their random start), and a
    random sequence of such tokens tests nothing but that. Cached per tokenizer for the default text.
    """
    key = (getattr(tokenizer, "name_or_path", ""), len(tokenizer), min_count) if text is None else None
    if key is not None and key in _SEEN_CACHE:
        return _SEEN_CACHE[key]
    if text is None:
        from gpt2lab import data

        text = data.tinyshakespeare_split()[0]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    # verbose=False: a whole book is longer than the context, which is fine for counting tokens
    ids = np.asarray(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"], dtype=np.int64)
    counts = np.bincount(ids, minlength=len(tokenizer)) if ids.size else np.zeros(len(tokenizer), dtype=np.int64)
    seen = [int(i) for i in np.flatnonzero(counts >= min_count) if int(i) not in special]
    if key is not None:
        _SEEN_CACHE[key] = seen
    return seen


def repeated_random_tokens(lm: LM, length: int = 50, n_sequences: int = 4,
                           seed: int = 0, pool="seen") -> tuple[torch.Tensor, int, int]:
    """``n_sequences`` rows of: a beginning-of-text token, then ``length`` random tokens, twice.

    Returns (ids tensor (n_sequences, 1 + 2*length) int64 on the CPU, start=1, period=length). Random
    tokens (no special ones) make the second half predictable only by copying from the first, which is
    what induction heads do (Olsson et al. 2022). pool: which tokens to draw from: "seen" (default:
    tokens the model has seen in training, :func:`seen_tokens`), "all" (every non-special id of the
    vocabulary) or a sequence of ids. Raises ValueError for length < 2, n_sequences < 1, sequences
    longer than the model's context, or an empty pool.
    """
    check_lm(lm)
    for name, value, low in (("length", length, 2), ("n_sequences", n_sequences, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if 1 + 2 * length > lm.context_length:
        raise ValueError(f"length={length} gives {1 + 2 * length} tokens, more than the context length "
                         f"{lm.context_length} of {lm.name!r}; use length <= {(lm.context_length - 1) // 2}")
    tokenizer = lm.tokenizer
    vocab = min(lm.model.config.vocab_size, len(tokenizer))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    if isinstance(pool, str):
        if pool not in ("seen", "all"):
            raise ValueError(f"pool must be 'seen', 'all' or a sequence of token ids, got {pool!r}")
        ids = seen_tokens(tokenizer) if pool == "seen" else range(vocab)
    else:
        ids = [int(i) for i in pool]
        if any(not 0 <= i < vocab for i in ids):
            raise ValueError(f"pool holds ids outside the vocabulary 0..{vocab - 1}")
    allowed = torch.tensor([i for i in ids if i < vocab and i not in special], dtype=torch.long)
    if len(allowed) == 0:
        raise ValueError("no tokens to draw from: the pool is empty (or holds only special tokens)")
    generator = torch.Generator().manual_seed(seed)
    chunks = allowed[torch.randint(len(allowed), (n_sequences, length), generator=generator)]
    bos = bos_id(tokenizer)
    first = torch.full((n_sequences, 1), bos, dtype=torch.long)
    return torch.cat([first, chunks, chunks], dim=1), 1, length


def measure_induction(lm: LM, length: int = 50, n_sequences: int = 4, seed: int = 0, pool="seen") -> np.ndarray:
    """(layers, heads) induction scores of ``lm`` in [0, 1], averaged over ``n_sequences`` random repeated
    sequences (:func:`repeated_random_tokens`, drawn from ``pool``), captured in one batched forward
    pass. Compare them with :func:`uniform_baselines` ("induction"): a head that spreads evenly
    scores about 1/(1.5 x length) without copying anything."""
    ids, start, period = repeated_random_tokens(lm, length=length, n_sequences=n_sequences, seed=seed, pool=pool)
    attention = attention_weights(lm, ids)  # (batch, layers, heads, T, T); no padding: every row is as long
    scores = [induction_score(attention[b], period=period, start=start) for b in range(attention.shape[0])]
    return np.mean(scores, axis=0)


def uniform_baselines(n_tokens: int, induction_length: int | None = None) -> dict[str, float]:
    """What each statistic gives for a head that spreads its weight evenly over every token it may see.

    n_tokens: length of the text the text statistics were measured on; induction_length: length of
    the repeated chunk (the sequence is 1 + 2 x that). A head is only remarkable by how far it is
    from these: the previous-token and first-token shares of an even head are far from 0 on a short
    text, and its induction score falls with the chunk length without any copying.
    """
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 2:
        raise ValueError(f"n_tokens must be an int >= 2, got {n_tokens!r}")
    even = torch.ones(n_tokens, n_tokens, dtype=torch.float64).tril()
    even = (even / even.sum(-1, keepdim=True))[None, None]
    out = {"entropy": float(attention_entropy(even)[0, 0]), "first_token": float(first_token_share(even)[0, 0]),
           "previous_token": float(previous_token_score(even)[0, 0])}
    if induction_length is not None:
        m = 1 + 2 * induction_length
        rep = torch.ones(m, m, dtype=torch.float64).tril()
        rep = (rep / rep.sum(-1, keepdim=True))[None, None]
        out["induction"] = float(induction_score(rep, period=induction_length, start=1)[0, 0])
    return out


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
    induction_length: int = 0

    def baselines(self) -> dict[str, float]:
        """Each statistic for a head spreading evenly (see :func:`uniform_baselines`)."""
        return uniform_baselines(self.n_tokens, self.induction_length or None)

    def above_baseline(self, stat: Stat):
        """(layers, heads): how many times the uniform baseline each head's ``stat`` is (not for entropy)."""
        if stat not in STAT_NAMES or stat == "entropy":
            raise ValueError(f"stat must be one of {[s for s in STAT_NAMES if s != 'entropy']}, got {stat!r}")
        return getattr(self, stat) / self.baselines()[stat]

    def induction_heads(self, margin: float = INDUCTION_MARGIN):
        """The heads whose induction score is at least ``margin`` times a uniform head's, strongest first
        (a DataFrame like :meth:`top`, with a ``times_baseline`` column; empty when there are none)."""
        if not self.induction_length:
            raise ValueError("these statistics were made without an induction_length; use head_stats()")
        frame = self.to_frame()
        frame["times_baseline"] = frame["induction"] / self.baselines()["induction"]
        found = frame[frame["times_baseline"] >= margin]
        return found.sort_values("induction", ascending=False).reset_index(drop=True)

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
                     model_name=lm.name, text=capture.text, n_tokens=capture.n_tokens,
                     induction_length=induction_length)
