"""Training windows in which text repeats: the embedded model's documented training-data choice.

Web text, which GPT-2 read, repeats itself all the time (quotes, lists, boilerplate, names), and a
model learns to copy - with induction heads (Olsson et al. 2022) - because copying pays there.
Tinyshakespeare repeats too little for a small model to learn that in a short run, so
:class:`RepeatingWindows` makes a share of the training windows repeat. Validation text is never
altered: measure held-out figures on :class:`gpt2lab.training.loop.PackedBlocks` of untouched text.
"""
from __future__ import annotations

import numpy as np
import torch

from gpt2lab.training.loop import RandomWindows

__all__ = ["RepeatingWindows"]


class RepeatingWindows(RandomWindows):
    """:class:`~gpt2lab.training.loop.RandomWindows` where a share of the windows contain a repeat.

    Item ``i`` is drawn with a generator seeded by (``seed``, ``i``), so every item is always the same
    window and a resumed run sees the batches it would have seen. With probability:

    * ``span_share``: a span of ``span_min``..``span_max`` tokens of the window's own text is copied
      over a later stretch of the same window (the copy starts anywhere after the span ends);
    * ``random_share``: the window starts with ``bos`` then ``random_min``..``random_max`` tokens drawn
      uniformly from ``allowed`` (ids seen in training), then the same tokens again, then the window's
      own text. The first copy cannot be predicted, so its labels are -100 (not trained on);
    * otherwise: the plain window.

    Items are dicts of ``input_ids`` and ``labels``, each (block_size,) int64. Raises ValueError when
    shares are outside [0, 1] or sum above 1, when a span and its copy cannot fit in one window, or
    when ``random_share`` > 0 comes without ``allowed`` and ``bos``.
    """

    def __init__(self, ids, block_size: int, seed: int = 0, *, span_share: float = 0.2, span_min: int = 10,
                 span_max: int = 100, random_share: float = 0.0, random_min: int = 10, random_max: int = 60,
                 allowed=None, bos: int | None = None, length: int | None = None):
        super().__init__(ids, block_size, seed=seed, length=length)
        for name, share in (("span_share", span_share), ("random_share", random_share)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {share}")
        if span_share + random_share > 1.0:
            raise ValueError(f"span_share + random_share must be <= 1, got {span_share + random_share}")
        for name, low, high in (("span", span_min, span_max), ("random", random_min, random_max)):
            if not 2 <= low <= high:
                raise ValueError(f"need 2 <= {name}_min <= {name}_max, got {low} and {high}")
        if 2 * span_max > block_size + 1 or 1 + 2 * random_max > block_size + 1:
            raise ValueError(f"a span and its copy must fit in one window of {block_size + 1} tokens: "
                             f"span_max <= {(block_size + 1) // 2}, random_max <= {block_size // 2}")
        if random_share and (allowed is None or bos is None or len(allowed) == 0):
            raise ValueError("random_share > 0 needs the allowed token ids (seen in training) and the bos id")
        self.span_share, self.span_min, self.span_max = span_share, span_min, span_max
        self.random_share, self.random_min, self.random_max = random_share, random_min, random_max
        self.allowed = None if allowed is None else torch.as_tensor(np.asarray(allowed), dtype=torch.long)
        self.bos = bos

    def kind(self, i: int) -> str:
        """Which kind item ``i`` is: "span", "random" or "plain"."""
        u = self._rng(i).random()
        return "span" if u < self.span_share else "random" if u < self.span_share + self.random_share else "plain"

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, 7919, int(i)))

    def __getitem__(self, i):
        offset = self.offset(i)
        window = self.ids[offset: offset + self.block_size + 1].clone()
        trained = torch.ones(self.block_size, dtype=torch.bool)
        rng = self._rng(i)
        u, n = rng.random(), len(window)
        if u < self.span_share:
            span = int(rng.integers(self.span_min, self.span_max + 1))
            src = int(rng.integers(0, n - 2 * span + 1))
            dst = int(rng.integers(src + span, n - span + 1))
            window[dst:dst + span] = window[src:src + span]
        elif u < self.span_share + self.random_share:
            span = int(rng.integers(self.random_min, self.random_max + 1))
            tokens = self.allowed[torch.as_tensor(rng.integers(0, len(self.allowed), size=span))]
            window[0] = self.bos
            window[1:1 + span] = tokens
            window[1 + span:1 + 2 * span] = tokens
            trained[:span - 1] = False  # labels 1..span-1 are tokens 2..span of the first copy: noise
        labels = window[1:].clone()
        labels[~trained] = -100
        return {"input_ids": window[:-1], "labels": labels}
