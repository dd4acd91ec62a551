"""The options of a fine-tuning run, defined once.

:class:`FinetuneConfig` is the one definition of what ``gpt2lab.finetune`` can be told: each field's
type, default, allowed values and help text. The keywords :func:`gpt2lab.finetune` accepts (and shows
in its signature) and the options of ``gpt2lab finetune`` (see :mod:`gpt2lab.cli.finetune`) are both
made from these fields, so adding an option means adding one field here, and using it in
:mod:`gpt2lab.training.finetuning`.

Option names follow gpt-2-simple where it has one (``steps``, ``run_name``, ``checkpoint_dir``,
``sample_every``, ``sample_length``, ``only_train_transformer_layers``, ...).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from gpt2lab.training.loop import Device, MixedPrecision
from gpt2lab.training.reading import BadRows, Format
from gpt2lab.training.runs import DEFAULT_CHECKPOINT_DIR
from gpt2lab.training.tokenised import START_TOKEN

__all__ = ["MIXED_PRECISION", "DEVICES", "FinetuneOptionError", "FinetuneConfig"]

MIXED_PRECISION = get_args(MixedPrecision)
DEVICES = get_args(Device)


class FinetuneOptionError(ValueError):
    """A fine-tuning option with a value it does not allow; the message names the option, the value and
    what is allowed."""

    def __init__(self, name: str, value: Any, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"{name}={value!r} is not allowed; {name} must be {allowed}")


def _option(default, help: str, *, allowed: str = "", check=None, flags=(), off_flags=()):
    """A field with its help text; ``check(value)`` (for values that are not None) and ``allowed`` (its
    words) narrow the type; ``flags`` are extra command-line spellings, ``off_flags`` extra spellings
    that set a true/false option to False."""
    return field(default=default, metadata={"help": help, "allowed": allowed, "check": check,
                                            "flags": tuple(flags), "off_flags": tuple(off_flags)})


def _at_least(low):
    return lambda v: v >= low


@dataclass
class FinetuneConfig:
    """Every option of a fine-tuning run (see the module docstring). Build one with keywords, or with
    :meth:`build`, which also accepts another config to change; the values are checked on creation
    (:class:`FinetuneOptionError`, a ValueError, names the first one that is not allowed)."""

    # ---- the run
    steps: int = _option(1000, "total optimizer steps of the run (a resumed run trains the steps still missing)",
                         allowed="a whole number >= 1", check=_at_least(1))
    run_name: str = _option("run1", "the run's folder name in checkpoint_dir", allowed="a plain folder name",
                            check=lambda v: v not in ("", ".", "..") and "/" not in v and "\\" not in v)
    checkpoint_dir: str | os.PathLike = _option(DEFAULT_CHECKPOINT_DIR, "the folder the runs live in")
    resume: bool = _option(True, "continue from the run's latest checkpoint; --no-resume / --fresh starts the run "
                                 "afresh and deletes its old checkpoints", off_flags=["--fresh"])
    # ---- optimisation
    block_size: int | None = _option(None, "tokens per training sequence (default: the model's context, at most "
                                           "1024)", allowed="None or a whole number >= 2", check=_at_least(2))
    batch_size: int = _option(4, "sequences per micro-batch, per process", allowed="a whole number >= 1",
                              check=_at_least(1))
    grad_accum: int = _option(1, "micro-batches per optimizer step", allowed="a whole number >= 1",
                              check=_at_least(1))
    learning_rate: float | None = _option(None, "peak learning rate (default 1e-4, 3e-4 with LoRA)",
                                          allowed="None or a number > 0", check=lambda v: v > 0, flags=["--lr"])
    warmup_steps: int | None = _option(None, "linear warmup steps (default: a tenth of the steps, at most 100), "
                                             "then cosine decay", allowed="None or a whole number >= 0",
                                       check=_at_least(0))
    min_lr_ratio: float = _option(0.1, "the cosine decay ends at learning_rate * min_lr_ratio",
                                  allowed="a number in [0, 1]", check=lambda v: 0 <= v <= 1)
    weight_decay: float = _option(0.0, "AdamW weight decay (matrices only)", allowed="a number >= 0",
                                  check=_at_least(0))
    grad_clip: float = _option(1.0, "clip the gradient norm to this (0: no clipping)", allowed="a number >= 0",
                               check=_at_least(0))
    seed: int = _option(0, "seed of the data order, the validation split and the initial random state",
                        allowed="a whole number >= 0", check=_at_least(0))
    mixed_precision: MixedPrecision = _option("auto", "autocast: auto (bf16 or fp16 on a GPU, none on a CPU), no, "
                                                      "bf16, fp16")
    device: Device = _option("auto", "auto (a GPU when there is one) or cpu; several processes: start the command "
                                     "with `accelerate launch` (README)")
    # ---- checkpoints, samples, logs
    checkpoint_every: int = _option(500, "save a checkpoint every N steps (and at the end; 0: only at the end)",
                                    allowed="a whole number >= 0", check=_at_least(0))
    keep_last: int = _option(1, "checkpoints kept (the latest ones)", allowed="a whole number >= 1",
                             check=_at_least(1))
    keep_best: bool = _option(False, "also keep the weights of the lowest validation loss in RUN/best "
                                     "(load_run(run, best=True)); needs validation data")
    sample_every: int = _option(100, "print (and append to samples.txt) a sample every N steps (0: never)",
                                allowed="a whole number >= 0", check=_at_least(0))
    sample_length: int = _option(100, "tokens per sample", allowed="a whole number >= 1", check=_at_least(1))
    sample_prompt: str | None = _option(None, "the samples' prompt (default: the start token for wrapped data, "
                                              "else end-of-text)")
    log_every: int = _option(10, "record the training loss every N steps", allowed="a whole number >= 1",
                             check=_at_least(1))
    # ---- validation
    val_fraction: float = _option(0.1, "fraction of the data held out for validation",
                                  allowed="a number in [0, 1)", check=lambda v: 0 <= v < 1)
    val: str | os.PathLike | None = _option(None, "a separate validation file (instead of val_fraction)")
    eval_every: int | None = _option(None, "validation loss every N steps (default: 5 times per run)",
                                     allowed="None or a whole number >= 1", check=_at_least(1))
    eval_batches: int = _option(10, "batches of the validation loss", allowed="a whole number >= 1",
                                check=_at_least(1))
    eval_stride: int | None = _option(None, "stride of the sliding-window perplexity before and after (default: "
                                            "half a block)", allowed="None or a whole number >= 1",
                                      check=_at_least(1))
    eval_max_tokens: int | None = _option(None, "score at most this many validation tokens for the perplexity",
                                          allowed="None or a whole number >= 2", check=_at_least(2))
    # ---- reading the data
    format: Format | None = _option(None, "the data format (default: from the file name)")
    line_by_line: bool = _option(False, "every line / row / record is one example, never cut across blocks")
    wrap: bool | None = _option(None, "wrap examples in start/end tokens (default: only for CSV)")
    text_field: str | None = _option(None, "the JSONL field / CSV column holding the text (default text)")
    csv_header: bool = _option(True, "the CSV's first row is a header", off_flags=["--no-header"])
    encoding: str = _option("utf-8", "the text encoding of the data")
    bad_rows: BadRows = _option("error", "error: stop on bad rows; skip: leave them out and list them in the "
                                         "data report")
    start_token: str = _option(START_TOKEN, "the token that starts a wrapped example", allowed="a non-empty string",
                               check=bool)
    cache: bool = _option(True, "cache the tokenised data (keyed by the data's SHA-256 and the tokenizer)")
    cache_dir: str | os.PathLike | None = _option(None, "where tokenised data is cached (default: "
                                                        "<gpt2lab cache>/finetune)",
                                                  allowed="None or a path (cache=False turns the cache off)")
    # ---- what trains
    only_train_transformer_layers: bool = _option(False, "freeze the token and position embeddings (and the "
                                                         "tied output layer)")
    lora: bool = _option(False, "train LoRA adapters (peft) instead of all weights; checkpoints hold only the "
                                "adapter")
    lora_r: int = _option(8, "LoRA rank", allowed="a whole number >= 1", check=_at_least(1))
    lora_alpha: float = _option(16.0, "LoRA scale numerator (updates are scaled by alpha / r)",
                                allowed="a number > 0", check=lambda v: v > 0)
    lora_dropout: float = _option(0.05, "dropout on the LoRA path", allowed="a number in [0, 1)",
                                  check=lambda v: 0 <= v < 1)
    lora_target_modules: list[str] | None = _option(None, "module names to adapt (default: GPT-2's c_attn, c_proj, "
                                                          "c_fc)", allowed="None or a non-empty list of names",
                                                    check=bool)
    # ---- output
    progress: bool = _option(True, "show progress bars")
    verbose: bool = _option(True, "print what the run does")

    def __post_init__(self):
        hints = type_hints()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            hint = hints[f.name]
            if not _fits(value, hint):
                raise FinetuneOptionError(f.name, value, f.metadata["allowed"] or describe(hint))
            check = f.metadata["check"]
            if value is not None and check is not None and not check(value):
                raise FinetuneOptionError(f.name, value, f.metadata["allowed"])
            if _base(hint) is float and isinstance(value, int):
                setattr(self, f.name, float(value))
            elif isinstance(value, tuple):
                setattr(self, f.name, list(value))

    @classmethod
    def build(cls, config: FinetuneConfig | None = None, /, **options) -> FinetuneConfig:
        """A config from keywords, or ``config`` with some options changed. An unknown keyword raises
        TypeError naming the closest option."""
        known = [f.name for f in dataclasses.fields(cls)]
        for name in options:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"{name!r} is not a fine-tuning option{hint} (the options are the fields of "
                                f"gpt2lab.training.FinetuneConfig)")
        if config is not None and not isinstance(config, cls):
            raise TypeError(f"config must be a FinetuneConfig, got {type(config).__name__}")
        return dataclasses.replace(config, **options) if config is not None else cls(**options)

    # ---- values that depend on other options
    def peak_learning_rate(self) -> float:
        return self.learning_rate or (3e-4 if self.lora else 1e-4)

    def warmup(self) -> int:
        return min(100, self.steps // 10) if self.warmup_steps is None else self.warmup_steps

    def evaluation_interval(self) -> int:
        return self.eval_every or max(1, self.steps // 5)

    def lora_settings(self) -> dict:
        """The LoRA settings as the run records them (``{}`` without LoRA)."""
        if not self.lora:
            return {}
        return {"r": self.lora_r, "alpha": self.lora_alpha, "dropout": self.lora_dropout,
                "target_modules": self.lora_target_modules}

    def record(self) -> dict:
        """The options as JSON values (paths as strings), as ``run.json`` keeps them."""
        return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def describe_options(cls) -> str:
        """One line per option (name, type, default, help), for docstrings and help pages."""
        hints = type_hints()
        return "\n".join(f"{f.name} ({describe(hints[f.name])}, default {f.default!r}): {f.metadata['help']}."
                         for f in dataclasses.fields(cls))


def type_hints() -> dict:
    """The field types of :class:`FinetuneConfig`, evaluated."""
    return typing.get_type_hints(FinetuneConfig)


def _members(hint) -> list:
    """The types a hint allows (a union's members, else the hint itself)."""
    args = typing.get_args(hint)
    return list(args) if args and typing.get_origin(hint) is not Literal and typing.get_origin(hint) is not list \
        else [hint]


def _base(hint):
    """The type a hint allows besides None (the first one)."""
    return next((m for m in _members(hint) if m is not type(None)), type(None))


def _fits(value, hint) -> bool:
    for member in _members(hint):
        origin = typing.get_origin(member)
        if member is type(None) and value is None:
            return True
        if origin is Literal and value in typing.get_args(member):
            return True
        if origin is list and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return True
        if member is bool and isinstance(value, bool):
            return True
        if member is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if member is float and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return True
        if member is str and isinstance(value, str):
            return True
        if member is os.PathLike and isinstance(value, os.PathLike):
            return True
    return False


def describe(hint) -> str:
    """A type in words: 'a whole number', 'one of 'a', 'b'', 'True or False', ..."""
    words = {bool: "True or False", int: "a whole number", float: "a number", str: "a string",
             os.PathLike: "a path", type(None): "None", Path: "a path"}
    parts = []
    for member in _members(hint):
        if typing.get_origin(member) is Literal:
            parts.append("one of " + ", ".join(repr(a) for a in typing.get_args(member)))
        elif typing.get_origin(member) is list:
            parts.append("a list of strings")
        elif words.get(member) not in parts:
            parts.append(words.get(member, getattr(member, "__name__", str(member))))
    if "a string" in parts and "a path" in parts:
        parts.remove("a string")
    return " or ".join(parts)
