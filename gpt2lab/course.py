"""Settings the notebooks share: which model, and how much work heavy cells do.

One switch scales the course: ``GPT2LAB_SCALE=quick`` (the default on a CPU: small sweeps, few
optimisation steps, so the whole course runs in minutes) or ``GPT2LAB_SCALE=full`` (the default
when a CUDA GPU is present: the sizes a real study would use). Cells ask ``course.scaled(quick, full)``.
"""
from __future__ import annotations

import os

import torch

__all__ = ["ENV_SCALE", "SCALES", "scale", "scaled", "is_quick"]

ENV_SCALE = "GPT2LAB_SCALE"
SCALES = ("quick", "full")


def scale() -> str:
    """The course's scale: ``$GPT2LAB_SCALE`` ("quick" or "full"), else "full" with a CUDA GPU and "quick"
    without. Raises ValueError for any other value of the variable."""
    value = os.environ.get(ENV_SCALE)
    if value is None:
        return "full" if torch.cuda.is_available() else "quick"
    if value not in SCALES:
        raise ValueError(f"{ENV_SCALE}={value!r} is not known; use one of {SCALES}")
    return value


def scaled(quick, full):
    """``quick`` under the quick scale, ``full`` under the full one."""
    return quick if scale() == "quick" else full


def is_quick() -> bool:
    """True under the quick scale (see :func:`scale`)."""
    return scale() == "quick"
