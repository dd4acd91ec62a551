"""Builds notebooks/00_setup_and_tour.ipynb (run: python notebooks/build/00_setup_and_tour.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "00_setup_and_tour.ipynb",
    "00 · Setup and a tour of gpt2lab",
    """
    This course takes GPT-2 apart and puts it back together: from counting letters (notebook 01) to
    fine-tuning the real model on your own text (notebook 11). Every notebook runs in two worlds:

    * **offline on a laptop CPU**, with a small GPT-2 trained on Shakespeare that ships inside the
      `gpt2lab` package (6 layers, about five million parameters), and
    * **on a GPU with the real GPT-2** (124 million parameters and up), downloaded from the Hugging Face Hub.

    The code is the same in both; only the numbers and the samples change. When the text says what
    GPT-2 does, run the cell and see what *your* model does.
    """,
    [
        "load a language model with `gpt2lab` and tell which model and device you got",
        "switch between the embedded model and real GPT-2, and between CPU and GPU",
        "count a GPT-2's parameters from its configuration",
        "run one forward pass: text → tokens → a probability for every possible next token",
        "generate a continuation and measure how well a model predicts held-out text (bits per character)",
    ],
)

nb.md("""
## Loading a model

`gpt2lab.load_default()` is the first line of every notebook. It loads, in this order:

1. the model named by the environment variable `GPT2LAB_MODEL`, if it is set;
2. otherwise `gpt2` (the real 124M GPT-2) from the Hugging Face Hub or its local cache;
3. and if the Hub cannot be reached, the **embedded** Shakespeare model, with a message saying so.

It prints which model it got. The result is an `LM`: the PyTorch model, its tokenizer and the device
it runs on, in one object that every function in `gpt2lab` accepts.
""")

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()
lm
""")

nb.code("""
config = lm.config
print(f"model            {lm.name} ({lm.source})")
print(f"parameters       {lm.n_params:,}")
print(f"device, dtype    {lm.device}, {lm.dtype}")
print(f"layers           {config.n_layer}")
print(f"attention heads  {config.n_head} per layer")
print(f"width            {config.n_embd} numbers per token")
print(f"context length   {lm.context_length} tokens")
print(f"vocabulary       {len(lm.tokenizer):,} tokens")
""")

nb.md("""
## Choosing the model, the device and how much work the notebooks do

| what | how |
|---|---|
| use the embedded Shakespeare model (offline, fast) | start Jupyter with `GPT2LAB_MODEL=embedded jupyter lab` |
| use real GPT-2 (needs the Hub once, then it is cached) | `GPT2LAB_MODEL=gpt2` (or `gpt2-medium`, `gpt2-large`, `gpt2-xl`) |
| use a model you saved (e.g. fine-tuned in notebook 11) | `GPT2LAB_MODEL=/path/to/folder` |
| pick a model inside one notebook | `lm = gpt2lab.load("gpt2", device="cuda")` |
| small, quick sweeps (default on a CPU) | `GPT2LAB_SCALE=quick` |
| full-size sweeps (default when a CUDA GPU is present) | `GPT2LAB_SCALE=full` |

`device="auto"` (the default) takes a CUDA GPU if there is one, then Apple's MPS, then the CPU.
On Google Colab choose *Runtime → Change runtime type → GPU* before running the notebook.

Heavy cells (long sweeps, training) ask `gpt2lab.course.scaled(quick=..., full=...)` how much to do,
so one switch scales the whole course and no cell needs editing.
""")

nb.md("""
### Beyond GPT-2: loading another model by name

`gpt2lab.load` takes any causal language model on the Hugging Face Hub by its name, and every tool of
the package works on it: generation, the decoders of notebook 08, attention views, word importance,
fine-tuning, serving. The test suite checks each tool on seven families: GPT-2, GPT-NeoX (Pythia),
Llama (SmolLM, TinyLlama), Qwen2, OPT, GPT-Neo and Phi-3. For example (this needs the Hub, so it is
shown here rather than run):

```python
pythia = gpt2lab.load("EleutherAI/pythia-70m")        # GPT-NeoX: rotary positions
smollm = gpt2lab.load("HuggingFaceTB/SmolLM-135M")    # Llama: grouped-query attention
print(gpt2lab.generate(pythia, "The meaning of life is", mode="greedy", max_length=20))
```

The course itself is about GPT-2, so a few cells read GPT-2's own settings (`n_layer`, `n_embd`), and
notebook 03's block recomputed by hand follows GPT-2's layout exactly: on another family it says so in
one sentence instead of computing anything.
""")

nb.code("""
import torch
from gpt2lab.device import describe

print("torch sees a CUDA GPU:", torch.cuda.is_available())
print("'auto' picks:", describe(gpt2lab.pick_device("auto")))
print("course scale:", gpt2lab.course.scale())
print("a sweep in this course would try", gpt2lab.course.scaled(quick=3, full=20), "settings")
""")

nb.md("""
## The GPT-2 family, and the model you loaded

GPT-2 came in four sizes. They share one design and differ only in depth (layers) and width
(numbers per token). Almost every parameter sits in one of three places:

* the **token embedding** table: one vector of width $d$ per vocabulary entry ($V \\times d$);
* the **position embedding** table: one vector per position ($P \\times d$);
* $L$ **transformer blocks**, each with about $12 d^2$ weights: $4d^2$ in attention (queries, keys,
  values and the output projection) and $8d^2$ in the feed-forward layer (width $d \\to 4d \\to d$),
  plus $13d$ biases and layer-norm parameters.

The output layer that turns a vector back into next-token scores reuses the token embedding
table ("tied weights"), so it adds nothing. In total:

$$N = Vd + Pd + L\\,(12d^2 + 13d) + 2d$$
""")

nb.code("""
import pandas as pd


def gpt2_param_count(vocab_size, n_positions, n_embd, n_layer):
    \"\"\"Parameters of a GPT-2 with tied input/output embeddings.\"\"\"
    d = n_embd
    return vocab_size * d + n_positions * d + n_layer * (12 * d * d + 13 * d) + 2 * d


family = {  # name: (vocabulary, context, width, layers), as published by OpenAI
    "gpt2": (50257, 1024, 768, 12),
    "gpt2-medium": (50257, 1024, 1024, 24),
    "gpt2-large": (50257, 1024, 1280, 36),
    "gpt2-xl": (50257, 1024, 1600, 48),
}
family[f"loaded: {lm.name}"] = (config.vocab_size, config.n_positions, config.n_embd, config.n_layer)
sizes = pd.DataFrame(
    [(name, L, d, gpt2_param_count(V, P, d, L)) for name, (V, P, d, L) in family.items()],
    columns=["model", "layers", "width", "parameters"],
).set_index("model")
sizes.style.format({"parameters": "{:,}"})
""")

nb.code("""
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 3))
ax.barh(sizes.index, sizes["parameters"], color=["#4c6ef5"] * 4 + ["#f76707"])
ax.set_xscale("log")
ax.set_xlabel("parameters (log scale)")
ax.invert_yaxis()
for y, value in enumerate(sizes["parameters"]):
    ax.text(value, y, f" {value / 1e6:,.1f}M", va="center")
ax.set_title("Model sizes")
plt.show()
""")

nb.md("""
## One forward pass: from text to next-token probabilities

A language model reads a sequence of **tokens** (pieces of text, notebook 02) and, at every position,
outputs a score (a *logit*) for each entry of its vocabulary: how likely that token is to come next.
A softmax turns the scores into probabilities. Here is the whole pipeline on one prompt.
""")

nb.code("""
from gpt2lab.widgets.tokens import show_tokens

prompt = "To be, or not to"
show_tokens(lm.tokenizer, prompt, view="text")
ids = lm.encode(prompt)  # shape (1, number of tokens), on the model's device
print("token ids:", ids.tolist())
""")

nb.code("""
with torch.no_grad():
    logits = lm.model(ids).logits  # (batch, positions, vocabulary)
print("logits shape:", tuple(logits.shape))

probs = torch.softmax(logits[0, -1], dim=-1)  # the prediction after the last token
top = torch.topk(probs, 10)
next_tokens = pd.DataFrame({
    "token": [repr(lm.decode([i])) for i in top.indices.tolist()],
    "probability": top.values.tolist(),
})
next_tokens
""")

nb.code("""
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(next_tokens["token"], next_tokens["probability"], color="#4c6ef5")
ax.set_ylabel("probability")
ax.set_title(f"What comes after {prompt!r}? (top 10 of {len(probs):,} tokens)")
plt.xticks(rotation=45)
plt.show()
print(f"the top 10 tokens hold {top.values.sum():.1%} of the probability")
""")

nb.md("""
**The model predicts tokens, not words.** A token can be a whole word with its leading space (`' be'`)
or a piece of one (`'o'`, which after `' to'` makes `' too'`): notebook 02 shows how a tokenizer cuts
text. So the distribution above is over pieces, and a piece ranked high may be the start of a longer
word rather than a rival to `' be'`. The cell below says which kind this model's first choice is, and
follows a piece to the word it makes by appending it and asking again.
""")

nb.code("""
def kind(token):
    return "a whole word" if token.startswith(" ") and token[1:].isalpha() else "a piece of a word"


first = lm.decode([top.indices[0].item()])
be_id = lm.tokenizer.encode(" be")[0]  # ' be' as the tokenizer writes it (one token in both vocabularies)
be_rank = int((probs > probs[be_id]).sum()) + 1
print(f"first choice {first!r} (p={top.values[0].item():.3f}) is {kind(first)}; "
      f"' be' has p={probs[be_id].item():.3f}, rank {be_rank}")
if kind(first) == "a piece of a word":
    word, context = prompt.split()[-1] + first, lm.encode(prompt + first)
    with torch.no_grad():
        after = torch.softmax(lm.model(context).logits[0, -1], dim=-1)
    print(f"appended, {first!r} turns 'to' into {word!r}; the model then expects "
          f"{lm.decode([after.argmax().item()])!r} (p={after.max().item():.2f})")
# the claim above: ' be', the word Hamlet says, is among the model's first three choices
assert be_rank <= 3, f"' be' has fallen to rank {be_rank}: revise the text"
""")

nb.md("""
The embedded model never read *Hamlet* (tinyshakespeare holds other plays), yet `' be'` is among its
first choices: *to be* is common in every play. How close a piece of a word comes to it depends on
how often the model saw *to* start a longer word (*too*, *touch*, *toward*) in its training text; a
model that has read *Hamlet* on the web, like GPT-2, has more reason to put `' be'` first.

## Generating text

Generating is that forward pass in a loop: pick a next token from the distribution, append it,
repeat. How to pick (always the top token? sample? only from the top few?) is the subject of
notebook 08; here we use `gpt2lab.generate` and sample from the 50 most likely tokens each time. A
fixed `seed` makes the samples reproducible.
""")

nb.code("""
samples = gpt2lab.generate(lm, "ROMEO:\\n", mode="sample-top-k", top_k=50, max_length=40,
                           num_return_sequences=3, seed=0)
for i, text in enumerate(samples):
    print(f"--- sample {i + 1}")
    print(text)
""")

nb.md("""
## How good is the model? Bits per character

To compare language models we ask how *surprised* each is by text it did not train on. The
surprise of one token is $-\\log_2 p(\\text{token} \\mid \\text{what came before})$ bits; summed over a
text and divided by its number of characters, that is **bits per character**. Lower is better, and
unlike per-token perplexity it does not depend on how the text was cut into tokens, so a letter
model, a word model and GPT-2 can be compared on it (notebook 01 does exactly that).

The course uses one fixed split of the tinyshakespeare corpus: the first 90 % for training, the
last 10 % held out. The embedded model trained on the first part; GPT-2 never saw this split as
such, though it has read plenty of Shakespeare on the web.
""")

nb.code("""
train, valid = gpt2lab.data.tinyshakespeare_split()
print(f"train: {len(train):,} characters, held out: {len(valid):,} characters")
heldout = valid[: gpt2lab.course.scaled(quick=5_000, full=len(valid))]
score = gpt2lab.score_text(lm, heldout)
print(f"scored {score.tokens:,} tokens of {score.chars:,} characters")
print(f"loss {score.loss:.3f} nats/token, perplexity {score.perplexity:.1f}, {score.bits_per_char:.3f} bits/char")

# for comparison: a counting model that predicts each character from the 5 before it (notebook 01)
baseline = gpt2lab.NGramLM(n=6, smoothing="kneser-ney").fit(train)
print(f"character 6-gram model on the same text: {baseline.bits_per_char(heldout):.3f} bits/char")
""")

nb.md("""
For scale: a model that knows nothing (each of the 65 different characters of the corpus equally
likely) needs $\\log_2 65 \\approx 6$ bits per character. The counting model in the last line is about the
best that notebook 01's n-gram models manage; where does the model you loaded stand against it?

## A map of the course

| notebook | what you do there |
|---|---|
| [01 N-gram language models](01_ngram_language_models.ipynb) | count, smooth, measure perplexity; the baseline every neural model must beat |
| [02 Tokens](02_tokens.ipynb) | byte-level BPE by hand, GPT-2's tokenizer, token and position embeddings |
| [03 Attention from scratch](03_attention_from_scratch.ipynb) | queries, keys and values; one GPT-2 block by hand, matching the real one |
| [04 Build and train a GPT](04_build_and_train_a_gpt.ipynb) | a GPT-2 as a plain PyTorch module; train a small one and compare it with the n-grams |
| [05 Looking at attention](05_looking_at_attention.ipynb) | attention maps; heads that look at the first token, the previous token, or copy |
| [06 Induction heads that form](06_induction_heads_form.ipynb) | train a two-layer toy and watch a previous-token head and an induction head appear |
| [07 Inside the residual stream](07_residual_stream.ipynb) | logit lens, direct logit attribution, activation patching: where a prediction is decided |
| [08 Decoding strategies](08_decoding.ipynb) | greedy, beam, temperature, top-k, top-p, repetition penalties, from scratch |
| [09 Experiments with generation](09_generation_experiments.ipynb) | prose and sonnets under different settings; parts of speech; repetition |
| [10 Which words matter](10_word_importance.ipynb) | perturbation-based importance, attribution baselines, attention vs importance |
| [11 Fine-tuning](11_finetuning.ipynb) | train on Shakespeare or your own CSV; checkpoints; before/after perplexity |
| [12 Serving](12_serving.ipynb) | a local JSON endpoint and a batch job |

And in code, `gpt2lab` gives you:
""")

nb.code("""
tour = {
    "gpt2lab.load / load_default": "load a model and tokenizer on the best device (this notebook)",
    "gpt2lab.data": "the course's texts: tinyshakespeare (one fixed split), the sonnets, GPT-2's tokenizer files",
    "gpt2lab.NGramLM": "count-based n-gram language models (notebook 01)",
    "gpt2lab.train_bpe": "train a GPT-2-style byte-level BPE tokenizer (notebook 02)",
    "gpt2lab.score_text": "loss, perplexity and bits per character on any text",
    "gpt2lab.generate": "generation with every decoding strategy (notebook 08)",
    "gpt2lab.capture_attention": "attention weights of every layer and head (notebook 05)",
    "gpt2lab.word_importance": "which words of a prompt matter for the output (notebook 10)",
    "gpt2lab.finetune": "fine-tune on your own text with checkpoints and resume (notebook 11)",
    "gpt2lab (command line)": "`gpt2lab generate`, `gpt2lab batch`, `gpt2lab serve`, `gpt2lab finetune`",
}
pd.DataFrame(tour.items(), columns=["name", "what it is for"]).style.hide(axis="index")
""")

nb.exercise(
    """
    Use the formula above to compute the number of parameters of the model you loaded from its
    configuration (`lm.config.vocab_size`, `.n_positions`, `.n_embd`, `.n_layer`) and check it
    against `lm.n_params`, which counts the real tensors. Then work out which share of the
    parameters are embeddings (token plus position), for your model and for the four GPT-2 sizes.
    How does the share change from GPT-2 small to GPT-2 XL, and why?
    """,
    """
    c = lm.config
    predicted = gpt2_param_count(c.vocab_size, c.n_positions, c.n_embd, c.n_layer)
    assert predicted == lm.n_params, (predicted, lm.n_params)
    print(f"formula: {predicted:,}  counted: {lm.n_params:,}  -> they agree")

    for name, (V, P, d, L) in family.items():
        share = (V * d + P * d) / gpt2_param_count(V, P, d, L)
        print(f"{name:>28}: {share:.1%} of the parameters are embeddings")
    # Blocks grow like L * d^2 but embeddings only like (V + P) * d, so the bigger the model the smaller the
    # embeddings' share: about 32% for GPT-2 small, about 5% for gpt2-xl. The embedded model is narrow, which
    # pushes its share up, but its vocabulary is small (print lm.config.vocab_size) instead of 50,257.
    """,
    title="count the parameters",
)

nb.exercise(
    """
    Write a function `top_next_tokens(lm, prompt, k=5)` that returns the `k` most likely next tokens
    after `prompt` with their probabilities. Try it on a few prompts, e.g. `"KING"` and
    `"Once upon a"`, and check that the probabilities over the whole vocabulary add up to 1.
    """,
    """
    def top_next_tokens(lm, prompt, k=5):
        with torch.no_grad():
            logits = lm.model(lm.encode(prompt)).logits[0, -1]
        probs = torch.softmax(logits.float(), dim=-1)
        assert abs(probs.sum().item() - 1) < 1e-4
        top = torch.topk(probs, k)
        return [(lm.decode([i]), round(p, 4)) for i, p in zip(top.indices.tolist(), top.values.tolist())]


    for p in ["KING", "Once upon a", "What light through yonder"]:
        print(f"{p!r:>28} -> {top_next_tokens(lm, p)}")
    """,
    title="the most likely next tokens",
)

nb.summary([
    ("`gpt2lab.load_default()` loads `$GPT2LAB_MODEL`, else GPT-2 from the Hub, else (offline) the embedded "
    "Shakespeare model, on the best device; it always says which."),
    ("`GPT2LAB_MODEL` picks the model and `GPT2LAB_SCALE=quick|full` how much work heavy cells do; no cell needs "
    "editing to move between a laptop and a GPU."),
    ("A GPT-2 is token embeddings + position embeddings + a stack of identical blocks; parameters grow like "
    "$L \\cdot 12d^2$, which the formula reproduces exactly."),
    ("A forward pass turns tokens into one probability distribution over the vocabulary per position; generation "
    "samples from it in a loop."),
    "Bits per character on held-out text is the yardstick used throughout the course.",
], outro="Next: **01 · N-gram language models**, the simplest language model there is, and the baseline to beat.")

if __name__ == "__main__":
    nb.write()
