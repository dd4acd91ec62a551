"""Does a model show what GPT-2 shows? Induction heads, copying, whole-word tokens (issue 18).

Three measurements, used by the embedded model's recipe, its benchmark, its card and its tests:

* :func:`induction_figures`: ``n`` sequences of ``length`` tokens drawn at random from the tokens the
  model saw in training, each repeated once after a beginning-of-text token. A head's induction score
  is the mean attention from each token of the repeat to the token after its earlier occurrence
  (:func:`gpt2lab.attention.heads.induction_score`, Olsson et al. 2022). A head attending evenly
  would score the ``uniform_baseline`` (the mean of 1 / (position + 1) over the repeat's queries).
* :func:`copy_figures`: ``n`` held-out passages of ``length`` tokens, each repeated once after
  beginning-of-text; the mean loss on the second copy over that on the first. A model that copies
  (GPT-2 does, almost perfectly) predicts the repeat far better than the original.
* :func:`gpt2lab.basics.bpe.single_token_share`: the share of a text's most frequent words that
  the tokenizer keeps whole.

:func:`gpt2_traits` measures all of them at once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from gpt2lab.attention.capture import check_lm
from gpt2lab.attention.heads import induction_score, repeated_random_tokens
from gpt2lab.tokens import bos_id

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["seen_token_ids", "repeated_rows", "induction_figures", "copy_figures", "gpt2_traits"]


def seen_token_ids(tokenizer, ids) -> np.ndarray:
    """The sorted ids (int64 array) that occur in ``ids`` (a token-id sequence, e.g. the training text
    encoded) at least once, special tokens left out: issue 18's "tokens seen in training" (the course's
    :func:`gpt2lab.attention.heads.seen_tokens` asks for 5 occurrences). Raises ValueError when none are left."""
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    seen = np.setdiff1d(np.unique(np.asarray(ids, dtype=np.int64)), np.array(sorted(special), dtype=np.int64))
    if seen.size == 0:
        raise ValueError("no ordinary token occurs in ids")
    return seen


def repeated_rows(chunks, bos: int) -> torch.Tensor:
    """(n, 1 + 2*length) int64 ids: ``bos``, then each row of ``chunks`` (n, length), twice."""
    chunks = torch.as_tensor(np.asarray(chunks), dtype=torch.long)
    if chunks.ndim != 2 or chunks.shape[1] < 2:
        raise ValueError(f"chunks must be (n, length) with length >= 2, got shape {tuple(chunks.shape)}")
    return torch.cat([torch.full((len(chunks), 1), int(bos), dtype=torch.long), chunks, chunks], dim=1)


@torch.no_grad()
def _run(lm: LM, ids: torch.Tensor, attentions: bool):
    """Logits (n, T, vocab) float32 on the CPU and, with ``attentions``, weights (n, layers, heads, T, T),
    in float32 whatever autocast is active; the model's train/eval mode is restored."""
    model, was_training = lm.model, lm.model.training
    model.eval()
    try:
        with torch.autocast(device_type=lm.device.type, enabled=False):
            if attentions:
                with lm.eager_attention():
                    out = model(input_ids=ids.to(lm.device), output_attentions=True, use_cache=False)
                weights = torch.stack([a.float().cpu() for a in out.attentions], dim=1)
            else:
                out, weights = model(input_ids=ids.to(lm.device), use_cache=False), None
    finally:
        model.train(was_training)
    return out.logits.float().cpu(), weights


def _token_losses(logits: torch.Tensor, ids: torch.Tensor) -> np.ndarray:
    """(n, T-1) nats: entry j is the loss predicting ids[:, j + 1]."""
    return torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none").numpy()


def induction_figures(lm: LM, allowed, length: int = 40, n: int = 8, seed: int = 0) -> dict:
    """Induction on repeated random tokens drawn (uniformly, generator seeded by ``seed``) from ``allowed``.

    allowed: the token ids to draw from, e.g. :func:`seen_token_ids` of the training text; the rows are
    :func:`gpt2lab.attention.heads.repeated_random_tokens`.
    Returns a dict: ``scores`` (layers, heads) induction scores in [0, 1], mean over the ``n``
    sequences; ``best`` (the highest), ``best_head`` ([layer, head]), ``uniform_baseline`` (what a head
    attending evenly scores), ``ratio`` (best / baseline), ``loss_first`` and ``loss_second`` (mean nats
    predicting tokens 2..length of the first copy and of the repeat). Raises ValueError for a length
    or n below 2 / 1, sequences longer than the context, or an empty ``allowed``.
    """
    ids, _, _ = repeated_random_tokens(lm, length=length, n_sequences=n, seed=seed,
                                       pool=[int(i) for i in np.asarray(allowed).ravel()])
    logits, weights = _run(lm, ids, attentions=True)
    weights = weights.double()
    weights = weights / weights.sum(dim=-1, keepdim=True)
    scores = np.mean([induction_score(weights[i], period=length, start=1) for i in range(n)], axis=0)
    queries = np.arange(1 + length, 1 + 2 * length)
    baseline = float(np.mean(1.0 / (queries + 1)))
    losses = _token_losses(logits, ids)
    layer, head = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return {"scores": scores, "best": float(scores.max()), "best_head": [int(layer), int(head)],
            "uniform_baseline": baseline, "ratio": float(scores.max() / baseline),
            "loss_first": float(losses[:, 1:length].mean()), "loss_second": float(losses[:, length + 1:].mean())}


def copy_figures(lm: LM, ids, length: int = 60, n: int = 8) -> dict:
    """Copying of natural text: ``n`` passages of ``length`` tokens, evenly spread over ``ids`` (a
    held-out text encoded), each repeated once after beginning-of-text.

    Returns ``loss_first`` (mean nats over every token of the first copy, the first predicted from
    beginning-of-text alone), ``loss_second`` (over every token of the repeat) and ``ratio`` (second /
    first; 1 = no copying, near 0 = perfect copying). Raises ValueError when ``ids`` holds fewer than
    ``length + 1`` tokens or the rows exceed the context.
    """
    check_lm(lm)
    ids = np.asarray(ids, dtype=np.int64)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or not 2 <= length <= (lm.context_length - 1) // 2:
        raise ValueError(f"need an int n >= 1 and 2 <= length <= {(lm.context_length - 1) // 2} (the context of "
                         f"{lm.name!r} holds 1 + 2 * length tokens); got n={n!r}, length={length!r}")
    if ids.size < length + 1:
        raise ValueError(f"ids must hold at least length + 1 = {length + 1} tokens, got {ids.size}")
    starts = np.linspace(0, ids.size - length - 1, n).astype(int)
    rows = repeated_rows(np.stack([ids[s:s + length] for s in starts]), bos_id(lm.tokenizer))
    logits, _ = _run(lm, rows, attentions=False)
    losses = _token_losses(logits, rows)
    first, second = float(losses[:, :length].mean()), float(losses[:, length:].mean())
    return {"loss_first": first, "loss_second": second, "ratio": second / first}


def gpt2_traits(lm: LM, train_text: str, val_text: str, seed: int = 0) -> dict:
    """Issue 18's figures for ``lm``: induction on 8 repeats of 40 random tokens seen in ``train_text``,
    copying of 8 held-out 60-token passages of ``val_text``, and the share of the 200 most frequent
    words of ``val_text`` that are single tokens. Plain floats and lists (JSON-ready), rounded to 4
    decimals; the per-head scores are left out."""
    from gpt2lab.basics.bpe import single_token_share

    tokenizer = lm.tokenizer
    allowed = seen_token_ids(tokenizer, tokenizer(train_text)["input_ids"])
    induction = induction_figures(lm, allowed, length=40, n=8, seed=seed)
    copying = copy_figures(lm, tokenizer(val_text)["input_ids"], length=60, n=8)
    return {"induction_best": round(induction["best"], 4), "induction_head": induction["best_head"],
            "induction_uniform": round(induction["uniform_baseline"], 4),
            "induction_ratio": round(induction["ratio"], 2),
            "random_loss_first": round(induction["loss_first"], 4),
            "random_loss_second": round(induction["loss_second"], 4),
            "copy_loss_first": round(copying["loss_first"], 4), "copy_loss_second": round(copying["loss_second"], 4),
            "copy_ratio": round(copying["ratio"], 4),
            "single_token_words": round(single_token_share(tokenizer, val_text, n=200), 4)}
