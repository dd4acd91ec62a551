"""Generating text (notebook 08): the one validated definition of generation parameters,
``generate`` over ``model.generate``, the logit transforms in ``transforms`` (temperature, top-k, top-p, repetition
penalty, n-gram blocking), and decoding written from scratch on top of them in ``decoding`` (greedy, sampling, beam
search, a KV cache, step records).
"""
from __future__ import annotations

from gpt2lab.generation import decoding, params, pipeline, transforms
from gpt2lab.generation.params import *  # noqa: F403
from gpt2lab.generation.pipeline import *  # noqa: F403

__all__ = ["params", "pipeline", "transforms", "decoding", *params.__all__, *pipeline.__all__]
