"""Count-based n-gram language models over characters or tokens.

The model every neural LM is measured against. Counting is done with numpy: each m-gram is packed
into one int64 key (base-V digits), so counting is a ``np.unique`` and a query is a
``np.searchsorted``; fitting a character 5-gram on tinyshakespeare takes about a second.

Smoothing:
  * ``"add-k"``: p(w | h) = (c(h w) + k) / (c(h) + k V), with h the last n-1 symbols (shorter at the start).
  * ``"kneser-ney"`` (interpolated): the top order uses counts, lower orders use continuation counts
    N1+(• h w) (in how many different contexts a word appears), each order discounts every seen count
    by D and gives the freed mass to the next lower order; the lowest order interpolates with uniform.
    D per order defaults to Ney's estimate n1 / (n1 + 2 n2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

__all__ = ["Smoothing", "Level", "SMOOTHINGS", "LEVELS", "UNK", "NGramLM"]

Smoothing = Literal["kneser-ney", "add-k"]
Level = Literal["char", "token"]
SMOOTHINGS = get_args(Smoothing)
LEVELS = get_args(Level)
UNK = "\u2047"  # stands for characters never seen in training


@dataclass
class _Table:
    """Counts of the m-grams of one order, and totals for their (m-1)-symbol contexts."""

    keys: np.ndarray  # sorted m-gram keys
    counts: np.ndarray  # count (or continuation count) of each key
    ctx_keys: np.ndarray  # sorted context keys
    ctx_totals: np.ndarray  # sum of counts over continuations
    ctx_types: np.ndarray  # number of distinct continuations
    discount: float

    @staticmethod
    def build(keys: np.ndarray, counts: np.ndarray, vocab_size: int, discount: float | None) -> _Table:
        ctx = keys // vocab_size
        ctx_keys, inverse = np.unique(ctx, return_inverse=True)
        ctx_totals = np.bincount(inverse, weights=counts).astype(np.float64)
        ctx_types = np.bincount(inverse).astype(np.float64)
        if discount is None:
            n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
            discount = n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5
            discount = float(min(max(discount, 0.05), 0.95))
        return _Table(keys, counts.astype(np.float64), ctx_keys, ctx_totals, ctx_types, discount)

    @staticmethod
    def _lookup(sorted_keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        if len(sorted_keys) == 0:
            return np.zeros(query.shape, dtype=np.float64)
        pos = np.searchsorted(sorted_keys, query)
        pos = np.minimum(pos, len(sorted_keys) - 1)
        found = sorted_keys[pos] == query
        return np.where(found, values[pos], 0.0)

    def count(self, query: np.ndarray) -> np.ndarray:
        return self._lookup(self.keys, self.counts, query)

    def context(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._lookup(self.ctx_keys, self.ctx_totals, query), self._lookup(self.ctx_keys, self.ctx_types, query)


class NGramLM:
    """An n-gram language model.

    >>> lm = NGramLM(n=3).fit("to be or not to be")
    >>> round(float(lm.next_distribution("to").sum()), 6)
    1.0
    """

    def __init__(self, n: int = 3, smoothing: Smoothing = "kneser-ney", k: float = 1.0, discount: float | None = None,
                 level: Level = "char", tokenizer=None):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing={smoothing!r} is not known; use one of {SMOOTHINGS}")
        if smoothing == "add-k" and not k > 0:
            raise ValueError(f"k must be > 0 for add-k smoothing (k=0 gives unseen n-grams probability 0), got {k!r}")
        if discount is not None and not 0 < discount < 1:
            raise ValueError(f"discount must be in (0, 1), got {discount!r}")
        if level not in LEVELS:
            raise ValueError(f"level={level!r} is not known; use one of {LEVELS}")
        if level == "token" and tokenizer is None:
            raise ValueError("level='token' needs a tokenizer (e.g. lm.tokenizer or gpt2lab.data.gpt2_tokenizer())")
        self.n, self.smoothing, self.k, self.level, self.tokenizer = int(n), smoothing, float(k), level, tokenizer
        self._discount = discount
        self.vocab: list[str] = []
        self._index: dict[str, int] = {}
        self._raw: list[_Table] = []  # raw counts, order 1..n
        self._cont: list[_Table] = []  # continuation counts, order 1..n-1 (Kneser-Ney)

    # ------------------------------------------------------------ symbols
    @property
    def vocab_size(self) -> int:
        return len(self.vocab) if self.level == "char" else len(self.tokenizer)

    def encode(self, text: str) -> np.ndarray:
        if self.level == "token":
            return np.asarray(self.tokenizer(text)["input_ids"], dtype=np.int64)
        unk = self._index[UNK]
        return np.fromiter((self._index.get(ch, unk) for ch in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        if self.level == "token":
            return self.tokenizer.decode(list(map(int, ids)))
        return "".join(self.vocab[i] for i in ids)

    # ------------------------------------------------------------ fitting
    def fit(self, text: str) -> NGramLM:
        """Count every m-gram of ``text`` (m = 1..n) and return the model itself. Raises ValueError for an
        empty text."""
        if not isinstance(text, str) or not text:
            raise ValueError("fit() needs a non-empty string of training text")
        if self.level == "char":
            self.vocab = sorted(set(text)) + [UNK]
            self._index = {ch: i for i, ch in enumerate(self.vocab)}
        seq = self.encode(text)
        V = self.vocab_size
        if self.n * math.log2(V) >= 62:
            raise ValueError(f"n={self.n} with a vocabulary of {V} is too large to pack into 64-bit keys; "
                             f"use n <= {int(62 / math.log2(V))}")
        self._raw, self._cont = [], []
        keys = seq.copy()  # order-1 keys
        unique_by_order = []
        for m in range(1, self.n + 1):
            if m > 1:
                keys = keys[:-1] * V + seq[m - 1:]
            uniq, counts = np.unique(keys, return_counts=True)
            unique_by_order.append(uniq)
            self._raw.append(_Table.build(uniq, counts, V, self._discount))
        for m in range(1, self.n):
            # continuation count of an m-gram g: how many distinct symbols precede it in training
            suffixes = unique_by_order[m] % (V ** m)
            uniq, counts = np.unique(suffixes, return_counts=True)
            self._cont.append(_Table.build(uniq, counts, V, self._discount))
        self._fitted_on = len(seq)
        return self

    def _check_fitted(self):
        if not self._raw:
            raise RuntimeError("this NGramLM is not fitted yet; call .fit(training_text) first")

    # ------------------------------------------------------------ probabilities
    def _probs(self, history: np.ndarray, targets: np.ndarray, avail: np.ndarray) -> np.ndarray:
        """p(target | last min(n-1, avail) symbols of history) for many queries at once.

        history: (Q, n-1) context symbols, right-aligned; avail: (Q,) how many of them are real.
        """
        V = self.vocab_size
        Q = len(targets)
        ctx_keys = []  # key of the last j context symbols, j = 0..n-1
        key = np.zeros(Q, dtype=np.int64)
        ctx_keys.append(key)
        for j in range(1, self.n):
            key = history[:, self.n - 1 - j] * (V ** (j - 1)) + key if j > 1 else history[:, self.n - 2].copy()
            ctx_keys.append(key)
        if self.smoothing == "add-k":
            order = np.minimum(avail, self.n - 1)  # context length used
            p = np.empty(Q, dtype=np.float64)
            for j in range(self.n):
                sel = order == j
                if not sel.any():
                    continue
                table = self._raw[j]
                full = ctx_keys[j][sel] * V + targets[sel]
                c = table.count(full)
                total, _ = table.context(ctx_keys[j][sel]) if j > 0 else (np.full(sel.sum(), table.counts.sum()), None)
                p[sel] = (c + self.k) / (total + self.k * V)
            return p
        # interpolated Kneser-Ney, from the lowest order up
        p = np.full(Q, 1.0 / V)
        for j in range(self.n):  # j = context length, order j+1
            table = self._raw[j] if j == self.n - 1 else self._cont[j]
            full = ctx_keys[j] * V + targets
            c = table.count(full)
            if j == 0:
                total = np.full(Q, table.counts.sum())
                types = np.full(Q, float(len(table.counts)))
            else:
                total, types = table.context(ctx_keys[j])
            D = table.discount
            safe_total = np.where(total > 0, total, 1.0)
            higher = np.maximum(c - D, 0.0) / safe_total + D * types / safe_total * p
            usable = (total > 0) & (avail >= j)
            p = np.where(usable, higher, p)
        return p

    def log_probs(self, text: str, context: str = "") -> np.ndarray:
        """Natural-log probability of each symbol of ``text`` (after an optional ``context``)."""
        self._check_fitted()
        ctx_ids = self.encode(context) if context else np.zeros(0, dtype=np.int64)
        ids = self.encode(text)
        full = np.concatenate([ctx_ids, ids])
        start = len(ctx_ids)
        positions = np.arange(start, len(full))
        h = self.n - 1
        padded = np.concatenate([np.zeros(h, dtype=np.int64), full])
        if h > 0:
            history = np.stack([padded[positions + i] for i in range(h)], axis=1)
        else:
            history = np.zeros((len(positions), 0), dtype=np.int64)
        avail = np.minimum(positions, h)
        return np.log(self._probs(history, full[positions], avail))

    def log_prob(self, text: str, context: str = "") -> float:
        return float(self.log_probs(text, context).sum())

    def perplexity(self, text: str) -> float:
        """exp(mean negative log-likelihood per symbol)."""
        return float(np.exp(-self.log_probs(text).mean()))

    def bits_per_char(self, text: str) -> float:
        """Total negative log2-likelihood divided by the number of characters: comparable across
        character and token models, and with neural LMs."""
        return float(-self.log_probs(text).sum() / math.log(2) / len(text))

    def next_distribution(self, context: str | list[int] = "") -> np.ndarray:
        """p(· | context) over the whole vocabulary (sums to 1)."""
        self._check_fitted()
        ids = self.encode(context) if isinstance(context, str) else np.asarray(context, dtype=np.int64)
        h = self.n - 1
        V = self.vocab_size
        last = ids[max(len(ids) - h, 0):] if h else ids[:0]
        history = np.zeros((V, h), dtype=np.int64)
        if h:
            history[:, h - len(last):] = last
        return self._probs(history, np.arange(V, dtype=np.int64), np.full(V, min(len(ids), h)))

    def generate(self, length: int = 200, prompt: str = "", seed: int | None = None,
                 temperature: float = 1.0) -> str:
        """Sample ``length`` symbols after ``prompt``; returns prompt + continuation."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self._check_fitted()
        rng = np.random.default_rng(seed)
        ids = list(self.encode(prompt)) if prompt else []
        out = []
        for _ in range(int(length)):
            p = self.next_distribution(ids)
            if self.level == "char":
                p[self._index[UNK]] = 0.0
            if temperature != 1.0:
                p = np.power(p, 1.0 / temperature)
            p = p / p.sum()
            nxt = int(rng.choice(len(p), p=p))
            ids.append(nxt)
            out.append(nxt)
        return prompt + self.decode(out)

    def __repr__(self) -> str:
        fitted = f", fitted on {self._fitted_on:,} {self.level}s" if self._raw else ""
        return f"NGramLM(n={self.n}, smoothing={self.smoothing!r}, level={self.level!r}{fitted})"
