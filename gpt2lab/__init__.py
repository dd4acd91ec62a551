"""gpt2lab: the package behind a step-through course on how GPT-2 works.

Top-level names are imported lazily so that ``import gpt2lab`` stays fast; each lives in one
module named after its concept (see ``_LAZY`` below).
"""
from __future__ import annotations

import importlib

from .device import pick_device, pick_dtype
from .loading import LM, ModelNotFoundError, embedded_models, from_model, hub_reachable, load, load_default

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "data": "gpt2lab.data",
    "NGramLM": "gpt2lab.ngram",
    "train_bpe": "gpt2lab.bpe",
    "score_text": "gpt2lab.evaluation",
    "perplexity": "gpt2lab.evaluation",
    "bits_per_char": "gpt2lab.evaluation",
    "GenerationParams": "gpt2lab.params",
    "generate": "gpt2lab.generation",
    "generate_to_file": "gpt2lab.generation",
    "decoding": "gpt2lab.decoding",
    "explorers": "gpt2lab.explorers",
    "serve_in_background": "gpt2lab.server",
    "capture_attention": "gpt2lab.attention",
    "word_importance": "gpt2lab.importance",
    "compare_attributions": "gpt2lab.attribution",
    "finetune": "gpt2lab.finetuning",
    "load_run": "gpt2lab.finetuning",
    "course": "gpt2lab.course",
    "analysis": "gpt2lab.analysis",
    "sweep": "gpt2lab.sweep",
    "run_sweep": "gpt2lab.sweep",
    "incoherence": "gpt2lab.incoherence",
}

__all__ = ["LM", "ModelNotFoundError", "embedded_models", "from_model", "hub_reachable", "load", "load_default",
           "pick_device", "pick_dtype", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__ == f"gpt2lab.{name}" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gpt2lab' has no attribute {name!r}")
