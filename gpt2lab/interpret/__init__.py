"""Reading the residual stream (the "inside the residual stream" lesson): the logit lens
(nostalgebraist 2020), direct logit attribution (Elhage et al. 2021) and activation patching
(Meng et al. 2022; Heimersheim & Nanda 2024), for GPT-2-family models, with heatmap views.
"""
from __future__ import annotations

from gpt2lab.interpret import attribution, lens, patching, stream, views
from gpt2lab.interpret.attribution import *  # noqa: F403
from gpt2lab.interpret.lens import *  # noqa: F403
from gpt2lab.interpret.patching import *  # noqa: F403
from gpt2lab.interpret.stream import *  # noqa: F403
from gpt2lab.interpret.views import *  # noqa: F403

__all__ = ["stream", "lens", "attribution", "patching", "views", *stream.__all__, *lens.__all__,
           *attribution.__all__, *patching.__all__, *views.__all__]
