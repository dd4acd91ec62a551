"""Model families: which architectures the package is tested on, and the check for the tools that only
make sense on GPT-2.

Every tool works on any causal LM that ``gpt2lab.load`` loads; the test suite runs each one on tiny
random models of the families in :data:`TESTED_FAMILIES` (``tests/test_architectures.py``). A few tools
are GPT-2's by nature - the block recomputed by hand follows GPT-2's exact layout (fused ``c_attn``,
``Conv1D`` weights, learned positions) - and call :func:`require_gpt2` first, so another model gets one
clear sentence naming the supported family before any work is done, never a shape error from torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["TESTED_FAMILIES", "GPT2_FAMILY", "UnsupportedModelError", "model_type", "require_gpt2"]

if TYPE_CHECKING:
    from gpt2lab.loading import LM

# transformers' model_type -> the family in words (and models people load from it)
TESTED_FAMILIES = {
    "gpt2": "GPT-2 (gpt2, distilgpt2, gpt2-medium/large/xl, the embedded model)",
    "gpt_neox": "GPT-NeoX (Pythia)",
    "llama": "Llama (SmolLM, TinyLlama)",
    "qwen2": "Qwen2",
    "opt": "OPT",
    "gpt_neo": "GPT-Neo",
    "phi3": "Phi-3",
}
GPT2_FAMILY = ("gpt2",)


class UnsupportedModelError(TypeError):
    """A tool that only works on some model families was given a model of another family."""


def model_type(lm: LM) -> str | None:
    """transformers' ``model_type`` of ``lm.model`` ("gpt2", "llama", ...), or None when it has no config."""
    config = getattr(getattr(lm, "model", None), "config", None)
    return getattr(config, "model_type", None)


def require_gpt2(lm: LM, tool: str) -> None:
    """Raise :class:`UnsupportedModelError` unless ``lm`` is a GPT-2-family model (``model_type`` "gpt2").

    ``tool`` names what refuses (e.g. "block_by_hand"); the message says which families it supports and
    what the model is.
    """
    kind = model_type(lm)
    if kind in GPT2_FAMILY:
        return
    model = getattr(lm, "model", None)
    what = f"a {kind!r} model" if kind else "a model without a transformers config"
    raise UnsupportedModelError(
        f"{tool} (built on GPT-2's layout, transformer.h[i].attn.c_attn): supports the GPT-2 family only: "
        f"{TESTED_FAMILIES['gpt2']}; {getattr(lm, 'name', '?')!r} is {what} ({type(model).__name__}). "
        "capture_attention, head_stats and the attention views work on every architecture.")
