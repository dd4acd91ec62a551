"""The residual stream of a GPT-2 run, recorded with hooks: what the interpretability tools share.

GPT-2's residual stream is a sum (Elhage et al. 2021, "A Mathematical Framework for Transformer
Circuits"): the embeddings, plus what every attention layer adds (one term per head and the output
bias), plus what every MLP adds. ``record_stream(lm, ids)`` runs the model once and keeps, for every
position:

* ``resid[i]``: the residual stream after ``i`` blocks (``resid[0]`` = token + position embeddings,
  ``resid[n_layer]`` = what the final LayerNorm reads), shape (n_layer + 1, T, d_model);
* ``z[l]``: the heads' outputs of layer ``l`` side by side, before the output projection ``c_proj``,
  shape (n_layer, T, d_model); head ``h`` owns columns ``h*head_dim .. (h+1)*head_dim``;
* ``mlp[l]``: what MLP ``l`` adds, shape (n_layer, T, d_model);
* ``logits``: the model's own output, (T, vocab).

It works on GPT-2-family models (``transformers``' ``GPT2LMHeadModel``: gpt2 .. gpt2-xl, distilgpt2, the
embedded model); anything else raises :class:`~gpt2lab.families.UnsupportedModelError` naming what is
supported, before any work.
"""
from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gpt2lab.attention.by_hand import block_input_hook, block_output_hook, gpt2_trunk, layer_norm_by_hand, token_ids
from gpt2lab.attention.capture import readable_tokens

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["TOOLS", "StreamRecord", "gpt2_lm", "target_id", "record_stream", "final_logit"]

TOOLS = "the residual-stream tools (logit_lens, direct_logit_attribution, activation_patching)"


def gpt2_lm(lm: LM):
    """The ``GPT2LMHeadModel`` of ``lm``, checked before any work: TypeError when ``lm`` is not a
    :class:`gpt2lab.LM`, :class:`~gpt2lab.families.UnsupportedModelError` naming the supported family
    for other architectures (see :func:`gpt2lab.attention.by_hand.gpt2_trunk`)."""
    gpt2_trunk(lm, TOOLS)
    return lm.model


def target_id(lm: LM, target) -> int:
    """A target token as its id: an integer in the vocabulary (a Python, NumPy or 0-d torch integer, such as
    ``logits.argmax()``), or a string that is exactly one token."""
    vocab = lm.model.config.vocab_size
    if not isinstance(target, (str, bool)) and hasattr(target, "__index__"):
        try:
            target = operator.index(target)  # numpy / 0-d torch integers; floats and bigger tensors refuse
        except TypeError:
            pass
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        raise TypeError(f"target must be a token id (int) or a one-token string, got {type(target).__name__}")
    if isinstance(target, int):
        if not 0 <= target < vocab:
            raise ValueError(f"target id {target} is outside the vocabulary of {lm.name!r} (0..{vocab - 1})")
        return target
    ids = lm.tokenizer(target, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = readable_tokens(lm, ids) if ids else []
        raise ValueError(f"target {target!r} is {len(ids)} tokens for {lm.name!r} ({pieces}); give exactly one "
                         f"token, e.g. {pieces[0]!r}, or its id" if pieces else
                         f"target {target!r} gives no token; give one token or its id")
    return int(ids[0])


@dataclass
class StreamRecord:
    """One run's residual stream, head outputs and MLP outputs (float32 copies on the model's device)."""

    token_ids: torch.Tensor  # (T,)
    tokens: list[str]
    resid: torch.Tensor  # (n_layer + 1, T, d_model)
    z: torch.Tensor  # (n_layer, T, d_model)
    mlp: torch.Tensor  # (n_layer, T, d_model)
    logits: torch.Tensor  # (T, vocab), the model's own

    @property
    def n_layer(self) -> int:
        return int(self.z.shape[0])


@contextlib.contextmanager
def _hooks(handles):
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def record_stream(lm: LM, text) -> StreamRecord:
    """Run ``lm`` once on ``text`` (a string or token ids) and record its residual stream (see the module)."""
    model = gpt2_lm(lm)
    ids = token_ids(lm, text)
    blocks = model.transformer.h
    resid, z, mlp = {}, {}, {}

    def keep(store, key):
        def save(hidden):
            store[key] = hidden[0].detach().float()
        return save

    handles = [block_input_hook(blocks[0], keep(resid, 0))]
    for layer, block in enumerate(blocks):
        handles.append(block_output_hook(block, keep(resid, layer + 1)))
        handles.append(block.attn.c_proj.register_forward_pre_hook(
            lambda module, args, layer=layer: keep(z, layer)(args[0])))
        handles.append(block.mlp.register_forward_hook(
            lambda module, args, output, layer=layer: keep(mlp, layer)(output)))
    with _hooks(handles), torch.no_grad():
        logits = model(input_ids=ids[None], attention_mask=torch.ones_like(ids[None]), use_cache=False).logits[0]
    n = len(blocks)
    return StreamRecord(token_ids=ids, tokens=readable_tokens(lm, ids),
                        resid=torch.stack([resid[i] for i in range(n + 1)]),
                        z=torch.stack([z[i] for i in range(n)]), mlp=torch.stack([mlp[i] for i in range(n)]),
                        logits=logits.detach().float())


def final_logit(model, resid_last: torch.Tensor, target: int) -> torch.Tensor:
    """The target's logit from the final residual stream (..., d_model), in float64: the final LayerNorm
    then the output layer's row for ``target``, as the model computes it."""
    ln_f = model.transformer.ln_f
    normed = layer_norm_by_hand(resid_last.double(), ln_f.weight.double(), ln_f.bias.double(), ln_f.eps)
    return normed @ model.get_output_embeddings().weight[target].double()
