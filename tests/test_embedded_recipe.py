"""The recipe that makes the embedded model: its command runs end to end and keeps the best weights."""
from __future__ import annotations

import json

import pytest
import torch

from gpt2lab import embedded_recipe


def test_training_time_adds_up_over_resumed_runs():
    history = [{"step": 10, "seconds": 5.0}, {"step": 20, "seconds": 9.0, "val_loss": 3.0}, {"step": 20},
               {"step": 30, "seconds": 4.0}, {"step": 40, "seconds": 8.5}]  # resumed after step 20
    assert embedded_recipe.training_loop_seconds(history) == pytest.approx(17.5)
    assert embedded_recipe.training_loop_seconds([]) == 0.0


def test_the_recipe_takes_bf16_only_where_it_is_native(monkeypatch, capsys):
    monkeypatch.setattr(embedded_recipe, "native_bf16", lambda device="cpu": True)
    assert embedded_recipe.choose_precision("auto") == "bf16"
    assert "bfloat16 autocast: this CPU runs bf16 natively" in capsys.readouterr().out
    monkeypatch.setattr(embedded_recipe, "native_bf16", lambda device="cpu": False)
    assert embedded_recipe.choose_precision("auto") == "no"
    assert "float32: this CPU has no native bf16" in capsys.readouterr().out
    assert embedded_recipe.choose_precision("bf16") == "bf16"  # asked for explicitly: obeyed
    with pytest.raises(ValueError, match="one of auto, bf16, no"):
        embedded_recipe.choose_precision("fp8")


def test_the_recipe_refuses_an_empty_evaluation_budget(capsys):
    with pytest.raises(SystemExit):
        embedded_recipe.main(["--eval-batches", "0"])
    assert "--eval-batches must be >= 1, got 0" in capsys.readouterr().err


def test_the_recipe_command_runs_end_to_end(tmp_path, monkeypatch):
    """A few steps of the real recipe (real data, real BPE, the shipped architecture) on the path a
    CPU without native bf16 takes (forced here, whatever this machine has): float32, and the card, the
    statistics and the weights written are those of the kept (lowest validation loss) evaluation. A
    small evaluation budget keeps it to seconds on any CPU."""
    import gpt2lab
    from gpt2lab.training.loop import read_best

    monkeypatch.setattr(embedded_recipe, "native_bf16", lambda device="cpu": False)
    out, work = tmp_path / "model", tmp_path / "work"
    stats = embedded_recipe.main(["--steps", "4", "--batch-size", "2", "--out", str(out), "--work-dir", str(work),
                                  "--eval-batches", "2", "--score-chars", "4000"])
    assert stats["precision"] == "no"
    best = read_best(work)
    assert stats["kept_step"] == best["step"] and stats["kept_val_loss_packed"] == best["val_loss"]
    vals = [h["val_loss"] for h in stats["history"] if "val_loss" in h]
    assert best["val_loss"] == min(vals)
    assert json.loads((out / "training_stats.json").read_text())["parameters"] == stats["parameters"]
    assert stats["architecture"] == embedded_recipe.ARCH and stats["train_seconds"] > 0
    card = embedded_recipe.write_model_card(out).read_text()
    assert f"step {best['step']}, the evaluation with the lowest validation loss" in card
    lm = gpt2lab.load(str(out), device="cpu")
    kept = gpt2lab.load(best["path"], device="cpu")
    for (name, a), b in zip(lm.model.state_dict().items(), kept.model.state_dict().values()):
        assert torch.allclose(a, b.half().float()), name  # shipped = kept weights, rounded to float16
    assert lm.tokenizer.get_vocab() == kept.tokenizer.get_vocab()


def test_the_issue_18_options_reach_the_data_the_model_and_the_record(tmp_path):
    """--vocab-size, --dropout and the repeat shares change what is trained, every evaluation logs the induction
    and copy figures, and the recorded command repeats the options (so the run can be reproduced)."""
    from gpt2lab.training.repeats import RepeatingWindows

    stats = embedded_recipe.main(["--steps", "2", "--batch-size", "2", "--out", str(tmp_path / "model"),
                                  "--work-dir", str(tmp_path / "work"), "--eval-batches", "1", "--score-chars", "3000",
                                  "--vocab-size", "512", "--dropout", "0.1", "--random-share", "0.5",
                                  "--span-share", "0.25", "--precision", "no"])
    assert stats["architecture"]["vocab_size"] == 512 and stats["dropout"] == 0.1
    assert stats["data_choice"]["random_share"] == 0.5 and stats["data_choice"]["span_share"] == 0.25
    assert stats["command"].endswith("--vocab-size 512 --dropout 0.1 --random-share 0.5 --span-share 0.25")
    evaluations = [h for h in stats["history"] if "val_loss" in h]
    assert evaluations and all({"induction", "induction_ratio", "copy_ratio"} <= set(h) for h in evaluations)
    assert set(stats["traits"]) >= {"induction_best", "copy_ratio", "single_token_words"}
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "model"))
    windows = embedded_recipe.training_windows(tokenizer, list(range(1, 400)) * 3, 64, seed=0,
                                               choice={"random_share": 0.5, "span_share": 0.25, "span_max": 30,
                                                       "random_max": 30})
    assert isinstance(windows, RepeatingWindows)
    kinds = [windows.kind(i) for i in range(400)]
    assert 0.4 < kinds.count("random") / 400 < 0.6 and 0.15 < kinds.count("span") / 400 < 0.35
