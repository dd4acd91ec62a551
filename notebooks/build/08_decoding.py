"""Builds notebooks/08_decoding.ipynb (run: python notebooks/build/08_decoding.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "08_decoding.ipynb",
    "08 · Decoding strategies: from a distribution to a text",
    """
    A language model does not write text. At each position it returns a probability for every token in
    its vocabulary, and *something else* must turn that stream of distributions into words: the
    **decoding strategy**. In this notebook you build each strategy yourself (greedy decoding, beam
    search, sampling with a temperature, top-k, top-p, the repetition penalty and n-gram blocking),
    check every one of them against what `transformers`' `generate` does, and then explore the
    settings interactively.
    """,
    [
        "read a model's next-token distribution and say what greedy, beam search and sampling do with it",
        "write the logit transforms (temperature, top-k, top-p, repetition penalty, n-gram blocking) and "
        "verify them against the `transformers` logits processors",
        "run a decoding loop with a KV cache, and measure why the cache matters",
        "follow beam search step by step: candidates, running beams, finished hypotheses",
        "choose `gpt2lab.generate` parameters per mode, and know which parameters a mode ignores",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()
""")

nb.code("""
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch

from gpt2lab import course
from gpt2lab.generation import decoding, params, transforms
from gpt2lab.generation import pipeline as generation

pd.set_option("display.precision", 4)
prompt = "ROMEO:\\nBut soft, what light through yonder window breaks?\\n"
print(repr(prompt), "->", len(lm.encode(prompt)[0]), "tokens for", lm.name)
""")

nb.md("""
## 1 · One step: the next-token distribution

Feed the prompt through the model and look at the last position: a score (logit) per vocabulary
token; the softmax turns the scores into probabilities. Everything in this notebook starts from this
distribution. `decoding.next_token_distribution` returns it after each stage of the pipeline; with no
transforms there is just the `model` stage.
""")

nb.code("""
view = decoding.next_token_distribution(lm, prompt)
p = view.final
entropy = float(-(p[p > 0] * p[p > 0].log2()).sum())
print(f"vocabulary {p.shape[0]} tokens; likeliest token holds {float(p.max()):.1%}; entropy {entropy:.2f} bits "
      f"(a uniform choice among {2 ** entropy:.0f} tokens would be as uncertain)")
view.table(10)
""")

nb.code("""
top = torch.topk(p, 25)
fig, ax = plt.subplots(figsize=(10, 3))
ax.bar(range(25), top.values.numpy())
ax.set_xticks(range(25))
ax.set_xticklabels([repr(lm.tokenizer.decode([i]))[1:-1] for i in top.indices.tolist()], rotation=70, fontsize=8)
ax.set_ylabel("probability")
ax.set_title("The 25 likeliest next tokens")
plt.show()
""")

nb.md("""
## 2 · Greedy decoding, from scratch

The simplest strategy: take the likeliest token, append it, repeat. `decoding.greedy` is that loop,
written out in `gpt2lab/generation/decoding.py` (`_token_loop`, shared with sampling). It feeds the prompt once,
then one token per step, and stops at `max_new_tokens` or at the end-of-text token.

With `record=True` it keeps, for every step, the top candidates and their probabilities. Below, the
first three steps, and then the check that matters: the same tokens as `model.generate` with
`do_sample=False`.
""")

nb.code("""
greedy = decoding.greedy(lm, prompt, 40, record=True)
print(repr(lm.tokenizer.decode(greedy.new_tokens[0])))  # repr: newlines show as \\n
for step in greedy.steps[:3]:
    display(step.table(lm.tokenizer).head(5))
""")

nb.code("""
ids = lm.encode(prompt)
reference = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False)
print("token-identical to model.generate:", torch.equal(greedy.sequences, reference))
""")

nb.md("""
Greedy text is *locally* optimal and globally dull: once a phrase is likely, repeating it often stays
likely, and greedy output falls into loops. GPT-2 famously repeats itself under greedy decoding; look at
the text above for the same effect in the model you loaded.

## 3 · Why the KV cache matters

At step $t$ the model needs keys and values for all $t$ earlier tokens. Without a cache it runs the
whole sequence through every layer again at every step: the embeddings, the Q/K/V projections, the
MLPs and the output projections of all $t$ positions, so step $t$ costs about $t$ units of that
per-token work and a text of $n$ tokens about $n^2/2$. With the **KV cache** the keys and values of
earlier positions are stored, and each step feeds only the newest token: one token's projections and
MLPs per step, a constant amount. What the cache does **not** save is attention itself: the new
token's query is still compared with all $t$ cached keys and averages $t$ cached values, so that part
of a step still grows with $t$ and the whole text still costs about $n^2/2$ of it. It is cheap per
position (a dot product of one head's width, against the projections' and MLP's matrix products of the
full width), so for the lengths here the per-token work the cache removes dominates. Same tokens
either way:
""")

nb.code("""
lengths = course.scaled(quick=[8, 24, 48, 96], full=[16, 64, 128, 256])
lengths = [n for n in lengths if len(ids[0]) + n <= lm.context_length]
with_cache, without = [], []
for n in lengths:
    a = decoding.greedy(lm, prompt, n)
    b = decoding.greedy(lm, prompt, n, use_cache=False)
    assert torch.equal(a.sequences, b.sequences)
    with_cache.append(a.seconds)
    without.append(b.seconds)
plt.figure(figsize=(5, 3))
plt.plot(lengths, with_cache, "o-", label="with KV cache")
plt.plot(lengths, without, "o-", label="without (recompute everything)")
plt.xlabel("new tokens")
plt.ylabel("seconds")
plt.legend()
plt.title("Greedy decoding time")
plt.show()
pd.DataFrame({"new tokens": lengths, "cache s": with_cache, "no cache s": without,
              "ratio": [b / a for a, b in zip(with_cache, without)]})
""")

nb.md("""
The gap widens with length: the uncached curve bends upwards, the cached one rises far more slowly
(its attention part still grows with the length, but for these lengths it is a small share of a step).
On a small model and short texts fixed per-step costs dominate, so the ratio starts small; it keeps
growing with the length.

## 4 · Beam search

Greedy commits to one token at a time. **Beam search** keeps the `num_beams` best partial texts
("beams"), scored by their total log-probability. At each step it scores every (beam, next token) pair,
keeps the best `2 × num_beams` candidates, lets candidates that end (end-of-text, or maximum length)
join a pool of **finished hypotheses** (scored by total log-probability divided by
length<sup>`length_penalty`</sup>), and continues with the best `num_beams` that did not end.

`record=True` keeps each step. At step 0 all beams are the same prompt, so only beam 0 expands:
""")

nb.code("""
beam = decoding.beam_search(lm, prompt, 24, num_beams=4, num_return_sequences=2, record=True)
display(beam.steps[0].table(lm.tokenizer))
display(beam.steps[1].table(lm.tokenizer))
""")

nb.code("""
last = beam.steps[-1]
print("finished hypotheses (score = total log p / length):")
for tokens, score in last.finished:
    print(f"  {score:8.3f}  {lm.tokenizer.decode(tokens)!r}")
reference = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, num_beams=4,
                              num_return_sequences=2, do_sample=False)
print("token-identical to model.generate:", torch.equal(beam.sequences, reference))
""")

nb.md("""
Beam search finds texts with a higher total probability than greedy, which is what you want for
translation and what you do *not* want for open-ended writing: the likeliest texts are bland and
repetitive (Holtzman et al., 2019, "The Curious Case of Neural Text Degeneration").

## 5 · Sampling and the temperature

Instead of taking the likeliest token, **draw** one from the distribution. Every run differs, and
unlikely tokens get their (small) chance. The **temperature** $T$ divides the logits before the
softmax: $T < 1$ sharpens the distribution towards greedy, $T > 1$ flattens it towards uniform.
""")

nb.code("""
fig, ax = plt.subplots(figsize=(10, 3))
order = torch.topk(view.stage(0), 15).indices
for k, T in enumerate([0.5, 1.0, 1.5]):
    tempered = decoding.next_token_distribution(lm, prompt, temperature=T).final
    ax.bar([i + 0.27 * (k - 1) for i in range(15)], tempered[order].numpy(), width=0.27, label=f"T = {T}")
ax.set_xticks(range(15))
ax.set_xticklabels([repr(lm.tokenizer.decode([i]))[1:-1] for i in order.tolist()], rotation=70, fontsize=8)
ax.legend()
ax.set_title("Temperature reshapes the same distribution")
plt.show()
for T in (0.5, 1.0, 1.5):
    out = decoding.sample(lm, prompt, 25, temperature=T, seed=0)
    print(f"T={T}:", repr(lm.tokenizer.decode(out.new_tokens[0])))
""")

nb.md("""
## 6 · Top-k and top-p: cutting off the unreliable tail

Most of the vocabulary gets a tiny probability each, but together the tail holds real mass, and one
draw from it can derail a text. Two cut-offs:

* **top-k** keeps the `k` likeliest tokens (a fixed *count*);
* **top-p** (nucleus sampling) keeps the smallest set of likeliest tokens whose probability reaches `p`
  (a fixed *mass*): few tokens when the model is sure, many when it is not.

The kept probabilities are renormalised and sampled. Compare how many tokens survive after contexts
where the model is more or less sure of the next token (sorted by the probability of its favourite):
""")

nb.code("""
contexts = ["To be, or not to be, that is the", "ROMEO:\\n", "I pray you,",
            "KING RICHARD III:\\nNow is the winter of our", "O Romeo, Romeo! wherefore art thou", "And"]
rows = []
for text in contexts:
    top_k_view = decoding.next_token_distribution(lm, text, top_k=40)
    top_p_view = decoding.next_token_distribution(lm, text, top_p=0.9)
    rows.append({"context": text, "top-1 prob": float(top_k_view.stage(0).max()),
                 "kept by top_k=40": top_k_view.kept(), "kept by top_p=0.9": top_p_view.kept()})
pd.DataFrame(rows).sort_values("top-1 prob", ascending=False)
""")

nb.md("""
top-k keeps 40 tokens everywhere; the nucleus shrinks where the model is sure and widens where it is
not (roughly: the top-1 probability is only one summary of how peaked a distribution is).
""")

nb.code("""
cut = decoding.next_token_distribution(lm, prompt, temperature=0.8, top_k=20, top_p=0.8)
cut.table(25).style.background_gradient(axis=None)
""")

nb.md("""
The pipeline applies the transforms in a fixed order, the order `transformers` uses: repetition
penalty, n-gram blocking, then temperature, top-k, top-p. So top-p measures its mass on the
distribution *after* temperature and top-k.

## 7 · Checking the transforms against `transformers`

Each transform in `gpt2lab.generation.transforms` is a few lines of plain tensor code. They must give exactly what
the `transformers` logits processors give; here on random logits with many ties and `-inf` entries:
""")

nb.code("""
from transformers.generation.logits_process import (NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

g = torch.Generator().manual_seed(0)
scores = torch.randint(-3, 4, (8, 50), generator=g).float()  # small integers: lots of ties
scores[scores == -3] = -float("inf")
history = torch.randint(0, 6, (8, 15), generator=g)
checks = {
    "temperature 0.7": (transforms.apply_temperature(scores, 0.7), TemperatureLogitsWarper(0.7)(history, scores)),
    "top-k 5": (transforms.top_k_filter(scores, 5), TopKLogitsWarper(5)(history, scores)),
    "top-p 0.9": (transforms.top_p_filter(scores, 0.9), TopPLogitsWarper(0.9)(history, scores)),
    "repetition 1.3": (transforms.penalize_repetition(scores, history, 1.3),
                       RepetitionPenaltyLogitsProcessor(1.3)(history, scores.clone())),
    "no repeated 2-gram": (transforms.block_repeated_ngrams(scores, history, 2),
                           NoRepeatNGramLogitsProcessor(2)(history, scores)),
}
pd.DataFrame({"identical": {name: torch.equal(a, b) for name, (a, b) in checks.items()}})
""")

nb.md("""
And the whole sampling loop: with the same seed, the from-scratch sampler draws from identical
distributions, so it draws the same tokens as `model.generate`:
""")

nb.code("""
ours = decoding.sample(lm, prompt, 30, temperature=0.7, top_p=0.92, num_return_sequences=3, seed=42)
with generation.seeded(42, lm.device):
    theirs = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=30, do_sample=True,
                               temperature=0.7, top_p=0.92, top_k=0, num_return_sequences=3)
print("same tokens:", torch.equal(ours.sequences, theirs))
for text in ours.texts:
    print("-", repr(text[len(prompt):]))
""")

nb.md("""
## 8 · Repetition penalty and n-gram blocking

Two transforms fight loops directly:

* the **repetition penalty** divides the logit of every token already in the text by the penalty. CTRL
  (Keskar et al. 2019, section 4.1), which introduced it, divides whatever the sign, so a *negative*
  logit divided by 1.3 moves towards 0 and the token becomes *more* likely. The sign-aware rule is
  Hugging Face's (transformers' `RepetitionPenaltyLogitsProcessor`), and `transforms.penalize_repetition`
  follows it: it divides positive logits and multiplies negative ones, so both move towards "less likely";
* **no-repeat n-gram blocking** forbids any token that would complete an n-gram already present.

Both also count the prompt. Greedy decoding is where loops are worst, so compare there:
""")

nb.code("""
def repeated_trigram_share(tokens):
    trigrams = list(zip(tokens, tokens[1:], tokens[2:]))
    return 1 - len(set(trigrams)) / max(1, len(trigrams))

rows = []
for label, kwargs in {"plain greedy": {}, "repetition_penalty=1.3": {"repetition_penalty": 1.3},
                      "no_repeat_ngram_size=2": {"no_repeat_ngram_size": 2}}.items():
    out = decoding.greedy(lm, prompt, 60, **kwargs)
    new = out.new_tokens[0].tolist()
    rows.append({"setting": label, "repeated 3-grams": repeated_trigram_share(new),
                 "text": lm.tokenizer.decode(new)[:90]})
pd.DataFrame(rows)
""")

nb.md("""
## 9 · The everyday interface: `gpt2lab.generate`

`gpt2lab.generate(lm, prompt, **params)` is a thin, validated layer over `model.generate`. Its
parameters are one definition (`gpt2lab.GenerationParams`) shared with the command line
(`gpt2lab generate`), the batch job and the HTTP endpoint (notebook 12). They follow the published GPT-2
model-package API: each **mode** uses the parameters of its row, with these defaults, and nothing else.
""")

nb.code("""
from IPython.display import Markdown

Markdown(params.mode_table_markdown())
""")

nb.md("""
A parameter you set yourself applies wherever it has a meaning: temperature, top_k and top_p in every
sampling mode, repetition_penalty and no_repeat_ngram_size in every mode. One without a meaning in the
chosen mode (a temperature for greedy, num_beams outside beam search) is ignored *and reported*, never
silently applied. Per mode and parameter: the default where the mode uses it, "if given" where it applies
only when you set it:
""")

nb.code("""
pd.DataFrame(params.mode_table()).set_index("mode")
""")

nb.code("""
import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    texts = gpt2lab.generate(lm, prompt, mode="greedy", temperature=0.3, max_length=20)
print(texts.ignored, "|", caught[0].message if caught else "")
# greedy with nothing else is transformers' greedy search
ids = lm.encode(prompt)
reference = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False)
same = texts[0] == prompt + lm.tokenizer.decode(reference[0, ids.shape[1]:], skip_special_tokens=True)
print("greedy == model.generate greedy:", same)
assert same
for mode, extra in {"sample-top-p": {"seed": 1}, "sample-top-p, T=0.8": {"temperature": 0.8, "seed": 1},
                    "sample-top-k": {"top_k": 20, "seed": 1}, "beam": {"num_beams": 4}}.items():
    out = gpt2lab.generate(lm, prompt, mode=mode.split(",")[0], max_length=20, num_return_sequences=2,
                           include_prefix=False, **extra)
    print(f"{mode:19s}", [t.replace("\\n", " / ") for t in out])
""")

nb.md("""
The same validation answers every bad input with a message naming the field, the value and what is
allowed:
""")

nb.code("""
for bad in [{"temperature": 0}, {"top_p": 1.5}, {"mode": "nucleus"}, {"tempreature": 0.9},
            {"mode": "beam", "num_beams": 2, "num_return_sequences": 3}, {"max_length": 5000}]:
    try:
        gpt2lab.generate(lm, prompt, **bad)
    except ValueError as err:
        print(f"{str(bad):50s} -> {err}")
""")

nb.md("""
## 10 · Explorer

Type a prompt, pick a mode and move the sliders. The table lists the likeliest next tokens with their
probability under the model and after the mode's transforms (and whether they survive the cut-offs);
the chart draws the cut-offs; the continuations below are generated live with the current settings and
a fixed seed, so what changes when you move a slider is the effect of that slider, not new luck.

**A task for the explorer.** In `sample-top-p` mode, lower `top_p` from 0.92 step by step: find the
lowest `top_p` at which more than one next token still survives the cut-off after `ROMEO:\\n`, and
read how the continuations change once only one survives (it is then greedy decoding). Then pick
`sample` and raise the temperature to 1.5: how many tokens does the same `top_p` keep now?
""")

nb.code("""
gpt2lab.widgets.decoding.decoding_explorer(lm, prompt="ROMEO:\\n")
""")

nb.exercise("""
Temperature and top-p interact: top-p measures its mass *after* the temperature. For the prompt above,
count how many tokens survive `top_p=0.9` at temperatures 0.5, 1.0 and 1.5, and compare with `top_k=40`
at the same temperatures. Which cut-off's size depends on the temperature, and why?
""", solution="""
rows = []
for T in (0.5, 1.0, 1.5):
    rows.append({"temperature": T,
                 "kept by top_p=0.9": decoding.next_token_distribution(lm, prompt, temperature=T, top_p=0.9).kept(),
                 "kept by top_k=40": decoding.next_token_distribution(lm, prompt, temperature=T, top_k=40).kept()})
print(pd.DataFrame(rows))
# top-k keeps a count, and temperature never changes the order of tokens: always 40.
# top-p keeps a mass: a hotter (flatter) distribution needs more tokens to reach 90%.
""", title="Temperature and the nucleus")

nb.exercise("""
**min-p sampling** keeps the tokens whose probability is at least `min_p` times the probability of the
likeliest token. Write it as a logit transform `min_p_filter(scores, min_p)` in the style of
`transforms.top_k_filter`, and check it against `transformers`' `MinPLogitsWarper` on random logits.
Then count how many tokens it keeps for the contexts of section 6 with `min_p=0.05`.
""", solution="""
from transformers.generation.logits_process import MinPLogitsWarper

def min_p_filter(scores, min_p, min_tokens_to_keep=1):
    probs = torch.softmax(scores, dim=-1)
    threshold = min_p * probs.max(dim=-1, keepdim=True).values
    drop = probs < threshold
    # never drop the likeliest min_tokens_to_keep tokens
    keep_top = torch.topk(probs, min_tokens_to_keep, dim=-1).indices
    drop = drop.scatter(-1, keep_top, False)
    return scores.masked_fill(drop, -float("inf"))

logits = torch.randn(6, 100, generator=torch.Generator().manual_seed(3)) * 3
for m in (0.01, 0.1, 0.5):
    assert torch.equal(min_p_filter(logits, m), MinPLogitsWarper(m)(None, logits.clone())), m
print("identical to MinPLogitsWarper")
for text in contexts:
    logits_, history_ = decoding.next_token_logits(lm, text)
    print(f"{text!r:40s} keeps {int(torch.isfinite(min_p_filter(logits_, 0.05)).sum())} tokens")
""", title="min-p as a logit transform")

nb.md("""
## 11 · A KV cache by hand

*(This section builds on the from-scratch GPT of the "build and train a GPT" lesson.)* Section 3 timed
the package's decoder with and without its cache. Here is the cache itself, in about twenty lines, on
top of `gpt2lab.model.GPT` with the loaded model's weights copied in. A block's keys and values for a
token never change once computed (the causal mask hides everything after it), so each layer keeps them,
and a new token only computes its own query, key and value and attends over the kept ones.
""")

nb.code("""
from gpt2lab.families import model_type
from gpt2lab.model import from_gpt2


def forward_with_cache(gpt, new_ids, cache=None):
    \"\"\"Logits of the last position for new_ids (1, t_new) following the tokens held in cache; returns
    (logits, cache), the cache being one (keys, values) pair per layer, each (1, heads, tokens, head_dim).\"\"\"
    past = 0 if cache is None else cache[0][0].shape[-2]
    positions = torch.arange(past, past + new_ids.shape[-1], device=new_ids.device)
    x = gpt.token_embedding(new_ids) + gpt.position_embedding(positions)
    kept = []
    for layer, block in enumerate(gpt.blocks):
        attn = block.attn
        q, k, v = (attn.split_heads(t) for t in attn.qkv(block.ln_1(x)).split(x.shape[-1], dim=-1))
        if cache is not None:  # the earlier tokens' keys and values, computed once
            k, v = torch.cat([cache[layer][0], k], dim=-2), torch.cat([cache[layer][1], v], dim=-2)
        kept.append((k, v))
        x = x + attn.out(attn.merge_heads(attn.attend(q, k, v)[0]))
        x = x + block.mlp(block.ln_2(x))
    return gpt.lm_head(gpt.ln_f(x))[:, -1], kept


@torch.no_grad()
def greedy_by_hand(gpt, ids, n_new, use_cache):
    \"\"\"Greedy decoding; returns the ids and the seconds each new token took.\"\"\"
    times, cache, logits = [], None, None
    for _ in range(n_new):
        start = time.perf_counter()
        if use_cache:
            logits, cache = forward_with_cache(gpt, ids if cache is None else ids[:, -1:], cache)
        else:
            logits = gpt(ids).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        if ids.is_cuda:
            torch.cuda.synchronize()  # a GPU runs asynchronously: wait for the token before reading the clock
        times.append(time.perf_counter() - start)
    return ids, times
""")

nb.code("""
if model_type(lm) == "gpt2":
    gpt = from_gpt2(lm)
    start_ids = lm.encode(prompt)
    n_new = min(course.scaled(quick=80, full=400), gpt.config.context_length - start_ids.shape[1])
    cached, cached_times = greedy_by_hand(gpt, start_ids, n_new, use_cache=True)
    uncached, uncached_times = greedy_by_hand(gpt, start_ids, n_new, use_cache=False)
    assert torch.equal(cached, uncached)  # token-identical: the cache changes the cost, not the result
    print(f"{n_new} new tokens, identical with and without the cache; total {sum(cached_times):.2f} s with it, "
          f"{sum(uncached_times):.2f} s without")
    lengths = range(start_ids.shape[1], start_ids.shape[1] + n_new)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(lengths, [1000 * t for t in uncached_times], ".", label="no cache: the whole text again")
    ax.plot(lengths, [1000 * t for t in cached_times], ".", label="cache: one new token")
    ax.set_xlabel("tokens in the text so far")
    ax.set_ylabel("ms per new token")
    ax.set_yscale("log")
    ax.legend()
    plt.show()
    half = n_new // 2
    late_ratio = (sum(uncached_times[half:]) / sum(cached_times[half:]))
    print(f"over the second half of the run the cache makes each token {late_ratio:.1f}x cheaper")
    assert late_ratio > 1
else:
    print(f"{lm.name} is not a GPT-2-family model; the from-scratch GPT copies GPT-2 models only, so this "
          "section is skipped")
""")

nb.md("""
With the cache a new token costs one token's projections and MLP, plus attention over the kept keys: that
last part still grows with the text, and so does the memory, 2 × layers × tokens × d_model numbers. Without
the cache every step recomputes the whole text, so its cost grows with the length from the first token on.
""")

nb.summary([
    "A language model gives a distribution over the next token; the decoding strategy turns the sequence of "
    "distributions into text.",
    "Greedy takes the argmax and loops; beam search keeps the `num_beams` best partial texts by total "
    "log-probability, with a pool of finished hypotheses and a length penalty; both favour likely, bland text.",
    "Sampling draws from the distribution; temperature reshapes it; top-k keeps a fixed count of tokens, top-p a "
    "fixed probability mass, so the nucleus adapts to how sure the model is.",
    "The repetition penalty and n-gram blocking act on the scores before sampling and directly fight loops.",
    "Each transform in `gpt2lab.generation.transforms` equals the corresponding `transformers` processor; the greedy and beam "
    "loops are token-identical to `model.generate`, and with the same seed so is sampling.",
    ("The KV cache stores earlier keys and values, so each step runs one token through the projections and "
     "MLPs instead of the whole text; attention over the cache still grows with the length."),
    "`gpt2lab.generate` validates its parameters, reports the ones a mode ignores, and batches prompts into one "
    "call; the same parameters drive the CLI, the batch job and the HTTP endpoint.",
], outro="""
Next, notebook 09 uses these settings the way a writer would, and measures what each does to the text.
""")

if __name__ == "__main__":
    nb.write()
