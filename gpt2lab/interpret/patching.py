"""Activation patching: copy one activation from a clean run into a corrupted run and see how much of
the clean answer comes back (Meng et al. 2022, "Locating and Editing Factual Associations in GPT", who
call it causal tracing; Heimersheim & Nanda 2024, "How to use and interpret activation patching").

Two texts of the same token length differ where it matters: the **clean** one leads to the target
token, the **corrupt** one does not. The metric is the target's logit at the last position; each patch
is scored as

    effect = (patched - corrupt) / (clean - corrupt)

so 1 means the patch alone restores the clean answer and 0 means it changes nothing.

* ``effect`` (n_layer + 1, n_tokens): the residual stream at row i (0 = embeddings, i = after block i)
  and one position, patched. Row n_layer at the last position is the whole final residual there, so it
  gives exactly 1; the other positions of that row give exactly 0 (nothing reads them any more).
* ``head_effect`` (n_layer, n_head): one head's output (before the output projection), at every position.

GPT-2-family models only (others raise a clear error before any work).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from gpt2lab.attention.by_hand import block_input_hook, block_output_hook, token_ids
from gpt2lab.interpret.stream import final_logit, gpt2_lm, record_stream, target_id

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["PatchingResult", "activation_patching"]


@dataclass
class PatchingResult:
    """Effects of activation patching, 1 = clean answer restored, 0 = no change (see the module)."""

    effect: np.ndarray  # (n_layer + 1, n_tokens)
    head_effect: np.ndarray  # (n_layer, n_head)
    clean_logit: float
    corrupt_logit: float
    target: int
    target_token: str
    clean_tokens: list[str]
    corrupt_tokens: list[str]
    model_name: str = ""

    @property
    def layer_labels(self) -> list[str]:
        return ["embed"] + [f"after block {i}" for i in range(self.effect.shape[0] - 1)]

    def plot(self, axes=None):
        """Heatmaps of ``effect`` (layers x positions) and ``head_effect`` (layers x heads), see
        :func:`gpt2lab.interpret.views.plot_patching`."""
        from gpt2lab.interpret.views import plot_patching

        return plot_patching(self, axes=axes)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


@torch.no_grad()
def activation_patching(lm: LM, clean, corrupt, target, batch_size: int = 16) -> PatchingResult:
    """Patch every residual-stream position and every head from the ``clean`` run into the ``corrupt`` run.

    clean, corrupt: strings (or token ids) with the same number of tokens; target: a token id or a
    one-token string. Patched runs are batched ``batch_size`` at a time (memory: batch_size x a forward
    pass). Raises ValueError when the token lengths differ, when clean and corrupt give the same target
    logit (nothing to restore), or for a target that is not one token; TypeError / ValueError naming what
    is supported for non-GPT-2 models.
    """
    model = gpt2_lm(lm)
    batch_size = _check_batch_size(batch_size)
    target = target_id(lm, target)
    clean_ids, corrupt_ids = token_ids(lm, clean), token_ids(lm, corrupt)
    if clean_ids.numel() != corrupt_ids.numel():
        raise ValueError(f"clean is {clean_ids.numel()} tokens and corrupt is {corrupt_ids.numel()} for {lm.name!r}; "
                         "activation patching needs texts of the same token length (change words for words "
                         "of the same token count)")
    clean_run, corrupt_run = record_stream(lm, clean_ids), record_stream(lm, corrupt_ids)
    clean_logit = float(final_logit(model, clean_run.resid[-1, -1], target))
    corrupt_logit = float(final_logit(model, corrupt_run.resid[-1, -1], target))
    gap = clean_logit - corrupt_logit
    if abs(gap) < 1e-6 * max(1.0, abs(clean_logit)):
        raise ValueError(f"clean and corrupt give the target {target} the same logit ({clean_logit:.6g}); there is "
                         "nothing for patching to restore - choose a corrupt text that changes the answer")
    blocks = model.transformer.h
    n_layer, n_tokens = len(blocks), clean_ids.numel()
    n_head = model.config.n_head
    head_dim = model.config.n_embd // n_head

    def patched_metric(n_runs: int, register) -> np.ndarray:
        """Run the corrupt text ``n_runs`` times with hooks from ``register(rows, first)`` (run ``first + r``
        in batch row r) and return the effect of each run."""
        final, out = {}, []
        for first in range(0, n_runs, batch_size):
            rows = min(batch_size, n_runs - first)
            batch = corrupt_ids[None].expand(rows, -1)
            handles = register(rows, first) + [block_output_hook(blocks[-1], lambda h: final.__setitem__(0, h))]
            try:
                model.transformer(input_ids=batch, attention_mask=torch.ones_like(batch), use_cache=False)
            finally:
                for handle in handles:
                    handle.remove()
            # one vector at a time, as for the clean run: the same input gives the same bits
            out.extend((float(final_logit(model, row.float(), target)) - corrupt_logit) / gap
                       for row in final[0][:, -1])
        return np.array(out)

    def patch_position(row: int):
        clean_resid = clean_run.resid[row]

        def register(rows, first):
            def edit(hidden):
                hidden = hidden.clone()
                for r in range(rows):
                    hidden[r, first + r] = clean_resid[first + r].to(hidden.dtype)
                return hidden
            return [block_input_hook(blocks[0], edit) if row == 0 else block_output_hook(blocks[row - 1], edit)]
        return register

    def patch_head(layer: int):
        clean_z = clean_run.z[layer]

        def register(rows, first):
            def hook(module, args):
                z = args[0].clone()
                for r in range(rows):
                    cols = slice((first + r) * head_dim, (first + r + 1) * head_dim)
                    z[r, :, cols] = clean_z[:, cols].to(z.dtype)
                return (z, *args[1:])
            return [blocks[layer].attn.c_proj.register_forward_pre_hook(hook)]
        return register

    effect = np.stack([patched_metric(n_tokens, patch_position(row)) for row in range(n_layer + 1)])
    head_effect = np.stack([patched_metric(n_head, patch_head(layer)) for layer in range(n_layer)])
    return PatchingResult(effect=effect, head_effect=head_effect, clean_logit=clean_logit,
                          corrupt_logit=corrupt_logit, target=target, target_token=lm.tokenizer.decode([target]),
                          clean_tokens=clean_run.tokens, corrupt_tokens=corrupt_run.tokens, model_name=lm.name)
