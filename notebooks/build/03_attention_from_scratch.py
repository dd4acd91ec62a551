"""Builds notebooks/03_attention_from_scratch.ipynb (run: python notebooks/build/03_attention_from_scratch.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "03_attention_from_scratch.ipynb",
    "03 · Attention from scratch: Q, K, V and one GPT-2 block by hand",
    """
    Attention is how a token gathers information from the tokens before it. In this notebook you first
    compute it on a toy example small enough to check with pencil and paper: queries, keys, values,
    scores, the causal mask, the softmax and the weighted sum. Then you open a real GPT-2 block and
    redo every step with plain tensor operations on the model's own weights, until your numbers match
    the model's to the last few digits of floating point.
    """,
    [
        "compute scaled dot-product attention with queries, keys and values, step by step",
        "explain why scores are divided by the square root of the head size, and what the causal mask does",
        "split a model's width into heads and merge them back",
        ("follow the residual stream through a GPT-2 block: layer norm, fused Q/K/V projection, attention, "
         "output projection, residual, layer norm, MLP, residual"),
        "check a hand computation against `transformers` and judge the size of floating-point differences",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()
""")

nb.code("""
import math

import matplotlib.pyplot as plt
import pandas as pd
import torch

from gpt2lab.attention import by_hand as att

torch.set_printoptions(precision=3, sci_mode=False)
""")

nb.md("""
## Part 1 · Attention on a toy example

Think of a library. You come with a **query** ("books about cats"), every book has a **key** on its
spine, and what you take home is the book's content, its **value**. Attention does this softly: it
compares the query with *every* key, turns the match scores into weights that sum to 1, and returns the
weighted average of the values.

In a transformer each token plays all three roles. From its vector $x_t$ the model makes a query
$q_t = x_t W_Q$, a key $k_t = x_t W_K$ and a value $v_t = x_t W_V$. Then, for token $t$:

$$\\text{score}_{t,s} = \\frac{q_t \\cdot k_s}{\\sqrt{d}}, \\qquad
w_{t,s} = \\operatorname{softmax}_s(\\text{score}_{t,s}), \\qquad
\\text{out}_t = \\sum_s w_{t,s}\\, v_s .$$

We take four tokens with 4-dimensional vectors chosen by hand, and projection matrices with a simple
structure so you can follow the numbers.
""")

nb.code("""
tokens = ["the", "cat", "sat", "down"]
x = torch.tensor([[1.0, 0.0, 0.0, 0.0],   # "the"
                  [0.0, 1.0, 0.0, 1.0],   # "cat"
                  [0.0, 0.0, 1.0, 1.0],   # "sat"
                  [0.0, 1.0, 1.0, 0.0]])  # "down"
d = x.shape[1]
torch.manual_seed(0)
W_Q = torch.eye(d) * 2.0                       # queries: the token itself, louder
W_K = torch.eye(d)                             # keys: the token itself
W_V = torch.arange(1.0, 17.0).view(d, d) / 10  # values: some mixture

Q, K, V = x @ W_Q, x @ W_K, x @ W_V
print("queries\\n", Q, "\\nkeys\\n", K, "\\nvalues\\n", V)
""")

nb.md("""
**Scores.** Every query against every key is one matrix product, $QK^\\top$: row $t$ holds token $t$'s
scores for all tokens. Then we scale by $1/\\sqrt{d}$.
""")

nb.code("""
scores = Q @ K.T
scaled = scores / math.sqrt(d)
pd.DataFrame(scaled.numpy(), index=[f"query {t}" for t in tokens], columns=[f"key {t}" for t in tokens]).round(2)
""")

nb.md("""
**Causal mask.** GPT-2 writes text left to right, so when it predicts what comes after token $t$ it
must not peek at later tokens. Scores for keys in the future are set to $-\\infty$ before the softmax;
$e^{-\\infty} = 0$, so they get weight exactly 0. The mask is the lower triangle of a square.
""")

nb.code("""
T = len(tokens)
causal = torch.ones(T, T, dtype=torch.bool).tril()  # True where the query may look at the key
masked = scaled.masked_fill(~causal, float("-inf"))
weights = torch.softmax(masked, dim=-1)
out = weights @ V

fig, ax = plt.subplots(figsize=(3.6, 3.2))
ax.imshow(weights, cmap="Blues", vmin=0, vmax=1)
ax.set_xticks(range(T), tokens)
ax.set_yticks(range(T), tokens)
ax.set_xlabel("key")
ax.set_ylabel("query")
for (i, j), w in pd.DataFrame(weights.numpy()).stack().items():
    ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=8)
ax.set_title("attention weights (rows sum to 1)")
plt.show()
print("each row sums to", weights.sum(-1))
print("output of 'sat' = weighted average of the values of the, cat, sat:", out[2])
""")

nb.md("""
"the" can only look at itself. "sat" matches "cat" (they share the 4th dimension) and itself, so those
two get most of its attention.

**The past never sees the future.** A direct consequence of the mask: changing the last token changes
nothing in the outputs of the earlier ones. This is what lets GPT-2 train on every position of a text at
once.
""")

nb.code("""
def toy_attention(x):
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    s = (q @ k.T / math.sqrt(d)).masked_fill(~torch.ones(len(x), len(x), dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


changed = x.clone()
changed[3] = torch.tensor([5.0, -3.0, 2.0, 7.0])  # a completely different last token
print("first three outputs unchanged:", torch.equal(toy_attention(x)[:3], toy_attention(changed)[:3]))
print("last output changed:         ", not torch.equal(toy_attention(x)[3], toy_attention(changed)[3]))
""")

nb.md("""
### Why divide by $\\sqrt{d}$?

If the entries of $q$ and $k$ are random with variance 1, their dot product is a sum of $d$ terms and
has variance $d$. With GPT-2's head size of 64 the raw scores would spread over tens of units, the
softmax would put almost all weight on one key, and its gradient would vanish. Dividing by $\\sqrt{d}$
keeps the spread around 1 whatever the size. The plot shows the entropy of the softmax (how spread out
the weights are, in bits) over 32 keys, with and without the scaling.
""")

nb.code("""
sizes = [4, 16, 64, 256, 1024]
generator = torch.Generator().manual_seed(0)


def mean_entropy(logits):
    p = torch.softmax(logits, dim=-1)
    return float(-(p * torch.log2(p.clamp_min(1e-12))).sum(-1).mean())


raw, scaled_entropy = [], []
for size in sizes:
    q = torch.randn(200, size, generator=generator)
    k = torch.randn(32, size, generator=generator)
    raw.append(mean_entropy(q @ k.T))
    scaled_entropy.append(mean_entropy(q @ k.T / math.sqrt(size)))

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(sizes, raw, "o-", label="q·k")
ax.plot(sizes, scaled_entropy, "s-", label="q·k / √d")
ax.axhline(math.log2(32), ls=":", color="gray", label="uniform over 32 keys")
ax.set_xscale("log", base=2)
ax.set_xlabel("head size d")
ax.set_ylabel("entropy of the weights (bits)")
ax.legend(fontsize=8)
plt.show()
""")

nb.md("""
### Several heads

One set of weights can only express one way of looking back. GPT-2 runs several attentions side by
side, the **heads**: the width is cut into `n_head` slices of `head_dim` columns, each head attends on
its own slice, and the results are laid side by side again. GPT-2 small has 12 heads of 64 columns
(768 = 12 × 64). With our 4 columns, two heads of 2:
""")

nb.code("""
n_heads, head_dim = 2, d // 2
q_heads = Q.view(T, n_heads, head_dim).transpose(0, 1)  # (heads, tokens, head_dim)
k_heads = K.view(T, n_heads, head_dim).transpose(0, 1)
v_heads = V.view(T, n_heads, head_dim).transpose(0, 1)
head_scores = (q_heads @ k_heads.transpose(-1, -2) / math.sqrt(head_dim)).masked_fill(~causal, float("-inf"))
head_weights = torch.softmax(head_scores, dim=-1)  # (heads, tokens, tokens): one pattern per head
merged = (head_weights @ v_heads).transpose(0, 1).reshape(T, d)
print("head 0 looks at dimensions 0-1, head 1 at 2-3; their patterns differ:\\n", head_weights)
print("merged output:", tuple(merged.shape))
""")

nb.exercise(
    """
    Write `attention(q, k, v)` for tensors shaped (heads, tokens, head_dim) with the causal mask, and
    check it against PyTorch's fused kernel `torch.nn.functional.scaled_dot_product_attention(q, k, v,
    is_causal=True)` on random inputs (4 heads, 10 tokens, head size 16).
    """,
    """
    def attention(q, k, v):
        t = q.shape[-2]
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v


    q, k, v = (torch.randn(4, 10, 16) for _ in range(3))
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    print("largest difference:", float((attention(q, k, v) - fused).abs().max()))
    """,
    title="attention in four lines",
)

nb.md("""
## Part 2 · One GPT-2 block, by hand

Now the real thing. A GPT-2 model is: token embedding + position embedding, then `n_layer` identical
**blocks**, then a final layer norm and a projection onto the vocabulary. Each block reads the
**residual stream** (one vector per token) and *adds* two things to it:

```
x ──► ln_1 ──► attention (c_attn → Q,K,V → heads → softmax → c_proj) ──► + ──► ln_2 ──► MLP (c_fc → GELU → c_proj) ──► +
│                                                                        ▲  │                                            ▲
└────────────────────────────────────────────────────────────────────────┘  └────────────────────────────────────────────┘
```

Here is the model you loaded:
""")

nb.code("""
cfg = lm.model.config
head_dim = cfg.n_embd // cfg.n_head
print(f"{lm.name}: {cfg.n_layer} blocks, width {cfg.n_embd}, {cfg.n_head} heads of {head_dim}, "
      f"context {cfg.n_positions}, vocabulary {cfg.vocab_size}")
block = lm.model.transformer.h[0]
print(block)
""")

nb.md("""
Two GPT-2 conventions to know before reading the weights:

* the projections are `Conv1D` layers, a leftover from the original TensorFlow code. Their weight is
  stored as **(in, out)**, so a projection is `x @ W + b` with no transpose (an `nn.Linear` stores
  (out, in) and computes `x @ W.T + b`);
* `c_attn` is **one** fused projection producing queries, keys and values at once, side by side:
  3 × width columns.
""")

nb.code("""
print("c_attn weight:", tuple(block.attn.c_attn.weight.shape), " (in, out) = (width, 3 x width)")
print("c_proj weight:", tuple(block.attn.c_proj.weight.shape))
print("MLP c_fc:", tuple(block.mlp.c_fc.weight.shape), " c_proj:", tuple(block.mlp.c_proj.weight.shape))
""")

nb.md("""
### What the first block receives

Each token's id picks a row of the token embedding `wte`; its position picks a row of `wpe`; their
sum is the residual stream entering block 0 (notebook 02 looks at both tables).
""")

nb.code("""
text = "To be, or not to be, that is the question."
emb = att.embed_by_hand(lm, text)
print("tokens:", emb.tokens)
print("token embeddings", tuple(emb.token_embeddings.shape), "+ position embeddings",
      tuple(emb.position_embeddings.shape), "=", tuple(emb.block_input.shape))
""")

nb.md("""
### Layer norm, and where GPT-2 puts it

**Layer norm** rescales each token's vector on its own: subtract the mean of its `width` numbers,
divide by their standard deviation (plus a tiny `eps` so that nothing divides by zero), then multiply
by a learned **gain** and add a learned **bias**, one of each per dimension. Whatever the scale of the
vector that comes in, what goes out has mean 0 and spread 1 before the gain and bias: the sublayer
after it always sees inputs of the same size, which keeps training stable.

GPT-2 puts the norm at the **start** of each branch, "pre-LN" (Radford et al. 2019, section 2.3: "Layer
normalization was moved to the input of each sub-block ... and an additional layer normalization was
added after the final self-attention block"). The original Transformer (Vaswani et al. 2017) normalised
*after* adding the branch's output ("post-LN"). With pre-LN the residual stream itself is never
normalised: each branch reads a normalised copy (`ln_1(x)`, `ln_2(x)`) and adds its output to the raw
stream, so the stream's size can grow from block to block, and only the final `ln_f` rescales it before
the output projection.

### Every step of block 0

Each line below is one step, using only the block's weights and basic tensor operations.
""")

nb.code("""
x = emb.block_input                    # (T, width): the residual stream
T, width = x.shape
n_head = cfg.n_head


def layer_norm(v, gain, bias, eps):
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    return (v - mean) / torch.sqrt(var + eps) * gain + bias


def split_heads(v):                    # (T, width) -> (heads, T, head_dim)
    return v.view(T, n_head, head_dim).transpose(0, 1)


with torch.no_grad():
    ln_1 = layer_norm(x, block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
    qkv = ln_1 @ block.attn.c_attn.weight + block.attn.c_attn.bias      # (T, 3 x width)
    query, key, value = qkv.split(width, dim=-1)
    q, k, v = split_heads(query), split_heads(key), split_heads(value)
    scores = q @ k.transpose(-1, -2) * head_dim ** -0.5                  # (heads, T, T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    merged = (weights @ v).transpose(0, 1).reshape(T, width)             # heads side by side again
    attn_out = merged @ block.attn.c_proj.weight + block.attn.c_proj.bias
    after_attn = x + attn_out                                            # first residual connection
    ln_2 = layer_norm(after_attn, block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
    fc = ln_2 @ block.mlp.c_fc.weight + block.mlp.c_fc.bias              # (T, 4 x width)
    gelu = 0.5 * fc * (1 + torch.tanh(math.sqrt(2 / math.pi) * (fc + 0.044715 * fc ** 3)))
    mlp_out = gelu @ block.mlp.c_proj.weight + block.mlp.c_proj.bias
    block_out = after_attn + mlp_out                                     # second residual connection

print("block output:", tuple(block_out.shape))
""")

nb.md("""
### Does it match the model?

To compare, we record what the real model (transformers, eager attention) computed inside block 0:
its input, its output and its attention weights. `att.model_reference` runs the model once with hooks
on every block.
""")

nb.code("""
reference = att.model_reference(lm, text)
print("input  identical:      ", torch.equal(reference.block_inputs[0], x))
print("attention max |diff|:  ", float((weights - reference.attention_weights[0]).abs().max()))
print("output  max |diff|:    ", float((block_out - reference.block_outputs[0]).abs().max()),
      " (output values go up to", round(float(reference.block_outputs[0].abs().max()), 2), ")")
""")

nb.md("""
The differences are of the order of $10^{-7}$ to $10^{-6}$: float32 keeps about 7 significant digits, and
adding the same numbers in a different order (our layer norm versus PyTorch's fused kernel) changes
the last digit. That is agreement.

The package has the same computation as `att.run_block_by_hand`, which returns every intermediate
under the names used above. `describe()` lists them in order with their shapes:
""")

nb.code("""
hand = att.run_block_by_hand(lm, 0, x)
hand.describe()
""")

nb.md("""
A look at the attention weights of block 0 for the first heads (rows: the token attending, columns:
the tokens it looks at). Notebook 05 is all about reading these pictures.
""")

nb.code("""
from gpt2lab.attention import views

capture = gpt2lab.capture_attention(lm, text)
fig = views.plot_layer(capture, layer=0, heads=list(range(min(4, cfg.n_head))))
plt.show()
""")

nb.md("""
### Every block, and the whole model

`compare_with_model` repeats the check for every block (each fed the model's own input), and with
`chained=True` runs the whole model by hand (embeddings, all blocks, final layer norm and the output
projection, which reuses `wte`), so small differences could add up from block to block.
""")

nb.code("""
per_block = att.compare_with_model(lm, text)
chained = att.compare_with_model(lm, text, chained=True)
print("each block on its own:")
display(per_block)
print("whole model by hand (differences may accumulate):")
display(chained)
print("largest difference over all layers:",
      f"{per_block[['attention_weights', 'block_output']].to_numpy().max():.2e}")
""")

nb.md("""
Finally the point of it all: the next-token prediction. The logits of the last position, computed
entirely by hand, give the same top candidates as the model.
""")

nb.code("""
by_hand = att.forward_by_hand(lm, text)
with torch.no_grad():
    model_logits = lm.model(lm.encode(text)).logits[0, -1]
top_hand = by_hand.logits[-1].topk(5).indices.tolist()
top_model = model_logits.topk(5).indices.tolist()
print("after", repr(text))
print("by hand:", [lm.tokenizer.decode([i]) for i in top_hand])
print("model:  ", [lm.tokenizer.decode([i]) for i in top_model])
""")

nb.exercise(
    """
    Without the causal mask, which rows of block 0's attention weights change? Recompute the weights
    from `hand.scaled_scores` with a plain softmax (no mask), compare them row by row with
    `hand.attention_weights`, and explain why exactly one row stays the same.
    """,
    """
    unmasked = torch.softmax(hand.scaled_scores, dim=-1)
    row_change = (unmasked - hand.attention_weights).abs().amax(dim=(0, 2))  # largest change per query row
    for token, change in zip(emb.tokens, row_change.tolist()):
        print(f"{token!r:>14}: {change:.4f}")
    # Only the last token's row is unchanged: it may already look at every token, so the mask hides
    # nothing from it. Every earlier row gains weight on future tokens.
    """,
    title="what the mask hides",
)

nb.exercise(
    """
    How much does each half of block 0 write into the residual stream? For every token, compare the
    length (L2 norm) of `hand.block_input`, `hand.attention_output` and `hand.mlp_output`, and plot the
    three as bars per token.
    """,
    """
    norms = pd.DataFrame({
        "residual in": hand.block_input.norm(dim=-1).numpy(),
        "attention adds": hand.attention_output.norm(dim=-1).numpy(),
        "MLP adds": hand.mlp_output.norm(dim=-1).numpy(),
    }, index=[f"{i}:{t}" for i, t in enumerate(emb.tokens)])
    norms.plot.bar(figsize=(8, 3), width=0.8)
    plt.ylabel("vector length")
    plt.show()
    ratio = (norms["MLP adds"] / norms["residual in"]).median()
    attn_ratio = (norms["attention adds"] / norms["residual in"]).median()
    print(f"median per token: the MLP adds a vector {ratio:.1f}x the length of the residual it reads, "
          f"attention {attn_ratio:.1f}x")
    # Answer, following the numbers: with pre-LN the MLP reads ln_2(x), a vector rescaled to a fixed size
    # whatever |x| is, and its output is added to the raw stream. Nothing ties the output's length to |x|.
    if ratio > 2:
        print(f"Block 0's MLP writes vectors about {ratio:.0f} times the length of the residual stream: the "
              "embeddings it reads are small, its normalised input is not, and its output dominates the stream "
              "that every later block reads (each through its own layer norm, so only the directions matter)")
    else:
        print(f"Block 0's MLP writes vectors of about the residual's own length ({ratio:.1f}x): on this model it "
              "adjusts the embeddings rather than overwriting them")
    """,
    title="who writes how much",
)

nb.summary([
    ("Attention compares each token's **query** with the **keys** of itself and earlier tokens, turns the "
     "scaled scores into weights with a softmax, and returns the weighted average of the **values**."),
    "The scores are divided by √(head size) so the softmax neither saturates nor stays flat as heads grow.",
    ("The **causal mask** gives future tokens weight exactly 0, so earlier outputs never depend on later "
     "tokens, which lets GPT-2 train on every position at once."),
    ("A GPT-2 block is `x + attention(ln_1(x))`, then `+ MLP(ln_2(·))`: layer norm (subtract the mean, divide "
     "by the spread, then a learned gain and bias) sits at the input of each branch (pre-LN), so the residual "
     "stream itself is never normalised until `ln_f`. The fused `c_attn` makes Q, K and V in one product, and "
     "`Conv1D` weights are stored (in, out)."),
    ("Redone by hand with the model's own weights, every block matches `transformers` to float32 "
     "rounding (about 1e-6 here), and so does the next-token prediction."),
], outro="Next: notebook 04 assembles these blocks into a GPT you can train, and trains a small one.")

nb.write()
