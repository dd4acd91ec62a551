"""Fine-tuning on tiny models: input formats, CSV wrapping, bad-data reports, the tokenised-data cache,
runs (resume after kill -9, fresh start, LoRA, frozen embeddings) and generation from a run."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT

from gpt2lab.training import (
    START_TOKEN,
    DataError,
    PackedExamples,
    StreamBlocks,
    add_start_token,
    finetune,
    load_run,
    prepare_data,
    tokenised,
)
from gpt2lab.training import loop as training

SHORT_TEXTS = ROOT / "data" / "short_texts.csv"


pytestmark = pytest.mark.usefixtures("one_thread")


def rows() -> list[str]:
    with open(SHORT_TEXTS, newline="") as fh:
        return [r[0] for r in csv.reader(fh)][1:]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A 2-layer GPT-2 with its own 400-token byte-level BPE, saved like a downloaded model."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from gpt2lab.basics.bpe import train_bpe

    tok = train_bpe(rows(), vocab_size=400)
    torch.manual_seed(0)
    eos = tok.eos_token_id
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=2, n_head=2, n_embd=32, n_positions=64,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=eos,
                                       eos_token_id=eos))
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def tune(data, tiny_dir, tmp_path, **kw):
    settings = dict(steps=3, run_name="run", checkpoint_dir=tmp_path / "ck", cache_dir=tmp_path / "cache",
                    block_size=16, batch_size=2, sample_every=0, progress=False, verbose=False, device="cpu",
                    learning_rate=3e-3)
    return finetune(data, str(tiny_dir) if isinstance(tiny_dir, Path) else tiny_dir, **{**settings, **kw})


def write_csv(path: Path, texts: list[str]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    return path


def story(n_lines=40) -> str:
    return "\n".join(rows()[:n_lines]) + "\n"


# ============================================================================ layouts

def test_stream_blocks_known_answer():
    ds = StreamBlocks([np.arange(11)], block_size=4)
    assert len(ds) == 3
    assert ds[0]["input_ids"].tolist() == [0, 1, 2, 3] and ds[0]["labels"].tolist() == [1, 2, 3, 4]
    assert ds[1]["input_ids"].tolist() == [4, 5, 6, 7] and ds[1]["labels"].tolist() == [5, 6, 7, 8]
    # the tail: the last 4 inputs of the stream, labels already learned by block 1 are masked
    assert ds[2]["input_ids"].tolist() == [6, 7, 8, 9] and ds[2]["labels"].tolist() == [-100, -100, 9, 10]
    assert ds.waste == pytest.approx(2 / 12)
    assert StreamBlocks([np.arange(9)], 4).waste == 0  # divides evenly: no tail block
    with pytest.raises(DataError, match="4 tokens, fewer than one block of 4"):
        StreamBlocks([np.arange(4)], 4)


def test_packed_examples_known_answer():
    examples = [np.full(n, n) for n in (3, 5, 2, 4)]
    ds = PackedExamples(examples, block_size=8, pad_id=0)
    # capacity 9 tokens per block: best fit, longest first -> {5, 4} and {3, 2}
    assert len(ds) == 2
    contents = [sorted(set(ds[i]["input_ids"][ds[i]["labels"] != -100].tolist()) - {0}) for i in range(2)]
    assert sorted(contents) == [[3, 2], [5, 4]] or sorted(map(sorted, contents)) == [[2, 3], [4, 5]]
    assert ds.padding == (8 - 8) + (8 - 4)
    assert ds.waste == pytest.approx(4 / 16)
    with pytest.raises(DataError, match="example of 10 tokens does not fit a block of 8"):
        PackedExamples([np.zeros(10)], block_size=8, pad_id=0)


# ============================================================================ formats

def test_txt_is_packed_across_the_whole_text(tiny_dir, tokenizer, tmp_path):
    text = story()
    path = write(tmp_path / "story.txt", text)
    prepared = prepare_data(path, tokenizer, cache_dir=False)
    report = prepared.report
    assert (report.format, report.layout, report.n_examples, report.wrapped) == ("txt", "stream", 1, False)
    cut = int(len(text) * 0.9)  # the last 10 % of the characters validate, as gpt2lab.data.split_text does
    eos = tokenizer.eos_token_id
    assert prepared.train[0].tolist() == tokenizer(text[:cut])["input_ids"] + [eos]
    assert prepared.val[0].tolist() == tokenizer(text[cut:])["input_ids"] + [eos]
    blocks = StreamBlocks(prepared.train, 16)
    learned = torch.cat([blocks[i]["labels"][blocks[i]["labels"] != -100] for i in range(len(blocks))])
    assert learned.tolist() == prepared.train[0][1:].tolist()  # every token learned exactly once, nothing dropped

    result = tune(path, tiny_dir, tmp_path, steps=4)
    assert result.steps == 4 and result.checkpoint.name == "checkpoint-4"
    assert 1 < result.perplexity_after < result.perplexity_before  # a random model improves fast
    assert result.data.waste < 0.05
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["perplexity_before"] == pytest.approx(result.perplexity_before)
    assert info["eval"]["stride"] == 8  # half a block by default
    assert (result.run_dir / "loss.png").stat().st_size > 1000


def test_csv_rows_are_wrapped_and_the_start_token_added(tiny_dir, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    texts = rows()[:30]
    path = write_csv(tmp_path / "texts.csv", texts)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    old_vocab = model.get_input_embeddings().num_embeddings
    mean_before = model.get_input_embeddings().weight.mean(0).detach().clone()
    assert add_start_token(model, tokenizer) == [START_TOKEN]
    start_id = tokenizer.convert_tokens_to_ids(START_TOKEN)
    assert start_id == old_vocab and len(tokenizer) == old_vocab + 1
    assert model.get_input_embeddings().num_embeddings == old_vocab + 1
    assert torch.allclose(model.get_input_embeddings().weight[start_id], mean_before)  # the mean embedding
    assert model.get_output_embeddings().weight.shape[0] == old_vocab + 1
    assert add_start_token(model, tokenizer) == []  # a second call adds nothing

    prepared = prepare_data(path, tokenizer, cache_dir=False, val_fraction=0.1)
    assert prepared.report.wrapped and prepared.report.header == "text"
    assert prepared.report.n_examples == 30 and (prepared.report.n_train, prepared.report.n_val) == (27, 3)
    train_texts = {t: i for i, t in enumerate(texts)}
    for ids in prepared.train + prepared.val:
        assert ids[0] == start_id and ids[-1] == tokenizer.eos_token_id
        decoded = tokenizer.decode(ids.tolist())
        assert decoded.startswith(START_TOKEN) and decoded.endswith(tokenizer.eos_token)
        assert decoded[len(START_TOKEN):-len(tokenizer.eos_token)] in train_texts
    assert sorted(prepared.report.__dict__["n_train"] for _ in [0]) == [27]

    result = tune(path, tiny_dir, tmp_path, steps=2)
    assert result.data.added_tokens == [START_TOKEN]
    lm = load_run("run", checkpoint_dir=tmp_path / "ck", verbose=False)
    assert lm.tokenizer.convert_tokens_to_ids(START_TOKEN) == old_vocab  # saved with the checkpoint
    assert lm.model.get_input_embeddings().num_embeddings == old_vocab + 1
    assert lm.info["start_token"] == START_TOKEN and lm.info["end_token"] == tokenizer.eos_token
    assert lm.tokenizer(START_TOKEN + "The")["input_ids"][0] == old_vocab


def test_jsonl_with_a_text_field(tiny_dir, tokenizer, tmp_path):
    texts = rows()[:12]
    path = write(tmp_path / "a.jsonl", "".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    prepared = prepare_data(path, tokenizer, cache_dir=False, val_fraction=0.25)
    assert prepared.report.format == "jsonl" and prepared.report.n_examples == 12
    assert (prepared.report.n_train, prepared.report.n_val) == (9, 3)
    got = sorted(tokenizer.decode(ids[:-1].tolist()) for ids in prepared.train + prepared.val)
    assert got == sorted(texts)

    other = write(tmp_path / "b.jsonl", "".join(json.dumps({"body": t}) + "\n" for t in texts))
    prepared = prepare_data(other, tokenizer, cache_dir=False, text_field="body", val_fraction=0)
    assert [tokenizer.decode(ids[:-1].tolist()) for ids in prepared.train] == texts
    result = tune(other, tiny_dir, tmp_path, text_field="body", steps=2, val_fraction=0.2)
    assert result.steps == 2 and result.data.n_examples == 12


def test_a_folder_of_text_files(tiny_dir, tokenizer, tmp_path):
    folder = tmp_path / "corpus"
    write(folder / "a.txt", story(15))
    write(folder / "deeper" / "b.txt", "\n".join(rows()[50:70]))
    write(folder / "notes.json", "{}")
    prepared = prepare_data(folder, tokenizer, cache_dir=False, val_fraction=0.5)
    report = prepared.report
    assert report.format == "folder" and report.n_examples == 2 and report.ignored_files == ["notes.json"]
    assert "notes.json" in str(report)  # not read, and said so
    assert [ids[-1] for ids in prepared.train + prepared.val] == [tokenizer.eos_token_id] * 2
    result = tune(folder, tiny_dir, tmp_path, steps=2, val_fraction=0.5)
    assert result.steps == 2


def test_line_by_line_keeps_every_example_whole(tiny_dir, tokenizer, tmp_path):
    path = write(tmp_path / "lines.txt", story(30))
    prepared = prepare_data(path, tokenizer, cache_dir=False, line_by_line=True, val_fraction=0.1)
    assert prepared.report.layout == "examples" and prepared.report.n_examples == 30
    assert prepared.train_lines[0][0] == "lines.txt"
    blocks = PackedExamples(prepared.train, 64, tokenizer.eos_token_id, prepared.train_lines)
    contents = []
    for i in range(len(blocks)):
        inputs, labels = blocks[i]["input_ids"], blocks[i]["labels"]
        n = int((labels != -100).sum())
        assert (labels[n:] == -100).all()  # padding only at the end
        contents.append([int(inputs[0])] + labels[:n].tolist())
    for ex in prepared.train:  # each example appears whole, inside one block
        ex = ex.tolist()
        hits = [c for c in contents if any(c[j:j + len(ex)] == ex for j in range(len(c) - len(ex) + 1))]
        assert len(hits) >= 1
    assert sum(len(c) for c in contents) == sum(len(e) for e in prepared.train)
    result = tune(path, tiny_dir, tmp_path, steps=2, line_by_line=True, block_size=64)
    assert result.data.layout == "examples" and 0 <= result.data.waste < 0.5


# ============================================================================ bad data

def test_bad_csv_rows_are_reported_with_line_numbers(tiny_dir, tokenizer, tmp_path):
    good = ['"' + t.replace('"', '""') + '"' for t in rows()[:8]]  # quoted, as they hold commas
    lines = ["text", good[0], good[1], "", good[2], "   ", good[3], good[4], "\"\""] + good[5:] + ["a,b"]
    path = write(tmp_path / "bad.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        prepare_data(path, tokenizer, cache_dir=False, wrap=False)
    found = [(i.line, i.kind) for i in err.value.issues]
    assert found == [(4, "empty"), (6, "empty"), (9, "empty"), (13, "bad_columns")]
    assert "bad.csv line 4: empty row" in str(err.value) and "bad_rows='skip'" in str(err.value)

    skipped = prepare_data(path, tokenizer, cache_dir=False, wrap=False, bad_rows="skip", val_fraction=0)
    assert skipped.report.n_examples == 8 and len(skipped.report.issues) == 4
    assert "4 rows left out" in str(skipped.report) and "bad.csv line 6" in str(skipped.report)


def test_undecodable_bytes_are_reported(tokenizer, tmp_path):
    raw = b"first line\n" + b"caf\xe9 au lait\n" + b"third line\n"
    path = write(tmp_path / "latin.txt", raw)
    with pytest.raises(DataError) as err:
        prepare_data(path, tokenizer, cache_dir=False)
    (issue,) = err.value.issues
    assert (issue.line, issue.kind) == (2, "undecodable") and "0xe9 at column 4" in issue.detail
    skipped = prepare_data(path, tokenizer, cache_dir=False, bad_rows="skip", val_fraction=0)
    assert tokenizer.decode(skipped.train[0][:-1].tolist()) == "first line\nthird line\n"
    assert skipped.report.issues[0].line == 2
    # the right encoding reads every line
    ok = prepare_data(path, tokenizer, cache_dir=False, encoding="latin-1", val_fraction=0)
    assert "café" in tokenizer.decode(ok.train[0].tolist())
    with pytest.raises(ValueError, match="encoding='klingon' is not a known"):
        prepare_data(path, tokenizer, cache_dir=False, encoding="klingon")


def test_bad_jsonl_records_are_reported(tokenizer, tmp_path):
    lines = [json.dumps({"text": "a fine line"}), "{not json", json.dumps({"title": "no text"}),
             json.dumps({"text": 42}), "", json.dumps({"text": "  "}), json.dumps({"text": "another fine line"})]
    path = write(tmp_path / "bad.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        prepare_data(path, tokenizer, cache_dir=False)
    assert [(i.line, i.kind) for i in err.value.issues] == [
        (2, "bad_json"), (3, "missing_field"), (4, "not_text"), (5, "empty"), (6, "empty")]
    assert "no field 'text' (found ['title'])" in str(err.value)


def test_a_file_too_small_for_one_block(tiny_dir, tokenizer, tmp_path):
    path = write(tmp_path / "tiny.txt", "Hello there.\n")
    with pytest.raises(DataError, match=r"tiny.txt: the training text has \d+ tokens, fewer than one block of 16"):
        tune(path, tiny_dir, tmp_path, val_fraction=0.2)
    empty = write(tmp_path / "empty.txt", "\n\n")
    with pytest.raises(DataError, match="empty.txt: the file holds no text"):
        prepare_data(empty, tokenizer, cache_dir=False)
    long_line = write(tmp_path / "long.txt", "short\n" + " ".join(rows()[:10]) + "\nshort again\n")
    with pytest.raises(DataError, match="long.txt line 2: example of \\d+ tokens does not fit a block of 16"):
        tune(long_line, tiny_dir, tmp_path, line_by_line=True, val_fraction=0)


def test_the_cli_reports_bad_data_in_one_line(tiny_dir, tmp_path, capsys):
    from gpt2lab import cli

    path = write(tmp_path / "bad.csv", "text\nfine row\n\nanother fine row\n")
    code = cli.main(["finetune", str(path), "--model", str(tiny_dir), "--steps", "2", "--checkpoint-dir",
                     str(tmp_path / "ck"), "--no-cache", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("gpt2lab finetune: error: 1 problem in the data: bad.csv line 3: empty row")
    assert not (tmp_path / "ck" / "run1").exists() or not training.list_checkpoints(tmp_path / "ck" / "run1")


# ============================================================================ options: one definition

# a value other than the default for every FinetuneConfig field
OPTION_VALUES = dict(
    steps=7, run_name="r", checkpoint_dir="runs", resume=False, block_size=32, batch_size=3, grad_accum=2,
    learning_rate=0.002, warmup_steps=1, min_lr_ratio=0.2, weight_decay=0.01, grad_clip=0.5, seed=3,
    mixed_precision="no", device="cpu", checkpoint_every=2, keep_last=2, keep_best=True, sample_every=0,
    sample_length=5, sample_prompt="Hi", log_every=1, val_fraction=0.2, val="val.txt", eval_every=3, eval_batches=2,
    eval_stride=8, eval_max_tokens=100, format="csv", line_by_line=True, wrap=False, text_field="body",
    csv_header=False, encoding="latin-1", bad_rows="skip", start_token="<s>", cache=False, cache_dir="cache",
    only_train_transformer_layers=True, lora=True, lora_r=2, lora_alpha=4.0, lora_dropout=0.1,
    lora_target_modules=["c_attn", "c_fc"], progress=False, verbose=False)


def _argv(values: dict) -> list[str]:
    argv = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            argv += [flag, *value]
        else:
            argv += [flag, str(value)]
    return argv


def _parse(argv):
    from gpt2lab.cli import build_parser
    from gpt2lab.cli.finetune import config_from_args

    return config_from_args(build_parser().parse_args(["finetune", "data.txt", *argv]))


def test_every_option_is_a_finetune_keyword_and_a_command_line_option():
    import dataclasses
    import inspect

    from gpt2lab.cli import build_parser
    from gpt2lab.training import FinetuneConfig

    fields = dataclasses.fields(FinetuneConfig)
    assert set(OPTION_VALUES) == {f.name for f in fields}  # a new option gets a value here too
    assert all(OPTION_VALUES[f.name] != f.default for f in fields)
    keywords = inspect.signature(finetune).parameters
    sub = build_parser()._subparsers._group_actions[0].choices["finetune"]
    flags = {flag for action in sub._actions for flag in action.option_strings}
    for f in fields:
        assert keywords[f.name].kind is inspect.Parameter.KEYWORD_ONLY and keywords[f.name].default == f.default
        assert "--" + f.name.replace("_", "-") in flags, f.name
        assert f"{f.name} (" in finetune.__doc__  # listed with its type, default and help
    assert {"--fresh", "--no-header", "--lr"} <= flags  # the other spellings the command has always had


def test_the_command_line_and_python_give_the_same_config():
    from gpt2lab.training import FinetuneConfig

    assert _parse(_argv(OPTION_VALUES)) == FinetuneConfig(**OPTION_VALUES)
    assert _parse([]) == FinetuneConfig()  # options not given keep the same defaults as keywords not given
    assert _parse(["--fresh", "--no-header", "--lr", "1"]) == FinetuneConfig(resume=False, csv_header=False,
                                                                            learning_rate=1.0)
    base = FinetuneConfig(steps=5)
    assert FinetuneConfig.build(base, seed=2) == FinetuneConfig(steps=5, seed=2) and base.seed == 0


def test_options_that_are_not_allowed_get_one_clear_line(tmp_path, capsys):
    from gpt2lab import cli
    from gpt2lab.training import FinetuneOptionError

    with pytest.raises(TypeError, match="'stepz' is not a fine-tuning option; did you mean 'steps'"):
        finetune(tmp_path, stepz=3)
    with pytest.raises(FinetuneOptionError, match=r"lora_dropout=1 is not allowed; lora_dropout must be a number in "
                                                  r"\[0, 1\)"):
        finetune(tmp_path, lora_dropout=1)
    with pytest.raises(FinetuneOptionError, match="batch_size='4' is not allowed; batch_size must be a whole number"):
        finetune(tmp_path, batch_size="4")
    with pytest.raises(FinetuneOptionError, match="cache=False turns the cache off"):
        finetune(tmp_path, cache_dir=False)
    assert cli.main(["finetune", str(tmp_path), "--val-fraction", "1.5", "--checkpoint-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gpt2lab finetune: error: val_fraction=1.5 is not allowed; val_fraction must be a number in [0, 1)"]
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


# ============================================================================ cache

def test_tokenised_data_is_cached(tokenizer, tmp_path, monkeypatch):
    path = write(tmp_path / "story.txt", story())
    first = prepare_data(path, tokenizer, cache_dir=tmp_path / "cache")
    assert not first.report.from_cache and Path(first.report.cache_file).is_file()

    def no_tokenising(*a, **kw):
        raise AssertionError("tokenised again although the cache holds the result")

    with monkeypatch.context() as m:
        m.setattr(tokenised, "_encode", no_tokenising)
        second = prepare_data(path, tokenizer, cache_dir=tmp_path / "cache")
    assert second.report.from_cache and second.report.cache_file == first.report.cache_file
    assert [a.tolist() for a in second.train] == [a.tolist() for a in first.train]
    assert [a.tolist() for a in second.val] == [a.tolist() for a in first.val]
    # a different file, a different tokenizer or different settings each make a new entry
    write(path, story() + "One more line.\n")
    assert not prepare_data(path, tokenizer, cache_dir=tmp_path / "cache").report.from_cache
    assert not prepare_data(path, tokenizer, cache_dir=tmp_path / "cache", val_fraction=0.2).report.from_cache
    tokenizer.add_tokens([START_TOKEN], special_tokens=True)
    assert not prepare_data(path, tokenizer, cache_dir=tmp_path / "cache").report.from_cache
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4


def test_the_skip_report_survives_the_cache(tokenizer, tmp_path):
    path = write(tmp_path / "bad.csv", "text\nfine row\n\nanother fine row\nthird row\n")
    first = prepare_data(path, tokenizer, cache_dir=tmp_path / "c", bad_rows="skip", val_fraction=0, wrap=False)
    again = prepare_data(path, tokenizer, cache_dir=tmp_path / "c", bad_rows="skip", val_fraction=0, wrap=False)
    assert again.report.from_cache and [(i.line, i.kind) for i in again.report.issues] == [(3, "empty")]
    assert first.report.issues == again.report.issues


# ============================================================================ runs

def _cli(data, model_dir, ck, cache, steps, run="killed"):
    return [sys.executable, "-m", "gpt2lab.cli", "finetune", str(data), "--model", str(model_dir),
            "--steps", str(steps), "--run-name", run, "--checkpoint-dir", str(ck), "--cache-dir", str(cache),
            "--checkpoint-every", "10", "--keep-last", "3", "--block-size", "16", "--batch-size", "2",
            "--sample-every", "0", "--eval-every", "100", "--lr", "3e-3", "--device", "cpu", "--no-progress"]


def test_resume_after_kill_9_mid_training(tiny_dir, tmp_path):
    """A real `gpt2lab finetune` process is killed with SIGKILL mid-training; running the same command
    again finishes the run: same final step, every checkpoint on disk loads, and the final weights equal
    those of a run that was never interrupted."""
    data = write(tmp_path / "story.txt", story(100))
    ck, cache, steps = tmp_path / "ck", tmp_path / "cache", 120
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(_cli(data, tiny_dir, ck, cache, steps), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = ck / "killed"
    deadline = time.time() + 240
    while not (run_dir / "checkpoint-20").is_dir():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stopped_at = training.read_checkpoint_state(training.latest_checkpoint(run_dir))["step"]
    assert 20 <= stopped_at < steps, "the process was not killed mid-training"
    for ckpt in training.list_checkpoints(run_dir):  # everything left by the killed process loads
        load_run(ckpt, verbose=False)

    done = subprocess.run(_cli(data, tiny_dir, ck, cache, steps), cwd=ROOT, env=env, capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert f"resuming at step {stopped_at} of {steps}" in done.stdout.decode()
    checkpoints = training.list_checkpoints(run_dir)
    assert [c.name for c in checkpoints] == ["checkpoint-100", "checkpoint-110", "checkpoint-120"]
    state = training.read_checkpoint_state(checkpoints[-1])
    assert state["step"] == steps and state["history"][-1]["step"] == steps
    logged = [h["step"] for h in state["history"] if "loss" in h]
    assert logged == sorted(set(logged)) and logged[-1] == steps  # one continuous history
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp")]
    lms = [load_run(run_dir, step=training.read_checkpoint_state(c)["step"], verbose=False) for c in checkpoints]
    assert lms[-1].info["step"] == steps
    assert json.loads((run_dir / "run.json").read_text())["steps_done"] == steps

    # the same run without interruption, in this process, ends with the same weights
    straight = finetune(data, str(tiny_dir), steps=steps, run_name="straight", checkpoint_dir=ck, cache_dir=cache,
                        checkpoint_every=10, keep_last=1, block_size=16, batch_size=2, sample_every=0,
                        eval_every=100, learning_rate=3e-3, device="cpu", progress=False, verbose=False)
    for (name, a), b in zip(straight.lm.model.state_dict().items(), lms[-1].model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_fresh_start_and_run_lookup(tiny_dir, tmp_path):
    path = write(tmp_path / "story.txt", story())
    tune(path, tiny_dir, tmp_path, steps=4, checkpoint_every=2, keep_last=5)
    run_dir = tmp_path / "ck" / "run"
    assert [c.name for c in training.list_checkpoints(run_dir)] == ["checkpoint-2", "checkpoint-4"]
    again = tune(path, tiny_dir, tmp_path, steps=6, checkpoint_every=2, keep_last=5)  # continues to step 6
    assert again.resumed_from_step == 4 and again.steps == 6
    bad = write(tmp_path / "bad.txt", b"fine\n\xff\n")
    with pytest.raises(DataError, match="bad.txt line 2"):
        tune(bad, tiny_dir, tmp_path, steps=3, resume=False)
    assert len(training.list_checkpoints(run_dir)) == 3  # bad data never costs the old run its checkpoints
    fresh = tune(path, tiny_dir, tmp_path, steps=3, resume=False)
    assert fresh.resumed_from_step == 0
    assert [c.name for c in training.list_checkpoints(run_dir)] == ["checkpoint-3"]
    assert load_run(run_dir, verbose=False).info["step"] == 3
    assert load_run(run_dir / "checkpoint-3", verbose=False).info["step"] == 3
    with pytest.raises(FileNotFoundError, match=r"no run 'nope'.*runs there: \['run'\]"):
        load_run("nope", checkpoint_dir=tmp_path / "ck")
    with pytest.raises(LookupError, match=r"no checkpoint of step 2; it has steps \[3\]"):
        load_run("run", checkpoint_dir=tmp_path / "ck", step=2)
    with pytest.raises(ValueError, match="run_name='a/b' is not allowed; run_name must be a plain folder name"):
        tune(path, tiny_dir, tmp_path, run_name="a/b")
    with pytest.raises(ValueError, match="steps=0 is not allowed; steps must be a whole number >= 1"):
        tune(path, tiny_dir, tmp_path, steps=0)


def test_an_lm_passed_in_is_not_changed(tiny_dir, tmp_path):
    import gpt2lab

    lm = gpt2lab.load(tiny_dir, device="cpu", verbose=False)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    n_tokens = len(lm.tokenizer)
    path = write_csv(tmp_path / "t.csv", rows()[:20])
    result = tune(path, lm, tmp_path, steps=2)
    assert len(lm.tokenizer) == n_tokens  # the start token went to a copy
    assert all(torch.equal(before[k], v) for k, v in lm.model.state_dict().items())
    assert len(result.lm.tokenizer) == n_tokens + 1


def test_only_train_transformer_layers_keeps_the_embeddings(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    path = write(tmp_path / "story.txt", story())
    tune(path, tiny_dir, tmp_path, steps=3, only_train_transformer_layers=True)
    tuned = load_run("run", checkpoint_dir=tmp_path / "ck", verbose=False).model
    assert torch.equal(tuned.transformer.wte.weight, base.transformer.wte.weight)
    assert torch.equal(tuned.transformer.wpe.weight, base.transformer.wpe.weight)
    assert not torch.equal(tuned.transformer.h[0].mlp.c_fc.weight, base.transformer.h[0].mlp.c_fc.weight)


def test_lora_run_saves_an_adapter_and_loads_merged(tiny_dir, tmp_path):
    pytest.importorskip("peft")
    path = write_csv(tmp_path / "t.csv", rows()[:40])
    result = tune(path, tiny_dir, tmp_path, steps=4, lora=True, lora_r=4, lora_alpha=8, learning_rate=1e-2)
    files = {p.name for p in result.checkpoint.iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files
    assert result.perplexity_after < result.perplexity_before
    lm = load_run("run", checkpoint_dir=tmp_path / "ck", verbose=False)
    ids = lm.tokenizer(START_TOKEN + rows()[0])["input_ids"]
    x = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(lm.model(x).logits, result.lm.model(x).logits, atol=1e-4)
    with pytest.raises(ValueError, match="trained with LoRA"):
        tune(path, tiny_dir, tmp_path, steps=5)  # resuming it without LoRA


def test_generation_from_a_run_with_prefix_and_truncate(tiny_dir, tmp_path):
    """A model trained to memorise three rows writes one of them back, cut at the end token."""
    import gpt2lab
    from gpt2lab.training.memorisation import NoveltyIndex

    texts = ["Snow fell on the quiet harbour.", "The baker sings at dawn.", "Two owls argued about the moon."]
    path = write_csv(tmp_path / "three.csv", texts)
    tune(path, tiny_dir, tmp_path, run_name="memo", steps=120, learning_rate=1e-2, val_fraction=0, block_size=48,
         line_by_line=True, batch_size=3, warmup_steps=5, min_lr_ratio=0.5, checkpoint_every=0)
    lm = load_run("memo", checkpoint_dir=tmp_path / "ck", verbose=False)
    out = gpt2lab.generate(lm, prefix=lm.info["start_token"], truncate=lm.info["end_token"], include_prefix=False,
                           mode="greedy", max_length=40, no_repeat_ngram_size=0)
    text = out[0] if isinstance(out[0], str) else out[0][0]
    assert text in texts, text
    index = NoveltyIndex.from_run("memo", checkpoint_dir=tmp_path / "ck", n=4)
    assert index.check(text).copied_fraction == 1.0 and index.check(text).flagged
    assert index.check(text).nearest_text == text


def test_keep_best_keeps_the_weights_of_the_lowest_validation_loss(tiny_dir, tmp_path):
    from safetensors.torch import load_file

    path = write(tmp_path / "story.txt", story())
    # a large learning rate: validation loss goes down and up again, so the best is not simply the last
    result = tune(path, tiny_dir, tmp_path, steps=8, eval_every=1, checkpoint_every=1, keep_last=10,
                  keep_best=True, learning_rate=5e-2)
    val = {h["step"]: h["val_loss"] for h in result.history if "val_loss" in h}
    assert sorted(val) == list(range(1, 9))
    assert result.best_val_loss == min(val.values()) and val[result.best_step] == result.best_val_loss
    assert result.best_checkpoint == tmp_path / "ck" / "run" / training.BEST_DIR
    # the kept weights are exactly the checkpoint of that step
    kept = load_file(result.best_checkpoint / "model.safetensors")
    same_step = load_file(tmp_path / "ck" / "run" / f"checkpoint-{result.best_step}" / "model.safetensors")
    assert kept.keys() == same_step.keys() and all(torch.equal(kept[k], same_step[k]) for k in kept)
    best_lm = load_run("run", checkpoint_dir=tmp_path / "ck", best=True, verbose=False)
    assert best_lm.info["step"] == result.best_step and best_lm.info["best"] is True
    with pytest.raises(ValueError, match="not both"):
        load_run("run", checkpoint_dir=tmp_path / "ck", best=True, step=3)
    # a fresh start forgets the old run's best; a run without keep_best has none to load
    tune(path, tiny_dir, tmp_path, steps=2, resume=False)
    with pytest.raises(FileNotFoundError, match="kept no best weights"):
        load_run("run", checkpoint_dir=tmp_path / "ck", best=True)
    with pytest.raises(ValueError, match="keep_best=True needs validation data"):
        tune(path, tiny_dir, tmp_path, steps=2, keep_best=True, val_fraction=0.0)


# ============================================================================ several processes, one writer per run

PROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _launch(n_processes: int, *command: str) -> list[str]:
    """``accelerate launch`` (accelerate's own launcher) running ``command`` in ``n_processes`` processes."""
    several = ["--multi_gpu", "--main_process_port", "0"] if n_processes > 1 else []
    return [sys.executable, "-m", "accelerate.commands.launch", *several, "--num_processes", str(n_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *command]


def _finetune_cli(data, model_dir, tmp_path, run, steps, *extra) -> list[str]:
    return ["-m", "gpt2lab.cli", "finetune", str(data), "--model", str(model_dir), "--steps", str(steps),
            "--run-name", run, "--checkpoint-dir", str(tmp_path / "ck"), "--cache-dir", str(tmp_path / "cache"),
            "--checkpoint-every", "10", "--keep-last", "2", "--eval-every", "1000", "--lr", "3e-3",
            "--device", "cpu", "--no-progress", *extra]


def _wait_for(condition, proc, seconds=120, what="it"):
    deadline = time.time() + seconds
    while not condition():
        assert proc.poll() is None, f"stopped before {what}: " + proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, f"{what} did not happen in {seconds} s"
        time.sleep(0.05)


def _wait_gone(pids, seconds=10):
    import psutil

    deadline = time.time() + seconds
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.time() < deadline, f"processes {pids} still run {seconds} s after their launcher died"
        time.sleep(0.05)


def _evenly_blocked_text(tmp_path, tokenizer) -> tuple[Path, int]:
    """A text whose token stream splits into whole blocks (no masked tail block), so every block has as
    many labels as the others and two processes average exactly what one process with both batches sees."""
    for n_lines in range(60, 90):
        path = write(tmp_path / "story.txt", story(n_lines))
        n_tokens = prepare_data(path, tokenizer, cache_dir=False, val_fraction=0, progress=False).report.train_tokens
        for block in range(12, 33):
            if (n_tokens - 1) % block == 0:
                return path, block
    raise AssertionError("no text of whole blocks found")


@pytest.mark.slow
@pytest.mark.slow
def test_two_processes_split_the_data_one_writes_and_a_killed_launcher_resumes(tiny_dir, tokenizer, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on CPUs (gloo): the two processes train on
    disjoint halves of every batch, the main one alone writes the run, a second start is refused while
    it runs, both workers stop when their launcher is killed (SIGKILL), and the same command resumes and
    finishes. The result equals one process trained with both halves in each batch: no example was seen
    twice and none was skipped."""
    import psutil

    from gpt2lab.training import RunBusyError, read_holder

    data, block = _evenly_blocked_text(tmp_path, tokenizer)
    val = write(tmp_path / "val.txt", "\n".join(rows()[-8:]) + "\n")
    steps = 60
    command = _launch(2, *_finetune_cli(data, tiny_dir, tmp_path, "two", steps, "--block-size", str(block),
                                        "--batch-size", "2", "--val", str(val), "--sample-every", "20"))
    run_dir = tmp_path / "ck" / "two"
    launcher = subprocess.Popen(command, cwd=ROOT, env=PROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: (run_dir / "checkpoint-10").is_dir(), launcher, what="the first checkpoint")
    holder = read_holder(run_dir)
    workers = [p.pid for p in psutil.Process(launcher.pid).children(recursive=True)]
    assert holder["pid"] in workers and holder["launcher_pid"] == launcher.pid and len(workers) == 2
    for pid in workers:  # hold the run mid-training (still holding its lock) while we look at it
        os.kill(pid, signal.SIGSTOP)
    with pytest.raises(RunBusyError, match=rf"is being written by process {holder['pid']} .*launcher pid "
                                           rf"{launcher.pid}.*kill {holder['pid']}"):
        finetune(data, str(tiny_dir), steps=steps, run_name="two", checkpoint_dir=tmp_path / "ck", verbose=False)
    launcher.kill()
    launcher.wait()
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    _wait_gone(workers)
    stopped_at = training.read_checkpoint_state(training.latest_checkpoint(run_dir))["step"]
    assert 10 <= stopped_at < steps, "the launcher was not killed mid-training"

    done = subprocess.run(command, cwd=ROOT, env=PROCESS_ENV, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    out = done.stdout.decode()
    assert out.count(f"resuming at step {stopped_at} of {steps}") == 1  # one process speaks
    state = training.read_checkpoint_state(training.latest_checkpoint(run_dir))
    losses = [h["loss"] for h in state["history"] if "loss" in h]
    assert state["step"] == steps and losses[-1] < losses[0]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["steps_done"] == steps and info["tokens_seen"] == steps * 2 * 2 * block  # both processes counted
    samples = (run_dir / "samples.txt").read_text()
    sampled = [int(line.split()[2]) for line in samples.splitlines() if line.startswith("========")]
    assert [s for s in sampled if s > stopped_at] == [s for s in (20, 40, 60) if s > stopped_at]  # written once
    assert not (run_dir / ".writer.json").exists() and not [p for p in run_dir.iterdir() if p.name.startswith(".tmp")]

    # one process, both halves of every batch, never interrupted: the same weights
    one = finetune(data, str(tiny_dir), steps=steps, run_name="one", checkpoint_dir=tmp_path / "ck",
                   cache_dir=tmp_path / "cache", checkpoint_every=0, block_size=block, batch_size=4, val=val,
                   eval_every=1000, sample_every=0, learning_rate=3e-3, device="cpu", progress=False, verbose=False)
    two = load_run(run_dir, verbose=False)
    # (a data split that repeats or skips examples differs by ~0.1; only summation order differs here, which
    # Adam turns into steps of up to ~1e-5 on the attention key biases, whose true gradient is zero)
    for (name, a), b in zip(one.lm.model.state_dict().items(), two.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4), name
    assert one.tokens_seen == info["tokens_seen"]


@pytest.mark.slow
@pytest.mark.slow
def test_one_writer_per_run_with_one_process(tiny_dir, tmp_path):
    """A run started by `accelerate launch` (one process): a second `gpt2lab finetune` on the same run gets
    one line naming the writer; killing the launcher stops its worker; the same command then takes the
    stale run over and finishes it."""
    import psutil

    from gpt2lab.training import read_holder

    data = write(tmp_path / "story.txt", story(100))
    steps = 60
    cli = _finetune_cli(data, tiny_dir, tmp_path, "solo", steps, "--block-size", "16", "--batch-size", "2",
                        "--sample-every", "0")
    launcher = subprocess.Popen(_launch(1, *cli), cwd=ROOT, env=PROCESS_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    run_dir = tmp_path / "ck" / "solo"
    _wait_for(lambda: (run_dir / "checkpoint-10").is_dir(), launcher, what="the first checkpoint")
    holder = read_holder(run_dir)
    worker = holder["pid"]
    assert worker in [p.pid for p in psutil.Process(launcher.pid).children()]
    os.kill(worker, signal.SIGSTOP)  # hold the run mid-training (still holding its lock) while we look at it
    second = subprocess.run([sys.executable, *cli], cwd=ROOT, env=PROCESS_ENV, capture_output=True, timeout=120)
    assert second.returncode == 2
    assert second.stderr.decode().strip().splitlines() == [
        f"gpt2lab finetune: error: run {str(run_dir)!r} is being written by process {worker} on {holder['host']}, "
        f"launcher pid {launcher.pid}, started {holder['started']} ({holder['command']}); a run has one writer at a "
        f"time: wait for it to finish or stop it (kill {worker}), or use another run_name"]
    launcher.kill()
    launcher.wait()
    os.kill(worker, signal.SIGCONT)
    _wait_gone([worker])
    stopped_at = training.read_checkpoint_state(training.latest_checkpoint(run_dir))["step"]
    assert read_holder(run_dir)["pid"] == worker  # the stale holder's record is still there ...
    again = subprocess.run([sys.executable, *cli], cwd=ROOT, env=PROCESS_ENV, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-3000:]  # ... and is taken over
    assert f"resuming at step {stopped_at} of {steps}" in again.stdout.decode()
    assert training.read_checkpoint_state(training.latest_checkpoint(run_dir))["step"] == steps


def test_accelerate_launch_cpu_with_several_processes_is_refused_before_anything_is_written(tiny_dir, tmp_path):
    """accelerate 1.x starts one process for `--cpu --num_processes 2`: refused, with the command that works."""
    data = write(tmp_path / "story.txt", story(20))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               *_finetune_cli(data, tiny_dir, tmp_path, "cpu2", 5)]
    done = subprocess.run(command, cwd=ROOT, env=PROCESS_ENV, capture_output=True, timeout=120)
    assert done.returncode != 0
    ours = [line for line in done.stderr.decode().splitlines() if line.startswith("gpt2lab finetune: error:")]
    assert ours == ["gpt2lab finetune: error: `accelerate launch --cpu --num_processes N` starts one process, not N "
                    "(accelerate starts several CPU processes only with --multi_gpu or mpirun); start them with "
                    "`accelerate launch --multi_gpu --num_processes N -m gpt2lab.cli finetune ...` (CPU processes "
                    "with gloo when there is no GPU, or with --device cpu)"]
    assert not (tmp_path / "ck").exists()


PYTHON_API_SCRIPT = """
import json, sys
from accelerate import PartialState
from accelerate.state import AcceleratorState
import gpt2lab
from gpt2lab.training import ProcessSetupError

data, val, model, ck, block = sys.argv[1:6]
options = dict(steps=20, run_name="api", checkpoint_dir=ck, block_size=int(block), batch_size=2, val=val,
               checkpoint_every=0,
               sample_every=0, eval_every=1000, learning_rate=3e-3, device="cpu", progress=False, verbose=False)
PartialState()  # accelerate set up too early, without cpu=True: on a CPU each process would train alone
try:
    gpt2lab.finetune(data, model, **options)
    refused = None
except ProcessSetupError as err:
    refused = str(err)
AcceleratorState._reset_state(reset_partial_state=True)
result = gpt2lab.finetune(data, model, **options)
print(json.dumps({"refused": refused, "rank": PartialState().process_index, "world": PartialState().num_processes,
                  "steps": result.steps, "tokens": result.tokens_seen, "ppl": result.perplexity_after}))
"""


def test_the_python_api_under_accelerate_launch(tiny_dir, tokenizer, tmp_path):
    """`gpt2lab.finetune` in a script started by `accelerate launch` with two processes: both join the run
    (a state that would leave each alone is refused first, in both), one writes."""
    data, block = _evenly_blocked_text(tmp_path, tokenizer)
    val = write(tmp_path / "val.txt", "\n".join(rows()[-8:]) + "\n")
    script = write(tmp_path / "tune.py", PYTHON_API_SCRIPT)
    done = subprocess.run(_launch(2, str(script), str(data), str(val), str(tiny_dir), str(tmp_path / "ck"), str(block)),
                          cwd=ROOT, env=PROCESS_ENV, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    reports = sorted((json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")),
                     key=lambda r: r["rank"])
    tokens = 20 * 2 * 2 * block  # steps x processes x batch x tokens per block: every process counted
    assert [(r["rank"], r["world"], r["steps"], r["tokens"]) for r in reports] == [(0, 2, 20, tokens),
                                                                                  (1, 2, 20, tokens)]
    for r in reports:
        assert r["refused"].startswith("this process is one of 2 a launcher started, but accelerate was already set "
                                       "up in it as 1 process(es)")
    assert reports[0]["ppl"] is not None and reports[1]["ppl"] is None  # the main process measures and writes
    assert json.loads((tmp_path / "ck" / "api" / "run.json").read_text())["tokens_seen"] == tokens
