"""Token conventions shared by every tool: which token starts a text, which one pads, and how rows of
different lengths become one batch.

GPT-2 has no separate beginning-of-text or padding token: ``<|endoftext|>`` (id 50256) serves as both,
as in OpenAI's training data, where it separates documents. Other families (Llama, Qwen2, ...) have
their own BOS and pad tokens; these helpers take whichever the tokenizer defines.
"""
from __future__ import annotations

import torch

__all__ = ["bos_id", "pad_id", "left_pad", "right_pad"]


def bos_id(tokenizer) -> int:
    """The id that starts a text: the tokenizer's BOS token, else its end-of-text (EOS) token, as GPT-2
    uses ``<|endoftext|>`` for both. Raises ValueError when the tokenizer has neither."""
    for attr in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    raise ValueError("this tokenizer has neither a beginning-of-text nor an end-of-text token, so no text can be "
                     "started with one; pass bos=False")


def pad_id(tokenizer) -> int:
    """The id used for padding: the tokenizer's pad token, else EOS, else 0. Padding is always masked
    out (attention mask 0), so its value only has to be a valid id."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def _check_rows(rows) -> None:
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("need at least one row of token ids, and no empty row")


def left_pad(rows: list[list[int]], pad: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack rows of token ids into one batch, padding on the LEFT (for generation: every row then ends
    in the last column, where the next token is predicted).

    Returns ``(input_ids, attention_mask)``, both (batch, width) int64 on ``device``; the mask is 0 on
    padding and 1 on tokens. Raises ValueError for no rows or an empty row.
    """
    _check_rows(rows)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.as_tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def right_pad(rows: list[list[int]], pad: int, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack rows of token ids into one batch, padding on the RIGHT (for scoring: positions keep their
    absolute numbers, so no position ids are needed).

    Returns ``(input_ids, attention_mask, last)``: (batch, width) int64 ids and mask (0 on padding), and
    (batch,) the index of each row's last real token. Raises ValueError for no rows or an empty row.
    """
    _check_rows(rows)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.as_tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return ids.to(device), mask.to(device), last.to(device)
