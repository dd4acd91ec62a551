"""The logit lens (nostalgebraist 2020, "interpreting GPT: the logit lens"): read the residual stream
after every block as if it were the last one.

The model turns its final residual stream into logits with the final LayerNorm and the output layer.
Applying those two to the residual stream after 0, 1, ..., n_layer blocks shows what the model "would
say" at each depth, and so at which layer a prediction takes shape. ``logit_lens(lm, text)`` returns
a :class:`LogitLens` with ``logits`` of shape (n_layer + 1, n_tokens, vocab): row 0 reads the
embeddings, row i the residual after i blocks (labelled "after block i-1": blocks are numbered from 0),
and the last row is the model's own logits. GPT-2-family models only (others raise a clear error before any work).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gpt2lab.interpret.stream import gpt2_lm, record_stream

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["LogitLens", "logit_lens"]


@dataclass
class LogitLens:
    """The logit lens of one text.

    logits: float32 CPU tensor (n_layer + 1, n_tokens, vocab); row 0 = embeddings, row i = after block i.
    tokens / token_ids: the text's tokens (readable) and ids; ``layer_labels`` name the rows.
    Memory: (n_layer + 1) x n_tokens x vocab x 4 bytes (GPT-2 small, 30 tokens: 78 MB).
    """

    logits: torch.Tensor
    tokens: list[str]
    token_ids: list[int]
    model_name: str
    tokenizer: object = None

    @property
    def n_rows(self) -> int:
        return int(self.logits.shape[0])

    @property
    def layer_labels(self) -> list[str]:
        return ["embed"] + [f"after block {i}" for i in range(self.n_rows - 1)]

    def log_probs(self) -> torch.Tensor:
        """Log-probabilities (natural log), same shape as ``logits``."""
        return torch.log_softmax(self.logits, dim=-1)

    def final_tokens(self) -> list[int]:
        """The model's own top prediction at each position (the last row's argmax)."""
        return self.logits[-1].argmax(dim=-1).tolist()

    def probability_of(self, targets="final") -> np.ndarray:
        """(n_layer + 1, n_tokens) probability each row gives a token at each position.

        targets: ``"final"`` (the model's own final top prediction there), ``"next"`` (the token that
        actually comes next; the last position, having none, is NaN), one token id for every position,
        or a list of ids, one per position.
        """
        n_tokens = self.logits.shape[1]
        if isinstance(targets, str) and targets in ("final", "next"):
            ids = self.final_tokens() if targets == "final" else self.token_ids[1:] + [None]
        elif isinstance(targets, int) and not isinstance(targets, bool):
            ids = [targets] * n_tokens
        elif isinstance(targets, (list, tuple)) and len(targets) == n_tokens:
            ids = list(targets)
        else:
            raise ValueError(f"targets must be 'final', 'next', a token id or a list of {n_tokens} ids, got "
                             f"{targets!r}")
        vocab = self.logits.shape[2]
        bad = [t for t in ids if t is not None and not 0 <= int(t) < vocab]
        if bad:
            raise ValueError(f"token ids must lie in 0..{vocab - 1}, got {bad[0]!r}")
        probs = torch.softmax(self.logits, dim=-1)
        out = np.full((self.n_rows, n_tokens), np.nan)
        for position, token in enumerate(ids):
            if token is not None:
                out[:, position] = probs[:, position, int(token)].numpy()
        return out

    def top_tokens(self, position: int = -1, k: int = 1) -> list[list[str]]:
        """The ``k`` likeliest tokens of every row at ``position``, decoded (one list per row).
        Raises ValueError for a position outside the text or k outside 1..vocab."""
        n_tokens, vocab = self.logits.shape[1], self.logits.shape[2]
        if isinstance(position, bool) or not isinstance(position, int) or not -n_tokens <= position < n_tokens:
            raise ValueError(f"position must be an int in {-n_tokens}..{n_tokens - 1}, got {position!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= vocab:
            raise ValueError(f"k must be an int in 1..{vocab}, got {k!r}")
        top = self.logits[:, position].topk(k, dim=-1).indices
        return [[self.token_text(i) for i in row.tolist()] for row in top]

    def token_text(self, token: int) -> str:
        """One token id as text (its id as a string when no tokenizer is attached)."""
        return self.tokenizer.decode([token]) if self.tokenizer is not None else str(token)

    def plot(self, targets="final", ax=None, annotate: bool = True):
        """Heatmap (rows: layers, columns: positions) of ``probability_of(targets)``, each cell labelled
        with that row's top token (see :func:`gpt2lab.interpret.views.plot_logit_lens`)."""
        from gpt2lab.interpret.views import plot_logit_lens

        return plot_logit_lens(self, targets=targets, ax=ax, annotate=annotate)


@torch.no_grad()
def logit_lens(lm: LM, text) -> LogitLens:
    """The logit lens of ``text`` (a string or token ids) under ``lm`` (a GPT-2-family :class:`gpt2lab.LM`).

    Every row of the residual stream goes through the model's final LayerNorm and output layer.
    Raises TypeError / ValueError naming what is supported for other models, and ValueError for an
    empty or too long text.
    """
    model = gpt2_lm(lm)
    record = record_stream(lm, text)
    with torch.no_grad():
        unembed = model.get_output_embeddings()
        rows = [unembed(model.transformer.ln_f(r.to(model.dtype))).float().cpu() for r in record.resid]
    return LogitLens(logits=torch.stack(rows), tokens=record.tokens, token_ids=record.token_ids.tolist(),
                     model_name=lm.name, tokenizer=lm.tokenizer)

