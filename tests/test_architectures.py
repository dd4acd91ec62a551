"""Every public tool on the seven causal-LM families people load next: GPT-2, GPT-NeoX, Llama, Qwen2, OPT,
GPT-Neo and Phi-3 (tiny random models saved like downloads: see ``tests/architectures.py`` for what each
covers - grouped-query attention, rotary and absolute positions, a model without a BOS token, tokenizers
that add their BOS themselves).

Known answers throughout: generation token for token against ``model.generate`` with the same settings,
attention maps recomputed by hand for grouped-query attention, scores against a brute-force forward pass
per token, attributions on a model whose attention is switched off (earlier words provably cannot
matter), and the GPT-2-only tools refusing other families before any forward pass.
"""
from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from architectures import CONTEXT, FAMILIES, HEADS, LAYERS, attention_blind, counting_forward_calls

import gpt2lab
from gpt2lab.attention import by_hand, views
from gpt2lab.attention import heads as hs
from gpt2lab.explain import attribution
from gpt2lab.explain.words import split_words
from gpt2lab.families import UnsupportedModelError
from gpt2lab.generation import decoding
from gpt2lab.serving import batch, server
from gpt2lab.tokens import bos_id

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:mode .* ignores")]  # the explicit cut-offs a mode does not use

PROMPT = "To be or not"
TEXT = "The cat sat on the mat"
NEW = 12  # new tokens: prompt + 12 > GPT-Neo's local window of 8, so the window is crossed while generating


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GPT2LAB_CACHE", str(tmp_path_factory.getbasetemp() / "gpt2lab-cache"))


@pytest.fixture(params=["float32", "bfloat16"])
def dtype(request):
    return request.param


def prompt_ids(lm, text=PROMPT) -> torch.Tensor:
    """(1, T) ids of the prompt as gpt2lab's generation reads it (no special tokens added)."""
    return torch.tensor([lm.tokenizer(text, add_special_tokens=False)["input_ids"]])


def hf_generate(lm, ids, seed=None, **settings) -> torch.Tensor:
    """``model.generate`` itself, seeded the plain torch way."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW,
                                 pad_token_id=lm.tokenizer.pad_token_id, **settings)


def texts_of(lm, prompt, sequences, width) -> list[str]:
    """What gpt2lab returns for these sequences: the prompt, then the new tokens up to the first end-of-text."""
    eos = lm.model.generation_config.eos_token_id
    out = []
    for row in sequences[:, width:].tolist():
        if eos in row:
            row = row[:row.index(eos)]
        out.append(prompt + lm.tokenizer.decode(row))
    return out


# ================================================================================ loading

def test_the_matrix_covers_the_documented_families():
    from gpt2lab.families import TESTED_FAMILIES

    assert list(FAMILIES) == list(TESTED_FAMILIES)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "| tool | GPT-2 | GPT-NeoX | Llama | Qwen2 | OPT | GPT-Neo | Phi-3 |" in readme
    kinds = {(f.positions, f.grouped, f.bos is None, f.adds_bos) for f in FAMILIES.values()}
    assert {p for p, *_ in kinds} == {"absolute", "rotary"} and any(g for _, g, *_ in kinds)
    assert any(no_bos for *_, no_bos, _ in kinds) and any(adds for *_, adds in kinds)


def test_loads_from_its_folder_in_float32_and_bfloat16(arch, arch_dir, load_arch, dtype):
    from transformers import AutoModelForCausalLM

    lm = load_arch(arch, dtype)
    want = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    assert lm.model.config.model_type == arch and lm.source == "local"
    assert lm.dtype == want and all(p.dtype == want for p in lm.model.parameters())
    assert lm.context_length == CONTEXT and lm.tokenizer.pad_token_id is not None
    assert lm.model.config.vocab_size == len(lm.tokenizer)
    assert FAMILIES[arch].bos == lm.tokenizer.bos_token
    ids = prompt_ids(lm)
    reference = AutoModelForCausalLM.from_pretrained(arch_dir, **gpt2lab.loading.dtype_keyword(torch.float32)).eval()
    with torch.no_grad():
        expected = reference(ids).logits
        got = lm.model(ids).logits.float()
    if dtype == "float32":
        assert torch.equal(got, expected)
    else:  # bfloat16 keeps ~3 significant digits: the same model, rounded
        assert torch.allclose(got, expected, rtol=0.05, atol=0.15 * float(expected.abs().max()))
        assert float(torch.corrcoef(torch.stack([got.flatten(), expected.flatten()]))[0, 1]) > 0.99


# ================================================================================ generation

# mode -> (gpt2lab parameters, the same settings for model.generate). Every cut-off is given explicitly,
# so the comparison does not depend on which defaults a mode has (a mode that does not use one ignores it).
MODES = {
    "greedy": ({}, dict(do_sample=False, num_beams=1)),
    "beam": (dict(num_beams=3, num_return_sequences=2), dict(do_sample=False, num_beams=3, num_return_sequences=2)),
    "sample-top-k": (dict(top_k=5, top_p=1.0, temperature=0.8, seed=3, num_return_sequences=2),
                     dict(do_sample=True, num_beams=1, top_k=5, top_p=1.0, temperature=0.8, num_return_sequences=2)),
    "sample-top-p": (dict(top_p=0.8, top_k=0, temperature=0.9, seed=4, num_return_sequences=2),
                     dict(do_sample=True, num_beams=1, top_k=0, top_p=0.8, temperature=0.9, num_return_sequences=2)),
    "sample": (dict(top_k=0, top_p=1.0, temperature=1.1, seed=5, num_return_sequences=2),
               dict(do_sample=True, num_beams=1, top_k=0, top_p=1.0, temperature=1.1, num_return_sequences=2)),
}
# applied in every mode, passed explicitly to both sides
SHARED = [dict(no_repeat_ngram_size=0, repetition_penalty=1.0), dict(no_repeat_ngram_size=2, repetition_penalty=1.3)]


@pytest.mark.parametrize("mode", list(MODES))
def test_generate_equals_model_generate_in_every_mode(arch, load_arch, dtype, mode, monkeypatch):
    """gpt2lab.generate makes one model.generate call with exactly these settings: its tokens equal an
    independent call's, and its texts are those tokens decoded."""
    lm = load_arch(arch, dtype)
    ours, theirs = MODES[mode]
    seed = ours.get("seed")
    ids = prompt_ids(lm)
    calls = []
    original = lm.model.generate

    def spy(**kwargs):
        out = original(**kwargs)
        calls.append((kwargs, out))
        return out

    monkeypatch.setattr(lm.model, "generate", spy)
    for shared in SHARED:
        calls.clear()
        texts = gpt2lab.generate(lm, PROMPT, mode=mode, max_length=NEW, **ours, **shared)
        assert len(calls) == 1
        kwargs, sequences = calls[0]
        assert torch.equal(kwargs["input_ids"], ids)  # the prompt, without special tokens
        expected = hf_generate(lm, ids, seed=seed, **theirs, **shared)
        assert torch.equal(sequences, expected), (mode, shared)
        assert list(texts) == texts_of(lm, PROMPT, expected, ids.shape[1])


def test_from_scratch_decoders_equal_model_generate(arch, load_arch, dtype):
    """Greedy (with and without the KV cache), beam search and seeded sampling, token for token; sampling
    also step for step (the transformed scores of every step are identical)."""
    lm = load_arch(arch, dtype)
    ids = prompt_ids(lm)
    for shared in SHARED:
        expected = hf_generate(lm, ids, do_sample=False, num_beams=1, **shared)
        assert torch.equal(decoding.greedy(lm, ids, NEW, **shared).sequences, expected), shared
        assert torch.equal(decoding.greedy(lm, ids, NEW, use_cache=False, **shared).sequences, expected), shared
        for beams in (dict(num_beams=3, num_return_sequences=2), dict(num_beams=4, length_penalty=0.6)):
            expected = hf_generate(lm, ids, do_sample=False, **beams, **shared)
            assert torch.equal(decoding.beam_search(lm, ids, NEW, **beams, **shared).sequences, expected), beams
        for sampling in (dict(temperature=0.8, top_k=5), dict(temperature=1.2, top_p=0.8, top_k=0)):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(11)
                expected = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW,
                                             do_sample=True, num_return_sequences=2, output_scores=True,
                                             return_dict_in_generate=True, pad_token_id=lm.tokenizer.pad_token_id,
                                             **sampling, **shared)
            got = decoding.sample(lm, ids, NEW, num_return_sequences=2, seed=11, keep_scores=True, **sampling,
                                  **shared)
            assert torch.equal(got.sequences, expected.sequences), sampling
            assert len(got.scores) == len(expected.scores)
            assert all(torch.equal(a, b) for a, b in zip(got.scores, expected.scores)), sampling


def test_from_scratch_generate_equals_gpt2lab_generate(arch, load_arch):
    lm = load_arch(arch)
    for mode, (ours, _) in MODES.items():
        a = gpt2lab.generate(lm, PROMPT, mode=mode, max_length=NEW, no_repeat_ngram_size=0, **ours)
        b = decoding.generate(lm, PROMPT, mode=mode, max_length=NEW, no_repeat_ngram_size=0, **ours)
        assert list(a) == list(b), mode


def test_step_records_and_the_next_token_distribution(arch, load_arch):
    lm = load_arch(arch)
    vocab = len(lm.tokenizer)
    result = decoding.sample(lm, PROMPT, 4, temperature=0.8, top_k=5, seed=0, record=True)
    assert len(result.steps) == 4
    for step, chosen in zip(result.steps, result.new_tokens[0].tolist()):
        assert step.stage_names == ["model", "temperature 0.8", "top-k 5"]
        assert step.kept[0, 0] == vocab and step.kept[-1, 0] == 5
        table = step.table(lm.tokenizer)
        assert table["chosen"].sum() == 1 and int(step.chosen[0]) == chosen
        assert abs(table["top-k 5"].sum() - 1.0) < 1e-5  # the 5 survivors are listed and hold all the mass
    greedy = decoding.greedy(lm, PROMPT, 3, record=True)
    for step in greedy.steps:
        assert step.table(lm.tokenizer).iloc[0]["chosen"]  # the likeliest candidate is the one taken
    beams = decoding.beam_search(lm, PROMPT, 5, num_beams=3, record=True)
    assert set(beams.steps[0].source_beam) == {0} and beams.steps[0].status.count("running") == 3
    assert beams.steps[-1].finished[0][0] == beams.new_tokens[0].tolist()
    view = decoding.next_token_distribution(lm, PROMPT, temperature=0.5, top_k=10)
    with torch.no_grad():
        logits = lm.model(prompt_ids(lm)).logits[0, -1].float()
    assert torch.allclose(view.stage("model"), torch.softmax(logits, -1), atol=1e-6)
    assert view.kept("top-k 10") == 10 and view.probs.shape == (3, vocab)


# ================================================================================ attention

def _attention_by_hand_layer0(lm, ids: torch.Tensor) -> torch.Tensor:
    """(heads, T, T) attention of layer 0 of a Llama-style model recomputed from its weights: queries per
    query head, keys per key/value head, query head h reading key/value head h // (heads / kv_heads)."""
    cfg = lm.model.config
    family = importlib.import_module(f"transformers.models.{cfg.model_type}.modeling_{cfg.model_type}")
    trunk = lm.model.model
    n_heads, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = cfg.hidden_size // n_heads
    layer = trunk.layers[0]
    with torch.no_grad():
        x = layer.input_layernorm(trunk.embed_tokens(ids))
        attn = layer.self_attn
        if hasattr(attn, "qkv_proj"):  # Phi-3 fuses the three projections: queries, then keys, then values
            qkv = attn.qkv_proj(x)
            q, k = qkv[..., :n_heads * head_dim], qkv[..., n_heads * head_dim:(n_heads + n_kv) * head_dim]
        else:
            q, k = attn.q_proj(x), attn.k_proj(x)
        t = ids.shape[1]
        q = q.view(1, t, n_heads, head_dim).transpose(1, 2)
        k = k.view(1, t, n_kv, head_dim).transpose(1, 2)
        cos, sin = trunk.rotary_emb(x, torch.arange(t)[None])
        q, k = family.apply_rotary_pos_emb(q, k, cos, sin)
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        future = torch.ones(t, t, dtype=torch.bool).triu(1)
        return torch.softmax(scores.masked_fill(future, -float("inf")), dim=-1)[0]


def test_capture_has_one_map_per_query_head(arch, load_arch):
    lm = load_arch(arch)
    family = FAMILIES[arch]
    text = "To be or not to be, that is the question"
    kernel = lm.model.config._attn_implementation
    capture = gpt2lab.capture_attention(lm, text)
    assert lm.model.config._attn_implementation == kernel  # eager for the capture only
    ids = lm.tokenizer(text)["input_ids"]  # as the capture reads it: with the BOS a tokenizer adds itself
    assert capture.token_ids == ids and (ids[0] == lm.tokenizer.bos_token_id) == family.adds_bos
    assert capture.attention.shape == (LAYERS, HEADS, len(ids), len(ids)) and capture.n_heads == HEADS
    assert torch.allclose(capture.attention.sum(-1), torch.ones(LAYERS, HEADS, len(ids)), atol=1e-5)
    assert not capture.attention.triu(1).any()  # nothing from the future
    if family.grouped:  # the known answer: queries per head, keys shared within each group
        expected = _attention_by_hand_layer0(lm, torch.tensor([ids]))
        assert torch.allclose(capture.layer(0), expected, atol=1e-5)
        assert not torch.allclose(capture.head(0, 0), capture.head(0, 1), atol=1e-3)  # same keys, own queries
    if arch == "gpt_neo":  # layer 1 is local: a query sees itself and the 7 tokens before it, no further
        local = capture.layer(1)
        q, k = torch.meshgrid(torch.arange(len(ids)), torch.arange(len(ids)), indexing="ij")
        assert not local[:, q - k >= 8].any() and local[:, (q - k < 8) & (q >= k)].gt(0).all()


def test_head_statistics(arch, load_arch):
    lm = load_arch(arch)
    text = "The cat sat on the mat. The cat sat on the mat."
    stats = gpt2lab.head_stats(lm, text, induction_sequences=2)
    capture = gpt2lab.capture_attention(lm, text)
    weights = capture.attention.double()
    assert stats.entropy.shape == stats.induction.shape == (LAYERS, HEADS)
    np.testing.assert_allclose(stats.first_token, weights[..., 1:, 0].mean(-1).numpy(), atol=1e-6)
    np.testing.assert_allclose(stats.previous_token, torch.diagonal(weights, -1, -2, -1).mean(-1).numpy(), atol=1e-6)
    ids, start, period = hs.repeated_random_tokens(lm, length=50, n_sequences=2)  # head_stats' defaults
    assert (ids[:, 0] == bos_id(lm.tokenizer)).all()  # no BOS token (Qwen2): end-of-text starts the text
    special = set(lm.tokenizer.all_special_ids)
    assert not any(int(i) in special for i in ids[:, 1:].flatten())
    with torch.no_grad(), lm.eager_attention():
        out = lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    queries = torch.arange(start + period, ids.shape[1])
    for layer in range(LAYERS):
        expected = out.attentions[layer][:, :, queries, queries - period + 1].mean(dim=(0, 2)).double()
        np.testing.assert_allclose(stats.induction[layer], expected.numpy(), atol=1e-6)


def _bertviz_params(page: str) -> dict:
    start = page.index("const params = ") + len("const params = ")
    return json.loads(page[start:page.index("; // HACK", start)])


def test_both_attention_views(arch, load_arch):
    lm = load_arch(arch)
    capture = gpt2lab.capture_attention(lm, "To be or not to be")
    head = _bertviz_params(views.bertviz_html(capture, "head", layers=[1]))["attention"][0]
    assert head["left_text"] == head["right_text"] == capture.labels
    assert torch.allclose(torch.tensor(head["attn"][0]), capture.layer(1), atol=5e-4)
    model = _bertviz_params(views.bertviz_html(capture, "model"))
    assert model["total_heads"] == HEADS  # query heads, with grouped-query attention too
    assert torch.allclose(torch.tensor(model["attention"][0]["attn"]), capture.attention, atol=5e-4)
    page = views.offline_html(capture, layer=1, head=None)
    assert '"nHeads": 4' in page and "<script src" not in page
    assert json.dumps(capture.labels, ensure_ascii=False) in page


# ================================================================================ the GPT-2-only tools

GPT2_ONLY = {  # tools that are GPT-2's by nature -> a call on some text
    "block_by_hand": lambda lm: by_hand.block_by_hand(lm, TEXT, 0),
    "embed_by_hand": lambda lm: by_hand.embed_by_hand(lm, TEXT),
    "forward_by_hand": lambda lm: by_hand.forward_by_hand(lm, TEXT),
    "compare_with_model": lambda lm: by_hand.compare_with_model(lm, TEXT),
    "run_block_by_hand": lambda lm: by_hand.run_block_by_hand(lm, 0, torch.zeros(3, 32)),
    "model_reference": lambda lm: by_hand.model_reference(lm, TEXT),
    "from_gpt2": lambda lm: gpt2lab.model.from_gpt2(lm),
    "logit_lens": lambda lm: gpt2lab.logit_lens(lm, TEXT),
    "direct_logit_attribution": lambda lm: gpt2lab.direct_logit_attribution(lm, TEXT, 5),
    "activation_patching": lambda lm: gpt2lab.activation_patching(lm, [1, 2, 3, 4], [6, 2, 3, 4], 5),
}


@pytest.mark.parametrize("tool", list(GPT2_ONLY))
def test_gpt2_only_tools_work_on_gpt2_and_refuse_the_others_before_any_work(arch, load_arch, tool):
    lm = load_arch(arch)
    with counting_forward_calls(lm) as calls:
        if arch == "gpt2":
            result = GPT2_ONLY[tool](lm)
            if tool == "compare_with_model":
                assert (result["block_output"] < 1e-5 * result["output_size"] + 1e-6).all()
            return
        with pytest.raises(UnsupportedModelError, match=r"supports the GPT-2 family only.*"
                                                        rf"'{arch}' model .*capture_attention, head_stats"):
            GPT2_ONLY[tool](lm)
    assert calls[0] == 0
    assert issubclass(UnsupportedModelError, TypeError)


# ================================================================================ scoring

def test_sliding_window_scores_equal_a_forward_pass_per_token(arch, load_arch):
    """stride 1, window 12: every token predicted from exactly the 11 tokens before it (fewer at the start),
    computed here with one forward pass per token; positions restart in every window (absolute ones too)."""
    lm = load_arch(arch)
    text = "We few, we happy few, we band of brothers; for he to-day that sheds his blood with me"
    pieces = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = [bos_id(lm.tokenizer)] + pieces  # conditioned on one beginning-of-text token, never two
    block = 12
    assert len(ids) > 3 * block
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            context = torch.tensor([ids[max(0, t - block + 1):t]])
            total -= float(torch.log_softmax(lm.model(context).logits[0, -1].float(), -1)[ids[t]])
    score = gpt2lab.score_text(lm, text, block=block, stride=1)
    assert score.tokens == len(pieces) and score.chars == len(text)
    assert score.nll == pytest.approx(total, rel=1e-5)
    one_window = gpt2lab.score_text(lm, text)  # the whole text fits: one forward pass
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0, :-1].float()
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum")
    assert one_window.nll == pytest.approx(float(expected), rel=1e-5)
    assert lm.perplexity(text) == pytest.approx(math.exp(float(expected) / len(pieces)), rel=1e-5)


def test_texts_longer_than_the_context_are_scored_in_windows(arch, load_arch):
    lm = load_arch(arch)
    text = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 6
    pieces = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(pieces) > 2 * CONTEXT
    for stride in (None, CONTEXT // 2):
        score = gpt2lab.score_text(lm, text, stride=stride)
        assert score.tokens == len(pieces) and math.isfinite(score.nll) and score.nll > 0


# ================================================================================ which words matter

def test_every_attribution_method_runs_and_shapley_adds_up(arch, load_arch):
    """All methods, one table; known answer: Shapley values sum to log p(target | text) minus
    log p(target | every word blanked), and occlusion of one word is the drop when it alone is blanked."""
    lm = load_arch(arch)
    res = gpt2lab.compare_attributions(lm, TEXT, methods=attribution.METHODS, shapley_samples=2, ig_steps=8,
                                       importance_steps=5, importance_samples=2, progress=False)
    assert res.words == TEXT.split()
    frame = res.to_dataframe()
    assert list(frame.columns) == list(attribution.METHODS) and np.isfinite(frame.values).all()
    ids = [bos_id(lm.tokenizer)] + lm.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    blank = lm.tokenizer(" ", add_special_tokens=False)["input_ids"][0]
    (target,) = res.target_ids

    def logp(context):
        with torch.no_grad():
            return float(torch.log_softmax(lm.model(torch.tensor([context])).logits[0, -1].float(), -1)[target])

    total = logp(ids) - logp(ids[:1] + [blank] * (len(ids) - 1))
    assert res.scores["shapley"].sum() == pytest.approx(total, abs=1e-4)
    cat = split_words(lm.tokenizer, TEXT).words[1]  # every piece of the word is blanked together
    assert cat.text == "cat"
    blanked = [blank if p - 1 in cat.tokens else t for p, t in enumerate(ids)]
    assert res.scores["occlusion"][1] == pytest.approx(logp(ids) - logp(blanked), abs=1e-4)
    lone_byte = next(i for i in range(len(lm.tokenizer)) if lm.tokenizer.decode([i]) == "\ufffd")
    partial = gpt2lab.compare_attributions(lm, TEXT, target=lone_byte, methods=attribution.CAPTUM_METHODS,
                                           shapley_samples=1, ig_steps=4, progress=False)  # half a character
    assert partial.target_ids == (lone_byte,) and np.isfinite(partial.to_dataframe().values).all()
    deletion = attribution.deletion_curve(lm, res, n_random=3)
    assert set(deletion.areas) == set(attribution.METHODS)
    assert all(abs(curve[0]) < 1e-5 for curve in deletion.curves.values())  # nothing removed yet
    assert deletion.random_curves.shape == (3, len(res.words) + 1)


def test_attributions_on_a_model_whose_attention_is_off(arch, load_arch):
    """Attention outputs zeros, so only the last word can move the prediction: occlusion, Shapley and
    integrated gradients give every earlier word exactly 0. Leaving a word out also shifts the last
    word's position: that matters with absolute positions only."""
    lm = load_arch(arch)
    with attention_blind(lm):
        res = gpt2lab.compare_attributions(lm, TEXT, methods=("occlusion", "shapley", "integrated_gradients",
                                                              "leave_one_out"),
                                           shapley_samples=2, ig_steps=8, progress=False)
        for method in ("occlusion", "shapley", "integrated_gradients"):
            *earlier, last = res.scores[method]
            np.testing.assert_allclose(earlier, 0.0, atol=1e-6, err_msg=method)
            assert abs(last) > 1e-4, method
        moved = np.abs(res.scores["leave_one_out"][:-1])
        if FAMILIES[arch].positions == "rotary":
            np.testing.assert_allclose(moved, 0.0, atol=1e-5)
        else:
            assert moved.max() > 1e-3
        importance = gpt2lab.word_importance(lm, TEXT, steps=80, samples=4, normaliser="self", progress=False)
        *blind, last = importance.sigma
        assert min(blind) > last and min(blind) > 0.95 * importance.scale
        assert importance.ranking()[0] == "mat"


def test_faithfulness_on_a_model_whose_attention_is_off(arch, load_arch):
    """Blanking words (positions kept) moves the prediction only once the last word is blanked, and then
    by exactly KL(full text || last word blanked): every deletion curve is 0 until the order reaches the
    last word, then that constant, so a method's area says how early its order puts the last word."""
    lm = load_arch(arch)
    methods = ("occlusion", "attention_last", "leave_one_out")
    ids = [bos_id(lm.tokenizer)] + lm.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    blank = lm.tokenizer(" ", add_special_tokens=False)["input_ids"][0]
    last = split_words(lm.tokenizer, TEXT).words[-1].tokens
    with attention_blind(lm), torch.no_grad():
        full, cut = (torch.log_softmax(lm.model(torch.tensor([c])).logits[0, -1].float(), -1)
                     for c in (ids, [blank if p - 1 in last else t for p, t in enumerate(ids)]))
        jump = float((full.exp() * (full - cut)).sum())
        comparison = gpt2lab.compare_attributions(lm, TEXT, methods=methods, progress=False)
        result = attribution.deletion_curve(lm, comparison, mode="mask", n_random=4)
        report = attribution.faithfulness_table(lm, [TEXT], methods=methods, mode="mask", n_random=4,
                                                progress=False)
    n = len(comparison.words)
    assert jump > 1e-4
    orders = [attribution.order_from_scores(comparison.scores[m]) for m in methods]
    for order, curve in zip(orders, [result.curves[m] for m in methods]):
        reached = order.index(n - 1) + 1  # words blanked once the last word is among them
        np.testing.assert_allclose(curve, [0.0] * reached + [jump] * (n + 1 - reached), rtol=1e-4, atol=1e-5)
    for curve in result.random_curves:
        reached = int(np.argmax(curve > jump / 2))
        np.testing.assert_allclose(curve, [0.0] * reached + [jump] * (n + 1 - reached), rtol=1e-4, atol=1e-5)
    for method, order in zip(methods, orders):
        expected_area = jump * (n - order.index(n - 1)) / n
        assert report.table.loc[method, "area"] == pytest.approx(expected_area, rel=1e-4, abs=1e-6)
        assert result.areas[method] == pytest.approx(expected_area, rel=1e-4, abs=1e-6)


# ================================================================================ serving

def test_the_endpoint_and_the_batch_job(arch, load_arch, tmp_path):
    lm = load_arch(arch)
    asks = [dict(input=PROMPT, mode="greedy", max_length=8, no_repeat_ngram_size=0),
            dict(input=PROMPT, mode="sample-top-k", top_k=5, max_length=8, num_return_sequences=2, seed=7),
            dict(input=[PROMPT, "Hi"], mode="beam", num_beams=2, num_return_sequences=2, max_length=5)]
    expected = [list(gpt2lab.generate(lm, **ask)) for ask in asks]
    with server.serve_in_background(lm) as running:
        assert requests.get(running.url + "/ping", timeout=30).json()["model"] == lm.name
        for ask, want in zip(asks, expected):
            reply = requests.post(running.url + "/invocations", json=ask, timeout=60)
            assert reply.status_code == 200, reply.text
            assert reply.json() == want
    jobs = tmp_path / "requests.jsonl"
    jobs.write_text("".join(json.dumps(ask) + "\n" for ask in asks))
    counts = batch.run_batch(lm, jobs, tmp_path / "results.jsonl", progress=False)
    assert counts == {"total": 3, "skipped": 0, "ok": 3, "errors": 0}
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["output"] for r in records] == expected
