"""The from-scratch decoders against transformers, token for token (the transforms alone: test_transforms.py)."""
from __future__ import annotations

import contextlib

import pytest
import torch

import gpt2lab
from gpt2lab.generation import decoding, transforms
from gpt2lab.generation import pipeline as generation
from gpt2lab.generation.params import GenerationError, InvalidParameterError
from gpt2lab.tokens import left_pad

# ------------------------------------------------------------------ loops against model.generate
PROMPTS = ["The king is dead", "O", "To be, or not to be: that is the question"]


def _batch(lm, prompts=PROMPTS):
    _, pad = generation.special_tokens(lm)
    return left_pad([lm.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts], pad,
                               lm.device)


@contextlib.contextmanager
def _eos(lm, token_ids):
    """Temporarily make frequent tokens count as end-of-text, so early stopping gets exercised."""
    config = lm.model.generation_config
    before = config.eos_token_id
    config.eos_token_id = token_ids
    try:
        yield
    finally:
        config.eos_token_id = before


def _steps(lm, big: int, small: int) -> int:
    return small if lm.n_params > 50e6 else big  # the 124M model is slow on a CPU: fewer steps


def test_greedy_matches_generate(any_lm):
    ids, mask = _batch(any_lm)
    n = _steps(any_lm, 24, 8)
    for settings in [{}, {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2}]:
        expected = any_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, do_sample=False,
                                         **settings)
        ours = decoding.greedy(any_lm, (ids, mask), n, **settings)
        assert torch.equal(ours.sequences, expected), settings
        assert ours.forward_calls <= n


def test_beam_search_matches_generate(any_lm):
    ids, mask = _batch(any_lm)
    n = _steps(any_lm, 16, 6)
    cases = [dict(num_beams=3, num_return_sequences=2), dict(num_beams=4, no_repeat_ngram_size=2,
                                                             repetition_penalty=1.2, length_penalty=0.6)]
    for settings in cases:
        expected = any_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, do_sample=False,
                                         **settings)
        ours = decoding.beam_search(any_lm, (ids, mask), n, **settings)
        assert ours.sequences.shape == expected.shape, settings
        assert torch.equal(ours.sequences, expected), settings


def test_sampling_draws_from_identical_distributions(any_lm):
    """Same seed -> same trajectory, and at every step the filtered scores are identical. With transforms that
    read the history, transformers reads a padded batch's padding as text, so those compare one prompt at a
    time (see test_a_list_of_prompts_gives_each_prompt_what_it_gives_alone)."""
    n = _steps(any_lm, 12, 5)
    for settings in [dict(temperature=0.7, top_p=0.92, top_k=0), dict(temperature=1.3, top_k=7),
                     dict(top_k=0, repetition_penalty=1.5, no_repeat_ngram_size=1)]:
        history = "repetition_penalty" in settings
        for prompts in ([[p] for p in PROMPTS[:2]] if history else [PROMPTS[:2]]):
            ids, mask = _batch(any_lm, prompts)
            with generation.seeded(11, any_lm.device):
                expected = any_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, do_sample=True,
                                                 num_return_sequences=2, output_scores=True,
                                                 return_dict_in_generate=True, **settings)
            ours = decoding.sample(any_lm, (ids, mask), n, num_return_sequences=2, seed=11, keep_scores=True,
                                   **settings)
            assert torch.equal(ours.sequences, expected.sequences), settings
            assert len(ours.scores) == len(expected.scores)
            for step, (a, b) in enumerate(zip(ours.scores, expected.scores)):
                assert torch.equal(a, b), (settings, step)
                assert torch.equal(torch.softmax(a, -1), torch.softmax(b, -1))


def test_end_of_text_handling_matches_generate(tiny_lm):
    """Rows that stop early are padded; beams that end join the finished pool - as in transformers."""
    ids, mask = _batch(tiny_lm)
    free = tiny_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False)
    width = ids.shape[1]
    stop_tokens = sorted({int(free[0, width + 2]), int(free[2, width + 1])})
    with _eos(tiny_lm, stop_tokens):
        expected = tiny_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False)
        assert torch.equal(decoding.greedy(tiny_lm, (ids, mask), 12).sequences, expected)
        for early in (False, True, "never"):
            for lp in (1.0, -0.5, 2.0):
                expected = tiny_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10,
                                                  num_beams=3, num_return_sequences=3, early_stopping=early,
                                                  length_penalty=lp)
                ours = decoding.beam_search(tiny_lm, (ids, mask), 10, num_beams=3, num_return_sequences=3,
                                            early_stopping=early, length_penalty=lp)
                assert torch.equal(ours.sequences, expected), (early, lp)


def test_embedded_model_sampling_with_frequent_end_of_text(embedded_lm):
    """The embedded model ends lines often: make newline the end-of-text so rows finish at different steps."""
    newline = embedded_lm.tokenizer("\n", add_special_tokens=False)["input_ids"]
    ids, mask = _batch(embedded_lm, ["ROMEO:", "First Citizen:\nWe are accounted"])
    with _eos(embedded_lm, newline):
        with generation.seeded(5, embedded_lm.device):
            expected = embedded_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=30,
                                                  do_sample=True, top_k=0, top_p=0.9, num_return_sequences=3)
        ours = decoding.sample(embedded_lm, (ids, mask), 30, top_p=0.9, num_return_sequences=3, seed=5)
        assert torch.equal(ours.sequences, expected)
        assert (ours.sequences[:, ids.shape[1]:] == newline[0]).any()
        expected = embedded_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=30, num_beams=4,
                                              num_return_sequences=2)
        assert torch.equal(decoding.beam_search(embedded_lm, (ids, mask), 30, num_beams=4,
                                                num_return_sequences=2).sequences, expected)


def test_no_cache_variant_gives_the_same_tokens_and_quadratic_work(tiny_lm):
    ids, mask = _batch(tiny_lm)
    expected = tiny_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False,
                                      use_cache=False)
    ours = decoding.greedy(tiny_lm, (ids, mask), 10, use_cache=False)
    assert torch.equal(ours.sequences, expected)
    assert torch.equal(ours.sequences, decoding.greedy(tiny_lm, (ids, mask), 10).sequences)
    beams = decoding.beam_search(tiny_lm, (ids, mask), 8, num_beams=3, use_cache=False).sequences
    assert torch.equal(beams, decoding.beam_search(tiny_lm, (ids, mask), 8, num_beams=3).sequences)


def test_gpt2lab_generate_and_from_scratch_generate_agree(tiny_lm):
    prompts = ["Hello", "It was a bright cold day in April"]
    for mode, extra in [("greedy", {}), ("beam", {"num_beams": 3, "num_return_sequences": 2}),
                        ("sample-top-p", {"seed": 4}), ("sample-top-k", {"seed": 4, "top_k": 5}),
                        ("sample", {"seed": 9, "temperature": 1.2})]:
        a = gpt2lab.generate(tiny_lm, prompts, mode=mode, max_length=12, **extra)
        b = decoding.generate(tiny_lm, prompts, mode=mode, max_length=12, **extra)
        assert list(a) == list(b), mode
        assert a.seed == b.seed


# ------------------------------------------------------------------ introspection
def test_step_records_show_each_transform(tiny_lm):
    result = decoding.sample(tiny_lm, "Once upon a time", 4, temperature=0.8, top_k=5, seed=0, record=True)
    assert len(result.steps) == 4
    step = result.steps[0]
    assert step.stage_names == ["model", "temperature 0.8", "top-k 5"]
    assert step.kept[-1, 0] == 5 and step.kept[0, 0] == tiny_lm.model.config.vocab_size
    table = step.table(tiny_lm.tokenizer)
    assert table["chosen"].sum() == 1
    # the 5 survivors are the 5 likeliest under the model, all listed among the candidates: they hold all mass
    assert abs(table["top-k 5"].sum() - 1.0) < 1e-5
    assert (table["top-k 5"] > 0).sum() == 5 and (table["top-k 5"].iloc[:5] > 0).all()
    chosen = int(step.chosen[0])
    assert chosen == int(result.new_tokens[0, 0])
    assert chosen in table["token_id"].tolist()


def test_greedy_record_chooses_the_argmax(tiny_lm):
    result = decoding.greedy(tiny_lm, "The", 3, record=True)
    for step in result.steps:
        table = step.table(tiny_lm.tokenizer)
        assert table.iloc[0]["chosen"]  # the likeliest candidate is listed first and chosen


def test_beam_records(tiny_lm):
    result = decoding.beam_search(tiny_lm, "The old man", 5, num_beams=3, record=True)
    first = result.steps[0]
    assert set(first.source_beam) == {0}  # at the start only the first beam expands
    assert len(first.token) == 6 and first.status.count("running") == 3
    assert first.score == sorted(first.score, reverse=True)
    last = result.steps[-1]
    assert len(last.finished) == 3
    best_tokens, _ = last.finished[0]
    assert best_tokens == result.new_tokens[0].tolist()
    assert list(first.table(tiny_lm.tokenizer).columns) == ["from beam", "token", "token_id", "total log p", "status"]


def test_next_token_distribution(tiny_lm):
    view = decoding.next_token_distribution(tiny_lm, "Hello there", temperature=0.5, top_k=10, top_p=0.5)
    assert view.stage_names == ["model", "temperature 0.5", "top-k 10", "top-p 0.5"]
    assert torch.allclose(view.probs.sum(dim=1), torch.ones(4))
    assert view.kept("top-k 10") == 10
    assert 1 <= view.kept() <= 10
    before_top_p = view.stage("top-k 10")  # top-p acts on what top-k left
    kept = view.final > 0
    assert float(before_top_p[kept].sum()) >= 0.5 - 1e-6
    smallest_kept = float(before_top_p[kept].min())
    assert float(before_top_p[kept].sum()) - smallest_kept < 0.5  # and it is the smallest such set
    assert list(view.table(5).columns)[:2] == ["token_id", "token"]


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, message", [
    (lambda lm: decoding.greedy(lm, ""), "non-empty"),
    (lambda lm: decoding.greedy(lm, []), "non-empty"),
    (lambda lm: decoding.greedy(lm, "hi", 0), "max_new_tokens"),
    (lambda lm: decoding.greedy(lm, "hi", 64), "context"),
    (lambda lm: decoding.sample(lm, "hi", temperature=0), "temperature=0 is not allowed"),
    (lambda lm: decoding.beam_search(lm, "hi", num_beams=2, num_return_sequences=3), "num_return_sequences"),
])
def test_bad_input_raises_clear_errors(tiny_lm, call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_lm)


# ------------------------------------------------------------------ the notebook explorer (headless)
def test_decoding_explorer_reacts_to_its_controls(embedded_lm):
    pytest.importorskip("ipywidgets")
    box = gpt2lab.widgets.decoding.decoding_explorer(embedded_lm, prompt="ROMEO:\n", sample_tokens=8, n_samples=2)
    table, summary, samples = (box.outputs[k] for k in ("table", "summary", "samples"))
    assert "gpt2lab-distribution" in table.value and table.value.count("<tr class=") == 15
    assert "sample-top-p:" in summary.value and samples.value.count("<li>") == 2
    assert box.outputs["chart"].value[:4] == b"\x89PNG"
    assert box.controls["temperature"].disabled  # sample-top-p uses top_p alone (the published API's row)
    box.controls["mode"].value = "sample"
    assert not any(box.controls[name].disabled for name in ("temperature", "top_k", "top_p"))
    before = (table.value, samples.value)
    box.controls["temperature"].value = 1.6
    assert table.value != before[0] and samples.value != before[1]
    box.controls["mode"].value = "sample-top-k"
    box.controls["top_k"].value = 3
    assert table.value.count(">yes<") == 3 and f"3 of {embedded_lm.model.config.vocab_size} tokens" in summary.value
    assert box.controls["top_p"].disabled and not box.controls["top_k"].disabled
    box.controls["mode"].value = "greedy"
    assert box.controls["temperature"].disabled and table.value.count(">yes<") == 1
    assert samples.value.count("<li>") == 1
    box.controls["prompt"].value = ""
    assert "type a prompt" in summary.value


# ------------------------------------------------------------------ batch padding never reaches the history
@contextlib.contextmanager
def _newline_is_end_and_padding(lm):
    """A model whose end-of-text and padding id is a frequent token (newline), as when pad = eos = a token the
    text uses: padding read as history then visibly changes what a short prompt generates."""
    newline = lm.tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    config = lm.model.generation_config
    before = config.eos_token_id, config.pad_token_id
    config.eos_token_id = config.pad_token_id = newline
    try:
        yield newline
    finally:
        config.eos_token_id, config.pad_token_id = before


HISTORY_SETTINGS = [dict(no_repeat_ngram_size=1), dict(no_repeat_ngram_size=2), dict(repetition_penalty=1.5),
                    dict(repetition_penalty=0.5, no_repeat_ngram_size=3)]
# every mode, sampling made deterministic (a single candidate) so that "exactly what it gives alone" is testable
MODES_FOR_PADDING = [("greedy", {}), ("beam", {"num_beams": 3, "num_return_sequences": 2}),
                     ("sample-top-k", {"top_k": 1, "seed": 0, "num_return_sequences": 2}),
                     ("sample-top-p", {"top_p": 1e-9, "seed": 0}), ("sample", {"temperature": 1e-35, "seed": 0})]
PADDING_PROMPTS = ["ROMEO:", "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?", "KING"]


@pytest.mark.slow
@pytest.mark.parametrize("path", ["transformers", "from scratch"])
def test_a_list_of_prompts_gives_each_prompt_what_it_gives_alone(embedded_lm, path):
    generate = gpt2lab.generate if path == "transformers" else decoding.generate
    with _newline_is_end_and_padding(embedded_lm):
        for mode, extra in MODES_FOR_PADDING:
            for history in HISTORY_SETTINGS:
                batch = generate(embedded_lm, PADDING_PROMPTS, mode=mode, max_length=12, **extra, **history)
                for prompt, texts in zip(PADDING_PROMPTS, batch):
                    alone = generate(embedded_lm, prompt, mode=mode, max_length=12, **extra, **history)
                    assert texts == list(alone), (mode, history, prompt)
        # transformers' own processors read the padding: on the same padded batch it differs from the above
        ids, mask = _batch(embedded_lm, PADDING_PROMPTS[:2])
        leaky = embedded_lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                                           no_repeat_ngram_size=1)
        ours = decoding.greedy(embedded_lm, (ids, mask), 12, no_repeat_ngram_size=1)
        assert not torch.equal(leaky[0], ours.sequences[0])


@pytest.mark.parametrize("mode, extra", MODES_FOR_PADDING, ids=[m for m, _ in MODES_FOR_PADDING])
def test_parity_with_transformers_one_prompt_at_a_time(embedded_lm, mode, extra):
    """The reference for the padded batch above: each prompt alone, through model.generate directly."""
    history = dict(repetition_penalty=1.3, no_repeat_ngram_size=2)
    settings = gpt2lab.GenerationParams.build(mode=mode, max_length=12, **extra, **history).settings()
    with _newline_is_end_and_padding(embedded_lm):
        for prompt in PADDING_PROMPTS:
            ids = embedded_lm.encode(prompt)
            with generation.seeded(0, embedded_lm.device):
                direct = embedded_lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                    **settings.transformers_kwargs())
            expected = [prompt + embedded_lm.tokenizer.decode(row[ids.shape[1]:]).split("\n")[0]
                        for row in direct.tolist()]
            for generate in (gpt2lab.generate, decoding.generate):
                out = generate(embedded_lm, prompt, mode=mode, max_length=12, **extra, **history)
                assert list(out) == expected, (generate.__module__, prompt)


def test_padding_does_not_block_the_end_of_a_short_prompt(embedded_lm):
    """The issue's example: in a batch the end-of-text logit of "ROMEO:" was -inf (its left padding, the
    end-of-text id, counted as a generated 1-gram); alone it is -16.5."""
    batch = decoding.greedy(embedded_lm, ["ROMEO:", "JULIET:\nO Romeo"], 1, no_repeat_ngram_size=1, keep_scores=True)
    alone = decoding.greedy(embedded_lm, "ROMEO:", 1, no_repeat_ngram_size=1, keep_scores=True)
    eos = generation.special_tokens(embedded_lm)[0][0]
    assert float(alone.scores[0][0, eos]) == pytest.approx(-16.51, abs=0.01)
    assert float(batch.scores[0][0, eos]) == pytest.approx(-16.51, abs=0.01)  # was -inf
    assert torch.equal(torch.isinf(batch.scores[0][0]), torch.isinf(alone.scores[0][0]))
    assert torch.allclose(batch.scores[0][0], alone.scores[0][0], atol=1e-4)
    for n in (1, 2, 3):  # n-grams that start in the padding ban nothing; the rest as without padding
        history = torch.tensor([[0, 0, 0, 5, 6, 5, 6, 5], [5, 6, 5, 6, 5, 6, 5, 6]])
        padded = transforms.block_repeated_ngrams(torch.zeros(2, 10), history, n, ignore_before=torch.tensor([3, 0]))
        assert torch.equal(padded[0], transforms.block_repeated_ngrams(torch.zeros(1, 10), history[:1, 3:], n)[0])
        assert torch.equal(padded[1], transforms.block_repeated_ngrams(torch.zeros(1, 10), history[1:], n)[0])


# ------------------------------------------------------------------ values that scale the logits, at their limits
@pytest.mark.parametrize("generate", [gpt2lab.generate, decoding.generate], ids=["transformers", "from scratch"])
def test_logit_scaling_values_at_their_bounds(tiny_lm, generate):
    prompt = "The sea"
    greedy = list(generate(tiny_lm, prompt, mode="greedy", max_length=6))
    for tiny in (5e-324, 2e-38, 1e-30):  # temperature -> 0 is greedy, however small
        assert list(generate(tiny_lm, prompt, mode="sample", temperature=tiny, max_length=6, seed=1)) == greedy * 3
    assert list(generate(tiny_lm, prompt, mode="sample-top-p", top_p=5e-324, max_length=6, seed=1)) == greedy * 3
    hot = generate(tiny_lm, prompt, mode="sample", temperature=1e30, top_k=0, top_p=1.0, max_length=6, seed=4,
                   no_repeat_ngram_size=1)
    hotter = generate(tiny_lm, prompt, mode="sample", temperature=1.7e308, top_k=0, top_p=1.0, max_length=6, seed=4,
                      no_repeat_ngram_size=1)
    assert list(hot) == list(hotter)  # above the ceiling: the ceiling (uniform), no nan from the blocked tokens
    assert list(generate(tiny_lm, prompt, top_k=2**63 - 1, max_length=6, seed=2)) == \
        list(generate(tiny_lm, prompt, top_k=0, max_length=6, seed=2))
    assert list(generate(tiny_lm, prompt, mode="greedy", no_repeat_ngram_size=2**63 - 1, max_length=6)) == greedy
    ids = tiny_lm.encode(prompt)
    for penalty in (0.01, 100.0):  # both ends of the penalty's range work, in greedy and sampling
        direct = tiny_lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                                        do_sample=False, repetition_penalty=penalty)
        assert generate(tiny_lm, prompt, mode="greedy", repetition_penalty=penalty, max_length=6)[0] == \
            prompt + tiny_lm.tokenizer.decode(direct[0, ids.shape[1]:])
        assert len(generate(tiny_lm, prompt, mode="sample", repetition_penalty=penalty, max_length=6, seed=0)) == 3
    for bad in (dict(repetition_penalty=0.0099), dict(repetition_penalty=100.01), dict(temperature=0.0),
                dict(temperature=float("inf")), dict(top_p=0.0), dict(top_k=2**63)):
        with pytest.raises(InvalidParameterError, match=next(iter(bad))):
            generate(tiny_lm, prompt, mode="sample", max_length=6, **bad)


def test_direct_decoder_calls_are_validated_by_the_same_definition(tiny_lm):
    with pytest.raises(InvalidParameterError, match="0.01 <= repetition_penalty <= 100"):
        decoding.greedy(tiny_lm, "hi", 2, repetition_penalty=1e-38)
    with pytest.raises(InvalidParameterError, match="0 < top_p <= 1"):
        decoding.sample(tiny_lm, "hi", 2, top_p=1.5)
    assert decoding.sample(tiny_lm, "hi", 2, temperature=1e-38).sequences.shape == (1, 3)


def test_sampling_with_every_token_blocked_says_why(gpt2_tokenizer):
    from conftest import make_tiny_model

    from gpt2lab import from_model

    model = make_tiny_model(vocab_size=8)
    model.generation_config.eos_token_id = model.config.eos_token_id = None
    lm = from_model(model, gpt2_tokenizer, name="eight-token-model", device="cpu")
    prompt = (torch.tensor([[0]]), None)
    with pytest.raises(GenerationError, match=r"no next token can be drawn \(no_repeat_ngram_size=1 blocks every"):
        decoding.sample(lm, prompt, 9, no_repeat_ngram_size=1, seed=0)
    assert decoding.sample(lm, prompt, 7, no_repeat_ngram_size=1, seed=0).new_tokens.unique().numel() == 7


# ------------------------------------------------------------------ the KV cache, passed as transformers asks
def test_decoding_passes_the_kv_cache_without_deprecation_warnings(tiny_lm):
    """transformers 5 renamed the forward's `past_key_values` to `cache` (the old name prints a FutureWarning
    and goes in 5.40); 4.x only knows `past_key_values`. The runner uses whichever the model takes."""
    import inspect
    import warnings

    ids, mask = _batch(tiny_lm)
    runner = decoding.ModelRunner(tiny_lm, ids, mask)
    takes = inspect.signature(tiny_lm.model.forward).parameters
    assert runner.cache_keyword == ("cache" if "cache" in takes else "past_key_values")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        greedy = decoding.greedy(tiny_lm, (ids, mask), 6)
        decoding.sample(tiny_lm, (ids, mask), 6, top_k=5, seed=0)
        beams = decoding.beam_search(tiny_lm, (ids, mask), 6, num_beams=3)  # reorders the cache
    assert torch.equal(greedy.sequences, decoding.greedy(tiny_lm, (ids, mask), 6, use_cache=False).sequences)
    assert torch.equal(beams.sequences, decoding.beam_search(tiny_lm, (ids, mask), 6, num_beams=3,
                                                             use_cache=False).sequences)
