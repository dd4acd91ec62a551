"""Capturing attention weights: the one path every tool takes to read them from the model.

``attention_weights(lm, rows)`` runs the model once, with the eager attention kernel (the fused
kernels return no weights), on a batch of token rows and returns every head's weights as one
tensor (batch, layers, heads, query, key). Everything that looks at attention goes through it:
``capture_attention`` (one text, for the views in :mod:`gpt2lab.attention.views`), the head
statistics of :mod:`gpt2lab.attention.heads`, the attention scores of
:mod:`gpt2lab.explain.attribution` and the model reference the by-hand block is checked against
(:func:`gpt2lab.attention.by_hand.model_reference`).

``capture_attention(lm, text)`` returns the tokens as a person reads them (byte-level markers
``Ġ``/``Ċ`` shown as space/newline) together with the weights shaped (layers, heads, query, key).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from gpt2lab.basics.bpe import readable_token
from gpt2lab.tokens import pad_id, right_pad

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["DEFAULT_MAX_TOKENS", "check_lm", "readable_tokens", "display_label", "attention_weights",
           "AttentionCapture", "capture_attention"]

DEFAULT_MAX_TOKENS = 256  # attention grows with tokens^2 per head; 256 keeps GPT-2 small's capture ~40 MB


# ----------------------------------------------------------------------------------------------
# input checks, shared with gpt2lab.attention.by_hand and .heads


def check_lm(lm: LM) -> None:
    """Raises TypeError unless ``lm`` looks like a :class:`gpt2lab.LM` (has ``model`` and ``tokenizer``)."""
    if not (hasattr(lm, "model") and hasattr(lm, "tokenizer")):
        raise TypeError(f"lm must be a gpt2lab.LM (from gpt2lab.load(...)), got {type(lm).__name__}")


def n_layers(lm: LM) -> int:
    """The number of transformer blocks of ``lm``."""
    cfg = lm.model.config
    return int(getattr(cfg, "n_layer", None) or cfg.num_hidden_layers)


def check_layer(lm: LM, layer, name: str = "layer") -> int:
    """``layer`` checked to be a block index of ``lm`` (TypeError / ValueError naming the valid range)."""
    n = n_layers(lm)
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise TypeError(f"{name} must be an int between 0 and {n - 1}, got {layer!r}")
    if not 0 <= layer < n:
        raise ValueError(f"{name}={layer} is out of range: {lm.name!r} has {n} layers, so use 0..{n - 1}")
    return layer


def check_layers(lm: LM, layers) -> list[int]:
    """None (all layers), an int or a list of distinct block indices, as a list."""
    n = n_layers(lm)
    if layers is None:
        return list(range(n))
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    try:
        chosen = list(layers)
    except TypeError:
        raise TypeError(f"layers must be None (all), an int or a list of ints in 0..{n - 1}, got {layers!r}") from None
    if not chosen:
        raise ValueError(f"layers must name at least one layer in 0..{n - 1}, got an empty list")
    for value in chosen:
        check_layer(lm, value, name="layers")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"layers={chosen} names a layer twice")
    return chosen


def given_ids(lm: LM, ids) -> list[int]:
    """Token ids passed instead of a text, checked: ints within the vocabulary (a list or a 1-D tensor)."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.dim() != 1 or ids.dtype.is_floating_point:
            raise TypeError(f"token ids must be a 1-D integer tensor, got shape {tuple(ids.shape)} {ids.dtype}")
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise TypeError(f"text must be a string or a list of token ids, got {type(ids).__name__}"
                        + (" of non-integers" if isinstance(ids, (list, tuple)) else ""))
    vocab = lm.model.config.vocab_size
    if ids and (min(ids) < 0 or max(ids) >= vocab):
        raise ValueError(f"token ids must lie in 0..{vocab - 1} (the vocabulary of {lm.name!r}), "
                         f"got values from {min(ids)} to {max(ids)}")
    return list(ids)


def readable_tokens(lm: LM, ids) -> list[str]:
    """Tokens as a person reads them: ``Ġ`` becomes a space, ``Ċ`` a newline (see ``bpe.readable_token``)."""
    if isinstance(ids, torch.Tensor):
        ids = ids.reshape(-1).tolist()
    return [readable_token(tok) for tok in lm.tokenizer.convert_ids_to_tokens(list(ids))]


def display_label(token: str) -> str:
    """A one-line label for a readable token: newlines and tabs become visible arrows."""
    return token.replace("\r", "␍").replace("\n", "↵").replace("\t", "⇥")


# ----------------------------------------------------------------------------------------------
# the one capture path


def _batch(lm: LM, rows, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), both (batch, T) int64 on the model's device, from rows of ids or a tensor."""
    if isinstance(rows, torch.Tensor):
        ids = rows[None] if rows.dim() == 1 else rows
        if ids.dim() != 2 or ids.dtype.is_floating_point or ids.numel() == 0:
            raise ValueError(f"rows must be a non-empty (batch, tokens) integer tensor, got shape "
                             f"{tuple(rows.shape)} {rows.dtype}")
        for row in ids:
            given_ids(lm, row)
        mask = torch.ones_like(ids) if attention_mask is None else torch.as_tensor(attention_mask)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask must have the shape of the ids {tuple(ids.shape)}, got "
                             f"{tuple(mask.shape)}")
        ids, mask = ids.long().to(lm.device), mask.long().to(lm.device)
    else:
        if attention_mask is not None:
            raise ValueError("attention_mask goes with a (batch, tokens) tensor of ids; rows given as lists are "
                             "padded and masked here")
        if not isinstance(rows, (list, tuple)) or not rows:
            raise TypeError(f"rows must be a list of token-id lists or a (batch, tokens) tensor, got "
                            f"{type(rows).__name__}{' (empty)' if isinstance(rows, (list, tuple)) else ''}")
        checked = [given_ids(lm, row) for row in rows]
        if any(not row for row in checked):
            raise ValueError("every row needs at least one token id; got an empty row")
        ids, mask, _ = right_pad(checked, pad_id(lm.tokenizer), lm.device)
    if ids.shape[1] > lm.context_length:
        raise ValueError(f"rows are {ids.shape[1]} tokens long but {lm.name!r} attends over at most "
                         f"{lm.context_length}; shorten them")
    return ids, mask


def attention_weights(lm: LM, rows, attention_mask: torch.Tensor | None = None, *, layers=None,
                      device: str | torch.device = "cpu") -> torch.Tensor:
    """Run ``lm`` once, with eager attention, on a batch of token rows; return every head's weights.

    rows: a list of token-id lists (lengths may differ: they are right-padded and masked here), or an
        integer tensor (batch, T) or (T,) of ids with an optional ``attention_mask`` of the same shape
        (1 = token, 0 = padding; default all ones, since GPT-2's <|endoftext|> doubles as its pad token
        and a text may contain it).
    layers: None (all) or the model layers to keep, in that order.
    device: where the result goes (default the CPU).

    Returns float32 weights (batch, len(layers), heads, T, T): entry [b, l, h, q, k] is the share of
    its attention that query q of row b gives key k in head h of layer ``layers[l]``. Each query row of
    real tokens sums to 1 over keys 0..q (causal); rows and columns of padding are 0, so a row of the
    batch equals the same row run alone. Attention weights are the softmax of the scaled query-key
    scores (Vaswani et al. 2017); transformers' eager kernel computes them.
    Raises TypeError or ValueError for ids that are not ints of the vocabulary, an empty batch or
    row, rows longer than the context or a mask of another shape; RuntimeError when the model
    returns no weights even in eager mode.
    """
    check_lm(lm)
    chosen = check_layers(lm, layers)
    ids, mask = _batch(lm, rows, attention_mask)
    with torch.no_grad(), lm.eager_attention():
        result = lm.model(input_ids=ids, attention_mask=mask, output_attentions=True, use_cache=False)
    found = result.attentions
    if not found or found[0] is None or found[0].numel() == 0:
        raise RuntimeError(f"model {lm.name!r} returned no attention weights even in eager mode")
    weights = torch.stack([found[i].to(device=device, dtype=torch.float32) for i in chosen], dim=1)
    real = mask.to(device=device, dtype=torch.float32)
    return weights * real[:, None, None, :, None] * real[:, None, None, None, :]


# ----------------------------------------------------------------------------------------------
# one text, for the views


@dataclass
class AttentionCapture:
    """Attention weights of one text, ready to look at.

    tokens: the tokens as a person reads them (``Ġ`` -> space, ``Ċ`` -> newline); ``labels`` are the
        same with newlines/tabs made visible, for axis labels.
    attention: float32 CPU tensor (layers, heads, query, key); row q of a head is how query token q
        spreads its attention over keys 0..q (each row sums to 1, future keys are 0).
    layers: the model layer each entry of the first axis comes from.
    truncated_from: the text's full token count when only the first ``max_tokens`` were kept.
    """

    text: str
    token_ids: list[int]
    tokens: list[str]
    attention: torch.Tensor
    layers: list[int]
    model_name: str = ""
    n_model_layers: int = 0
    truncated_from: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [display_label(t) for t in self.tokens]

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def n_heads(self) -> int:
        return int(self.attention.shape[1])

    def layer_position(self, layer) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TypeError(f"layer must be an int, one of {self.layers}, got {layer!r}")
        if layer not in self.layers:
            raise ValueError(f"layer={layer} was not captured; this capture holds layers {self.layers}")
        return self.layers.index(layer)

    def layer(self, layer: int) -> torch.Tensor:
        """(heads, query, key) weights of model layer ``layer``."""
        return self.attention[self.layer_position(layer)]

    def head(self, layer: int, head: int) -> torch.Tensor:
        """(query, key) weights of one head."""
        weights = self.layer(layer)
        if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < self.n_heads:
            raise ValueError(f"head={head!r} is out of range: there are {self.n_heads} heads, "
                             f"use 0..{self.n_heads - 1}")
        return weights[head]

    def to_frame(self, layer: int, head: int):
        """One head as a pandas DataFrame: rows are query tokens, columns key tokens."""
        import pandas as pd

        names = [f"{i}:{label}" for i, label in enumerate(self.labels)]
        return pd.DataFrame(self.head(layer, head).numpy(), index=names, columns=names)

    def __repr__(self) -> str:
        cut = f", truncated from {self.truncated_from}" if self.truncated_from else ""
        return (f"AttentionCapture({self.n_tokens} tokens{cut}, layers {self.layers}, {self.n_heads} heads, "
                f"model {self.model_name!r})")


def capture_attention(lm: LM, text: str | list[int] | torch.Tensor, layers=None,
                      max_tokens: int | None = DEFAULT_MAX_TOKENS) -> AttentionCapture:
    """Run ``lm`` on ``text`` and keep its attention weights as (layers, heads, query, key).

    text: a string, or token ids (a list of ints or a 1-D tensor) for sequences made by hand.
    layers: None for all layers, or the model layers to keep (e.g. ``[0, 5, 11]``).
    max_tokens: longer texts are cut to their first ``max_tokens`` tokens, with a UserWarning saying
        so (attention takes tokens^2 memory per head: layers x heads x T^2 x 4 bytes); None means the
        model's context length.
    The model is switched to eager attention for this one call (other kernels return no weights);
    :func:`attention_weights` runs it. Returns an :class:`AttentionCapture` (float32 CPU weights).
    Raises ValueError for an empty text, ids outside the vocabulary, bad layers or max_tokens;
    TypeError for a text that is neither a string nor token ids.
    """
    check_lm(lm)
    context = lm.context_length
    if max_tokens is None:
        max_tokens = context
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int (or None for the context length {context}), "
                         f"got {max_tokens!r}")
    asked = max_tokens
    max_tokens = min(max_tokens, context)
    chosen = check_layers(lm, layers)
    if isinstance(text, str):
        if not text:
            raise ValueError("text is empty; give at least one character to look at")
        # verbose=False: the too-long warning is ours to give (below, with what to do about it)
        all_ids = lm.tokenizer(text, verbose=False)["input_ids"]
    else:
        all_ids = given_ids(lm, text)
    if not all_ids:
        raise ValueError(f"text {text!r} gives no tokens")
    truncated_from = None
    if len(all_ids) > max_tokens:
        truncated_from = len(all_ids)
        why = (f"the model's context is {context} tokens" if asked > context else
               f"max_tokens={max_tokens}; pass a larger max_tokens (up to {context}) to keep more")
        warnings.warn(f"text is {len(all_ids)} tokens; keeping the first {max_tokens} ({why}).", UserWarning,
                      stacklevel=2)
        all_ids = all_ids[:max_tokens]
    attention = attention_weights(lm, [list(all_ids)], layers=chosen)[0]
    if truncated_from or not isinstance(text, str):
        text = lm.tokenizer.decode(all_ids)
    return AttentionCapture(text=text, token_ids=list(all_ids),
                            tokens=readable_tokens(lm, all_ids), attention=attention, layers=chosen,
                            model_name=lm.name, n_model_layers=n_layers(lm), truncated_from=truncated_from)

