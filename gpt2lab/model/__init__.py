"""A GPT built from scratch (the "build and train a GPT" lesson): the model as a plain trainable
``torch.nn.Module``, its loader from a ``transformers`` GPT-2, snapshots of its weights kept while it
trains, and the attention-only toy in which induction heads form (:mod:`gpt2lab.model.induction`).
"""
from __future__ import annotations

from gpt2lab.model import gpt, induction, snapshots, weights
from gpt2lab.model.gpt import *  # noqa: F403
from gpt2lab.model.snapshots import *  # noqa: F403
from gpt2lab.model.weights import *  # noqa: F403

__all__ = ["gpt", "weights", "induction", "snapshots", *gpt.__all__, *weights.__all__, *snapshots.__all__]
