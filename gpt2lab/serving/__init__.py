"""Serving (notebook 12): the local HTTP endpoint (GET /ping, POST /invocations) and the batch job,
both following the published JSON API of ``gpt2lab.generation.params``.
"""
from __future__ import annotations

from gpt2lab.serving import batch, server
from gpt2lab.serving.batch import *  # noqa: F403
from gpt2lab.serving.server import *  # noqa: F403

__all__ = ["server", "batch", *server.__all__, *batch.__all__]
