"""Small helpers the course notebooks share: where they run, and how tokens are shown.

* :func:`in_colab` tells a notebook whether it runs on Google Colab (where gpt2lab must be
  pip-installed first);
* :func:`tokens_html` / :func:`show_tokens` draw a text as coloured token boxes, the way the course
  talks about tokens: byte-level markers (``Ġ`` for a space, ``Ċ`` for a newline) or readable text;
* :func:`tokenizer_explorer` is a widget: type a text, pick a tokenizer, see its tokens and counts.
"""
from __future__ import annotations

import html
import sys
from collections.abc import Mapping
from typing import Literal, get_args

from gpt2lab.widgets.common import task_line, with_static_view

__all__ = ["TokenView", "TOKENIZER_TASK", "TOKEN_VIEWS", "in_colab", "tokens_html", "show_tokens", "tokenizer_explorer"]

# Soft background colours that stay readable in light and dark themes (text is forced dark).
_TOKEN_COLOURS = ("#ffd8a8", "#c3fae8", "#d0bfff", "#ffc9c9", "#b2f2bb", "#a5d8ff", "#fcc2d7", "#ffec99")
TokenView = Literal["markers", "text"]
TOKEN_VIEWS = get_args(TokenView)
TOKENIZER_TASK = ("type one word in several forms (play, playing, replayed) and switch tokenizers: which one keeps "
                  "it whole, and how many tokens does each need for your text?")


def in_colab() -> bool:
    """True inside a Google Colab kernel (Colab imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def _ids(tokenizer, text: str) -> list[int]:
    # verbose=False: a text longer than the model's context is fine to split into tokens here; no warning
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def _token_strings(tokenizer, ids: list[int], view: str) -> list[str]:
    if view == "markers":
        # The byte-level vocabulary entries themselves: "Ġthe", "Ċ", "Ã©" ...
        return [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    return [tokenizer.decode([i]) for i in ids]


def tokens_html(tokenizer, text: str, view: TokenView = "markers", show_ids: bool = False) -> str:
    """HTML that draws ``text`` as the tokens ``tokenizer`` splits it into, one coloured box each.

    view: "markers" shows the vocabulary entries as stored (``Ġ`` = space, ``Ċ`` = newline);
        "text" shows what each token decodes to (spaces shown as ``·``, newlines as ``↵``).
    show_ids: print each token's id under it.
    Hovering a box shows the token id either way.
    """
    if view not in TOKEN_VIEWS:
        raise ValueError(f"view={view!r} is not known; use one of {TOKEN_VIEWS}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    ids = _ids(tokenizer, text)
    pieces = []
    for i, (tid, tok) in enumerate(zip(ids, _token_strings(tokenizer, ids, view))):
        if view == "text":
            tok = tok.replace(" ", "·").replace("\n", "↵")
        label = html.escape(tok) if tok else "&nbsp;"
        colour = _TOKEN_COLOURS[i % len(_TOKEN_COLOURS)]
        under = f"<br><small style='color:#555'>{tid}</small>" if show_ids else ""
        pieces.append(f"<span title='id {tid}' style='display:inline-block;background:{colour};color:#111;"
                      f"font-family:monospace;padding:1px 3px;margin:1px;border-radius:3px;"
                      f"text-align:center'>{label}{under}</span>")
    summary = (f"<div style='font-size:90%;color:#666'>{len(text)} characters &rarr; {len(ids)} tokens"
               f"{f' ({len(text) / len(ids):.2f} characters per token)' if ids else ''}</div>")
    return f"<div class='gpt2lab-tokens' style='line-height:2'>{''.join(pieces)}</div>{summary}"


def show_tokens(tokenizer, text: str, view: TokenView = "markers", show_ids: bool = False) -> list[str]:
    """Display :func:`tokens_html` in the notebook and return the tokens as strings."""
    from IPython.display import HTML, display

    display(HTML(tokens_html(tokenizer, text, view=view, show_ids=show_ids)))
    ids = _ids(tokenizer, text)
    return _token_strings(tokenizer, ids, view)


def tokenizer_explorer(tokenizers: Mapping[str, object], text: str = "To be, or not to be: that is the question."):
    """A widget to compare tokenizers on any text.

    tokenizers: display name -> tokenizer (anything with ``__call__``, ``decode`` and
        ``convert_ids_to_tokens``, such as a ``GPT2TokenizerFast``).
    Returns a ``VBox``; its ``.text``, ``.choice``, ``.view`` and ``.tokens`` attributes are the
    text box, the tokenizer buttons, the view buttons and the HTML the tokens are drawn in.
    """
    import ipywidgets as widgets

    if not isinstance(tokenizers, Mapping) or not tokenizers:
        raise ValueError("tokenizers must be a non-empty mapping of name -> tokenizer, "
                         f"got {type(tokenizers).__name__}")
    for name, tok in tokenizers.items():
        if not callable(tok) or not hasattr(tok, "decode"):
            raise TypeError(f"tokenizers[{name!r}] must be a tokenizer object (e.g. lm.tokenizer or "
                            f"gpt2lab.data.gpt2_tokenizer()), got {type(tok).__name__}")
    names = list(tokenizers)
    text_box = widgets.Textarea(value=text, description="Text", layout=widgets.Layout(width="95%", height="5em"))
    choice = widgets.ToggleButtons(options=names, value=names[0], description="Tokenizer")
    view = widgets.ToggleButtons(options=list(TOKEN_VIEWS), value="markers", description="Show")
    shown = widgets.HTML()
    table = widgets.HTML()

    def update(_change=None):
        shown.value = tokens_html(tokenizers[choice.value], text_box.value, view=view.value)
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{len(_ids(tok, text_box.value))}"
            f"</td><td>{len(tok)}</td></tr>" for name, tok in tokenizers.items())
        table.value = ("<table><tr><th>tokenizer</th><th>tokens for this text</th><th>vocabulary size</th></tr>"
                       f"{rows}</table>")

    for control in (text_box, choice, view):
        control.observe(update, names="value")
    update()
    box = widgets.VBox([task_line(TOKENIZER_TASK), text_box, choice, view, shown, table])
    box.text, box.choice, box.view, box.tokens, box.counts = text_box, choice, view, shown, table
    return with_static_view(box)
