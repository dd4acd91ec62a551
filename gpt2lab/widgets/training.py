"""The training-snapshots explorer of notebook 04: slide over the snapshots kept while a GPT trained and
read what it wrote at each one, at the temperature you choose.

:func:`word_share` measures how much of a text is made of real words (words of the training text),
:func:`sample_html` shows one sample, and :func:`training_explorer` wires them to a step slider, a
temperature slider and a seed over a :class:`~gpt2lab.model.snapshots.Snapshots`. A sample seen before
is read from a cache; a new one is one short generation with a small model.
"""
from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable

from gpt2lab.model.snapshots import Snapshots
from gpt2lab.widgets.common import check_ranges, live_explorer, task_line

__all__ = ["TRAINING_TASK", "words_of", "word_share", "sample_html", "training_explorer"]

TRAINING_TASK = ("drag the training step from 0 to the end: the sample turns from random letters into words and "
                 "speaker names; then, at the last step, raise the temperature towards 2 and watch it fall apart.")
_WORD = re.compile(r"[a-z']+")


def words_of(text: str) -> list[str]:
    """The words of ``text``: runs of letters (and apostrophes), lower-cased."""
    return _WORD.findall(text.lower())


def word_share(text: str, vocabulary: set[str]) -> float | None:
    """The share of the words of ``text`` found in ``vocabulary`` (None when ``text`` has no word)."""
    words = words_of(text)
    return sum(w in vocabulary for w in words) / len(words) if words else None


def sample_html(step: int, text: str, loss: float | None, share: float | None) -> str:
    """One sample and what is known of its step, as HTML (``gpt2lab-sample`` holds the text, with its step
    in ``data-step``; ``gpt2lab-sample-info`` the loss and the word share)."""
    facts = [f"step {step}"]
    facts.append("before any training" if loss is None else f"training loss {loss:.2f} nats per token")
    if share is not None:
        facts.append(f"{share:.0%} of its words are words of the training text")
    return (f"<div class='gpt2lab-sample-info'>{html.escape('; '.join(facts))}</div>"
            f"<pre class='gpt2lab-sample' data-step='{step}' style='white-space:pre-wrap;border-left:3px solid #999;"
            f"padding-left:8px'>{html.escape(text)}</pre>")


def training_explorer(snapshots: Snapshots, decode: Callable[[list[int]], str], prompt_ids, *,
                      max_new_tokens: int = 120, temperature: float = 0.8, seed: int = 0,
                      vocabulary: Iterable[str] | None = None):
    """An ipywidgets explorer over ``snapshots``: a training-step slider (the steps kept), a temperature
    slider (0.1 to 2) and a seed (0 to 20) next to ``prompt_ids`` continued by ``max_new_tokens`` tokens
    sampled from the weights of that step (``snapshots.sample``), shown with ``decode``; with a
    ``vocabulary`` (the words of the training text), the share of the continuation's words that are real
    words.

    Returns a ``VBox``; ``.controls`` maps names to the controls, ``.outputs`` names the HTML widget,
    ``.refresh()`` redraws and ``.last`` holds (step, temperature, seed, text) of what is shown.
    """
    import ipywidgets as w

    if not snapshots.steps:
        raise ValueError("snapshots holds no step")
    check_ranges(temperature=(temperature, 0.1, 2.0), seed=(seed, 0, 20), max_new_tokens=(max_new_tokens, 1, 1000))
    words = {x.lower() for x in vocabulary} if vocabulary is not None else None
    style, layout = {"description_width": "100px"}, w.Layout(width="520px")
    controls = {
        "step": w.SelectionSlider(options=snapshots.steps, value=snapshots.steps[0], description="training step",
                                  continuous_update=False, style=style, layout=layout),
        "temperature": w.FloatSlider(value=temperature, min=0.1, max=2.0, step=0.1, readout_format=".1f",
                                     description="temperature", continuous_update=False, style=style,
                                     layout=layout),
        "seed": w.IntSlider(value=seed, min=0, max=20, description="seed", continuous_update=False, style=style,
                            layout=layout),
    }
    shown = w.HTML(layout=w.Layout(width="900px"))
    cache: dict = {}
    n_prompt = len(prompt_ids)

    def refresh(*_):
        key = (controls["step"].value, round(controls["temperature"].value, 4), controls["seed"].value)
        if key not in cache:
            ids = snapshots.sample(key[0], prompt_ids, max_new_tokens, temperature=key[1], seed=key[2])
            cache[key] = decode(ids), decode(ids[n_prompt:])
        text, continuation = cache[key]
        share = word_share(continuation, words) if words is not None else None
        shown.value = sample_html(key[0], text, snapshots.loss.get(key[0]), share)
        box.last = (*key, text)

    box = w.VBox([task_line(TRAINING_TASK), *controls.values(), shown])
    return live_explorer(box, controls, refresh, {"sample": shown})
