"""Fine-tuning GPT-2 on your own text, the gpt-2-simple way, on gpt2lab's accelerate training loop.

``finetune("my_texts.csv", model="gpt2", steps=500, run_name="run1")`` reads the data, tokenises
it (once: the result is cached), trains, and leaves a *run* folder ``checkpoint/run1`` with
checkpoints, samples, a loss curve and the validation perplexity before and after. Running the
same call again resumes from the latest checkpoint. ``load_run("run1")`` gives back an
:class:`~gpt2lab.LM` to generate from.

Data formats (chosen by the file name, or ``format=``):

* ``.txt``: one text. The whole text is packed into fixed-length blocks, so no token is padding.
* ``.csv``: one column of short texts (a header row by default, like gpt-2-simple). Each row is
  wrapped as ``<|startoftext|>`` row ``<|endoftext|>``; the start token is added to the
  tokenizer and the model's embedding grows by one row (initialised to the mean embedding).
  Generate from such a model with ``prefix="<|startoftext|>"`` and ``truncate="<|endoftext|>"``.
* ``.jsonl``: one JSON object per line; the text is in ``text_field`` (default ``"text"``).
* a folder: every ``*.txt`` file under it is one document.

Documents are separated by ``<|endoftext|>``. By default all of them are concatenated into one
stream that is cut into blocks of ``block_size`` tokens (a block may start in the middle of a
document, as in gpt-2-simple). ``line_by_line=True`` makes every line (every row, every record)
one example that is never cut: examples are packed whole into blocks and the rest of a block is
padding that the loss ignores.

Problems in the data (empty rows, bytes that are not valid text, a record without the text
field, a file too small for one block, ...) are reported with file and line number. By default
they stop the run (``DataError``); ``bad_rows="skip"`` leaves the bad rows out and lists them in
the data report. Nothing is dropped silently.

Validation: ``val_fraction`` of the data is held out (the last part of a single text, or randomly
chosen examples of a multi-example file), or ``val=`` names a separate file. The perplexity on it
is measured before and after training with a sliding window: windows of ``block_size`` tokens
advance by ``eval_stride`` tokens (default half a block) and each token is scored once, with at
least ``block_size - eval_stride`` tokens of context when it is not near the start.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from gpt2lab import files
from gpt2lab.fingerprint import tokenizer_fingerprint
from gpt2lab.loading import LM
from gpt2lab.training import loop as training

__all__ = ["is_main_process", "START_TOKEN", "DEFAULT_CHECKPOINT_DIR", "RUN_FILE", "SAMPLES_FILE",
           "LOSS_PLOT", "BASE_MODEL_DIR", "CACHE_VERSION", "FORMATS", "BAD_ROWS", "FOLDER_SUFFIXES",
           "MAX_ISSUES_SHOWN", "DataIssue", "DataError", "SKIP_HINT", "Example", "ReadResult",
           "detect_format", "read_examples", "DataReport", "FinetuneData", "prepare_data", "StreamBlocks",
           "PackedExamples", "Chunks", "training_blocks", "training_texts", "add_start_token", "match_vocab",
           "wrap_lora", "FinetuneResult", "run_dir_of", "read_run", "finetune", "list_runs",
           "find_checkpoint", "load_run"]

START_TOKEN = "<|startoftext|>"
DEFAULT_CHECKPOINT_DIR = "checkpoint"
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.txt"
LOSS_PLOT = "loss.png"
BASE_MODEL_DIR = "base-model"
CACHE_VERSION = 1
FORMATS = ("txt", "csv", "jsonl", "folder")
BAD_ROWS = ("error", "skip")
FOLDER_SUFFIXES = (".txt",)
MAX_ISSUES_SHOWN = 10


# ============================================================================ data problems

@dataclass(frozen=True)
class DataIssue:
    """One problem found in the data, with where it is (file and 1-based line number)."""

    file: str
    line: int | None
    kind: str  # empty, undecodable, bad_json, missing_field, not_text, bad_columns, too_long, too_small
    detail: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line else self.file
        return f"{where}: {self.detail}"


class DataError(ValueError):
    """The data cannot be used as it is. ``issues`` lists every problem found."""

    def __init__(self, issues: list[DataIssue], hint: str = ""):
        self.issues = list(issues)
        shown = "; ".join(str(i) for i in self.issues[:MAX_ISSUES_SHOWN])
        more = f" (and {len(self.issues) - MAX_ISSUES_SHOWN} more)" if len(self.issues) > MAX_ISSUES_SHOWN else ""
        count = f"{len(self.issues)} problem{'s' if len(self.issues) != 1 else ''} in the data"
        super().__init__(f"{count}: {shown}{more}" + (f". {hint}" if hint else ""))


SKIP_HINT = ("Fix the data, or pass bad_rows='skip' (command line: --bad-rows skip) to leave these rows out; "
             "they are then listed in the data report")


# ============================================================================ reading files

@dataclass
class Example:
    """One training text and where it came from."""

    text: str
    file: str
    line: int


@dataclass
class ReadResult:
    examples: list  # Example
    issues: list  # DataIssue
    ignored_files: list = field(default_factory=list)  # folder files that are not text files
    header: str = ""  # the CSV header row, when the first row was taken as one


def detect_format(path: Path) -> str:
    """``txt``, ``csv``, ``jsonl`` or ``folder``, from the path."""
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".txt", ".text", ".md", ""):
        return "txt"
    raise ValueError(f"cannot tell the format of {str(path)!r} from its suffix {suffix!r}; pass format= one of "
                     f"{', '.join(FORMATS)}")


def _decode(raw: bytes, name: str, encoding: str) -> tuple[list[tuple[int, str]], list[DataIssue]]:
    """Split ``raw`` into (line number, line without its line break) and report lines whose bytes
    are not valid ``encoding``."""
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise ValueError(f"encoding={encoding!r} is not a known text encoding (e.g. 'utf-8', 'latin-1')") from None
    except UnicodeDecodeError:
        text = None
    if text is not None:
        if text.startswith("\ufeff"):  # a byte-order mark is not part of the text
            text = text[1:]
        return [(i + 1, line) for i, line in enumerate(_split_lines(text))], []
    lines, issues = [], []
    for i, chunk in enumerate(raw.split(b"\n")):
        if i == 0 and chunk.startswith(b"\xef\xbb\xbf"):
            chunk = chunk[3:]
        chunk = chunk[:-1] if chunk.endswith(b"\r") else chunk
        try:
            lines.append((i + 1, chunk.decode(encoding)))
        except UnicodeDecodeError as err:
            bad = chunk[err.start:err.start + 1]
            issues.append(DataIssue(name, i + 1, "undecodable",
                                    f"byte 0x{bad.hex()} at column {err.start + 1} is not valid {encoding} "
                                    f"(pass encoding= if the file is in another encoding)"))
    if lines and raw.endswith(b"\n") and lines[-1][1] == "":
        lines.pop()
    return lines, issues


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "" and text.endswith("\n"):
        lines.pop()  # the final line break does not start another line
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_txt(path: Path, name: str, line_by_line: bool, encoding: str) -> tuple[list[Example], list[DataIssue]]:
    raw = path.read_bytes()
    if not line_by_line:
        try:
            text = raw.decode(encoding)
            issues = []
        except UnicodeDecodeError:
            lines, issues = _decode(raw, name, encoding)
            text = "".join(line + "\n" for _, line in lines)  # only the undecodable lines are left out
            if not raw.endswith(b"\n"):
                text = text[:-1]
        except LookupError:
            _decode(raw, name, encoding)  # raises the clear error about the encoding
            raise
        text = text.lstrip("\ufeff")
        if not text.strip():
            return [], issues + [DataIssue(name, None, "empty", "the file holds no text")]
        return [Example(text, name, 1)], issues
    lines, issues = _decode(raw, name, encoding)
    examples = []
    for number, line in lines:
        if not line.strip():
            issues.append(DataIssue(name, number, "empty", "empty line (in line-by-line mode every line is an "
                                                           "example)"))
        else:
            examples.append(Example(line, name, number))
    if not lines and not issues:
        issues.append(DataIssue(name, None, "empty", "the file holds no text"))
    return examples, issues


def _read_csv(path: Path, name: str, text_field: str | None, header: bool, encoding: str):
    lines, issues = _decode(path.read_bytes(), name, encoding)
    # feed the csv reader line by line so every record keeps the number of the line it starts on
    numbered = iter(lines)
    current = [0]

    def feed():
        for number, line in numbered:
            current[0] = number
            yield line + "\n"

    reader = csv.reader(feed())
    examples: list[Example] = []
    column = 0
    n_columns = None
    first = True
    header_text = ""
    while True:
        start = current[0] + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            issues.append(DataIssue(name, start, "bad_columns", f"not valid CSV ({err})"))
            break
        if first:
            first = False
            n_columns = len(row) if row else None
            if header:
                names = [c.strip() for c in row]
                header_text = ",".join(names)
                if len(names) > 1 or text_field not in (None, "text"):
                    if text_field is None or text_field not in names:
                        raise ValueError(
                            f"{name} has the columns {names}; pass text_field= (command line: --text-field) naming "
                            f"the one that holds the texts" if len(names) > 1 else
                            f"{name} has the single column {names}, not text_field={text_field!r}")
                    column = names.index(text_field)
                continue
            if n_columns and n_columns > 1:
                raise ValueError(f"{name} has {n_columns} columns and no header row; a CSV for fine-tuning has one "
                                 "column of texts, or a header row and text_field= naming the text column")
        if not row or all(not c.strip() for c in row):
            issues.append(DataIssue(name, start, "empty", "empty row"))
            continue
        if n_columns is not None and len(row) != n_columns:
            issues.append(DataIssue(name, start, "bad_columns",
                                    f"row has {len(row)} columns, the first row has {n_columns}"))
            continue
        text = row[column]
        if not text.strip():
            issues.append(DataIssue(name, start, "empty", "empty text in the row"))
            continue
        examples.append(Example(text, name, start))
    return examples, issues, header_text


def _read_jsonl(path: Path, name: str, text_field: str | None, encoding: str):
    field_name = text_field or "text"
    lines, issues = _decode(path.read_bytes(), name, encoding)
    examples = []
    for number, line in lines:
        if not line.strip():
            issues.append(DataIssue(name, number, "empty", "empty line"))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            issues.append(DataIssue(name, number, "bad_json", f"not valid JSON ({err.msg} at column {err.colno})"))
            continue
        if not isinstance(record, dict) or field_name not in record:
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            issues.append(DataIssue(name, number, "missing_field",
                                    f"no field {field_name!r} (found {keys}); pass text_field= to use another"))
            continue
        text = record[field_name]
        if not isinstance(text, str):
            issues.append(DataIssue(name, number, "not_text",
                                    f"field {field_name!r} is a {type(text).__name__}, not a string"))
            continue
        if not text.strip():
            issues.append(DataIssue(name, number, "empty", f"field {field_name!r} is empty"))
            continue
        examples.append(Example(text, name, number))
    return examples, issues


def _folder_files(path: Path) -> tuple[list[Path], list[str]]:
    used, ignored = [], []
    for p in sorted(path.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or p.suffix.lower() not in FOLDER_SUFFIXES:
            ignored.append(str(rel))
        else:
            used.append(p)
    return used, ignored


def read_examples(data: str | os.PathLike, *, format: str | None = None, line_by_line: bool = False,
                  text_field: str | None = None, csv_header: bool = True, encoding: str = "utf-8") -> ReadResult:
    """Read ``data`` into examples. ``issues`` of the result lists every problem found (nothing is
    left out without an issue saying so)."""
    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no file or folder {str(path)!r}")
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not known; use one of {', '.join(FORMATS)}")
    if (fmt == "folder") != path.is_dir():
        kind = "folder" if path.is_dir() else "file"
        raise ValueError(f"format={fmt!r} does not fit {str(path)!r}, which is a {kind}")
    name = path.name
    if fmt == "txt":
        return ReadResult(*_read_txt(path, name, line_by_line, encoding))
    if fmt == "csv":
        examples, issues, header = _read_csv(path, name, text_field, csv_header, encoding)
        return ReadResult(examples, issues, header=header)
    if fmt == "jsonl":
        return ReadResult(*_read_jsonl(path, name, text_field, encoding))
    files, ignored = _folder_files(path)
    if not files:
        raise ValueError(f"the folder {str(path)!r} holds no {'/'.join(FOLDER_SUFFIXES)} files "
                         f"({len(ignored)} other files)")
    examples, issues = [], []
    for f in files:
        more, problems = _read_txt(f, str(f.relative_to(path)), line_by_line, encoding)
        examples += more
        issues += problems
    return ReadResult(examples, issues, ignored)


def _data_digest(path: Path) -> str:
    """SHA-256 of a file, or of the list of (name, content hash) of a folder's text files."""
    from gpt2lab.data import sha256_of

    if path.is_dir():
        files, _ = _folder_files(path)
        digest = hashlib.sha256()
        for f in files:
            digest.update(f"{f.relative_to(path)}\0{sha256_of(f)}\n".encode())
        return digest.hexdigest()
    return sha256_of(path)


# ============================================================================ tokenised data


def _encode(tokenizer, texts: list[str], progress: bool) -> list[list[int]]:
    from tqdm.auto import tqdm

    backend = getattr(tokenizer, "backend_tokenizer", None)
    out: list[list[int]] = []
    chunk = 2000
    for i in tqdm(range(0, len(texts), chunk), desc="tokenising", disable=not progress or len(texts) <= chunk,
                  leave=False):
        part = texts[i:i + chunk]
        if backend is not None:  # the Rust tokenizer directly: no length warnings, batch-parallel
            out += [e.ids for e in backend.encode_batch(part, add_special_tokens=False)]
        else:
            out += tokenizer(part, add_special_tokens=False)["input_ids"]
    return out


@dataclass
class DataReport:
    """What was read, what was left out and why, and how it was laid out for training."""

    source: str
    format: str
    layout: str  # "stream" (concatenated, cut into blocks) or "examples" (whole examples packed into blocks)
    wrapped: bool  # examples wrapped in start/end tokens
    n_examples: int = 0
    n_train: int = 0
    n_val: int = 0
    train_tokens: int = 0
    val_tokens: int = 0
    val_source: str = ""
    issues: list = field(default_factory=list)  # DataIssue; only non-empty when bad_rows="skip"
    ignored_files: list = field(default_factory=list)
    header: str = ""  # the CSV header row that was not used as a text
    added_tokens: list = field(default_factory=list)
    from_cache: bool = False
    cache_file: str = ""
    block_size: int = 0
    n_blocks: int = 0
    waste: float = 0.0  # fraction of block positions that train nothing (padding or repeated context)

    def __str__(self) -> str:
        lines = [f"data {self.source} ({self.format}, {self.layout} layout"
                 + (", rows wrapped in start/end tokens" if self.wrapped else "") + ")",
                 f"  {self.n_examples} examples: {self.n_train} train ({self.train_tokens:,} tokens), "
                 f"{self.n_val} validation ({self.val_tokens:,} tokens"
                 + (f", {self.val_source})" if self.val_source else ")")]
        if self.block_size:  # known once the data is laid out in blocks
            lines.append(f"  {self.n_blocks} training blocks of {self.block_size} tokens, {100 * self.waste:.2f} % of "
                         "positions not trained on (padding)")
        if self.header:
            lines.append(f"  the first row was read as the header ({self.header!r}); pass csv_header=False "
                         "(--no-header) if it is a text")
        if self.added_tokens:
            lines.append(f"  tokens added to the tokenizer: {self.added_tokens}")
        if self.issues:
            lines.append(f"  {len(self.issues)} rows left out (bad_rows='skip'):")
            lines += [f"    {i}" for i in self.issues[:MAX_ISSUES_SHOWN]]
            if len(self.issues) > MAX_ISSUES_SHOWN:
                lines.append(f"    ... and {len(self.issues) - MAX_ISSUES_SHOWN} more")
        if self.ignored_files:
            lines.append(f"  {len(self.ignored_files)} files in the folder are not {'/'.join(FOLDER_SUFFIXES)} and "
                         f"were not read: {self.ignored_files[:5]}{' ...' if len(self.ignored_files) > 5 else ''}")
        lines.append(f"  tokenised data {'read from' if self.from_cache else 'cached in'} {self.cache_file}"
                     if self.cache_file else "  tokenised data not cached")
        return "\n".join(lines)


@dataclass
class FinetuneData:
    """Token ids of the training and validation examples (each already wrapped / terminated)."""

    train: list[np.ndarray]
    val: list[np.ndarray]
    report: DataReport
    train_lines: list = field(default_factory=list)  # (file, line) of each training example

    def val_stream(self) -> np.ndarray:
        return np.concatenate(self.val) if self.val else np.zeros(0, dtype=np.int64)


def _cache_paths(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key}.npz"


def _save_cache(path: Path, train, val, train_lines, meta: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_ids": np.concatenate(train).astype(np.int32) if train else np.zeros(0, np.int32),
        "train_offsets": np.cumsum([0] + [len(a) for a in train]).astype(np.int64),
        "val_ids": np.concatenate(val).astype(np.int32) if val else np.zeros(0, np.int32),
        "val_offsets": np.cumsum([0] + [len(a) for a in val]).astype(np.int64),
        "train_lines": np.asarray([line for _, line in train_lines] or [0], dtype=np.int64),
        "meta": np.frombuffer(json.dumps({**meta, "train_files": [f for f, _ in train_lines]}).encode(), np.uint8),
    }
    with files.atomic_file(path, "wb") as fh:  # a reader never sees half a cache file
        np.savez(fh, **arrays)


def _load_cache(path: Path):
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())

        def split(ids, offsets):
            ids = ids.astype(np.int64)
            return [ids[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]

        train = split(z["train_ids"], z["train_offsets"])
        val = split(z["val_ids"], z["val_offsets"])
        lines = z["train_lines"].tolist()
    train_lines = list(zip(meta.pop("train_files"), lines[:len(train)]))
    return train, val, train_lines, meta


def _split_validation(examples: list[Example], val_fraction: float, seed: int):
    """(train, validation) examples. One text: its last ``val_fraction`` of characters (as
    ``gpt2lab.data.split_text`` does). Several: a seeded random choice of whole examples."""
    if val_fraction <= 0:
        return examples, [], ""
    if len(examples) == 1:
        ex = examples[0]
        cut = int(len(ex.text) * (1 - val_fraction))
        if cut <= 0 or cut >= len(ex.text):
            raise DataError([DataIssue(ex.file, None, "too_small",
                                       f"{len(ex.text)} characters are too few to hold out {val_fraction:.0%} "
                                       "for validation")], "Use more text, val_fraction=0, or a val= file")
        line = ex.line + ex.text.count("\n", 0, cut)
        return ([Example(ex.text[:cut], ex.file, ex.line)], [Example(ex.text[cut:], ex.file, line)],
                f"the last {val_fraction:.0%} of the text, from line {line}")
    n_val = max(1, int(round(len(examples) * val_fraction)))
    if n_val >= len(examples):
        raise DataError([DataIssue(examples[0].file, None, "too_small",
                                   f"{len(examples)} examples are too few to hold out {val_fraction:.0%} for "
                                   "validation")], "Use more data, val_fraction=0, or a val= file")
    chosen = set(np.random.default_rng(seed).choice(len(examples), n_val, replace=False).tolist())
    train = [e for i, e in enumerate(examples) if i not in chosen]
    val = [e for i, e in enumerate(examples) if i in chosen]
    return train, val, f"{n_val} examples chosen at random (seed {seed})"


def prepare_data(data, tokenizer, *, format: str | None = None, line_by_line: bool = False,
                 wrap: bool | None = None, text_field: str | None = None, csv_header: bool = True,
                 encoding: str = "utf-8", bad_rows: str = "error", val_fraction: float = 0.1, val=None,
                 seed: int = 0, start_token: str = START_TOKEN, cache_dir=None, progress: bool = True
                 ) -> FinetuneData:
    """Read, check, split and tokenise ``data`` (see the module docstring for formats).

    The tokenizer must already hold the start token when ``wrap`` is on (``add_start_token``).
    Tokenised data is cached in ``cache_dir`` (default ``<gpt2lab cache>/finetune``; ``False``
    disables it) under a key made of the data's SHA-256, the tokenizer's fingerprint and these
    settings, so a rerun with the same inputs does not tokenise again.
    """
    from gpt2lab.data import cache_dir as default_cache

    if bad_rows not in BAD_ROWS:
        raise ValueError(f"bad_rows={bad_rows!r} is not allowed; use one of {', '.join(BAD_ROWS)}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction!r} must be in [0, 1)")
    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no file or folder {str(path)!r}")
    fmt = format or detect_format(path)
    wrap = (fmt == "csv") if wrap is None else bool(wrap)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-text (eos) token to separate documents with")
    start_id = None
    if wrap:
        if start_token not in tokenizer.get_vocab():
            raise ValueError(f"the tokenizer has no {start_token!r} token; add it first with add_start_token()")
        start_id = tokenizer.convert_tokens_to_ids(start_token)
    val_path = Path(val).expanduser() if val is not None else None
    if val_path is not None and not val_path.exists():
        raise FileNotFoundError(f"no validation file or folder {str(val_path)!r}")

    settings = dict(version=CACHE_VERSION, format=fmt, line_by_line=line_by_line, wrap=wrap, text_field=text_field,
                    csv_header=csv_header, encoding=encoding, bad_rows=bad_rows,
                    val_fraction=0.0 if val_path else val_fraction, seed=seed, start_token=start_token if wrap else "")
    cache = None
    if cache_dir is not False:
        key_src = json.dumps({"data": _data_digest(path), "val": _data_digest(val_path) if val_path else None,
                              "tokenizer": tokenizer_fingerprint(tokenizer), **settings}, sort_keys=True)
        cache = _cache_paths(Path(cache_dir or default_cache() / "finetune"), hashlib.sha256(key_src.encode())
                             .hexdigest()[:32])
        if cache.is_file():
            try:
                train, val_ids, train_lines, meta = _load_cache(cache)
                report = DataReport(**{**meta["report"], "issues": [DataIssue(**i) for i in meta["report"]["issues"]]})
            except (OSError, ValueError, KeyError, TypeError):
                cache.unlink(missing_ok=True)  # unreadable or from another version: tokenise again
            else:
                report.from_cache, report.cache_file, report.source = True, str(cache), str(path)
                return FinetuneData(train, val_ids, report, train_lines)

    read = read_examples(path, format=fmt, line_by_line=line_by_line, text_field=text_field,
                         csv_header=csv_header, encoding=encoding)
    examples, issues = read.examples, list(read.issues)
    val_examples, val_source = [], ""
    if val_path is not None:
        val_read = read_examples(val_path, line_by_line=line_by_line, text_field=text_field, csv_header=csv_header,
                                 encoding=encoding)
        val_examples = val_read.examples
        issues += val_read.issues
        val_source = f"from {val_path.name}"
    issues.sort(key=lambda i: (i.file != path.name, i.file, i.line or 0))  # in file order
    if issues and bad_rows == "error":
        raise DataError(issues, SKIP_HINT)
    if not examples:
        raise DataError(issues + [DataIssue(path.name, None, "too_small", "no usable text left")],
                        "The data holds no text to train on")
    if val_path is None:
        train_examples, val_examples, val_source = _split_validation(examples, val_fraction, seed)
    else:
        train_examples = examples

    def ids_of(exs):
        encoded = _encode(tokenizer, [e.text for e in exs], progress)
        head = [start_id] if wrap else []
        return [np.asarray(head + ids + [eos], dtype=np.int64) for ids in encoded]

    train = ids_of(train_examples)
    val_ids = ids_of(val_examples)
    report = DataReport(source=str(path), format=fmt, layout="examples" if line_by_line else "stream", wrapped=wrap,
                        n_examples=len(examples) + (len(val_examples) if val_path else 0),
                        n_train=len(train), n_val=len(val_ids), train_tokens=int(sum(len(a) for a in train)),
                        val_tokens=int(sum(len(a) for a in val_ids)), val_source=val_source, issues=issues,
                        ignored_files=read.ignored_files, header=read.header)
    train_lines = [(e.file, e.line) for e in train_examples]
    if cache is not None:
        meta_report = asdict(report)
        meta_report["issues"] = [asdict(i) for i in issues]
        _save_cache(cache, train, val_ids, train_lines, {"report": meta_report})
        report.cache_file = str(cache)
    return FinetuneData(train, val_ids, report, train_lines)


# ============================================================================ blocks

class _Blocks(torch.utils.data.Dataset):
    """Blocks of inputs with their labels; ``unused`` label positions (-100) train nothing."""

    block_size: int
    inputs: list
    labels: list
    unused: int = 0

    @property
    def waste(self) -> float:
        return self.unused / (len(self) * self.block_size)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, i):
        return {"input_ids": self.inputs[i], "labels": self.labels[i]}


class StreamBlocks(_Blocks):
    """The concatenation of all examples cut into blocks of ``block_size`` (+1 for the shifted labels).

    Nothing is dropped and nothing is padded: when the stream does not divide evenly, one more
    block is taken from the very end of the stream, with the labels it shares with the previous
    block masked, so every token is learned exactly once per pass."""

    def __init__(self, examples: list[np.ndarray], block_size: int, name: str = "the data"):
        stream = torch.as_tensor(np.concatenate(examples) if examples else np.zeros(0), dtype=torch.long)
        if len(stream) < block_size + 1:
            raise DataError([DataIssue(name, None, "too_small",
                                       f"the training text has {len(stream)} tokens, fewer than one block of "
                                       f"{block_size} + 1")],
                            "Use a smaller block_size, line_by_line=True (which pads short examples), or more data")
        self.block_size = block_size
        n_full = (len(stream) - 1) // block_size
        self.inputs = [stream[i * block_size: (i + 1) * block_size] for i in range(n_full)]
        self.labels = [stream[i * block_size + 1: (i + 1) * block_size + 1] for i in range(n_full)]
        remainder = len(stream) - 1 - n_full * block_size
        self.unused = 0
        if remainder:
            labels = stream[len(stream) - block_size:].clone()
            labels[: block_size - remainder] = -100
            self.inputs.append(stream[len(stream) - block_size - 1: len(stream) - 1])
            self.labels.append(labels)
            self.unused = block_size - remainder


class PackedExamples(_Blocks):
    """Whole examples packed into blocks (best fit, longest first); the rest of each block is
    padding with label -100. An example never spans two blocks."""

    def __init__(self, examples: list[np.ndarray], block_size: int, pad_id: int, lines=None):
        import bisect

        capacity = block_size + 1  # a block of inputs plus the one label beyond it
        too_long = [i for i, ex in enumerate(examples) if len(ex) > capacity]
        if too_long:
            where = lines or [("the data", None)] * len(examples)
            raise DataError([DataIssue(where[i][0], where[i][1], "too_long",
                                       f"example of {len(examples[i])} tokens does not fit a block of {block_size} "
                                       "+ 1") for i in too_long],
                            "Use a larger block_size, or the default stream layout (line_by_line=False)")
        if not examples:
            raise DataError([DataIssue("the data", None, "too_small", "no training examples")])
        order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
        bins: list[list[int]] = []
        rooms: list[tuple[int, int]] = []  # (room left, bin index), sorted
        for i in order:
            size = len(examples[i])
            at = bisect.bisect_left(rooms, (size, -1))
            if at < len(rooms):  # the fullest bin that still has room
                room, b = rooms.pop(at)
            else:
                room, b = capacity, len(bins)
                bins.append([])
            bins[b].append(i)
            bisect.insort(rooms, (room - size, b))
        self.block_size = block_size
        self.inputs, self.labels = [], []
        self.unused = 0
        for b in bins:
            content = torch.as_tensor(np.concatenate([examples[i] for i in sorted(b)]), dtype=torch.long)
            inputs = torch.full((block_size,), pad_id, dtype=torch.long)
            labels = torch.full((block_size,), -100, dtype=torch.long)
            inputs[: len(content) - 1] = content[:-1]
            labels[: len(content) - 1] = content[1:]
            self.unused += block_size - (len(content) - 1)
            self.inputs.append(inputs)
            self.labels.append(labels)

    @property
    def padding(self) -> int:
        """Padding positions in all blocks."""
        return self.unused


class Chunks(torch.utils.data.Dataset):
    """Non-overlapping windows of a token stream for the validation loss; the last one may be short."""

    def __init__(self, ids: np.ndarray, block_size: int):
        ids = torch.as_tensor(ids, dtype=torch.long)
        self.items = [ids[s: s + block_size + 1] for s in range(0, max(len(ids) - 1, 0), block_size)]
        self.items = [w for w in self.items if len(w) >= 2]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return {"input_ids": self.items[i][:-1], "labels": self.items[i][1:]}


def training_blocks(prepared: FinetuneData, block_size: int, pad_id: int):
    """The training Dataset for ``prepared``: stream blocks, or packed whole examples in line-by-line mode."""
    if prepared.report.layout == "examples":
        return PackedExamples(prepared.train, block_size, pad_id, prepared.train_lines)
    return StreamBlocks(prepared.train, block_size, Path(prepared.report.source).name)


def training_texts(data, *, format: str | None = None, line_by_line: bool = False, text_field: str | None = None,
                   csv_header: bool = True, encoding: str = "utf-8", val_fraction: float = 0.1, val=None,
                   seed: int = 0) -> list[str]:
    """The texts a fine-tuning run on ``data`` trains on (the validation part left out), read with
    the same settings; bad rows are left out. Used by :mod:`gpt2lab.training.memorisation` to look for copies."""
    examples = read_examples(data, format=format, line_by_line=line_by_line, text_field=text_field,
                             csv_header=csv_header, encoding=encoding).examples
    if val is None and examples:
        examples, _, _ = _split_validation(examples, val_fraction, seed)
    return [e.text for e in examples]


# ============================================================================ model preparation

def add_start_token(model, tokenizer, token: str = START_TOKEN) -> list[str]:
    """Add ``token`` to the tokenizer as a special token and grow the model's embedding to match.

    New embedding rows are set to the mean of the existing ones (deterministic, so a LoRA run can
    rebuild the same base model later). Returns the tokens actually added."""
    added = []
    if token not in tokenizer.get_vocab():
        tokenizer.add_tokens([token], special_tokens=True)
        added.append(token)
    match_vocab(model, tokenizer)
    return added


def match_vocab(model, tokenizer) -> None:
    """Grow the model's token embedding (and tied output layer) to the tokenizer's size."""
    embedding = model.get_input_embeddings()
    old = embedding.num_embeddings
    if len(tokenizer) <= old:
        return
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[old:] = weight[:old].mean(dim=0, keepdim=True)
        output = model.get_output_embeddings()
        if output is not None and output.weight.data_ptr() != weight.data_ptr():
            output.weight[old:] = output.weight[:old].mean(dim=0, keepdim=True)
            if getattr(output, "bias", None) is not None:
                output.bias[old:] = output.bias[:old].mean()


def _lora_targets(model) -> tuple[list[str] | str | None, bool]:
    """Default LoRA target modules and whether they store weights transposed (GPT-2's Conv1D)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS
    from transformers.pytorch_utils import Conv1D

    names = {name.split(".")[-1] for name, m in model.named_modules() if isinstance(m, Conv1D)}
    if {"c_attn", "c_proj", "c_fc"} <= names:
        return ["c_attn", "c_proj", "c_fc"], True
    if getattr(model.config, "model_type", None) in PEFT_DEFAULTS:
        return None, False  # peft's own defaults for the family (e.g. Llama: q_proj, v_proj)
    return "all-linear", False  # a family peft has no defaults for (e.g. Phi-3): every linear layer but the output


def wrap_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05, target_modules=None,
              trainable_token_ids: list[int] | None = None):
    """Wrap ``model`` with LoRA adapters (peft). The base weights are frozen; only the low-rank
    adapters (and the embedding rows of ``trainable_token_ids``, e.g. an added start token) train."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError("LoRA needs the peft package: pip install 'gpt2lab[lora]'") from err
    targets, fan_in_fan_out = _lora_targets(model)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules or targets,
                        fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM",
                        trainable_token_indices=list(trainable_token_ids) if trainable_token_ids else None)
    return get_peft_model(model, config)


# ============================================================================ runs

@dataclass
class FinetuneResult:
    """What a fine-tuning run produced."""

    run_name: str
    run_dir: Path
    checkpoint: Path | None  # the latest checkpoint (the final model)
    steps: int
    resumed_from_step: int
    history: list
    data: DataReport
    perplexity_before: float | None
    perplexity_after: float | None
    tokens_seen: int
    train_seconds: float
    lm: LM | None = None  # the fine-tuned model, in memory (LoRA merged)
    best_checkpoint: Path | None = None  # with keep_best: run_dir/best, its step and validation loss
    best_step: int | None = None
    best_val_loss: float | None = None

    @property
    def tokens_per_second(self) -> float:
        """Training throughput of this session's steps (from the history records)."""
        records = [h for h in self.history if "tokens" in h and "seconds" in h]
        mine = [h for h in records if h["step"] > self.resumed_from_step]
        if len(mine) >= 2 and mine[-1]["seconds"] > mine[0]["seconds"]:
            return (mine[-1]["tokens"] - mine[0]["tokens"]) / (mine[-1]["seconds"] - mine[0]["seconds"])
        return float("nan")

    def plot(self, ax=None):
        """Training and validation loss against step."""
        return training.TrainResult(steps=self.steps, history=self.history).plot(ax)

    def load(self, device="auto") -> LM:
        """Load the run's latest checkpoint (see :func:`load_run`)."""
        return load_run(self.run_dir, device=device)

    def __repr__(self) -> str:
        ppl = ""
        if self.perplexity_before is not None and self.perplexity_after is not None:
            ppl = f", perplexity {self.perplexity_before:.2f} -> {self.perplexity_after:.2f}"
        return f"FinetuneResult(run={str(self.run_dir)!r}, steps={self.steps}{ppl})"


def run_dir_of(run_name: str, checkpoint_dir=DEFAULT_CHECKPOINT_DIR) -> Path:
    if not run_name or not isinstance(run_name, str) or "/" in run_name or "\\" in run_name or run_name in (".", ".."):
        raise ValueError(f"run_name={run_name!r} must be a plain folder name such as 'run1'")
    return Path(checkpoint_dir).expanduser() / run_name


def read_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _base_reference(lm: LM) -> str | None:
    """How to load ``lm`` again: its folder, or its name when it is embedded or on the Hub."""
    if lm.info.get("path"):
        return str(Path(lm.info["path"]).resolve())
    if lm.source in ("hub", "embedded"):
        return lm.name
    return None


def _perplexity(model, ids: np.ndarray, block: int, stride: int, batch_size: int, progress: bool) -> float | None:
    from gpt2lab.basics.evaluation import score_ids

    if len(ids) < 2:
        return None
    was_training = model.training
    model.eval()
    nll, count = score_ids(model, torch.as_tensor(ids), block, stride, batch_size=batch_size, progress=progress)
    if was_training:
        model.train()
    return math.exp(nll / max(count, 1))


def _wait_for_everyone() -> None:
    """A barrier across the processes of ``accelerate launch`` / ``torchrun`` (nothing in a plain process)."""
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def finetune(data, model=None, *, steps: int = 1000, run_name: str = "run1",
             checkpoint_dir: str | os.PathLike = DEFAULT_CHECKPOINT_DIR, resume: bool = True,
             block_size: int | None = None, batch_size: int = 4, grad_accum: int = 1,
             learning_rate: float | None = None, warmup_steps: int | None = None, min_lr_ratio: float = 0.1,
             weight_decay: float = 0.0, grad_clip: float = 1.0,
             checkpoint_every: int = 500, keep_last: int = 1, keep_best: bool = False,
             sample_every: int = 100, sample_length: int = 100,
             sample_prompt: str | None = None, eval_every: int | None = None, eval_batches: int = 10,
             log_every: int = 10,
             val_fraction: float = 0.1, val=None, eval_stride: int | None = None, eval_max_tokens: int | None = None,
             format: str | None = None, line_by_line: bool = False, wrap: bool | None = None,
             text_field: str | None = None, csv_header: bool = True, encoding: str = "utf-8",
             bad_rows: str = "error", start_token: str = START_TOKEN,
             only_train_transformer_layers: bool = False, lora: bool | dict = False,
             mixed_precision: str = "auto", seed: int = 0, device="auto", cache_dir=None,
             progress: bool = True, verbose: bool = True) -> FinetuneResult:
    """Fine-tune ``model`` on ``data`` as the named run ``checkpoint_dir/run_name``.

    data: a .txt, .csv (one column of short texts), .jsonl (``text_field``) file or a folder of .txt files.
    model: a model name or folder (see :func:`gpt2lab.load`), an :class:`LM` (copied, not changed), or
        None: the run's own base model when resuming, else the course default model.
    steps: the total number of optimizer steps of the run (a resumed run trains the steps still missing).
    resume: True continues from the run's latest checkpoint if there is one; False starts afresh and
        deletes the run's old checkpoints.
    block_size: tokens per training sequence (default: the model's context, at most 1024).
    batch_size, grad_accum: sequences per micro-batch and micro-batches per optimizer step.
    learning_rate: default 1e-4 (3e-4 with LoRA); warmup (default: a tenth of the steps, at most 100)
        then cosine decay to ``learning_rate * min_lr_ratio``.
    checkpoint_every, keep_last: save every N steps (and at the end), keeping the last K checkpoints.
    keep_best: also keep the weights of the lowest validation loss (judged every ``eval_every`` steps)
        in ``run_dir/best``; ``load_run(run, best=True)`` loads them. Needs validation data.
    sample_every, sample_length, sample_prompt: print (and append to ``samples.txt``) a sample every N
        steps (0: never); the prompt defaults to the start token for wrapped data, else end-of-text.
    eval_every, eval_batches: validation loss every N steps (default: 5 times per run) on that many batches.
    val_fraction, val: validation split, or a separate validation file. eval_stride/eval_max_tokens: the
        sliding-window perplexity before and after (stride default ``block_size // 2``; cap on tokens scored).
    format, line_by_line, wrap, text_field, csv_header, encoding, bad_rows, start_token: how the data is
        read (see the module docstring); ``bad_rows="skip"`` leaves bad rows out and reports them.
    only_train_transformer_layers: freeze the token and position embeddings (and the tied output layer).
    lora: True (rank 8) or a dict with r, alpha, dropout, target_modules: train LoRA adapters (peft)
        instead of all weights; checkpoints then hold only the adapter.
    mixed_precision: "auto" (bf16 or fp16 autocast on a GPU, none on a CPU), "no", "bf16", "fp16".
    device: "auto" or "cpu". Several GPUs: start the same command with ``accelerate launch``.
    cache_dir: where tokenised data is cached (False: no cache).
    Returns a :class:`FinetuneResult`.
    """
    from gpt2lab import loading
    from gpt2lab.device import pick_device

    # ---- everything that can be checked before loading anything
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a whole number >= 1")
    lora_settings = _lora_settings(lora)
    run_dir = run_dir_of(run_name, checkpoint_dir)
    data_path = Path(data).expanduser()
    if not data_path.exists():
        raise FileNotFoundError(f"no file or folder {str(data_path)!r}")
    lr = learning_rate or (3e-4 if lora_settings else 1e-4)
    cfg = training.TrainConfig(
        max_steps=steps, batch_size=batch_size, grad_accum=grad_accum, learning_rate=lr,
        min_lr_ratio=min_lr_ratio, warmup_steps=min(100, steps // 10) if warmup_steps is None else warmup_steps,
        weight_decay=weight_decay, grad_clip=grad_clip, eval_every=eval_every or max(1, steps // 5),
        eval_batches=eval_batches, checkpoint_every=checkpoint_every, keep_last=keep_last, keep_best=keep_best,
        sample_every=sample_every, sample_tokens=sample_length, seed=seed, mixed_precision=mixed_precision,
        freeze_embeddings=only_train_transformer_layers and not lora_settings, log_every=log_every,
        progress=progress)
    cfg.validate()
    main = is_main_process()
    torch_device = pick_device(device)
    cfg.device = "cpu" if torch_device.type == "cpu" else "auto"
    say = (lambda *a: print(*a, flush=True)) if verbose and main else (lambda *a: None)

    # ---- the run folder: resume, or start afresh (old checkpoints are deleted once the data is known good)
    previous = read_run(run_dir)
    existing = training.list_checkpoints(run_dir)
    resuming = bool(existing) and resume
    if not resume:
        previous = {}

    # ---- the base model
    if model is None and resuming:
        if not previous.get("base_model"):
            raise ValueError(f"run {str(run_dir)!r} was started from a model built in memory; pass that model as "
                             "model= to resume it")
        model = previous["base_model"]
    if isinstance(model, LM):
        base_lm = model
        net = copy.deepcopy(model.model).float()
        tokenizer = copy.deepcopy(model.tokenizer)
    else:
        base_lm = loading.load(model, device=torch_device, dtype="float32", verbose=verbose and main)
        net, tokenizer = base_lm.model, base_lm.tokenizer
    base_ref = _base_reference(base_lm)
    if resuming and previous:
        _check_same_run(previous, base_ref, lora_settings, run_dir)
    net.to(torch_device)
    context = LM(net, tokenizer, torch_device, base_lm.name).context_length
    block = block_size or min(context, 1024)
    if not 2 <= block <= context:
        raise ValueError(f"block_size={block_size!r} must be between 2 and the model's context length {context}")

    # ---- data
    wrapped = (format or detect_format(data_path)) == "csv" if wrap is None else bool(wrap)
    added = add_start_token(net, tokenizer, start_token) if wrapped else []
    prepared = prepare_data(data, tokenizer, format=format, line_by_line=line_by_line, wrap=wrapped,
                            text_field=text_field, csv_header=csv_header, encoding=encoding, bad_rows=bad_rows,
                            val_fraction=val_fraction, val=val, seed=seed, start_token=start_token,
                            cache_dir=cache_dir, progress=progress and main)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_set = training_blocks(prepared, block, pad_id)
    report = prepared.report
    report.added_tokens = added or previous.get("added_tokens", [])
    report.block_size, report.n_blocks, report.waste = block, len(train_set), round(train_set.waste, 6)
    val_ids = prepared.val_stream()
    if eval_max_tokens is not None:
        val_ids = val_ids[:eval_max_tokens]
    val_set = Chunks(prepared.val_stream(), block) if len(val_ids) >= 2 else None
    if keep_best and val_set is None:
        raise ValueError("keep_best=True needs validation data, and this run has none: keep val_fraction > 0 "
                         "(with enough data for two validation tokens) or pass val=FILE")
    say(str(report))
    digest = _data_digest(data_path)
    if resuming and previous.get("data", {}).get("sha256") not in (None, digest):
        say(f"gpt2lab: note: {data_path.name} is not the data run {run_name!r} started with; training continues "
            "on the new data")

    stride = eval_stride or max(1, block // 2)
    if not 1 <= stride <= block:
        raise ValueError(f"eval_stride={eval_stride!r} must be between 1 and block_size={block}")
    eval_batch = max(1, batch_size)

    # ---- perplexity before (of the base model, with any added token)
    ppl_before = previous.get("perplexity_before") if resuming else None
    if ppl_before is None and val_set is not None and main:
        say(f"gpt2lab: validation perplexity of the base model ({len(val_ids):,} tokens, window {block}, "
            f"stride {stride}) ...")
        ppl_before = _perplexity(net, val_ids, block, stride, eval_batch, progress)
        say(f"gpt2lab: perplexity before: {ppl_before:.3f}")

    # ---- LoRA / freezing
    if lora_settings:
        start_ids = [tokenizer.convert_tokens_to_ids(start_token)] if wrapped else None
        net = wrap_lora(net, lora_settings["r"], lora_settings["alpha"], lora_settings["dropout"],
                        lora_settings["target_modules"], start_ids)
    if existing and not resume and main:
        say(f"gpt2lab: starting run {run_name!r} afresh: deleting its {len(existing)} old checkpoint(s)")
        for ckpt in existing:
            files.discard_folder(ckpt)
        for name in (SAMPLES_FILE, LOSS_PLOT, RUN_FILE):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / BASE_MODEL_DIR, ignore_errors=True)
        shutil.rmtree(run_dir / training.BEST_DIR, ignore_errors=True)  # an old run's best is not this run's
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    _wait_for_everyone()  # with several processes, none may look at the run folder while it is being cleared
    if base_ref is None and lora_settings and main and not (run_dir / BASE_MODEL_DIR).is_dir():
        # an in-memory base cannot be loaded by name later: keep a copy for load_run
        _save_base_copy(base_lm, run_dir / BASE_MODEL_DIR)
    if lora_settings and base_ref is None:
        base_ref = str((run_dir / BASE_MODEL_DIR).resolve())

    run_info = {
        "run_name": run_name, "base_model": base_ref, "base_model_name": base_lm.name,
        "lora": lora_settings or None, "data": {"path": str(data_path.resolve()), "sha256": digest},
        "settings": dict(format=report.format, line_by_line=line_by_line, wrap=wrapped, text_field=text_field,
                         csv_header=csv_header, encoding=encoding, bad_rows=bad_rows, val_fraction=val_fraction,
                         val=str(val) if val is not None else None, seed=seed, block_size=block,
                         batch_size=batch_size, grad_accum=grad_accum, learning_rate=lr, steps=steps,
                         only_train_transformer_layers=only_train_transformer_layers),
        "start_token": start_token if wrapped else None, "end_token": tokenizer.eos_token,
        "added_tokens": report.added_tokens,
        "eval": {"block": block, "stride": stride, "tokens": int(len(val_ids))},
        "perplexity_before": ppl_before, "perplexity_after": previous.get("perplexity_after"),
        "created": previous.get("created", time.strftime("%Y-%m-%d %H:%M:%S")),
    }
    if main:
        files.write_json(run_dir / RUN_FILE, run_info)

    cfg.sample_prompt = sample_prompt or (start_token if wrapped else tokenizer.eos_token)

    def on_sample(step, text):
        with open(run_dir / SAMPLES_FILE, "a", encoding="utf-8") as fh:
            fh.write(f"======== step {step} ========\n{text}\n")

    resumed_from = training.read_checkpoint_state(existing[-1])["step"] if resuming else 0
    say(f"gpt2lab: run {run_name!r} in {run_dir}: " + (f"resuming at step {resumed_from} of {steps}" if resuming
                                                       else f"training {steps} steps from {base_lm.name!r}"))
    outcome = training.train(net, train_set, val_set, cfg, tokenizer=tokenizer, output_dir=run_dir,
                             resume=resuming, on_sample=on_sample)
    outcome_model = net.merge_and_unload() if lora_settings else net
    outcome_model.eval()

    # ---- perplexity after, loss plot, run file
    ppl_after = None
    if val_set is not None and main:
        ppl_after = _perplexity(outcome_model, val_ids, block, stride, eval_batch, progress)
        say(f"gpt2lab: perplexity after: {ppl_after:.3f} (before: {ppl_before:.3f})")
    if main:
        run_info["perplexity_after"] = ppl_after
        run_info["steps_done"] = outcome.steps
        files.write_json(run_dir / RUN_FILE, run_info)
        if outcome.history:
            _save_loss_plot(outcome, run_dir / LOSS_PLOT)
    lm = loading.from_model(outcome_model, tokenizer, name=f"{run_name}@{outcome.steps}", device=torch_device)
    lm.source = "local"
    lm.info.update(run_dir=str(run_dir), step=outcome.steps, start_token=run_info["start_token"],
                   end_token=run_info["end_token"])
    latest = training.latest_checkpoint(run_dir)
    return FinetuneResult(run_name=run_name, run_dir=run_dir, checkpoint=latest, steps=outcome.steps,
                          resumed_from_step=resumed_from, history=outcome.history, data=report,
                          perplexity_before=ppl_before, perplexity_after=ppl_after, tokens_seen=outcome.tokens_seen,
                          train_seconds=outcome.seconds, lm=lm,
                          best_checkpoint=Path(outcome.best_checkpoint) if outcome.best_checkpoint else None,
                          best_step=outcome.best_step, best_val_loss=outcome.best_val_loss)


def _lora_settings(lora) -> dict:
    if lora is False or lora is None:
        return {}
    defaults = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None}
    if lora is True:
        return defaults
    if isinstance(lora, dict):
        unknown = set(lora) - set(defaults)
        if unknown:
            raise ValueError(f"lora has unknown keys {sorted(unknown)}; allowed: {sorted(defaults)}")
        settings = {**defaults, **lora}
        if not (isinstance(settings["r"], int) and settings["r"] >= 1):
            raise ValueError(f"lora r={settings['r']!r} must be a whole number >= 1")
        return settings
    raise TypeError(f"lora must be True, False or a dict of LoRA settings, got {type(lora).__name__}")


def _check_same_run(previous: dict, base_ref, lora_settings: dict, run_dir: Path):
    before_lora = bool(previous.get("lora"))
    if before_lora != bool(lora_settings):
        raise ValueError(f"run {str(run_dir)!r} was trained {'with' if before_lora else 'without'} LoRA; resume it "
                         f"the same way, use another run_name, or pass resume=False to start it afresh")
    if base_ref and previous.get("base_model") and previous["base_model"] != base_ref \
            and Path(previous["base_model"]).name != BASE_MODEL_DIR:
        raise ValueError(f"run {str(run_dir)!r} was started from {previous['base_model']!r}, not {base_ref!r}; use "
                         "another run_name, or resume=False to start it afresh")


def _save_base_copy(lm: LM, folder: Path):
    with files.atomic_folder(folder) as tmp:
        lm.model.save_pretrained(tmp, safe_serialization=True)
        lm.tokenizer.save_pretrained(tmp)


def _save_loss_plot(outcome, path: Path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    outcome.plot(ax)
    ax.set_title(f"{path.parent.name}: loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def list_runs(checkpoint_dir=DEFAULT_CHECKPOINT_DIR) -> list[str]:
    """Names of the runs (folders with checkpoints) in ``checkpoint_dir``."""
    folder = Path(checkpoint_dir).expanduser()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and training.list_checkpoints(p))


def find_checkpoint(run, checkpoint_dir=DEFAULT_CHECKPOINT_DIR, step: int | None = None) -> tuple[Path, Path]:
    """(run folder, checkpoint folder) for a run name, a run folder or a checkpoint folder."""
    path = Path(run).expanduser()
    if path.is_dir() and (path / training.STATE_FILE).is_file():
        if step is not None and training.read_checkpoint_state(path)["step"] != step:
            raise ValueError(f"{str(path)!r} is the checkpoint of step "
                             f"{training.read_checkpoint_state(path)['step']}, not {step}")
        return path.parent, path
    if not path.is_dir():
        candidate = Path(checkpoint_dir).expanduser() / str(run)
        if "/" in str(run) or not candidate.is_dir():
            raise FileNotFoundError(f"no run {str(run)!r}: neither a folder nor a run in {str(checkpoint_dir)!r} "
                                    f"(runs there: {list_runs(checkpoint_dir)})")
        path = candidate
    checkpoints = training.list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(f"the run folder {str(path)!r} holds no complete checkpoint")
    if step is None:
        return path, checkpoints[-1]
    for ckpt in checkpoints:
        if training.read_checkpoint_state(ckpt)["step"] == step:
            return path, ckpt
    steps = [training.read_checkpoint_state(c)["step"] for c in checkpoints]
    raise LookupError(f"run {str(path)!r} has no checkpoint of step {step}; it has steps {steps}")


def load_run(run, checkpoint_dir=DEFAULT_CHECKPOINT_DIR, *, step: int | None = None, best: bool = False,
             device="auto", dtype="auto", verbose: bool = True) -> LM:
    """Load a fine-tuned model from a run: a run name (looked up in ``checkpoint_dir``), a run folder
    or one checkpoint folder. ``step`` picks a checkpoint (default: the latest); ``best=True`` loads
    the weights of the lowest validation loss instead (a run trained with ``keep_best=True``). LoRA
    runs are rebuilt from their base model and merged. The returned LM's ``info`` holds the run's
    ``start_token``/``end_token``, to use as ``prefix``/``truncate`` when generating."""
    from gpt2lab import loading

    if best and step is not None:
        raise ValueError("give step= or best=True, not both")
    run_dir, ckpt = find_checkpoint(run, checkpoint_dir, step)
    info = read_run(run_dir)
    state = training.read_checkpoint_state(ckpt)
    if best:
        kept = training.read_best(run_dir)
        if kept is None:
            raise FileNotFoundError(f"run {str(run_dir)!r} kept no best weights; train it with keep_best=True "
                                    "(--keep-best) to keep them")
        ckpt, state = Path(kept["path"]), kept
    name = f"{run_dir.name}@{state['step']}"
    if (ckpt / "adapter_model.safetensors").is_file():
        lm = _load_lora_run(ckpt, info, device, dtype)
    else:
        lm = loading.load(ckpt, device=device, dtype=dtype, verbose=False)
    lm.name, lm.source = name, "local"
    lm.info.update(path=str(ckpt), run_dir=str(run_dir), step=state["step"], best=best,
                   start_token=info.get("start_token"), end_token=info.get("end_token"))
    if verbose:
        print(f"gpt2lab: loaded run {name!r} ({lm.n_params / 1e6:.1f}M params) from {ckpt}", file=sys.stderr,
              flush=True)
    return lm


def _load_lora_run(ckpt: Path, info: dict, device, dtype) -> LM:
    from peft import PeftModel
    from transformers import AutoTokenizer

    from gpt2lab import loading

    base = info.get("base_model")
    if not base:
        raise ValueError(f"{ckpt} is a LoRA checkpoint but its run.json does not say which base model it adapts")
    base_lm = loading.load(base, device="cpu", dtype="float32", verbose=False)
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    match_vocab(base_lm.model, tokenizer)
    merged = PeftModel.from_pretrained(base_lm.model, ckpt).merge_and_unload()
    from gpt2lab.device import pick_device, pick_dtype

    torch_device = pick_device(device)
    merged.to(dtype=pick_dtype(dtype, torch_device))
    return loading.from_model(merged, tokenizer, name=ckpt.parent.name, device=torch_device)


# ============================================================================ command line


