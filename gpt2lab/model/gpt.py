"""A GPT-2 written as a plain, trainable ``torch.nn.Module`` (the course's "build a GPT" lesson).

The same computation as :func:`gpt2lab.attention.by_hand.forward_by_hand`, which recomputes a loaded
model without gradients and keeps every intermediate; this is its trainable counterpart, and both use
the same :func:`~gpt2lab.attention.by_hand.layer_norm_by_hand` and
:func:`~gpt2lab.attention.by_hand.gelu_by_hand`. The architecture is GPT-2's (Radford et al. 2019,
"Language Models are Unsupervised Multitask Learners"):

    tokens -> token embedding + position embedding                       the residual stream (B, T, d_model)
           -> n_layer blocks, each  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))     (pre-LayerNorm)
           -> final LayerNorm ln_f -> output layer tied to the token embedding       logits (B, T, vocab)

Attention is causal multi-head self-attention (Vaswani et al. 2017); the MLP is d_model -> 4 d_model ->
d_model with GPT-2's tanh approximation of GELU. ``GPTConfig(attention_only=True, layer_norm=False)``
drops the MLPs and the LayerNorms: the attention-only transformers that Elhage et al. 2021 ("A
Mathematical Framework for Transformer Circuits") analyse.

Projections are ``nn.Linear`` (weight stored (out, in)); GPT-2's checkpoints use ``Conv1D`` (weight
stored (in, out)), so :func:`gpt2lab.model.weights.from_gpt2` transposes them when it copies them in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gpt2lab.attention.by_hand import gelu_by_hand, layer_norm_by_hand, make_causal_mask

__all__ = ["GPTConfig", "GPTOutput", "LayerNorm", "CausalSelfAttention", "MLP", "Block", "GPT"]


@dataclass
class GPTConfig:
    """Sizes of a GPT. ``d_model`` must be a multiple of ``n_head``; ``context_length`` is the longest
    sequence (the number of learned positions, GPT-2's ``n_positions``)."""

    vocab_size: int
    context_length: int = 256
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    attention_only: bool = False  # no MLPs (Elhage et al. 2021's attention-only transformers)
    layer_norm: bool = True  # False: every LayerNorm is the identity (no normalisation, no parameters)
    layer_norm_eps: float = 1e-5
    dropout: float = 0.0
    init_std: float = 0.02  # spread of the initial weights (GPT-2: 0.02; residual projections / sqrt(2 n_layer))

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_head={self.n_head} "
                             f"(each head gets d_model / n_head columns)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.init_std > 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


@dataclass
class GPTOutput:
    """``logits`` (batch, tokens, vocab); ``attentions``: one (batch, heads, query, key) tensor per layer
    when asked for with ``return_attention=True``, else None."""

    logits: torch.Tensor
    attentions: list[torch.Tensor] | None = None


def _norm(cfg: GPTConfig) -> nn.Module:
    return LayerNorm(cfg.d_model, cfg.layer_norm_eps) if cfg.layer_norm else nn.Identity()


class LayerNorm(nn.Module):
    """Layer normalisation over the last axis with a learned gain and bias (Ba et al. 2016)."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(d_model)), nn.Parameter(torch.zeros(d_model)), eps

    def forward(self, x):
        return layer_norm_by_hand(x, self.weight, self.bias, self.eps)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees itself and earlier positions only."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # queries, keys and values in one product
        self.out = nn.Linear(cfg.d_model, cfg.d_model)  # the heads' results, mixed back to d_model

    def split_heads(self, x):  # (B, T, d_model) -> (B, heads, T, head_dim)
        return x.view(*x.shape[:2], self.n_head, self.head_dim).transpose(1, 2)

    def merge_heads(self, x):  # (B, heads, T, head_dim) -> (B, T, d_model)
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)

    def attend(self, q, k, v):
        """Scaled dot-product attention of queries (B, H, Tq, hd) over keys and values (B, H, Tk, hd).

        The queries are the last Tq of the Tk positions (Tq = Tk without a cache), so query i may see
        keys 0 .. Tk - Tq + i. Returns (weighted values (B, H, Tq, hd), weights (B, H, Tq, Tk))."""
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        visible = make_causal_mask(q.shape[-2], k.shape[-2], device=q.device)
        weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
        return weights @ v, weights

    def forward(self, x):
        q, k, v = self.qkv(x).split(x.shape[-1], dim=-1)
        z, weights = self.attend(self.split_heads(q), self.split_heads(k), self.split_heads(v))
        return self.out(self.merge_heads(z)), weights


class MLP(nn.Module):
    """Position-wise feed-forward network: d_model -> 4 d_model -> GELU (tanh approximation) -> d_model."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc, self.proj = nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x):
        return self.proj(gelu_by_hand(self.fc(x)))


class Block(nn.Module):
    """One pre-LayerNorm transformer block: each half reads a normalised copy of the residual stream and
    adds its result back to it."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1, self.attn = _norm(cfg), CausalSelfAttention(cfg)
        self.ln_2 = None if cfg.attention_only else _norm(cfg)
        self.mlp = None if cfg.attention_only else MLP(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        attn_out, weights = self.attn(self.ln_1(x))
        x = x + self.dropout(attn_out)
        if self.mlp is not None:
            x = x + self.dropout(self.mlp(self.ln_2(x)))
        return x, weights


class GPT(nn.Module):
    """A GPT-2-style language model. ``model(input_ids)`` -> :class:`GPTOutput` with logits (B, T, vocab).

    input_ids: (T,) or (B, T) integer token ids, T <= ``config.context_length``.
    attention_mask: accepted so training and scoring loops written for ``transformers`` models work;
        only right padding (ones, then zeros) is allowed, which causal attention already keeps away
        from every real token.
    Raises ValueError (with what is allowed) for ids out of the vocabulary, too long inputs or left padding.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = cfg = config
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position_embedding = nn.Embedding(cfg.context_length, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = _norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # weight tying: one table to read and write tokens
        for name, param in self.named_parameters():  # GPT-2's initialisation
            if name.endswith("bias"):
                nn.init.zeros_(param)
            elif param.dim() == 2:  # residual projections scaled by 1/sqrt(2 n_layer): the stream sums 2 n_layer terms
                scale = math.sqrt(2 * cfg.n_layer) if name.endswith(("attn.out.weight", "mlp.proj.weight")) else 1.0
                nn.init.normal_(param, mean=0.0, std=cfg.init_std / scale)

    @property
    def n_params(self) -> int:
        """Number of parameters (the tied token table counted once)."""
        return sum(p.numel() for p in self.parameters())

    def embed(self, input_ids):
        """Token embedding + position embedding: the residual stream entering block 0, (B, T, d_model)."""
        positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
        return self.dropout(self.token_embedding(input_ids) + self.position_embedding(positions))

    def forward(self, input_ids, attention_mask=None, return_attention: bool = False) -> GPTOutput:
        input_ids = self.check_ids(input_ids, attention_mask)
        x, attentions = self.embed(input_ids), []
        for block in self.blocks:
            x, weights = block(x)
            attentions.append(weights)
        logits = self.lm_head(self.ln_f(x))
        return GPTOutput(logits=logits, attentions=attentions if return_attention else None)

    def check_ids(self, input_ids, attention_mask=None) -> torch.Tensor:
        """``input_ids`` as a (B, T) long tensor, after checking what ``forward`` accepts."""
        cfg = self.config
        if (not isinstance(input_ids, torch.Tensor) or input_ids.dtype.is_floating_point
                or input_ids.dim() not in (1, 2)):
            raise TypeError("input_ids must be a (tokens,) or (batch, tokens) integer tensor, got "
                            + (f"{input_ids.dtype} of shape {tuple(input_ids.shape)}"
                               if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__))
        if not 1 <= input_ids.shape[-1] <= cfg.context_length or input_ids.numel() == 0:
            raise ValueError(f"input has {input_ids.shape[-1]} tokens; this GPT takes 1 to {cfg.context_length}")
        input_ids = input_ids.reshape(-1, input_ids.shape[-1]).long()
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= cfg.vocab_size:
            raise ValueError(f"token ids must lie in 0..{cfg.vocab_size - 1}, got values from "
                             f"{int(input_ids.min())} to {int(input_ids.max())}")
        if attention_mask is not None:
            mask = torch.as_tensor(attention_mask)
            if mask.numel() != input_ids.numel():
                raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got "
                                 f"{tuple(mask.shape)}")
            mask = mask.reshape(input_ids.shape).bool()
            if (mask[:, 1:] & ~mask[:, :-1]).any():
                raise ValueError("attention_mask may only pad on the right (ones, then zeros); this GPT has no "
                                 "left padding")
        return input_ids

    @torch.no_grad()
    def sample(self, input_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue ``input_ids`` (T,) by sampling ``max_new_tokens`` tokens (no cache: the whole sequence
        is fed at every step; the prompt must fit the context, and as the text grows past it, its last
        ``context_length`` tokens are fed). ``top_k``: None (every token) or an int >= 1. Returns (T + new,).
        Raises ValueError for a bad max_new_tokens, temperature or top_k."""
        if not (isinstance(max_new_tokens, int) and max_new_tokens >= 0 and temperature > 0):
            raise ValueError(f"max_new_tokens must be an int >= 0 and temperature > 0, got {max_new_tokens!r}, "
                             f"{temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be None (no cut) or an int >= 1, got {top_k!r}")
        was_training = self.training
        self.eval()
        ids = self.check_ids(input_ids)[0]
        for _ in range(max_new_tokens):
            logits = self(ids[-self.config.context_length:]).logits[0, -1].float() / temperature
            if top_k is not None and top_k < logits.numel():
                logits[logits < logits.topk(top_k).values[-1]] = float("-inf")
            probs = torch.softmax(logits, dim=-1)
            next_id = torch.multinomial(probs.cpu(), 1, generator=generator).to(ids.device)
            ids = torch.cat([ids, next_id])
        self.train(was_training)
        return ids
