"""The training loop: schedule, data order, atomic checkpoints, exact resume."""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT

from gpt2lab.training import loop as training
from gpt2lab.training.loop import PackedBlocks, RandomWindows, TrainConfig, lr_at, sample_indices

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(vocab=97, dropout=0.0, seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_layer=2, n_head=2, n_embd=32, n_positions=32, resid_pdrop=dropout,
                        embd_pdrop=dropout, attn_pdrop=0.0, bos_token_id=vocab - 1, eos_token_id=vocab - 1)
    return GPT2LMHeadModel(config)


def token_stream(n=2000, vocab=97, seed=0):
    return torch.as_tensor(np.random.default_rng(seed).integers(0, vocab, n))


def quiet(**kw):
    base = dict(batch_size=4, learning_rate=3e-3, warmup_steps=2, eval_every=1000, log_every=1, progress=False,
                mixed_precision="no", device="cpu")
    return TrainConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- schedule

def test_warmup_then_cosine_values():
    cfg = TrainConfig(max_steps=110, learning_rate=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak
    assert lr_at(4, cfg) == pytest.approx(5e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)  # cosine starts at the peak
    assert lr_at(60, cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # halfway: cos(pi/2) = 0
    assert lr_at(35, cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))))
    assert lr_at(110, cfg) == pytest.approx(1e-4)
    assert lr_at(500, cfg) == pytest.approx(1e-4)  # stays at the floor
    no_warmup = TrainConfig(max_steps=10, learning_rate=2e-3, warmup_steps=0, min_lr_ratio=0.0)
    assert lr_at(0, no_warmup) == pytest.approx(2e-3)
    assert lr_at(10, no_warmup) == pytest.approx(0.0, abs=1e-12)


def test_the_loop_follows_the_schedule():
    cfg = quiet(max_steps=12, warmup_steps=4, learning_rate=1e-3, min_lr_ratio=0.2)
    result = training.train(tiny(), PackedBlocks(token_stream(), 16), None, cfg)
    lrs = {h["step"]: h["lr"] for h in result.history}
    # after step s the optimizer holds the rate for step s (counting from 0)
    for step in range(1, 12):
        assert lrs[step] == pytest.approx(lr_at(step, cfg)), step


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="grad_accum=0"):
        TrainConfig(grad_accum=0).validate()
    with pytest.raises(ValueError, match="mixed_precision='fp8'"):
        TrainConfig(mixed_precision="fp8").validate()
    with pytest.raises(ValueError, match="device='cuda'"):
        TrainConfig(device="cuda").validate()


# ----------------------------------------------------------------------------- data order

def test_data_order_is_a_function_of_seed_and_position():
    a = sample_indices(10, seed=3, start=0, count=30)
    # every epoch is a permutation of all items
    for e in range(3):
        assert sorted(a[10 * e: 10 * (e + 1)]) == list(range(10))
    assert a[:10] != a[10:20]  # epochs are shuffled differently
    # any window of the stream can be produced on its own (this is what makes resume exact)
    assert sample_indices(10, seed=3, start=7, count=15) == a[7:22]
    assert sample_indices(10, seed=3, start=0, count=30) == a
    assert sample_indices(10, seed=4, start=0, count=10) != a[:10]


def test_processes_take_disjoint_slices_that_cover_every_epoch():
    """Two processes, two micro-batches of 3 per step, 24 items: each epoch (two steps) gives every item to
    exactly one process once, and together they walk the same stream one process would."""
    from gpt2lab.training import process_batch_indices

    seen = {0: [], 1: []}
    for step in range(4):  # two epochs
        for micro in range(2):
            for rank in (0, 1):
                seen[rank] += process_batch_indices(24, 5, step, micro, batch_size=3, grad_accum=2, rank=rank, world=2)
    for epoch in range(2):
        mine = [seen[rank][12 * epoch: 12 * (epoch + 1)] for rank in (0, 1)]
        assert not set(mine[0]) & set(mine[1]) and sorted(mine[0] + mine[1]) == list(range(24))
    interleaved = [i for k in range(8) for rank in (0, 1) for i in seen[rank][3 * k: 3 * k + 3]]
    assert interleaved == sample_indices(24, seed=5, start=0, count=48)
    assert process_batch_indices(24, 5, 3, 1, 3, 2) == sample_indices(24, 5, 3 * 6 + 3, 3)  # one process


def test_random_windows_cover_every_offset_once_per_epoch():
    ids = torch.arange(100)
    ds = RandomWindows(ids, block_size=8)
    assert len(ds) == 100 - 9 + 1  # one item per possible start
    epoch = sample_indices(len(ds), seed=3, start=0, count=len(ds))
    starts = [int(ds[i]["input_ids"][0]) for i in epoch]
    assert sorted(starts) == list(range(92))  # every window once, in shuffled order
    assert starts != sorted(starts)
    nxt = sample_indices(len(ds), seed=3, start=len(ds), count=len(ds))
    assert nxt != epoch  # the next epoch comes in another order


def test_a_huge_epoch_is_a_permutation_computed_not_stored(monkeypatch):
    monkeypatch.setattr(training, "MAX_STORED_ORDER", 10)
    training._epoch_order.cache_clear()
    try:
        for n in (97, 100, 1024):  # prime, and sizes with many factors
            order = sample_indices(n, seed=5, start=0, count=n)
            assert sorted(order) == list(range(n)) and order != list(range(n))
            assert sample_indices(n, seed=5, start=n, count=n) != order  # the next epoch differs
    finally:
        training._epoch_order.cache_clear()


def test_random_windows_are_reproducible_and_in_range():
    ids = torch.arange(100)
    ds = RandomWindows(ids, block_size=8, seed=1, length=50)
    again = RandomWindows(ids, block_size=8, seed=1, length=50)
    for i in range(50):
        item = ds[i]
        assert torch.equal(item["input_ids"], again[i]["input_ids"])
        assert torch.equal(item["labels"], item["input_ids"] + 1)  # labels are the next tokens
        assert 0 <= int(item["input_ids"][0]) <= 100 - 9


def test_packed_blocks_known_answer():
    ds = PackedBlocks(torch.arange(11), block_size=4)
    assert len(ds) == 2
    assert ds[0]["input_ids"].tolist() == [0, 1, 2, 3] and ds[0]["labels"].tolist() == [1, 2, 3, 4]
    assert ds[1]["input_ids"].tolist() == [4, 5, 6, 7] and ds[1]["labels"].tolist() == [5, 6, 7, 8]
    assert ds.dropped_tokens == 2
    with pytest.raises(ValueError, match="fewer than one block"):
        PackedBlocks(torch.arange(4), block_size=4)


# ----------------------------------------------------------------------------- checkpoints

def _save(folder, step, model, keep_last=None):
    opt = torch.optim.AdamW(model.parameters())
    return training.save_checkpoint(folder, step, model, opt, None, None, {"note": step}, keep_last)


def test_save_keeps_the_last_k_and_each_loads(tmp_path):
    model = tiny()
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, model, keep_last=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint-3", "checkpoint-4"]
    assert training.latest_checkpoint(tmp_path).name == "checkpoint-4"
    other = tiny(seed=1)
    training.load_checkpoint_weights(other, tmp_path / "checkpoint-3")
    for (n, p), q in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(p, q), n


def test_a_failing_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny()
    _save(tmp_path, 1, model)
    real_save = torch.save

    def broken(obj, path, *a, **kw):
        if str(path).endswith("optimizer.pt"):
            raise OSError("disk full")
        return real_save(obj, path, *a, **kw)

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2, model)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-1"]  # no half-written checkpoint-2, no temp
    assert training.latest_checkpoint(tmp_path).name == "checkpoint-1"


def test_a_crash_while_deleting_an_old_checkpoint_leaves_only_loadable_ones(tmp_path, monkeypatch):
    model = tiny()
    for step in (1, 2):
        _save(tmp_path, step, model)

    def crash_half_way(path, ignore_errors=False):
        files = sorted(Path(path).iterdir())
        files[0].unlink()  # part of the folder is gone ...
        raise KeyboardInterrupt("power cut")  # ... when the process stops

    monkeypatch.setattr(training.shutil, "rmtree", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 3, model, keep_last=1)  # checkpoint-3 is complete; deleting 1 and 2 is cut short
    monkeypatch.undo()
    names = [c.name for c in training.list_checkpoints(tmp_path)]
    assert names[-1] == "checkpoint-3" and "checkpoint-1" not in names  # the half-deleted one has no real name
    for ckpt in training.list_checkpoints(tmp_path):
        training.load_checkpoint_weights(tiny(seed=3), ckpt)


KILL_MID_SAVE = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {tests!r})
    from test_training import tiny, _save
    from gpt2lab.training import loop as training
    model = tiny()
    _save({folder!r}, 1, model)
    real = model.save_pretrained
    def dying(path, **kw):
        real(path, **kw)              # the weights of checkpoint 2 are written ...
        os.kill(os.getpid(), signal.SIGKILL)   # ... and the process dies before the save completes
    model.save_pretrained = dying
    _save({folder!r}, 2, model)
""")


def test_kill_9_mid_save_never_leaves_a_broken_checkpoint(tmp_path):
    folder = tmp_path / "run"
    script = KILL_MID_SAVE.format(tests=str(ROOT / "tests"), folder=str(folder))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    leftovers = sorted(p.name for p in folder.iterdir())
    assert "checkpoint-1" in leftovers and "checkpoint-2" not in leftovers
    assert any(n.startswith(".tmp-checkpoint-2") for n in leftovers)  # the half-written temp folder
    assert training.latest_checkpoint(folder).name == "checkpoint-1"
    training.load_checkpoint_weights(tiny(seed=5), folder / "checkpoint-1")
    # the next save cleans the debris up
    _save(folder, 3, tiny())
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-1", "checkpoint-3"]


def test_weights_that_do_not_fit_are_refused(tmp_path):
    _save(tmp_path, 1, tiny(vocab=97))
    with pytest.raises(ValueError, match="(?s)checkpoint-1 do not fit this model.*size mismatch"):
        training.load_checkpoint_weights(tiny(vocab=50), tmp_path / "checkpoint-1")


# ----------------------------------------------------------------------------- resume

@pytest.mark.parametrize("grad_accum", [1, 2])
def test_n_steps_resume_n_steps_equals_2n_steps(tmp_path, grad_accum):
    """With dropout on, so the random state has to be restored too."""
    data = PackedBlocks(token_stream(3000), 16)
    val = PackedBlocks(token_stream(400, seed=1), 16)
    cfg = quiet(max_steps=8, grad_accum=grad_accum, checkpoint_every=4, keep_last=2, eval_every=4, eval_batches=2,
                sample_every=3, sample_tokens=3)

    class Tok:  # the smallest tokenizer sample_text needs, so sampling runs during training
        eos_token_id = pad_token_id = 96

        def __call__(self, text, return_tensors=None):
            return {"input_ids": torch.tensor([[1, 2]])}

        def decode(self, ids):
            return " ".join(map(str, ids.tolist()))

        def save_pretrained(self, path):
            pass

    straight = tiny(dropout=0.1)
    full = training.train(straight, data, val, cfg, tokenizer=Tok(), output_dir=tmp_path / "a")

    # the same run, stopped after step 4: its checkpoint-4 alone, then resumed
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-4", tmp_path / "b" / "checkpoint-4")
    resumed_model = tiny(dropout=0.1, seed=7)  # different initial weights: the checkpoint must override them
    resumed = training.train(resumed_model, data, val, cfg, tokenizer=Tok(), output_dir=tmp_path / "b")

    for (name, p), q in zip(straight.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6, rtol=0), name
    assert resumed.steps == full.steps == 8
    assert resumed.tokens_seen == full.tokens_seen
    assert [h["step"] for h in resumed.history] == [h["step"] for h in full.history]
    for a, b in zip(full.history, resumed.history):
        assert a.get("loss") == pytest.approx(b.get("loss"), abs=1e-4)
        assert a.get("val_loss") == pytest.approx(b.get("val_loss"), abs=1e-4)


def test_keep_best_keeps_the_weights_of_the_lowest_validation_loss(tmp_path):
    # random tokens: the model can only memorise the training stream, so validation loss turns up
    data = PackedBlocks(token_stream(600), 16)
    val = PackedBlocks(token_stream(400, seed=1), 16)
    cfg = quiet(max_steps=24, learning_rate=3e-2, warmup_steps=0, eval_every=3, eval_batches=10, keep_best=True,
                checkpoint_every=12, keep_last=1)
    model = tiny()
    result = training.train(model, data, val, cfg, output_dir=tmp_path)
    losses = result.val_losses
    step, lowest = min(losses, key=lambda sv: sv[1])
    assert step <= 12 and lowest < losses[-1][1], losses  # the case that matters: the end is not the best
    assert (result.best_step, result.best_val_loss) == (step, lowest)
    assert training.read_best(tmp_path)["step"] == step
    kept = tiny(seed=3)
    training.load_checkpoint_weights(kept, result.best_checkpoint)
    assert training.evaluate_loss(kept, val, 4, 10, "cpu") == pytest.approx(lowest, abs=1e-4)
    assert training.list_checkpoints(tmp_path)[-1].name == "checkpoint-24"  # best/ is not a checkpoint

    # the same run stopped after its step-12 checkpoint, then resumed: it ends with the same best,
    # judged against the one kept before the stop
    class Stop(Exception):
        pass

    def crash(record):
        if record["step"] == 13:
            raise Stop

    with pytest.raises(Stop):
        training.train(tiny(), data, val, cfg, output_dir=tmp_path / "b", on_log=crash)
    assert training.latest_checkpoint(tmp_path / "b").name == "checkpoint-12"
    resumed = training.train(tiny(), data, val, cfg, output_dir=tmp_path / "b")
    assert (resumed.best_step, resumed.best_val_loss) == pytest.approx((step, lowest), abs=1e-4)
    with pytest.raises(ValueError, match="keep_best=True needs validation data"):
        training.train(tiny(), data, None, cfg, output_dir=tmp_path / "d")


def test_one_process_can_train_in_float32_then_bfloat16():
    """accelerate refuses a second precision in one process unless its state is cleared: a notebook
    that trains twice with different settings must not hit that."""
    data = PackedBlocks(token_stream(), 16)
    for precision in ("no", "bf16", "no"):
        result = training.train(tiny(), data, None, quiet(max_steps=2, mixed_precision=precision))
        assert result.steps == 2 and math.isfinite(result.history[-1]["loss"])


def test_resume_of_a_finished_run_trains_nothing(tmp_path):
    data = PackedBlocks(token_stream(), 16)
    cfg = quiet(max_steps=3)
    model = tiny()
    training.train(model, data, None, cfg, output_dir=tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    again = training.train(model, data, None, cfg, output_dir=tmp_path)
    assert again.steps == 3 and again.last_checkpoint.endswith("checkpoint-3")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_freezing_embeddings_keeps_them(tmp_path):
    model = tiny()
    wte, wpe = model.transformer.wte.weight.clone(), model.transformer.wpe.weight.clone()
    first_block = model.transformer.h[0].attn.c_attn.weight.clone()
    training.train(model, PackedBlocks(token_stream(), 16), None, quiet(max_steps=3, freeze_embeddings=True))
    assert torch.equal(model.transformer.wte.weight, wte) and torch.equal(model.transformer.wpe.weight, wpe)
    assert not torch.equal(model.transformer.h[0].attn.c_attn.weight, first_block)


def test_lora_checkpoints_hold_the_adapter_and_resume(tmp_path):
    peft = pytest.importorskip("peft")
    from gpt2lab.training.lora import wrap_lora

    data = PackedBlocks(token_stream(), 16)
    cfg = quiet(max_steps=6, checkpoint_every=3, keep_last=2)
    straight = wrap_lora(tiny(), r=2)
    training.train(straight, data, None, cfg, output_dir=tmp_path / "a")
    ckpt = tmp_path / "a" / "checkpoint-3"
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    (tmp_path / "b").mkdir()
    shutil.copytree(ckpt, tmp_path / "b" / "checkpoint-3")
    resumed = wrap_lora(tiny(), r=2)
    training.train(resumed, data, None, cfg, output_dir=tmp_path / "b")
    a = peft.get_peft_model_state_dict(straight)
    b = peft.get_peft_model_state_dict(resumed)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(not torch.all(a[k] == 0) for k in a if "lora_B" in k)  # the adapter did train
    with pytest.raises(ValueError, match="LoRA"):
        training.load_checkpoint_weights(tiny(), ckpt)  # a plain model cannot take an adapter checkpoint
