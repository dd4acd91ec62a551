"""Head statistics on attention patterns built by hand, where the right answer is known."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gpt2lab.attention import heads as hs
from gpt2lab.attention.capture import AttentionCapture

T = 9  # tokens in the constructed patterns


def uniform(n: int = T) -> torch.Tensor:
    """Every query spreads evenly over itself and all earlier tokens."""
    rows = torch.ones(n, n).tril()
    return rows / rows.sum(-1, keepdim=True)


def previous_token(n: int = T) -> torch.Tensor:
    """Every query looks only at the token before it (token 0 at itself)."""
    weights = torch.zeros(n, n)
    weights[0, 0] = 1.0
    weights[torch.arange(1, n), torch.arange(0, n - 1)] = 1.0
    return weights


def first_token(n: int = T) -> torch.Tensor:
    weights = torch.zeros(n, n)
    weights[:, 0] = 1.0
    return weights


def induction(n: int, start: int, period: int) -> torch.Tensor:
    """Queries in the repeat attend to the token after their earlier occurrence; others to token 0."""
    weights = first_token(n)
    for q in range(start + period, n):
        weights[q] = 0.0
        weights[q, q - period + 1] = 1.0
    return weights


def stack(*heads_per_layer) -> torch.Tensor:
    """(layers, heads, T, T) from rows of (T, T) patterns."""
    return torch.stack([torch.stack(list(layer)) for layer in heads_per_layer])


def test_uniform_attention_has_known_values():
    attention = stack([uniform()])
    queries = range(1, T)  # query 0 is left out of every average
    assert hs.attention_entropy(attention)[0, 0] == pytest.approx(np.mean([math.log2(q + 1) for q in queries]))
    assert hs.first_token_share(attention)[0, 0] == pytest.approx(np.mean([1 / (q + 1) for q in queries]))
    assert hs.previous_token_score(attention)[0, 0] == pytest.approx(np.mean([1 / (q + 1) for q in queries]))
    # period 4 after a first token: queries 5..8 are in the repeat
    assert hs.induction_score(attention, period=4, start=1)[0, 0] == pytest.approx(
        np.mean([1 / (q + 1) for q in range(5, 9)]))


def test_pure_patterns_score_one_on_their_own_statistic():
    attention = stack([previous_token(), first_token()], [induction(T, start=1, period=4), uniform()])
    entropy = hs.attention_entropy(attention)
    first = hs.first_token_share(attention)
    previous = hs.previous_token_score(attention)
    repeat = hs.induction_score(attention, period=4, start=1)
    assert entropy.shape == first.shape == previous.shape == repeat.shape == (2, 2)
    # previous-token head: all weight one step back; only query 1's previous token is token 0
    assert entropy[0, 0] == pytest.approx(0.0)
    assert previous[0, 0] == pytest.approx(1.0)
    assert first[0, 0] == pytest.approx(1 / (T - 1))
    # first-token head ("attention sink")
    assert first[0, 1] == pytest.approx(1.0) and entropy[0, 1] == pytest.approx(0.0)
    assert repeat[0, 1] == pytest.approx(0.0)
    # induction head
    assert repeat[1, 0] == pytest.approx(1.0)
    assert previous[1, 0] == pytest.approx(1 / (T - 1))  # query 1 looks at token 0, which is its previous token
    # the uniform head is the most spread out
    assert entropy.argmax() == 3


def test_half_and_half_head_has_one_bit_of_entropy():
    weights = torch.zeros(T, T)
    weights[0, 0] = 1.0
    for q in range(1, T):
        weights[q, q] = 0.5
        weights[q, 0] = 0.5
    attention = stack([weights])
    assert hs.attention_entropy(attention)[0, 0] == pytest.approx(1.0)
    assert hs.first_token_share(attention)[0, 0] == pytest.approx(0.5)


def test_statistics_accept_a_capture():
    attention = stack([previous_token(), uniform()])
    capture = AttentionCapture(text="", token_ids=list(range(T)), tokens=["x"] * T, attention=attention.float(),
                               layers=[3], n_model_layers=4)
    assert np.allclose(hs.previous_token_score(capture), hs.previous_token_score(attention))


def test_head_stats_table_top_and_plot():
    attention = stack([previous_token(), first_token()], [uniform(), induction(T, 1, 4)])
    stats = hs.HeadStats(entropy=hs.attention_entropy(attention), first_token=hs.first_token_share(attention),
                         previous_token=hs.previous_token_score(attention),
                         induction=hs.induction_score(attention, period=4, start=1), layers=[0, 1],
                         model_name="constructed", n_tokens=T)
    frame = stats.to_frame()
    assert list(frame.columns) == ["layer", "head", *hs.STAT_NAMES]
    assert len(frame) == 4
    best = stats.top("previous_token", k=1)
    assert (int(best.loc[0, "layer"]), int(best.loc[0, "head"])) == (0, 0)
    best = stats.top("induction", k=1)
    assert (int(best.loc[0, "layer"]), int(best.loc[0, "head"])) == (1, 1)
    fig = stats.plot()
    images = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in images] == list(hs.STAT_NAMES.values())
    assert np.allclose(images[2].get_images()[0].get_array(), stats.previous_token)
    assert [t.get_text() for t in images[0].get_yticklabels()] == ["0", "1"]
    with pytest.raises(ValueError, match="stat must be one of"):
        stats.top("copying")
    with pytest.raises(ValueError, match="statistic 'copying' is not known"):
        stats.plot(["copying"])
    import matplotlib.pyplot as plt

    plt.close("all")


def test_bad_attention_is_refused():
    with pytest.raises(ValueError, match=r"shape \(layers, heads, query, key\)"):
        hs.attention_entropy(torch.ones(3, 3))
    with pytest.raises(ValueError, match="probability distributions"):
        hs.first_token_share(torch.ones(1, 1, 4, 4))
    with pytest.raises(TypeError, match="AttentionCapture or a"):
        hs.previous_token_score([[1.0]])
    with pytest.raises(ValueError, match="period must be at least 2"):
        hs.induction_score(stack([uniform()]), period=1)
    with pytest.raises(ValueError, match="leave no repeated tokens"):
        hs.induction_score(stack([uniform()]), period=8, start=1)


def test_repeated_random_tokens_repeat(tiny_lm):
    ids, start, period = hs.repeated_random_tokens(tiny_lm, length=10, n_sequences=3, seed=1)
    assert ids.shape == (3, 21) and (start, period) == (1, 10)
    assert torch.equal(ids[:, 1:11], ids[:, 11:])
    assert (ids[:, 0] == tiny_lm.tokenizer.eos_token_id).all()
    assert not (ids[:, 1:] == tiny_lm.tokenizer.eos_token_id).any()  # no special tokens in the random part
    again, _, _ = hs.repeated_random_tokens(tiny_lm, length=10, n_sequences=3, seed=1)
    assert torch.equal(ids, again)
    with pytest.raises(ValueError, match="more than the context length 64"):
        hs.repeated_random_tokens(tiny_lm, length=40)


def test_head_stats_on_a_model(tiny_lm):
    stats = hs.head_stats(tiny_lm, "The cat sat on the mat. The cat sat on the mat.", induction_sequences=2)
    assert stats.entropy.shape == stats.induction.shape == (2, 2)
    for name in ("first_token", "previous_token", "induction"):
        values = getattr(stats, name)
        assert ((values >= 0) & (values <= 1)).all()
    # direct check of one number against the definition
    ids, start, period = hs.repeated_random_tokens(tiny_lm, length=31, n_sequences=2, seed=0)
    with torch.no_grad(), tiny_lm.eager_attention():
        out = tiny_lm.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
    weights = out.attentions[1][:, 0]  # layer 1, head 0: (batch, T, T)
    queries = torch.arange(start + period, ids.shape[1])
    expected = weights[:, queries, queries - period + 1].mean().item()
    assert stats.induction[1, 0] == pytest.approx(expected, abs=1e-6)
    only_last = hs.head_stats(tiny_lm, "The cat sat on the mat.", layers=[1], induction_sequences=2)
    assert only_last.layers == [1] and only_last.induction.shape == (1, 2)
    assert only_last.induction[0, 0] == pytest.approx(expected, abs=1e-6)


def test_repeated_random_tokens_draw_from_seen_tokens(tiny_lm):
    text = "the cat sat on the mat " * 6 + "a rare word"
    seen = hs.seen_tokens(tiny_lm.tokenizer, text=text, min_count=5)
    # "the" (no space) opens the text only once, so it is not seen
    assert sorted(tiny_lm.decode([i]) for i in seen) == sorted([" cat", " mat", " on", " sat", " the"])
    ids, _, _ = hs.repeated_random_tokens(tiny_lm, length=10, n_sequences=2, seed=0, pool=seen)
    assert set(ids[:, 1:].flatten().tolist()) <= set(seen)
    # the default pool: tokens occurring at least SEEN_MIN_COUNT times in the course's training text
    course_seen = set(hs.seen_tokens(tiny_lm.tokenizer))
    assert 1000 < len(course_seen) < len(tiny_lm.tokenizer) // 2  # GPT-2's vocabulary is mostly unseen there
    default, _, _ = hs.repeated_random_tokens(tiny_lm, length=10, n_sequences=3, seed=1)
    assert set(default[:, 1:].flatten().tolist()) <= course_seen
    everything, _, _ = hs.repeated_random_tokens(tiny_lm, length=10, n_sequences=3, seed=1, pool="all")
    assert not set(everything[:, 1:].flatten().tolist()) <= course_seen
    with pytest.raises(ValueError, match="pool must be"):
        hs.repeated_random_tokens(tiny_lm, length=10, pool="unseen")
    with pytest.raises(ValueError, match="the pool is empty"):
        hs.repeated_random_tokens(tiny_lm, length=10, pool=[tiny_lm.tokenizer.eos_token_id])


def test_uniform_baselines_match_an_even_head():
    base = hs.uniform_baselines(4, induction_length=3)
    # rows 1..3 of an even 4x4 causal head: 1/2, 1/3, 1/4 on the first and on the previous token
    assert base["first_token"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert base["previous_token"] == pytest.approx(base["first_token"])
    assert base["entropy"] == pytest.approx((1 + np.log2(3) + 2) / 3)
    # sequence of 7 (bos + 3 + 3): queries 4, 5, 6 see 5, 6, 7 tokens
    assert base["induction"] == pytest.approx((1 / 5 + 1 / 6 + 1 / 7) / 3)
    with pytest.raises(ValueError, match="n_tokens"):
        hs.uniform_baselines(1)


def test_induction_heads_must_clear_the_baseline_by_the_margin():
    base = hs.uniform_baselines(6, induction_length=10)["induction"]
    scores = np.array([[base, 3.9 * base], [4.0 * base, 0.5]])
    stats = hs.HeadStats(entropy=np.zeros((2, 2)), first_token=np.zeros((2, 2)), previous_token=np.zeros((2, 2)),
                         induction=scores, layers=[0, 1], n_tokens=6, induction_length=10)
    found = stats.induction_heads()
    assert [(r.layer, r.head) for r in found.itertuples()] == [(1, 1), (1, 0)]  # strongest first
    assert found.times_baseline.iloc[1] == pytest.approx(hs.INDUCTION_MARGIN)
    assert stats.above_baseline("induction")[0, 1] == pytest.approx(3.9)
    assert stats.induction_heads(margin=100).empty
