"""``gpt2lab generate`` and ``gpt2lab batch``: generation from the command line.

The options are derived from :class:`gpt2lab.generation.params.GenerationParams`, the same definition the Python
API and the HTTP endpoint use, so every parameter (and alias) means the same thing everywhere.

``gpt2lab batch requests.jsonl results.jsonl`` reads one JSON request per line (the body the endpoint
takes) and writes one JSON result per line, in the same order::

    {"line": 1, "ok": true, "output": ["..."], "seed": 123, "ignored": [], "request_sha256": "..."}
    {"line": 2, "ok": false, "error": "temperature=0 is not allowed ...", "fields": [...], "request_sha256": "..."}

A bad line yields an error record and the rest still run. The job is restartable: run the same command
again and it keeps the results already written (checking they belong to the same request lines), drops
a half-written last line, and continues with the first unfinished request. Requests without a seed get
a random one, recorded in the result, so each line can be reproduced.
"""
from __future__ import annotations

import argparse
import json
import sys
import typing
import warnings
from pathlib import Path

from gpt2lab.generation import pipeline as generation
from gpt2lab.generation.params import ALIASES, GenerationParams, mode_table_markdown
from gpt2lab.serving.batch import run_batch

__all__ = ["BATCH_DESCRIPTION", "MODES_EPILOG", "SHORT_FLAGS", "add_generation_options", "params_from_args"]

BATCH_DESCRIPTION = """Run a JSONL file of generation requests: one JSON object per line (the body POST /invocations
takes, e.g. {"input": "ROMEO:", "max_length": 40, "seed": 1}), one JSON result per line, in order.
A bad line gets an error record ({"ok": false, "error": ...}) and the others still run. Restartable:
run the same command again and it continues after the last finished line."""

MODES_EPILOG = "Each mode uses these parameters (the published API's table):\n\n" + mode_table_markdown()

# extra short spellings on the command line
SHORT_FLAGS = {"num_return_sequences": ["-n"]}


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    """One option per GenerationParams field (and alias). Unset options are left out of the namespace,
    so only what the user typed counts as "given" (which is what the ignored-parameter report needs)."""
    group = parser.add_argument_group("generation parameters (see gpt2lab.generation.params)")
    for name, info in GenerationParams.model_fields.items():
        if name == "input":
            continue
        flags = [f"--{name.replace('_', '-')}"]
        flags += [f"--{alias.replace('_', '-')}" for alias, target in ALIASES.items() if target == name]
        flags += SHORT_FLAGS.get(name, [])
        kwargs: dict = {"dest": name, "default": argparse.SUPPRESS, "help": info.description.replace("%", "%%")}
        annotation = info.annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(annotation))
        elif annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            base = annotation if not args else args[0]
            kwargs["type"] = base if base in (int, float, str) else str
            kwargs["metavar"] = {int: "N", float: "X"}.get(kwargs["type"], "TEXT")
        group.add_argument(*flags, **kwargs)


def params_from_args(args: argparse.Namespace, prompt) -> GenerationParams:
    given = {name: getattr(args, name) for name in GenerationParams.model_fields if hasattr(args, name)}
    given.pop("input", None)
    return generation.resolve_params(prompt, None, **given)


def register(subparsers) -> None:
    """Add ``gpt2lab generate`` and ``gpt2lab batch``."""
    gen = subparsers.add_parser("generate", help="generate text from a prompt",
                                description="Generate text from a prompt. Parameters as in gpt2lab.generate and "
                                            "POST /invocations.", epilog=MODES_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    gen.add_argument("prompt", help="the prompt text ('-' reads it from standard input)")
    _model_options(gen)
    gen.add_argument("--json", action="store_true", help="print a JSON object (texts, parameters, seed)")
    add_generation_options(gen)
    gen.set_defaults(func=_generate_command)

    batch = subparsers.add_parser("batch", help="run a JSONL file of generation requests",
                                  description=BATCH_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    batch.add_argument("requests", help="input JSONL: one request object per line")
    batch.add_argument("results", help="output JSONL: one result per line (appended to when restarting)")
    _model_options(batch)
    batch.add_argument("--overwrite", action="store_true", help="start over instead of continuing an earlier run")
    batch.set_defaults(func=_batch_command)


def _model_options(parser) -> None:
    parser.add_argument("--model", default=None, help="embedded name, local directory or Hub id (default: the "
                                                      "course model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def _load(args):
    from gpt2lab.loading import load

    return load(args.model, device=args.device)


def _generate_command(args) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    params = params_from_args(args, prompt)  # validate before loading the model
    note = params.ignored_message()
    if note:
        print(f"gpt2lab generate: note: {note}", file=sys.stderr)
    lm = _load(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", generation.IgnoredParameterWarning)
        result = generation.generate(lm, params=params)
    if args.json:
        print(json.dumps(result.record(), ensure_ascii=False, indent=2))
    else:
        print(generation.SAMPLE_DELIM.join(t if t.endswith("\n") else t + "\n" for t in result), end="")
        if result.seed is not None:
            print(f"gpt2lab generate: seed {result.seed}", file=sys.stderr)
    return 0


def _batch_command(args) -> int:
    if not Path(args.requests).is_file():
        raise FileNotFoundError(f"requests file {args.requests!r} does not exist")
    lm = _load(args)
    summary = run_batch(lm, args.requests, args.results, overwrite=args.overwrite)
    print(f"gpt2lab batch: {summary['total']} requests: {summary['skipped']} already done, {summary['ok']} ok, "
          f"{summary['errors']} errors -> {args.results}", file=sys.stderr)
    return 0



