"""Generating text (notebook 05): the one validated definition of generation parameters,
``generate`` over ``model.generate``, and decoding written from scratch in ``decoding`` (logit transforms, greedy,
sampling, beam search, a KV cache, step records).
"""
from __future__ import annotations

from gpt2lab.generation import decoding, params, pipeline
from gpt2lab.generation.params import *  # noqa: F403
from gpt2lab.generation.pipeline import *  # noqa: F403

__all__ = ["params", "pipeline", "decoding", *params.__all__, *pipeline.__all__]
