"""GenerationParams: defaults, aliases, validation messages, per-mode used/ignored parameters."""
from __future__ import annotations

import json

import pytest

from gpt2lab.generation import params as P
from gpt2lab.generation.params import GenerationParams, InvalidParameterError


def test_defaults_follow_the_model_package_api():
    p = GenerationParams.build(input="Hello")
    assert (p.max_length, p.num_return_sequences, p.mode) == (100, 3, "sample-top-p")
    assert (p.top_p, p.top_k, p.temperature, p.num_beams) == (0.92, 50, 0.7, 5)
    assert (p.no_repeat_ngram_size, p.repetition_penalty, p.seed) == (2, 1.0, None)
    assert p.include_prefix is True and p.truncate is None and p.fit_context is False


def test_aliases_map_to_canonical_names():
    p = GenerationParams.build(prefix="Hi", length=7, k=3, p=0.5, nsamples=2, mode="sample-top-k")
    assert (p.input, p.max_length, p.top_k, p.top_p, p.num_return_sequences) == ("Hi", 7, 3, 0.5, 2)
    assert GenerationParams.build(length=5, max_length=5).max_length == 5  # same value twice is fine


def test_integers_are_accepted_for_floats_and_numpy_scalars_are_converted():
    np = pytest.importorskip("numpy")
    p = GenerationParams.build(temperature=1, top_p=1, repetition_penalty=2, top_k=np.int64(4),
                               num_beams=np.int32(3))
    assert isinstance(p.temperature, float) and p.temperature == 1.0
    assert p.top_k == 4 and isinstance(p.top_k, int) and p.num_beams == 3


def test_json_round_trip_and_schema():
    p = GenerationParams.from_dict(json.loads('{"input": ["a", "b"], "k": 4, "mode": "beam", "num_beams": 4}'))
    assert p.prompts() == ["a", "b"]
    schema = GenerationParams.model_json_schema()
    assert {"input", "max_length", "temperature", "top_p", "mode"} <= set(schema["properties"])
    assert schema["properties"]["mode"]["enum"] == list(P.MODES)


# (parameters, field that must be named, words the message must contain)
BAD = [
    ({"temperature": 0}, "temperature", "> 0"),
    ({"temperature": -0.5}, "temperature", "> 0"),
    ({"temperature": "hot"}, "temperature", "wrong type str"),
    ({"temperature": True}, "temperature", "wrong type bool"),
    ({"temperature": float("nan")}, "temperature", "temperature=nan"),
    ({"temperature": float("inf")}, "temperature", "finite"),
    ({"top_p": 0}, "top_p", "0 < top_p <= 1"),
    ({"top_p": 1.01}, "top_p", "0 < top_p <= 1"),
    ({"top_p": -0.1}, "top_p", "0 < top_p <= 1"),
    ({"p": "0.9"}, "top_p", "wrong type str"),
    ({"top_k": -1}, "top_k", "0 <= top_k < 2**63"),
    ({"top_k": 2.5}, "top_k", "wrong type float"),
    ({"k": 10.0}, "top_k", "wrong type float"),
    ({"top_k": None}, "top_k", "wrong type NoneType"),
    ({"repetition_penalty": 0}, "repetition_penalty", "0.01 <= repetition_penalty <= 100"),
    ({"repetition_penalty": -1.0}, "repetition_penalty", "0.01 <= repetition_penalty <= 100"),
    ({"num_beams": 0}, "num_beams", "1 <= num_beams"),
    ({"num_return_sequences": 0}, "num_return_sequences", "1 <= num_return_sequences"),
    ({"nsamples": -3}, "num_return_sequences", "1 <= num_return_sequences"),
    ({"mode": "beam", "num_beams": 2, "num_return_sequences": 3}, "num_return_sequences", "num_beams=2"),
    ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size", "0 <= no_repeat_ngram_size"),
    ({"max_length": 0}, "max_length", ">= 1"),
    ({"length": -5}, "max_length", ">= 1"),
    ({"max_length": "100"}, "max_length", "wrong type str"),
    ({"mode": "topp"}, "mode", "did you mean 'sample-top-p'"),
    ({"mode": "Greedy"}, "mode", "did you mean 'greedy'"),
    ({"mode": 3}, "mode", "one of"),
    ({"seed": -2}, "seed", "-1"),
    ({"seed": 2**64}, "seed", "2**63"),
    ({"seed": "1"}, "seed", "wrong type str"),
    ({"input": ""}, "input", "empty prompt"),
    ({"input": []}, "input", "empty prompt"),
    ({"input": ["ok", ""]}, "input", "empty prompt"),
    ({"input": 42}, "input", "wrong type int"),
    ({"input": ["a", 1]}, "input", "non-empty string"),
    ({"input": {"text": "a"}}, "input", "wrong type dict"),
    ({"truncate": ""}, "truncate", "empty"),
    ({"include_prefix": "yes"}, "include_prefix", "true or false"),
    ({"batch_size": 0}, "batch_size", "1 <= batch_size"),
    ({"fit_context": 1}, "fit_context", "true or false"),
    ({"tempreature": 0.5}, "tempreature", "did you mean 'temperature'"),
    ({"topk": 5}, "topk", "did you mean 'top_k'"),
    ({"max_new_tokens": 5}, "max_new_tokens", "; known parameters"),
    ({"p": 0.5, "top_p": 0.6}, "top_p", "two spellings"),
    ({"length": 5, "max_length": 6}, "max_length", "two spellings"),
    ({"prefix": "a", "input": "b"}, "input", "two spellings"),
]


@pytest.mark.parametrize("bad, field, words", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_parameters_name_field_value_and_range(bad, field, words):
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams.from_dict(bad)
    err = info.value
    assert isinstance(err, ValueError)
    assert field in [e["field"] for e in err.errors]
    assert field in str(err) and words in str(err)
    body = err.as_json()
    json.dumps(body)  # always serialisable, whatever the value was
    assert body["error"] == str(err)


def test_several_problems_are_reported_together():
    with pytest.raises(InvalidParameterError) as info:
        GenerationParams.from_dict({"temperature": 0, "top_k": -1})
    assert {e["field"] for e in info.value.errors} == {"temperature", "top_k"}
    assert str(info.value).startswith("2 invalid parameters")


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None])
def test_non_mapping_is_rejected(body):
    with pytest.raises(InvalidParameterError, match="must be a JSON object"):
        GenerationParams.from_dict(body)


def test_each_mode_uses_its_own_parameters_and_reports_the_rest():
    assert GenerationParams.build(mode="greedy").ignored() == []  # nothing given, nothing to report
    greedy = GenerationParams.build(mode="greedy", temperature=0.3, k=5, num_beams=3, seed=1, num_return_sequences=2)
    assert greedy.ignored() == ["num_beams", "num_return_sequences", "seed", "temperature", "top_k"]
    assert "mode 'greedy' ignores" in greedy.ignored_message()
    assert "top_k (applies in mode sample-top-p / sample-top-k / sample)" in greedy.ignored_message()
    # explicitly set sampling parameters apply in every sampling mode
    assert GenerationParams.build(top_k=10).ignored() == []
    assert GenerationParams.build(mode="sample-top-k", top_k=10, top_p=0.5, temperature=0.9).ignored() == []
    assert GenerationParams.build(mode="beam", temperature=0.5, num_beams=3, seed=2).ignored() == ["seed",
                                                                                                 "temperature"]
    assert GenerationParams.build(mode="sample", num_beams=2).ignored() == ["num_beams"]
    for mode in P.MODES:  # repetition_penalty and no_repeat_ngram_size apply in every mode when given
        assert GenerationParams.build(mode=mode, repetition_penalty=1.3, no_repeat_ngram_size=3).ignored() == []


# the published API's table: mode -> the parameters it uses and their defaults
API_TABLE = {
    "greedy": {},
    "sample-top-p": {"top_p": 0.92},
    "sample-top-k": {"top_k": 50},
    "sample": {"top_p": 0.92, "top_k": 50, "temperature": 0.7},
    "beam": {"num_beams": 5, "no_repeat_ngram_size": 2},
}
OFF = dict(temperature=1.0, top_k=0, top_p=1.0, num_beams=1, no_repeat_ngram_size=0, repetition_penalty=1.0)


@pytest.mark.parametrize("mode", P.MODES)
def test_a_modes_defaults_are_exactly_its_row(mode):
    s = GenerationParams.build(mode=mode).settings()
    applied = {name: getattr(s, name) for name in OFF}
    assert applied == {**OFF, **API_TABLE[mode]}
    assert (s.max_new_tokens, s.num_return_sequences) == (100, 1 if mode == "greedy" else 3)
    assert P.MODE_DEFAULTS == API_TABLE


@pytest.mark.parametrize("mode", P.MODES)
def test_explicit_parameters_apply_wherever_they_have_a_meaning(mode):
    given = dict(temperature=0.5, top_k=7, top_p=0.8, num_beams=4, no_repeat_ngram_size=3, repetition_penalty=1.3)
    s = GenerationParams.build(mode=mode, **given).settings()
    sampling = mode in P.SAMPLING_MODES
    expected = {**OFF, "no_repeat_ngram_size": 3, "repetition_penalty": 1.3}
    if sampling:
        expected.update(temperature=0.5, top_k=7, top_p=0.8)
    if mode == "beam":
        expected.update(num_beams=4)
    assert {name: getattr(s, name) for name in OFF} == expected
    # turning a row's parameter off explicitly works too
    if API_TABLE[mode]:
        name = list(API_TABLE[mode])[-1]
        assert getattr(GenerationParams.build(mode=mode, **{name: OFF[name]}).settings(), name) == OFF[name]


def test_settings_for_transformers():
    s = GenerationParams.build(mode="beam", num_beams=4, num_return_sequences=2, max_length=9).settings()
    assert s.transformers_kwargs() == dict(max_new_tokens=9, num_return_sequences=2, repetition_penalty=1.0,
                                           no_repeat_ngram_size=2, do_sample=False, num_beams=4)
    kwargs = GenerationParams.build(mode="sample-top-p").settings().transformers_kwargs()
    assert kwargs["top_k"] == 0 and kwargs["do_sample"] is True  # transformers' own default would be top_k=50
    assert kwargs["temperature"] == 1.0 and kwargs["no_repeat_ngram_size"] == 0
    greedy = GenerationParams.build(mode="greedy", num_return_sequences=3).settings().transformers_kwargs()
    assert greedy == dict(max_new_tokens=100, num_return_sequences=1, repetition_penalty=1.0, no_repeat_ngram_size=0,
                          do_sample=False, num_beams=1)


def test_public_dict_records_what_applies_and_reproduces_it():
    for kwargs in [dict(mode="sample-top-k", temperature=0.5), dict(mode="beam"), dict(mode="greedy", seed=3),
                   dict(mode="sample", top_k=0, repetition_penalty=1.2)]:
        p = GenerationParams.build(input="x", **kwargs)
        record = p.public_dict()
        assert not set(record) & set(p.ignored())
        again = GenerationParams.from_dict(record)
        assert again.settings() == p.settings() and again.ignored() == []
    assert "temperature" not in GenerationParams.build(mode="sample-top-p").public_dict()


def test_seed_minus_one_means_random_and_is_fixed_once_drawn():
    p = GenerationParams.build(seed=-1)
    assert p.random_seed()
    fixed = p.with_seed()
    assert not fixed.random_seed() and 0 <= fixed.seed < 2**31
    assert fixed.with_seed() is fixed
    assert GenerationParams.build(seed=0).with_seed().seed == 0


def test_context_check():
    p = GenerationParams.build(max_length=10)
    assert P.check_context([5, 14], p, 24) == 0
    with pytest.raises(InvalidParameterError, match=r"prompt \(15 tokens\) \+ max_length \(10\)"):
        P.check_context([15], p, 24)
    assert P.check_context([15], p.replace(fit_context=True), 24) == 1
    with pytest.raises(InvalidParameterError, match="max_length=24 leaves no room"):
        P.check_context([1], GenerationParams.build(max_length=24, fit_context=True), 24)


def test_replace_validates_and_keeps_what_was_given():
    p = GenerationParams.build(input="x", k=3)
    q = p.replace(temperature=1.5)
    assert (q.top_k, q.temperature) == (3, 1.5) and "top_k" in q.model_fields_set
    with pytest.raises(InvalidParameterError):
        p.replace(temperature=0)


def test_mode_table_lists_every_mode():
    rows = {r["mode"]: r for r in P.mode_table()}
    assert list(rows) == list(P.MODES)
    assert rows["beam"]["num_beams"] == 5 and rows["beam"]["temperature"] == "ignored"
    assert rows["sample"]["temperature"] == 0.7 and rows["sample-top-p"]["temperature"] == "if given"
    assert rows["greedy"]["repetition_penalty"] == "if given" and rows["greedy"]["seed"] == "ignored"
    markdown = P.mode_table_markdown()
    assert "| sample | top_p, top_k, temperature | 0.92, 50, 0.7 |" in markdown
    assert "| beam | num_beams, no_repeat_ngram_size | 5, 2 |" in markdown
    assert "| greedy | none |  |" in markdown


def test_every_field_is_in_the_parameter_table():
    assert list(P.PARAMETERS) == list(GenerationParams.model_fields)
    table = P.parameter_table_markdown()
    for name, field in GenerationParams.model_fields.items():
        assert f"| `{name}` |" in table
        assert P.PARAMETERS[name].allowed in field.description


def test_the_readme_shows_the_tables_of_this_module():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert P.mode_table_markdown() in readme
    assert P.parameter_table_markdown() in readme


# Every numeric parameter, both sides of every bound of its documented range: (field, accepted, refused)
BIG = 2**63
BOUNDS = [
    ("temperature", [5e-324, 1e-30, 1.0000001e-30, 0.7, 1, 1e30, 1.7e308], [0, 0.0, -5e-324, -1, float("inf"),
                                                                            float("nan"), float("-inf")]),
    ("top_p", [5e-324, 0.5, 1, 1.0], [0, -1e-9, 1.0000001, 2, float("nan"), float("inf")]),
    ("top_k", [0, 1, BIG - 1], [-1, BIG, 10**400]),
    ("repetition_penalty", [0.01, 0.0100001, 1, 99.99999, 100], [0.00999999, 0, 100.00001, 1e308, float("inf"),
                                                                 float("nan")]),
    ("no_repeat_ngram_size", [0, 1, BIG - 1], [-1, BIG]),
    ("num_beams", [1, BIG - 1], [0, BIG]),
    ("num_return_sequences", [1, BIG - 1], [0, BIG]),
    ("max_length", [1, BIG - 1], [0, -44, BIG]),
    ("seed", [None, -1, 0, BIG - 1], [-2, BIG]),
    ("batch_size", [None, 1, BIG - 1], [0, BIG]),
]


@pytest.mark.parametrize("field, accepted, refused", BOUNDS, ids=[b[0] for b in BOUNDS])
def test_both_sides_of_every_documented_bound(field, accepted, refused):
    extra = {"mode": "beam", "num_beams": BIG - 1} if field == "num_return_sequences" else {}
    for value in accepted:
        assert getattr(GenerationParams.build(**extra, **{field: value}), field) == value
    for value in refused:
        with pytest.raises(InvalidParameterError) as info:
            GenerationParams.build(**{field: value})
        assert info.value.errors[0]["field"] == field and P.ALLOWED[field] in str(info.value)
        body = json.dumps(info.value.as_json(), allow_nan=False)  # valid JSON whatever the value was
        assert json.loads(body)["fields"][0]["field"] == field


@pytest.mark.parametrize("value, shown", [(float("inf"), "'inf'"), (float("nan"), "'nan'"),
                                          (float("-inf"), "'-inf'")])
def test_non_finite_values_are_named_and_serialisable_in_every_field(value, shown):
    for body in [{"temperature": value}, {"top_k": value}, {"seed": value}, {"colour": value},
                 {"input": [value]}, {"input": "x", "max_length": value}]:
        with pytest.raises(InvalidParameterError) as info:
            GenerationParams.from_dict(body)
        text = json.dumps(info.value.as_json(), allow_nan=False)
        assert "not a finite number" in str(info.value) or "unknown parameter" in str(info.value) or \
            "not a string" in str(info.value)
        assert shown.strip("'") in text


def test_jsonable():
    assert P.jsonable({"a": [1, 2.5, float("inf"), None, True], 3: object}) == \
        {"a": [1, 2.5, "inf", None, True], "3": repr(object)}


def test_extreme_temperatures_map_to_their_limits_for_transformers():
    sample = GenerationParams.build(mode="sample", temperature=1e-31, top_k=40).settings().transformers_kwargs()
    assert (sample["temperature"], sample["top_k"]) == (1.0, 1)  # T -> 0: only the likeliest token(s)
    sample = GenerationParams.build(mode="sample", temperature=1e-30, top_k=40).settings().transformers_kwargs()
    assert (sample["temperature"], sample["top_k"]) == (1e-30, 40)  # at the floor: as given
    hot = GenerationParams.build(mode="sample-top-p", temperature=1e300).settings().transformers_kwargs()
    assert hot["temperature"] == P.TEMPERATURE_CEILING == 1e30
    assert GenerationParams.build(mode="sample", temperature=1e30).settings().transformers_kwargs()["temperature"] \
        == 1e30


@pytest.mark.parametrize("longest, max_length, words, absent", [
    (300, 1, "shorten the prompt by 45 tokens or pass fit_context=true to drop its oldest 45 tokens", "max_length to"),
    (256, 1, "shorten the prompt by 1 token or pass fit_context=true to drop its oldest 1 token", "max_length to"),
    (255, 2, "lower max_length to <= 1, shorten the prompt by 1 token or pass fit_context=true", "<= 0"),
    (200, 100, "lower max_length to <= 56, shorten the prompt by 44 tokens", "<= -"),
])
def test_context_errors_suggest_only_possible_values(longest, max_length, words, absent):
    with pytest.raises(InvalidParameterError) as info:
        P.check_context([longest], GenerationParams.build(max_length=max_length), 256)
    assert words in str(info.value) and absent not in str(info.value)
    with pytest.raises(InvalidParameterError, match="max_length must be <= 255"):
        P.check_context([1], GenerationParams.build(max_length=256), 256)
