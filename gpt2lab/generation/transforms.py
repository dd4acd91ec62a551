"""Logit transforms: plain functions from next-token scores to next-token scores.

What sits between the model's logits and the choice of the next token, one small function each:
:func:`penalize_repetition`, :func:`block_repeated_ngrams`, :func:`apply_temperature`, :func:`top_k_filter`,
:func:`top_p_filter`. Each gives exactly what the matching transformers logits processor gives
(``RepetitionPenaltyLogitsProcessor``, ``NoRepeatNGramLogitsProcessor``, ``TemperatureLogitsWarper``,
``TopKLogitsWarper``, ``TopPLogitsWarper``; the tests compare them on random logits and histories, ties and edge
values included), except that the history-reading ones can skip a batch's left padding.

:func:`logit_transforms` lines them up in the order transformers applies them; :func:`run_transforms` applies a
pipeline and can keep the scores after each stage; :func:`history_processors` hands the history-reading ones to
``model.generate``. The decoders of :mod:`gpt2lab.generation.decoding` use all of them.

Shapes throughout: ``scores`` is (batch, vocab) float; ``history`` is (batch, tokens so far) long. Sources:
top-k sampling (Fan et al. 2018, "Hierarchical Neural Story Generation"), nucleus / top-p sampling (Holtzman et al.
2019, "The Curious Case of Neural Text Degeneration"), the repetition penalty (Keskar et al. 2019, CTRL), n-gram
blocking (Paulus et al. 2017, "A Deep Reinforced Model for Abstractive Summarization"); temperature is the softmax
temperature; the exact tie and edge rules are transformers' (``transformers.generation.logits_process``).
To add a transform: write it here as ``f(scores, ...) -> scores`` and give it a line in :func:`logit_transforms`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from gpt2lab.generation.params import TEMPERATURE_CEILING, TEMPERATURE_FLOOR

__all__ = ["NEG_INF", "apply_temperature", "top_k_filter", "top_p_filter", "penalize_repetition",
           "block_repeated_ngrams", "Transform", "logit_transforms", "history_processors", "run_transforms"]

NEG_INF = -float("inf")


def apply_temperature(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by the temperature: < 1 sharpens the distribution, > 1 flattens it.

    Where the division would not fit float32 the limit is used instead (see the parameter table in
    :mod:`gpt2lab.generation.params`): below ``TEMPERATURE_FLOOR`` only the highest-scoring token(s) keep their
    score (the others -> -inf: sampling at T -> 0 is greedy, ties drawn evenly); above ``TEMPERATURE_CEILING``
    the ceiling is used (T -> infinity: uniform over the tokens not already at -inf).
    """
    if temperature < TEMPERATURE_FLOOR:
        return top_k_filter(scores, 1)
    return scores / min(temperature, TEMPERATURE_CEILING)


def top_k_filter(scores: torch.Tensor, k: int, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Keep the ``k`` highest-scoring tokens (all tokens tied with the k-th are kept too); others -> -inf.

    k = 0 means off. k larger than the vocabulary keeps everything.
    """
    if k <= 0:
        return scores
    k = min(max(k, min_tokens_to_keep), scores.shape[-1])
    kth_best = torch.topk(scores, k).values[..., -1:]
    return scores.masked_fill(scores < kth_best, NEG_INF)


def top_p_filter(scores: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of likeliest tokens whose probability reaches ``p``.

    Said the other way round (which is how it is computed): line the tokens up from least to most likely
    and drop the longest unlikely tail whose total probability is at most 1 - p. The likeliest
    ``min_tokens_to_keep`` tokens always stay.
    """
    ascending, order = torch.sort(scores, descending=False)
    tail_mass = ascending.softmax(dim=-1).cumsum(dim=-1)  # probability of this token and all less likely ones
    drop_sorted = tail_mass <= (1 - p)
    drop_sorted[..., -min_tokens_to_keep:] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)  # back from sorted order to token order
    return scores.masked_fill(drop, NEG_INF)


def penalize_repetition(scores: torch.Tensor, history: torch.Tensor, penalty: float,
                        ignore_before: torch.Tensor | None = None) -> torch.Tensor:
    """Make every token already in ``history`` less likely (penalty > 1) or more likely (< 1).

    A positive score is divided by the penalty, a negative one multiplied, so both move towards "less
    likely"; each token is penalised once however often it occurred. ``ignore_before`` (per row) skips the
    left padding of a batch so padding tokens are not penalised.
    """
    vocab = scores.shape[-1]
    positions = torch.arange(history.shape[1], device=history.device)
    counted = history < vocab  # ids beyond the output layer cannot be generated anyway
    if ignore_before is not None:
        counted &= positions[None, :] >= ignore_before.to(history.device)[:, None]
    seen = torch.zeros((scores.shape[0], vocab + 1), dtype=torch.bool, device=scores.device)
    seen.scatter_(1, torch.where(counted, history, vocab), True)  # uncounted ids go to a spare column
    penalized = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen[:, :vocab], penalized, scores)


def block_repeated_ngrams(scores: torch.Tensor, history: torch.Tensor, n: int,
                          ignore_before: torch.Tensor | None = None) -> torch.Tensor:
    """Forbid any token that would complete an n-gram already present in ``history``.

    The next token completes the n-gram (last n-1 tokens, next token). Every earlier n-gram whose first
    n-1 tokens equal those last n-1 tokens bans its final token. ``ignore_before`` (per row) skips the left
    padding of a batch: an n-gram that starts in the padding is not text and bans nothing (transformers'
    ``NoRepeatNGramLogitsProcessor`` counts it, which makes a short prompt in a batch differ from the same
    prompt alone).
    """
    length = history.shape[1]
    if n <= 0 or length < n:
        return scores
    vocab = scores.shape[-1]
    current = history[:, length - n + 1:]  # the last n-1 tokens (nothing when n == 1: every token seen is banned)
    ngrams = history.unfold(dimension=1, size=n, step=1)  # (batch, number of n-grams, n)
    same_start = (ngrams[..., :-1] == current[:, None, :]).all(dim=-1)
    if ignore_before is not None:
        starts = torch.arange(ngrams.shape[1], device=history.device)
        same_start &= starts[None, :] >= ignore_before.to(history.device)[:, None]
    banned = torch.zeros((scores.shape[0], vocab + 1), dtype=torch.bool, device=scores.device)
    banned.scatter_(1, torch.where(same_start, ngrams[..., -1].clamp(max=vocab), vocab), True)
    return scores.masked_fill(banned[:, :vocab], NEG_INF)


@dataclass
class Transform:
    """One named step of the logit pipeline: ``fn(history, scores) -> scores``."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def __call__(self, history, scores):
        return self.fn(history, scores)


def logit_transforms(*, sampling: bool, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
                     ignore_before: torch.Tensor | None = None, min_tokens_to_keep: int = 1) -> list[Transform]:
    """The transforms a decoder applies, in the order transformers applies them: repetition penalty,
    n-gram blocking, then (sampling only) temperature, top-k, top-p. Transforms that would do nothing
    (penalty 1.0, top_k 0, top_p 1.0, temperature 1.0) are left out, as transformers does.
    ``ignore_before`` (per row): how many left-padding tokens the history-reading transforms skip."""
    steps = []
    if repetition_penalty != 1.0:
        steps.append(Transform(f"repetition penalty {repetition_penalty:g}",
                               lambda h, s: penalize_repetition(s, h, repetition_penalty, ignore_before)))
    if no_repeat_ngram_size > 0:
        steps.append(Transform(f"no repeated {no_repeat_ngram_size}-gram",
                               lambda h, s: block_repeated_ngrams(s, h, no_repeat_ngram_size, ignore_before)))
    if sampling:
        if temperature != 1.0:
            steps.append(Transform(f"temperature {temperature:g}", lambda h, s: apply_temperature(s, temperature)))
        if top_k != 0:
            steps.append(Transform(f"top-k {top_k}", lambda h, s: top_k_filter(s, top_k, min_tokens_to_keep)))
        if top_p < 1.0:
            steps.append(Transform(f"top-p {top_p:g}", lambda h, s: top_p_filter(s, top_p, min_tokens_to_keep)))
    return steps


class _HistoryProcessor(LogitsProcessor):
    """Transforms as one transformers logits processor (``model.generate(logits_processor=...)``)."""

    def __init__(self, transforms: list[Transform]):
        self.transforms = transforms

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return run_transforms(self.transforms, input_ids, scores)


def history_processors(attention_mask: torch.Tensor, rows_per_prompt: int, repetition_penalty: float = 1.0,
                       no_repeat_ngram_size: int = 0) -> LogitsProcessorList:
    """The history-reading transforms (repetition penalty, n-gram blocking) for ``model.generate`` on a
    left-padded batch, skipping each row's padding.

    attention_mask: (prompts, width) of the padded prompts; rows_per_prompt: how many rows generate makes of
    each prompt (num_return_sequences when sampling, num_beams in beam search). Pass the result as
    ``logits_processor=`` with ``repetition_penalty=1.0, no_repeat_ngram_size=0``; generate runs custom
    processors after its own and before temperature / top-k / top-p, the order transformers uses.
    """
    padding = (attention_mask == 0).sum(dim=1).repeat_interleave(rows_per_prompt)
    transforms = logit_transforms(sampling=False, repetition_penalty=repetition_penalty,
                                  no_repeat_ngram_size=no_repeat_ngram_size, ignore_before=padding)
    return LogitsProcessorList([_HistoryProcessor(transforms)])


def run_transforms(transforms: list[Transform], history, scores, stages: list | None = None):
    """Apply the transforms in order; with ``stages`` (a list) also collect (name, scores) after each."""
    if stages is not None:
        stages.append(("model", scores))
    for transform in transforms:
        scores = transform(history, scores)
        if stages is not None:
            stages.append((transform.name, scores))
    return scores
