"""The memorisation explorer of notebook 11: sample a few texts at a chosen temperature and see how
much of each is copied verbatim from the training data, by n-grams of a chosen size.

:func:`novelty_samples` does the work, :func:`novelty_html` shows it and :func:`memorisation_explorer`
wires them to the sliders. The n-gram index of each n is built once and kept, and so are the texts
sampled for each (temperature, seed): moving the n-gram slider only re-checks them.
"""
from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

from gpt2lab.widgets.common import check_ranges, live_explorer, task_line

if TYPE_CHECKING:
    from gpt2lab.loading import LM

__all__ = ["MEMORISATION_TASK", "sample_texts", "novelty_samples", "novelty_html", "memorisation_explorer"]

MEMORISATION_TASK = ("lower the temperature and watch the copied share rise; then move the n-gram size: "
                     "small n counts ordinary shared phrases, large n only real copies.")


def novelty_samples(lm: LM, index, temperature: float, seed: int = 0, *, prefix: str | None = None,
                    truncate: str | None = None, max_length: int = 40, samples: int = 3, texts=None):
    """Sample ``samples`` texts (or take ``texts``) and check each against ``index`` (a
    :class:`~gpt2lab.training.memorisation.NoveltyIndex`). Returns a list of (text, NoveltyReport)."""
    if texts is None:
        texts = sample_texts(lm, temperature, seed, prefix=prefix, truncate=truncate, max_length=max_length,
                             samples=samples)
    return [(text, index.check(text)) for text in texts]


def sample_texts(lm: LM, temperature: float, seed: int, *, prefix: str | None = None, truncate: str | None = None,
                 max_length: int = 40, samples: int = 3) -> list[str]:
    """``samples`` continuations of ``prefix`` (plain sampling at ``temperature``), cut at ``truncate``.
    Without a prefix, sampling starts from the tokenizer's beginning-of-text token (else its end-of-text token)."""
    from gpt2lab.generation.pipeline import generate

    start = prefix or lm.tokenizer.bos_token or lm.tokenizer.eos_token
    if not start:
        raise ValueError("this tokenizer has no beginning- or end-of-text token to start from; give a prefix")
    where = {"prefix": start}
    if truncate:
        where["truncate"] = truncate
    return list(generate(lm, **where, include_prefix=False, max_length=max_length, num_return_sequences=samples,
                         seed=seed, mode="sample", temperature=temperature))


def novelty_html(rows, n: int) -> str:
    """One line per sampled text: its share of copied ``n``-grams, the flag, and the text (class
    ``gpt2lab-novelty``; each line has class ``gpt2lab-novelty-row`` and ``data-copied`` in percent)."""
    lines = []
    for text, report in rows:
        flag = " <b style='color:#c92a2a'>FLAGGED</b>" if report.flagged else ""
        if report.copied_fraction is None:  # shorter than n words: no n-gram to check
            data, shown = "n/a", "n/a"
        else:
            share = 100 * report.copied_fraction
            data, shown = f"{share:.1f}", f"{share:5.1f} %"
        lines.append(f"<li class='gpt2lab-novelty-row' data-copied='{data}'><b>{shown}</b> copied "
                     f"{n}-grams{flag}: <code style='white-space:pre-wrap'>{html.escape(text)}</code></li>")
    return f"<ol class='gpt2lab-novelty'>{''.join(lines)}</ol>"


def memorisation_explorer(lm: LM, training, *, prefix: str | None = None, truncate: str | None = None,
                          max_length: int = 40, samples: int = 3, temperature: float = 0.7, n: int = 8,
                          seed: int = 0, level: str = "word"):
    """An ipywidgets explorer: temperature (0.1-2), n-gram size (2-12) and seed (0-20) sliders next to
    ``samples`` texts sampled from ``lm`` and the share of each one's n-grams found in the training data.

    training: the training texts (a list of strings or one string), or a function n -> NoveltyIndex
        (e.g. ``lambda n: NoveltyIndex.from_run("my-run", n=n)``).
    prefix / truncate: where sampling starts and the marker it stops at (a fine-tuned run's
        ``info["start_token"]`` / ``info["end_token"]``).
    Returns a ``VBox``; ``.controls`` maps names to the sliders, ``.outputs["samples"]`` is the HTML
    widget, ``.last`` holds the shown (text, NoveltyReport) pairs.
    """
    import ipywidgets as w

    from gpt2lab.training.memorisation import NoveltyIndex

    if callable(training):
        build: Callable = training
    else:
        texts = [training] if isinstance(training, str) else list(training)
        if not texts:
            raise ValueError("training must hold at least one text (or be a function n -> NoveltyIndex)")

        def build(size: int):
            return NoveltyIndex(texts, n=size, level=level, tokenizer=lm.tokenizer if level == "token" else None)
    check_ranges(n=(n, 2, 12), temperature=(temperature, 0.1, 2.0), seed=(seed, 0, 20))
    style = {"description_width": "90px"}
    controls = {
        "temperature": w.FloatSlider(value=temperature, min=0.1, max=2.0, step=0.1, description="temperature",
                                     continuous_update=False, style=style),
        "n": w.IntSlider(value=n, min=2, max=12, description="n-gram size", continuous_update=False, style=style),
        "seed": w.IntSlider(value=seed, min=0, max=20, description="seed", continuous_update=False, style=style),
    }
    status = w.HTML()
    shown = w.HTML()
    indexes: dict[int, object] = {}
    sampled: dict[tuple, list[str]] = {}

    def refresh(_change=None):
        size, temp, chosen_seed = controls["n"].value, controls["temperature"].value, controls["seed"].value
        if size not in indexes:
            status.value = f"<i>indexing the training {size}-grams ...</i>"
            indexes[size] = build(size)
        key = (round(temp, 6), chosen_seed)
        if key not in sampled:
            status.value = "<i>sampling ...</i>"
            sampled[key] = sample_texts(lm, temp, chosen_seed, prefix=prefix, truncate=truncate,
                                        max_length=max_length, samples=samples)
        box.last = novelty_samples(lm, indexes[size], temp, chosen_seed, texts=sampled[key])
        shown.value = novelty_html(box.last, size)
        status.value = ""

    box = w.VBox([task_line(MEMORISATION_TASK), w.HBox(list(controls.values())), status, shown])
    return live_explorer(box, controls, refresh, {"samples": shown})
