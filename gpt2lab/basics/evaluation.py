"""How well a language model predicts held-out text: NLL, perplexity, bits per character.

Texts longer than the model's context are scored with a sliding window: windows of ``block``
tokens advance by ``stride`` tokens, and only the tokens not already scored by an earlier window
count, each predicted with up to ``block - stride`` tokens of context before it. ``stride = block``
is fastest (windows overlap by one token, so tokens at the start of a window see little context);
a smaller stride gives every token more context and a lower, fairer number at more cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gpt2lab.tokens import bos_id

__all__ = ["Score", "score_ids", "score_text", "perplexity", "bits_per_char"]

if TYPE_CHECKING:
    from gpt2lab.loading import LM


@dataclass
class Score:
    """How well a model predicted one text: its total negative log-likelihood, how many tokens were scored and
    how many characters the text has; the per-token loss, perplexity and bits per character follow from those."""

    nll: float  # total negative log-likelihood, nats
    tokens: int  # tokens scored
    chars: int  # characters of the text

    @property
    def loss(self) -> float:
        """Mean cross-entropy per token (nats)."""
        return self.nll / max(self.tokens, 1)

    @property
    def perplexity(self) -> float:
        """exp(loss): as uncertain as a uniform choice among this many tokens (per token, so it depends on the
        tokenizer)."""
        return math.exp(self.loss)

    @property
    def bits_per_char(self) -> float:
        """Total NLL in bits over the text's characters: comparable across tokenizers."""
        return self.nll / math.log(2) / max(self.chars, 1)


@torch.no_grad()
def score_ids(model, ids: torch.Tensor, block: int, stride: int | None = None, batch_size: int = 8,
              progress: bool = False) -> tuple[float, int]:
    """Total NLL (nats) of ``ids[1:]`` given what precedes them, and how many tokens were scored."""
    from tqdm.auto import tqdm

    stride = stride or block
    if not 1 <= stride <= block:
        raise ValueError(f"stride must be between 1 and block={block}, got {stride}")
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    device = next(model.parameters()).device
    # Windows: the first covers tokens [0, block); each later one scores the next `chunk` tokens and
    # starts early enough to give them block - chunk tokens of context (at least one).
    chunk = min(stride, block - 1)
    windows = []  # (start, end, first scored position within window)
    end = min(block, len(ids))
    if end >= 2:
        windows.append((0, end, 1))
    while end < len(ids):
        prev_end, end = end, min(end + chunk, len(ids))
        start = max(0, end - block)
        windows.append((start, end, prev_end - start))
    total, count = 0.0, 0
    for i in tqdm(range(0, len(windows), batch_size), disable=not progress, desc="scoring"):
        group = windows[i:i + batch_size]
        width = max(e - s for s, e, _ in group)
        inp = torch.zeros(len(group), width, dtype=torch.long)
        labels = torch.full((len(group), width), -100, dtype=torch.long)
        mask = torch.zeros(len(group), width, dtype=torch.long)
        for row, (s, e, first) in enumerate(group):
            inp[row, : e - s] = ids[s:e]
            mask[row, : e - s] = 1
            labels[row, first: e - s] = ids[s + first: e]
        logits = model(input_ids=inp.to(device), attention_mask=mask.to(device)).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                                shift_labels.reshape(-1), ignore_index=-100, reduction="sum")
        total += nll.item()
        count += int((shift_labels != -100).sum())
    return total, count


def score_text(lm: LM, text: str, stride: int | None = None, block: int | None = None, batch_size: int = 8,
               progress: bool = False) -> Score:
    """Score ``text`` under ``lm`` (an :class:`gpt2lab.LM`). The first token is conditioned on
    the end-of-text token, as GPT-2 was trained with, so every character of ``text`` is counted. Models
    with their own beginning-of-text token (Llama, OPT, ...) are conditioned on that, once: a tokenizer
    that adds it by itself is not asked to add it again.

    stride, block: the sliding window of the module docstring (block defaults to the model's context).
    Raises ValueError for an empty text or a stride outside [1, block]."""
    if not text:
        raise ValueError("cannot score an empty text")
    block = block or lm.context_length
    bos = bos_id(lm.tokenizer)
    ids = [bos] + lm.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    nll, tokens = score_ids(lm.model, torch.tensor(ids), block, stride, batch_size, progress)
    return Score(nll=nll, tokens=tokens, chars=len(text))


def perplexity(lm: LM, text: str, stride: int | None = None, **kw) -> float:
    """Per-token perplexity of ``text`` under ``lm``: ``score_text(lm, text, stride, **kw).perplexity``."""
    return score_text(lm, text, stride, **kw).perplexity


def bits_per_char(lm: LM, text: str, stride: int | None = None, **kw) -> float:
    """Bits per character of ``text`` under ``lm``: ``score_text(lm, text, stride, **kw).bits_per_char``."""
    return score_text(lm, text, stride, **kw).bits_per_char
