"""Reading fine-tuning data: text files, CSV, JSONL and folders, with every problem reported by file and line.

Data formats (chosen by the file name, or ``format=``):

* ``.txt``: one text. The whole text is packed into fixed-length blocks, so no token is padding.
* ``.csv``: one column of short texts (a header row by default, like gpt-2-simple). Each row is
  wrapped as ``<|startoftext|>`` row ``<|endoftext|>`` (see :mod:`gpt2lab.training.tokenised`).
* ``.jsonl``: one JSON object per line; the text is in ``text_field`` (default ``"text"``).
* a folder: every ``*.txt`` file under it is one document.

Problems in the data (empty rows, bytes that are not valid text, a record without the text
field, a file too small for one block, ...) are reported with file and line number. By default
they stop the run (:class:`DataError`); ``bad_rows="skip"`` leaves the bad rows out and lists them in
the data report. Nothing is dropped silently.

Validation: ``val_fraction`` of the data is held out (:func:`split_validation`): the last part of a
single text, or randomly chosen examples of a multi-example file.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

__all__ = ["Format", "BadRows", "FORMATS", "BAD_ROWS", "FOLDER_SUFFIXES", "MAX_ISSUES_SHOWN", "DataIssue",
           "DataError", "SKIP_HINT", "Example", "ReadResult", "detect_format", "read_examples", "data_digest",
           "split_validation", "training_texts"]

Format = Literal["txt", "csv", "jsonl", "folder"]
BadRows = Literal["error", "skip"]  # stop at a bad row, or leave it out and list it
FORMATS = get_args(Format)
BAD_ROWS = get_args(BadRows)
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
    """What reading a data file gave: the examples, the problems found (by line or file), the files of a folder
    that were not read, and the CSV header row."""

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


def read_examples(data: str | os.PathLike, *, format: Format | None = None, line_by_line: bool = False,
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


# ============================================================================ identity and validation split

def data_digest(path: Path) -> str:
    """SHA-256 of a file, or of the list of (name, content hash) of a folder's text files."""
    from gpt2lab.data import sha256_of

    if path.is_dir():
        files, _ = _folder_files(path)
        digest = hashlib.sha256()
        for f in files:
            digest.update(f"{f.relative_to(path)}\0{sha256_of(f)}\n".encode())
        return digest.hexdigest()
    return sha256_of(path)


def split_validation(examples: list[Example], val_fraction: float, seed: int
                     ) -> tuple[list[Example], list[Example], str]:
    """(train, validation, description of the split). One text: its last ``val_fraction`` of characters
    (as ``gpt2lab.data.split_text`` does). Several: a seeded random choice of whole examples.

    Raises :class:`DataError` when the data is too small to hold out that fraction."""
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


def training_texts(data, *, format: Format | None = None, line_by_line: bool = False, text_field: str | None = None,
                   csv_header: bool = True, encoding: str = "utf-8", val_fraction: float = 0.1, val=None,
                   seed: int = 0) -> list[str]:
    """The texts a fine-tuning run on ``data`` trains on (the validation part left out), read with
    the same settings; bad rows are left out. Used by :mod:`gpt2lab.training.memorisation` to look for copies."""
    examples = read_examples(data, format=format, line_by_line=line_by_line, text_field=text_field,
                             csv_header=csv_header, encoding=encoding).examples
    if val is None and examples:
        examples, _, _ = split_validation(examples, val_fraction, seed)
    return [e.text for e in examples]
