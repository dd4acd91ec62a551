"""What word importance perturbs and measures: the model's output Phi at the explained position, and
r^2, the variance of every output dimension over corpus sentences (Guan et al. 2019, section 3).

* :func:`phi` / :func:`last_hidden`: the logits (or the final hidden state) at one position per row,
  from input embeddings; only that position goes through the output layer.
* :func:`output_variance`: r^2 over ``CORPUS_SENTENCES`` tinyshakespeare sentences, cached on disk
  per model (name + weight fingerprint).
* :func:`frozen`: the model's weights without gradients while only the noise levels are optimised.
"""
from __future__ import annotations

import contextlib
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from gpt2lab import files
from gpt2lab.fingerprint import model_fingerprint
from gpt2lab.tokens import bos_id, pad_id, right_pad

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["OUTPUTS", "CORPUS_SENTENCES", "Output", "frozen", "phi", "last_hidden", "corpus_sentences",
           "cache_path", "output_variance"]

Output = Literal["logits", "hidden"]
OUTPUTS: tuple[Output, ...] = ("logits", "hidden")
CORPUS_SENTENCES = 256  # corpus sentences used to estimate r^2
_MIN_VARIANCE_RATIO = 1e-6  # floor for r_d^2 relative to its mean: a constant output must not divide by ~0


@contextlib.contextmanager
def frozen(model: torch.nn.Module):
    """Context manager: the weights of ``model`` need no gradients inside it (restored on exit, also after
    an error). The importance search and captum's gradients need them for the inputs only."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def phi(model: torch.nn.Module, embeds: torch.Tensor, last: torch.Tensor,
        attention_mask: torch.Tensor | None = None, output: Output = "logits") -> torch.Tensor:
    """Phi: the model's output at position ``last[b]`` of each row, from input embeddings.

    embeds: (batch, T, d_model) input embeddings; last: (batch,) positions; attention_mask: (batch, T).
    Returns float32 (batch, vocab) logits for ``output="logits"``, (batch, d_model) final hidden states
    for ``"hidden"``. The transformer runs on every position, but only the explained position goes
    through the output layer (for GPT-2 that layer alone holds a third of the weights).
    """
    hidden = last_hidden(model, embeds, last, attention_mask)
    if output == "hidden":
        return hidden.float()
    return model.get_output_embeddings()(hidden).float()


def last_hidden(model: torch.nn.Module, embeds: torch.Tensor, last: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, d_model): the final hidden state (after the last layer norm) at position ``last[b]`` of each
    row of ``embeds`` (batch, T, d_model), in the model's dtype."""
    base = getattr(model, "base_model", model)
    out = base(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False)
    return out.last_hidden_state[torch.arange(embeds.shape[0], device=embeds.device), last]


def corpus_sentences(n: int = CORPUS_SENTENCES, seed: int = 0) -> list[str]:
    """``n`` sentences (3 to 40 words) sampled from the tinyshakespeare validation split (fewer when the
    split has fewer). Raises ``gpt2lab.data.DataUnavailableError`` when the corpus cannot be found."""
    from gpt2lab import data

    _, val = data.tinyshakespeare_split()
    pieces = re.split(r"(?<=[.!?])\s+", re.sub(r"\n(?=\S)", " ", val))
    sentences = [s.strip() for s in pieces if 3 <= len(s.split()) <= 40]
    rng = random.Random(seed)
    return rng.sample(sentences, min(n, len(sentences)))


def cache_path(lm: LM, output: Output, bos: bool, n: int) -> Path:
    """Where :func:`output_variance` keeps r^2 of this model (name + weight fingerprint), output, BOS and n."""
    from gpt2lab import data

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(lm.name))[:60] or "model"
    return (data.cache_dir() / "importance"
            / f"r2-{safe}-{model_fingerprint(lm.model)}-{output}-{'bos' if bos else 'nobos'}-n{n}.pt")


def output_variance(lm: LM, output: Output = "logits", bos: bool = True, n_sentences: int = CORPUS_SENTENCES,
                    refresh: bool = False, batch_size: int = 32) -> torch.Tensor:
    """r^2: the variance of every output dimension of Phi over ``n_sentences`` corpus sentences
    (Guan et al. 2019 normalise the fit term by it, so every dimension counts in its own units).

    Returns float32 (vocab,) for ``output="logits"`` or (d_model,) for ``"hidden"`` on the model's
    device, in squared output units, floored at 1e-6 x its mean. Computed once per model (keyed by
    name and a fingerprint of the weights) and cached on disk under the gpt2lab cache dir
    (``$GPT2LAB_CACHE``/importance); ``refresh=True`` computes it again. Raises ValueError for an
    unknown output and ``gpt2lab.data.DataUnavailableError`` when the corpus cannot be found.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r} is not allowed; use one of {OUTPUTS}")
    path = cache_path(lm, output, bos, n_sentences)
    if path.is_file() and not refresh:
        try:
            return torch.load(path, map_location="cpu", weights_only=True).to(lm.device)
        except (OSError, RuntimeError, EOFError):
            path.unlink(missing_ok=True)  # a damaged cache file: compute again
    sentences = corpus_sentences(n_sentences)
    limit = lm.context_length - int(bos)
    outputs = []
    with torch.inference_mode():
        for i in range(0, len(sentences), batch_size):
            rows = [list(lm.tokenizer(s, add_special_tokens=False)["input_ids"])[:limit]
                    for s in sentences[i:i + batch_size]]
            if bos:
                rows = [[bos_id(lm.tokenizer)] + r for r in rows]
            ids, mask, last = right_pad(rows, pad_id(lm.tokenizer), lm.device)
            outputs.append(phi(lm.model, lm.model.get_input_embeddings()(ids), last, mask, output))
    values = torch.cat(outputs)
    variance = values.var(dim=0, unbiased=False)
    variance = variance.clamp_min(variance.mean() * _MIN_VARIANCE_RATIO).float()
    with files.atomic_file(path, "wb") as fh:  # a concurrent reader never sees half a file
        torch.save(variance.cpu(), fh)
    return variance.to(lm.device)
