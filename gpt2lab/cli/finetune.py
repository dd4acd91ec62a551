"""``gpt2lab finetune DATA --model NAME --steps N --run-name NAME``: fine-tuning from the command line.

The options are made from :class:`gpt2lab.training.config.FinetuneConfig`, the same definition
:func:`gpt2lab.finetune` takes its keywords from: one option per field (``--run-name`` for
``run_name``), with the field's type, allowed values, default and help. Several processes: start the
same command with ``accelerate launch --multi_gpu --num_processes N -m gpt2lab.cli finetune ...``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing

from gpt2lab.loading import ModelNotFoundError
from gpt2lab.training.config import FinetuneConfig, type_hints
from gpt2lab.training.finetuning import finetune
from gpt2lab.training.processes import ProcessSetupError, RunBusyError, is_main_process

__all__ = ["add_finetune_options", "config_from_args", "register"]


def add_finetune_options(parser: argparse.ArgumentParser) -> None:
    """One option per FinetuneConfig field. Unset options stay out of the namespace (``argparse.SUPPRESS``),
    so the config's own defaults apply, exactly as for a Python call without that keyword."""
    group = parser.add_argument_group("fine-tuning options (gpt2lab.training.FinetuneConfig)")
    hints = type_hints()
    for f in dataclasses.fields(FinetuneConfig):
        hint = hints[f.name]
        flags = [f"--{f.name.replace('_', '-')}", *f.metadata["flags"]]
        help_text = f.metadata["help"]
        if "default" not in help_text:
            help_text += f" (default: {f.default})"
        kwargs: dict = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        members = [m for m in typing.get_args(hint) or [hint] if m is not type(None)]
        if typing.get_origin(hint) is typing.Literal or any(typing.get_origin(m) is typing.Literal for m in members):
            literal = next(m for m in [hint, *members] if typing.get_origin(m) is typing.Literal)
            kwargs["choices"] = list(typing.get_args(literal))
        elif bool in members:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif any(typing.get_origin(m) is list for m in members):
            kwargs.update(nargs="+", metavar="NAME")
        else:
            kind = next((m for m in (int, float) if m in members), str)
            kwargs.update(type=kind, metavar="PATH" if os.PathLike in members else
                          {int: "N", float: "X"}.get(kind, "TEXT"))
        group.add_argument(*flags, **kwargs)
        for off in f.metadata["off_flags"]:
            group.add_argument(off, dest=f.name, action="store_false", default=argparse.SUPPRESS,
                               help=f"the same as --no-{f.name.replace('_', '-')}")


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The FinetuneConfig of the options given on the command line (the others keep their defaults)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(FinetuneConfig) if hasattr(args, f.name)}
    return FinetuneConfig(**given)


def register(subparsers) -> None:
    """Add ``gpt2lab finetune DATA --model NAME --steps N --run-name NAME ...``."""
    p = subparsers.add_parser("finetune", help="fine-tune a model on a .txt/.csv/.jsonl file or a folder",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="a .txt, .csv (one column of texts), .jsonl file, or a folder of .txt files")
    p.add_argument("--model", default=None, help="model name or folder (default: the run's base when resuming, "
                                                 "else $GPT2LAB_MODEL / gpt2 / the embedded model)")
    add_finetune_options(p)
    p.set_defaults(func=_cli_finetune)


def _cli_finetune(args) -> int:
    config = config_from_args(args)  # checks every option before anything is loaded
    try:
        result = finetune(args.data, args.model, config=config)
    except (ProcessSetupError, RunBusyError, ValueError, FileNotFoundError, ModelNotFoundError) as err:
        # a user error: one line, no traceback. Every process of a run meets the same one (bad data, a busy
        # run, ...), so the main process alone says it
        if is_main_process():
            print(f"gpt2lab finetune: error: {err}", file=sys.stderr)
        return 2
    if is_main_process():
        print(f"run {result.run_name!r}: {result.steps} steps, latest checkpoint {result.checkpoint}")
        if result.perplexity_before is not None and result.perplexity_after is not None:
            print(f"validation perplexity: {result.perplexity_before:.3f} -> {result.perplexity_after:.3f}")
    return 0
