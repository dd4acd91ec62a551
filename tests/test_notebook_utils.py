"""Helpers the notebooks share: Colab detection, token rendering and the tokenizer explorer."""
from __future__ import annotations

import re
import sys
import types

import pytest

from gpt2lab.widgets.tokens import in_colab, tokenizer_explorer, tokens_html


def test_in_colab_follows_google_colab_module(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert in_colab() is True


def _spans(html: str) -> list[str]:
    return re.findall(r"<span title='id (\d+)'", html)


def test_tokens_html_shows_gpt2_markers_and_one_box_per_token(gpt2_tokenizer):
    text = "Hello world\n<b>"
    ids = gpt2_tokenizer(text)["input_ids"]
    html = tokens_html(gpt2_tokenizer, text)
    assert _spans(html) == [str(i) for i in ids]  # one box per token, in order, with its id
    assert ">Ġworld<" in html and ">Ċ<" in html  # byte-level markers as stored in the vocabulary
    assert "<b>" not in html and "&lt;" in html  # the user's text is escaped, not interpreted
    assert f"{len(text)} characters &rarr; {len(ids)} tokens" in html


def test_tokens_html_text_view_and_ids(gpt2_tokenizer):
    html = tokens_html(gpt2_tokenizer, "to be\n", view="text", show_ids=True)
    assert ">·be" in html and ">↵" in html
    assert f"<small style='color:#555'>{gpt2_tokenizer(' be')['input_ids'][0]}</small>" in html


def test_tokens_html_rejects_bad_arguments(gpt2_tokenizer):
    with pytest.raises(ValueError, match="view='bytes' is not known"):
        tokens_html(gpt2_tokenizer, "x", view="bytes")
    with pytest.raises(TypeError, match="text must be a string, got int"):
        tokens_html(gpt2_tokenizer, 42)


def test_tokenizer_explorer_updates_when_controls_change(gpt2_tokenizer):
    from gpt2lab.basics.bpe import train_bpe

    small = train_bpe("to be or not to be " * 50, vocab_size=270)
    box = tokenizer_explorer({"GPT-2": gpt2_tokenizer, "tiny": small}, text="to be or not")
    first = box.tokens.value
    assert _spans(first) == [str(i) for i in gpt2_tokenizer("to be or not")["input_ids"]]
    box.choice.value = "tiny"
    assert _spans(box.tokens.value) == [str(i) for i in small("to be or not")["input_ids"]]
    box.text.value = "question"
    assert _spans(box.tokens.value) == [str(i) for i in small("question")["input_ids"]]
    counts = dict(re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td>", box.counts.value))
    assert counts == {"GPT-2": str(len(gpt2_tokenizer("question")["input_ids"])),
                      "tiny": str(len(small("question")["input_ids"]))}
    box.view.value = "text"
    assert "Ġ" not in box.tokens.value


def test_tokenizer_explorer_needs_tokenizers():
    with pytest.raises(ValueError, match="tokenizers must be a non-empty mapping"):
        tokenizer_explorer({})
    with pytest.raises(ValueError, match="got list"):
        tokenizer_explorer([1])
