"""Builds notebooks/05_looking_at_attention.ipynb (run: python notebooks/build/05_looking_at_attention.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "05_looking_at_attention.ipynb",
    "05 · Looking at attention: views, head statistics and induction heads",
    """
    Notebook 03 computed attention by hand. Here you look at it: every layer and head of the model at
    once, with bertviz's interactive views (online), with an offline view and heatmaps that need no
    internet, and with a few numbers per head that tell heads apart. Along the way you meet three kinds
    of heads that interpretability research has found in GPT-2: heads that park their attention on the
    first token, heads that look at the previous token, and **induction heads** that continue patterns.
    """,
    [
        "capture a model's attention weights as (layers, heads, query, key) with readable token labels",
        "use bertviz's head and model views, and know why they need internet and short inputs",
        "use the offline view, heatmaps and an interactive explorer that work without network",
        "measure per head: attention entropy, share on the first token, previous-token and induction scores",
        "find induction heads with a repeated random sequence and see what they do for the model's predictions",
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

from gpt2lab.attention import views
from gpt2lab.widgets import attention as attention_widget
from gpt2lab.attention import heads as hs
""")

nb.md("""
## Capturing attention

`gpt2lab.capture_attention(lm, text)` runs the model once and keeps every head's weights. Tokens come
back as you would read them: GPT-2's byte-level markers are turned back into characters (`Ġ` into a
space, `Ċ` into a newline); in axis labels a newline is shown as `↵`.
""")

nb.code("""
text = "The cat sat on the mat. The dog sat on the log.\\nThe cat sat on the"
capture = gpt2lab.capture_attention(lm, text)
print(capture)
print("tokens:", capture.tokens)
print("attention:", tuple(capture.attention.shape), "= (layers, heads, query, key)")
""")

nb.md("""
One head as a table: row = the token that attends (the query), column = a token it may look at (a key).
Every row sums to 1 and everything right of the diagonal is 0: no token sees the future.
""")

nb.code("""
capture.to_frame(layer=0, head=0).iloc[:8, :8].round(2)
""")

nb.md("""
## bertviz: the interactive views (need internet)

[bertviz](https://github.com/jessevig/bertviz) draws attention as lines between tokens. Its **head
view** shows one layer, one colour per head; hover over a token to see where it looks. The **model
view** shows a thumbnail for every layer and head; click one to enlarge it.

bertviz's page loads its JavaScript libraries (d3, jQuery, require.js) from a CDN, so **without
internet these cells stay blank**. They do not fail; the offline views further down work everywhere.
""")

nb.code("""
views.head_view(capture)
""")

nb.code("""
last = capture.layers[-1]
views.model_view(capture, layers=[0, last] if last else [0])
""")

nb.md("""
bertviz draws one SVG line per (head, query, key), so it slows down quickly: with GPT-2's 12 heads,
64 tokens are already about 50,000 lines for one layer of the head view. The views refuse long inputs
with a message saying what to do instead: show fewer layers, cut the text (`truncate=True`), or use
the offline views.
""")

nb.code("""
long_capture = gpt2lab.capture_attention(lm, text * 12, max_tokens=200)
try:
    views.model_view(long_capture)
except ValueError as err:
    print("refused:", err)
views.head_view(long_capture, layers=[0], truncate=True)
""")

nb.md("""
## Offline views

The same information without any network:

* `views.show_offline(capture)`: a self-contained page (plain SVG and a little JavaScript embedded in
  the notebook) with layer and head selectors, a heatmap and a lines view; hover a token on the left to
  see only its lines. `views.save_offline_html(capture, "attention.html")` writes it to a file you can
  open in any browser.
* `views.plot_head`, `views.plot_layer` and `views.plot_model`: matplotlib heatmaps.
""")

nb.code("""
views.show_offline(capture, layer=0, head=None)
""")

nb.code("""
fig = views.plot_layer(capture, layer=0)
plt.show()
""")

nb.code("""
fig = views.plot_model(capture)
plt.show()
""")

nb.md("""
## Telling heads apart with numbers

Looking at every head does not scale (GPT-2 small has 144, GPT-2 XL 1,200). A few numbers per head
summarise its habits. For each head we average over the query positions (except the first, which can
only look at itself):

* **entropy** (bits): 0 when a head puts all its weight on one token, $\\log_2 n$ when it spreads evenly
  over $n$ tokens;
* **first-token share**: the weight on the very first token. In GPT-2 many heads put most of their
  weight there when nothing else is relevant; the first token works as a resting place (an
  "attention sink"), since the weights have to sum to 1 somewhere;
* **previous-token score**: the weight on the token right before the query;
* **induction score**: explained below.

To judge a number you need a reference: a head that spreads evenly over everything it can see.
""")

nb.code("""
n = capture.n_tokens
uniform = torch.ones(n, n).tril()
uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]  # (1 layer, 1 head, n, n)
print(f"a head spreading evenly over these {n} tokens would score: "
      f"entropy {hs.attention_entropy(uniform)[0, 0]:.2f} bits, "
      f"first-token share {hs.first_token_share(uniform)[0, 0]:.2f}, "
      f"previous-token {hs.previous_token_score(uniform)[0, 0]:.2f}")
""")

nb.code("""
stats = hs.head_stats(lm, text, induction_length=gpt2lab.course.scaled(quick=40, full=50))
fig = stats.plot()
plt.show()
""")

nb.md("""
A heatmap shows which heads stand out from each other, not whether any stands out from a head that
does nothing in particular. So here is every head's value of each statistic next to that of a head
spreading its weight evenly (the grey line). The induction score is measured on a different sequence
(random tokens, repeated: below), so its even head differs: on a chunk of L tokens repeated it spreads
over up to 2L + 1 tokens, and puts about 1/(1.5 L) of its weight on the one an induction head wants.
""")

nb.code("""
baselines = stats.baselines()
frame = stats.to_frame()
fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
for ax, name in zip(axes, ["entropy", "first_token", "previous_token", "induction"]):
    ax.scatter(frame["layer"] + (frame["head"] / frame["head"].max() - 0.5) * 0.6, frame[name], s=12)
    ax.axhline(baselines[name], color="0.5", lw=1.5, label="a head spreading evenly")
    ax.set_xlabel("layer (heads side by side)")
    ax.set_title(hs.STAT_NAMES[name], fontsize=9)
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()
for name in ["first_token", "previous_token", "induction"]:
    ratio = stats.above_baseline(name)
    layer, head = np.unravel_index(ratio.argmax(), ratio.shape)
    print(f"{name:15s} even head {baselines[name]:.3f}; best head {stats.layers[layer]}.{head}: "
          f"{getattr(stats, name)[layer, head]:.3f} = {ratio.max():.1f} x the even head")
""")

nb.code("""
for name in ["first_token", "previous_token", "induction"]:
    print(f"top heads by {name}:")
    display(stats.top(name, k=3).round(3))
""")

nb.md("""
Published analyses of GPT-2 small find, among others, previous-token heads (2.2 and 4.11) and
induction heads (5.5 and 6.9) in the circuit that Wang et al. (2022, "Interpretability in the Wild",
arXiv:2211.00593) traced through it, and Nanda's *induction mosaic* (neelnanda.io/mosaic), measured with
the repeated-random-tokens test used below, shows GPT-2 small's induction heads in layers 5 to 7.
Compare with the numbers above for the model you loaded; a small model trained briefly may show weaker
or no specialised heads.

### The strongest previous-token head

A previous-token head draws a line just below the diagonal:
""")

nb.code("""
best = stats.top("previous_token", k=1).iloc[0]
prev_layer, prev_head = int(best["layer"]), int(best["head"])
fig = views.plot_head(capture, layer=prev_layer, head=prev_head)
plt.show()
""")

nb.md("""
## Induction heads

Suppose the text contains `... Harry Potter ...` and later `Harry` again. A good guess for the next
token is `Potter`. An **induction head** implements that guess: at the second `Harry` it attends to the
token that *followed* the first `Harry` and copies it forward. It needs a previous-token head in an
earlier layer (to know what came before each token), which is why induction heads sit in the middle
layers.

To measure this without any help from meaning, take random tokens and repeat them. The second copy is
unpredictable from language knowledge, but perfectly predictable by copying. The tokens are drawn from
those the model has *seen* in training (`hs.seen_tokens`: at least five times in the course's training
text): a small model trained on one text has never met half of its vocabulary, and a sequence of such
tokens would only test how lost it is on tokens it cannot know. A query in the second copy
at position $q$ has seen its token at $q - L$ (chunk length $L$); an induction head attends to
$q - L + 1$, one step to the right of the earlier occurrence. On the heatmap that is a stripe parallel to
the diagonal, $L - 1$ tokens to its left.

We call a head an **induction head** only when its score is at least `hs.INDUCTION_MARGIN` = 4 times
that of a head spreading evenly over the same sequence: an even head already scores about 1/(1.5 L)
without copying anything, and a head a little above it may be noise.
""")

nb.code("""
induction_heads = stats.induction_heads()
best = stats.top("induction", k=1).iloc[0]
ind_layer, ind_head = int(best["layer"]), int(best["head"])
times = best["induction"] / baselines["induction"]
if len(induction_heads):
    print(f"{len(induction_heads)} induction head(s) clear {hs.INDUCTION_MARGIN:.0f} x the even head's "
          f"{baselines['induction']:.3f}: " + ", ".join(f"{r.layer}.{r.head} ({r.times_baseline:.1f} x)"
                                                        for r in induction_heads.head(5).itertuples()))
else:
    print(f"this model has no induction head: its best, {ind_layer}.{ind_head}, scores {best['induction']:.3f}, "
          f"{times:.1f} x the even head's {baselines['induction']:.3f} (an induction head needs "
          f"{hs.INDUCTION_MARGIN:.0f} x). Real GPT-2 small has several, in layers 5 to 7 (Wang et al. 2022; "
          "Nanda's induction mosaic)")
# the claim printed above, checked: a head is named an induction head exactly when it clears the margin
assert (len(induction_heads) > 0) == (times >= hs.INDUCTION_MARGIN)
ids, start, period = hs.repeated_random_tokens(lm, length=30, n_sequences=1, seed=0)
repeated = gpt2lab.capture_attention(lm, ids[0])
fig, ax = plt.subplots(figsize=(5.5, 5.5))
ax.imshow(repeated.head(ind_layer, ind_head).numpy(), cmap="Blues", vmin=0, vmax=1)
ax.axvline(start + period - 0.5, color="orange", lw=1)
ax.axhline(start + period - 0.5, color="orange", lw=1)
kind = "the strongest induction head" if len(induction_heads) else "the best induction score (not an induction head)"
ax.set_title(f"{ind_layer}.{ind_head}, {kind},\\non {period} random tokens, repeated", fontsize=10)
ax.set_xlabel("key")
ax.set_ylabel("query")
plt.show()
""")

nb.md("""
What induction buys the model: its loss on each token of the sequence. On the first copy every token is
random, so the loss stays high; on the second copy a model with working induction heads predicts the
repeated tokens and its loss drops (Olsson et al. 2022 use exactly this drop as their measure of
in-context learning). If the two means below are about equal, the loaded model has not learned to copy.
""")

nb.code("""
with torch.no_grad():
    batch = ids.to(lm.device)
    logits = lm.model(batch, attention_mask=torch.ones_like(batch)).logits[0].float().cpu()
losses = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(range(1, len(losses) + 1), losses.numpy(), ".-")
ax.axvline(start + period - 0.5, color="orange", lw=1, label="second copy starts")
ax.set_xlabel("position of the predicted token")
ax.set_ylabel("loss (nats)")
ax.legend()
plt.show()
first, second = losses[:period - 1].mean().item(), losses[period:].mean().item()
print(f"mean loss on the first copy {first:.2f} nats, on the second copy {second:.2f} nats")
drop = 1 - second / first
if drop > 0.25:
    print(f"the second copy costs {100 * drop:.0f} % less: the model copies from the first")
else:
    print(f"the second copy costs about as much ({100 * drop:+.0f} %): the model does not copy from the first")
if len(induction_heads):  # induction heads are what makes the second copy cheap
    assert second < first, "the model has induction heads but the second copy is no easier: revise the text"
""")

nb.md("""
## Explorer

Type a text and pick a layer and a head. The explorer starts on the head with the best induction score
found above (an induction head only if the cell above says so); try a text with a repetition in it.

**A task for the explorer.** The default text repeats "Mr and Mrs Dursley". Find a head whose row for
the second "Dursley" (or the second "Mrs") puts its largest weight on the token *after* the first one.
Then switch to the strongest previous-token head (the table above names it): where does the same row
look? Does any head of this model do what an induction head does on this text?
""")

nb.code("""
attention_widget.attention_explorer(lm, text="Mr and Mrs Dursley, of number four, Privet Drive. Mr and Mrs Dursley",
                         layer=ind_layer, head=ind_head)
""")

nb.exercise(
    """
    Which head of the loaded model is the most focused (lowest entropy on `text`), and which the most
    spread out? Plot both side by side with `views.plot_head(..., ax=...)`.
    """,
    """
    frame = stats.to_frame()
    focused = frame.loc[frame.entropy.idxmin()]
    spread = frame.loc[frame.entropy.idxmax()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, row, label in [(axes[0], focused, "most focused"), (axes[1], spread, "most spread out")]:
        views.plot_head(capture, layer=int(row["layer"]), head=int(row["head"]), ax=ax)
        ax.set_title(f"{label}: {int(row['layer'])}.{int(row['head'])}, {row['entropy']:.2f} bits")
    plt.show()
    """,
    title="focused and spread-out heads",
)

nb.exercise(
    """
    Does the induction score depend on how long the repeated chunk is? Measure the best head's score
    (`hs.measure_induction(lm, length=L)`, take the maximum over heads) for a few chunk lengths and plot
    it against the length, together with the score of a head spreading evenly
    (`hs.uniform_baselines(2, induction_length=L)["induction"]`). Which of the two makes the curve fall?
    """,
    """
    lengths = gpt2lab.course.scaled(quick=[5, 10, 20, 40], full=[5, 10, 20, 50, 100, 200])
    longest = (lm.context_length - 1) // 2
    lengths = [L for L in lengths if L <= longest]
    best_scores = [hs.measure_induction(lm, length=L, n_sequences=2).max() for L in lengths]
    even_scores = [hs.uniform_baselines(2, induction_length=L)["induction"] for L in lengths]
    ratios = [b / e for b, e in zip(best_scores, even_scores)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3))
    left.plot(lengths, best_scores, "o-", label="best head")
    left.plot(lengths, even_scores, "s--", color="0.5", label="a head spreading evenly")
    left.set_xlabel("length of the repeated chunk")
    left.set_ylabel("induction score")
    left.legend()
    right.plot(lengths, ratios, "o-")
    right.axhline(hs.INDUCTION_MARGIN, color="orange", lw=1, label="induction-head margin")
    right.set_xlabel("length of the repeated chunk")
    right.set_ylabel("best / even")
    right.legend()
    plt.show()
    for L, b, e, r in zip(lengths, best_scores, even_scores, ratios):
        print(f"L = {L:3d}: best {b:.3f}, even {e:.3f}, {r:.1f} x")
    # Answer, from the numbers: the even head's score is about 1/(1.5 L), so it falls with L whatever
    # the model does. A real induction head holds its score as L grows, and its ratio climbs.
    if max(ratios) < hs.INDUCTION_MARGIN:
        print("no length lifts the best head past the margin: the falling curve is the baseline falling")
    else:
        print("the ratio clears the margin: part of the curve is real copying, not just the baseline")
    """,
    title="induction and chunk length",
)

nb.summary([
    ("`capture_attention` returns readable tokens and a (layers, heads, query, key) tensor; each row is a "
     "probability distribution over the current and earlier tokens."),
    ("bertviz's head and model views are interactive but need internet (CDN scripts) and short inputs; the "
     "views refuse long inputs and suggest `layers=` or `truncate=True`."),
    "The offline page, the heatmaps and the explorer show the same thing without any network.",
    ("Entropy, first-token share, previous-token score and induction score summarise each head; compare them "
     "with a head that spreads evenly."),
    ("Every head statistic means something only next to a head spreading evenly; here an induction head must "
     "score at least 4 times such a head on repeated random tokens (drawn from tokens the model has seen)."),
    ("Induction heads attend to the token after an earlier occurrence of the current token; on a repeated "
     "random sequence they make the second copy predictable, which shows up as a drop in loss. Real GPT-2 "
     "small has them in layers 5 to 7; the notebook says whether the loaded model has any."),
], outro="Next: notebook 06 trains a small model in which induction heads form before your eyes.")

nb.write()
