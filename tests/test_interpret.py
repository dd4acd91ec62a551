"""The residual-stream tools (gpt2lab.interpret), tested by their defining identities on the three model
kinds, and against an independent implementation: the from-scratch GPT of gpt2lab.model."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

import gpt2lab
from gpt2lab import interpret
from gpt2lab.families import UnsupportedModelError
from gpt2lab.model import from_gpt2

matplotlib.use("Agg")

pytestmark = pytest.mark.usefixtures("one_thread")  # small models: fastest on one thread, and the machine is shared

TEXT = "ROMEO:\nWhat light is this?\n\nJULIET:\nIt is the"
CLEAN = "The cat sat on the mat. The cat sat on the"
CORRUPT = "The dog ran to the log. The dog ran to the"  # the same token length under GPT-2's tokenizer


def clean_and_corrupt(lm, n_tokens: int = 7):
    """Token ids of the same length in any tokenizer: the first tokens of CLEAN, and a copy with its first
    three tokens rotated (so the texts differ early and agree on the rest)."""
    clean = lm.encode(CLEAN)[0, :n_tokens].cpu()
    corrupt = clean.clone()
    corrupt[:3] = clean[:3].roll(1)
    return clean.tolist(), corrupt.tolist()


def last_target(lm, text) -> int:
    """The model's own top prediction after ``text`` (a string or ids), a target every model has a view on."""
    ids = lm.encode(text) if isinstance(text, str) else torch.tensor([text], device=lm.device)
    with torch.no_grad():
        return int(lm.model(ids).logits[0, -1].argmax())


def test_logit_lens_rows_read_the_residual_stream(any_lm):
    lens = interpret.logit_lens(any_lm, TEXT)
    ids = any_lm.encode(TEXT)
    cfg = any_lm.model.config
    assert lens.logits.shape == (cfg.n_layer + 1, ids.shape[1], cfg.vocab_size)
    with torch.no_grad():
        out = any_lm.model(ids, output_hidden_states=True)
    torch.testing.assert_close(lens.logits[-1], out.logits[0].float())  # the last row is the model's logits
    # row i reads hidden_states[i] (transformers' hidden states before the final LayerNorm, except the last)
    trunk = any_lm.model.transformer
    with torch.no_grad():
        for row in (0, cfg.n_layer // 2):
            expected = any_lm.model.lm_head(trunk.ln_f(out.hidden_states[row][0]))
            torch.testing.assert_close(lens.logits[row], expected.float(), rtol=1e-4, atol=1e-4)
    assert lens.layer_labels[0] == "embed" and len(lens.layer_labels) == cfg.n_layer + 1
    final = lens.probability_of("final")
    assert final.shape == (cfg.n_layer + 1, ids.shape[1])
    assert np.allclose(final[-1], torch.softmax(out.logits[0], -1).max(-1).values.numpy(), atol=1e-5)
    assert np.isnan(lens.probability_of("next")[:, -1]).all()
    assert len(lens.top_tokens(-1, k=2)) == cfg.n_layer + 1


def test_dla_shares_sum_to_the_logit(any_lm):
    target = last_target(any_lm, TEXT)
    dla = interpret.direct_logit_attribution(any_lm, TEXT, target)
    n_layer, n_head = any_lm.model.config.n_layer, any_lm.model.config.n_head
    names = list(dla.contributions)
    assert names[0] == "embed" and names[-1] == "ln_f.bias"
    assert names[1:n_head + 3] == [f"L0.H{h}" for h in range(n_head)] + ["L0.attn_bias", "L0.mlp"]
    assert len(names) == 2 + n_layer * (n_head + 2)
    assert dla.heads().shape == (n_layer, n_head) and dla.mlps().shape == (n_layer,)
    with torch.no_grad():
        logit = float(any_lm.model(any_lm.encode(TEXT)).logits[0, -1, target])
    assert dla.logit == pytest.approx(logit, rel=1e-6)
    assert dla.total == pytest.approx(dla.logit, rel=1e-4, abs=1e-4)


def test_dla_of_a_silenced_head_is_zero(gpt2_tokenizer):
    """A head whose output rows are zero writes nothing, so its share is exactly 0; the others still sum."""
    from conftest import make_tiny_model

    model = make_tiny_model(seed=5)
    head_dim = model.config.n_embd // model.config.n_head
    with torch.no_grad():
        model.transformer.h[1].attn.c_proj.weight[head_dim:2 * head_dim] = 0  # head 1 of layer 1
    lm = gpt2lab.from_model(model, gpt2_tokenizer, device="cpu")
    dla = interpret.direct_logit_attribution(lm, TEXT, " the")
    assert dla.contributions["L1.H1"] == 0.0 and dla.contributions["L1.H0"] != 0.0
    assert dla.total == pytest.approx(dla.logit, rel=1e-4, abs=1e-4)


def test_patching_identities(any_lm):
    clean_ids, corrupt_ids = clean_and_corrupt(any_lm)
    target = last_target(any_lm, clean_ids)
    result = interpret.activation_patching(any_lm, clean_ids, corrupt_ids, target)
    n_layer, n_head = any_lm.model.config.n_layer, any_lm.model.config.n_head
    n_tokens = len(clean_ids)
    assert result.effect.shape == (n_layer + 1, n_tokens) and result.head_effect.shape == (n_layer, n_head)
    assert result.effect[-1, -1] == 1.0  # the whole final residual at the answer position: the clean answer
    np.testing.assert_allclose(result.effect[-1, :-1], 0.0, atol=1e-4)  # nothing reads the other positions
    # positions where the texts agree carry no difference into the embeddings: patching them does nothing
    same = [p for p in range(n_tokens) if result.clean_tokens[p] == result.corrupt_tokens[p]]
    np.testing.assert_allclose(result.effect[0, same], 0.0, atol=1e-4)
    with torch.no_grad():
        clean = float(any_lm.model(torch.tensor([clean_ids], device=any_lm.device)).logits[0, -1, target])
    assert result.clean_logit == pytest.approx(clean, rel=1e-4, abs=1e-4)


def test_patching_agrees_with_the_from_scratch_model(tiny_lm):
    """An independent implementation: patch the from-scratch GPT's residual stream and one head by hand."""
    target = last_target(tiny_lm, CLEAN)
    result = interpret.activation_patching(tiny_lm, CLEAN, CORRUPT, target, batch_size=3)
    gpt = from_gpt2(tiny_lm)
    clean_ids, corrupt_ids = tiny_lm.encode(CLEAN)[0], tiny_lm.encode(CORRUPT)[0]

    def run(ids, patch_block=None, position=None, clean_resid=None, head=None, clean_z=None):
        with torch.no_grad():
            x = gpt.embed(ids[None])
            resid, zs = [x], []
            for layer, block in enumerate(gpt.blocks):
                if patch_block == layer and position is not None:
                    x = x.clone()
                    x[0, position] = clean_resid[layer][0, position]
                attn = block.attn
                q, k, v = attn.qkv(block.ln_1(x)).split(x.shape[-1], dim=-1)
                z = attn.merge_heads(attn.attend(attn.split_heads(q), attn.split_heads(k), attn.split_heads(v))[0])
                if head is not None and head[0] == layer:
                    cols = slice(head[1] * attn.head_dim, (head[1] + 1) * attn.head_dim)
                    z = z.clone()
                    z[..., cols] = clean_z[layer][..., cols]
                zs.append(z)
                x = x + attn.out(z)
                x = x + block.mlp(block.ln_2(x))
                resid.append(x)
            return float(gpt.lm_head(gpt.ln_f(x))[0, -1, target]), resid, zs

    clean_logit, clean_resid, clean_z = run(clean_ids)
    corrupt_logit, _, _ = run(corrupt_ids)
    gap = clean_logit - corrupt_logit
    for layer, position in [(0, 1), (1, 2), (1, len(clean_ids) - 1)]:
        patched, _, _ = run(corrupt_ids, patch_block=layer, position=position, clean_resid=clean_resid)
        assert result.effect[layer, position] == pytest.approx((patched - corrupt_logit) / gap, abs=1e-3)
    for head in [(0, 1), (1, 0)]:
        patched, _, _ = run(corrupt_ids, head=head, clean_z=clean_z)
        assert result.head_effect[head] == pytest.approx((patched - corrupt_logit) / gap, abs=1e-3)


def test_bad_input_gets_a_clear_error(tiny_lm, gpt2_tokenizer):
    with pytest.raises(ValueError, match="same token length"):
        interpret.activation_patching(tiny_lm, CLEAN, CLEAN + " mat", " mat")
    with pytest.raises(ValueError, match="same logit"):
        interpret.activation_patching(tiny_lm, CLEAN, CLEAN, " mat")
    with pytest.raises(ValueError, match=r"target ' Romeo and' is 2 tokens"):
        interpret.direct_logit_attribution(tiny_lm, TEXT, " Romeo and")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        interpret.direct_logit_attribution(tiny_lm, TEXT, 10**6)
    with pytest.raises(ValueError, match="text is empty"):
        interpret.logit_lens(tiny_lm, "")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        interpret.activation_patching(tiny_lm, CLEAN, CORRUPT, " mat", batch_size=0)
    with pytest.raises(TypeError, match="LogitLens"):
        interpret.plot_logit_lens("not a lens")


def test_other_architectures_are_refused_before_any_work(gpt2_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(gpt2_tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    lm = gpt2lab.from_model(llama, gpt2_tokenizer, name="tiny-llama", device="cpu")
    for call in (lambda: interpret.logit_lens(lm, ""), lambda: interpret.direct_logit_attribution(lm, "", 10**9),
                 lambda: interpret.activation_patching(lm, "a", "a b c", 10**9)):
        with pytest.raises(UnsupportedModelError, match="residual-stream tools .* supports the GPT-2 family only: "
                                                         "GPT-2 .*; 'tiny-llama' is a 'llama' model"):
            call()
    with pytest.raises(TypeError, match="gpt2lab.LM"):
        interpret.logit_lens(llama, "hello")


def test_lm_methods_delegate_and_plots_draw(tiny_lm):
    target = last_target(tiny_lm, CLEAN)
    assert torch.equal(tiny_lm.logit_lens(TEXT).logits, interpret.logit_lens(tiny_lm, TEXT).logits)
    assert tiny_lm.direct_logit_attribution(TEXT, target).contributions == \
        interpret.direct_logit_attribution(tiny_lm, TEXT, target).contributions
    result = tiny_lm.activation_patching(CLEAN, CORRUPT, target)
    np.testing.assert_array_equal(result.effect, interpret.activation_patching(tiny_lm, CLEAN, CORRUPT, target).effect)
    for figure in (tiny_lm.logit_lens(TEXT).plot(), tiny_lm.direct_logit_attribution(TEXT, target).plot(),
                   result.plot()):
        assert figure.axes
        matplotlib.pyplot.close(figure)


def test_a_target_may_be_a_numpy_or_torch_integer(tiny_lm):
    """``logits.argmax()`` (a 0-d tensor) or a NumPy integer names the same target as the int; a float or a
    tensor of several ids is still refused."""
    text = "The cat sat on the"
    top = interpret.logit_lens(tiny_lm, text).logits[-1, -1].argmax()
    want = interpret.direct_logit_attribution(tiny_lm, text, int(top))
    for target in (top, np.int64(int(top))):
        assert interpret.direct_logit_attribution(tiny_lm, text, target).logit == pytest.approx(want.logit)
    for bad in (2.0, torch.tensor([1, 2])):
        with pytest.raises(TypeError, match="target must be a token id"):
            interpret.direct_logit_attribution(tiny_lm, text, bad)


def test_lens_helpers_refuse_positions_ranks_and_ids_outside_the_text(tiny_lm):
    lens = interpret.logit_lens(tiny_lm, "The cat sat")
    n, vocab = lens.logits.shape[1], lens.logits.shape[2]
    assert len(lens.top_tokens(-n, k=vocab)[0]) == vocab
    for kwargs in ({"position": n}, {"position": -n - 1}, {"k": 0}, {"k": vocab + 1}):
        with pytest.raises(ValueError, match="must be an int in"):
            lens.top_tokens(**kwargs)
    with pytest.raises(ValueError, match=rf"token ids must lie in 0..{vocab - 1}"):
        lens.probability_of(vocab)
