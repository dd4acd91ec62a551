"""The induction-heads toy (gpt2lab.model.induction): its data repeat what they claim to, the knock-out
silences exactly one head, and training grows a previous-token head and an induction head."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gpt2lab.model import GPT, GPTConfig, induction

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sequences_repeat_their_segment_and_follow_the_rule():
    task = induction.ToyTask(vocab_size=20, length=24, min_period=3, max_period=8, rule_share=1.0)
    ids = induction.repeated_segments(task, 200, torch.Generator().manual_seed(0))
    assert ids.shape == (200, 24) and (ids[:, 0] == induction.BOS).all() and (ids[:, 1:] > 0).all()
    table = induction.rule_table(task)
    assert sorted(table[1:].tolist()) == list(range(1, 20))  # a permutation of the tokens
    for row in ids:
        # the longest tail that repeats with some period 3..8: it must reach back to a full first copy
        periods = [p for p in task.periods if any(torch.equal(row[s + p:], row[s:len(row) - p])
                                                  for s in range(1, len(row) - 2 * p + 1))]
        assert periods, row
    # positions before s + P (s >= 1, P >= 3) are background: position 3 always follows the rule
    assert torch.equal(ids[:, 3], table[ids[:, 1]])


def test_knocking_out_a_head_equals_zeroing_its_output_rows():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, context_length=12, n_layer=2, n_head=2, d_model=8, attention_only=True)).eval()
    ids = torch.randint(1, 16, (3, 12))
    with torch.no_grad():
        intact = model(ids).logits
        with induction.head_knocked_out(model, layer=1, head=0):
            knocked = model(ids).logits
        assert torch.equal(model(ids).logits, intact)  # the hook is gone after the block
        zeroed = GPT(model.config).eval()
        zeroed.load_state_dict(model.state_dict())
        zeroed.blocks[1].attn.out.weight[:, :4] = 0  # head 0's columns of the output projection
        torch.testing.assert_close(knocked, zeroed(ids).logits)
    assert not torch.equal(knocked, intact)
    with pytest.raises(ValueError, match="head in 0..1"):
        with induction.head_knocked_out(model, layer=0, head=2):
            pass


def test_scores_of_a_hand_made_attention():
    """measure_heads reads attention from the model: a model whose layer-1 head attends exactly like an
    induction head gets score 1 (checked through the same statistic on a uniform head: 1 / (q + 1))."""
    task = induction.ToyTask(vocab_size=16, length=20, min_period=3, max_period=5)
    model = GPT(GPTConfig(vocab_size=16, context_length=20, n_layer=2, n_head=1, d_model=8, attention_only=True))
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.zero_()
            block.attn.qkv.bias.zero_()  # all scores 0: every head attends uniformly
    induction_scores, previous = induction.measure_heads(model, task.periods)
    expected_prev = np.mean([np.mean([1 / (q + 1) for q in range(1, 1 + 2 * p)]) for p in task.periods])
    np.testing.assert_allclose(previous, expected_prev, rtol=1e-6)
    expected_ind = np.mean([np.mean([1 / (q + 1) for q in range(1 + p, 1 + 2 * p)]) for p in task.periods])
    np.testing.assert_allclose(induction_scores, expected_ind, rtol=1e-6)
    with pytest.raises(ValueError, match="periods must lie in 2..9"):
        induction.measure_heads(model, 10)


@pytest.mark.slow
def test_a_small_toy_grows_a_previous_token_head_and_an_induction_head():
    """~35 s on one core: the phase change of Olsson et al. 2022 (4 heads per layer: with 2 it comes
    late or not at all within the budget)."""
    task = induction.ToyTask(**induction.QUICK_TASK)
    run = induction.train_induction_toy(task, **induction.QUICK_RUN)
    layer, head = run.induction_head
    assert layer == 1 and run.best_induction > 0.5
    assert run.previous_token[-1, 0].max() > 0.4
    assert run.induction[0].max() < 0.2  # it was not there at the start
    with induction.head_knocked_out(run.model, *run.previous_token_head):
        knocked, _ = induction.measure_heads(run.model, task.periods)
    assert knocked[layer, head] < run.induction[-1, layer, head] - 0.2  # the induction head needs it
    assert 0 < run.drop_step() < induction.QUICK_RUN["steps"]
