"""Measuring generated text: parts of speech, repetition, diversity and perplexity.

Everything here works on plain strings so the same measurements apply to a real sonnet, to a
sample from GPT-2 and to the output of the small embedded model.

* **Parts of speech.** Words are tagged with NLTK's averaged-perceptron tagger, which uses the
  Penn Treebank tag set (36 tags: ``NN``, ``VBD``, ``MD`` ...). Penn tags are fine-grained enough
  to keep modals (``might``, ``shall``) apart from other verbs, and are grouped here into the nine
  categories of :data:`POS_CATEGORIES`. Punctuation is tagged (it helps the tagger) but not counted.
* **Repetition.** distinct-n (unique n-grams / all n-grams), the share of n-gram positions whose
  n-gram occurs more than once, the longest repeated word span, and whether a text *ends in a
  loop* (its tail is one phrase repeated back to back, the failure Holtzman et al. 2019 count;
  found on words, punctuation and line breaks, so a run of blank lines is a loop too).
* **Diversity across samples.** Self-BLEU: the BLEU of each sample against all the others,
  averaged (Zhu et al. 2018). High Self-BLEU means the samples all say the same thing.
* **Perplexity** of a text, optionally conditioned on the prompt it continues.

Word tokens for the repetition metrics are lower-cased words (punctuation dropped) produced by a
regular expression, so nothing here needs NLTK's ``punkt`` data. Words are runs of whole grapheme clusters
(:mod:`gpt2lab.graphemes`) and texts are compared in NFC, so "café" counts as one word whether its accent
is one code point or a combining mark, and an emoji sequence is one symbol.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gpt2lab import graphemes
from gpt2lab.tokens import bos_id

__all__ = ["POS_CATEGORIES", "PENN_TO_CATEGORY", "ARCHAIC_TAGS", "tokenize", "words", "pos_tags",
           "POSDistribution", "pos_distribution", "js_divergence", "pos_divergence", "ngrams", "distinct_n",
           "corpus_distinct_n", "repeated_ngram_share", "longest_repeated_span", "symbols", "loop_tail",
           "ends_in_loop", "loop_share", "BLEU_EPSILON", "bleu", "self_bleu", "text_perplexity",
           "REPETITION_METRICS", "repetition_metrics"]

if TYPE_CHECKING:
    from gpt2lab.loading import LM

POS_CATEGORIES = ("conjunctions", "prepositions", "adjectives", "modals", "nouns", "pronouns", "adverbs",
                  "verbs", "other")

# Penn Treebank tag -> category. Penn's IN covers prepositions *and* subordinating conjunctions
# ("because", "if", "that"); the tagger cannot tell them apart, so IN counts as a preposition, and
# so does TO ("to" before a noun or an infinitive).
PENN_TO_CATEGORY: dict[str, str] = {
    "CC": "conjunctions",
    "IN": "prepositions", "TO": "prepositions",
    "JJ": "adjectives", "JJR": "adjectives", "JJS": "adjectives",
    "MD": "modals",
    "NN": "nouns", "NNS": "nouns", "NNP": "nouns", "NNPS": "nouns",
    "PRP": "pronouns", "PRP$": "pronouns", "WP": "pronouns", "WP$": "pronouns",
    "RB": "adverbs", "RBR": "adverbs", "RBS": "adverbs", "WRB": "adverbs",
    "VB": "verbs", "VBD": "verbs", "VBG": "verbs", "VBN": "verbs", "VBP": "verbs", "VBZ": "verbs",
    # everything else (DT, CD, EX, FW, LS, PDT, POS, RP, SYM, UH, WDT) is "other"
}

# A word: letters/digits, optionally joined by inner apostrophes or hyphens ("self-substantial",
# "feed'st"); anything else that is not a space is one punctuation token. Both in whole grapheme clusters.
_TOKEN = graphemes.compile_pattern(f"{graphemes.WORD}|{graphemes.SYMBOL}")
# Penn-style clitics split off so the tagger sees the tokens it was trained on ("beauty's" ->
# "beauty" "'s", "don't" -> "do" "n't"). Archaic endings like "feed'st" stay whole.
_CLITIC = re.compile(r"(?i)^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
_WORDLIKE = graphemes.compile_pattern(r"\w")  # a token is a word when it starts with a word character
_SYMBOL = graphemes.compile_pattern(f"{graphemes.WORD}|{graphemes.SYMBOL}|\n")

# The tagger learnt English from 1980s newspapers and has never seen "thou" or "thy" (it calls
# them nouns and verbs). These closed-class Early Modern English words get their Penn tag directly;
# open-class and ambiguous words ("art": a noun or "thou art") are left to the tagger.
ARCHAIC_TAGS: dict[str, str] = {
    "thou": "PRP", "thee": "PRP", "ye": "PRP", "thyself": "PRP",
    "thy": "PRP$", "thine": "PRP$",
    "hast": "VBP", "dost": "VBP", "wast": "VBD", "wert": "VBD",
    "hath": "VBZ", "doth": "VBZ",
    "shalt": "MD", "wilt": "MD", "canst": "MD", "couldst": "MD", "wouldst": "MD", "shouldst": "MD",
    "mayst": "MD", "mightst": "MD",
}


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word and punctuation tokens in the Penn Treebank style.

    Curly apostrophes become straight ones; clitics (``'s``, ``n't``, ``'ll`` ...) are split off.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    out: list[str] = []
    for token in _TOKEN.findall(graphemes.nfc(text).replace("’", "'")):
        match = _CLITIC.match(token)
        if match and _WORDLIKE.match(match.group(1)):
            out.extend([match.group(1), match.group(2)])
        else:
            out.append(token)
    return out


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (punctuation dropped, apostrophes and hyphens kept inside words)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [w.lower() for w in _TOKEN.findall(graphemes.nfc(text).replace("’", "'")) if _WORDLIKE.match(w)]


# ------------------------------------------------------------------ parts of speech

_TAGGER = None


def _tagger():
    """NLTK's averaged-perceptron tagger, loaded once (about half a second)."""
    global _TAGGER
    if _TAGGER is None:
        from nltk.tag import PerceptronTagger

        from gpt2lab import data

        # Finds the tagger in $GPT2LAB_DATA_MIRROR/nltk_data or the cache, or downloads it; raises
        # DataUnavailableError naming the fix when none of these works.
        data.ensure_nltk_data()
        try:
            _TAGGER = PerceptronTagger(lang="eng")
        except LookupError as err:  # data folder present but incomplete
            raise data.DataUnavailableError(
                f"NLTK's averaged-perceptron tagger could not be loaded ({err}). Fix: run "
                "`python -m nltk.downloader averaged_perceptron_tagger_eng` with internet access, or set "
                "GPT2LAB_DATA_MIRROR to a folder holding nltk_data/ (e.g. ../shared/data).") from err
    return _TAGGER


def pos_tags(text: str, archaic: bool = True) -> list[tuple[str, str, str]]:
    """``(token, penn_tag, category)`` for every word of ``text`` (punctuation left out).

    ``archaic``: tag the closed-class Early Modern English words of :data:`ARCHAIC_TAGS`
    ("thou", "thy", "hath", "shalt" ...) from that table instead of trusting the tagger.
    """
    tokens = tokenize(text)
    if not tokens:
        return []
    out = []
    for tok, tag in _tagger().tag(tokens):
        if not _WORDLIKE.match(tok):
            continue
        if archaic:
            tag = ARCHAIC_TAGS.get(tok.lower(), tag)
        out.append((tok, tag, PENN_TO_CATEGORY.get(tag, "other")))
    return out


@dataclass(frozen=True)
class POSDistribution:
    """Counts of words per part-of-speech category (all of :data:`POS_CATEGORIES`, zeros included)."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def frequencies(self) -> dict[str, float]:
        """Share of the words in each category (sums to 1; all zeros for a text with no words)."""
        total = self.total
        return {c: (self.counts[c] / total if total else 0.0) for c in POS_CATEGORIES}

    def as_series(self, kind: Literal["frequency", "count"] = "frequency"):
        """A pandas Series indexed by category; ``kind`` is "frequency" or "count"."""
        import pandas as pd

        if kind not in ("frequency", "count"):
            raise ValueError(f"kind must be 'frequency' or 'count', got {kind!r}")
        values = self.frequencies if kind == "frequency" else self.counts
        return pd.Series([values[c] for c in POS_CATEGORIES], index=list(POS_CATEGORIES), name=kind)

    def __add__(self, other: POSDistribution) -> POSDistribution:
        return POSDistribution({c: self.counts[c] + other.counts[c] for c in POS_CATEGORIES})


def pos_distribution(text: str | Iterable[str], archaic: bool = True) -> POSDistribution:
    """Part-of-speech counts of a text, or pooled over several texts (see :func:`pos_tags`)."""
    texts = [text] if isinstance(text, str) else list(text)
    counts = Counter({c: 0 for c in POS_CATEGORIES})
    for t in texts:
        counts.update(category for _, _, category in pos_tags(t, archaic=archaic))
    return POSDistribution({c: counts[c] for c in POS_CATEGORIES})


def _as_probabilities(dist) -> list[float]:
    if isinstance(dist, POSDistribution):
        values = [float(dist.counts[c]) for c in POS_CATEGORIES]
    elif isinstance(dist, str):
        raise TypeError("pass a POSDistribution or a mapping category -> frequency, not a text "
                        "(use pos_distribution(text) first)")
    elif isinstance(dist, Mapping) or hasattr(dist, "to_dict"):
        mapping = dict(dist)
        unknown = set(mapping) - set(POS_CATEGORIES)
        if unknown:
            raise ValueError(f"unknown POS categories {sorted(unknown)}; allowed: {list(POS_CATEGORIES)}")
        values = [float(mapping.get(c, 0.0)) for c in POS_CATEGORIES]
    else:
        raise TypeError(f"expected a POSDistribution or a mapping, got {type(dist).__name__}")
    if any(v < 0 or math.isnan(v) for v in values):
        raise ValueError(f"POS frequencies must be non-negative numbers, got {values}")
    total = sum(values)
    if total == 0:
        return [float("nan")] * len(values)  # a text with no words has no distribution
    return [v / total for v in values]


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence of two probability vectors, in bits (0 = identical, 1 = disjoint)."""
    if len(p) != len(q):
        raise ValueError(f"distributions differ in length: {len(p)} vs {len(q)}")

    def kl(a, b):
        return sum(x * math.log2(x / y) for x, y in zip(a, b) if x > 0)

    m = [(x + y) / 2 for x, y in zip(p, q)]
    return max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))


def pos_divergence(p, q) -> float:
    """Jensen-Shannon divergence (bits, in [0, 1]) between two POS distributions.

    ``p`` and ``q`` are :class:`POSDistribution` objects or mappings category -> count/frequency
    (normalised here). NaN when either has no words.
    """
    pp, qq = _as_probabilities(p), _as_probabilities(q)
    if math.isnan(pp[0]) or math.isnan(qq[0]):
        return float("nan")
    return js_divergence(pp, qq)


# ------------------------------------------------------------------ repetition and diversity

def _tokens_of(text_or_tokens) -> list[str]:
    if isinstance(text_or_tokens, str):
        return words(text_or_tokens)
    if isinstance(text_or_tokens, (list, tuple)) and all(isinstance(t, str) for t in text_or_tokens):
        return list(text_or_tokens)
    raise TypeError(f"expected a text (str) or a list of word tokens, got {type(text_or_tokens).__name__}")


def _check_n(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return n


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """All contiguous n-grams of ``tokens`` (empty when there are fewer than ``n`` tokens)."""
    _check_n(n)
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(text, n: int) -> float:
    """Distinct-n (Li et al. 2016) of one text (or list of word tokens): unique n-grams / all n-grams.

    1.0 = no n-gram repeats; NaN when the text has fewer than ``n`` words (no n-gram at all).
    """
    grams = ngrams(_tokens_of(text), _check_n(n))
    if not grams:
        return float("nan")
    return len(set(grams)) / len(grams)


def corpus_distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n pooled over several texts, as reported for a set of samples: unique n-grams in
    all of them / all their n-grams (n-grams never cross from one text into the next)."""
    if isinstance(texts, str):
        raise TypeError("corpus_distinct_n takes a list of texts; use distinct_n for one text")
    grams = [g for t in texts for g in ngrams(_tokens_of(t), _check_n(n))]
    if not grams:
        return float("nan")
    return len(set(grams)) / len(grams)


def repeated_ngram_share(text, n: int = 3) -> float:
    """Share of n-gram positions whose n-gram occurs more than once in the text (first occurrence
    included). 0 = nothing repeats, 1 = every n-gram is part of a repetition; NaN if no n-grams."""
    grams = ngrams(_tokens_of(text), n)
    if not grams:
        return float("nan")
    counts = Counter(grams)
    return sum(1 for g in grams if counts[g] > 1) / len(grams)


def longest_repeated_span(text) -> tuple[int, tuple[str, ...]]:
    """The longest word sequence that occurs at least twice in the text (occurrences may overlap).

    Returns ``(length_in_words, span)``; ``(0, ())`` when no word repeats.
    """
    tokens = _tokens_of(text)

    def repeated_of_length(length: int):
        seen = set()
        for gram in ngrams(tokens, length):
            if gram in seen:
                return gram
            seen.add(gram)
        return None

    # If a span of length L repeats, so does its prefix of length L-1: binary search on L.
    lo, hi, best = 1, len(tokens) - 1, ()
    while lo <= hi:
        mid = (lo + hi) // 2
        found = repeated_of_length(mid)
        if found is not None:
            best, lo = found, mid + 1
        else:
            hi = mid - 1
    return len(best), best


def symbols(text: str) -> list[str]:
    """What a reader sees of ``text`` except spaces: lower-cased words, punctuation marks, and one
    ``"\\n"`` per line break. Loops are found on these, so a model stuck printing blank lines or
    commas is caught too, not only one repeating words."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [t.lower() for t in _SYMBOL.findall(graphemes.nfc(text).replace("’", "'"))]


def loop_tail(text) -> tuple[int, int]:
    """The longest periodic tail of a text: ``(period, length)``, counted in :func:`symbols`
    (or in the given tokens, for a list).

    A tail of length L with period p satisfies ``tokens[i] == tokens[i - p]`` for every position i
    in its last ``L - p`` tokens, i.e. it is one p-token phrase repeated back to back (the last copy
    may be cut off, as happens when generation stops mid-loop); it needs at least two copies
    (L >= 2p). Among periods the one giving the longest tail wins (ties: the shorter period).
    ``(0, 0)`` when the text has no such tail.
    """
    tokens = symbols(text) if isinstance(text, str) else _tokens_of(text)
    best_period, best_len = 0, 0
    for p in range(1, len(tokens) // 2 + 1):
        length = p
        i = len(tokens) - 1
        while i - p >= 0 and tokens[i] == tokens[i - p]:
            length += 1
            i -= 1
        if length >= 2 * p and length > best_len:
            best_period, best_len = p, length
    return best_period, best_len


def ends_in_loop(text, min_length: int = 8) -> bool:
    """True when the text ends with one phrase repeated back to back (at least two copies) over at
    least ``min_length`` symbols (see :func:`loop_tail`): the repetition failure of greedy and
    low-temperature decoding."""
    period, length = loop_tail(text)
    return period > 0 and length >= max(2 * period, min_length)


def loop_share(text) -> float:
    """Share of the text's symbols that belong to its final loop (0 when it does not end in one)."""
    tokens = symbols(text) if isinstance(text, str) else _tokens_of(text)
    if not tokens or not ends_in_loop(tokens):
        return 0.0
    return loop_tail(tokens)[1] / len(tokens)


# ------------------------------------------------------------------ BLEU and Self-BLEU

BLEU_EPSILON = 0.1  # numerator given to a zero n-gram precision (Chen & Cherry's "method 1")


def bleu(hypothesis, references, max_n: int = 4, smooth: bool = True) -> float:
    """Sentence BLEU (Papineni et al. 2002) of ``hypothesis`` against ``references``.

    Modified n-gram precisions for n = 1..max_n (each hypothesis n-gram counted at most as often as
    it appears in any single reference), geometric mean with uniform weights, brevity penalty from
    the reference length closest to the hypothesis length. ``smooth`` replaces a zero precision by
    ``0.1 / count`` (NLTK's ``SmoothingFunction().method1``), so short texts do not score 0 just
    because no 4-gram matches. Texts or lists of word tokens.
    """
    _check_n(max_n)
    hyp = _tokens_of(hypothesis)
    refs = [_tokens_of(r) for r in references]
    if not refs:
        raise ValueError("bleu needs at least one reference")
    if not hyp:
        return 0.0
    precisions = []
    for n in range(1, max_n + 1):
        hyp_counts = Counter(ngrams(hyp, n))
        max_ref = Counter()
        for ref in refs:
            for gram, count in Counter(ngrams(ref, n)).items():
                max_ref[gram] = max(max_ref[gram], count)
        matched = sum(min(count, max_ref[gram]) for gram, count in hyp_counts.items())
        total = max(1, sum(hyp_counts.values()))
        precisions.append((matched, total))  # kept apart: smoothing needs the unreduced count
    if precisions[0][0] == 0:
        return 0.0  # no word in common at all
    if any(m == 0 for m, _ in precisions) and not smooth:
        return 0.0
    precisions = [(m if m else BLEU_EPSILON) / total for m, total in precisions]
    closest = min((len(r) for r in refs), key=lambda r: (abs(r - len(hyp)), r))
    brevity = 1.0 if len(hyp) > closest else math.exp(1 - closest / len(hyp))
    return brevity * math.exp(math.fsum(math.log(p) for p in precisions) / max_n)


def self_bleu(texts: Sequence[str], max_n: int = 4, smooth: bool = True) -> float:
    """Self-BLEU (Zhu et al. 2018): each text scored with BLEU against all the other texts, averaged.

    Near 0: the samples share few phrases (diverse); near 1: they repeat one another.
    Needs at least two texts.
    """
    texts = list(texts)
    if len(texts) < 2:
        raise ValueError(f"self_bleu needs at least two texts, got {len(texts)}")
    tokenised = [_tokens_of(t) for t in texts]
    scores = [bleu(tokenised[i], tokenised[:i] + tokenised[i + 1:], max_n=max_n, smooth=smooth)
              for i in range(len(tokenised))]
    return sum(scores) / len(scores)


# ------------------------------------------------------------------ perplexity

def text_perplexity(lm: LM, text: str, prompt: str | None = None) -> float:
    """Perplexity of ``text`` under ``lm``; with ``prompt``, of ``text`` as a continuation of it.

    Without a prompt this is :func:`gpt2lab.basics.evaluation.score_text`. With one, the prompt's and the
    text's tokens are scored together and the prompt's own share is subtracted, so only the
    continuation counts, each token seeing the prompt (exact while both fit in the context window).
    """
    from gpt2lab.basics.evaluation import score_ids, score_text

    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    if not prompt:
        return score_text(lm, text).perplexity
    import torch

    tok = lm.tokenizer
    bos = bos_id(tok)
    prompt_ids = [bos] + tok(prompt)["input_ids"]
    text_ids = tok(text)["input_ids"]
    if not text_ids:
        raise ValueError(f"text {text!r} encodes to no tokens")
    block = lm.context_length
    nll_all, n_all = score_ids(lm.model, torch.tensor(prompt_ids + text_ids), block)
    nll_prompt, n_prompt = score_ids(lm.model, torch.tensor(prompt_ids), block) if len(prompt_ids) > 1 else (0.0, 0)
    return math.exp((nll_all - nll_prompt) / (n_all - n_prompt))


# ------------------------------------------------------------------ all at once

REPETITION_METRICS = ("n_words", "distinct_1", "distinct_2", "distinct_3", "repeated_3gram_share",
                      "longest_repeat", "ends_in_loop", "loop_share")


def repetition_metrics(text: str) -> dict[str, float]:
    """The per-text repetition measurements of this module, as one flat dict (see REPETITION_METRICS).

    Word-level: n_words, distinct-1/2/3, repeated 3-gram share, longest repeated span (words).
    Symbol-level (words, punctuation, line breaks): ends_in_loop and loop_share.
    """
    tokens = words(text)
    syms = symbols(text)
    return {
        "n_words": len(tokens),
        "distinct_1": distinct_n(tokens, 1),
        "distinct_2": distinct_n(tokens, 2),
        "distinct_3": distinct_n(tokens, 3),
        "repeated_3gram_share": repeated_ngram_share(tokens, 3),
        "longest_repeat": longest_repeated_span(tokens)[0],
        "ends_in_loop": ends_in_loop(syms),
        "loop_share": loop_share(syms),
    }
