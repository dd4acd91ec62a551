"""Builds notebooks/04_build_and_train_a_gpt.ipynb (run: python notebooks/build/04_build_and_train_a_gpt.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "04_build_and_train_a_gpt.ipynb",
    "04 · Build and train a GPT",
    """
    Notebook 03 recomputed GPT-2 by hand, one tensor at a time, without gradients. Here the same
    pieces become a model you can train: token and position embeddings, a stack of blocks, a final
    LayerNorm and an output layer tied to the token embedding, in about a hundred lines of
    `gpt2lab.model.GPT`. First we check that it computes exactly what GPT-2 computes, by copying a real
    model's weights into it; then we train a small one on Shakespeare, character by character, and
    compare it with the n-gram models of notebook 01.
    """,
    [
        "name the parts of a GPT and the shape of the tensor that flows between them",
        "check a model written from scratch against transformers' GPT-2 by copying the weights across",
        "train a character-level GPT with the course's training loop and read its loss in bits per character",
        "compare it with n-gram models, per context position, and explain where the network wins",
        "read a published training curve (the embedded model's own)",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()  # the model whose weights we copy into the from-scratch GPT
""")

nb.code("""
import inspect
import json
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from gpt2lab.basics.ngram import NGramLM
from gpt2lab.families import model_type
from gpt2lab.model import GPT, GPTConfig, from_gpt2
from gpt2lab.training import RandomWindows, TrainConfig, train

_ = torch.manual_seed(0)
""")

nb.md("""
## The parts

`GPT` is a plain `torch.nn.Module`. Its forward pass, in the order it runs:

1. **embed**: each token id picks a row of the token table, each position a row of the position table;
   their sum is the residual stream, one vector of `d_model` numbers per token;
2. **blocks**: each block adds what attention computes from a LayerNorm'd copy of the stream, then what
   the MLP computes from another LayerNorm'd copy (GPT-2's pre-LayerNorm layout);
3. **final LayerNorm and output layer**: the output layer reuses the token table (weight tying), so a
   token's score is the dot product of the final vector with that token's embedding.

The LayerNorm and the GELU are the functions notebook 03 wrote by hand
(`layer_norm_by_hand`, `gelu_by_hand`): the hand computation and this model share them.
""")

nb.code("""
print(inspect.getsource(GPT.forward))
print(inspect.getsource(gpt2lab.model.gpt.Block.forward))
""")

nb.md("""
## Same numbers as GPT-2

`from_gpt2(lm)` builds a `GPT` of the loaded model's shape and copies every weight across. GPT-2
stores its projections transposed (`Conv1D`, weight (in, out)); `nn.Linear` stores (out, in), so those
are transposed on the way. If the from-scratch model is right, its logits equal transformers' to float
rounding.
""")

nb.code("""
text = "ROMEO:\\nBut soft, what light through yonder window breaks?"
if model_type(lm) == "gpt2":
    ours = from_gpt2(lm)
    ids = lm.encode(text)
    with torch.no_grad():
        theirs_logits, ours_logits = lm.model(ids).logits.float(), ours(ids).logits.float()
    tolerance = 1e-4 if lm.model.dtype == torch.float32 else 3e-2  # half precision rounds more
    torch.testing.assert_close(ours_logits, theirs_logits, rtol=tolerance, atol=tolerance)
    print(f"{lm.name}: {ours.n_params:,} parameters; largest logit difference "
          f"{(ours_logits - theirs_logits).abs().max():.2e} over {ids.shape[1]} tokens")
else:
    print(f"{lm.name} is not a GPT-2-family model; from_gpt2 copies GPT-2 models only, so this check is skipped")
""")

nb.md("""
## Training a small one on characters

To compare with the n-gram models we work on the same symbols, characters, with the course's split of
tinyshakespeare. A character model's loss in nats per character, divided by $\\ln 2$, is its **bits per
character**, the unit of notebook 01. The training loop is `gpt2lab.train`, the one that
trained the embedded model; it accepts this model because it returns `.logits` like a transformers model.
""")

nb.code("""
train_text, valid_text = gpt2lab.data.tinyshakespeare_split()
chars = sorted(set(train_text))
index = {c: i for i, c in enumerate(chars)}


def encode(text):
    return torch.tensor([index[c] for c in text if c in index])


def decode(ids):
    return "".join(chars[int(i)] for i in ids)


train_ids, valid_ids = encode(train_text), encode(valid_text)
size = gpt2lab.course.scaled(quick=dict(n_layer=2, n_head=4, d_model=64, context_length=64, steps=1000),
                             full=dict(n_layer=6, n_head=6, d_model=384, context_length=256, steps=5000))
steps = size.pop("steps")
config = GPTConfig(vocab_size=len(chars), dropout=0.0 if gpt2lab.course.is_quick() else 0.2, **size)
model = GPT(config)
print(f"{len(chars)} characters; a GPT with {config.n_layer} blocks, d_model {config.d_model}, context "
      f"{config.context_length}: {model.n_params:,} parameters")
""")

nb.md("""
While it trains, `Snapshots` keeps a copy of the weights at step 0 and every tenth of the run (it is the
`on_log` callback of the loop), so we can later read what the model wrote at each stage without
training again.
""")

nb.code("""
from gpt2lab.model import Snapshots

prompt = encode("ROMEO:\\n")
log_every = max(steps // 20, 1)
snapshots = Snapshots(model, every=2 * log_every)  # step 0 and every tenth of the run

settings = TrainConfig(max_steps=steps, batch_size=gpt2lab.course.scaled(16, 32), learning_rate=gpt2lab.course.scaled(1e-2, 1e-3),
                       warmup_steps=gpt2lab.course.scaled(30, 200), eval_every=max(steps // 6, 1), eval_batches=8,
                       log_every=log_every, progress=False, device="cpu" if gpt2lab.course.is_quick() else "auto",
                       seed=0)
block = config.context_length
start = time.perf_counter()
result = train(model, RandomWindows(train_ids, block), RandomWindows(valid_ids, block, length=4096),
               config=settings, on_log=snapshots)
model.eval()
device = next(model.parameters()).device
bits = [(h["step"], h["loss"] / math.log(2)) for h in result.history if "loss" in h]
val_bits = [(step, loss / math.log(2)) for step, loss in result.val_losses]
print(f"{steps} steps in {time.perf_counter() - start:.0f} s; held-out loss {val_bits[-1][1]:.3f} bits/char; "
      f"weights kept at steps {snapshots.steps}")
""")

nb.md("""
### Against the n-gram models

The n-gram models are fitted on the same training characters (Kneser-Ney smoothing, as in the n-gram
notebook) and scored on the same held-out text as the network.
""")

nb.code("""
heldout = valid_text[:20_000]
ngram_bits = {n: NGramLM(n=n, smoothing="kneser-ney").fit(train_text).bits_per_char(heldout) for n in (1, 2, 3, 5, 7)}
fig, ax = plt.subplots(figsize=(7.5, 4.2))
ax.plot(*zip(*bits), label="GPT: training batches", alpha=0.7)
ax.plot(*zip(*val_bits), "o-", label="GPT: held out")
for n, value in ngram_bits.items():
    ax.axhline(value, ls=":", color="gray")
    ax.text(steps, value, f" {n}-gram", va="center", fontsize=8)
ax.set_xlabel("training step")
ax.set_ylabel("bits per character")
ax.set_ylim(0, 5)
ax.set_title("A character GPT against n-gram models (held-out tinyshakespeare)")
ax.legend()
plt.show()
final = val_bits[-1][1]
beaten = [n for n, value in ngram_bits.items() if final < value]
print(f"after {steps} steps the GPT scores {final:.3f} bits/char; it beats the n-gram models with n in {beaten}"
      + (f" and not yet n = {[n for n in ngram_bits if n not in beaten]}" if len(beaten) < len(ngram_bits) else ""))
""")

nb.md("""
### Loss per context position

An n-gram model sees at most $n-1$ characters, wherever it is. The network sees every character since
the start of its window, so its loss should fall as the position in the window grows. Score held-out
windows and average the loss at each position.
""")

nb.code("""
windows = valid_ids[: (len(valid_ids) // block) * block].view(-1, block)[:gpt2lab.course.scaled(64, 512)]
inputs, targets = windows[:, :-1], windows[:, 1:]
with torch.no_grad():
    logits = model(inputs.to(device)).logits.float().cpu()
per_position = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(0) / math.log(2)
best_n = min(ngram_bits, key=ngram_bits.get)
fig, ax = plt.subplots(figsize=(7.5, 3.8))
ax.plot(range(1, block), per_position.numpy(), ".-", label="GPT")
for n in (3, best_n):
    ax.axhline(ngram_bits[n], ls=":", color="gray")
    ax.text(block - 1, ngram_bits[n], f" {n}-gram", va="center", fontsize=8)
ax.set_xlabel("characters of context seen (position in the window)")
ax.set_ylabel("bits per character")
ax.legend()
plt.show()
early, late = per_position[:3].mean().item(), per_position[block // 2:].mean().item()
print(f"GPT: {early:.2f} bits/char on the first three positions, {late:.2f} on the second half of the window")
assert late < early
print(f"with one character of context it scores {per_position[0]:.2f} bits/char, against {ngram_bits[2]:.2f} for the "
      "bigram model, which always has exactly one")
wins = [i + 1 for i, value in enumerate(per_position.tolist()) if value < ngram_bits[3]]
print(f"it beats the 3-gram at {len(wins)} of {block - 1} positions" + (f", the first at position {wins[0]}" if wins else ""))
""")

nb.md("""
At the first position the network has one character of context, as a bigram model has; further in it can
use everything since the start of the window, which no n-gram model of fixed $n$ can.

### What it writes as it learns
""")

nb.code("""
shown_steps = [snapshots.steps[i] for i in (0, 1, len(snapshots.steps) // 2, -1)]
samples = {step: decode(snapshots.sample(step, prompt, 120, temperature=0.8)) for step in shown_steps}
for step, sample in samples.items():
    print(f"--- step {step} ---\\n{sample}\\n")
""")

nb.md("""
### Explorer: what it wrote at every snapshot

Slide over the snapshots and change the temperature; every sample is drawn from the weights kept at
that step (a fixed seed, so a slider shows its own effect). The line above the text gives the training
loss logged at that step and the share of the sample's words that occur in the training text.
**Guided task:** move the training step from 0 to the end and find the first step where most words are
real; then, at the last step, raise the temperature towards 2 and watch the words fall apart again.
""")

nb.code("""
from gpt2lab.widgets import training_explorer, words_of

explorer = training_explorer(snapshots, decode, prompt, max_new_tokens=120, temperature=0.8,
                             vocabulary=set(words_of(train_text)))
explorer.controls["step"].value = snapshots.steps[-1]
assert explorer.last[-1] == samples[snapshots.steps[-1]]  # the same sample as printed above
explorer.controls["step"].value = snapshots.steps[0]
explorer
""")

nb.md("""
## The embedded model's own training curve

The course's embedded model was trained with the same loop on GPT-2-style tokens (a 384-token BPE
vocabulary), and ships with its log, `training_stats.json`. Its loss is in nats per **token**; a token
covers more than one character, so bits per character = nats per token × tokens per character / ln 2.
""")

nb.code("""
stats_path = gpt2lab.loading.embedded_path() / "training_stats.json"  # the embedded model's folder in the package
stats = json.loads(stats_path.read_text())
tokens_per_char = stats["val_tokens"] / stats["val_chars"]
curve = [(h["step"], h["loss"] * tokens_per_char / math.log(2)) for h in stats["history"] if "loss" in h]
fig, ax = plt.subplots(figsize=(7.5, 3.8))
ax.plot(*zip(*curve), label="embedded model: training batches")
ax.axhline(stats["val_bits_per_char"], color="black", ls="--", label=f"its held-out score {stats['val_bits_per_char']:.2f}")
ax.axvline(stats["kept_step"], color="orange", lw=1, label=f"kept weights (step {stats['kept_step']})")
ax.set_xlabel("training step")
ax.set_ylabel("bits per character")
ax.set_ylim(0, 5)
ax.legend()
plt.show()
print(f"{stats['parameters']:,} parameters, {stats['steps']} steps of {stats['batch_size']} x {stats['block_size']} "
      f"tokens in {stats['train_seconds'] / 60:.0f} min; held out {stats['val_bits_per_char']:.3f} bits/char")
""")

nb.exercise(
    """
    Count the parameters of the model you trained by hand, from its `GPTConfig`, and compare with
    `model.n_params`. Which part holds most of them?
    """,
    """
    d, V, T, L = config.d_model, config.vocab_size, config.context_length, config.n_layer
    embeddings = V * d + T * d
    per_block = (2 * 2 * d) + (3 * d * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    final_norm = 2 * d
    total = embeddings + L * per_block + final_norm  # the output layer is the token table: no new weights
    assert total == model.n_params
    print(f"Answer: {total:,} = embeddings {embeddings:,} + {L} blocks x {per_block:,} + final LayerNorm {final_norm}; "
          f"the blocks hold {L * per_block / total:.0%}, of which the MLPs hold two thirds (8 d^2 of 12 d^2).")
    """,
    title="counting parameters",
)

nb.exercise(
    """
    The network is causal: the prediction at a position must not depend on later characters. Check it on
    your trained model: change the last character of a window and verify that only the last position's
    logits change.
    """,
    """
    window = valid_ids[:block].clone().to(device)
    changed = window.clone()
    changed[-1] = (changed[-1] + 1) % len(chars)
    with torch.no_grad():
        a, b = model(window).logits[0], model(changed).logits[0]
    same_before = torch.equal(a[:-1], b[:-1])
    print(f"Answer: earlier positions identical: {same_before}; last position changed: {not torch.equal(a[-1], b[-1])}")
    assert same_before
    """,
    title="the past never sees the future",
)

nb.summary([
    ("A GPT is embeddings, a stack of pre-LayerNorm blocks and a final LayerNorm with an output layer tied to "
     "the token table; `gpt2lab.model.GPT` writes that as a trainable module sharing its LayerNorm and GELU "
     "with the hand computation."),
    "Copying a GPT-2's weights into it reproduces GPT-2's logits to float rounding: the from-scratch model is exact.",
    ("Trained on characters, its held-out loss in bits per character is directly comparable with n-gram "
     "models; the per-position loss shows where it wins: it keeps using context long after an n-gram's window "
     "ends."),
    "The embedded model's log shows the same curve at a larger scale, in bits per character after converting tokens.",
], outro="Next: notebook 05 looks at the attention weights of every head of a trained model and asks what the heads are doing.")

nb.write()
