"""Induction heads that form before your eyes: a two-layer attention-only GPT trained on repeated segments.

Olsson et al. 2022 ("In-context Learning and Induction Heads") found that transformers learn, in a
sudden drop of the training loss, a two-head circuit that continues patterns: a **previous-token
head** in an early layer writes "the token before me was A" into each position, and an **induction
head** in a later layer, at a new occurrence of A, attends to the position whose previous token was
A and copies what it finds there (Elhage et al. 2021 describe the circuit in two-layer attention-only
transformers). They also saw previous-token heads form early in real models, where text rewards
knowing the previous token for its own sake. This module reproduces both on a CPU in about a minute:

* :func:`repeated_segments`: sequences that start with a beginning token (id 0), continue with
  background tokens in which, with probability ``rule_share``, a token is a fixed function of the
  token two places back (a rule that can only be used by looking at the previous token, so a
  previous-token head pays off early), and from a random point on repeat a random segment of random
  length to the end, which can only be predicted by copying;
* :func:`train_induction_toy`: trains ``GPTConfig(n_layer=2, attention_only=True)`` with
  :func:`gpt2lab.training.train`, measuring every head's induction and previous-token scores
  (:func:`gpt2lab.attention.heads.induction_score`, :func:`~gpt2lab.attention.heads.previous_token_score`)
  on ``[BOS, A, A]`` sequences, averaged over every segment length of the task (:func:`measure_heads`;
  one fixed length would reward a head that attends a fixed distance back);
* :class:`InductionRun`: the history, the step where the loss fell fastest, the heads, ``plot()``;
* :func:`head_knocked_out`: a context in which one head's output is zero (an ablation).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from gpt2lab.attention.heads import induction_score, previous_token_score
from gpt2lab.model.gpt import GPT, GPTConfig

__all__ = ["BOS", "PATTERN_SEED", "QUICK_TASK", "QUICK_RUN", "FULL_TASK", "FULL_RUN", "ToyTask", "rule_table",
           "repeated_segments", "RepeatedSegments", "repeat_twice", "measure_heads", "attention_pattern",
           "head_knocked_out", "InductionRun", "train_induction_toy"]

PATTERN_SEED = 3  # the [BOS, A, A] sequence whose attention train_induction_toy records at every step
BOS = 0  # the toy's beginning-of-sequence token; the random tokens are 1 .. vocab_size - 1
QUICK_TASK = dict(vocab_size=32, length=24, min_period=3, max_period=8)  # under a minute on one CPU core
QUICK_RUN = dict(steps=4000, eval_every=250)
FULL_TASK = dict(vocab_size=64, length=32, min_period=3, max_period=10)
FULL_RUN = dict(steps=10000, eval_every=250)


@dataclass
class ToyTask:
    """The toy's data: sequences of ``length`` tokens from a vocabulary of ``vocab_size`` (token 0 starts
    every sequence), repeated segments of ``min_period`` to ``max_period`` tokens, background tokens
    following the two-back rule with probability ``rule_share`` (0: purely random background)."""

    vocab_size: int = 64
    length: int = 32
    min_period: int = 3
    max_period: int = 10
    rule_share: float = 0.5
    seed: int = 0  # chooses the rule

    def __post_init__(self):
        if not (isinstance(self.vocab_size, int) and self.vocab_size >= 3):
            raise ValueError(f"vocab_size must be an int >= 3, got {self.vocab_size!r}")
        if not (isinstance(self.min_period, int) and isinstance(self.max_period, int)
                and 2 <= self.min_period <= self.max_period):
            raise ValueError(f"need 2 <= min_period <= max_period, got {self.min_period!r}, {self.max_period!r}")
        if not isinstance(self.length, int) or self.length < 2 * self.max_period + 2:
            raise ValueError(f"length must be an int >= 2 * max_period + 2 = {2 * self.max_period + 2} (room for "
                             f"the beginning token and two copies of the longest segment), got {self.length!r}")
        if not 0.0 <= self.rule_share <= 1.0:
            raise ValueError(f"rule_share must be in [0, 1], got {self.rule_share!r}")

    @property
    def periods(self) -> range:
        return range(self.min_period, self.max_period + 1)


def rule_table(task: ToyTask) -> torch.Tensor:
    """(vocab_size,) the background rule: a token two places after token v is ``table[v]`` when the rule
    applies. A random permutation of the tokens 1 .. vocab_size - 1 (chosen by ``task.seed``)."""
    generator = torch.Generator().manual_seed(task.seed)
    return torch.cat([torch.tensor([1]), 1 + torch.randperm(task.vocab_size - 1, generator=generator)])


def repeated_segments(task: ToyTask, n_sequences: int, generator: torch.Generator) -> torch.Tensor:
    """(n_sequences, task.length) token ids: token 0, background tokens, then from a random start ``s`` a
    segment of ``P`` tokens (``P`` drawn per sequence) repeated to the end, so token t = token t - P for
    every t >= s + P. Background token t >= 3 is ``rule_table(task)[token t - 2]`` with probability
    ``task.rule_share``, else uniform over 1 .. vocab_size - 1."""
    n, length = n_sequences, task.length
    tokens = torch.randint(1, task.vocab_size, (n, length), generator=generator)
    follows_rule = torch.rand(n, length, generator=generator) < task.rule_share
    table = rule_table(task)
    for t in range(3, length):
        tokens[:, t] = torch.where(follows_rule[:, t], table[tokens[:, t - 2]], tokens[:, t])
    period = torch.randint(task.min_period, task.max_period + 1, (n, 1), generator=generator)
    start = 1 + (torch.rand(n, 1, generator=generator) * (length - 2 * period)).long()  # s + 2P <= length
    t = torch.arange(length)[None]
    source = torch.where(t < start + period, t, start + (t - start) % period)
    ids = tokens.gather(1, source)
    ids[:, 0] = BOS
    return ids


class RepeatedSegments(torch.utils.data.Dataset):
    """``size`` training sequences for :func:`gpt2lab.training.train`, drawn at once (vectorised) from a
    generator seeded with ``seed``; item i is always the same sequence, given as ``input_ids`` and
    next-token ``labels``. Memory: size x task.length x 8 bytes."""

    def __init__(self, task: ToyTask, size: int = 100_000, seed: int = 0):
        self.task, self.size, self.seed = task, size, seed
        self.ids = repeated_segments(task, size, torch.Generator().manual_seed(seed))

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        ids = self.ids[int(i)]
        return {"input_ids": ids[:-1], "labels": ids[1:]}


def repeat_twice(vocab_size: int, period: int, seed: int = 0, n_sequences: int = 1) -> torch.Tensor:
    """(n_sequences, 1 + 2 period) ids ``[BOS, A, A]``, A ``period`` uniform random tokens of 1 .. vocab_size - 1:
    the sequences induction and previous-token scores are measured on (Olsson et al. 2022)."""
    generator = torch.Generator().manual_seed(seed)
    segment = torch.randint(1, vocab_size, (n_sequences, period), generator=generator)
    return torch.cat([torch.full((n_sequences, 1), BOS), segment, segment], dim=1)


@torch.no_grad()
def measure_heads(model: GPT, periods, n_sequences: int = 8, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """(induction, previous_token) scores, each (n_layer, n_head) in [0, 1], of ``model`` on
    ``n_sequences`` rows of ``[BOS, A, A]`` for each segment length in ``periods`` (an int or several),
    averaged over them. Raises ValueError for a period the model's context cannot hold."""
    periods = [periods] if isinstance(periods, int) else list(periods)
    longest = (model.config.context_length - 1) // 2
    if not periods or min(periods) < 2 or max(periods) > longest:
        raise ValueError(f"periods must lie in 2..{longest} for a context of {model.config.context_length}, "
                         f"got {periods}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    induction, previous = [], []
    for period in periods:
        ids = repeat_twice(model.config.vocab_size, period, seed + period, n_sequences).to(device)
        weights = torch.stack(model(ids, return_attention=True).attentions, dim=1).float().cpu()  # (B, L, H, T, T)
        induction += [induction_score(w, period=period, start=1) for w in weights]
        previous += [previous_token_score(w) for w in weights]
    model.train(was_training)
    return np.mean(induction, axis=0), np.mean(previous, axis=0)


@torch.no_grad()
def attention_pattern(model: GPT, ids: torch.Tensor) -> np.ndarray:
    """(n_layer, n_head, T, T) every head's attention on one sequence ``ids`` (T,), in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    weights = model(ids.reshape(1, -1).to(device), return_attention=True).attentions
    model.train(was_training)
    return torch.stack([w[0] for w in weights]).float().cpu().numpy()


@contextlib.contextmanager
def head_knocked_out(model: GPT, layer: int, head: int):
    """Within the ``with`` block, head ``head`` of block ``layer`` writes nothing: its slice of the merged
    heads is zeroed before the output projection (a zero ablation). Raises ValueError out of range."""
    cfg = model.config
    if not (0 <= layer < cfg.n_layer and 0 <= head < cfg.n_head):
        raise ValueError(f"layer must be in 0..{cfg.n_layer - 1} and head in 0..{cfg.n_head - 1}, got {layer}, {head}")
    columns = slice(head * cfg.head_dim, (head + 1) * cfg.head_dim)

    def silence(module, args):
        merged = args[0].clone()
        merged[..., columns] = 0
        return (merged, *args[1:])

    handle = model.blocks[layer].attn.out.register_forward_pre_hook(silence)
    try:
        yield model
    finally:
        handle.remove()


@dataclass
class InductionRun:
    """What ``train_induction_toy`` recorded.

    steps: the steps measured; loss: mean training loss (nats/token) since the previous record;
    induction / previous_token: (n_records, n_layer, n_head) head scores at those steps (averaged over
    the task's segment lengths); pattern_ids: (1 + 2 * task.max_period,) one ``[BOS, A, A]`` sequence
    and patterns: (n_records, n_layer, n_head, T, T) every head's attention on it at those steps (what
    the lesson's explorer shows, recorded so it never retrains); seconds: wall-clock time of the training.
    """

    model: GPT
    task: ToyTask
    steps: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    induction: np.ndarray | None = None
    previous_token: np.ndarray | None = None
    pattern_ids: torch.Tensor | None = None
    patterns: np.ndarray | None = None
    seconds: float = 0.0

    @property
    def best_induction(self) -> float:
        """The highest induction score of any head at the end of training."""
        return float(self.induction[-1].max())

    @property
    def induction_head(self) -> tuple[int, int]:
        """(layer, head) of the head with the highest final induction score."""
        return tuple(int(i) for i in np.unravel_index(self.induction[-1].argmax(), self.induction[-1].shape))

    @property
    def previous_token_head(self) -> tuple[int, int]:
        """(layer, head) of the layer-0 head with the highest final previous-token score."""
        return 0, int(self.previous_token[-1, 0].argmax())

    def drop_step(self) -> int:
        """The step at which the best induction score rose the most between two records: where the loss
        drop of the phase change happens (the training loss itself is noisy from batch to batch)."""
        best = self.induction.max(axis=(1, 2))
        return int(self.steps[int(np.argmax(np.diff(best))) + 1]) if len(best) > 1 else int(self.steps[-1])

    def plot(self, axes=None):
        """Loss and the best induction / previous-token scores over steps, the drop step marked."""
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        fig = axes[0].figure
        drop = self.drop_step()
        axes[0].plot(self.steps, self.loss, ".-")
        axes[0].axhline(math.log(self.task.vocab_size - 1), ls=":", color="gray", label="uniform guess")
        axes[0].set_ylabel("training loss (nats/token)")
        axes[1].plot(self.steps, self.induction[:, 1].max(axis=1), ".-", label="best induction score, layer 1")
        axes[1].plot(self.steps, self.previous_token[:, 0].max(axis=1), ".-",
                     label="best previous-token score, layer 0")
        axes[1].set_ylim(0, 1)
        axes[1].set_ylabel("score")
        for ax in axes:
            ax.axvline(drop, color="orange", lw=1, label=f"induction forms (step {drop})")
            ax.set_xlabel("training step")
            ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def train_induction_toy(task: ToyTask | None = None, *, d_model: int = 64, n_head: int = 4, steps: int = 4000,
                        batch_size: int = 32, learning_rate: float = 6e-3, eval_every: int = 250, seed: int = 0,
                        progress: bool = False, device: str = "cpu") -> InductionRun:
    """Train a two-layer attention-only GPT (with LayerNorm, no MLPs) on :func:`repeated_segments` with
    :func:`gpt2lab.training.train` (AdamW, constant learning rate after 50 warmup steps, no weight decay),
    measuring head scores every ``eval_every`` steps with :func:`measure_heads`.

    device: "cpu" or "auto" (a GPU when there is one). Returns an :class:`InductionRun`. Raises
    ValueError for sizes that are not positive ints.
    """
    from gpt2lab.training.loop import TrainConfig, train

    task = task or ToyTask()
    for name, value in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=task.vocab_size, context_length=task.length, n_layer=2, n_head=n_head,
                          d_model=d_model, attention_only=True))
    run, records = InductionRun(model=model, task=task), []
    run.pattern_ids = repeat_twice(task.vocab_size, task.max_period, seed=PATTERN_SEED)[0]

    def on_log(record):
        if "loss" in record:
            records.append((record["step"], record["loss"], *measure_heads(model, task.periods),
                            attention_pattern(model, run.pattern_ids)))

    start = time.perf_counter()
    config = TrainConfig(max_steps=steps, batch_size=batch_size, learning_rate=learning_rate, warmup_steps=50,
                         min_lr_ratio=1.0, weight_decay=0.0, betas=(0.9, 0.98), grad_clip=0.0, log_every=eval_every,
                         eval_every=steps, progress=progress, seed=seed, device=device, mixed_precision="no")
    train(model, RepeatedSegments(task, size=steps * batch_size, seed=seed), config=config, on_log=on_log)
    model.eval()
    run.seconds = time.perf_counter() - start
    run.steps, run.loss = [r[0] for r in records], [r[1] for r in records]
    run.induction, run.previous_token = np.stack([r[2] for r in records]), np.stack([r[3] for r in records])
    run.patterns = np.stack([r[4] for r in records])
    return run
