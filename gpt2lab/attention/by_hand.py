"""Attention, opened up: a GPT-2 block recomputed by hand and checked against the real model.

``block_by_hand(lm, text, layer)`` recomputes one transformer block from the model's own weights with
plain tensor operations and returns every intermediate under a name a learner can follow (``ln_1``,
``query``, ``scores``, ``attention_weights``, ``mlp_gelu``, ...). ``embed_by_hand`` does the same for
the token and position embeddings, ``forward_by_hand`` chains all blocks up to the logits, and
``compare_with_model`` shows, layer by layer, how far the hand computation is from what the real
model computed (float32: below 1e-5). The real model's attention weights come through the one
capture path, :func:`gpt2lab.attention.capture.attention_weights`.

Sources: the transformer block of Vaswani et al. 2017 ("Attention Is All You Need") in GPT-2's
pre-norm form (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"), layer
norm (Ba et al. 2016) and GELU (Hendrycks & Gimpel 2016); checked against transformers' GPT2Model.
GPT-2 details the hand computation follows (transformers' eager kernel does the same):
  * ``c_attn``/``c_proj``/``c_fc`` are ``Conv1D`` layers whose weight is stored (in, out), so the
    projection is ``x @ W + b`` with no transpose (an ``nn.Linear`` would store (out, in));
  * scores are multiplied by ``head_dim ** -0.5`` (and divided by ``layer + 1`` when the config asks
    for ``scale_attn_by_inverse_layer_idx``);
  * future positions get a huge negative score before the softmax, so their weight is exactly 0;
  * the activation is the tanh approximation of GELU ("gelu_new").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gpt2lab.attention.capture import (
    attention_weights,
    check_layer,
    check_lm,
    given_ids,
    readable_tokens,
)
from gpt2lab.families import UnsupportedModelError, require_gpt2

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["BY_HAND_TOOL", "gpt2_trunk", "block_input_hook", "block_output_hook", "token_ids", "Embeddings",
           "embed_by_hand", "BLOCK_STEPS", "BlockComputation", "layer_norm_by_hand", "gelu_by_hand", "make_causal_mask",
           "run_block_by_hand", "ModelReference", "model_reference", "block_by_hand",
           "ForwardByHand", "forward_by_hand", "compare_with_model"]


# ----------------------------------------------------------------------------------------------
# input checks


BY_HAND_TOOL = "the by-hand computation (block_by_hand, embed_by_hand, forward_by_hand, compare_with_model)"


def gpt2_trunk(lm: LM, tool: str = BY_HAND_TOOL):
    """The GPT-2 trunk (``lm.model.transformer``) of a :class:`gpt2lab.LM`, checked before any work.

    ``tool`` names what asks, in the error. Raises TypeError when ``lm`` is not a ``gpt2lab.LM`` and
    :class:`~gpt2lab.families.UnsupportedModelError` (a TypeError) naming the supported family for
    other architectures or a model without GPT-2's layout (``transformer.h[i].attn.c_attn``).
    """
    check_lm(lm)
    require_gpt2(lm, tool)  # before any work: other families get one sentence naming the supported one
    trunk = getattr(lm.model, "transformer", None)
    blocks = getattr(trunk, "h", None)
    if trunk is None or blocks is None or not hasattr(blocks[0], "attn") or not hasattr(blocks[0].attn, "c_attn"):
        raise UnsupportedModelError(f"{tool}: GPT-2's layout (transformer.h[i].attn.c_attn) only; model "
                                    f"{type(lm.model).__name__} ({lm.name!r}) does not have it")
    return trunk


def token_ids(lm: LM, text: str | list[int] | torch.Tensor) -> torch.Tensor:
    """(T,) int64 token ids on the model's device for ``text`` (a string, or token ids already).
    Raises ValueError for an empty text or one longer than the model's context, TypeError or
    ValueError for ids that are not ints of the vocabulary."""
    check_lm(lm)
    if isinstance(text, str):
        if not text:
            raise ValueError("text is empty; give at least one character to tokenize")
        ids = lm.tokenizer(text, return_tensors="pt", verbose=False)["input_ids"][0]
    else:
        ids = torch.tensor(given_ids(lm, text), dtype=torch.long)
    if ids.numel() == 0:
        raise ValueError("text gives no tokens; give at least one token")
    if ids.numel() > lm.context_length:
        raise ValueError(f"text is {ids.numel()} tokens but {lm.name!r} attends over at most "
                         f"{lm.context_length}; shorten it")
    return ids.to(device=lm.device, dtype=torch.long)


# ----------------------------------------------------------------------------------------------
# by hand


@dataclass
class Embeddings:
    """What the first block receives: token embedding + position embedding, one row per token.

    token_embeddings: rows of the token table ``wte`` picked by ``token_ids``   (T, d_model)
    position_embeddings: rows 0..T-1 of the position table ``wpe``              (T, d_model)
    block_input: their sum, the residual stream entering block 0                (T, d_model)
    """

    token_ids: torch.Tensor
    tokens: list[str]
    token_embeddings: torch.Tensor
    position_ids: torch.Tensor
    position_embeddings: torch.Tensor
    block_input: torch.Tensor


def embed_by_hand(lm: LM, text: str | list[int] | torch.Tensor) -> Embeddings:
    """Look up token and position embeddings for ``text`` and add them, as GPT-2 does first
    (shapes in :class:`Embeddings`). Raises TypeError for a model without GPT-2's layout."""
    trunk = gpt2_trunk(lm)
    ids = token_ids(lm, text)
    with torch.no_grad():
        token_table = trunk.wte.weight  # (vocab, d_model)
        position_table = trunk.wpe.weight  # (n_positions, d_model)
        positions = torch.arange(ids.numel(), device=ids.device)
        token_embeddings = token_table[ids]
        position_embeddings = position_table[positions]
        block_input = token_embeddings + position_embeddings
    return Embeddings(token_ids=ids, tokens=readable_tokens(lm, ids), token_embeddings=token_embeddings,
                      position_ids=positions, position_embeddings=position_embeddings, block_input=block_input)


# name -> what it is, in the order the block computes it (used by BlockComputation.describe)
BLOCK_STEPS = {
    "block_input": "residual stream entering the block",
    "ln_1": "first layer norm: each token's vector rescaled to mean 0, variance 1, then * gain + bias",
    "qkv": "fused projection c_attn: ln_1 @ W_attn + b_attn, three d_model-wide slices side by side",
    "query": "first slice of qkv: what each token is looking for",
    "key": "second slice of qkv: what each token offers to be found by",
    "value": "third slice of qkv: what each token passes on when attended to",
    "query_heads": "query split into heads of head_dim columns each",
    "key_heads": "key split into heads",
    "value_heads": "value split into heads",
    "scores": "dot product of every query with every key, per head",
    "scaled_scores": "scores * head_dim ** -0.5 so their spread does not grow with head_dim",
    "causal_mask": "True where a query may look at a key (the key is not in its future)",
    "masked_scores": "scaled scores with -inf at future keys",
    "attention_weights": "softmax over keys: each row is a probability distribution",
    "weighted_values": "attention_weights @ value_heads: a weighted average of values per head",
    "merged_heads": "the heads' outputs laid side by side again",
    "attention_output": "output projection c_proj: merged_heads @ W_proj + b_proj",
    "residual_after_attention": "block_input + attention_output (first residual connection)",
    "ln_2": "second layer norm",
    "mlp_fc": "MLP expansion c_fc: ln_2 @ W_fc + b_fc (4 * d_model wide)",
    "mlp_gelu": "GELU non-linearity (tanh approximation)",
    "mlp_output": "MLP projection back to d_model: mlp_gelu @ W_proj + b_proj",
    "block_output": "residual_after_attention + mlp_output (second residual connection)",
}


@dataclass
class BlockComputation:
    """Every intermediate of one GPT-2 block, computed by hand (T tokens, H heads).

    Shapes: vectors per token are (T, d_model); per-head tensors (H, T, head_dim); attention
    tensors (H, T_query, T_key); ``causal_mask`` is (T, T). ``BLOCK_STEPS`` says what each is.
    """

    layer: int
    n_heads: int
    head_dim: int
    scale: float
    block_input: torch.Tensor
    ln_1: torch.Tensor
    qkv: torch.Tensor
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    query_heads: torch.Tensor
    key_heads: torch.Tensor
    value_heads: torch.Tensor
    scores: torch.Tensor
    scaled_scores: torch.Tensor
    causal_mask: torch.Tensor
    masked_scores: torch.Tensor
    attention_weights: torch.Tensor
    weighted_values: torch.Tensor
    merged_heads: torch.Tensor
    attention_output: torch.Tensor
    residual_after_attention: torch.Tensor
    ln_2: torch.Tensor
    mlp_fc: torch.Tensor
    mlp_gelu: torch.Tensor
    mlp_output: torch.Tensor
    block_output: torch.Tensor

    def steps(self):
        """(name, tensor, description) for each intermediate, in the order they are computed."""
        return [(name, getattr(self, name), text) for name, text in BLOCK_STEPS.items()]

    def describe(self):
        """A table of the intermediates: name, shape and what it is."""
        import pandas as pd

        return pd.DataFrame([{"step": name, "shape": tuple(t.shape), "what it is": text}
                             for name, t, text in self.steps()])


def layer_norm_by_hand(x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Layer norm written out (Ba et al. 2016): centre each row of ``x`` (..., d), divide by its standard
    deviation (biased, plus ``eps``), scale by ``gain`` (d,) and shift by ``bias`` (d,); same shape out."""
    mean = x.mean(dim=-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance, as nn.LayerNorm uses
    return (x - mean) / torch.sqrt(variance + eps) * gain + bias


def gelu_by_hand(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's GELU (Hendrycks & Gimpel 2016), elementwise: the tanh approximation
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def make_causal_mask(n_query: int, n_key: int, device=None) -> torch.Tensor:
    """(n_query, n_key) bool, True where a query may look at a key. The queries are the last ``n_query`` of
    the ``n_key`` positions (n_query = n_key without a KV cache), so query i sees keys 0 .. n_key - n_query + i."""
    return torch.ones(n_query, n_key, dtype=torch.bool, device=device).tril(diagonal=n_key - n_query)


def _activation(lm: LM):
    name = getattr(lm.model.config, "activation_function", "gelu_new")
    if name == "gelu_new":
        return gelu_by_hand
    from transformers.activations import ACT2FN  # another activation: use transformers' own definition

    return ACT2FN[name]


def run_block_by_hand(lm: LM, layer: int, block_input: torch.Tensor) -> BlockComputation:
    """Recompute block ``layer`` of ``lm`` on ``block_input`` (T, d_model) from the block's own weights.

    Returns every intermediate (shapes in :class:`BlockComputation`). Raises TypeError for a model
    without GPT-2's layout or a block_input that is not a tensor, ValueError for a layer out of range
    or a block_input of another shape.
    """
    trunk = gpt2_trunk(lm)
    layer = check_layer(lm, layer)
    cfg = lm.model.config
    block = trunk.h[layer]
    d_model = cfg.n_embd
    if not isinstance(block_input, torch.Tensor):
        raise TypeError(f"block_input must be a tensor of shape (tokens, {d_model}), got {type(block_input).__name__}")
    if block_input.dim() == 3 and block_input.shape[0] == 1:
        block_input = block_input[0]
    if block_input.dim() != 2 or block_input.shape[1] != d_model:
        raise ValueError(f"block_input must have shape (tokens, {d_model}), got {tuple(block_input.shape)}")
    n_heads = cfg.n_head
    head_dim = d_model // n_heads
    n_tokens = block_input.shape[0]
    scale = head_dim ** -0.5 if cfg.scale_attn_weights else 1.0
    if getattr(cfg, "scale_attn_by_inverse_layer_idx", False):
        scale /= float(layer + 1)
    attn, mlp = block.attn, block.mlp
    activation = _activation(lm)

    def heads(x):  # (T, d_model) -> (H, T, head_dim)
        return x.view(n_tokens, n_heads, head_dim).transpose(0, 1)

    with torch.no_grad():
        x = block_input
        ln_1 = layer_norm_by_hand(x, block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
        qkv = ln_1 @ attn.c_attn.weight + attn.c_attn.bias  # Conv1D weight is (in, out): no transpose
        query, key, value = qkv.split(d_model, dim=-1)
        query_heads, key_heads, value_heads = heads(query), heads(key), heads(value)
        if getattr(cfg, "reorder_and_upcast_attn", False):  # some configs ask for float32 scores
            query_heads, key_heads = query_heads.float(), key_heads.float()
        scores = query_heads @ key_heads.transpose(-1, -2)
        scaled_scores = scores * scale
        causal_mask = make_causal_mask(n_tokens, n_tokens, device=x.device)
        masked_scores = scaled_scores.masked_fill(~causal_mask, float("-inf"))
        attention_weights = torch.softmax(masked_scores, dim=-1).to(value_heads.dtype)
        weighted_values = attention_weights @ value_heads
        merged_heads = weighted_values.transpose(0, 1).reshape(n_tokens, d_model)
        attention_output = merged_heads @ attn.c_proj.weight + attn.c_proj.bias
        residual_after_attention = attention_output + x
        ln_2 = layer_norm_by_hand(residual_after_attention, block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
        mlp_fc = ln_2 @ mlp.c_fc.weight + mlp.c_fc.bias
        mlp_gelu = activation(mlp_fc)
        mlp_output = mlp_gelu @ mlp.c_proj.weight + mlp.c_proj.bias
        block_output = residual_after_attention + mlp_output
    return BlockComputation(
        layer=layer, n_heads=n_heads, head_dim=head_dim, scale=scale, block_input=block_input, ln_1=ln_1,
        qkv=qkv, query=query, key=key, value=value, query_heads=query_heads, key_heads=key_heads,
        value_heads=value_heads, scores=scores, scaled_scores=scaled_scores, causal_mask=causal_mask,
        masked_scores=masked_scores, attention_weights=attention_weights, weighted_values=weighted_values,
        merged_heads=merged_heads, attention_output=attention_output,
        residual_after_attention=residual_after_attention, ln_2=ln_2, mlp_fc=mlp_fc, mlp_gelu=mlp_gelu,
        mlp_output=mlp_output, block_output=block_output)


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def block_output_hook(block: torch.nn.Module, edit):
    """Register a forward hook on a transformer block that calls ``edit(hidden)`` on the residual stream
    it outputs, (batch, T, d_model), and uses what ``edit`` returns instead (None: keep it).
    Returns the handle: ``.remove()`` it when done."""
    def hook(module, args, output):
        new = edit(_hidden(output))
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new
    return block.register_forward_hook(hook)


def block_input_hook(block: torch.nn.Module, edit):
    """Like :func:`block_output_hook`, on the residual stream entering the block (its first argument or
    its ``hidden_states`` keyword)."""
    def hook(module, args, kwargs):
        if args:
            new = edit(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        new = edit(kwargs["hidden_states"])
        return None if new is None else (args, {**kwargs, "hidden_states": new})
    return block.register_forward_pre_hook(hook, with_kwargs=True)


@dataclass
class ModelReference:
    """What the real model computed (transformers, eager attention), for comparison.

    block_inputs[L] / block_outputs[L]: the residual stream entering / leaving block L, (T, d_model);
    attention_weights[L]: (H, T, T); logits: (T, vocab).
    """

    token_ids: torch.Tensor
    block_inputs: list[torch.Tensor]
    block_outputs: list[torch.Tensor]
    attention_weights: list[torch.Tensor]
    logits: torch.Tensor


def model_reference(lm: LM, text) -> ModelReference:
    """Run the real model once and record each block's input and output, its attention weights and the logits.

    text: a string or token ids. The run is :func:`gpt2lab.attention.capture.attention_weights` (eager
    attention, weights kept on the model's device); forward hooks on the blocks and the output layer
    record the rest of the same pass. Raises TypeError for a model without GPT-2's layout.
    """
    trunk = gpt2_trunk(lm)
    ids = token_ids(lm, text)
    inputs, outputs, logits = {}, {}, {}

    def keep(store, key):
        return lambda hidden: store.__setitem__(key, hidden.detach())

    hooks = [lm.model.get_output_embeddings().register_forward_hook(
        lambda module, args, out: keep(logits, 0)(out))]
    for index, block in enumerate(trunk.h):
        hooks += [block_input_hook(block, keep(inputs, index)), block_output_hook(block, keep(outputs, index))]
    try:
        weights = attention_weights(lm, ids[None], device=lm.device)[0]  # (layers, heads, T, T)
    finally:
        for hook in hooks:
            hook.remove()
    n = len(trunk.h)
    return ModelReference(token_ids=ids, block_inputs=[inputs[i][0] for i in range(n)],
                          block_outputs=[outputs[i][0] for i in range(n)],
                          attention_weights=list(weights), logits=logits[0][0])


def block_by_hand(lm: LM, text: str | list[int] | torch.Tensor, layer: int) -> BlockComputation:
    """Recompute block ``layer`` by hand for ``text``, starting from what the real model fed that block.

    Feeding the model's own block input isolates this block: its output can be compared with the
    model's block output directly (see ``compare_with_model``).
    """
    gpt2_trunk(lm)
    check_layer(lm, layer)
    reference = model_reference(lm, text)
    return run_block_by_hand(lm, layer, reference.block_inputs[layer])


@dataclass
class ForwardByHand:
    """The whole model by hand: embeddings, every block, the final layer norm and the logits."""

    embeddings: Embeddings
    blocks: list[BlockComputation]
    final_norm: torch.Tensor  # ln_f of the last block's output (T, d_model)
    logits: torch.Tensor  # final_norm @ wte.T: one score per vocabulary entry (T, vocab)

    @property
    def tokens(self) -> list[str]:
        """The tokens as a person reads them."""
        return self.embeddings.tokens


def forward_by_hand(lm: LM, text: str | list[int] | torch.Tensor) -> ForwardByHand:
    """Embeddings, then each block fed the previous block's hand-computed output, then ln_f and logits.

    GPT-2 reuses the token table as its output layer (weight tying), so the logits are the final
    vectors' dot products with every token embedding.
    """
    trunk = gpt2_trunk(lm)
    embeddings = embed_by_hand(lm, text)
    blocks, x = [], embeddings.block_input
    for layer in range(len(trunk.h)):
        blocks.append(run_block_by_hand(lm, layer, x))
        x = blocks[-1].block_output
    with torch.no_grad():
        final_norm = layer_norm_by_hand(x, trunk.ln_f.weight, trunk.ln_f.bias, trunk.ln_f.eps)
        logits = torch.nn.functional.linear(final_norm, lm.model.get_output_embeddings().weight)
    return ForwardByHand(embeddings=embeddings, blocks=blocks, final_norm=final_norm, logits=logits)


def compare_with_model(lm: LM, text: str | list[int] | torch.Tensor, chained: bool = False):
    """Per layer, the largest absolute difference between the hand computation and the real model.

    chained=False feeds each block the model's own input (each block checked on its own);
    chained=True runs ``forward_by_hand`` so differences could accumulate from layer to layer.
    Returns a pandas DataFrame with columns layer, block_input, attention_weights, block_output
    (largest absolute differences), output_size (largest |value| of the model's block output, to
    judge block_output against: float32 keeps about 7 significant digits) and a final row "logits"
    when chained.
    """
    import pandas as pd

    reference = model_reference(lm, text)
    if chained:
        by_hand = forward_by_hand(lm, text)
        blocks = by_hand.blocks
    else:
        blocks = [run_block_by_hand(lm, layer, x) for layer, x in enumerate(reference.block_inputs)]

    def gap(a, b):
        return float((a.float() - b.float()).abs().max())

    rows = [{"layer": b.layer,
             "block_input": gap(b.block_input, reference.block_inputs[b.layer]),
             "attention_weights": gap(b.attention_weights, reference.attention_weights[b.layer]),
             "block_output": gap(b.block_output, reference.block_outputs[b.layer]),
             "output_size": float(reference.block_outputs[b.layer].float().abs().max())} for b in blocks]
    if chained:
        rows.append({"layer": "logits", "block_input": float("nan"), "attention_weights": float("nan"),
                     "block_output": gap(by_hand.logits, reference.logits),
                     "output_size": float(reference.logits.float().abs().max())})
    return pd.DataFrame(rows)
