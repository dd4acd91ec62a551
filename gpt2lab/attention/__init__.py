"""Attention (notebooks 03-05): one GPT-2 block recomputed by hand, capturing every head's
attention weights (one batched path), head statistics (first-token, previous-token, induction), and
views of them.
"""
from __future__ import annotations

from gpt2lab.attention import by_hand, capture, heads, views
from gpt2lab.attention.by_hand import *  # noqa: F403
from gpt2lab.attention.capture import *  # noqa: F403
from gpt2lab.attention.heads import *  # noqa: F403
from gpt2lab.attention.views import *  # noqa: F403

__all__ = ["by_hand", "capture", "heads", "views", *by_hand.__all__, *capture.__all__, *heads.__all__, *views.__all__]
