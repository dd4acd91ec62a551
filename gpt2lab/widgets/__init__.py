"""The course's ipywidgets explorers, importable in your own notebooks: n-grams, tokenizers, attention,
decoding, generation settings measured, word importance, memorisation, the logit lens,
training snapshots and induction heads forming.

Every explorer opens with a one-line guided task (:mod:`gpt2lab.widgets.common`).
"""
from __future__ import annotations

from gpt2lab.widgets import (
           attention,
           common,
           decoding,
           importance,
           induction,
           lens,
           memorisation,
           ngram,
           settings,
           tokens,
           training,
)
from gpt2lab.widgets.attention import *  # noqa: F403
from gpt2lab.widgets.common import *  # noqa: F403
from gpt2lab.widgets.decoding import *  # noqa: F403
from gpt2lab.widgets.importance import *  # noqa: F403
from gpt2lab.widgets.induction import *  # noqa: F403
from gpt2lab.widgets.lens import *  # noqa: F403
from gpt2lab.widgets.memorisation import *  # noqa: F403
from gpt2lab.widgets.ngram import *  # noqa: F403
from gpt2lab.widgets.settings import *  # noqa: F403
from gpt2lab.widgets.tokens import *  # noqa: F403
from gpt2lab.widgets.training import *  # noqa: F403

__all__ = ["ngram", "tokens", "attention", "decoding", "settings", "importance", "memorisation", "lens", "training",
           "induction", "common", *ngram.__all__, *tokens.__all__, *attention.__all__, *decoding.__all__,
           *settings.__all__, *importance.__all__, *memorisation.__all__, *lens.__all__, *training.__all__,
           *induction.__all__, *common.__all__]
