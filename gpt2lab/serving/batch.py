"""``gpt2lab batch``: a JSONL file of generation requests in, one JSON result per line out.

Each line is the body ``POST /invocations`` takes; each result line is::

    {"line": 1, "ok": true, "output": ["..."], "seed": 123, "ignored": [], "request_sha256": "..."}
    {"line": 2, "ok": false, "error": "temperature=0 is not allowed ...", "fields": [...], "request_sha256": "..."}

A bad line yields an error record and the rest still run. The job is restartable: run the same command
again and it keeps the results already written (checking they belong to the same request lines), drops
a half-written last line, and continues with the first unfinished request. Requests without a seed get
a random one, recorded in the result, so each line can be reproduced.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from gpt2lab.generation import pipeline as generation
from gpt2lab.generation.params import GenerationParams, InvalidParameterError

__all__ = ["process_line", "run_batch"]

if TYPE_CHECKING:
    from gpt2lab.loading import LM


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


def process_line(lm: LM, number: int, line: bytes) -> dict:
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


def run_batch(lm: LM, requests, results, *, overwrite: bool = False, progress: bool = True) -> dict:
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
            out.write(json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n")
            out.flush()
            os.fsync(out.fileno())
    return counts

