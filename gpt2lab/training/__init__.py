"""Training and fine-tuning (notebook 11): the training loop on ``accelerate`` (schedules, atomic
checkpoints, resume, best weights), ``finetune`` and its runs, LoRA, several processes per run, and the
memorisation check.

Fine-tuning, module by module: ``reading`` (data files, problems by line) -> ``tokenised`` (tokenise once,
cached) -> ``blocks`` (training blocks) -> ``lora`` (start token, adapters) -> ``finetuning`` (``finetune``,
with its options defined once in ``config``) -> ``runs`` (run folders, ``load_run``); ``processes`` holds
the multi-process set-up and the one-writer-per-run lock.
"""
from __future__ import annotations

from gpt2lab.training import (
    blocks,
    config,
    finetuning,
    loop,
    lora,
    memorisation,
    processes,
    reading,
    runs,
    tokenised,
)
from gpt2lab.training.blocks import *  # noqa: F403
from gpt2lab.training.config import *  # noqa: F403
from gpt2lab.training.finetuning import *  # noqa: F403
from gpt2lab.training.loop import *  # noqa: F403
from gpt2lab.training.lora import *  # noqa: F403
from gpt2lab.training.memorisation import *  # noqa: F403
from gpt2lab.training.processes import *  # noqa: F403
from gpt2lab.training.reading import *  # noqa: F403
from gpt2lab.training.runs import *  # noqa: F403
from gpt2lab.training.tokenised import *  # noqa: F403

_MODULES = (loop, reading, tokenised, blocks, lora, config, runs, processes, finetuning, memorisation)

__all__ = [m.__name__.rsplit(".", 1)[1] for m in _MODULES] + [name for m in _MODULES for name in m.__all__]
