"""Course data: where it comes from, how it is verified, cached and split.

Nothing here is committed to the repository. Each file is fetched once from its public source,
checked against a pinned SHA-256, and kept in a cache (``$GPT2LAB_CACHE``, default
``~/.cache/gpt2lab``). A local mirror laid out like the cache (``$GPT2LAB_DATA_MIRROR``) is used
first, which is how CI and offline machines work: e.g. ``GPT2LAB_DATA_MIRROR=../shared/data``.

Layout (same in mirror and cache)::

    tinyshakespeare/input.txt
    sonnets/sonnets.txt
    gpt2-tokenizer/vocab.json, gpt2-tokenizer/merges.txt
    nltk_data/taggers/...          (NLTK's own layout)
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gpt2lab import files

__all__ = ["ENV_MIRROR", "ENV_CACHE", "DOWNLOAD_TIMEOUT_S", "TRAIN_FRACTION", "RemoteFile", "FILES",
           "DataUnavailableError", "cache_dir", "mirror_dir", "sha256_of", "fetch", "tinyshakespeare",
           "split_text", "tinyshakespeare_split", "Sonnet", "roman_to_int", "parse_sonnets", "sonnets",
           "gpt2_tokenizer_dir", "gpt2_tokenizer", "NLTK_PACKAGES", "ensure_nltk_data"]

ENV_MIRROR = "GPT2LAB_DATA_MIRROR"
ENV_CACHE = "GPT2LAB_CACHE"
DOWNLOAD_TIMEOUT_S = 30
TRAIN_FRACTION = 0.9  # first 90 % of the characters train, last 10 % validate (the common convention)


@dataclass(frozen=True)
class RemoteFile:
    relpath: str  # path inside the mirror / cache
    url: str
    sha256: str
    size: int


FILES: dict[str, RemoteFile] = {
    f.relpath: f
    for f in [
        RemoteFile("tinyshakespeare/input.txt",
                   "https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/"
                   "data/tinyshakespeare/input.txt",
                   "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", 1_115_394),
        RemoteFile("sonnets/sonnets.txt",
                   "https://raw.githubusercontent.com/gutenbergbooks/1041/9ebd428e77f6bc8ebecdee8aa6f4777ef8157966/"
                   "1041-0.txt",
                   "5360fbcfa0158a8ab4870a47a460f463da5bfde80a268634c5183a84416e8824", 97_500),
        # OpenAI's original GPT-2 BPE files (the same bytes as the Hub's gpt2 vocab.json / merges.txt).
        RemoteFile("gpt2-tokenizer/vocab.json",
                   "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
                   "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783", 1_042_301),
        RemoteFile("gpt2-tokenizer/merges.txt",
                   "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
                   "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5", 456_318),
    ]
}


class DataUnavailableError(RuntimeError):
    """A course file is neither in the mirror, nor in the cache, nor downloadable."""


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "gpt2lab").expanduser()


def mirror_dir() -> Path | None:
    value = os.environ.get(ENV_MIRROR)
    return Path(value).expanduser() if value else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(relpath: str) -> Path:
    """Return a local, verified path for one course file, downloading it if needed."""
    if relpath not in FILES:
        raise KeyError(f"unknown course file {relpath!r}; known: {sorted(FILES)}")
    spec = FILES[relpath]
    problems = []
    mirror = mirror_dir()
    if mirror is not None:
        candidate = mirror / relpath
        if candidate.is_file():
            if sha256_of(candidate) == spec.sha256:
                return candidate
            problems.append(f"mirror copy {candidate} has the wrong SHA-256 (expected {spec.sha256})")
        else:
            problems.append(f"not in the mirror {mirror} (${ENV_MIRROR})")
    cached = cache_dir() / relpath
    if cached.is_file():
        if sha256_of(cached) == spec.sha256:
            return cached
        cached.unlink()  # corrupt or truncated: fetch again
    try:
        _download(spec, cached)
        return cached
    except (OSError, ValueError) as err:
        problems.append(f"download from {spec.url} failed: {err}")
    raise DataUnavailableError(
        f"cannot get {relpath}: " + "; ".join(problems)
        + f". Fix: connect to the internet once (the file is cached in {cache_dir()}), or set ${ENV_MIRROR} to a "
        "folder laid out like shared/data (e.g. GPT2LAB_DATA_MIRROR=../shared/data).")


def _download(spec: RemoteFile, target: Path) -> None:
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    # atomic: never a half-written (or unverified) file under the real name
    with files.atomic_file(target, "wb") as out, urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
        with tqdm(total=spec.size, unit="B", unit_scale=True, desc=f"download {spec.relpath}", leave=False) as bar:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != spec.sha256:
            raise ValueError(f"SHA-256 mismatch: got {digest.hexdigest()}, expected {spec.sha256}")


# ---------------------------------------------------------------- corpora

def tinyshakespeare() -> str:
    """The whole tinyshakespeare corpus (1,115,394 characters)."""
    return fetch("tinyshakespeare/input.txt").read_text(encoding="utf-8")


def split_text(text: str, train_fraction: float = TRAIN_FRACTION) -> tuple[str, str]:
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]


def tinyshakespeare_split() -> tuple[str, str]:
    """(train, validation): the first 90 % of the characters and the last 10 %.

    Every notebook, model and benchmark in gpt2lab uses this one split, so numbers compare.
    """
    return split_text(tinyshakespeare())


@dataclass(frozen=True)
class Sonnet:
    number: int
    numeral: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


_ROMAN = re.compile(r"^\s*([IVXLC]+)\s*$")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def roman_to_int(numeral: str) -> int:
    total = 0
    for i, ch in enumerate(numeral):
        value = _ROMAN_VALUES[ch]
        if i + 1 < len(numeral) and _ROMAN_VALUES[numeral[i + 1]] > value:
            total -= value
        else:
            total += value
    return total


def parse_sonnets(text: str) -> list[Sonnet]:
    """Split the Gutenberg text of the sonnets at their Roman-numeral headings."""
    sonnets: list[Sonnet] = []
    numeral, lines = None, []
    for raw in text.splitlines():
        match = _ROMAN.match(raw)
        if match:
            if numeral is not None:
                sonnets.append(Sonnet(roman_to_int(numeral), numeral, tuple(lines)))
            numeral, lines = match.group(1), []
        elif numeral is not None and raw.strip():
            lines.append(raw.strip())
    if numeral is not None:
        sonnets.append(Sonnet(roman_to_int(numeral), numeral, tuple(lines)))
    return sonnets


def sonnets() -> list[Sonnet]:
    """Shakespeare's 154 sonnets, in order (``sonnets()[0]`` is Sonnet I)."""
    return parse_sonnets(fetch("sonnets/sonnets.txt").read_text(encoding="utf-8"))


def gpt2_tokenizer_dir() -> Path:
    """A directory with GPT-2's vocab.json and merges.txt, loadable with ``from_pretrained(dir)``."""
    paths = [fetch("gpt2-tokenizer/vocab.json"), fetch("gpt2-tokenizer/merges.txt")]
    if paths[0].parent == paths[1].parent:
        return paths[0].parent
    target = cache_dir() / "gpt2-tokenizer"  # mixed mirror/cache: gather both in the cache
    target.mkdir(parents=True, exist_ok=True)
    for p in paths:
        if not (target / p.name).exists():
            shutil.copyfile(p, target / p.name)
    return target


def gpt2_tokenizer():
    """The real GPT-2 tokenizer (50,257 tokens), from the mirror or OpenAI's public files."""
    # GPT2TokenizerFast(vocab_file=..., merges_file=...) silently builds an empty tokenizer in
    # transformers 5; from_pretrained(dir) reads the two files correctly.
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast.from_pretrained(str(gpt2_tokenizer_dir()))


NLTK_PACKAGES = ("averaged_perceptron_tagger_eng", "universal_tagset")


def ensure_nltk_data(download: bool = True) -> Path:
    """Make NLTK's POS tagger findable: from the mirror's ``nltk_data`` or downloaded into the cache."""
    import nltk

    candidates = []
    mirror = mirror_dir()
    if mirror is not None and (mirror / "nltk_data").is_dir():
        candidates.append(mirror / "nltk_data")
    candidates.append(cache_dir() / "nltk_data")
    for folder in candidates:
        if str(folder) not in nltk.data.path:
            nltk.data.path.insert(0, str(folder))

    def missing() -> list[str]:
        out = []
        for pkg in NLTK_PACKAGES:
            try:
                nltk.data.find(f"taggers/{pkg}")
            except LookupError:
                out.append(pkg)
        return out

    todo = missing()
    if todo and download:
        target = cache_dir() / "nltk_data"
        target.mkdir(parents=True, exist_ok=True)
        for pkg in todo:
            nltk.download(pkg, download_dir=str(target), quiet=True, raise_on_error=False)
        todo = missing()
    if todo:
        raise DataUnavailableError(
            f"NLTK tagger data missing: {todo}. Fix: run `python -m nltk.downloader {' '.join(todo)}` with internet "
            f"access, or set ${ENV_MIRROR} to a folder holding nltk_data/ (e.g. ../shared/data), or NLTK_DATA.")
    return Path(nltk.data.find(f"taggers/{NLTK_PACKAGES[0]}")).parent.parent
