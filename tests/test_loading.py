import time

import pytest
import torch

import gpt2lab
from gpt2lab import loading
from tests.conftest import make_tiny_model


@pytest.fixture()
def tiny_dir(tmp_path, gpt2_tokenizer):
    model = make_tiny_model()
    model.save_pretrained(tmp_path / "tiny", safe_serialization=True)
    gpt2_tokenizer.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


@pytest.fixture()
def offline_hub(monkeypatch):
    """A Hub that refuses connections at once (a closed port on loopback)."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv(loading.ENV_MODEL, raising=False)


def test_local_directory_loads_ready_for_generation(tiny_dir):
    lm = gpt2lab.load(tiny_dir, device="cpu", verbose=False)
    assert lm.source == "local" and lm.name == "tiny"
    assert not lm.model.training
    assert lm.tokenizer.pad_token_id == lm.tokenizer.eos_token_id == 50256
    assert lm.model.generation_config.pad_token_id == 50256
    assert lm.context_length == 64 and lm.dtype == torch.float32
    out = lm.model.generate(lm.encode("Hello"), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 4)
    assert "tiny" in repr(lm)


def test_dtype_override(tiny_dir):
    lm = gpt2lab.load(str(tiny_dir), device="cpu", dtype="bfloat16", verbose=False)
    assert lm.dtype == torch.bfloat16


@pytest.mark.parametrize("version, keyword", [("4.50.3", "torch_dtype"), ("4.55.4", "torch_dtype"),
                                              ("4.56.0", "dtype"), ("5.24.0", "dtype"), ("5.0.0rc1", "dtype")])
def test_dtype_goes_under_the_keyword_the_installed_transformers_takes(monkeypatch, version, keyword):
    import transformers

    monkeypatch.setattr(transformers, "__version__", version)
    assert loading.dtype_keyword(torch.float16) == {keyword: torch.float16}


def test_pickle_weights_are_refused(tmp_path, gpt2_tokenizer):
    folder = tmp_path / "pickled"
    model = make_tiny_model()
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # the old pickle format
    gpt2_tokenizer.save_pretrained(folder)
    with pytest.raises(gpt2lab.ModelNotFoundError, match="never loads pickled"):
        gpt2lab.load(tmp_path / "pickled", device="cpu")


def test_directory_without_config_is_explained(tmp_path):
    with pytest.raises(gpt2lab.ModelNotFoundError, match="no config.json"):
        gpt2lab.load(tmp_path, device="cpu")
    with pytest.raises(gpt2lab.ModelNotFoundError, match="no directory"):
        gpt2lab.load(str(tmp_path / "missing" / "dir"), device="cpu")


def test_trust_remote_code_is_off_by_default():
    import inspect

    assert inspect.signature(gpt2lab.load).parameters["trust_remote_code"].default is False


def test_embedded_model_loads_by_name_offline_quickly():
    assert "shakespeare-gpt2" in gpt2lab.embedded_models()
    start = time.perf_counter()
    lm = gpt2lab.load("embedded", device="cpu", verbose=False)
    assert time.perf_counter() - start < 10
    assert lm.source == "embedded" and lm.name == "shakespeare-gpt2"
    assert lm.dtype == torch.float32  # stored as float16, computed in float32
    assert type(lm.model).__name__ == "GPT2LMHeadModel"
    assert len(lm.tokenizer) == lm.model.config.vocab_size
    text = lm.decode(lm.model.generate(lm.encode("ROMEO:"), max_new_tokens=20, do_sample=False)[0])
    assert text.startswith("ROMEO:") and len(text) > len("ROMEO:")


def test_default_falls_back_to_embedded_within_five_seconds(offline_hub, capsys):
    start = time.perf_counter()
    lm = gpt2lab.load_default(device="cpu")
    decided = time.perf_counter() - start
    assert lm.name == "shakespeare-gpt2" and lm.info["requested"] == "gpt2"
    assert decided < 5 + 3  # fallback decision (<5 s) plus loading the small model
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if "unreachable" in line]) == 1
    assert "'shakespeare-gpt2'" in err[-1]


def test_fallback_decision_with_real_endpoint_is_quick(monkeypatch):
    """Without any override, deciding that the Hub is unreachable takes a few seconds, not ~50."""
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    reachable = loading.hub_reachable()
    elapsed = time.perf_counter() - start
    assert elapsed < 5
    if reachable:
        pytest.skip("this machine can reach the Hub")


def test_environment_variable_chooses_the_model(offline_hub, monkeypatch, tiny_dir):
    monkeypatch.setenv(loading.ENV_MODEL, str(tiny_dir))
    lm = gpt2lab.load_default(device="cpu", verbose=False)
    assert lm.name == "tiny"


def test_unknown_name_lists_what_is_available(offline_hub):
    start = time.perf_counter()
    with pytest.raises(gpt2lab.ModelNotFoundError) as info:
        gpt2lab.load("no-such-model-anywhere", device="cpu")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "shakespeare-gpt2" in message and "gpt2-xl" in message and "unreachable" in message


def test_explicit_hub_id_does_not_silently_fall_back(offline_hub):
    with pytest.raises(gpt2lab.ModelNotFoundError, match="'gpt2'"):
        gpt2lab.load("gpt2", device="cpu")


def test_hf_hub_offline_means_no_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loading.hub_reachable() is False


def test_gpt2_shaped_model_with_real_tokenizer(gpt2_shaped_lm):
    lm = gpt2_shaped_lm
    assert lm.source == "local"
    assert 124_000_000 < lm.n_params < 125_000_000
    assert lm.context_length == 1024 and len(lm.tokenizer) == 50257
    assert lm.encode("Hello world").tolist() == [[15496, 995]]
    assert lm.tokenizer.pad_token == "<|endoftext|>"


def test_eager_attention_switch_restores_sdpa(tiny_lm):
    model = tiny_lm.model
    ids = tiny_lm.encode("one two three")
    before = model.config._attn_implementation
    with tiny_lm.eager_attention():
        attentions = model(ids, output_attentions=True).attentions
        assert len(attentions) == 2 and attentions[0].shape == (1, 2, ids.shape[1], ids.shape[1])
    assert model.config._attn_implementation == before
