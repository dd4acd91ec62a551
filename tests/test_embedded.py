"""The embedded model: shipped within the size budget, documented, and writing Shakespeare-like text."""
import json
import re

from gpt2lab import data
from gpt2lab.loading import embedded_path


def test_files_and_size_budget():
    folder = embedded_path()
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md", "training_stats.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)  # no pickles shipped
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 15_000_000


def test_model_card_states_the_measured_figures():
    folder = embedded_path()
    card = (folder / "MODEL_CARD.md").read_text()
    stats = json.loads((folder / "training_stats.json").read_text())
    assert f"{stats['parameters']:,}" in card
    assert str(stats["val_bits_per_char"]) in card
    assert "python -m gpt2lab.embedded_recipe" in card and "first 90 %" in card
    evaluation = json.loads((folder / "evaluation.json").read_text())
    # the card reports the benchmark's comparison with the best n-gram as measured, whichever way it went
    assert f"{evaluation['best_ngram']['bits_per_char']:.4f}" in card
    assert f"{evaluation['embedded']['bits_per_char']:.4f}" in card
    beats = evaluation["embedded"]["bits_per_char"] < evaluation["best_ngram"]["bits_per_char"]
    assert ("beats every n-gram model" in card) == beats


def test_samples_look_like_the_corpus(embedded_lm):
    import torch

    torch.manual_seed(0)
    ids = embedded_lm.encode("\n")
    out = embedded_lm.model.generate(ids, max_new_tokens=250, do_sample=True, top_k=40, temperature=0.8)
    text = embedded_lm.decode(out[0])
    speaker_lines = [line for line in text.splitlines() if re.fullmatch(r"[A-Z][A-Za-z ]{1,30}:", line.strip())]
    assert speaker_lines, text  # speaker names such as "ROMEO:" on a line of their own
    train, _ = data.tinyshakespeare_split()
    known = set(re.findall(r"[a-z]+", train.lower()))
    words = re.findall(r"[a-z]+", text.lower())
    assert len(words) > 50
    assert sum(w in known for w in words) / len(words) > 0.9, text  # real words, not fragments


def test_held_out_text_is_predicted_well(embedded_lm):
    from gpt2lab.basics.evaluation import score_text

    _, val = data.tinyshakespeare_split()
    score = score_text(embedded_lm, val[:3000])
    assert score.bits_per_char < 2.6  # a uniform guess over the vocabulary would be ~4 bits/char


def test_the_card_figure_is_what_the_shipped_weights_score(embedded_lm):
    """The held-out bits/char in the statistics (and so on the card) is measured, not written in: the
    shipped float16 weights score the same on the whole validation split."""
    from gpt2lab.basics.evaluation import score_text
    from gpt2lab.loading import embedded_path

    stats = json.loads((embedded_path() / "training_stats.json").read_text())
    _, val = data.tinyshakespeare_split()
    score = score_text(embedded_lm, val, stride=stats["val_stride"])
    assert score.tokens == stats["val_tokens"]
    assert abs(score.bits_per_char - stats["val_bits_per_char"]) < 2e-3, score.bits_per_char


def test_the_model_shows_what_gpt2_shows(embedded_lm):
    """Issue 18: induction heads, copying of held-out text and whole-word tokens, measured again on the shipped
    weights. The statistics (and so the card) hold these very figures, and the card says truly which targets are
    met (none by this model: issue 18's attempt, not shipped, is on the card beside it)."""
    from gpt2lab.attention.induction import gpt2_traits
    from gpt2lab.embedded_recipe import TARGETS

    stats = json.loads((embedded_path() / "training_stats.json").read_text())
    card = (embedded_path() / "MODEL_CARD.md").read_text()
    train, val = data.tinyshakespeare_split()
    measured = gpt2_traits(embedded_lm, train, val)
    assert measured["induction_head"] == stats["traits"]["induction_head"]
    for key, value in stats["traits"].items():
        if key != "induction_head":
            assert abs(measured[key] - value) <= 2e-3 * max(1.0, abs(value)), (key, measured[key], value)
    for key, _, target, passes in TARGETS:
        verdict = "met" if passes(measured[key]) else "**not met**"
        assert f"| {target} | {stats['traits'][key]} ({verdict}) |" in card, key
