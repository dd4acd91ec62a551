"""gpt2lab.experiments.sweep: the parameter grid, the on-disk cache, the DataFrame and its plots."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from gpt2lab.experiments import sweep
from gpt2lab.fingerprint import model_fingerprint


class FakeGenerator:
    """Stands in for gpt2lab.generate: a deterministic text per (prompt, seed, params); counts calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, lm, prompts, seed=None, num_return_sequences=1, **params):
        self.calls.append((tuple(prompts), seed, num_return_sequences, dict(params)))
        t = params.get("temperature", 1.0)
        out = []
        for prompt in prompts:
            if t >= 2:  # "degenerate": a loop
                texts = [" the king the king the king the king the king the king"] * num_return_sequences
            else:
                texts = [f" a sample {i} for seed {seed} at temperature {t} of {len(prompt)} chars, quite varied"
                         for i in range(num_return_sequences)]
            out.append(texts)
        return out


SETTINGS = {"cool": {"temperature": 0.7}, "warm": {"temperature": 1.0}, "hot": {"temperature": 2.0}}
PROMPTS = ["Shall I compare thee", "From fairest creatures"]


def test_grid_and_labels():
    settings = sweep.grid(temperature=[0.7, 1.0], top_p=[0.5, 0.9])
    assert len(settings) == 4 and {"temperature": 1.0, "top_p": 0.5} in settings
    pairs = sweep.normalize_settings(settings)
    assert pairs[0][0] == "T=0.7, p=0.5"
    with pytest.raises(TypeError, match="grid axis 'temperature'"):
        sweep.grid(temperature=0.7)
    with pytest.raises(ValueError, match="sets 'seed'"):
        sweep.normalize_settings({"x": {"seed": 3}})
    with pytest.raises(ValueError, match="settings is empty"):
        sweep.normalize_settings({})


def test_sweep_dataframe_shape_and_columns(tiny_lm, tmp_path):
    fake = FakeGenerator()
    df = sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, seeds=[0, 1], samples=2, generate_fn=fake,
                         cache=tmp_path, progress=False)
    assert len(fake.calls) == 3 * 2  # settings x seeds, all prompts in one batched call
    assert all(c[0] == tuple(PROMPTS) for c in fake.calls)
    assert len(df) == 3 * 2 * 2 * 2  # ... x samples, one row per text
    for column in ("setting", "seed", "prompt_id", "prompt", "sample", "text", "cached", "temperature",
                   "max_length", "distinct_1", "repeated_3gram_share", "ends_in_loop", "pos_nouns",
                   "pos_words", "perplexity"):
        assert column in df.columns, column
    # the sweep's defaults reach the generator: no n-gram blocking, continuations only
    assert fake.calls[0][3]["no_repeat_ngram_size"] == 0 and fake.calls[0][3]["include_prefix"] is False
    assert (df.loc[df.setting == "hot", "ends_in_loop"]).all()
    assert not (df.loc[df.setting == "warm", "ends_in_loop"]).any()
    assert (df["perplexity"] > 0).all()


def test_second_run_reads_the_cache_and_does_not_call_the_generator(tiny_lm, tmp_path):
    first = FakeGenerator()
    df1 = sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, seeds=[0, 1], generate_fn=first, cache=tmp_path,
                          measure=False, progress=False)
    assert len(first.calls) == 6 and not df1["cached"].any()
    assert len(sweep.GenerationCache(tmp_path)) == 6

    second = FakeGenerator()
    df2 = sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, seeds=[0, 1], generate_fn=second, cache=tmp_path,
                          measure=False, progress=False)
    assert second.calls == []
    assert df2["cached"].all()
    assert list(df2["text"]) == list(df1["text"])

    # changing one setting or adding a seed regenerates exactly the new combinations
    third = FakeGenerator()
    sweep.run_sweep(tiny_lm, {**SETTINGS, "warm": {"temperature": 1.1}}, PROMPTS, seeds=[0, 1, 2],
                    generate_fn=third, cache=tmp_path, measure=False, progress=False)
    assert len(third.calls) == 2 + 3  # warm changed (2 seeds) + seed 2 for every setting


def test_one_call_per_prompt_when_not_batching(tiny_lm, tmp_path):
    fake = FakeGenerator()
    df = sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, seeds=[0, 1], generate_fn=fake, cache=tmp_path,
                         batch_prompts=False, measure=False, progress=False)
    assert len(fake.calls) == 3 * 2 * 2 and all(len(c[0]) == 1 for c in fake.calls)
    batched = sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, seeds=[0, 1], generate_fn=FakeGenerator(), cache=False,
                              measure=False, progress=False)
    # same rows in the same order either way (this fake's texts do not depend on the batch)
    assert list(df["text"]) == list(batched["text"])
    assert list(df["prompt_id"]) == [0, 1] * 6


def test_cache_is_keyed_by_model_weights(tiny_lm, tmp_path):
    import copy

    import torch

    fake = FakeGenerator()
    sweep.run_sweep(tiny_lm, {"warm": {"temperature": 1.0}}, PROMPTS[:1], generate_fn=fake, cache=tmp_path,
                    measure=False, progress=False)
    other = copy.deepcopy(tiny_lm)
    with torch.no_grad():
        next(other.model.parameters()).add_(1.0)  # "retrained"
    assert model_fingerprint(other) != model_fingerprint(tiny_lm)
    sweep.run_sweep(other, {"warm": {"temperature": 1.0}}, PROMPTS[:1], generate_fn=fake, cache=tmp_path,
                    measure=False, progress=False)
    assert len(fake.calls) == 2


def test_no_cache_always_generates(tiny_lm):
    fake = FakeGenerator()
    for _ in range(2):
        sweep.run_sweep(tiny_lm, {"warm": {"temperature": 1.0}}, PROMPTS[:1], generate_fn=fake, cache=False,
                        measure=False, progress=False)
    assert len(fake.calls) == 2


def test_bad_inputs_are_named(tiny_lm, tmp_path):
    fake = FakeGenerator()
    with pytest.raises(TypeError, match="prompts must be a list"):
        sweep.run_sweep(tiny_lm, SETTINGS, "one prompt", generate_fn=fake, cache=False)
    with pytest.raises(ValueError, match="seeds must be"):
        sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, seeds=[], generate_fn=fake, cache=False)
    with pytest.raises(ValueError, match="prompt 1 must be a non-empty string"):
        sweep.run_sweep(tiny_lm, SETTINGS, ["ok", ""], generate_fn=fake, cache=False)
    with pytest.raises(ValueError, match="returned 1 texts for one prompt; expected 2"):
        sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, samples=2, generate_fn=lambda lm, p, **kw: [["x"]] * len(p),
                        cache=False)
    with pytest.raises(ValueError, match="returned 3 texts for 2 prompt"):
        sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, generate_fn=lambda lm, p, **kw: ["x", "y", "z"], cache=False)


def test_summary_and_pooled_pos_known_values(tiny_lm):
    import pandas as pd

    df = pd.DataFrame({"setting": ["a", "a", "b", "b"],
                       "text": ["The cat sat on the mat.", "The cat sat on the mat.", "dog " * 10, "She can run."]})
    df = sweep.add_metrics(df)
    summary = sweep.summarize(df)
    # identical samples (of at least 4 words: BLEU needs a 4-gram to reach 1)
    assert summary.loc["a", "self_bleu"] == pytest.approx(1.0)
    assert summary.loc["b", "repetition_pct"] == pytest.approx(50.0)  # one of two texts loops
    assert summary.loc["a", "corpus_distinct_1"] == pytest.approx(5 / 12)  # the cat sat on mat
    pooled = sweep.pooled_pos(df)
    # b: "dog" x 10 (nouns) + She/can/run (pronoun, modal, verb) -> 13 words
    assert pooled.loc["b", "nouns"] == pytest.approx(10 / 13)
    assert pooled.loc["b", "modals"] == pytest.approx(1 / 13)
    assert pooled.loc["a"].sum() == pytest.approx(1.0)


def test_plots_draw_one_bar_per_setting_and_category(tiny_lm, tmp_path):
    import matplotlib.pyplot as plt

    from gpt2lab.experiments.analysis import POS_CATEGORIES

    df = sweep.run_sweep(tiny_lm, SETTINGS, PROMPTS, generate_fn=FakeGenerator(), cache=tmp_path,
                         perplexity=False, progress=False)
    ax = sweep.plot_pos_by_setting(df)
    assert len(ax.patches) == len(SETTINGS) * len(POS_CATEGORIES)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(SETTINGS)
    ax = sweep.plot_repetition(df)
    assert len(ax.patches) == len(SETTINGS) * 5  # distinct-1/2/3, repeated 3-grams, loop share
    ax = sweep.plot_pos_comparison({"original": "The cat sat on the mat.", "generated": "dog dog dog"})
    assert len(ax.patches) == 2 * len(POS_CATEGORIES)
    axes = sweep.plot_decoding_comparison(sweep.summarize(df), metrics=("self_bleu", "repetition_pct"))
    assert len(axes) == 2
    plt.close("all")


def test_sonnet_parts_are_lines_1_to_4_and_5_to_8():
    prompt, original = sweep.sonnet_parts(1)
    assert prompt.startswith("From fairest creatures") and prompt.endswith("memory:\n")
    assert original.startswith("But thou, contracted") and original.endswith("too cruel:")
    assert original.count("\n") == 3
    with pytest.raises(ValueError, match="number must be between 1 and 154"):
        sweep.sonnet_parts(155)


def test_greedy_and_beam_run_once_whatever_the_seeds(tiny_lm):
    fake = FakeGenerator()
    df = sweep.run_sweep(tiny_lm, {"greedy": {"mode": "greedy"}, "sampled": {"mode": "sample"}}, PROMPTS,
                         seeds=[0, 1, 2], generate_fn=fake, cache=False, measure=False, progress=False)
    greedy_calls = [c for c in fake.calls if c[3]["mode"] == "greedy"]
    assert len(greedy_calls) == 1 and greedy_calls[0][1] is None  # one batched call, no seed passed
    assert len(fake.calls) - len(greedy_calls) == 3
    assert len(df) == 2 * 3 * len(PROMPTS)


def test_sweep_with_the_real_generator(tiny_lm, tmp_path):
    import warnings

    settings = {"greedy": {"mode": "greedy"}, "nucleus": {"mode": "sample-top-p", "top_p": 0.9,
                                                          "temperature": 1.0}}
    prompts = ["The king", "My good lord, I pray"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the sweep passes no parameter a mode ignores
        df = sweep.run_sweep(tiny_lm, settings, prompts, seeds=[0, 1], defaults={"max_length": 6},
                             cache=tmp_path, progress=False)
    assert len(df) == 2 * 2 * 2
    greedy = df[df.setting == "greedy"]
    assert greedy.groupby("prompt_id")["text"].nunique().tolist() == [1, 1]  # seeds do not matter
    assert all(not t.startswith(("The king", "My good")) for t in df["text"])  # continuations only
    again = sweep.run_sweep(tiny_lm, settings, prompts, seeds=[0, 1], defaults={"max_length": 6},
                            cache=tmp_path, progress=False)
    assert again["cached"].all() and list(again["text"]) == list(df["text"])


def test_the_classic_degenerate_setting_is_exactly_greedy(tiny_lm):
    """temperature 2, top_k 2 and top_p 0.1 applied together (as transformers does) = greedy decoding."""
    import torch

    import gpt2lab

    ids = tiny_lm.encode("From fairest creatures we desire increase")
    torch.manual_seed(123)
    combined = tiny_lm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=2.0,
                                      top_k=2, top_p=0.1, max_new_tokens=15, pad_token_id=0)
    greedy = gpt2lab.generate(tiny_lm, "From fairest creatures we desire increase", mode="greedy", max_length=15,
                              no_repeat_ngram_size=0, include_prefix=False)
    assert tiny_lm.decode(combined[0, ids.shape[1]:]) == greedy[0]
    assert sweep.CLASSIC_SETTINGS[sweep.DEGENERATE_LABEL] == {"mode": "greedy"}


def test_self_bleu_is_compared_across_prompts():
    import pandas as pd

    # a deterministic method: two identical samples per prompt, different texts for different prompts
    a, b = "the cat sat on the mat today", "a storm rolled over distant grey hills"
    df = pd.DataFrame({"setting": "greedy", "seed": 0, "sample": [0, 1, 0, 1], "prompt_id": ["p", "p", "q", "q"],
                       "text": [a, a, b, b]})
    # within one prompt the copies would score 1; across prompts the two texts share nothing
    assert sweep.summarize(df).loc["greedy", "self_bleu"] == pytest.approx(0.0)
    # a method that answers every prompt with the same text scores 1 across prompts
    same = df.assign(text=a)
    assert sweep.summarize(same).loc["greedy", "self_bleu"] == pytest.approx(1.0)
    # one prompt only: all texts of the setting are compared, as before
    assert sweep.summarize(df[df.prompt_id == "p"]).loc["greedy", "self_bleu"] == pytest.approx(1.0)


def test_plots_can_leave_out_empty_metrics():
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame({"self_bleu": [0.2, 0.5], "repetition_pct": [0.0, 0.0]}, index=["x", "y"])
    axes = sweep.plot_decoding_comparison(table, metrics=("self_bleu", "repetition_pct"), drop_empty=True)
    assert [ax.get_title() for ax in axes] == ["self bleu"]
    df = pd.DataFrame({"setting": ["x", "y"], "distinct_1": [0.5, 0.9], "loop_share": [0.0, 0.0]})
    ax = sweep.plot_repetition(df, metrics=("distinct_1", "loop_share"), drop_empty=True)
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.get_xticklabels()] == ["distinct 1"]
    plt.close("all")
