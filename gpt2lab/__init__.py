"""gpt2lab: the package behind a step-through course on how GPT-2 works.

The subpackages follow the course's table of contents::

    gpt2lab.basics       n-grams, byte-level BPE, perplexity and bits per character    (notebooks 01-02)
    gpt2lab.attention    a block by hand, attention capture, head statistics, views   (03, 05)
    gpt2lab.model        a GPT built from scratch, trainable; the induction-heads toy  (04, 06)
    gpt2lab.interpret    logit lens, direct logit attribution, activation patching    (07)
    gpt2lab.generation   generation parameters, generate, decoding from scratch       (08)
    gpt2lab.experiments  text analysis, parameter sweeps, the incoherence filter      (09)
    gpt2lab.explain      words, word importance, attribution baselines, faithfulness  (10)
    gpt2lab.training     the training loop, fine-tuning, the memorisation check       (11)
    gpt2lab.serving      the HTTP endpoint and the batch job                          (12)
    gpt2lab.widgets      the ipywidgets explorers
    gpt2lab.cli          the ``gpt2lab`` command

``LM`` / ``load`` (``gpt2lab.loading``), ``gpt2lab.device`` and ``gpt2lab.data`` live at the top.
Everything is imported lazily on first use, so ``import gpt2lab`` stays fast, and every subpackage and
every name in ``__all__`` is reachable as an attribute right after it.
"""
from __future__ import annotations

import importlib

from gpt2lab.device import pick_device, pick_dtype
from gpt2lab.loading import LM, ModelNotFoundError, embedded_models, from_model, hub_reachable, load, load_default

__version__ = "0.1.0"

SUBPACKAGES = ("basics", "attention", "model", "interpret", "generation", "experiments", "explain", "training",
               "serving", "widgets", "cli")
MODULES = ("data", "device", "loading", "course", "embedded_recipe")

# curated public name -> the module that defines it
_LAZY = {
    "NGramLM": "gpt2lab.basics.ngram",
    "train_bpe": "gpt2lab.basics.bpe",
    "score_text": "gpt2lab.basics.evaluation",
    "perplexity": "gpt2lab.basics.evaluation",
    "bits_per_char": "gpt2lab.basics.evaluation",
    "capture_attention": "gpt2lab.attention.capture",
    "head_stats": "gpt2lab.attention.heads",
    "GPT": "gpt2lab.model.gpt",
    "GPTConfig": "gpt2lab.model.gpt",
    "from_gpt2": "gpt2lab.model.weights",
    "logit_lens": "gpt2lab.interpret.lens",
    "direct_logit_attribution": "gpt2lab.interpret.attribution",
    "activation_patching": "gpt2lab.interpret.patching",
    "GenerationParams": "gpt2lab.generation.params",
    "generate": "gpt2lab.generation.pipeline",
    "generate_to_file": "gpt2lab.generation.pipeline",
    "run_sweep": "gpt2lab.experiments.sweep",
    "word_importance": "gpt2lab.explain.importance",
    "compare_attributions": "gpt2lab.explain.attribution",
    "train": "gpt2lab.training.loop",
    "finetune": "gpt2lab.training.finetuning",
    "load_run": "gpt2lab.training.runs",
    "serve_in_background": "gpt2lab.serving.server",
    "run_batch": "gpt2lab.serving.batch",
}

__all__ = ["LM", "ModelNotFoundError", "embedded_models", "from_model", "hub_reachable", "load",
           "load_default", "pick_device", "pick_dtype", *SUBPACKAGES, *MODULES, *_LAZY]


def __getattr__(name: str):
    if name in SUBPACKAGES or name in MODULES:
        value = importlib.import_module(f"gpt2lab.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'gpt2lab' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
