"""Every explorer of the course, as Python widget objects (no browser): each opens with a one-line
guided task, no value its controls allow raises or shows an error, and the explorers of notebooks 04,
06, 07 (training snapshots, induction heads forming, the logit lens) and 09-11 (parameter settings,
word importance, memorisation) show what they should.

The sweep sets every control to its lowest and highest allowed value (every option of a dropdown or
toggle, an empty and an over-long text in a text box, both states of a check box) and, after each,
checks that no exception escaped and no shown HTML or output holds an error.
"""
from __future__ import annotations

from pathlib import Path

import ipywidgets as w
import lesson_toys
import pytest

from gpt2lab import data
from gpt2lab.experiments import sweep
from gpt2lab.widgets import (
    STATIC_CLASS,
    TASK_CLASS,
    attention_explorer,
    decoding_explorer,
    importance_explorer,
    induction_explorer,
    lens_explorer,
    memorisation_explorer,
    ngram_explorer,
    settings_explorer,
    tokenizer_explorer,
    training,
    training_explorer,
)
from gpt2lab.widgets.memorisation import sample_texts

ROOT = Path(__file__).resolve().parents[1]
LONG_TEXT = "the quick brown fox jumps over the lazy dog " * 300  # far past any context here


@pytest.fixture(scope="module")
def lm():
    import gpt2lab

    return gpt2lab.load("embedded", device="cpu", verbose=False)


@pytest.fixture(scope="module")
def sonnet():
    return sweep.sonnet_parts(1)


@pytest.fixture(scope="module")
def char_run():
    """(snapshots, decode, prompt, live, vocabulary) of a character GPT trained for 300 steps (~5 s)."""
    return lesson_toys.char_snapshots()


@pytest.fixture(scope="module")
def toy_run():
    """The induction toy trained for 600 steps, scores and attention recorded every 100 (~8 s)."""
    return lesson_toys.induction_toy()


def extremes(control) -> list:
    """The values of ``control`` a sweep tries: both ends of a slider, every option of a choice, an empty,
    a blank and an over-long text, both states of a check box, 0 and a large seed for a number box."""
    if isinstance(control, w.FloatLogSlider):
        return [control.base ** control.min, control.base ** control.max]
    if isinstance(control, (w.IntSlider, w.FloatSlider, w.BoundedIntText)):
        return [control.min, control.max]
    if isinstance(control, (w.Dropdown, w.ToggleButtons, w.SelectionSlider)):
        return list(control._options_values)
    if isinstance(control, (w.Text, w.Textarea)):
        return ["", "   ", LONG_TEXT]
    if isinstance(control, w.Checkbox):
        return [not control.value, control.value]
    if isinstance(control, w.IntText):
        return [0, 2**31 - 1]
    raise AssertionError(f"no sweep values for {type(control).__name__}")


def shown_errors(box) -> list[str]:
    """Error outputs and tracebacks anywhere in the widget tree under ``box``."""
    found, todo = [], [box]
    while todo:
        widget = todo.pop()
        todo.extend(getattr(widget, "children", ()))
        if isinstance(widget, w.HTML) and "Traceback" in widget.value:
            found.append(widget.value)
        if isinstance(widget, w.Output):
            found += [str(o) for o in widget.outputs if o.get("output_type") == "error" or "Traceback" in str(o)]
    return found


def sweep_controls(box, controls: dict, after=None) -> int:
    """Set every control to each of its :func:`extremes` (then back to where it was), click every button;
    returns the count. (The importance explorer's sliders only set up its search: its button, swept last,
    runs it at the starting settings; its slowest bounds run in their own test below.)"""
    moves = 0
    for name, control in controls.items():
        if isinstance(control, w.Button):
            control.click()
            moves += 1
            continue
        start = control.value
        for value in extremes(control):
            control.value = value  # the observers run here: an exception would escape
            moves += 1
            assert shown_errors(box) == [], f"{name}={value!r}: {shown_errors(box)}"
            if after is not None:
                after(name, value)
        control.value = start
    return moves


def task_of(box) -> str:
    first = box.children[0]
    assert isinstance(first, w.HTML) and TASK_CLASS in first.value, "the explorer does not open with its task"
    return first.value


# ---------------------------------------------------------------- every explorer

def _all_explorers(lm, sonnet, gpt2_tokenizer, char_run, toy_run):
    train, valid = data.tinyshakespeare_split()
    prompt, original = sonnet
    ngram = ngram_explorer(train[:20_000], valid[:2_000], tokenizer=gpt2_tokenizer, max_n=6, sample_length=40)
    tokens = tokenizer_explorer({"gpt2": gpt2_tokenizer, "shakespeare": lm.tokenizer})
    attention = attention_explorer(lm, max_tokens=24)
    decoding = decoding_explorer(lm, sample_tokens=6, n_samples=2)
    settings = settings_explorer(lm, prompt, reference=original, max_length=20)
    importance = importance_explorer(lm, "To be, or not to be", steps=10, samples=1, run=False)
    memorisation = memorisation_explorer(lm, train[:20_000], prefix="ROMEO:", max_length=12, samples=2)
    lens = lens_explorer(lm, "ROMEO:\nI will go.\n\nJULIET:\n", top_k=5)
    snapshots, decode, prompt, _, vocabulary = char_run
    training = training_explorer(snapshots, decode, prompt, max_new_tokens=20, vocabulary=vocabulary)
    toy = induction_explorer(toy_run)
    return {
        "ngram": (ngram, {"n": ngram.n, "level": ngram.level, "smoothing": ngram.smoothing, "k": ngram.k,
                          "seed": ngram.seed}),
        "tokenizer": (tokens, {"text": tokens.text, "choice": tokens.choice, "view": tokens.view}),
        "attention": (attention.widget, {"text": attention.text_box, "layer": attention.layer_selector,
                                         "head": attention.head_selector}),
        "decoding": (decoding, decoding.controls),
        "settings": (settings, settings.controls),
        "importance": (importance, importance.controls),
        "memorisation": (memorisation, memorisation.controls),
        "lens": (lens, lens.controls),
        "training": (training, training.controls),
        "induction": (toy, toy.controls),
    }


def test_every_explorer_opens_with_a_task_and_no_allowed_value_raises(lm, sonnet, gpt2_tokenizer, char_run, toy_run,
                                                                     caplog, recwarn):
    """...and no library warning reaches the learner (a notebook would show it under the explorer)."""
    import logging

    explorers = _all_explorers(lm, sonnet, gpt2_tokenizer, char_run, toy_run)
    caplog.set_level(logging.WARNING)
    assert len(explorers) == 10
    for name, (box, controls) in explorers.items():
        task = task_of(box)
        assert "Try:" in task and "\n" not in task, f"{name}: {task}"
        moves = sweep_controls(box, controls)
        assert moves >= len(controls), name
        assert shown_errors(box) == [], name
        assert [r.getMessage() for r in caplog.records] == [], f"{name} logged warnings"
        assert [str(w.message) for w in recwarn] == [], f"{name} warned"


def test_every_explorer_carries_a_static_picture_of_itself(lm, sonnet, gpt2_tokenizer, char_run, toy_run):
    """Displayed, an explorer offers its live view and a static text/html picture: its task, its controls'
    values and what it shows (for an HTML export with no widget state, where the live view cannot run)."""
    explorers = _all_explorers(lm, sonnet, gpt2_tokenizer, char_run, toy_run)
    shows = {"ngram": "gpt2lab-ngram-report", "tokenizer": "gpt2lab-tokens", "attention": "data:image/png;base64,",
             "decoding": "gpt2lab-distribution", "settings": "gpt2lab-continuation", "importance": "lambda",
             "memorisation": "gpt2lab-novelty-row", "lens": "gpt2lab-lens", "training": "gpt2lab-sample",
             "induction": "gpt2lab-head-scores"}
    for name, (box, _) in explorers.items():
        bundle = box._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle, name
        picture = bundle["text/html"]
        assert picture.startswith(f"<div class='{STATIC_CLASS}'>") and TASK_CLASS in picture, name
        assert shows[name] in picture, f"{name}: the picture lacks {shows[name]!r}"
    decoding, controls = explorers["decoding"]
    assert "<b>temperature</b>: 0.70" in decoding._repr_mimebundle_()["text/html"]
    controls["temperature"].value = 1.5  # the picture is taken when displayed: it follows the controls
    assert "<b>temperature</b>: 1.50" in decoding._repr_mimebundle_()["text/html"]
    assert "data:image/png;base64," in decoding._repr_mimebundle_()["text/html"]  # the chart


def test_course_html_shows_an_explorer_without_a_kernel(tmp_path, monkeypatch):
    """The course runner executes a notebook and writes HTML without widget state: the explorer's
    static picture is in the page instead of a bare ``VBox(...)``, and the live view is not."""
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("run_course", ROOT / "scripts" / "run_course.py")
    run_course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_course)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from gpt2lab import data\nfrom gpt2lab.widgets import tokenizer_explorer\n"
        "tokenizer_explorer({'GPT-2': data.gpt2_tokenizer()}, text='Hello there, world')"),
        # output captured by an Output widget while the runner executes (as the importance explorer's progress)
        nbformat.v4.new_code_cell("import ipywidgets as w\nout = w.Output()\nwith out:\n    print('captured')\nout")]
    path = tmp_path / "00_explorer.ipynb"
    nbformat.write(nb, str(path))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    executed, _, error = run_course.execute(path, timeout=120)
    assert error is None, error
    assert "widgets" in executed.metadata  # the executed notebook has widget state; its page must not
    target = tmp_path / "00_explorer.html"
    run_course.write_html(executed, target)
    page = target.read_text()
    assert STATIC_CLASS in page and TASK_CLASS in page and "gpt2lab-tokens" in page
    assert "Hello" in page and "VBox(children" not in page
    assert "application/vnd.jupyter.widget-view+json" not in page  # no widget state: no dead live view


def test_importance_explorer_at_its_slowest_bounds_is_refused_nowhere(lm):
    """The largest steps and samples the sliders allow run (on a short prompt, where the search settles
    early) and show an answer."""
    box = importance_explorer(lm, "To be", steps=10, samples=1, run=False)
    box.controls["steps"].value, box.controls["samples"].value = 300, 16
    box.controls["rate"].value = 1.0
    box.explain()
    assert box.last is not None and box.last.settings["steps"] == 300 and box.last.settings["samples"] == 16
    assert "gpt2lab-ranking" in box.outputs["result"].value and shown_errors(box) == []


# ---------------------------------------------------------------- the explorers of notebooks 09-11

def test_settings_explorer_follows_its_mode_and_seed(lm, sonnet):
    prompt, original = sonnet
    box = settings_explorer(lm, prompt, reference=original, max_length=20)
    shown = box.outputs["text"]
    assert "gpt2lab-continuation" in shown.value and "perplexity" in shown.value and "verdict" not in shown.value
    assert box.outputs["chart"].value[:4] == b"\x89PNG"
    assert not box.controls["top_p"].disabled and box.controls["top_k"].disabled  # sample-top-p: top_p only
    box.controls["mode"].value = "greedy"
    assert all(box.controls[n].disabled for n in ("temperature", "top_p", "top_k", "seed"))
    greedy = box.last[0].text
    box.controls["seed"].value = 7
    assert box.last[0].text == greedy  # greedy ignores the seed
    box.controls["mode"].value = "sample"
    sampled = box.last[0].text
    box.controls["temperature"].value = 3.0
    hot = box.last[0]
    assert hot.text != sampled
    box.controls["temperature"].value = 0.2
    assert box.last[0].perplexity < hot.perplexity  # cold text is likely text


def test_settings_explorer_shows_the_scorers_verdict(lm, sonnet):
    from gpt2lab.experiments import incoherence

    prompt, original = sonnet
    reference = sweep.run_sweep(lm, {"ok": {"mode": "sample-top-p", "top_p": 0.9, "temperature": 0.8}},
                                {"s": prompt}, seeds=[0, 1, 2], samples=2, defaults={"max_length": 20},
                                progress=False)
    box = settings_explorer(lm, prompt, scorer=incoherence.IncoherenceScorer.fit(reference), max_length=20)
    assert "filter score" in box.outputs["text"].value and "verdict" not in box.outputs["text"].value  # no threshold
    row, score, _ = box.last
    for threshold, verdict in ((score - 0.01, "FLAGGED as incoherent"), (score + 0.01, "looks fine")):
        box = settings_explorer(lm, prompt, scorer=incoherence.IncoherenceScorer.fit(reference, threshold=threshold),
                                max_length=20)
        assert box.last[1] == pytest.approx(score) and box.last[0].text == row.text
        assert verdict in box.outputs["text"].value


def test_memorisation_explorer_finds_copies_of_its_own_training_texts(lm):
    """Trained on exactly the texts it samples, every sampled text is 100 % copied and flagged; on
    other text, the share copied falls as the n-gram size grows."""
    texts = sample_texts(lm, 0.7, 0, prefix="ROMEO:", max_length=24, samples=2)
    box = memorisation_explorer(lm, texts, prefix="ROMEO:", max_length=24, samples=2, n=4)
    assert [t for t, _ in box.last] == texts
    assert all(r.copied_fraction == 1.0 and r.flagged for _, r in box.last)
    assert box.outputs["samples"].value.count("data-copied='100.0'") == 2

    train, _ = data.tinyshakespeare_split()
    box = memorisation_explorer(lm, train[:100_000], prefix="ROMEO:", max_length=24, samples=2)
    box.controls["n"].value = 2
    two = [r.copied_fraction or 0.0 for _, r in box.last]  # None: shorter than n words (shown "n/a")
    box.controls["n"].value = 12
    twelve = [r.copied_fraction or 0.0 for _, r in box.last]
    assert all(a >= b for a, b in zip(two, twelve)) and sum(two) > sum(twelve)
    assert "copied 12-grams" in box.outputs["samples"].value
    shown = box.outputs["samples"].value
    assert shown.count("data-copied='n/a'") == sum(r.copied_fraction is None for _, r in box.last)
    before = [t for t, _ in box.last]
    box.controls["seed"].value = 3
    assert [t for t, _ in box.last] != before


def test_memorisation_explorer_takes_an_index_factory(lm):
    from gpt2lab.training.memorisation import NoveltyIndex

    built = []

    def index_for(n):
        built.append(n)
        return NoveltyIndex(["ROMEO: a fixed training row"], n=n)

    box = memorisation_explorer(lm, index_for, prefix="ROMEO:", max_length=8, samples=1, n=3)
    box.controls["n"].value = 5
    box.controls["n"].value = 3  # built once, kept
    assert built == [3, 5]


def test_importance_explorer_explains_caches_and_reports(lm):
    box = importance_explorer(lm, "To be, or not to be", steps=20, samples=2)
    first = box.last
    assert first is not None and first.words == ["To", "be", ",", "or", "not", "to", "be"]
    assert "most to least important" in box.outputs["result"].value
    assert box.outputs["chart"].value[:4] == b"\x89PNG" and not box.controls["explain"].disabled
    box.controls["rate"].value = 1.0
    assert "press <b>explain</b>" in box.outputs["status"].value and box.last is first  # nothing recomputed yet
    box.controls["explain"].click()
    assert box.last is not first and box.last.settings["rate"] == pytest.approx(1.0)
    box.controls["rate"].value = 0.1  # back to a setting seen before: the kept answer, at once
    assert box.last is first and box.outputs["status"].value == ""
    box.controls["prompt"].value = "  "
    box.explain()
    assert "type a sentence first" in box.outputs["status"].value
    box.controls["prompt"].value = LONG_TEXT
    box.explain()
    assert "context" in box.outputs["status"].value and not box.controls["explain"].disabled


@pytest.mark.parametrize("make, message", [
    (lambda lm: settings_explorer(lm, ""), "prompt must be a non-empty string"),
    (lambda lm: settings_explorer(lm, "x", temperature=9.0), r"temperature=9.0 is outside .* \[0.2, 3.0\]"),
    (lambda lm: settings_explorer(lm, "x", mode="nucleus"), r"mode='nucleus' is not one of the explorer's modes"),
    (lambda lm: importance_explorer(lm, "x", steps=1000, run=False), r"steps=1000 is outside"),
    (lambda lm: memorisation_explorer(lm, []), "at least one text"),
    (lambda lm: memorisation_explorer(lm, ["a b c"], n=1), r"n=1 is outside"),
    (lambda lm: decoding_explorer(lm, top_n=0), r"top_n=0 is outside the explorer's range \[1, 100\]"),
    (lambda lm: decoding_explorer(lm, sample_tokens=-1), r"sample_tokens=-1 is outside"),
    (lambda lm: decoding_explorer(lm, n_samples=0), r"n_samples=0 is outside"),
    (lambda lm: decoding_explorer(lm, seed=-5), r"seed=-5 is outside"),
])
def test_explorers_refuse_bad_arguments_in_one_line(lm, make, message):
    with pytest.raises(ValueError, match=message) as info:
        make(lm)
    assert "\n" not in str(info.value)


def test_explorers_refuse_a_tokenizer_given_by_name(lm):
    """A tokenizer's name where a tokenizer object belongs is refused when the explorer is built, not later
    inside a widget callback."""
    with pytest.raises(TypeError, match=r"tokenizers\['x'\] must be a tokenizer object"):
        tokenizer_explorer({"x": "gpt2"})
    with pytest.raises(TypeError, match="tokenizer must be a tokenizer object"):
        ngram_explorer("some training text", "some text", tokenizer="gpt2")


def test_memorisation_explorer_starts_from_beginning_of_text_without_a_prefix(lm):
    """The documented call without a prefix samples from the tokenizer's beginning-of-text token."""
    box = memorisation_explorer(lm, ["to be or not to be that is the question"], max_length=10, samples=2)
    assert len(box.last) == 2 and all(isinstance(text, str) for text, _ in box.last)


def test_memorisation_rows_say_n_a_for_texts_shorter_than_n():
    """A text with fewer than n words has no n-gram to look up: its row says n/a, never 0 %."""
    from gpt2lab.training.memorisation import NoveltyIndex
    from gpt2lab.widgets.memorisation import novelty_html

    index = NoveltyIndex(["to be or not to be that is the question"], n=4)
    short, long = index.check("to be or"), index.check("to be or not to be")
    assert short.copied_fraction is None and long.copied_fraction == 1.0
    page = novelty_html([("to be or", short), ("to be or not to be", long)], 4)
    assert "data-copied='n/a'" in page and "<b>n/a</b>" in page and "data-copied='100.0'" in page


# ---------------------------------------------------------------- the explorers of notebooks 04, 06 and 07

LENS_TEXT = "ROMEO:\nI will go with thee.\n\nJULIET:\nThen go.\n\nROMEO:\n"


def test_lens_explorer_shows_each_rows_top_tokens_and_the_models_own_at_the_last(lm):
    import torch

    from gpt2lab.interpret import logit_lens

    lens = logit_lens(lm, LENS_TEXT)
    box = lens_explorer(lm, LENS_TEXT, layer=0, position=-1, top_k=5)
    for row, position in ((0, lens.logits.shape[1] - 1), (3, 2), (lens.n_rows - 1, 5)):
        box.controls["row"].value, box.controls["position"].value = row, position
        expected = lens.logits[row, position].topk(5).indices.tolist()
        assert [i for i, _, _ in box.shown] == expected
        assert [f"data-token='{i}'" in box.outputs["table"].value for i in expected] == [True] * 5
    box.controls["row"].value, box.controls["position"].value = lens.n_rows - 1, lens.logits.shape[1] - 1
    with torch.no_grad():
        own = lm.model(lm.encode(LENS_TEXT)).logits[0, -1].float()
    assert [i for i, _, _ in box.shown] == own.topk(5).indices.tolist()  # the model's own top next tokens
    assert sum(p for _, _, p in box.shown) <= 1.0
    with pytest.raises(ValueError, match=r"layer=9 is outside .* \[0, 6\]"):
        lens_explorer(lens, layer=9)


def test_snapshots_keep_copies_and_sample_without_touching_the_model(char_run):
    import torch

    from gpt2lab.model import GPT, GPTConfig, Snapshots

    snapshots, decode, prompt, live, _ = char_run
    assert snapshots.steps == [0, 100, 200, 300] and snapshots.loss[0] is None
    assert snapshots.loss[300] < snapshots.loss[100]  # it learnt
    first, last = snapshots.weights[0], snapshots.weights[300]
    assert not torch.equal(first["token_embedding.weight"], last["token_embedding.weight"])  # copies, not views
    trained = {k: v.clone() for k, v in snapshots.model.state_dict().items()}
    assert [decode(snapshots.sample(s, prompt, 60, temperature=0.8)) for s in snapshots.steps] == \
        [live[s] for s in snapshots.steps]  # what the model being trained wrote at that moment
    assert all(torch.equal(v, snapshots.model.state_dict()[k]) for k, v in trained.items())  # untouched
    with pytest.raises(KeyError, match=r"no snapshot at step 50; kept: \[0, 100, 200, 300\]"):
        snapshots.model_at(50)
    # a log every 30 steps and snapshots every 100: kept at the first logged step 100 or more after the last
    model = GPT(GPTConfig(vocab_size=5, n_layer=1, n_head=1, d_model=8, context_length=4))
    every = Snapshots(model, every=100)
    for step in range(30, 400, 30):
        every({"step": step, "loss": 1.0})
    every({"step": 390, "val_loss": 1.0})
    assert every.steps == [0, 120, 240, 360]
    with pytest.raises(ValueError, match="every must be a positive int"):
        Snapshots(model, every=0)


def test_training_explorer_shows_the_snapshots_samples_and_words_appear(char_run):
    snapshots, decode, prompt, live, vocabulary = char_run
    box = training_explorer(snapshots, decode, prompt, max_new_tokens=60, vocabulary=vocabulary)
    assert box.last == (0, 0.8, 0, live[0]) and "before any training" in box.outputs["sample"].value
    shares = {}
    for step in snapshots.steps:
        box.controls["step"].value = step
        assert box.last[-1] == live[step]
        shares[step] = training.word_share(live[step][len("ROMEO:\n"):], vocabulary)
        assert f"training loss {snapshots.loss.get(step) or 0:.2f}" in box.outputs["sample"].value or step == 0
    assert shares[300] > shares[0] + 0.2, shares  # from random letters towards words
    box.controls["temperature"].value = 2.0
    hot = box.last[-1]
    assert hot != live[300]
    box.controls["temperature"].value = 0.8
    assert box.last[-1] == live[300]  # the same settings, the same sample
    with pytest.raises(ValueError, match=r"temperature=5 is outside"):
        training_explorer(snapshots, decode, prompt, temperature=5)


def test_word_share_counts_words_of_the_vocabulary():
    assert training.word_share("Thou art, thou ART xq!", {"thou", "art"}) == 0.8
    assert training.word_share("  ,;: ", {"thou"}) is None
    assert training.words_of("O Romeo, Romeo! wherefore art thou") == ["o", "romeo", "romeo", "wherefore", "art",
                                                                        "thou"]


def test_induction_explorer_shows_what_the_toy_recorded(toy_run):
    import numpy as np

    from gpt2lab.model import induction

    run = toy_run
    assert run.patterns.shape == (len(run.steps), 2, 4, len(run.pattern_ids), len(run.pattern_ids))
    np.testing.assert_allclose(run.patterns[-1], induction.attention_pattern(run.model, run.pattern_ids))  # the end
    assert rows_are_distributions(run.patterns)  # every row of every pattern is a distribution
    layer, head = run.induction_head
    box = induction_explorer(run)
    assert box.last.step == run.steps[0] and (box.last.layer, box.last.head) == (layer, head)
    box.controls["step"].value = run.steps[-1]
    assert box.last.induction == run.induction[-1, layer, head]
    assert f"<b class='gpt2lab-induction-score'>{run.induction[-1, layer, head]:.2f}</b>" in box.outputs["scores"].value
    box.controls["head"].value = run.previous_token_head
    assert box.last.previous_token == run.previous_token[-1, 0].max()
    np.testing.assert_array_equal(box.last.pattern, run.patterns[-1, 0, run.previous_token_head[1]])
    assert box.controls["head"].label.endswith("head)")  # the menu marks the heads the notebook names
    with pytest.raises(ValueError, match="step=7 was not recorded"):
        induction_explorer(run, step=7)
    with pytest.raises(ValueError, match="head must be a"):
        induction_explorer(run, head=(2, 0))


def rows_are_distributions(patterns) -> bool:
    import numpy as np

    return bool(np.allclose(patterns.sum(-1), 1.0, atol=1e-5))
