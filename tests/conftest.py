"""Shared fixtures: the three kinds of model every feature is tested on.

* ``tiny_lm``: a 2-layer random GPT-2 (n_embd 32) with the real GPT-2 tokenizer - fast;
* ``gpt2_shaped_lm``: the real 124M GPT-2 configuration with random weights and the real
  tokenizer, saved to disk and loaded through ``gpt2lab.load(dir)`` - real sizes, real BPE;
* ``embedded_lm``: the Shakespeare GPT-2 shipped in the package.

and, from ``architectures.py``, tiny random models of seven families (``arch_lm``, ``load_arch``, ...).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from architectures import arch, arch_dir, arch_dirs, arch_lm, load_arch  # noqa: F401 - the seven-family fixtures

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests read course data from the local mirror (CI sets the same), never from the network.
if "GPT2LAB_DATA_MIRROR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["GPT2LAB_DATA_MIRROR"] = str(SHARED_DATA)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_tiny_model(vocab_size: int = 50257, n_layer: int = 2, n_head: int = 2, n_embd: int = 32,
                    n_positions: int = 64, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                        n_positions=n_positions, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1)
    return GPT2LMHeadModel(config).eval()


def make_value_blind_lm(tokenizer):
    """A real GPT-2 whose attention reads nothing (value weights are zero): the output at the last
    position depends only on the last token, so every earlier word provably cannot matter."""
    from gpt2lab import from_model

    model = make_tiny_model(n_layer=2, seed=3)
    d = model.config.n_embd
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_attn.weight[:, 2 * d:] = 0
            block.attn.c_attn.bias[2 * d:] = 0
    return from_model(model, tokenizer, name="value-blind-gpt2", device="cpu")


@pytest.fixture()
def one_thread():
    """Tiny models train fastest on one thread, and the machine is shared."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    from gpt2lab import data

    return data.gpt2_tokenizer()


@pytest.fixture(scope="session")
def tiny_lm(gpt2_tokenizer):
    from gpt2lab import from_model

    return from_model(make_tiny_model(), gpt2_tokenizer, name="tiny-random-gpt2", device="cpu")


@pytest.fixture(scope="session")
def gpt2_shaped_dir(tmp_path_factory, gpt2_tokenizer):
    """The real GPT-2 (124M) configuration, random weights, saved like a downloaded model."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config())
    folder = tmp_path_factory.mktemp("gpt2-shaped")
    model.save_pretrained(folder, safe_serialization=True)
    gpt2_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def gpt2_shaped_lm(gpt2_shaped_dir):
    import gpt2lab

    return gpt2lab.load(gpt2_shaped_dir, device="cpu", verbose=False)


@pytest.fixture(scope="session")
def embedded_lm():
    import gpt2lab

    return gpt2lab.load("embedded", device="cpu", verbose=False)


@pytest.fixture(params=["tiny", "gpt2_shaped", "embedded"])
def any_lm(request):
    """Parametrised over the three model kinds."""
    return request.getfixturevalue(f"{request.param}_lm")
