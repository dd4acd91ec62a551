"""Snapshots of a GPT's weights kept while it trains, to look back at what it wrote at each stage.

``Snapshots(model, every=...)`` copies the weights at step 0 at once; passed as ``on_log`` to
:func:`gpt2lab.training.train`, it copies them again every ``every`` steps (with the training loss
logged there; make ``every`` a multiple of the loop's ``log_every``). :meth:`Snapshots.sample`
continues a prompt with the weights of one step, on a spare copy of the model, so the model being
trained is never touched. The "build and train a GPT" lesson's explorer slides over them
(:func:`gpt2lab.widgets.training_explorer`).
Memory: one CPU copy of the weights per snapshot (the quick lesson model: ~0.4 MB each).
"""
from __future__ import annotations

import copy

import torch

from gpt2lab.model.gpt import GPT

__all__ = ["Snapshots"]


class Snapshots:
    """Copies of ``model``'s weights (on the CPU) at step 0 and every ``every`` training steps.

    steps: the steps kept, in order; loss: the training loss (nats per token) logged at each kept step
    (None at step 0). Use the object as ``train(..., on_log=snapshots)``.
    """

    def __init__(self, model: GPT, every: int):
        if not isinstance(model, GPT):
            raise TypeError(f"model must be a gpt2lab.model.GPT, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.model, self.every = model, every
        self.weights: dict[int, dict] = {}
        self.loss: dict[int, float | None] = {}
        self._spare: GPT | None = None
        self._loaded: int | None = None
        self.take(0)

    @property
    def steps(self) -> list[int]:
        return sorted(self.weights)

    def take(self, step: int, loss: float | None = None) -> None:
        """Keep a CPU copy of the model's weights now, as those of ``step``."""
        self.weights[int(step)] = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        self.loss[int(step)] = loss
        if self._loaded == int(step):
            self._loaded = None

    def __call__(self, record: dict) -> None:
        """The ``on_log`` callback: keep a snapshot at a logged step (one with a training loss) that is at
        least ``every`` steps after the last one kept (so with ``every`` a multiple of the loop's
        ``log_every``, exactly at the multiples of ``every``)."""
        step = record.get("step")
        if "loss" in record and step is not None and step - max(self.weights) >= self.every:
            self.take(step, float(record["loss"]))

    def model_at(self, step: int) -> GPT:
        """A spare copy of the model (in eval mode, on the CPU) holding the weights of ``step``; the same
        copy is reused by every call. Raises KeyError naming the steps kept."""
        if step not in self.weights:
            raise KeyError(f"no snapshot at step {step}; kept: {self.steps}")
        if self._spare is None:
            self._spare = copy.deepcopy(self.model).to("cpu").eval()
        if self._loaded != step:
            self._spare.load_state_dict(self.weights[step])
            self._loaded = step
        return self._spare

    @torch.no_grad()
    def sample(self, step: int, prompt_ids, max_new_tokens: int, temperature: float = 1.0, seed: int = 0) -> list[int]:
        """``prompt_ids`` continued by ``max_new_tokens`` tokens sampled at ``temperature`` (a generator
        seeded with ``seed``) from the weights of ``step``: the ids, prompt included."""
        generator = torch.Generator().manual_seed(seed)
        ids = torch.as_tensor(prompt_ids).cpu()
        return self.model_at(step).sample(ids, max_new_tokens, temperature=temperature, generator=generator).tolist()
