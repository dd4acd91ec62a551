"""Copy a ``transformers`` GPT-2 (``GPT2LMHeadModel``) into the course's own :class:`~gpt2lab.model.gpt.GPT`.

``from_gpt2(lm)`` reads the sizes from the model's config, builds a :class:`GPT` of the same shape and
copies every weight across under the name it has here (``GPT2_NAMES`` is the table). GPT-2's
projections are ``Conv1D`` layers whose weight is stored (in, out); ``nn.Linear`` stores (out, in), so
those four weights per block are transposed on the way. Works for the whole GPT-2 family (gpt2 to
gpt2-xl, distilgpt2, the embedded model, a ``GPT2Config`` you made); any other architecture, or a
GPT-2 config this module does not compute (another activation, inverse-layer attention scaling), is
refused with an :class:`~gpt2lab.families.UnsupportedModelError` saying so, before anything is built.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from gpt2lab.families import UnsupportedModelError, require_gpt2
from gpt2lab.model.gpt import GPT, GPTConfig

__all__ = ["SUPPORTED", "GPT2_NAMES", "gpt2_model", "config_from_gpt2", "from_gpt2"]

SUPPORTED = ("GPT-2 family models (transformers' GPT2LMHeadModel: gpt2, gpt2-medium, gpt2-large, gpt2-xl, "
             "distilgpt2, the embedded shakespeare-gpt2)")

# our name (with {i} for the block) -> (GPT-2's name, transposed?)
GPT2_NAMES = {
    "token_embedding.weight": ("transformer.wte.weight", False),
    "position_embedding.weight": ("transformer.wpe.weight", False),
    "blocks.{i}.ln_1.weight": ("transformer.h.{i}.ln_1.weight", False),
    "blocks.{i}.ln_1.bias": ("transformer.h.{i}.ln_1.bias", False),
    "blocks.{i}.attn.qkv.weight": ("transformer.h.{i}.attn.c_attn.weight", True),
    "blocks.{i}.attn.qkv.bias": ("transformer.h.{i}.attn.c_attn.bias", False),
    "blocks.{i}.attn.out.weight": ("transformer.h.{i}.attn.c_proj.weight", True),
    "blocks.{i}.attn.out.bias": ("transformer.h.{i}.attn.c_proj.bias", False),
    "blocks.{i}.ln_2.weight": ("transformer.h.{i}.ln_2.weight", False),
    "blocks.{i}.ln_2.bias": ("transformer.h.{i}.ln_2.bias", False),
    "blocks.{i}.mlp.fc.weight": ("transformer.h.{i}.mlp.c_fc.weight", True),
    "blocks.{i}.mlp.fc.bias": ("transformer.h.{i}.mlp.c_fc.bias", False),
    "blocks.{i}.mlp.proj.weight": ("transformer.h.{i}.mlp.c_proj.weight", True),
    "blocks.{i}.mlp.proj.bias": ("transformer.h.{i}.mlp.c_proj.bias", False),
    "ln_f.weight": ("transformer.ln_f.weight", False),
    "ln_f.bias": ("transformer.ln_f.bias", False),
}


def gpt2_model(source):
    """The ``GPT2LMHeadModel`` inside ``source`` (a :class:`gpt2lab.LM` or the model itself), checked to
    be one this package can rebuild. Raises :class:`~gpt2lab.families.UnsupportedModelError` (a
    TypeError) naming what is supported, for another architecture, another layout or settings the
    from-scratch GPT does not compute."""
    if isinstance(source, torch.nn.Module):  # a model itself (a Llama has a .model too: its trunk)
        model, lm = source, SimpleNamespace(model=source, name=type(source).__name__)
    elif isinstance(getattr(source, "model", None), torch.nn.Module):
        model, lm = source.model, source
    else:
        raise TypeError(f"from_gpt2 takes a gpt2lab.LM or a transformers GPT2LMHeadModel, got {type(source).__name__}")
    require_gpt2(lm, "from_gpt2 (the from-scratch GPT)")
    trunk = getattr(model, "transformer", None)
    blocks = getattr(trunk, "h", None)
    if not isinstance(model, torch.nn.Module) or blocks is None or len(blocks) == 0 \
            or not hasattr(blocks[0], "attn") or not hasattr(blocks[0].attn, "c_attn"):
        raise UnsupportedModelError(f"{lm.name!r} ({type(model).__name__}) does not have GPT-2's layout "
                                    f"(transformer.h[i].attn.c_attn); supported: {SUPPORTED}")
    cfg = model.config
    unsupported = []
    if getattr(cfg, "activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        unsupported.append(f"activation {cfg.activation_function!r} (GPT-2 uses the tanh GELU 'gelu_new')")
    if getattr(cfg, "scale_attn_by_inverse_layer_idx", False):
        unsupported.append("scale_attn_by_inverse_layer_idx=True")
    if not getattr(cfg, "scale_attn_weights", True):
        unsupported.append("scale_attn_weights=False")
    if getattr(cfg, "n_inner", None) not in (None, 4 * cfg.n_embd):
        unsupported.append(f"n_inner={cfg.n_inner} (GPT-2's MLP is 4 x n_embd = {4 * cfg.n_embd} wide)")
    if getattr(cfg, "add_cross_attention", False):
        unsupported.append("cross-attention")
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is None or output.weight.data_ptr() != trunk.wte.weight.data_ptr():
        unsupported.append("an output layer not tied to the token embedding")
    if unsupported:
        raise UnsupportedModelError(f"{lm.name!r} is a GPT-2 model with settings the from-scratch GPT does not "
                                    f"compute: {', '.join(unsupported)}; supported: {SUPPORTED} with their standard "
                                    "settings")
    return model


def config_from_gpt2(source) -> GPTConfig:
    """The :class:`GPTConfig` of the same shape as a GPT-2 model (dropout 0: for inference)."""
    cfg = gpt2_model(source).config
    return GPTConfig(vocab_size=cfg.vocab_size, context_length=cfg.n_positions, n_layer=cfg.n_layer,
                     n_head=cfg.n_head, d_model=cfg.n_embd, layer_norm_eps=cfg.layer_norm_epsilon)


def from_gpt2(source, device=None) -> GPT:
    """A :class:`GPT` holding a copy of the weights of ``source`` (a GPT-2 ``LM`` or ``GPT2LMHeadModel``),
    in eval mode, with the source's dtype, on ``device`` (default: the source's device).

    Its logits equal the source's up to float rounding (the course's test: ``assert_close`` with
    rtol=1e-4 on the embedded, a GPT-2-shaped and a tiny model). Raises UnsupportedModelError (a TypeError)
    before any work when ``source`` is not a GPT-2 model this package supports.
    """
    model = gpt2_model(source)
    config = config_from_gpt2(model)
    theirs = model.state_dict()
    first = next(model.parameters())
    gpt = GPT(config).to(device=device or first.device, dtype=first.dtype)
    ours = {}
    for name, (their_name, transposed) in GPT2_NAMES.items():
        for i in range(config.n_layer) if "{i}" in name else [None]:
            weight = theirs[their_name.format(i=i)]
            ours[name.format(i=i)] = weight.t() if transposed else weight
    ours["lm_head.weight"] = ours["token_embedding.weight"]  # tied, as in GPT-2
    gpt.load_state_dict(ours, strict=True)
    return gpt.eval()
