"""Experiments with generation (notebook 09): text analysis (parts of speech, repetition, Self-BLEU),
parameter sweeps, and an automatic incoherence filter.
"""
from __future__ import annotations

from gpt2lab.experiments import analysis, incoherence, sweep
from gpt2lab.experiments.analysis import *  # noqa: F403
from gpt2lab.experiments.incoherence import *  # noqa: F403
from gpt2lab.experiments.sweep import *  # noqa: F403

__all__ = ["analysis", "sweep", "incoherence", *analysis.__all__, *sweep.__all__, *incoherence.__all__]
