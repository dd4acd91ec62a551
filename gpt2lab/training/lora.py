"""Preparing a model for fine-tuning: the added start token (its embedding row) and LoRA adapters.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") through the ``peft``
library: the base weights are frozen and low-rank updates ``B @ A`` (rank ``r``, scaled by
``alpha / r``) are trained beside the attention and MLP projections.
"""
from __future__ import annotations

import torch

from gpt2lab.training.tokenised import START_TOKEN

__all__ = ["add_start_token", "match_vocab", "wrap_lora"]


def add_start_token(model, tokenizer, token: str = START_TOKEN) -> list[str]:
    """Add ``token`` to the tokenizer as a special token and grow the model's embedding to match.

    New embedding rows are set to the mean of the existing ones (deterministic, so a LoRA run can
    rebuild the same base model later). Returns the tokens actually added."""
    added = []
    if token not in tokenizer.get_vocab():
        tokenizer.add_tokens([token], special_tokens=True)
        added.append(token)
    match_vocab(model, tokenizer)
    return added


def match_vocab(model, tokenizer) -> None:
    """Grow the model's token embedding (and tied output layer) to the tokenizer's size."""
    embedding = model.get_input_embeddings()
    old = embedding.num_embeddings
    if len(tokenizer) <= old:
        return
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[old:] = weight[:old].mean(dim=0, keepdim=True)
        output = model.get_output_embeddings()
        if output is not None and output.weight.data_ptr() != weight.data_ptr():
            output.weight[old:] = output.weight[:old].mean(dim=0, keepdim=True)
            if getattr(output, "bias", None) is not None:
                output.bias[old:] = output.bias[:old].mean()


def _lora_targets(model) -> tuple[list[str] | str | None, bool]:
    """Default LoRA target modules and whether they store weights transposed (GPT-2's Conv1D)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS
    from transformers.pytorch_utils import Conv1D

    names = {name.split(".")[-1] for name, m in model.named_modules() if isinstance(m, Conv1D)}
    if {"c_attn", "c_proj", "c_fc"} <= names:
        return ["c_attn", "c_proj", "c_fc"], True
    if getattr(model.config, "model_type", None) in PEFT_DEFAULTS:
        return None, False  # peft's own defaults for the family (e.g. Llama: q_proj, v_proj)
    return "all-linear", False  # a family peft has no defaults for (e.g. Phi-3): every linear layer but the output


def wrap_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05, target_modules=None,
              trainable_token_ids: list[int] | None = None):
    """Wrap ``model`` with LoRA adapters (peft). The base weights are frozen; only the low-rank
    adapters (and the embedding rows of ``trainable_token_ids``, e.g. an added start token) train.

    target_modules: the module names to adapt (default: GPT-2's ``c_attn``, ``c_proj``, ``c_fc``;
    peft's defaults for other architectures). Raises ImportError when peft is not installed."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError("LoRA needs the peft package: pip install 'gpt2lab[lora]'") from err
    targets, fan_in_fan_out = _lora_targets(model)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules or targets,
                        fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM",
                        trainable_token_indices=list(trainable_token_ids) if trainable_token_ids else None)
    return get_peft_model(model, config)
