"""Short hashes that identify a model's weights or a tokenizer's vocabulary, for cache keys: a cached
result of one model is never reused for another, nor after fine-tuning changed the weights."""
from __future__ import annotations

import hashlib
import json
import re

import torch

__all__ = ["model_fingerprint", "tokenizer_fingerprint"]

_SAMPLES_PER_TENSOR = 4096


def model_fingerprint(model) -> str:
    """16 hex digits hashing a model's configuration (without its name or path) and a strided sample of
    up to 4,096 values of every parameter tensor, with names and shapes.

    model: a ``torch.nn.Module`` or a :class:`gpt2lab.LM` (its ``.model`` is used). Cheap enough to
    compute on every call (milliseconds for GPT-2 small); changes whenever training changes the weights.
    """
    model = getattr(model, "model", model)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model_fingerprint takes a torch module or a gpt2lab LM, got {type(model).__name__}")
    digest = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(re.sub(r'"_?name_or_path":\s*"[^"]*"', "", config.to_json_string()).encode())
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // _SAMPLES_PER_TENSOR)
            digest.update(name.encode())
            digest.update(str(tuple(p.shape)).encode())
            digest.update(flat[::step].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    """A SHA-256 (64 hex digits) of everything that decides how the tokenizer splits text: vocabulary,
    merges and added tokens (the fast tokenizer's full JSON), else its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        payload = backend.to_str()
    else:
        payload = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(f"{type(tokenizer).__name__}\0{payload}".encode()).hexdigest()
