"""Tokenised fine-tuning data: read, check, split and tokenise once, then cache the result.

Every example is tokenised and ended with ``<|endoftext|>``; when ``wrap`` is on (the default for
CSV), it also starts with ``<|startoftext|>`` (:data:`START_TOKEN`), gpt-2-simple's convention for
short texts. The tokenised data is cached under a key made of the data's SHA-256, the tokenizer's
fingerprint and the reading settings, so a rerun with the same inputs does not tokenise again.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gpt2lab import files
from gpt2lab.fingerprint import tokenizer_fingerprint
from gpt2lab.training.reading import (
    BAD_ROWS,
    FOLDER_SUFFIXES,
    MAX_ISSUES_SHOWN,
    SKIP_HINT,
    BadRows,
    DataError,
    DataIssue,
    Format,
    data_digest,
    detect_format,
    read_examples,
    split_validation,
)

__all__ = ["START_TOKEN", "CACHE_VERSION", "DataReport", "FinetuneData", "prepare_data"]

START_TOKEN = "<|startoftext|>"
CACHE_VERSION = 1


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


def _cache_path(cache_dir: Path, key: str) -> Path:
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



def prepare_data(data, tokenizer, *, format: Format | None = None, line_by_line: bool = False,
                 wrap: bool | None = None, text_field: str | None = None, csv_header: bool = True,
                 encoding: str = "utf-8", bad_rows: BadRows = "error", val_fraction: float = 0.1, val=None,
                 seed: int = 0, start_token: str = START_TOKEN, cache_dir=None, progress: bool = True,
                 write_cache: bool = True) -> FinetuneData:
    """Read, check, split and tokenise ``data`` (formats: see :mod:`gpt2lab.training.reading`).

    The tokenizer must already hold the start token when ``wrap`` is on (``add_start_token``).
    Tokenised data is cached in ``cache_dir`` (default ``<gpt2lab cache>/finetune``; ``False``
    disables it); ``write_cache=False`` reads a cached result but never writes one (what the other
    processes of a multi-process run do, so that only one process writes).

    Returns a :class:`FinetuneData` (token ids as int64 arrays, one per example). Raises
    :class:`~gpt2lab.training.reading.DataError` listing every problem in the data (file and line),
    FileNotFoundError for a missing file, ValueError for settings that are not allowed.
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
    head, eos = _boundary_ids(tokenizer, wrap, start_token)
    val_path = Path(val).expanduser() if val is not None else None
    if val_path is not None and not val_path.exists():
        raise FileNotFoundError(f"no validation file or folder {str(val_path)!r}")

    settings = dict(version=CACHE_VERSION, format=fmt, line_by_line=line_by_line, wrap=wrap, text_field=text_field,
                    csv_header=csv_header, encoding=encoding, bad_rows=bad_rows,
                    val_fraction=0.0 if val_path else val_fraction, seed=seed, start_token=start_token if wrap else "")
    cache = None
    if cache_dir is not False:
        key_src = json.dumps({"data": data_digest(path), "val": data_digest(val_path) if val_path else None,
                              "tokenizer": tokenizer_fingerprint(tokenizer), **settings}, sort_keys=True)
        cache = _cache_path(Path(cache_dir or default_cache() / "finetune"),
                            hashlib.sha256(key_src.encode()).hexdigest()[:32])
        cached = _from_cache(cache, path, delete_bad=write_cache)
        if cached is not None:
            return cached

    reading = dict(line_by_line=line_by_line, text_field=text_field, csv_header=csv_header, encoding=encoding)
    train_examples, val_examples, report = _read_and_split(path, fmt, val_path, reading, bad_rows, val_fraction, seed)
    report.wrapped = wrap

    def ids_of(exs):
        encoded = _encode(tokenizer, [e.text for e in exs], progress)
        return [np.asarray(head + ids + [eos], dtype=np.int64) for ids in encoded]

    train, val_ids = ids_of(train_examples), ids_of(val_examples)
    report.n_train, report.n_val = len(train), len(val_ids)
    report.train_tokens, report.val_tokens = int(sum(len(a) for a in train)), int(sum(len(a) for a in val_ids))
    train_lines = [(e.file, e.line) for e in train_examples]
    if cache is not None and write_cache:
        meta_report = asdict(report)
        meta_report["issues"] = [asdict(i) for i in report.issues]
        _save_cache(cache, train, val_ids, train_lines, {"report": meta_report})
        report.cache_file = str(cache)
    return FinetuneData(train, val_ids, report, train_lines)


def _boundary_ids(tokenizer, wrap: bool, start_token: str) -> tuple[list[int], int]:
    """(ids put before each example, the end-of-text id put after it)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-text (eos) token to separate documents with")
    if not wrap:
        return [], eos
    if start_token not in tokenizer.get_vocab():
        raise ValueError(f"the tokenizer has no {start_token!r} token; add it first with add_start_token()")
    return [tokenizer.convert_tokens_to_ids(start_token)], eos


def _from_cache(cache: Path, path: Path, delete_bad: bool) -> FinetuneData | None:
    """The cached result, or None when there is none (an unreadable cache file is deleted when allowed)."""
    if not cache.is_file():
        return None
    try:
        train, val_ids, train_lines, meta = _load_cache(cache)
        report = DataReport(**{**meta["report"], "issues": [DataIssue(**i) for i in meta["report"]["issues"]]})
    except (OSError, ValueError, KeyError, TypeError):
        if delete_bad:
            cache.unlink(missing_ok=True)  # unreadable or from another version: tokenise again
        return None
    report.from_cache, report.cache_file, report.source = True, str(cache), str(path)
    return FinetuneData(train, val_ids, report, train_lines)


def _read_and_split(path: Path, fmt: str, val_path: Path | None, reading: dict, bad_rows: str, val_fraction: float,
                    seed: int) -> tuple[list, list, DataReport]:
    """(training examples, validation examples, report), after every problem has been checked."""
    read = read_examples(path, format=fmt, **reading)
    examples, issues = read.examples, list(read.issues)
    val_examples, val_source = [], ""
    if val_path is not None:
        val_read = read_examples(val_path, **reading)
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
        train_examples, val_examples, val_source = split_validation(examples, val_fraction, seed)
    else:
        train_examples = examples
    report = DataReport(source=str(path), format=fmt, layout="examples" if reading["line_by_line"] else "stream",
                        wrapped=False, n_examples=len(examples) + (len(val_examples) if val_path else 0),
                        val_source=val_source, issues=issues, ignored_files=read.ignored_files, header=read.header)
    return train_examples, val_examples, report
