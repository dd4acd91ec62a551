"""The course's ipywidgets explorers, importable in your own notebooks: n-grams, tokenizers, attention,
and the decoding explorer.
"""
from __future__ import annotations

from gpt2lab.widgets import attention, decoding, ngram, tokens
from gpt2lab.widgets.attention import *  # noqa: F403
from gpt2lab.widgets.decoding import *  # noqa: F403
from gpt2lab.widgets.ngram import *  # noqa: F403
from gpt2lab.widgets.tokens import *  # noqa: F403

__all__ = ["ngram", "tokens", "attention", "decoding", *ngram.__all__, *tokens.__all__, *attention.__all__,
           *decoding.__all__]
