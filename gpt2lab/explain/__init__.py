"""Which words matter (notebook 10): BPE pieces grouped into words, perturbation-based word importance
(Guan et al. 2019), captum baselines, leave-one-out, attention scores and deletion-curve faithfulness;
``views`` draws them.
"""
from __future__ import annotations

from gpt2lab.explain import attribution, importance, outputs, views, words
from gpt2lab.explain.attribution import *  # noqa: F403
from gpt2lab.explain.importance import *  # noqa: F403
from gpt2lab.explain.outputs import *  # noqa: F403
from gpt2lab.explain.views import *  # noqa: F403
from gpt2lab.explain.words import *  # noqa: F403

__all__ = ["words", "outputs", "importance", "attribution", "views", *words.__all__, *outputs.__all__,
           *importance.__all__, *attribution.__all__, *views.__all__]
