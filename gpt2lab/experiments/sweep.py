"""Parameter studies: generate under many decoding settings, measure every text, plot the result.

A sweep is settings x seeds x prompts. Each setting and seed is generated once, all prompts in one
batched call of the generator (or one call per prompt); the texts are cached on disk under a key
made of the model's fingerprint, the settings, the seed, the prompts and the generator's name, and
every text is measured with :mod:`gpt2lab.experiments.analysis`. Re-running a notebook therefore re-reads the
texts instead of generating them again; change anything in the key and those texts are generated
afresh.

    >>> df = run_sweep(lm, CLASSIC_SETTINGS, [prompt], seeds=[0, 1, 2])
    >>> summary = summarize(df)
    >>> plot_pos_by_setting(df)

``generate_fn`` defaults to :func:`gpt2lab.generate` and is called as
``generate_fn(lm, prompts, num_return_sequences=samples, seed=seed, **params)``, leaving out what
the mode does not use: greedy and beam search get no ``seed`` (their texts are generated once and
shared by all seeds) and greedy no ``num_return_sequences`` (its one text stands for every
sample). Pass another function (same signature, returning one list of texts per prompt) to study
a different generator or to test.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gpt2lab import files
from gpt2lab.experiments import analysis
from gpt2lab.fingerprint import model_fingerprint

__all__ = ["CACHE_VERSION", "DEFAULT_PARAMS", "CLASSIC_SETTINGS", "DEGENERATE_LABEL", "DECODING_METHODS",
           "grid", "setting_label", "normalize_settings", "mode_uses", "GenerationCache", "run_sweep",
           "add_metrics", "pooled_pos", "summarize", "decoding_comparison", "sonnet_parts",
           "shakespeare_prompts", "plot_pos_by_setting", "plot_pos_comparison", "plot_repetition",
           "plot_decoding_comparison"]

if TYPE_CHECKING:
    from gpt2lab.loading import LM

CACHE_VERSION = 1
# Every setting starts from these: continuations only, no n-gram blocking and no repetition penalty
# unless a setting asks for them (gpt2lab.generate blocks repeated 2-grams by default, which would
# hide exactly the repetition these studies measure).
DEFAULT_PARAMS = {"max_length": 100, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0,
                  "include_prefix": False}

# The original study's histogram had eleven settings: temperature, top-k, top-p and length varied
# one or two at a time around a sane default, plus the classic degenerate combination
# "temperature 2, top_p 0.1, top_k 2". Applied together, as transformers' generate() and OpenAI's
# own GPT-2 sampling code apply them, that combination is exactly greedy decoding: top_k=2 keeps
# two tokens, the likelier of which has at least half of their renormalised probability, so the
# smallest set reaching top_p=0.1 is that one token; temperature cannot change which one it is.
# gpt2lab's modes apply one cut-off each, so the setting is written as what it amounts to.
CLASSIC_SETTINGS: dict[str, dict] = {
    "T=0.7, p=0.9": {"mode": "sample-top-p", "temperature": 0.7, "top_p": 0.9},
    "T=1.0, p=0.9": {"mode": "sample-top-p", "temperature": 1.0, "top_p": 0.9},
    "T=1.3, p=0.9": {"mode": "sample-top-p", "temperature": 1.3, "top_p": 0.9},
    "T=1.0, p=0.5": {"mode": "sample-top-p", "temperature": 1.0, "top_p": 0.5},
    "T=1.0, p=0.99": {"mode": "sample-top-p", "temperature": 1.0, "top_p": 0.99},
    "T=0.7, k=10": {"mode": "sample-top-k", "temperature": 0.7, "top_k": 10},
    "T=1.0, k=40": {"mode": "sample-top-k", "temperature": 1.0, "top_k": 40},
    "T=1.0, k=200": {"mode": "sample-top-k", "temperature": 1.0, "top_k": 200},
    "T=1.0, p=0.9, short": {"mode": "sample-top-p", "temperature": 1.0, "top_p": 0.9, "max_length": 40},
    "T=1.0, p=0.9, long": {"mode": "sample-top-p", "temperature": 1.0, "top_p": 0.9, "max_length": 180},
    "degenerate T=2, p=0.1, k=2": {"mode": "greedy"},  # exactly what that combination amounts to
}
DEGENERATE_LABEL = "degenerate T=2, p=0.1, k=2"

# The decoding methods compared by Holtzman et al. (2019), "The Curious Case of Neural Text
# Degeneration", at a size that runs on a laptop (their beam width was 16, here 4).
DECODING_METHODS: dict[str, dict] = {
    "greedy": {"mode": "greedy"},
    "beam (b=4)": {"mode": "beam", "num_beams": 4},
    "beam (b=4), no 3-gram repeats": {"mode": "beam", "num_beams": 4, "no_repeat_ngram_size": 3},
    # mode "sample" applies top_p 0.92 and top_k 50 unless told otherwise: pure sampling turns both off
    "pure sampling": {"mode": "sample", "temperature": 1.0, "top_k": 0, "top_p": 1.0},
    "sampling T=0.7": {"mode": "sample", "temperature": 0.7, "top_k": 0, "top_p": 1.0},
    "top-k (k=40)": {"mode": "sample-top-k", "top_k": 40, "temperature": 1.0},
    "top-k (k=40), T=0.7": {"mode": "sample-top-k", "top_k": 40, "temperature": 0.7},
    "nucleus (p=0.95)": {"mode": "sample-top-p", "top_p": 0.95, "temperature": 1.0},
}


# ------------------------------------------------------------------ settings

def grid(**axes: Sequence) -> list[dict]:
    """Every combination of the given parameter values, e.g.
    ``grid(temperature=[0.7, 1.0], top_p=[0.5, 0.9])`` -> 4 settings."""
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"grid axis {name!r} must be a list of values, got {values!r}")
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(list(axes[n]) for n in names))]


_SHORT = {"temperature": "T", "top_k": "k", "top_p": "p", "max_length": "len", "num_beams": "beams",
          "no_repeat_ngram_size": "no-repeat", "repetition_penalty": "rep"}


def setting_label(params: Mapping) -> str:
    """A short readable name for a setting: ``{"temperature": 0.7, "top_p": 0.9}`` -> "T=0.7, p=0.9"."""
    parts = [str(params["mode"])] if "mode" in params else []
    parts += [f"{_SHORT.get(k, k)}={v}" for k, v in params.items() if k != "mode"]
    return ", ".join(parts) or "defaults"


def normalize_settings(settings) -> list[tuple[str, dict]]:
    """``(label, params)`` pairs from a dict label -> params or a list of params dicts."""
    if isinstance(settings, Mapping):
        pairs = list(settings.items())
    elif isinstance(settings, (list, tuple)):
        pairs = [(setting_label(p) if isinstance(p, Mapping) else None, p) for p in settings]
    else:
        raise TypeError(f"settings must be a dict label -> parameters or a list of parameter dicts, "
                        f"got {type(settings).__name__}")
    out, seen = [], set()
    for label, params in pairs:
        if not isinstance(params, Mapping):
            raise TypeError(f"each setting must be a dict of generation parameters, got {params!r}")
        bad = [k for k in params if not isinstance(k, str)]
        if bad:
            raise TypeError(f"parameter names must be strings, got {bad}")
        for reserved in ("seed", "prompts", "num_return_sequences"):
            if reserved in params:
                raise ValueError(f"setting {label!r} sets {reserved!r}; the sweep sets it itself "
                                 "(pass seeds=..., prompts=..., samples=...)")
        if label in seen:
            raise ValueError(f"two settings are both labelled {label!r}; give them distinct labels")
        seen.add(label)
        out.append((str(label), dict(params)))
    if not out:
        raise ValueError("settings is empty; give at least one setting")
    return out


# ------------------------------------------------------------------ cache

def mode_uses(params: Mapping, name: str) -> bool:
    """Whether the decoding mode of ``params`` gives parameter ``name`` a meaning (e.g. "seed": only sampling
    is random). Follows :data:`gpt2lab.generation.params.APPLIES_IN`; without a ``mode`` the default mode
    (nucleus sampling) is assumed; an unknown mode is left for the generator to reject."""
    from gpt2lab.generation.params import MODES, applies

    mode = params.get("mode", "sample-top-p")
    return applies(mode, name) if mode in MODES else True


def _generator_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


class GenerationCache:
    """Generated texts on disk, one small JSON file per generator call, i.e. per (model, settings,
    seed, prompts, generator)."""

    def __init__(self, folder: str | os.PathLike | None = None):
        if folder is None:
            from gpt2lab.data import cache_dir

            folder = cache_dir() / "generations"
        self.folder = Path(folder).expanduser()

    @staticmethod
    def key(**fields) -> str:
        blob = json.dumps({"v": CACHE_VERSION, **fields}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[list[str]] | None:
        """The texts stored under ``key`` (one list per prompt), or None."""
        path = self._path(key)
        try:
            texts = json.loads(path.read_text(encoding="utf-8"))["texts"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or unreadable: generate again
        ok = isinstance(texts, list) and all(isinstance(g, list) and all(isinstance(t, str) for t in g)
                                             for g in texts)
        return texts if ok else None

    def put(self, key: str, texts: list[list[str]], **meta) -> None:
        path = self._path(key)
        files.write_json(path, {"texts": texts, **meta}, ensure_ascii=False, default=str, indent=None)

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.json")) if self.folder.is_dir() else 0


def _as_cache(cache) -> GenerationCache | None:
    if cache is False or cache is None:
        return None
    if cache is True:
        return GenerationCache()
    if isinstance(cache, GenerationCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return GenerationCache(cache)
    raise TypeError(f"cache must be True, False, a folder path or a GenerationCache, got {cache!r}")


def _as_text(item) -> str:
    for attr in ("continuation", "text"):
        if not isinstance(item, str) and hasattr(item, attr):
            item = getattr(item, attr)
            break
    if not isinstance(item, str):
        raise TypeError(f"the generator returned {type(item).__name__} items; expected strings")
    return item


def _texts_per_prompt(result, n_prompts: int, expected: int) -> list[list[str]]:
    """A generator's result as one list of ``expected`` texts per prompt.

    Accepts one list per prompt (what :func:`gpt2lab.generate` returns for a list of prompts) or
    a flat list of ``n_prompts * expected`` texts, prompt by prompt.
    """
    items = [result] if isinstance(result, str) else list(result)
    if len(items) == n_prompts and all(isinstance(i, (list, tuple)) for i in items):
        groups = [[_as_text(t) for t in group] for group in items]
    else:
        flat = [_as_text(t) for t in items]
        if len(flat) != n_prompts * expected:
            raise ValueError(f"the generator returned {len(flat)} texts for {n_prompts} prompt(s); expected "
                             f"{expected} per prompt")
        groups = [flat[i * expected:(i + 1) * expected] for i in range(n_prompts)]
    for group in groups:
        if len(group) != expected:
            raise ValueError(f"the generator returned {len(group)} texts for one prompt; expected {expected}")
    return groups


# ------------------------------------------------------------------ the sweep

def run_sweep(lm: LM, settings, prompts: Sequence[str] | Mapping[str, str], seeds: Iterable[int] = (0,), *,
              samples: int = 1, defaults: Mapping | None = None, generate_fn: Callable | None = None,
              cache=True, batch_prompts: bool = True, measure: bool = True, perplexity: bool = True,
              reference=None, progress: bool = True):
    """Generate for every setting x seed x prompt and return a DataFrame, one row per text.

    settings: dict label -> generation parameters, or a list of parameter dicts (see :func:`grid`).
    prompts: a list of prompts, or a dict prompt_id -> prompt.
    seeds: one generator call per seed; ``samples`` texts (num_return_sequences) per prompt.
    defaults: parameters that override :data:`DEFAULT_PARAMS` for every setting (a setting's own
        parameters override both), e.g. ``{"max_length": 40}``.
    generate_fn: the generator (default :func:`gpt2lab.generate`).
    cache: True (the course cache folder), a folder, a :class:`GenerationCache`, or False.
    batch_prompts: generate all prompts of a setting and seed in one batched call (fast; a text then
        depends on which prompts it was batched with) or one call per prompt (each text
        reproducible on its own).
    measure / perplexity / reference: passed to :func:`add_metrics` (skip all metrics with
        ``measure=False``).

    Columns: setting, seed, prompt_id, prompt, sample, text, cached (True when the text was not
    generated for this row: read from the cache, or shared with another seed of a deterministic
    mode), the parameters, and the metrics.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    pairs = normalize_settings(settings)
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of prompts (or a dict id -> prompt), not one string")
    prompt_items = list(prompts.items()) if isinstance(prompts, Mapping) else list(enumerate(prompts))
    if not prompt_items:
        raise ValueError("prompts is empty; give at least one prompt")
    for pid, p in prompt_items:
        if not isinstance(p, str) or not p:
            raise ValueError(f"prompt {pid!r} must be a non-empty string, got {p!r}")
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if generate_fn is None:
        from gpt2lab.generation.pipeline import generate as generate_fn
    base = {**DEFAULT_PARAMS, **(defaults or {})}
    store = _as_cache(cache)
    fingerprint = model_fingerprint(lm)
    generator = _generator_name(generate_fn)

    # One generator call per setting x seed (x prompt unless batch_prompts): batching the prompts
    # costs little more than one prompt. A batch's random draws depend on all its prompts, so the
    # cache key holds the whole batch.
    chunks = [prompt_items] if batch_prompts else [[item] for item in prompt_items]
    jobs = list(itertools.product(pairs, seeds, range(len(chunks))))
    results: dict[tuple, tuple[list[str], bool]] = {}  # (setting, seed, prompt id) -> (texts, cached)
    done: dict[str, list[list[str]]] = {}  # this run's calls, so deterministic modes run once per batch
    reused = 0
    bar = tqdm(jobs, desc="generating", disable=not progress)
    for (label, params), seed, c in bar:
        chunk = chunks[c]
        batch = [p for _, p in chunk]
        full = {**base, **params}
        # Greedy and beam search ignore the seed: every seed gives the same text, generated once.
        call_seed = seed if mode_uses(full, "seed") else None
        # Greedy returns one text per prompt: asked for several samples, it would repeat that one.
        call_samples = samples if mode_uses(full, "num_return_sequences") else 1
        key = GenerationCache.key(model=fingerprint, params=full, seed=call_seed, prompts=batch, samples=samples,
                                  generator=generator)
        texts = done.get(key)
        if texts is None and store is not None:
            texts = store.get(key)
        was_cached = texts is not None
        if texts is None:
            extra = {} if call_seed is None else {"seed": call_seed}
            if mode_uses(full, "num_return_sequences"):
                extra["num_return_sequences"] = samples
            result = generate_fn(lm, batch, **extra, **full)
            texts = [group * (samples // call_samples)
                     for group in _texts_per_prompt(result, len(batch), call_samples)]
            if store is not None:
                store.put(key, texts, model=lm.name, params=full, seed=call_seed, prompts=batch)
        done[key] = texts
        reused += was_cached
        bar.set_postfix(cached=reused)
        for (pid, _), group in zip(chunk, texts):
            results[label, seed, pid] = (group, was_cached)
    rows = []
    for (label, params), seed, (pid, prompt) in itertools.product(pairs, seeds, prompt_items):
        group, was_cached = results[label, seed, pid]
        for i, text in enumerate(group):
            rows.append({"setting": label, "seed": seed, "prompt_id": pid, "prompt": prompt, "sample": i,
                         "text": text, "cached": was_cached, **base, **params})
    df = pd.DataFrame(rows)
    if measure:
        df = add_metrics(df, lm if perplexity else None, reference=reference, progress=progress)
    return df


def add_metrics(df, lm: LM=None, reference=None, progress: bool = False):
    """Measure every ``text`` of ``df`` and return a copy with the metric columns added.

    Always: the repetition metrics of :func:`gpt2lab.experiments.analysis.repetition_metrics`, the POS frequency
    of every category (``pos_<category>``) and the number of tagged words (``pos_words``).
    With ``lm``: ``perplexity`` of the text as a continuation of its ``prompt`` (if the column
    exists). With ``reference`` (a text, a POSDistribution or a mapping of frequencies):
    ``pos_js``, the Jensen-Shannon divergence of each text's POS distribution from it.
    """
    from tqdm.auto import tqdm

    if "text" not in df.columns:
        raise ValueError(f"add_metrics needs a 'text' column; got columns {list(df.columns)}")
    ref = analysis.pos_distribution(reference) if isinstance(reference, str) else reference
    out = df.copy()
    records = []
    has_prompt = "prompt" in df.columns
    for _, row in tqdm(df.iterrows(), total=len(df), desc="measuring", disable=not progress):
        text = row["text"]
        rec = analysis.repetition_metrics(text)
        dist = analysis.pos_distribution(text)
        rec["pos_words"] = dist.total
        rec.update({f"pos_{c}": f for c, f in dist.frequencies.items()})
        if ref is not None:
            rec["pos_js"] = analysis.pos_divergence(dist, ref) if dist.total else float("nan")
        if lm is not None:
            rec["perplexity"] = (analysis.text_perplexity(lm, text, row["prompt"] if has_prompt else None)
                                 if text else float("nan"))
        records.append(rec)
    for column in records[0] if records else []:
        out[column] = [r[column] for r in records]
    return out


def pooled_pos(df, by: str = "setting"):
    """POS frequencies per group, pooling the words of all its texts (rows: groups, columns: categories)."""
    import pandas as pd

    _require(df, ["pos_words", *(f"pos_{c}" for c in analysis.POS_CATEGORIES), by])
    rows = {}
    for group, part in df.groupby(by, sort=False):
        counts = {c: float((part[f"pos_{c}"] * part["pos_words"]).sum()) for c in analysis.POS_CATEGORIES}
        total = sum(counts.values())
        rows[group] = {c: (v / total if total else float("nan")) for c, v in counts.items()}
    return pd.DataFrame.from_dict(rows, orient="index")[list(analysis.POS_CATEGORIES)]


def summarize(df, by: str = "setting"):
    """One row per setting: mean per-text metrics plus the set-level ones.

    ``self_bleu`` (across prompts: see :func:`_self_bleu_across_prompts`), ``repetition_pct`` (% of texts
    ending in a loop), ``corpus_distinct_1/2/3`` (distinct-n pooled over the setting's texts), ``n_texts``.
    """
    import pandas as pd

    _require(df, ["text", by])
    per_text = [c for c in ("n_words", "distinct_1", "distinct_2", "distinct_3", "repeated_3gram_share",
                            "longest_repeat", "loop_share", "perplexity", "pos_js") if c in df.columns]
    rows = {}
    for group, part in df.groupby(by, sort=False):
        texts = list(part["text"])
        rec = {"n_texts": len(texts)}
        rec.update({c: float(part[c].astype(float).mean()) for c in per_text})
        if "perplexity" in part:
            # the median is robust to the occasional astronomically improbable sample
            rec["median_perplexity"] = float(part["perplexity"].astype(float).median())
        rec["repetition_pct"] = 100.0 * sum(analysis.ends_in_loop(t) for t in texts) / len(texts)
        rec["self_bleu"] = _self_bleu_across_prompts(part)
        for n in (1, 2, 3):
            rec[f"corpus_distinct_{n}"] = analysis.corpus_distinct_n(texts, n)
        rows[group] = rec
    return pd.DataFrame.from_dict(rows, orient="index")


def _self_bleu_across_prompts(part) -> float:
    """Self-BLEU of one setting's texts, compared across prompts.

    With several prompts, the texts of one seed and sample (one per prompt) are compared with one
    another and the scores averaged over seeds and samples: a method that says the same thing
    whatever it is asked scores high. Comparing the samples of *one* prompt instead would give a
    deterministic method (greedy, beam) Self-BLEU 1 for identical copies, which says nothing.
    With a single prompt (or no ``prompt_id`` column) all texts of the setting are compared.
    NaN when there are fewer than two texts to compare.
    """
    if "prompt_id" in part.columns and part["prompt_id"].nunique() > 1:
        keys = [c for c in ("seed", "sample") if c in part.columns]
        groups = [list(g["text"]) for _, g in part.groupby(keys, sort=False)] if keys else [list(part["text"])]
        scores = [analysis.self_bleu(texts) for texts in groups if len(texts) >= 2]
        return sum(scores) / len(scores) if scores else float("nan")
    texts = list(part["text"])
    return analysis.self_bleu(texts) if len(texts) >= 2 else float("nan")


def decoding_comparison(lm: LM, prompts, seeds=(0, 1, 2), methods: Mapping[str, Mapping] | None = None, *,
                        human: Mapping[str, str] | Sequence[str] | None = None, max_length: int = 100,
                        **sweep_kw):
    """A small-scale version of Holtzman et al.'s table: per decoding method, the perplexity of the
    generations under the model, Self-BLEU, repetition %, and distinct-n.

    human: the real continuations of the prompts (same order/ids), added as a "human" row so the
    methods can be compared with real text, as in the paper. Returns ``(table, df)``.
    """
    import pandas as pd

    methods = DECODING_METHODS if methods is None else methods
    df = run_sweep(lm, methods, prompts, seeds, defaults={"max_length": max_length}, **sweep_kw)
    table = summarize(df)
    if human is not None:
        prompt_items = list(prompts.items()) if isinstance(prompts, Mapping) else list(enumerate(prompts))
        human_items = list(human.items()) if isinstance(human, Mapping) else list(enumerate(human))
        if len(human_items) != len(prompt_items):
            raise ValueError(f"human has {len(human_items)} texts but there are {len(prompt_items)} prompts")
        hdf = pd.DataFrame({"setting": "human", "prompt_id": [pid for pid, _ in prompt_items],
                            "prompt": [p for _, p in prompt_items], "text": [t for _, t in human_items]})
        hdf = add_metrics(hdf, lm if sweep_kw.get("perplexity", True) else None)
        table = pd.concat([table, summarize(hdf)])
        df = pd.concat([df, hdf], ignore_index=True)
    columns = [c for c in ("median_perplexity", "self_bleu", "repetition_pct", "corpus_distinct_1",
                           "corpus_distinct_2", "corpus_distinct_3", "repeated_3gram_share", "n_texts")
               if c in table.columns]
    return table[columns], df


def sonnet_parts(number: int = 1, prompt_lines: int = 4, continuation_lines: int = 4) -> tuple[str, str]:
    """A sonnet's first ``prompt_lines`` lines (the prompt) and the next ``continuation_lines``
    lines (the original continuation): for Sonnet 1, lines 1-4 and lines 5-8."""
    from gpt2lab import data

    sonnets = data.sonnets()
    if not 1 <= number <= len(sonnets):
        raise ValueError(f"number must be between 1 and {len(sonnets)}, got {number}")
    lines = sonnets[number - 1].lines
    if prompt_lines < 1 or continuation_lines < 1 or prompt_lines + continuation_lines > len(lines):
        raise ValueError(f"prompt_lines + continuation_lines must be between 2 and {len(lines)} "
                         f"(both >= 1), got {prompt_lines} + {continuation_lines}")
    prompt = "\n".join(lines[:prompt_lines]) + "\n"
    return prompt, "\n".join(lines[prompt_lines:prompt_lines + continuation_lines])


def shakespeare_prompts(n: int = 10, prompt_lines: int = 2, continuation_lines: int = 4,
                        min_lines: int = 6) -> tuple[dict[str, str], dict[str, str]]:
    """``n`` prompts from held-out Shakespeare and their real continuations.

    Speeches of at least ``min_lines`` lines are taken from the validation split of tinyshakespeare
    (text the embedded model never trained on), evenly spaced; the prompt is the speaker's name
    and the first ``prompt_lines - 1`` lines, the continuation the next ``continuation_lines``.
    Returns two dicts keyed by the same prompt ids ("s0", "s1", ...).
    """
    from gpt2lab import data

    if prompt_lines < 2 or continuation_lines < 1 or min_lines < prompt_lines + continuation_lines:
        raise ValueError(f"need prompt_lines >= 2, continuation_lines >= 1 and min_lines >= their sum; got "
                         f"{prompt_lines}, {continuation_lines}, {min_lines}")
    _, valid = data.tinyshakespeare_split()
    speeches = [s.strip("\n").split("\n") for s in valid.split("\n\n")]
    speeches = [s for s in speeches if len(s) >= min_lines and s[0].endswith(":")]
    if not 1 <= n <= len(speeches):
        raise ValueError(f"n must be between 1 and {len(speeches)} (speeches of >= {min_lines} lines), got {n}")
    step = len(speeches) / n
    chosen = [speeches[int(i * step)] for i in range(n)]
    prompts = {f"s{i}": "\n".join(s[:prompt_lines]) + "\n" for i, s in enumerate(chosen)}
    human = {f"s{i}": "\n".join(s[prompt_lines:prompt_lines + continuation_lines]) for i, s in enumerate(chosen)}
    return prompts, human


# ------------------------------------------------------------------ plots

def _require(df, columns):
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"the DataFrame lacks columns {missing}; run run_sweep(..., measure=True) or "
                         "add_metrics(df) first")


def _colors(n: int):
    import matplotlib.pyplot as plt

    # tab10/tab20 without their greys: grey is kept for human text
    if n > 9:
        cmap, skip = plt.get_cmap("tab20"), {14, 15}
    else:
        cmap, skip = plt.get_cmap("tab10"), {7}
    palette = [cmap(i) for i in range(cmap.N) if i not in skip]
    return [palette[i % len(palette)] for i in range(n)]


def plot_pos_by_setting(df, ax=None, by: str = "setting", title: str | None = None):
    """Grouped bar chart: POS categories on the x axis, one coloured bar per setting (pooled words)."""
    import matplotlib.pyplot as plt
    import numpy as np

    table = pooled_pos(df, by)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(8, 1.3 * len(analysis.POS_CATEGORIES)), 4.5))
    n = len(table)
    width = 0.85 / n
    x = np.arange(len(analysis.POS_CATEGORIES))
    for i, (color, (label, row)) in enumerate(zip(_colors(n), table.iterrows())):
        ax.bar(x + (i - (n - 1) / 2) * width, row.values, width, label=str(label), color=color)
    ax.set_xticks(x, analysis.POS_CATEGORIES, rotation=30)
    ax.set_ylabel("share of words")
    ax.set_title(title or "Parts of speech per decoding setting")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: bars stay visible
    return ax


def plot_pos_comparison(texts: Mapping[str, str], ax=None, title: str | None = None):
    """Side-by-side POS bars for a few texts, e.g. ``{"Shakespeare": original, "model": generated}``."""
    import matplotlib.pyplot as plt
    import numpy as np

    if not isinstance(texts, Mapping) or not texts:
        raise ValueError("texts must be a non-empty dict label -> text")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    n = len(texts)
    width = 0.8 / n
    x = np.arange(len(analysis.POS_CATEGORIES))
    for i, (color, (label, text)) in enumerate(zip(_colors(n), texts.items())):
        freqs = analysis.pos_distribution(text).frequencies
        ax.bar(x + (i - (n - 1) / 2) * width, [freqs[c] for c in analysis.POS_CATEGORIES], width,
               label=label, color=color)
    ax.set_xticks(x, analysis.POS_CATEGORIES, rotation=30)
    ax.set_ylabel("share of words")
    ax.set_title(title or "Parts of speech")
    ax.legend()
    return ax


def plot_repetition(df_or_summary, metrics: Sequence[str] = ("distinct_1", "distinct_2", "distinct_3",
                                                             "repeated_3gram_share", "loop_share"), ax=None,
                    title: str | None = None, drop_empty: bool = False):
    """Repetition metrics per setting (bars grouped by metric, one colour per setting).

    Accepts the per-text DataFrame of :func:`run_sweep` (averaged per setting) or a summary.
    ``drop_empty=True`` leaves out the metrics that are 0 for every setting (the axis lists those drawn).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    table = df_or_summary
    _require(table, list(metrics))
    if "setting" in table.columns:
        table = table.groupby("setting", sort=False)[list(metrics)].mean()
    else:
        table = table[list(metrics)]
    if drop_empty:  # a metric that is 0 for every setting would be an empty group of bars
        metrics = [m for m in metrics if table[m].astype(float).abs().sum() > 0] or list(metrics)
        table = table[metrics]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(7, 1.8 * len(metrics)), 4.5))
    n = len(table)
    width = 0.85 / n
    x = np.arange(len(metrics))
    for i, (color, (label, row)) in enumerate(zip(_colors(n), table.iterrows())):
        ax.bar(x + (i - (n - 1) / 2) * width, row.values.astype(float), width, label=str(label), color=color)
    ax.set_xticks(x, [m.replace("_", " ") for m in metrics])
    ax.set_ylim(0, 1.05)
    ax.set_title(title or "Repetition per decoding setting (distinct-n high = varied; repeated share high = loops)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


def plot_decoding_comparison(table, metrics: Sequence[str] = ("median_perplexity", "self_bleu",
                                                              "repetition_pct", "corpus_distinct_2"),
                             axes=None, drop_empty: bool = False):
    """One small panel per metric, one bar per decoding method (the "human" row, if any, in grey).

    ``drop_empty=True`` draws no panel for a metric that is 0 (or NaN) for every method.
    """
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in table.columns]
    if drop_empty:
        metrics = [m for m in metrics if table[m].astype(float).fillna(0).abs().sum() > 0]
    if not metrics:
        raise ValueError(f"table has none of the metrics; its columns: {list(table.columns)}")
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 4), squeeze=False)
        axes = axes[0]
    labels = [str(i) for i in table.index]
    colors = ["0.6" if lab == "human" else c for lab, c in zip(labels, _colors(len(labels)))]
    for ax, metric in zip(axes, metrics):
        values = table[metric].astype(float)
        ax.barh(labels, values, color=colors)
        if metric.endswith("perplexity") and values.max() / max(values.min(), 1e-9) > 50:
            ax.set_xscale("log")
        ax.set_title(metric.replace("_", " "))
        ax.invert_yaxis()
    for ax in axes[1:]:
        ax.set_yticklabels([])
    return axes

