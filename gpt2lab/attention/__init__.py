"""Attention (notebooks 03-05): one GPT-2 block recomputed by hand, capturing every head's
attention weights (one batched path), head statistics (first-token, previous-token, induction), views
of them, and whether a model shows GPT-2's induction heads, copying and whole-word tokens (``induction``).
"""
from __future__ import annotations

from gpt2lab.attention import by_hand, capture, heads, induction, views
from gpt2lab.attention.by_hand import *  # noqa: F403
from gpt2lab.attention.capture import *  # noqa: F403
from gpt2lab.attention.heads import *  # noqa: F403
from gpt2lab.attention.induction import *  # noqa: F403
from gpt2lab.attention.views import *  # noqa: F403

__all__ = ["by_hand", "capture", "heads", "induction", "views", *by_hand.__all__, *capture.__all__, *heads.__all__,
           *induction.__all__, *views.__all__]
