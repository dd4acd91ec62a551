"""Decoding from scratch: the teaching implementation of what ``model.generate`` does.

Built on the logit transforms of :mod:`gpt2lab.generation.transforms` (temperature, top-k, top-p, repetition
penalty, n-gram blocking), in three layers, each small enough to read in one sitting:

1. **Running the model** step by step with a KV cache (or without one, to show why the cache matters):
   :class:`ModelRunner`.
2. **Decoding loops**: :func:`greedy`, :func:`sample` and :func:`beam_search`. Greedy and beam search produce the
   same tokens as ``model.generate`` with the same settings; sampling draws from the same filtered distributions
   (and with the same seed, the same tokens).
3. **Introspection** for the notebooks: ``record=True`` keeps, for every step, the top candidate tokens
   with their probability after each transform (:class:`StepRecord`) or the beams and their scores
   (:class:`BeamStepRecord`); :func:`next_token_distribution` shows one step in full.

:func:`generate` runs these loops behind exactly the interface of :func:`gpt2lab.generate`.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from gpt2lab.generation import pipeline as generation
from gpt2lab.generation.params import DecodingSettings, GenerationError, GenerationParams
from gpt2lab.generation.transforms import NEG_INF, logit_transforms, run_transforms
from gpt2lab.tokens import left_pad

__all__ = ["BEAM_BLOCKED", "ModelRunner", "StepRecord", "BeamStepRecord", "DecodeResult", "greedy", "sample",
           "beam_search", "generate", "NextTokenView", "next_token_logits", "distribution_from_logits",
           "next_token_distribution"]

if TYPE_CHECKING:
    from gpt2lab.loading import LM

# transformers marks beams that must not be chosen with this large negative score (not -inf, so sums stay finite)
BEAM_BLOCKED = -1.0e9


# ---------------------------------------------------------------------------------------------------------
# 1. Running the model step by step, with or without the KV cache
# ---------------------------------------------------------------------------------------------------------
class ModelRunner:
    """Feeds a batch through the model one new token at a time and returns next-token logits.

    With the KV cache, each step feeds only the newest token and the model reuses the keys and values it
    stored for all earlier positions: every step costs the same. Without it, every step feeds the whole
    sequence again, so step t costs ~t times as much and a whole generation is quadratic in its length.
    Positions and the attention mask are built as ``model.generate`` builds them, so the logits match.
    ``cache_keyword``: the name under which this model's forward takes the cache (``cache`` in transformers
    5, ``past_key_values`` in 4.x; tested on 4.50.3 and 5.24).
    """

    def __init__(self, lm, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, use_cache: bool = True):
        self.model = lm.model
        self.use_cache = use_cache
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # position of each token among the real (non-padding) tokens of its row; padding gets 0
        self.position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        # no padding at all -> no mask needed (that is also what model.generate passes)
        self.attention_mask = None if bool((attention_mask == 1).all()) else attention_mask
        self.ids = input_ids
        params = inspect.signature(self.model.forward).parameters
        # transformers 5 names the KV cache `cache` (passing `past_key_values` prints a FutureWarning and is
        # removed in 5.40); 4.x calls it `past_key_values`. Use whichever this model's forward takes.
        self.cache_keyword = "cache" if "cache" in params else "past_key_values"
        self.cache = None  # the model creates it at the first step (a DynamicCache; tuples before transformers 4.48)
        # logits for the last position only (`num_logits_to_keep` before transformers 4.50)
        keep = next((name for name in ("logits_to_keep", "num_logits_to_keep") if name in params), None)
        self._extra = {keep: 1} if keep else {}
        self.forward_calls = 0

    def _forward(self, input_ids, position_ids) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=self.attention_mask, position_ids=position_ids,
                         use_cache=self.use_cache, return_dict=True, **{self.cache_keyword: self.cache}, **self._extra)
        self.forward_calls += 1
        if self.use_cache:
            self.cache = getattr(out, self.cache_keyword)
        return out.logits[:, -1].to(copy=True, dtype=torch.float32)

    def start(self) -> torch.Tensor:
        """Read the whole prompt (the 'prefill'); logits for the first new token."""
        return self._forward(self.ids, self.position_ids)

    def advance(self, tokens: torch.Tensor, sequences: torch.Tensor | None = None) -> torch.Tensor:
        """Append one token per row; logits for the next one. ``sequences`` (without the cache) is the
        full current text of every row, which beam search reorders between steps."""
        self.position_ids = torch.cat([self.position_ids, self.position_ids[:, -1:] + 1], dim=-1)
        if self.attention_mask is not None:
            self.attention_mask = torch.cat([self.attention_mask, self.attention_mask.new_ones((tokens.shape[0], 1))],
                                            dim=-1)
        if self.use_cache:
            return self._forward(tokens[:, None], self.position_ids[:, -1:])
        self.ids = sequences if sequences is not None else torch.cat([self.ids, tokens[:, None]], dim=-1)
        return self._forward(self.ids, self.position_ids)

    def reorder(self, rows: torch.Tensor) -> None:
        """Beam search: row i continues from old row ``rows[i]``, so its cached keys/values must follow."""
        if hasattr(self.cache, "reorder_cache"):
            self.cache.reorder_cache(rows)
        elif self.cache is not None:  # the legacy layout: per layer a (key, value) pair of (rows, ...) tensors
            self.cache = tuple(tuple(t.index_select(0, rows.to(t.device)) for t in layer) for layer in self.cache)


def _expand(tensor: torch.Tensor | None, times: int):
    return tensor if tensor is None or times == 1 else tensor.repeat_interleave(times, dim=0)


def _padding_lengths(attention_mask: torch.Tensor | None):
    """Per row, the number of left-padding tokens (None when there is no padding)."""
    if attention_mask is None or bool((attention_mask == 1).all()):
        return None
    return (attention_mask != 0).int().argmax(dim=1)


# ---------------------------------------------------------------------------------------------------------
# 2. Records of what happened at each step
# ---------------------------------------------------------------------------------------------------------
@dataclass
class StepRecord:
    """One step of greedy decoding or sampling, for every row of the batch.

    candidates: (rows, n) token ids: the n likeliest under the model, plus the chosen one if not among them.
    stage_names: "model" then each transform. probs: (stages, rows, n) probability of each candidate after
    each stage. kept: (stages, rows) how many tokens still have non-zero probability. chosen: (rows,).
    """

    step: int
    candidates: torch.Tensor
    stage_names: list[str]
    probs: torch.Tensor
    kept: torch.Tensor
    chosen: torch.Tensor

    def table(self, tokenizer, row: int = 0):
        """A DataFrame: one line per candidate token, one probability column per stage."""
        import pandas as pd

        ids = self.candidates[row].tolist()
        frame = pd.DataFrame({"token_id": ids, "token": [tokenizer.decode([i]) for i in ids]})
        for s, name in enumerate(self.stage_names):
            frame[name] = self.probs[s, row].tolist()
        frame["chosen"] = [i == int(self.chosen[row]) for i in ids]
        # rows whose chosen token was already a candidate repeat the last one as filler: show it once
        return frame.drop_duplicates("token_id").reset_index(drop=True)


def _record_step(step, stages, chosen, top_n) -> StepRecord:
    first = stages[0][1]
    n = min(top_n, first.shape[-1])
    top = torch.topk(first, n).indices
    extra = (top != chosen[:, None]).all(dim=-1, keepdim=True)
    candidates = torch.cat([top, torch.where(extra, chosen[:, None], top[:, -1:])], dim=-1)
    probs = torch.stack([torch.softmax(s, dim=-1).gather(1, candidates) for _, s in stages])
    kept = torch.stack([(s > NEG_INF).sum(dim=-1) for _, s in stages])
    if not bool(extra.any()):
        candidates, probs = candidates[:, :-1], probs[..., :-1]
    return StepRecord(step, candidates.cpu(), [name for name, _ in stages], probs.cpu(), kept.cpu(), chosen.cpu())


@dataclass
class BeamStepRecord:
    """One step of beam search for one prompt (batch item 0 unless you pass another to ``beam_search``).

    Candidate rows: the 2 x num_beams best (beam, next token) pairs, with source beam, token, total
    log-probability and what became of it ("running", "finished" or "dropped").
    beams: after the step, the running beams as (token ids, score); finished: the pool of finished
    hypotheses as (token ids, length-normalised score).
    """

    step: int
    source_beam: list[int]
    token: list[int]
    score: list[float]
    status: list[str]
    beams: list[tuple[list[int], float]]
    finished: list[tuple[list[int], float]]

    def table(self, tokenizer):
        import pandas as pd

        return pd.DataFrame({"from beam": self.source_beam, "token": [tokenizer.decode([t]) for t in self.token],
                             "token_id": self.token, "total log p": self.score, "status": self.status})


@dataclass
class DecodeResult:
    """What a decoding loop returns: token ids of prompt + continuation for every row, and optionally
    the per-step records. ``prompt_width`` is the (padded) prompt length, where generation starts."""

    sequences: torch.Tensor
    prompt_width: int
    tokenizer: object = None
    steps: list = field(default_factory=list)
    forward_calls: int = 0
    seconds: float = 0.0
    scores: list = field(default_factory=list)  # with keep_scores=True: the transformed scores of each step

    @property
    def new_tokens(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_width:]

    @property
    def texts(self) -> list[str]:
        """Prompt and continuation of every row, decoded (padding and end-of-text markers kept)."""
        return [self.tokenizer.decode(row) for row in self.sequences.tolist()]


# ---------------------------------------------------------------------------------------------------------
# 3. The loops
# ---------------------------------------------------------------------------------------------------------
def _as_batch(lm, prompt) -> tuple[torch.Tensor, torch.Tensor]:
    """A prompt string, a list of strings, or (input_ids, attention_mask) -> left-padded batch on lm.device."""
    if isinstance(prompt, tuple):
        ids, mask = prompt
        return ids.to(lm.device), (torch.ones_like(ids) if mask is None else mask).to(lm.device)
    if isinstance(prompt, torch.Tensor):
        ids = prompt if prompt.dim() == 2 else prompt[None]
        return ids.to(lm.device), torch.ones_like(ids, device=lm.device)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts or any(not isinstance(p, str) or p == "" for p in prompts):
        raise ValueError(f"prompt must be a non-empty string, a list of them, or token ids; got {prompt!r}")
    token_ids = [lm.tokenizer(p, add_special_tokens=False, verbose=False)["input_ids"] for p in prompts]
    _, pad = generation.special_tokens(lm)
    return left_pad(token_ids, pad, lm.device)


def _check_settings(*, sampling: bool, num_beams: int | None = None, **values) -> None:
    """Validate a direct call's settings against the one definition of the parameters (same ranges, same
    messages as gpt2lab.generate); raises InvalidParameterError (a ValueError)."""
    mode = "beam" if num_beams is not None else ("sample" if sampling else "greedy")
    if num_beams is not None:
        values["num_beams"] = num_beams
    GenerationParams.build(mode=mode, **{k: v for k, v in values.items() if v is not None})


def _check_drawable(scores: torch.Tensor, no_repeat_ngram_size: int) -> None:
    """Sampling needs at least one finite score per row; say why instead of torch's multinomial error."""
    if bool(torch.isnan(scores).any()) or bool(torch.isposinf(scores).any()):
        raise GenerationError("generation failed: the next-token scores became inf or nan")
    if not bool(torch.isfinite(scores).any(dim=-1).all()):
        blocked = f" (no_repeat_ngram_size={no_repeat_ngram_size} blocks every token)" if no_repeat_ngram_size else ""
        raise GenerationError(f"generation failed: no next token can be drawn{blocked}")


def _check_length(lm, width: int, max_new_tokens: int) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} is not allowed; it must be an integer >= 1")
    if width + max_new_tokens > lm.context_length:
        raise ValueError(f"prompt ({width} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's context "
                         f"of {lm.context_length} tokens")


def _token_loop(lm, prompt, max_new_tokens: int, *, sampling: bool, temperature=1.0, top_k=0, top_p=1.0,
                repetition_penalty=1.0, no_repeat_ngram_size=0, num_return_sequences=1, use_cache=True,
                record=False, record_top=10, keep_scores=False) -> DecodeResult:
    """Greedy decoding or sampling: one token per row per step, until max_new_tokens or end-of-text."""
    started = time.perf_counter()
    _check_settings(sampling=sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                    repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
                    num_return_sequences=num_return_sequences)
    input_ids, mask = _as_batch(lm, prompt)
    _check_length(lm, input_ids.shape[1], max_new_tokens)
    input_ids, mask = _expand(input_ids, num_return_sequences), _expand(mask, num_return_sequences)
    eos_ids, pad_id = generation.special_tokens(lm)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=lm.device) if eos_ids else None
    transforms = logit_transforms(sampling=sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                  repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
                                  ignore_before=_padding_lengths(mask))
    runner = ModelRunner(lm, input_ids, mask, use_cache=use_cache)
    sequences = input_ids
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.long, device=lm.device)
    steps, kept_scores = [], []
    max_length = input_ids.shape[1] + max_new_tokens
    with torch.no_grad():
        logits = runner.start()
        while True:
            stages = [] if record else None
            scores = run_transforms(transforms, sequences, logits, stages)
            if keep_scores:
                kept_scores.append(scores)
            if sampling:
                _check_drawable(scores, no_repeat_ngram_size)
                next_tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
            else:
                next_tokens = torch.argmax(scores, dim=-1)
            if eos is not None:  # rows that already ended keep receiving padding
                next_tokens = next_tokens * unfinished + pad_id * (1 - unfinished)
            sequences = torch.cat([sequences, next_tokens[:, None]], dim=-1)
            if record:
                steps.append(_record_step(len(steps), stages, next_tokens, record_top))
            done = sequences.shape[1] >= max_length
            if eos is not None:
                unfinished = unfinished & ~torch.isin(next_tokens, eos)
            if done or unfinished.max() == 0:
                break
            logits = runner.advance(next_tokens, sequences)
    return DecodeResult(sequences, input_ids.shape[1], lm.tokenizer, steps, runner.forward_calls,
                        time.perf_counter() - started, kept_scores)


def greedy(lm: LM, prompt, max_new_tokens: int = 20, *, repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
           use_cache: bool = True, record: bool = False, record_top: int = 10,
           keep_scores: bool = False) -> DecodeResult:
    """Greedy decoding: always take the likeliest next token (after the penalty/blocking transforms).

    prompt: a string, a list of strings (left-padded into one batch), a (batch, T) tensor of token ids,
    or a tuple (input_ids, attention_mask). Same tokens as ``model.generate(do_sample=False, num_beams=1)``.
    ``record=True`` keeps a :class:`StepRecord` per step (the ``record_top`` likeliest candidates);
    ``keep_scores=True`` keeps the full transformed scores of every step (transformers' ``output_scores``).
    """
    return _token_loop(lm, prompt, max_new_tokens, sampling=False, repetition_penalty=repetition_penalty,
                       no_repeat_ngram_size=no_repeat_ngram_size, use_cache=use_cache, record=record,
                       record_top=record_top, keep_scores=keep_scores)


def sample(lm: LM, prompt, max_new_tokens: int = 20, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0, num_return_sequences: int = 1,
           seed: int | None = None, use_cache: bool = True, record: bool = False, record_top: int = 10,
           keep_scores: bool = False) -> DecodeResult:
    """Sampling: draw each next token from the model's distribution after the transforms.

    top_k=0 and top_p=1.0 mean "off" (pure sampling at the given temperature). With ``seed`` the torch
    generator is seeded for this call only; the same seed as ``model.generate`` gives the same tokens.
    """
    with generation.seeded(seed, lm.device):
        return _token_loop(lm, prompt, max_new_tokens, sampling=True, temperature=temperature, top_k=top_k,
                           top_p=top_p, repetition_penalty=repetition_penalty,
                           no_repeat_ngram_size=no_repeat_ngram_size, num_return_sequences=num_return_sequences,
                           use_cache=use_cache, record=record, record_top=record_top, keep_scores=keep_scores)


def beam_search(lm: LM, prompt, max_new_tokens: int = 20, *, num_beams: int = 5, num_return_sequences: int = 1,
                length_penalty: float = 1.0, early_stopping: bool | str = False, repetition_penalty: float = 1.0,
                no_repeat_ngram_size: int = 0, use_cache: bool = True, record: bool = False,
                record_item: int = 0) -> DecodeResult:
    """Beam search: keep the ``num_beams`` best partial texts by total log-probability.

    Each step scores every (beam, next token) pair, keeps the best 2 x num_beams, lets those that end
    (end-of-text or max length) join a pool of finished hypotheses scored by total log-probability /
    generated length ** length_penalty, and continues with the best num_beams that did not end. It stops
    when the pool is full and no running beam can beat it any more (``early_stopping`` as in
    transformers: False = that heuristic, True = as soon as the pool is full, "never" = the exact test).
    Returns the ``num_return_sequences`` best finished texts per prompt, as ``model.generate`` does.
    """
    _check_settings(sampling=False, num_beams=num_beams, num_return_sequences=num_return_sequences,
                    repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size)
    if num_beams == 1:  # transformers runs greedy search then; so do we
        return greedy(lm, prompt, max_new_tokens, repetition_penalty=repetition_penalty,
                      no_repeat_ngram_size=no_repeat_ngram_size, use_cache=use_cache)
    started = time.perf_counter()
    input_ids, mask = _as_batch(lm, prompt)
    batch, prompt_width = input_ids.shape
    _check_length(lm, prompt_width, max_new_tokens)
    K = num_beams
    eos_ids, pad_id = generation.special_tokens(lm)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=lm.device) if eos_ids else None
    input_ids, mask = _expand(input_ids, K), _expand(mask, K)
    transforms = logit_transforms(sampling=False, repetition_penalty=repetition_penalty,
                                  no_repeat_ngram_size=no_repeat_ngram_size, ignore_before=_padding_lengths(mask))
    runner = ModelRunner(lm, input_ids, mask, use_cache=use_cache)
    device = input_ids.device
    max_length = prompt_width + max_new_tokens
    n_candidates = max(2, 1 + len(eos_ids)) * K  # enough that K beams survive even if K candidates all end
    may_finish = torch.arange(n_candidates, device=device) < K  # only the best K candidates may join the pool

    # filler after a hypothesis ends; transformers writes `pad or eos[0]` (so a pad id of 0 becomes eos)
    filler = (pad_id or eos_ids[0]) if eos_ids else -1
    running = torch.full((batch, K, max_length), filler, dtype=torch.long, device=device)
    running[:, :, :prompt_width] = input_ids.view(batch, K, prompt_width)
    running_scores = torch.zeros((batch, K), device=device)
    running_scores[:, 1:] = BEAM_BLOCKED  # all beams start identical: let only the first one expand at step 0
    pool = running.clone()  # finished hypotheses
    pool_scores = torch.full((batch, K), BEAM_BLOCKED, device=device)
    pool_lengths = torch.zeros((batch, K), dtype=torch.long, device=device)  # generated tokens of each
    pool_filled = torch.zeros((batch, K), dtype=torch.bool, device=device)
    can_improve = torch.ones((batch, 1), dtype=torch.bool, device=device)
    batch_offset = torch.arange(batch, device=device)[:, None] * K
    cur_len = prompt_width
    steps = []
    with torch.no_grad():
        logits = runner.start()
        while True:
            history = running[:, :, :cur_len].reshape(batch * K, cur_len)
            log_probs = run_transforms(transforms, history, torch.log_softmax(logits, dim=-1))
            vocab = log_probs.shape[-1]
            totals = (log_probs.view(batch, K, vocab) + running_scores[:, :, None]).view(batch, K * vocab)

            # the best (beam, token) continuations over all beams of each prompt
            cand_scores, flat = torch.topk(totals, n_candidates)
            cand_beam, cand_token = flat // vocab, flat % vocab
            cand_seqs = torch.take_along_dim(running, cand_beam[:, :, None], dim=1)
            cand_seqs[:, :, cur_len] = cand_token
            ends = torch.full_like(cand_token, cur_len + 1 >= max_length, dtype=torch.bool)
            if eos is not None:
                ends |= torch.isin(cand_token, eos)

            # the best K that did not end keep running
            running_candidates = cand_scores + ends.to(torch.float32) * BEAM_BLOCKED
            keep = torch.topk(running_candidates, K).indices
            running = torch.take_along_dim(cand_seqs, keep[:, :, None], dim=1)
            running_scores = torch.take_along_dim(running_candidates, keep, dim=1)
            source_rows = (torch.take_along_dim(cand_beam, keep, dim=1) + batch_offset).view(-1)

            # those that ended join the pool if they beat its worst member
            just_finished = ends & may_finish[None, :]
            normalized = cand_scores / ((cur_len + 1 - prompt_width) ** length_penalty)
            pool_closed = torch.all(pool_filled, dim=-1, keepdim=True) & (early_stopping is True)
            normalized = normalized + pool_closed.to(torch.float32) * BEAM_BLOCKED
            normalized = normalized + (~can_improve).to(torch.float32) * BEAM_BLOCKED
            normalized = normalized + (~just_finished) * BEAM_BLOCKED
            merged_scores = torch.cat([pool_scores, normalized], dim=1)
            best = torch.topk(merged_scores, K).indices
            pool = torch.take_along_dim(torch.cat([pool, cand_seqs], dim=1), best[:, :, None], dim=1)
            pool_scores = torch.take_along_dim(merged_scores, best, dim=1)
            new_lengths = torch.full_like(cand_token, cur_len + 1 - prompt_width)
            pool_lengths = torch.take_along_dim(torch.cat([pool_lengths, new_lengths], dim=1), best, dim=1)
            pool_filled = torch.take_along_dim(torch.cat([pool_filled, just_finished], dim=1), best, dim=1)

            if record:
                steps.append(_record_beams(len(steps), record_item, cand_beam, cand_token, cand_scores, ends,
                                           just_finished, keep,
                                           best, running, running_scores, pool, pool_scores, pool_lengths,
                                           pool_filled, prompt_width, cur_len + 1))
            runner.reorder(source_rows)
            cur_len += 1

            # can a running beam still beat the worst finished one? (transformers' heuristic)
            if early_stopping == "never" and length_penalty > 0.0:
                best_length = max_length - prompt_width
            else:
                best_length = cur_len - prompt_width
            best_possible = running_scores[:, :1] / (best_length ** length_penalty)
            worst_finished = torch.where(pool_filled, torch.min(pool_scores, dim=1, keepdim=True)[0], BEAM_BLOCKED)
            can_improve = can_improve & torch.any(best_possible > worst_finished, dim=-1, keepdim=True)
            keep_going = (bool(can_improve.any()) and not (bool(pool_filled.all()) and early_stopping is True)
                          and not bool(ends.all()))
            if not keep_going:
                break
            flat_running = running[:, :, :cur_len].reshape(batch * K, cur_len)
            logits = runner.advance(flat_running[:, -1], flat_running)

    out_lengths = pool_lengths[:, :num_return_sequences].reshape(-1)
    width = prompt_width + int(out_lengths.max())
    sequences = pool[:, :num_return_sequences, :width].reshape(batch * num_return_sequences, width)
    return DecodeResult(sequences, prompt_width, lm.tokenizer, steps, runner.forward_calls,
                        time.perf_counter() - started)


def _record_beams(step, item, cand_beam, cand_token, cand_scores, ends, just_finished, keep, pool_choice, running,
                  running_scores, pool, pool_scores, pool_lengths, pool_filled, prompt_width, length):
    K = running.shape[1]
    kept = set(keep[item].tolist())
    # candidates that entered the pool (placeholders can tie with blocked candidates, so check they ended)
    joined = {int(i) - K for i in pool_choice[item].tolist() if int(i) >= K and bool(just_finished[item, int(i) - K])}
    status = []
    for j in range(cand_token.shape[1]):
        if j in joined:
            status.append("finished")
        elif j in kept and not bool(ends[item, j]):
            status.append("running")
        else:
            status.append("dropped")
    beams = [(running[item, b, prompt_width:length].tolist(), float(running_scores[item, b])) for b in range(K)]
    finished = [(pool[item, b, prompt_width:prompt_width + int(pool_lengths[item, b])].tolist(),
                 float(pool_scores[item, b])) for b in range(K) if bool(pool_filled[item, b])]
    return BeamStepRecord(step, cand_beam[item].tolist(), cand_token[item].tolist(), cand_scores[item].tolist(),
                          status, beams, finished)


def _decode_call(use_cache: bool):
    """A call with the signature of generation.transformers_call that runs the loops above instead."""

    def call(lm: LM, input_ids, attention_mask, settings: DecodingSettings, n: int, pad_id: int):
        prompt = (input_ids, attention_mask)
        if settings.strategy == "greedy":
            result = greedy(lm, prompt, settings.max_new_tokens, repetition_penalty=settings.repetition_penalty,
                            no_repeat_ngram_size=settings.no_repeat_ngram_size, use_cache=use_cache)
        elif settings.strategy == "sample":
            result = _token_loop(lm, prompt, settings.max_new_tokens, sampling=True,
                                 temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p,
                                 repetition_penalty=settings.repetition_penalty,
                                 no_repeat_ngram_size=settings.no_repeat_ngram_size, num_return_sequences=n,
                                 use_cache=use_cache)
        else:
            result = beam_search(lm, prompt, settings.max_new_tokens, num_beams=settings.num_beams,
                                 num_return_sequences=n, repetition_penalty=settings.repetition_penalty,
                                 no_repeat_ngram_size=settings.no_repeat_ngram_size, use_cache=use_cache)
        return result.sequences

    return call


def generate(lm: LM, prompt_or_prompts=None, *, use_cache: bool = True, params=None, **kwargs):
    """:func:`gpt2lab.generate` with the from-scratch loops instead of ``model.generate``: same parameters,
    same validation, same output (token for token for greedy and beam; for sampling, same seed -> same
    draws from the same distributions)."""
    params = generation.resolve_params(prompt_or_prompts, params, **kwargs)
    generation.warn_ignored(params)
    return generation.run(lm, params, _decode_call(use_cache))


# ---------------------------------------------------------------------------------------------------------
# 4. One step in full, for plots and the explorer
# ---------------------------------------------------------------------------------------------------------
@dataclass
class NextTokenView:
    """The next-token distribution for one prompt after each stage of the pipeline (full vocabulary)."""

    prompt: str
    stage_names: list[str]
    probs: torch.Tensor  # (stages, vocab), on the CPU
    tokenizer: object

    def stage(self, name_or_index=-1) -> torch.Tensor:
        index = self.stage_names.index(name_or_index) if isinstance(name_or_index, str) else name_or_index
        return self.probs[index]

    @property
    def final(self) -> torch.Tensor:
        return self.probs[-1]

    def kept(self, stage=-1) -> int:
        """How many tokens can still be drawn after that stage."""
        return int((self.stage(stage) > 0).sum())

    def table(self, n: int = 10):
        """The n likeliest tokens under the model, with their probability after each stage."""
        import pandas as pd

        top = torch.topk(self.probs[0], min(n, self.probs.shape[1])).indices.tolist()
        frame = pd.DataFrame({"token_id": top, "token": [self.tokenizer.decode([i]) for i in top]})
        for s, name in enumerate(self.stage_names):
            frame[name] = self.probs[s, top].tolist()
        return frame


def next_token_logits(lm: LM, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits for the next token as (1, vocab) float32, the prompt's token ids as (1, T))."""
    ids, mask = _as_batch(lm, prompt)
    with torch.no_grad():
        logits = ModelRunner(lm, ids, mask, use_cache=False).start()
    return logits, ids


def distribution_from_logits(lm: LM, prompt: str, logits: torch.Tensor, history: torch.Tensor, *, sampling=True,
                             temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0,
                             no_repeat_ngram_size=0) -> NextTokenView:
    """Apply the transforms to precomputed logits and keep the distribution after each (cheap: no model call)."""
    transforms = logit_transforms(sampling=sampling, temperature=temperature, top_k=top_k, top_p=top_p,
                                  repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size)
    stages: list = []
    run_transforms(transforms, history, logits, stages)
    probs = torch.stack([torch.softmax(s[0], dim=-1) for _, s in stages]).cpu()
    return NextTokenView(prompt, [name for name, _ in stages], probs, lm.tokenizer)


def next_token_distribution(lm: LM, prompt: str, **settings) -> NextTokenView:
    """The next-token distribution after each transform. Keyword arguments as in
    :func:`gpt2lab.generation.transforms.logit_transforms`
    (``sampling``, ``temperature``, ``top_k``, ``top_p``, ``repetition_penalty``, ``no_repeat_ngram_size``)."""
    logits, ids = next_token_logits(lm, prompt)
    return distribution_from_logits(lm, prompt, logits, ids, **settings)
