"""The from-scratch GPT (gpt2lab.model): same logits as transformers' GPT-2 once its weights are loaded,
trainable, causal, and clear about what it refuses."""
from __future__ import annotations

import pytest
import torch

import gpt2lab
from gpt2lab.families import UnsupportedModelError
from gpt2lab.model import GPT, GPTConfig, from_gpt2
from gpt2lab.model.weights import GPT2_NAMES

pytestmark = pytest.mark.usefixtures("one_thread")  # small models: fastest on one thread, and the machine is shared

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun."


def test_logits_match_transformers_after_loading_the_weights(any_lm):
    """The defining check of the lesson: the module built from scratch computes what GPT-2 computes."""
    gpt = from_gpt2(any_lm)
    ids = any_lm.encode(TEXT)
    with torch.no_grad():
        theirs = any_lm.model(ids).logits
        ours = gpt(ids).logits
    assert ours.shape == theirs.shape == (1, ids.shape[1], any_lm.model.config.vocab_size)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert gpt.n_params == any_lm.n_params  # the same parameters, the tied table counted once


def test_attention_weights_match_transformers(tiny_lm):
    gpt = from_gpt2(tiny_lm)
    capture = gpt2lab.capture_attention(tiny_lm, TEXT)
    with torch.no_grad():
        out = gpt(torch.tensor(capture.token_ids), return_attention=True)
    ours = torch.stack([a[0] for a in out.attentions])  # (layers, heads, query, key)
    torch.testing.assert_close(ours, capture.attention, rtol=1e-5, atol=1e-6)


def test_weights_are_copied_not_shared_and_conv1d_is_transposed(tiny_lm):
    gpt = from_gpt2(tiny_lm)
    theirs = tiny_lm.model.transformer.h[1].attn.c_attn.weight
    assert torch.equal(gpt.blocks[1].attn.qkv.weight, theirs.t())  # Conv1D (in, out) -> Linear (out, in)
    with torch.no_grad():
        gpt.blocks[1].attn.qkv.weight.zero_()
    assert theirs.abs().sum() > 0  # editing the copy leaves the source alone
    assert gpt.lm_head.weight is gpt.token_embedding.weight  # tied
    assert len(GPT2_NAMES) == 16


def test_loader_refuses_other_models_naming_the_family(gpt2_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    with pytest.raises(UnsupportedModelError, match="supports the GPT-2 family only.*'LlamaForCausalLM' is a 'llama'"):
        from_gpt2(llama)
    with pytest.raises(TypeError, match="takes a gpt2lab.LM or a transformers GPT2LMHeadModel, got str"):
        from_gpt2("gpt2")
    relu = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=50, activation_function="relu"))
    with pytest.raises(UnsupportedModelError, match="activation 'relu'.*supported: GPT-2 family"):
        from_gpt2(relu)
    inverse = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=50,
                                         scale_attn_by_inverse_layer_idx=True))
    with pytest.raises(UnsupportedModelError, match="scale_attn_by_inverse_layer_idx"):
        from_gpt2(inverse)


def test_config_and_forward_reject_bad_input():
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(vocab_size=10, d_model=10, n_head=4)
    with pytest.raises(ValueError, match="n_layer must be a positive int"):
        GPTConfig(vocab_size=10, n_layer=0)
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT({"vocab_size": 10})
    gpt = GPT(GPTConfig(vocab_size=10, context_length=8, n_layer=1, n_head=2, d_model=8))
    with pytest.raises(ValueError, match="9 tokens; this GPT takes 1 to 8"):
        gpt(torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"must lie in 0..9, got values from 0 to 10"):
        gpt(torch.tensor([0, 10]))
    with pytest.raises(TypeError, match="integer tensor"):
        gpt(torch.zeros(3))
    with pytest.raises(ValueError, match="only pad on the right"):
        gpt(torch.tensor([[1, 2, 3]]), attention_mask=torch.tensor([[0, 1, 1]]))
    assert gpt(torch.tensor([[1, 2, 3]]), attention_mask=torch.tensor([[1, 1, 0]])).logits.shape == (1, 3, 10)


def test_causal_the_past_never_sees_the_future():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=20, context_length=16, n_layer=2, n_head=2, d_model=16)).eval()
    a = torch.tensor([3, 4, 5, 6, 7])
    b = torch.tensor([3, 4, 5, 6, 19])
    with torch.no_grad():
        la, lb = gpt(a).logits[0], gpt(b).logits[0]
    assert torch.equal(la[:4], lb[:4]) and not torch.equal(la[4], lb[4])


def test_attention_only_blocks_have_no_mlp():
    gpt = GPT(GPTConfig(vocab_size=20, context_length=16, n_layer=2, n_head=2, d_model=16, attention_only=True))
    assert all(block.mlp is None and block.ln_2 is None for block in gpt.blocks)
    assert not any("mlp" in name for name, _ in gpt.named_parameters())
    out = gpt(torch.tensor([1, 2, 3]), return_attention=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (1, 2, 3, 3)
    assert torch.allclose(out.attentions[1].sum(-1), torch.ones(1, 2, 3))


def test_it_trains_with_the_course_training_loop(one_thread):
    """gpt2lab.training.train drives it like a transformers model: a periodic sequence is learnt."""
    from gpt2lab.training import RandomWindows, TrainConfig, train

    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=8, context_length=16, n_layer=1, n_head=2, d_model=32))
    stream = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7] * 40)
    result = train(gpt, RandomWindows(stream, 16), config=TrainConfig(max_steps=60, batch_size=8, learning_rate=1e-2,
                                                                       warmup_steps=5, log_every=10, progress=False,
                                                                       device="cpu"))
    assert result.history[0]["loss"] > 1.0 and result.history[-1]["loss"] < 0.05
    ids = gpt.sample(torch.tensor([0, 1, 2]), 10, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert ids.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4]


def test_sample_checks_its_arguments():
    gpt = GPT(GPTConfig(vocab_size=10, context_length=4, n_layer=1, n_head=1, d_model=4))
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0"):
        gpt.sample(torch.tensor([1]), -1)
    out = gpt.sample(torch.tensor([1, 2, 3]), 5, top_k=1)  # longer than the context: the window slides
    assert out.shape == (8,) and gpt.training
    for top_k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="top_k must be None"):
            gpt.sample(torch.tensor([1]), 2, top_k=top_k)


def test_forward_refuses_an_empty_input_and_a_mask_of_another_shape():
    gpt = GPT(GPTConfig(vocab_size=10, context_length=4, n_layer=1, n_head=1, d_model=4))
    with pytest.raises(ValueError, match="input has 0 tokens; this GPT takes 1 to 4"):
        gpt(torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids \(1, 2\)"):
        gpt(torch.tensor([1, 2]), attention_mask=torch.ones(3))
