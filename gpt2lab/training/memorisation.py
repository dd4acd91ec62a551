"""Is a generated text new, or copied from the training data?

A fine-tuned model that has memorised its training data reproduces long stretches of it word for
word. The check here is the usual one: cut the generated text into n-grams (default 8 words, or
8 tokens), and count how many of them occur verbatim somewhere in the training data. A fresh text
shares almost no 8-grams with the data (even common phrases rarely run to 8 words); a copied one
shares nearly all of them.

It also names the *nearest training example*: the one that shares the most n-grams with the
generated text (falling back to shorter n-grams when none of length n is shared), so you can read
the two side by side.

    index = NoveltyIndex(training_texts, n=8)
    report = index.check(generated)
    report.copied_fraction, report.nearest_text, report.flagged

A text shorter than n units has no n-grams: nothing can be said about it, so its
``copied_fraction`` is ``None`` (shown as "n/a"), never 0, which would read as "all new".
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Literal, get_args

from gpt2lab import graphemes

__all__ = ["WORD_RE", "NoveltyLevel", "LEVELS", "DEFAULT_THRESHOLD", "PASSAGE_CHARS", "NoveltyReport", "NoveltyIndex",
           "novelty"]

# a word (letters/digits) or one punctuation mark or emoji, in whole grapheme clusters (gpt2lab.graphemes)
WORD_RE = graphemes.compile_pattern(f"{graphemes.WORD_CHAR}+|{graphemes.SYMBOL}")
NoveltyLevel = Literal["word", "token"]
LEVELS = get_args(NoveltyLevel)
DEFAULT_THRESHOLD = 0.1  # more than this fraction of copied n-grams is flagged as memorisation
PASSAGE_CHARS = 2000  # longer training texts are split into paragraphs to name a nearest passage


@dataclass
class NoveltyReport:
    """How much of one generated text occurs verbatim in the training data."""

    n: int
    level: str
    total_ngrams: int  # n-grams in the generated text (with repeats)
    copied_ngrams: int  # of those, how many occur in the training data
    longest_copied: int  # longest run of consecutive units covered by copied n-grams (0 if none)
    longest_copied_text: str
    nearest_index: int | None  # index of the nearest training passage
    nearest_text: str | None
    nearest_shared: int  # distinct n-grams it shares with the generated text
    nearest_n: int  # the n-gram length used to pick it (n, or shorter when nothing of length n is shared)
    threshold: float = DEFAULT_THRESHOLD

    @property
    def copied_fraction(self) -> float | None:
        """Fraction of the generated n-grams found verbatim in the training data; ``None`` when the text
        is shorter than n units and so has no n-grams to check (not 0: nothing was measured)."""
        return self.copied_ngrams / self.total_ngrams if self.total_ngrams else None

    @property
    def novel_fraction(self) -> float | None:
        """1 - :attr:`copied_fraction`; ``None`` when the text is too short to have n-grams."""
        return 1.0 - self.copied_ngrams / self.total_ngrams if self.total_ngrams else None

    @property
    def copied_text(self) -> str:
        """The copied fraction for display: ``"0.45"``, or ``"n/a"`` when the text has no n-grams."""
        return "n/a" if self.copied_fraction is None else f"{self.copied_fraction:.2f}"

    @property
    def flagged(self) -> bool:
        """True when more than ``threshold`` of the n-grams are copies: likely memorisation."""
        return self.total_ngrams > 0 and self.copied_ngrams / self.total_ngrams > self.threshold

    def __str__(self) -> str:
        if not self.total_ngrams:
            return f"copied n/a: too short for {self.n}-{self.level} n-grams"
        text = (f"{self.copied_ngrams}/{self.total_ngrams} {self.n}-{self.level} n-grams copied "
                f"({100 * self.copied_fraction:.1f} %)" + (" -- FLAGGED as memorised" if self.flagged else ""))
        if self.longest_copied:
            text += f"; longest copied span {self.longest_copied} {self.level}s: {self.longest_copied_text[:120]!r}"
        if self.nearest_text is not None:
            text += (f"; nearest training passage #{self.nearest_index} ({self.nearest_shared} shared "
                     f"{self.nearest_n}-grams): {self.nearest_text[:120]!r}")
        return text


class NoveltyIndex:
    """All n-grams of a set of training texts, to check generated texts against.

    texts: the training texts (a list, or one long string, which is split into paragraphs).
    n: n-gram length. level: "word" (words and punctuation marks, case kept) or "token" (token ids
    of ``tokenizer``, which is then required).
    """

    def __init__(self, texts, n: int = 8, level: str = "word", tokenizer=None,
                 threshold: float = DEFAULT_THRESHOLD):
        if level not in LEVELS:
            raise ValueError(f"level={level!r} is not allowed; use one of {', '.join(LEVELS)}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} must be a whole number >= 1")
        if level == "token" and tokenizer is None:
            raise ValueError("level='token' needs the tokenizer that the model uses (tokenizer=lm.tokenizer)")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold={threshold!r} must be in [0, 1]")
        self.n, self.level, self.tokenizer, self.threshold = n, level, tokenizer, threshold
        texts = [texts] if isinstance(texts, str) else list(texts)
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"training texts must be strings, got {type(t).__name__}")
        # n-grams of the whole texts decide what counts as copied (also across paragraph breaks) ...
        self._all: set[tuple] = set()
        for t in texts:
            self._all.update(_ngrams(self._split(t)[0], n))
        # ... and passages (long texts cut at blank lines) are what "nearest example" points at
        self.passages = _passages(texts)
        if not self.passages:
            raise ValueError("no training texts to compare with")
        self._units = [self._split(p)[0] for p in self.passages]
        self._where: dict[tuple, list[int]] = defaultdict(list)  # n-gram -> passages holding it
        for i, units in enumerate(self._units):
            for gram in set(_ngrams(units, n)):
                self._where[gram].append(i)

    @classmethod
    def from_data(cls, data, n: int = 8, level: NoveltyLevel = "word", tokenizer=None, **read_settings) -> NoveltyIndex:
        """Index the training texts of a fine-tuning data file (validation part left out), read with
        the same settings as :func:`gpt2lab.finetune` (see :func:`gpt2lab.training.reading.training_texts`)."""
        from gpt2lab.training.reading import training_texts

        return cls(training_texts(data, **read_settings), n=n, level=level, tokenizer=tokenizer)

    @classmethod
    def from_run(cls, run, n: int = 8, level: NoveltyLevel = "word", tokenizer=None, checkpoint_dir="checkpoint"
                 ) -> NoveltyIndex:
        """Index the training texts of a fine-tuning run (its data file and settings from run.json)."""
        from gpt2lab.training.runs import find_checkpoint, read_run

        run_dir, _ = find_checkpoint(run, checkpoint_dir)
        info = read_run(run_dir)
        if not info.get("data"):
            raise ValueError(f"{run_dir} has no run.json naming its data")
        s = info["settings"]
        return cls.from_data(info["data"]["path"], n=n, level=level, tokenizer=tokenizer, format=s["format"],
                             line_by_line=s["line_by_line"], text_field=s["text_field"], csv_header=s["csv_header"],
                             encoding=s["encoding"], val_fraction=s["val_fraction"], val=s["val"], seed=s["seed"])

    @property
    def size(self) -> int:
        """How many distinct n-grams the training texts hold."""
        return len(self._all)

    def _split(self, text: str):
        """(units, function mapping a unit span to its text)."""
        if self.level == "word":
            matches = list(WORD_RE.finditer(text))
            units = tuple(graphemes.nfc(m.group()) for m in matches)  # NFC: "café" matches however it is written
            return units, lambda a, b: text[matches[a].start(): matches[b - 1].end()] if b > a else ""
        ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids, lambda a, b: self.tokenizer.decode(list(ids[a:b]))

    def check(self, generated: str) -> NoveltyReport:
        """Compare one generated text with the training data."""
        if not isinstance(generated, str):
            raise TypeError(f"generated must be a string, got {type(generated).__name__}")
        units, span_text = self._split(generated)
        grams = _ngrams(units, self.n)
        copied = [g in self._all for g in grams]
        # longest run of consecutive copied n-grams: the units they cover were seen in training
        best_run, best_end, run = 0, 0, 0
        for i, hit in enumerate(copied):
            run = run + 1 if hit else 0
            if run > best_run:
                best_run, best_end = run, i
        longest = best_run + self.n - 1 if best_run else 0
        start = best_end - best_run + 1
        longest_text = span_text(start, start + longest) if longest else ""

        nearest, shared, used_n = self._nearest(units, grams, copied)
        return NoveltyReport(n=self.n, level=self.level, total_ngrams=len(grams), copied_ngrams=sum(copied),
                             longest_copied=longest, longest_copied_text=longest_text, nearest_index=nearest,
                             nearest_text=self.passages[nearest] if nearest is not None else None,
                             nearest_shared=shared, nearest_n=used_n, threshold=self.threshold)

    def check_many(self, texts) -> list[NoveltyReport]:
        return [self.check(t) for t in texts]

    def _nearest(self, units, grams, copied):
        counts: Counter = Counter()
        for gram in {g for g, hit in zip(grams, copied) if hit}:
            counts.update(self._where.get(gram, ()))
        if counts:
            index, shared = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            return index, shared, self.n
        for k in range(min(3, self.n - 1), 0, -1):  # nothing of length n shared: back off to 3, 2, 1
            mine = set(_ngrams(units, k))
            if not mine:
                continue
            scores = [len(mine & set(_ngrams(u, k))) for u in self._units]
            best = max(range(len(scores)), key=lambda i: (scores[i], -i))
            if scores[best]:
                return best, scores[best], k
        return None, 0, self.n


def _ngrams(units, n: int) -> list[tuple]:
    return [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]


def _passages(texts: list[str]) -> list[str]:
    out = []
    for t in texts:
        if len(t) > PASSAGE_CHARS:  # name a paragraph, not a whole book, as the nearest example
            out += [p for p in re.split(r"\n\s*\n", t) if p.strip()]
        elif t.strip():
            out.append(t)
    return out


def novelty(generated: str, training, n: int = 8, level: NoveltyLevel = "word", tokenizer=None,
            threshold: float = DEFAULT_THRESHOLD) -> NoveltyReport:
    """Fraction of ``generated``'s n-grams found verbatim in ``training`` (a :class:`NoveltyIndex`,
    a list of texts or one text) and the nearest training passage. Build the index once with
    :class:`NoveltyIndex` when checking many texts."""
    index = training if isinstance(training, NoveltyIndex) else NoveltyIndex(training, n, level, tokenizer, threshold)
    return index.check(generated)
