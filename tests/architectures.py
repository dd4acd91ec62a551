"""Tiny random models of the seven causal-LM families the package is tested on, saved like downloads.

Each family is built from its own transformers config class (2 layers, hidden size 32), given the
embedded model's byte-level BPE (384 pieces) with the special tokens that family's real tokenizer has,
sized to that tokenizer, and written to a folder with ``save_pretrained`` (safetensors) so the tests
load it the way a user would: ``gpt2lab.load(folder)``.

What the seven cover between them:

=========  ===========  ===================  ==============================================
family     positions    key/value heads      tokenizer
=========  ===========  ===================  ==============================================
gpt2       absolute     4 (one per head)     <|endoftext|> starts and ends texts, not added
gpt_neox   rotary 25 %  4                    as GPT-2 (Pythia)
llama      rotary       2 of 4 (grouped)     its own <s> / </s>; <s> added to every text
qwen2      rotary       1 of 4 (multi-query) no BOS token at all; <|endoftext|> ends texts
opt        absolute     4                    start token added to every text, own <pad>
gpt_neo    absolute     4; layer 1 local     as GPT-2; window of 8 tokens on every other layer
phi3       rotary       2 of 4 (grouped)     its own <s> (not added); <|endoftext|> ends
=========  ===========  ===================  ==============================================

The weights are random but not near zero (``initializer_range`` 0.3), so the next-token distributions
are peaked: greedy and beam search then have clear winners and cannot flip on rounding.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

EMBEDDED_TOKENIZER = Path(__file__).resolve().parents[1] / "gpt2lab" / "embedded" / "shakespeare-gpt2"
HIDDEN, LAYERS, HEADS, CONTEXT = 32, 2, 4, 128
INIT = 0.3


@dataclass(frozen=True)
class Family:
    name: str  # transformers' model_type
    positions: str  # "absolute" or "rotary"
    kv_heads: int  # key/value heads (HEADS = query heads)
    bos: str | None  # the tokenizer's BOS token (None: it has none)
    adds_bos: bool  # whether the tokenizer puts BOS before every text

    @property
    def grouped(self) -> bool:
        return self.kv_heads < HEADS


FAMILIES = {
    "gpt2": Family("gpt2", "absolute", HEADS, "<|endoftext|>", False),
    "gpt_neox": Family("gpt_neox", "rotary", HEADS, "<|endoftext|>", False),
    "llama": Family("llama", "rotary", 2, "<s>", True),
    "qwen2": Family("qwen2", "rotary", 1, None, False),
    "opt": Family("opt", "absolute", HEADS, "<|endoftext|>", True),
    "gpt_neo": Family("gpt_neo", "absolute", HEADS, "<|endoftext|>", False),
    "phi3": Family("phi3", "rotary", 2, "<s>", False),
}
NAMES = tuple(FAMILIES)


def make_tokenizer(family: Family):
    """The embedded BPE with the family's special tokens."""
    from transformers import AutoTokenizer

    kwargs = {}
    if family.bos is None:
        kwargs["bos_token"] = None
    tok = AutoTokenizer.from_pretrained(EMBEDDED_TOKENIZER, **kwargs)
    if family.name == "llama":
        tok.add_special_tokens({"bos_token": "<s>", "eos_token": "</s>"})
    elif family.name == "phi3":
        tok.add_special_tokens({"bos_token": "<s>"})
    elif family.name == "opt":
        tok.add_special_tokens({"pad_token": "<pad>"})
    if family.adds_bos:
        tok.add_bos_token = True
        if hasattr(tok, "update_post_processor"):
            tok.update_post_processor()
        else:  # transformers before 5 has no update_post_processor on this tokenizer: set the same BOS template
            from tokenizers import processors

            bos = tok.bos_token
            tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
                single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, tok.bos_token_id)])
    tok.model_max_length = CONTEXT
    return tok


def make_config(family: Family, tokenizer):
    import transformers as tf

    special = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    rotary = dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, num_key_value_heads=family.kv_heads, max_position_embeddings=CONTEXT,
                  initializer_range=INIT, attention_dropout=0.0, **special)
    if family.name == "gpt2":
        return tf.GPT2Config(n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=CONTEXT, resid_pdrop=0.0,
                             embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=INIT, **special)
    if family.name == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS,
                                num_attention_heads=HEADS, max_position_embeddings=CONTEXT, rotary_pct=0.25,
                                initializer_range=INIT, attention_dropout=0.0, hidden_dropout=0.0, **special)
    if family.name == "llama":
        return tf.LlamaConfig(**rotary)
    if family.name == "qwen2":
        return tf.Qwen2Config(tie_word_embeddings=True, **rotary)
    if family.name == "opt":
        return tf.OPTConfig(hidden_size=HIDDEN, ffn_dim=2 * HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                            max_position_embeddings=CONTEXT, word_embed_proj_dim=HIDDEN, dropout=0.0,
                            attention_dropout=0.0, init_std=INIT, **special)
    if family.name == "gpt_neo":
        return tf.GPTNeoConfig(hidden_size=HIDDEN, num_layers=LAYERS, num_heads=HEADS, intermediate_size=2 * HIDDEN,
                               attention_types=[[["global", "local"], LAYERS // 2]], window_size=8,
                               max_position_embeddings=CONTEXT, embed_dropout=0.0, attention_dropout=0.0,
                               resid_dropout=0.0, initializer_range=INIT, **special)
    if family.name == "phi3":
        return tf.Phi3Config(original_max_position_embeddings=CONTEXT, resid_pdrop=0.0, embd_pdrop=0.0, **rotary)
    raise KeyError(family.name)


def build(name: str, folder: Path, seed: int = 0) -> Path:
    """Build the tiny random model of family ``name`` and save it, with its tokenizer, to ``folder``."""
    from transformers import AutoModelForCausalLM

    family = FAMILIES[name]
    tokenizer = make_tokenizer(family)
    config = make_config(family, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    assert model.config.model_type == name
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def arch_dirs(tmp_path_factory) -> dict[str, Path]:
    """Folders of all seven tiny models (built once per session, a second or two in all)."""
    root = tmp_path_factory.mktemp("architectures")
    return {name: build(name, root / name) for name in NAMES}


@pytest.fixture(scope="session", params=NAMES)
def arch(request) -> str:
    """Parametrised over the seven families (ids: gpt2, gpt_neox, llama, qwen2, opt, gpt_neo, phi3)."""
    return request.param


@pytest.fixture(scope="session")
def arch_dir(arch, arch_dirs) -> Path:
    return arch_dirs[arch]


@pytest.fixture(scope="session")
def arch_lm(arch, arch_dirs):
    """The family's tiny model loaded from its folder by ``gpt2lab.load`` (float32, CPU)."""
    import gpt2lab

    return gpt2lab.load(arch_dirs[arch], device="cpu", dtype="float32", verbose=False)


@pytest.fixture(scope="session")
def load_arch(arch_dirs):
    """``load_arch(name, dtype)``: the family's model loaded by ``gpt2lab.load`` in that dtype (cached)."""
    import gpt2lab

    loaded = {}

    def load(name: str, dtype: str = "float32"):
        if (name, dtype) not in loaded:
            loaded[name, dtype] = gpt2lab.load(arch_dirs[name], device="cpu", dtype=dtype, verbose=False)
        return loaded[name, dtype]

    return load


ATTENTION_MODULES = ("attn", "attention", "self_attn")  # the attention block's name in each family's layers


@contextlib.contextmanager
def attention_blind(lm):
    """Inside the block every attention layer outputs zeros, so the output at the last position depends
    only on the last token (and, with absolute positions, on where it stands): a model where every
    earlier word provably cannot matter. Works on all seven families (forward hooks, weights untouched)."""

    def zero(module, args, out):
        return (torch.zeros_like(out[0]), *out[1:]) if isinstance(out, tuple) else torch.zeros_like(out)

    hooks = [m.register_forward_hook(zero) for name, m in lm.model.named_modules()
             if name.split(".")[-1] in ATTENTION_MODULES]
    assert len(hooks) >= LAYERS
    try:
        yield lm
    finally:
        for hook in hooks:
            hook.remove()


@contextlib.contextmanager
def counting_forward_calls(lm):
    """Counts the model's forward passes inside the block (``with ... as calls: ...; calls[0]``)."""
    calls = [0]
    hook = lm.model.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        hook.remove()
