"""gpt2lab.generate: a thin, validated layer over model.generate, with gpt-2-simple's conveniences."""
from __future__ import annotations

import contextlib
import json
import warnings

import pytest
import torch

import gpt2lab
from gpt2lab.generation import decoding
from gpt2lab.generation import pipeline as generation
from gpt2lab.generation.params import GenerationError, InvalidParameterError


@contextlib.contextmanager
def counting_generate(lm):
    """Spy on model.generate: records every call's keyword arguments."""
    calls = []
    original = lm.model.generate

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    lm.model.generate = spy
    try:
        yield calls
    finally:
        del lm.model.generate  # back to the class method


def _direct(lm, prompt, **kwargs):
    ids = lm.encode(prompt)
    out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    return [prompt + lm.tokenizer.decode(row[ids.shape[1]:]) for row in out.tolist()]


def test_one_prompt_gives_num_return_sequences_texts_with_the_prompt(tiny_lm):
    out = gpt2lab.generate(tiny_lm, "Hello world", max_length=8, seed=0)
    assert isinstance(out, list) and len(out) == 3
    assert all(t.startswith("Hello world") and len(t) > len("Hello world") for t in out)
    assert out.seed == 0 and out.params.seed == 0 and out.model == tiny_lm.name
    assert len(gpt2lab.generate(tiny_lm, "Hello", mode="greedy", max_length=4)) == 1  # greedy: one text


def test_greedy_and_beam_equal_model_generate(tiny_lm):
    prompt = "It was the best of times"
    assert list(gpt2lab.generate(tiny_lm, prompt, mode="greedy", max_length=10)) == \
        _direct(tiny_lm, prompt, max_new_tokens=10, do_sample=False)
    assert list(gpt2lab.generate(tiny_lm, prompt, mode="beam", num_beams=3, num_return_sequences=2, max_length=10,
                                 repetition_penalty=1.2)) == \
        _direct(tiny_lm, prompt, max_new_tokens=10, num_beams=3, num_return_sequences=2, repetition_penalty=1.2,
                no_repeat_ngram_size=2, do_sample=False)


def test_sampling_equals_model_generate_with_the_same_seed(tiny_lm):
    prompt = "Call me Ishmael"
    ours = gpt2lab.generate(tiny_lm, prompt, max_length=10, seed=123, top_p=0.8, temperature=0.9)
    torch.manual_seed(123)
    direct = _direct(tiny_lm, prompt, max_new_tokens=10, do_sample=True, top_k=0, top_p=0.8, temperature=0.9,
                     num_return_sequences=3)
    assert list(ours) == direct


@pytest.mark.parametrize("mode, transformers_settings", [
    ("greedy", dict(do_sample=False)),
    ("beam", dict(do_sample=False, num_beams=5, no_repeat_ngram_size=2, num_return_sequences=3)),
    ("sample-top-p", dict(do_sample=True, top_p=0.92, top_k=0, num_return_sequences=3)),
    ("sample-top-k", dict(do_sample=True, top_k=50, num_return_sequences=3)),
    ("sample", dict(do_sample=True, top_p=0.92, top_k=50, temperature=0.7, num_return_sequences=3)),
])
def test_each_mode_with_its_defaults_is_transformers_with_the_published_defaults(embedded_lm, mode,
                                                                                 transformers_settings):
    """Nothing but the mode's row: greedy is transformers' greedy, and no n-gram block outside beam search
    (the 2-gram block used to stop the second ':\\n' of a speaker line: 'JULIET::')."""
    prompt = "JULIET:\nO Romeo, Romeo!"
    seed = {"seed": 3} if mode.startswith("sample") else {}  # greedy and beam draw nothing
    ours = gpt2lab.generate(embedded_lm, prompt, mode=mode, max_length=24, **seed)
    with generation.seeded(3, embedded_lm.device):
        direct = _direct(embedded_lm, prompt, max_new_tokens=24, **transformers_settings)
    assert list(ours) == direct


def test_prompts_and_return_sequences_cost_one_left_padded_call(tiny_lm):
    prompts = ["A", "A much longer prompt than the first one", "Medium prompt"]
    with counting_generate(tiny_lm) as calls:
        out = gpt2lab.generate(tiny_lm, prompts, max_length=5, num_return_sequences=2, seed=1)
    assert len(calls) == 1
    call = calls[0]
    assert call["num_return_sequences"] == 2 and call["max_new_tokens"] == 5
    ids, mask = call["input_ids"], call["attention_mask"]
    assert ids.shape[0] == 3 and mask[:, -1].all()  # everyone ends in the last column
    lengths = [len(tiny_lm.tokenizer(p)["input_ids"]) for p in prompts]
    assert mask.sum(dim=1).tolist() == lengths
    assert (mask[0, :-lengths[0]] == 0).all() and (ids[0, :-lengths[0]] == call["pad_token_id"]).all()
    assert [len(group) for group in out] == [2, 2, 2]
    assert all(t.startswith(p) for p, group in zip(prompts, out) for t in group)


def test_batching_does_not_change_greedy_results(tiny_lm):
    prompts = ["The cat", "Once upon a time there was"]
    batched = gpt2lab.generate(tiny_lm, prompts, mode="greedy", max_length=8)
    alone = [gpt2lab.generate(tiny_lm, p, mode="greedy", max_length=8)[0] for p in prompts]
    assert [g[0] for g in batched] == alone


def test_batch_size_splits_the_work(tiny_lm):
    with counting_generate(tiny_lm) as calls:
        out = gpt2lab.generate(tiny_lm, ["a", "b"], max_length=3, nsamples=3, batch_size=4, seed=2)
    assert len(calls) == 2 and [len(g) for g in out] == [3, 3]
    assert [c["input_ids"].shape[0] for c in calls] == [4, 2]
    with counting_generate(tiny_lm) as calls:
        gpt2lab.generate(tiny_lm, ["a", "b", "c"], mode="beam", num_beams=2, num_return_sequences=2, max_length=3,
                         batch_size=4)
    assert [c["input_ids"].shape[0] for c in calls] == [2, 1]  # beams of one prompt stay together
    again = gpt2lab.generate(tiny_lm, ["a", "b"], max_length=3, nsamples=3, batch_size=4, seed=2)
    assert list(again) == list(out)  # reproducible with the same seed and batch size


def test_seeds_reproduce_and_random_seeds_are_reported(tiny_lm):
    a = gpt2lab.generate(tiny_lm, "Seeded", max_length=6, seed=7)
    b = gpt2lab.generate(tiny_lm, "Seeded", max_length=6, seed=7)
    assert list(a) == list(b)
    r = gpt2lab.generate(tiny_lm, "Seeded", max_length=6, seed=-1)
    assert r.seed is not None and r.seed >= 0
    assert list(gpt2lab.generate(tiny_lm, "Seeded", max_length=6, seed=r.seed)) == list(r)
    assert gpt2lab.generate(tiny_lm, "Seeded", mode="greedy", max_length=3).seed is None


def test_seeded_generation_leaves_the_global_random_stream_alone(tiny_lm):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    gpt2lab.generate(tiny_lm, "x", max_length=3, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_prefix_truncate_and_include_prefix(tiny_lm):
    full = gpt2lab.generate(tiny_lm, prefix="Once", mode="greedy", max_length=12)[0]
    completion = full[len("Once"):]
    assert gpt2lab.generate(tiny_lm, prefix="Once", mode="greedy", max_length=12, include_prefix=False)[0] == completion
    marker = completion[3:6]
    cut = gpt2lab.generate(tiny_lm, "Once", mode="greedy", max_length=12, truncate=marker)[0]
    assert cut == "Once" + completion[:completion.find(marker)]
    assert gpt2lab.generate(tiny_lm, "Once", mode="greedy", max_length=12, truncate="@@never@@")[0] == full


def test_texts_end_at_the_end_of_text_token(tiny_lm):
    greedy = tiny_lm.model.generate(input_ids=tiny_lm.encode("Hello"), max_new_tokens=6, do_sample=False)[0]
    stop = int(greedy[-3])  # make the 4th generated token count as end-of-text
    config = tiny_lm.model.generation_config
    before, config.eos_token_id = config.eos_token_id, stop
    try:
        text = gpt2lab.generate(tiny_lm, "Hello", mode="greedy", max_length=6, no_repeat_ngram_size=0)[0]
    finally:
        config.eos_token_id = before
    expected = "Hello" + tiny_lm.tokenizer.decode(greedy[1:].tolist()[:greedy[1:].tolist().index(stop)])
    assert text == expected


def test_ignored_parameters_are_reported(tiny_lm):
    with pytest.warns(generation.IgnoredParameterWarning, match="mode 'greedy' ignores temperature"):
        out = gpt2lab.generate(tiny_lm, "x", mode="greedy", temperature=0.2, max_length=2)
    assert out.ignored == ["temperature"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gpt2lab.generate(tiny_lm, "x", mode="greedy", max_length=2)  # nothing ignored, no warning


def test_context_overflow_is_a_clear_error_or_left_truncation(tiny_lm):
    context = tiny_lm.context_length  # 64 for the tiny model
    long_prompt = " word" * 60
    with pytest.raises(InvalidParameterError, match=r"exceeds the model's context of 64 tokens"):
        gpt2lab.generate(tiny_lm, long_prompt, max_length=10)
    out = gpt2lab.generate(tiny_lm, long_prompt, max_length=10, fit_context=True, mode="greedy")
    assert out.dropped_prompt_tokens == [60 + 10 - context]
    assert out[0].startswith(long_prompt)
    with pytest.raises(InvalidParameterError, match="max_length=64 leaves no room"):
        gpt2lab.generate(tiny_lm, "hi", max_length=64, fit_context=True)


def test_generate_to_file_records_texts_params_and_seed(tiny_lm, tmp_path):
    path = tmp_path / "out" / "samples.txt"
    result = gpt2lab.generate_to_file(tiny_lm, path, "The sea", length=5, nsamples=4, batch_size=2, progress=False)
    meta = json.loads((tmp_path / "out" / "samples.txt.params.json").read_text())
    assert meta["seed"] == result.seed and meta["params"]["seed"] == result.seed
    assert meta["params"]["max_length"] == 5 and meta["n_texts"] == 4 and meta["model"] == tiny_lm.name
    written = path.read_text().split(generation.SAMPLE_DELIM)
    assert [t.rstrip("\n") for t in written] == [t.rstrip("\n") for t in result]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the record holds only parameters the mode uses
        again = gpt2lab.generate(tiny_lm, params=gpt2lab.GenerationParams.from_dict(meta["params"]))
    assert list(again) == list(result)  # the recorded parameters reproduce the file


# Bad input through the Python API: (args, kwargs, exception, words in the message)
BAD_CALLS = [
    ((), {}, InvalidParameterError, "no prompt given"),
    (("",), {}, InvalidParameterError, "empty prompt"),
    (([],), {}, InvalidParameterError, "empty prompt"),
    ((["ok", ""],), {}, InvalidParameterError, "empty prompt"),
    ((5,), {}, InvalidParameterError, "input=5"),
    (("x",), {"prefix": "y"}, InvalidParameterError, "given twice"),
    (("x",), {"temperature": 0}, InvalidParameterError, "temperature=0"),
    (("x",), {"top_p": 1.5}, InvalidParameterError, "top_p=1.5"),
    (("x",), {"k": -1}, InvalidParameterError, "top_k=-1"),
    (("x",), {"mode": "nucleus"}, InvalidParameterError, "mode='nucleus'"),
    (("x",), {"max_length": 0}, InvalidParameterError, "max_length=0"),
    (("x",), {"max_length": 10_000}, InvalidParameterError, "leaves no room"),
    (("x",), {"temprature": 1.0}, InvalidParameterError, "did you mean 'temperature'"),
    (("x",), {"mode": "beam", "num_beams": 2, "num_return_sequences": 5}, InvalidParameterError, "num_beams=2"),
    (("x",), {"num_beams": 1.5, "mode": "beam"}, InvalidParameterError, "num_beams=1.5"),
    (("x",), {"seed": "abc"}, InvalidParameterError, "seed='abc'"),
    (("x",), {"batch_size": -1}, InvalidParameterError, "batch_size=-1"),
    ((" word" * 60,), {"max_length": 10}, InvalidParameterError, "exceeds the model's context"),
]


@pytest.mark.parametrize("args, kwargs, error, words", BAD_CALLS, ids=[str(i) for i in range(len(BAD_CALLS))])
def test_bad_python_api_input(tiny_lm, args, kwargs, error, words):
    with pytest.raises(error) as info:
        gpt2lab.generate(tiny_lm, *args, **kwargs)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------ failures while generating
@pytest.mark.parametrize("error, words", [
    (RuntimeError("probability tensor contains either `inf`, `nan` or element < 0"), "no next token could be drawn"),
    (MemoryError(), "ran out of memory"),
    (RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"), "ran out of memory"),
])
def test_failures_while_generating_become_one_clear_error(tiny_lm, monkeypatch, error, words):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(generation, "transformers_call", failing)
    with pytest.raises(GenerationError) as info:
        gpt2lab.generate(tiny_lm, "x", max_length=2)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, InvalidParameterError) and info.value.as_json()["fields"][0]["field"] == \
        "(generation)"


def test_other_failures_are_not_disguised(tiny_lm, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(generation, "transformers_call", failing)
    with pytest.raises(RuntimeError, match="a bug"):
        gpt2lab.generate(tiny_lm, "x", max_length=2)


def test_fit_context_prints_no_indexing_errors_warning(embedded_lm, monkeypatch):
    """gpt2lab cuts the prompt itself, so transformers' "will result in indexing errors" warning is wrong."""
    from transformers import tokenization_utils_base

    warned = []
    monkeypatch.setattr(tokenization_utils_base.logger, "warning", lambda message, *a, **k: warned.append(message))
    tokenizer = embedded_lm.tokenizer
    long_prompt = "ROMEO: " * 60
    n = len(tokenizer(long_prompt, verbose=False)["input_ids"])
    assert n > 256 == embedded_lm.context_length
    monkeypatch.setattr(tokenizer, "deprecation_warnings", {})  # the warning is printed once per tokenizer
    out = gpt2lab.generate(embedded_lm, long_prompt, mode="greedy", max_length=1, fit_context=True)
    assert out.dropped_prompt_tokens == [n + 1 - 256]
    with pytest.raises(InvalidParameterError, match=f"shorten the prompt by {n - 255} tokens or pass fit_context"):
        gpt2lab.generate(embedded_lm, long_prompt, mode="greedy", max_length=1)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        decoding.greedy(embedded_lm, long_prompt, 1)
    assert warned == []
    tokenizer(long_prompt)  # the warning this test would see
    assert len(warned) == 1 and "indexing errors" in warned[0]
