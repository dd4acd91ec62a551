"""`gpt2lab generate` and `gpt2lab batch` (restartable, one error record per bad line)."""
from __future__ import annotations

import json

import pytest

import gpt2lab
from gpt2lab import cli
from gpt2lab.cli import generate as generation_cli
from gpt2lab.serving import batch


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_lm):
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_lm.model.save_pretrained(folder)
    tiny_lm.tokenizer.save_pretrained(folder)
    return str(folder)


def test_generate_command_prints_the_texts(tiny_dir, tiny_lm, capsys):
    assert cli.main(["generate", "Hello there", "--model", tiny_dir, "--device", "cpu", "--mode", "greedy",
                     "--length", "6"]) == 0
    out = capsys.readouterr().out
    assert out == gpt2lab.generate(tiny_lm, "Hello there", mode="greedy", max_length=6)[0] + "\n"


def test_generate_command_json_and_ignored_note(tiny_dir, capsys):
    assert cli.main(["generate", "Hi", "--model", tiny_dir, "--device", "cpu", "--json", "-n", "2", "--k", "4",
                     "--num-beams", "3", "--seed", "9", "--max-length", "3"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert len(record["output"]) == 2 and record["seed"] == 9 and record["ignored"] == ["num_beams"]
    assert record["params"]["top_k"] == 4  # set explicitly: applies in every sampling mode
    assert "ignores num_beams" in captured.err


def test_command_line_and_api_share_one_definition():
    parser = cli.build_parser()
    args = parser.parse_args(["generate", "x", "--p", "0.5", "--nsamples", "2", "--no-include-prefix"])
    params = generation_cli.params_from_args(args, "x")
    assert (params.top_p, params.num_return_sequences, params.include_prefix) == (0.5, 2, False)
    assert params.model_fields_set == {"input", "top_p", "num_return_sequences", "include_prefix"}
    help_text = parser._subparsers._group_actions[0].choices["generate"].format_help()
    for name in gpt2lab.GenerationParams.model_fields:
        if name != "input":
            assert "--" + name.replace("_", "-") in help_text


@pytest.mark.parametrize("argv, words", [
    (["--temperature", "0"], "temperature=0.0 is not allowed"),
    (["--top-p", "2"], "top_p=2.0 is not allowed"),
    (["--mode", "beam", "--num-beams", "2", "-n", "4"], "num_beams=2"),
    (["--max-length", "5000"], "leaves no room"),
])
def test_generate_command_bad_values_exit_2_with_one_line(tiny_dir, capsys, argv, words):
    assert cli.main(["generate", "Hello", "--model", tiny_dir, "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gpt2lab generate: error:") and words in err[-1]


def test_generate_command_rejects_wrong_types_and_modes(capsys):
    for argv in (["--top-k", "many"], ["--mode", "nucleus"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["generate", "Hello", *argv])
        assert info.value.code == 2
    assert "invalid choice: 'nucleus'" in capsys.readouterr().err


REQUESTS = [
    '{"input": "The sea", "max_length": 4, "seed": 1}',
    '{"input": "A bad one", "temperature": 0}',
    'this is not json',
    '',
    '[1, 2, 3]',
    '{"input": "Greedy", "mode": "greedy", "max_length": 3, "temperature": 0.4}',
    '{"input": ["two", "prompts"], "max_length": 3, "num_return_sequences": 2, "seed": 5}',
    '{"input": "x", "colour": "blue"}',
]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_batch_writes_one_record_per_line_in_order(tiny_lm, tmp_path):
    requests, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    _write(requests, REQUESTS)
    counts = batch.run_batch(tiny_lm, requests, results, progress=False)
    assert counts == {"total": 8, "skipped": 0, "ok": 3, "errors": 5}
    records = _read(results)
    assert [r["line"] for r in records] == list(range(1, 9))
    assert [r["ok"] for r in records] == [True, False, False, False, False, True, True, False]
    assert records[0]["seed"] == 1 and len(records[0]["output"]) == 3
    assert records[0]["output"] == list(gpt2lab.generate(tiny_lm, "The sea", max_length=4, seed=1))
    assert "temperature=0" in records[1]["error"] and records[1]["fields"][0]["field"] == "temperature"
    assert "malformed JSON" in records[2]["error"]
    assert "empty line" in records[3]["error"]
    assert "must be a JSON object" in records[4]["error"]
    assert records[5]["ignored"] == ["temperature"] and len(records[5]["output"]) == 1
    assert [len(g) for g in records[6]["output"]] == [2, 2]
    assert "unknown parameter 'colour'" in records[7]["error"]


def test_batch_restarts_without_redoing_finished_lines(tiny_lm, tmp_path, monkeypatch):
    requests, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    _write(requests, REQUESTS)
    batch.run_batch(tiny_lm, requests, results, progress=False)
    complete = results.read_bytes()
    # an interrupted run: three finished lines and half of the fourth
    lines = complete.split(b"\n")
    results.write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:10])
    seen = []
    original = batch.process_line
    monkeypatch.setattr(batch, "process_line", lambda lm, n, line: seen.append(n) or original(lm, n, line))
    counts = batch.run_batch(tiny_lm, requests, results, progress=False)
    assert seen == [4, 5, 6, 7, 8] and counts["skipped"] == 3
    assert results.read_bytes() == complete  # seeded requests: identical to the uninterrupted run
    seen.clear()
    assert batch.run_batch(tiny_lm, requests, results, progress=False)["skipped"] == 8 and seen == []


def test_batch_refuses_results_of_other_requests(tiny_lm, tmp_path):
    requests, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    _write(requests, REQUESTS[:2])
    batch.run_batch(tiny_lm, requests, results, progress=False)
    _write(requests, ['{"input": "something else", "max_length": 2}', REQUESTS[1]])
    with pytest.raises(ValueError, match="written for different requests"):
        batch.run_batch(tiny_lm, requests, results, progress=False)
    assert batch.run_batch(tiny_lm, requests, results, overwrite=True, progress=False)["ok"] == 1
    results.write_text("not a record\n")
    with pytest.raises(ValueError, match="not a result record"):
        batch.run_batch(tiny_lm, requests, results, progress=False)


def test_batch_command_end_to_end(tiny_dir, tmp_path, capsys):
    requests, results = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(requests, REQUESTS[:3])
    assert cli.main(["batch", str(requests), str(results), "--model", tiny_dir, "--device", "cpu"]) == 0
    assert "3 requests: 0 already done, 1 ok, 2 errors" in capsys.readouterr().err
    assert len(_read(results)) == 3
    assert cli.main(["batch", str(tmp_path / "missing.jsonl"), str(results)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--temperature", "inf"], "temperature=inf is not allowed (not a finite number)"),
    (["--temperature", "nan"], "temperature=nan is not allowed (not a finite number)"),
    (["--top-p=-inf"], "top_p=-inf is not allowed (not a finite number)"),
    (["--repetition-penalty", "1e309"], "repetition_penalty=inf is not allowed"),
    (["--repetition-penalty", "0.001"], "0.01 <= repetition_penalty <= 100"),
    (["--seed", str(2**63)], "seed=9223372036854775808 is not allowed"),
])
def test_generate_command_refuses_non_finite_and_out_of_range_numbers(capsys, argv, words):
    assert cli.main(["generate", "Hello", *argv]) == 2  # refused before any model is loaded
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpt2lab generate: error:") and words in err[0]


def test_an_error_while_generating_is_one_line_not_a_traceback(tiny_dir, capsys, monkeypatch):
    from gpt2lab.generation import pipeline

    def failing(*args, **kwargs):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")

    monkeypatch.setattr(pipeline, "transformers_call", failing)
    assert cli.main(["generate", "Hello", "--model", tiny_dir, "--device", "cpu", "--max-length", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gpt2lab generate: error: generation failed: no next token could be drawn")
    assert "Traceback" not in "\n".join(err)


NON_FINITE_LINES = [
    '{"input": "x", "top_k": 1e309}',
    '{"input": "x", "temperature": NaN}',
    '{"input": "x", "temperature": -Infinity}',
    '{"input": "x", "colour": Infinity}',
    '{"input": ["ok", 1e999]}',
    '{"input": "x", "repetition_penalty": 1000}',
]


def test_batch_records_for_non_finite_numbers_are_valid_json(tiny_lm, tmp_path):
    requests, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    _write(requests, NON_FINITE_LINES)
    assert batch.run_batch(tiny_lm, requests, results, progress=False)["errors"] == len(NON_FINITE_LINES)

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    records = [json.loads(line, parse_constant=refuse) for line in results.read_text().splitlines()]
    assert [r["fields"][0]["field"] for r in records] == ["top_k", "temperature", "temperature", "colour", "input",
                                                          "repetition_penalty"]
    assert [r["fields"][0]["value"] for r in records][:4] == ["inf", "nan", "-inf", "inf"]
    assert "not a finite number" in records[1]["error"] and "0.01 <= repetition_penalty" in records[5]["error"]


def test_batch_reports_a_failure_while_generating_as_an_error_record(tiny_lm, tmp_path, monkeypatch):
    from gpt2lab.generation import pipeline

    def failing(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(pipeline, "transformers_call", failing)
    requests, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    _write(requests, ['{"input": "x", "max_length": 2}'])
    batch.run_batch(tiny_lm, requests, results, progress=False)
    record = _read(results)[0]
    assert record["ok"] is False and "ran out of memory" in record["error"]
    assert record["fields"][0]["field"] == "(generation)"
