"""``gpt2lab generate`` and ``gpt2lab batch``: generation from the command line.

The options are derived from :class:`gpt2lab.params.GenerationParams`, the same definition the Python
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
import hashlib
import json
import os
import sys
import typing
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from . import generation
from .params import ALIASES, GenerationParams, InvalidParameterError

BATCH_DESCRIPTION = """Run a JSONL file of generation requests: one JSON object per line (the body POST /invocations
takes, e.g. {"input": "ROMEO:", "max_length": 40, "seed": 1}), one JSON result per line, in order.
A bad line gets an error record ({"ok": false, "error": ...}) and the others still run. Restartable:
run the same command again and it continues after the last finished line."""

# extra short spellings on the command line
SHORT_FLAGS = {"num_return_sequences": ["-n"]}


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    """One option per GenerationParams field (and alias). Unset options are left out of the namespace,
    so only what the user typed counts as "given" (which is what the ignored-parameter report needs)."""
    group = parser.add_argument_group("generation parameters (see gpt2lab.params)")
    for name, info in GenerationParams.model_fields.items():
        if name == "input":
            continue
        flags = [f"--{name.replace('_', '-')}"]
        flags += [f"--{alias.replace('_', '-')}" for alias, target in ALIASES.items() if target == name]
        flags += SHORT_FLAGS.get(name, [])
        kwargs: dict = {"dest": name, "default": argparse.SUPPRESS, "help": f"{info.description} "
                                                                           f"(default: {info.default})"}
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
                                            "POST /invocations.")
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
    from .loading import load

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


def _sha256(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _request_lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file's final newline ends the last line; it does not start a new one
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _completed(results: Path, requests: list[bytes]) -> int:
    """How many results an earlier run wrote; drops a half-written last line; checks they match."""
    raw = results.read_bytes()
    if raw and not raw.endswith(b"\n"):  # interrupted while writing: keep only complete lines
        raw = raw[:raw.rfind(b"\n") + 1]
        with open(results, "r+b") as f:
            f.truncate(len(raw))
    lines = raw.split(b"\n")[:-1] if raw else []
    if len(lines) > len(requests):
        raise ValueError(f"{results} holds {len(lines)} results but the requests file has only {len(requests)} "
                         "lines; it belongs to another job (pass --overwrite to start over)")
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
            number, digest = record["line"], record["request_sha256"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{results} line {i + 1} is not a result record written by gpt2lab batch; "
                             "pass --overwrite to start over") from None
        if number != i + 1 or digest != _sha256(requests[i]):
            raise ValueError(f"{results} was written for different requests (request line {i + 1} changed since); "
                             "pass --overwrite to start over or choose another results file")
    return len(lines)


def process_line(lm, number: int, line: bytes) -> dict:
    """One request line -> one result record (never raises for a bad line)."""
    record: dict = {"line": number}
    try:
        if not line.strip():
            raise InvalidParameterError([{"field": "(line)", "value": "", "message": "empty line; each line must "
                                          "hold one JSON request object", "allowed": "a JSON object"}])
        try:
            data = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise InvalidParameterError([{"field": "(line)", "value": None, "allowed": "UTF-8 text",
                                          "message": f"line is not valid UTF-8 ({err.reason})"}]) from None
        except json.JSONDecodeError as err:
            raise InvalidParameterError([{"field": "(line)", "value": None, "allowed": "a JSON object",
                                          "message": f"malformed JSON: {err.msg} at column {err.colno}"}]) from None
        params = GenerationParams.from_dict(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", generation.IgnoredParameterWarning)
            result = generation.generate(lm, params=params)
        record.update(ok=True, output=list(result), seed=result.seed, ignored=result.ignored)
        if any(result.dropped_prompt_tokens):
            record["dropped_prompt_tokens"] = result.dropped_prompt_tokens
    except InvalidParameterError as err:
        record.update(ok=False, **err.as_json())
    except Exception as err:  # noqa: BLE001 - one failing request must not stop the job
        record.update(ok=False, error=f"{type(err).__name__}: {err}")
    record["request_sha256"] = _sha256(line)
    return record


def run_batch(lm, requests, results, *, overwrite: bool = False, progress: bool = True) -> dict:
    """Run every request line of ``requests`` (JSONL) and write one record per line to ``results``.

    Restartable (see the module docstring). Returns counts: total, skipped (done by an earlier run),
    ok, errors.
    """
    requests, results = Path(requests), Path(results)
    if not requests.is_file():
        raise FileNotFoundError(f"requests file {str(requests)!r} does not exist")
    lines = _request_lines(requests)
    done = 0
    if results.exists() and not overwrite:
        done = _completed(results, lines)
    else:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_bytes(b"")
    counts = {"total": len(lines), "skipped": done, "ok": 0, "errors": 0}
    with open(results, "ab") as out:
        for i in tqdm(range(done, len(lines)), desc="batch", unit="request", disable=not progress,
                      initial=done, total=len(lines)):
            record = process_line(lm, i + 1, lines[i])
            counts["ok" if record["ok"] else "errors"] += 1
            out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            out.flush()
            os.fsync(out.fileno())
    return counts
