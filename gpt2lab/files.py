"""Writing files and folders atomically: a reader, or a run killed half-way, never sees half of one.

The one home for this in gpt2lab: checkpoints, run records, caches, downloads and generated texts all
go through here. Every write goes to a uniquely named temporary file (or folder) beside its target,
is flushed and ``fsync``-ed, and then renamed over the target with ``os.replace`` (atomic on POSIX and
Windows); the containing folder is synced too, so the rename survives a power cut. Temporary names
start with :data:`TMP_PREFIX` so listings can skip them.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["TMP_PREFIX", "atomic_file", "write_text", "write_bytes", "write_json", "atomic_folder",
           "discard_folder", "fsync_folder"]

TMP_PREFIX = ".tmp-"


def fsync_folder(path: str | os.PathLike) -> None:
    """Sync a folder's entries to disk (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; when the block ends without an error, the file
    is synced and renamed to ``path``. An error inside the block leaves ``path`` as it was.

    mode: "w" (text, ``encoding``) or "wb" (bytes). Raises ValueError for any other mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode, **({"encoding": encoding} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_file(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_file(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, **dump_options) -> Path:
    """Write ``obj`` as JSON (``json.dump`` options, default ``indent=2``) atomically; returns the path."""
    dump_options.setdefault("indent", 2)
    with atomic_file(path, "w") as handle:
        json.dump(obj, handle, **dump_options)
    return Path(path)


def discard_folder(path: str | os.PathLike) -> None:
    """Delete a folder without ever leaving a half-deleted one under its real name: it is renamed
    (atomically) to a temporary name first, then removed. A missing folder is not an error."""
    path = Path(path)
    doomed = path.parent / f"{TMP_PREFIX}delete-{path.name}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        os.replace(path, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; once the block completes, its files are synced and it
    is renamed to ``final`` (an existing ``final`` is discarded first). A crash at any point leaves
    either the old folder or the new one, never a half-written one."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f"{TMP_PREFIX}{final.name}-"))
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        fsync_folder(tmp)
        if final.exists():
            discard_folder(final)
        os.replace(tmp, final)
        fsync_folder(final.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
