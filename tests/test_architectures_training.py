"""Fine-tuning, LoRA and resume on the seven families of ``tests/architectures.py``: a few steps each,
from the model's folder, as a user would run them."""
from __future__ import annotations

import json

import pytest
import torch

from gpt2lab import files, training
from gpt2lab.training import finetune, load_run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # ~25 s for all seven families

# the LoRA target modules each family gets: peft's own defaults, GPT-2's three Conv1D layers, and every
# linear layer but the output for Phi-3, which peft has no defaults for
LORA_TARGETS = {
    "gpt2": {"c_attn", "c_proj", "c_fc"},
    "gpt_neox": {"query_key_value"},
    "llama": {"q_proj", "v_proj"},
    "qwen2": {"q_proj", "v_proj"},
    "opt": {"q_proj", "v_proj"},
    "gpt_neo": {"q_proj", "v_proj"},
    "phi3": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"},
}


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    from gpt2lab import data

    path = tmp_path_factory.mktemp("story") / "story.txt"
    path.write_text(data.tinyshakespeare_split()[0][:4000])
    return path


def tune(story, folder, tmp_path, **kw):
    settings = dict(steps=3, run_name="run", checkpoint_dir=tmp_path / "ck", cache_dir=tmp_path / "cache",
                    block_size=32, batch_size=2, sample_every=0, eval_max_tokens=200, progress=False, verbose=False,
                    device="cpu", learning_rate=1e-2)
    return finetune(story, str(folder), **{**settings, **kw})


def logits(lm, text="To be or not"):
    with torch.no_grad():
        return lm.model(torch.tensor([lm.tokenizer(text)["input_ids"]])).logits


def test_finetune_and_resume(arch, arch_dir, load_arch, story, tmp_path):
    """Four steps lower the validation perplexity; a run stopped after its step-2 checkpoint and run again
    resumes there and ends with the weights of the run that was never stopped."""
    done = tune(story, arch_dir, tmp_path, run_name="straight", steps=4)
    assert done.steps == 4 and done.perplexity_after < done.perplexity_before
    tune(story, arch_dir, tmp_path, run_name="resumed", steps=4, checkpoint_every=2, keep_last=2)
    run_dir = tmp_path / "ck" / "resumed"
    assert [c.name for c in training.list_checkpoints(run_dir)] == ["checkpoint-2", "checkpoint-4"]
    files.discard_folder(run_dir / "checkpoint-4")  # as if it had been killed after step 2
    resumed = tune(story, arch_dir, tmp_path, run_name="resumed", steps=4)
    assert resumed.resumed_from_step == 2 and resumed.steps == 4
    for (name, a), b in zip(done.lm.model.state_dict().items(), resumed.lm.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    reloaded = load_run("resumed", checkpoint_dir=tmp_path / "ck", device="cpu", verbose=False)
    assert reloaded.model.config.model_type == arch and reloaded.info["step"] == 4
    assert torch.allclose(logits(reloaded), logits(done.lm), atol=1e-4)
    assert not torch.allclose(logits(reloaded), logits(load_arch(arch)), atol=1e-3)  # it did train


def test_lora_trains_its_target_modules_and_reloads(arch, arch_dir, load_arch, story, tmp_path):
    result = tune(story, arch_dir, tmp_path, lora=True)
    files = {p.name for p in result.checkpoint.iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files
    adapter = json.loads((result.checkpoint / "adapter_config.json").read_text())
    assert {name.split(".")[-1] for name in adapter["target_modules"]} == LORA_TARGETS[arch]
    base = load_arch(arch)
    assert not torch.allclose(logits(result.lm), logits(base), atol=1e-4)  # the merged adapters changed it
    reloaded = load_run("run", checkpoint_dir=tmp_path / "ck", device="cpu", verbose=False)
    assert torch.allclose(logits(reloaded), logits(result.lm), atol=1e-4)
    assert training.read_checkpoint_state(result.checkpoint)["step"] == 3
