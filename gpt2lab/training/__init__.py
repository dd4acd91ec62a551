"""Training and fine-tuning (notebook 08): the training loop on ``accelerate`` (schedules, atomic
checkpoints, resume, best weights), ``finetune`` and its runs, LoRA, and the memorisation check.
"""
from __future__ import annotations

from gpt2lab.training import finetuning, loop, memorisation
from gpt2lab.training.finetuning import *  # noqa: F403
from gpt2lab.training.loop import *  # noqa: F403
from gpt2lab.training.memorisation import *  # noqa: F403

__all__ = ["loop", "finetuning", "memorisation", *loop.__all__, *finetuning.__all__, *memorisation.__all__]
