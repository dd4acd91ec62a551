"""A GPT built from scratch (the "build and train a GPT" lesson): the model as a plain trainable
``torch.nn.Module``, and its loader from a ``transformers`` GPT-2.
"""
from __future__ import annotations

from gpt2lab.model import gpt, weights
from gpt2lab.model.gpt import *  # noqa: F403
from gpt2lab.model.weights import *  # noqa: F403

__all__ = ["gpt", "weights", *gpt.__all__, *weights.__all__]
