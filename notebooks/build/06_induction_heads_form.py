"""Builds notebooks/06_induction_heads_form.ipynb (run: python notebooks/build/06_induction_heads_form.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "06_induction_heads_form.ipynb",
    "06 · Induction heads that form before your eyes",
    """
    An **induction head** continues a pattern: having seen `... A B ...` earlier, at the next `A` it
    attends to the `B` and predicts it. It needs a partner in an earlier layer, a **previous-token head**
    that writes into every position which token came before it. The attention views showed such heads in a
    trained model; here you grow them. A two-layer transformer without MLPs, the smallest model in which
    the circuit fits, is trained on sequences that repeat random segments. For a while its loss barely
    moves; then it drops, and at that moment the two heads appear (Olsson et al. 2022, "In-context
    Learning and Induction Heads"; Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits").
    """,
    [
        "explain the two-head circuit behind induction: a previous-token head, then an induction head",
        "train a two-layer attention-only transformer and watch its loss drop as the circuit forms",
        "measure previous-token and induction scores per head, and compare them with a uniform head",
        "show that the circuit needs both heads by knocking one out",
        "measure the same statistics on the loaded model",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()
""")

nb.code("""
import matplotlib.pyplot as plt
import numpy as np
import torch

from gpt2lab.attention import heads as hs
from gpt2lab.model import induction

torch.manual_seed(0)
""")

nb.md("""
## The data: random segments that repeat

Every training sequence starts with a beginning token (id 0). From a random position on, a random
segment of a few tokens (3 to 8 at the quick scale) repeats to the end: after its first copy everything is predictable, but only
by copying from earlier in the same sequence. Before that, the background tokens are random, except that
half of them follow a fixed rule: "two places after token v comes token r(v)". Using that rule needs the
previous token at every position, as real text does; it is why real models grow previous-token heads
early (Olsson et al. 2022), and it lets this small model grow one quickly too.
""")

nb.code("""
task = induction.ToyTask(**gpt2lab.course.scaled(quick=induction.QUICK_TASK, full=induction.FULL_TASK))
example = induction.repeated_segments(task, 3, torch.Generator().manual_seed(1))
for row in example:
    print(" ".join(f"{int(t):2d}" for t in row))


def uniform_head(n_tokens):
    \"\"\"(1, 1, n, n) attention of a head that spreads evenly over every token it may see: the baseline.\"\"\"
    weights = torch.ones(n_tokens, n_tokens).tril()
    return (weights / weights.sum(-1, keepdim=True))[None, None]


uniform_induction = np.mean([hs.induction_score(uniform_head(1 + 2 * p), p, 1)[0, 0] for p in task.periods])
uniform_previous = np.mean([hs.previous_token_score(uniform_head(1 + 2 * p))[0, 0] for p in task.periods])
print(f"a uniform head scores {uniform_induction:.2f} on induction and {uniform_previous:.2f} on previous token")
""")

nb.md("""
## Training

`induction.train_induction_toy` builds `GPT(GPTConfig(n_layer=2, n_head=4, attention_only=True))`, the
model of the "build and train a GPT" lesson without its MLPs, trains it with `gpt2lab.train`, and at regular
steps measures every head on sequences `[BOS, A, A]` (A random, of every segment length of the task): the
**previous-token score** (mean attention on the token just before the query) and the **induction score**
(mean attention, in the second copy, on the token after the query's earlier occurrence).
""")

nb.code("""
run = induction.train_induction_toy(task, **gpt2lab.course.scaled(quick=induction.QUICK_RUN, full=induction.FULL_RUN))
drop = run.drop_step()
print(f"{run.steps[-1]} steps in {run.seconds:.0f} s; the induction score jumps most at step {drop}; "
      f"best induction score {run.best_induction:.2f}")
fig = run.plot()
plt.show()
loss_before = np.mean([l for s, l in zip(run.steps, run.loss) if s < drop][-3:])
loss_after = np.mean([l for s, l in zip(run.steps, run.loss) if s > drop][:3])
print(f"training loss around that step: {loss_before:.2f} nats before, {loss_after:.2f} after")
assert loss_after < loss_before
""")

nb.code("""
prev_layer, prev_head = run.previous_token_head
ind_layer, ind_head = run.induction_head
before = max(run.steps.index(drop) - 1, 0)
print(f"previous-token head: L{prev_layer}.H{prev_head}, score {run.previous_token[-1, prev_layer, prev_head]:.2f} "
      f"(at step {run.steps[before]}: {run.previous_token[before, prev_layer, prev_head]:.2f})")
print(f"induction head: L{ind_layer}.H{ind_head}, score {run.induction[-1, ind_layer, ind_head]:.2f} "
      f"(at step {run.steps[before]}: {run.induction[before, ind_layer, ind_head]:.2f})")
print(f"a uniform head: {uniform_previous:.2f} previous-token, {uniform_induction:.2f} induction")
assert run.best_induction > 0.5 and ind_layer == 1
""")

nb.md("""
## The two heads, on one sequence

On a sequence `[BOS, A, A]`, the previous-token head draws a line just below the diagonal; the induction
head draws a line in the second copy, `len(A) - 1` tokens left of the diagonal: at each token it looks at
the token that followed the same token the first time.
""")

nb.code("""
period = task.max_period
ids = induction.repeat_twice(task.vocab_size, period, seed=3)
with torch.no_grad():
    attentions = run.model(ids, return_attention=True).attentions
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (layer, head), title in ((axes[0], run.previous_token_head, "previous-token head"),
                                 (axes[1], run.induction_head, "induction head")):
    ax.imshow(attentions[layer][0, head].numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.axvline(period + 0.5, color="orange", lw=1)
    ax.axhline(period + 0.5, color="orange", lw=1)
    ax.set_title(f"{title}: layer {layer}, head {head}")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
plt.show()
""")

nb.md("""
## They work together: knock one out

If the induction head relies on the previous-token head, silencing the previous-token head (zeroing its
output) should break induction, while silencing another head of layer 0 should matter less.
""")

nb.code("""
scores = {}
for head in range(run.model.config.n_head):
    with induction.head_knocked_out(run.model, layer=0, head=head):
        knocked, _ = induction.measure_heads(run.model, task.periods)
    scores[head] = knocked[ind_layer, ind_head]
intact = run.induction[-1, ind_layer, ind_head]
prev_scores = run.previous_token[-1, 0]
for head, value in scores.items():
    print(f"layer-0 head {head} (previous-token score {prev_scores[head]:.2f}) knocked out: the induction head "
          f"scores {value:.2f} (intact {intact:.2f})")
assert scores[prev_head] < 0.5 * intact
looking_back = [h for h in scores if prev_scores[h] > 0.5]
others = [h for h in scores if prev_scores[h] <= 0.5]
print(f"Knocking out the previous-token head L0.H{prev_head} cuts the induction score from {intact:.2f} to "
      f"{scores[prev_head]:.2f}.")
if others and max(scores[h] for h in looking_back) < min(scores[h] for h in others):
    print(f"Every layer-0 head that mostly looks at the previous token ({looking_back}) matters more than every one "
          f"that does not ({others}): the induction head finds its target through what previous-token heads write.")
""")

nb.md("""
## Explorer: watch a head change during training

While it trained, the toy kept every head's attention on one `[BOS, A, A]` sequence at each measured
step (`run.patterns`), next to its scores, so the explorer only draws what was recorded: pick a step and
a head and see where that head looked then, and its two scores over the whole run.
**Guided task:** pick the induction head and drag the training step from the start; find the step where
the stripe in the second copy appears, then pick the previous-token head of layer 0 and check that its
line below the diagonal came first.
""")

nb.code("""
from gpt2lab.widgets import induction_explorer

explorer = induction_explorer(run, step=run.steps[-1], head=run.induction_head)
assert explorer.last.induction == run.induction[-1, ind_layer, ind_head]  # the score reported above
print(f"shown: L{ind_layer}.H{ind_head} at step {explorer.last.step}, induction score {explorer.last.induction:.2f}")
explorer.controls["step"].value = run.steps[0]  # back to the start for you to explore
explorer
""")

nb.md("""
## The loaded model

The same two statistics for every head of the model you loaded, on its own random repeated tokens,
next to what a head spreading its attention evenly would score.
""")

nb.code("""
length = min(40, (lm.context_length - 1) // 2)
scores_lm = hs.measure_induction(lm, length=length, n_sequences=4)
ids_lm, start_lm, period_lm = hs.repeated_random_tokens(lm, length=length, n_sequences=1, seed=1)
previous_lm = hs.previous_token_score(gpt2lab.capture_attention(lm, ids_lm[0]).attention)
even = uniform_head(ids_lm.shape[1])
uniform_ind = hs.induction_score(even, period_lm, start_lm)[0, 0]
uniform_prev = hs.previous_token_score(even)[0, 0]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, values, name, base in ((axes[0], previous_lm, "previous-token score", uniform_prev),
                               (axes[1], scores_lm, "induction score", uniform_ind)):
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_title(f"{lm.name}: {name} (uniform head: {base:.2f})", fontsize=9)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(image, ax=ax)
plt.show()
li, hi = np.unravel_index(scores_lm.argmax(), scores_lm.shape)
lp, hp = np.unravel_index(previous_lm.argmax(), previous_lm.shape)
print(f"{lm.name}: best previous-token head L{lp}.H{hp} scores {previous_lm.max():.2f} "
      f"({previous_lm.max() / uniform_prev:.1f}x a uniform head); best induction head L{li}.H{hi} scores "
      f"{scores_lm.max():.2f} ({scores_lm.max() / uniform_ind:.1f}x a uniform head)")
if scores_lm.max() > 5 * uniform_ind and lp < li:
    print(f"As in the toy, the strongest previous-token head (layer {lp}) sits below the strongest induction head "
          f"(layer {li}).")
elif scores_lm.max() <= 5 * uniform_ind:
    print("No head scores five times a uniform head: this model shows no clear induction head.")
else:
    print(f"Here the strongest previous-token head (layer {lp}) is not below the strongest induction head "
          f"(layer {li}); other previous-token heads may feed it.")
""")

nb.exercise(
    """
    An induction head should work for any segment length, not only the one it is measured on. Measure the
    toy's induction head at every period from 2 to the longest the model can take, and say for which
    periods it scores above 0.5.
    """,
    """
    longest = (run.model.config.context_length - 1) // 2
    periods = list(range(2, longest + 1))
    by_period = [induction.measure_heads(run.model, p)[0][ind_layer, ind_head] for p in periods]
    trained = [p for p in periods if p in task.periods]
    plt.figure(figsize=(5, 3))
    plt.plot(periods, by_period, "o-")
    plt.xlabel("length of the repeated segment")
    plt.ylabel("induction score")
    plt.show()
    print("Answer: above 0.5 for periods", [p for p, s in zip(periods, by_period) if s > 0.5],
          f"(trained on {trained[0]} to {trained[-1]})")
    """,
    title="any length of segment",
)

nb.exercise(
    """
    Knock out the induction head itself and measure the toy's loss on the second copy of `[BOS, A, A]`
    sequences, with and without it. How much of what the model learnt does this one head carry?
    """,
    """
    batch = induction.repeat_twice(task.vocab_size, period, seed=4, n_sequences=32)

    def second_copy_loss():
        with torch.no_grad():
            logits = run.model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
        return float(loss[:, period + 1:].mean())  # the tokens the second copy makes predictable

    intact_loss = second_copy_loss()
    with induction.head_knocked_out(run.model, layer=ind_layer, head=ind_head):
        knocked_loss = second_copy_loss()
    print(f"Answer: second-copy loss {intact_loss:.2f} nats with the induction head, {knocked_loss:.2f} without it "
          f"(guessing uniformly: {np.log(task.vocab_size - 1):.2f})")
    """,
    title="what one head carries",
)

nb.summary([
    ("Induction is a two-head circuit: a previous-token head writes 'the token before me' into each position; "
     "an induction head, one layer up, matches the current token against that and copies what followed it."),
    ("A two-layer attention-only transformer trained on repeated random segments learns it abruptly: the loss "
     "sits on a plateau, then drops, as the induction score of a layer-1 head rises."),
    "Knocking out the previous-token head breaks the induction head: they work together.",
    ("The same statistics, against a uniform head's, show whether a loaded model has such heads and where; a model "
     "trained briefly on little text may have none."),
], outro="Next: notebook 07 looks inside the residual stream, with the tools that show where a prediction is decided.")

nb.write()
