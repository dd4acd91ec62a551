"""The by-hand GPT-2 block against transformers, attention capture, and the Python side of the views."""
from __future__ import annotations

import json
import math

import pytest
import torch

import gpt2lab
from gpt2lab.attention import by_hand as att
from gpt2lab.attention import capture as cap
from gpt2lab.attention import views
from gpt2lab.widgets import attention as attention_widget

# newline, punctuation and multi-byte characters: byte-level BPE splits these in several ways
TEXT = "The quick brown fox jumps over the lazy dog.\nIt barked: «café» - twice!"
TOLERANCE = 1e-5  # float32


def model_run(lm, text):
    """The real model's hidden states (embeddings, then after each block; the last after ln_f) and attentions."""
    ids = lm.encode(text)
    with torch.no_grad(), lm.eager_attention():
        out = lm.model(input_ids=ids, output_hidden_states=True, output_attentions=True, use_cache=False)
    return ids[0], [h[0] for h in out.hidden_states], [a[0] for a in out.attentions], out.logits[0]


def max_gap(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.detach().float() - b.detach().float()).abs().max())


def test_embeddings_by_hand_match_the_model(any_lm):
    ids, hidden, _, _ = model_run(any_lm, TEXT)
    emb = att.embed_by_hand(any_lm, TEXT)
    assert torch.equal(emb.token_ids, ids)
    assert torch.equal(emb.position_ids, torch.arange(len(ids)))
    assert torch.equal(emb.token_embeddings, any_lm.model.transformer.wte.weight[ids])
    assert max_gap(emb.block_input, hidden[0]) <= TOLERANCE
    assert any_lm.tokenizer.decode(emb.token_ids.tolist()) == TEXT
    assert len(emb.tokens) == len(ids) and not any("Ġ" in tok or "Ċ" in tok for tok in emb.tokens)


def test_every_block_by_hand_matches_the_model(any_lm):
    """Each block, fed the model's own input, reproduces the model's output and attention weights."""
    _, hidden, attentions, _ = model_run(any_lm, TEXT)
    trunk = any_lm.model.transformer
    n_layers = len(trunk.h)
    errors = []
    for layer in range(n_layers):
        block = att.run_block_by_hand(any_lm, layer, hidden[layer])
        output = block.block_output
        if layer == n_layers - 1:  # transformers applies the final layer norm to the last hidden state
            output = torch.nn.functional.layer_norm(output, output.shape[-1:], trunk.ln_f.weight, trunk.ln_f.bias,
                                                    trunk.ln_f.eps)
        errors.append((layer, max_gap(output, hidden[layer + 1]), max_gap(block.attention_weights, attentions[layer])))
    worst = max(max(e[1], e[2]) for e in errors)
    print(f"\n{any_lm.name}: max |by hand - model| over {n_layers} layers = {worst:.3e}")
    for layer, hidden_error, attention_error in errors:
        assert hidden_error <= TOLERANCE, f"layer {layer}: hidden state differs by {hidden_error}"
        assert attention_error <= TOLERANCE, f"layer {layer}: attention differs by {attention_error}"


def test_compare_with_model_reports_every_layer(any_lm):
    table = att.compare_with_model(any_lm, TEXT)
    assert list(table["layer"]) == list(range(len(any_lm.model.transformer.h)))
    assert (table["block_input"] == 0).all()  # each block was fed exactly the model's input
    assert table[["attention_weights", "block_output"]].to_numpy().max() <= TOLERANCE


def test_forward_by_hand_chains_to_the_models_logits(any_lm):
    _, hidden, attentions, logits = model_run(any_lm, TEXT)
    by_hand = att.forward_by_hand(any_lm, TEXT)
    for layer, block in enumerate(by_hand.blocks):
        assert max_gap(block.attention_weights, attentions[layer]) <= TOLERANCE
    assert max_gap(by_hand.final_norm, hidden[-1]) <= 1e-4
    assert max_gap(by_hand.logits, logits) <= 1e-3  # vocab-sized dot products of ~1e2 magnitude
    assert torch.equal(by_hand.logits.argmax(-1), logits.argmax(-1))


def test_block_intermediates_fit_together(tiny_lm):
    block = att.block_by_hand(tiny_lm, TEXT, layer=1)
    cfg = tiny_lm.model.config
    d, h = cfg.n_embd, cfg.n_head
    hd = d // h
    t = block.block_input.shape[0]
    attn = tiny_lm.model.transformer.h[1].attn
    # Conv1D stores (in, out): the fused weight is (d, 3d) and Q is its first d columns
    assert attn.c_attn.weight.shape == (d, 3 * d)
    assert torch.allclose(block.query, block.ln_1 @ attn.c_attn.weight[:, :d] + attn.c_attn.bias[:d], atol=1e-6)
    assert torch.equal(block.value, block.qkv[:, 2 * d:])
    assert block.query_heads.shape == (h, t, hd)
    assert torch.equal(block.key_heads[1], block.key[:, hd:2 * hd])
    assert block.scale == pytest.approx(1 / math.sqrt(hd))
    assert torch.allclose(block.scaled_scores, block.scores / math.sqrt(hd), atol=1e-6)
    assert torch.equal(block.causal_mask, torch.ones(t, t, dtype=torch.bool).tril())
    assert torch.isinf(block.masked_scores[:, ~block.causal_mask]).all()
    assert torch.allclose(block.attention_weights.sum(-1), torch.ones(h, t), atol=1e-6)
    assert (block.attention_weights[:, ~block.causal_mask] == 0).all()
    assert torch.equal(block.merged_heads[:, hd:], block.weighted_values[1])
    assert torch.equal(block.residual_after_attention, block.block_input + block.attention_output)
    assert torch.equal(block.block_output, block.residual_after_attention + block.mlp_output)
    assert block.mlp_fc.shape == (t, 4 * d)
    normed = torch.nn.functional.layer_norm(block.block_input, (d,), eps=1e-5)  # no gain/bias: mean 0, var 1
    assert torch.allclose(att.layer_norm_by_hand(block.block_input, torch.ones(d), torch.zeros(d), 1e-5), normed,
                          atol=1e-5)
    assert torch.allclose(att.gelu_by_hand(torch.tensor([0.0, 1.0, -1.0])),
                          torch.nn.functional.gelu(torch.tensor([0.0, 1.0, -1.0]), approximate="tanh"), atol=1e-6)
    table = block.describe()
    assert list(table["step"]) == list(att.BLOCK_STEPS)
    assert table.set_index("step").loc["attention_weights", "shape"] == (h, t, t)


def test_by_hand_rejects_bad_input(tiny_lm):
    with pytest.raises(ValueError, match=r"layer=2 is out of range.*0\.\.1"):
        att.block_by_hand(tiny_lm, TEXT, layer=2)
    with pytest.raises(TypeError, match="layer must be an int"):
        att.block_by_hand(tiny_lm, TEXT, layer="0")
    with pytest.raises(ValueError, match="text is empty"):
        att.embed_by_hand(tiny_lm, "")
    with pytest.raises(TypeError, match="text must be a string"):
        att.embed_by_hand(tiny_lm, 3.5)
    with pytest.raises(ValueError, match=r"block_input must have shape \(tokens, 32\)"):
        att.run_block_by_hand(tiny_lm, 0, torch.zeros(4, 16))
    with pytest.raises(ValueError, match="at most 64"):
        att.embed_by_hand(tiny_lm, "word " * 100)
    not_gpt2 = gpt2lab.LM(model=torch.nn.Linear(2, 2), tokenizer=tiny_lm.tokenizer, device=torch.device("cpu"),
                          name="linear")
    with pytest.raises(TypeError, match="GPT-2's layout"):
        att.forward_by_hand(not_gpt2, TEXT)
    with pytest.raises(TypeError, match="gpt2lab.LM"):
        cap.capture_attention("gpt2", TEXT)


# ----------------------------------------------------------------------------------------------
# capture


def test_capture_has_readable_tokens_and_the_models_weights(any_lm):
    text = "Hello world!\nGood night, sweet prince."
    capture = gpt2lab.capture_attention(any_lm, text)
    _, _, attentions, _ = model_run(any_lm, text)
    n_layers, n_heads = len(attentions), attentions[0].shape[0]
    t = len(capture.tokens)
    assert capture.attention.shape == (n_layers, n_heads, t, t)
    assert capture.attention.dtype == torch.float32 and capture.attention.device.type == "cpu"
    assert capture.layers == list(range(n_layers))
    for layer in range(n_layers):
        assert max_gap(capture.layer(layer), attentions[layer]) <= TOLERANCE
    assert "".join(capture.tokens) == text  # spaces and newline are back; no Ġ or Ċ
    assert not any("Ġ" in tok or "Ċ" in tok for tok in capture.tokens)
    assert "\n" in capture.tokens and "↵" in capture.labels
    assert torch.allclose(capture.attention.sum(-1), torch.ones(n_layers, n_heads, t), atol=1e-5)
    assert (capture.attention.triu(diagonal=1) == 0).all()  # causal: no weight on future tokens


def test_capture_tokens_of_gpt2_tokenizer(tiny_lm):
    capture = cap.capture_attention(tiny_lm, "Hello world!\nThe end")
    assert capture.tokens == ["Hello", " world", "!", "\n", "The", " end"]
    assert capture.labels == ["Hello", " world", "!", "↵", "The", " end"]
    frame = capture.to_frame(0, 1)
    assert list(frame.index) == ["0:Hello", "1: world", "2:!", "3:↵", "4:The", "5: end"]
    assert frame.to_numpy()[4].sum() == pytest.approx(1.0, abs=1e-5)


def test_capture_layers_subset_and_truncation(tiny_lm):
    full = cap.capture_attention(tiny_lm, TEXT)
    only_second = cap.capture_attention(tiny_lm, TEXT, layers=[1])
    assert only_second.attention.shape[0] == 1 and only_second.layers == [1]
    assert torch.equal(only_second.layer(1), full.layer(1))
    with pytest.raises(ValueError, match=r"layer=0 was not captured.*\[1\]"):
        only_second.layer(0)
    with pytest.raises(ValueError, match="head=5 is out of range"):
        full.head(0, 5)
    with pytest.warns(UserWarning, match=r"keeping the first 6 \(max_tokens=6; pass a larger max_tokens"):
        short = cap.capture_attention(tiny_lm, TEXT, max_tokens=6)
    # asked for more than the context: the warning names the context, not an impossible larger max_tokens
    long_text = TEXT * (tiny_lm.context_length // 2 + 1)
    with pytest.warns(UserWarning, match=rf"keeping the first {tiny_lm.context_length} \(the model's context is"):
        cap.capture_attention(tiny_lm, long_text, max_tokens=10 * tiny_lm.context_length)
    assert short.n_tokens == 6 and short.truncated_from == full.n_tokens
    assert short.tokens == full.tokens[:6]
    assert short.text == "".join(full.tokens[:6])
    # the first 6 tokens cannot see later ones, so their attention is unchanged by the cut
    assert torch.allclose(short.attention, full.attention[:, :, :6, :6], atol=1e-6)


def test_capture_rejects_bad_input(tiny_lm):
    with pytest.raises(ValueError, match="text is empty"):
        cap.capture_attention(tiny_lm, "")
    with pytest.raises(TypeError, match="text must be a string or a list of token ids"):
        cap.capture_attention(tiny_lm, ["a"])
    with pytest.raises(ValueError, match=r"token ids must lie in 0\.\.50256"):
        cap.capture_attention(tiny_lm, [1, 50257])
    with pytest.raises(ValueError, match=r"layers=5 is out of range"):
        cap.capture_attention(tiny_lm, TEXT, layers=[0, 5])
    with pytest.raises(ValueError, match="names a layer twice"):
        cap.capture_attention(tiny_lm, TEXT, layers=[1, 1])
    with pytest.raises(ValueError, match="max_tokens must be a positive int"):
        cap.capture_attention(tiny_lm, TEXT, max_tokens=0)


def test_capture_of_token_ids(tiny_lm):
    from_text = cap.capture_attention(tiny_lm, "Hello world!\nThe end")
    from_ids = cap.capture_attention(tiny_lm, torch.tensor(from_text.token_ids))
    assert from_ids.tokens == from_text.tokens and from_ids.text == from_text.text
    assert torch.equal(from_ids.attention, from_text.attention)
    assert cap.capture_attention(tiny_lm, from_text.token_ids[:3]).tokens == ["Hello", " world", "!"]


def test_a_batch_equals_its_rows_one_at_a_time(any_lm):
    """The one capture path: rows of different lengths are padded and masked; every row's weights equal
    those of the row run alone, and padding gets no weight and gives none."""
    tok = any_lm.tokenizer
    texts = ["Hello world!\nThe end", "A much longer row of text, so that the others need padding here.", "Hi"]
    rows = [[tok.eos_token_id] + tok(t)["input_ids"] for t in texts]
    batch = cap.attention_weights(any_lm, rows)
    width = max(len(r) for r in rows)
    n_layers, n_heads = any_lm.model.config.n_layer, any_lm.model.config.n_head
    assert batch.shape == (3, n_layers, n_heads, width, width) and batch.dtype == torch.float32
    for b, row in enumerate(rows):
        alone = cap.attention_weights(any_lm, [row])[0]
        n = len(row)
        assert max_gap(batch[b, ..., :n, :n], alone) <= TOLERANCE
        assert (batch[b, ..., n:, :] == 0).all() and (batch[b, ..., :, n:] == 0).all()
        assert torch.allclose(alone.sum(-1), torch.ones(n_layers, n_heads, n), atol=1e-5)
    # the same batch as a tensor with its mask, and a subset of layers in a chosen order
    ids = torch.full((3, width), tok.eos_token_id)
    mask = torch.zeros((3, width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, :len(row)], mask[b, :len(row)] = torch.tensor(row), 1
    last_first = cap.attention_weights(any_lm, ids, mask, layers=[n_layers - 1, 0])
    assert torch.equal(last_first[:, 0], batch[:, -1]) and torch.equal(last_first[:, 1], batch[:, 0])


def test_the_capture_path_refuses_bad_batches(tiny_lm):
    with pytest.raises(ValueError, match="empty row"):
        cap.attention_weights(tiny_lm, [[1, 2], []])
    with pytest.raises(TypeError, match="list of token-id lists"):
        cap.attention_weights(tiny_lm, [])
    with pytest.raises(ValueError, match=r"token ids must lie in 0\.\.50256"):
        cap.attention_weights(tiny_lm, [[1, 50257]])
    with pytest.raises(ValueError, match="attends over at most 64"):
        cap.attention_weights(tiny_lm, [[1] * 65])
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of the ids \(1, 3\)"):
        cap.attention_weights(tiny_lm, torch.tensor([[1, 2, 3]]), torch.ones(1, 2))


def test_capture_is_exported_lazily():
    assert gpt2lab.capture_attention is cap.capture_attention


def test_capture_restores_the_attention_kernel(tiny_lm):
    before = tiny_lm.model.config._attn_implementation
    cap.capture_attention(tiny_lm, TEXT)
    assert tiny_lm.model.config._attn_implementation == before


# ----------------------------------------------------------------------------------------------
# views, Python side (the browser test checks that they render)


@pytest.fixture(scope="module")
def capture(tiny_lm):
    return cap.capture_attention(tiny_lm, "Hello world!\nThe cat sat on the mat.")


def bertviz_params(page: str) -> dict:
    """The parameters bertviz writes into its script (``const params = {...}; // HACK``)."""
    start = page.index("const params = ") + len("const params = ")
    return json.loads(page[start:page.index("; // HACK", start)])


def test_head_view_carries_labels_and_layers(capture):
    page = views.bertviz_html(capture, "head", layers=[1])
    params = bertviz_params(page)
    assert params["include_layers"] == [1]
    data = params["attention"][0]
    assert data["left_text"] == data["right_text"] == capture.labels
    assert torch.allclose(torch.tensor(data["attn"][0]), capture.layer(1), atol=5e-4)  # rounded to 3 decimals
    assert "require.min.js" in page  # bertviz's CDN loader: the page needs its scripts


def test_model_view_carries_labels_and_heads(capture):
    params = bertviz_params(views.bertviz_html(capture, "model", heads=[1]))
    assert params["include_heads"] == [1] and params["total_heads"] == 2
    data = params["attention"][0]
    assert data["left_text"] == capture.labels
    assert torch.allclose(torch.tensor(data["attn"])[:, 0], capture.attention[:, 1], atol=5e-4)


def test_bertviz_guard_on_long_inputs(tiny_lm):
    long_capture = cap.capture_attention(tiny_lm, ("one two three four five six seven eight nine ten " * 5).strip())
    assert long_capture.n_tokens == 50
    with pytest.raises(ValueError, match=r"50 tokens.*truncate=True to show the first 20.*max_tokens=None"):
        views.head_view(long_capture, max_tokens=20, html_action="return")
    # the model view's limit counts layers x heads x tokens^2 lines, so fewer layers helps
    old = views.MODEL_VIEW_MAX_LINES
    views.MODEL_VIEW_MAX_LINES = 2 * 2 * 30 * 30
    try:
        with pytest.raises(ValueError, match=r"layers=\[\.\.\.\] to show fewer than these 2 layers"):
            views.model_view(long_capture, html_action="return")
        assert views.model_view(long_capture, layers=[0], max_tokens=None, html_action="return") is not None
        with pytest.warns(UserWarning, match="first 30 of 50 tokens"):
            page = views.bertviz_html(long_capture, "model", truncate=True)
        data = bertviz_params(page)["attention"][0]
        assert data["left_text"] == long_capture.labels[:30]
        assert torch.tensor(data["attn"]).shape == (2, 2, 30, 30)
    finally:
        views.MODEL_VIEW_MAX_LINES = old
    with pytest.raises(ValueError, match="html_action must be"):
        views.head_view(long_capture, html_action="show")
    with pytest.raises(TypeError, match="AttentionCapture"):
        views.head_view(torch.zeros(2, 2, 3, 3))


def test_offline_html_is_self_contained(capture):
    page = views.offline_html(capture, layer=1, head=None)
    assert "<script src" not in page and "href=" not in page and "cdnjs" not in page
    assert '"labels": ["Hello", " world", "!", "↵", "The"' in page
    assert '"startLayer": 1' in page and '"startHead": -1' in page
    tricky = cap.AttentionCapture(text="x", token_ids=[0, 1], tokens=["</script>", "<b>"],
                                  attention=torch.tensor([[[[1.0, 0.0], [0.25, 0.75]]]]), layers=[0],
                                  n_model_layers=1)
    tricky_page = views.offline_html(tricky)
    assert tricky_page.count("</script>") == 1  # the token's "</script>" is escaped inside the JSON
    assert "[[[1000,250,750]]]" in tricky_page.replace(" ", "")  # lower triangle in thousandths
    with pytest.raises(ValueError, match="layer=0 is not among the layers shown"):
        views.offline_html(capture, layers=[1], layer=0)


def test_the_offline_views_script_and_styles_ship_as_package_data(capture, tmp_path):
    """The page embeds gpt2lab/attention/static/offline_view.{js,css}, and a built wheel carries both."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    pytest.importorskip("setuptools")  # the wheel is built offline, without build isolation
    static = Path(views.__file__).parent / "static"
    script = (static / "offline_view.js").read_text(encoding="utf-8")
    styles = (static / "offline_view.css").read_text(encoding="utf-8")
    page = views.offline_html(capture)
    assert styles in page and script.split("__DATA__")[0] in page and script.split("__DATA__")[1] in page
    root = Path(gpt2lab.__file__).parents[1]
    if not (root / "pyproject.toml").is_file():
        pytest.skip("gpt2lab is installed, not a source checkout: no wheel to build")
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(root / "gpt2lab", source / "gpt2lab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("gpt2lab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"gpt2lab/attention/static/offline_view.js", "gpt2lab/attention/static/offline_view.css"} <= set(names)


def test_show_offline_wraps_the_page_in_an_iframe(capture, tmp_path):
    shown = views.show_offline(capture)
    assert "<iframe srcdoc=" in shown.data and "&lt;script&gt;" in shown.data
    path = views.save_offline_html(capture, tmp_path / "attention.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="should end in .html"):
        views.save_offline_html(capture, tmp_path / "attention.txt")


def test_matplotlib_views_use_the_same_labels(capture):
    import matplotlib.pyplot as plt

    fig = views.plot_head(capture, layer=1, head=0)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == capture.labels
    assert [t.get_text() for t in ax.get_xticklabels()] == capture.labels
    assert ax.get_title() == "layer 1, head 0"
    image = ax.get_images()[0].get_array()
    assert torch.allclose(torch.tensor(image.data), capture.head(1, 0))
    mean = views.plot_head(capture, layer=0, head=None).axes[0].get_images()[0].get_array()
    assert torch.allclose(torch.tensor(mean.data), capture.layer(0).mean(0))
    layer_fig = views.plot_layer(capture, 0)
    assert [a.get_title() for a in layer_fig.axes if a.get_images()] == ["head 0", "head 1"]
    model_ax = views.plot_model(capture).axes[0]
    assert [t.get_text() for t in model_ax.get_yticklabels()] == ["L0", "L1"]
    assert [t.get_text() for t in model_ax.get_xticklabels()] == ["h0", "h1"]
    mosaic = model_ax.get_images()[0].get_array()
    n = capture.n_tokens
    step = n + max(1, n // 8)
    assert torch.allclose(torch.tensor(mosaic.data[step:step + n, step:step + n]).float(), capture.head(1, 1))
    with pytest.raises(ValueError, match="head=7 is out of range"):
        views.plot_head(capture, layer=0, head=7)
    plt.close("all")


def test_explorer_redraws_on_text_layer_and_head(tiny_lm):
    import matplotlib.pyplot as plt

    explorer = attention_widget.attention_explorer(tiny_lm, text="Hello world", layer=0, head=0)
    assert [t.get_text() for t in explorer.figure.axes[0].get_yticklabels()] == ["Hello", " world"]
    explorer.text_box.value = "To be, or not"
    assert explorer.capture.tokens == ["To", " be", ",", " or", " not"]
    assert [t.get_text() for t in explorer.figure.axes[0].get_xticklabels()] == explorer.capture.labels
    explorer.layer_selector.value = 1
    explorer.head_selector.value = -1
    assert explorer.figure.axes[0].get_title() == "layer 1, mean of heads"
    assert "5 tokens" in explorer.status.value
    explorer.text_box.value = "   "  # nothing to show: keeps the last picture, says why
    assert "type some text" in explorer.status.value
    assert explorer.capture.tokens == ["To", " be", ",", " or", " not"]
    with pytest.raises(ValueError, match="layer=4 was not captured"):
        attention_widget.attention_explorer(tiny_lm, layer=4)
    plt.close("all")


def uniform_capture(n_layers, n_heads, n_tokens):
    rows = torch.ones(n_tokens, n_tokens).tril()
    weights = (rows / rows.sum(-1, keepdim=True)).expand(n_layers, n_heads, n_tokens, n_tokens).contiguous()
    tokens = [f" t{i}" for i in range(n_tokens)]
    return cap.AttentionCapture(text="".join(tokens), token_ids=list(range(n_tokens)), tokens=tokens,
                                attention=weights, layers=list(range(n_layers)), n_model_layers=n_layers)


def test_default_limits_for_64_tokens_of_gpt2_small():
    """GPT-2 small (12 layers x 12 heads), 64 tokens: head view draws; the model view asks for fewer layers."""
    capture = uniform_capture(12, 12, 64)
    assert '" t63"' in views.bertviz_html(capture, "head")
    with pytest.raises(ValueError, match="layers=\\[\\.\\.\\.\\] to show fewer"):
        views.model_view(capture, html_action="return")
    assert '" t63"' in views.bertviz_html(capture, "model", layers=[0, 5, 11])
    assert '" t63"' in views.offline_html(capture)
