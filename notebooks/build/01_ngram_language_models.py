"""Builds notebooks/01_ngram_language_models.ipynb (run: python notebooks/build/01_ngram_language_models.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "01_ngram_language_models.ipynb",
    "01 · N-gram language models",
    """
    A **language model** gives every text a probability. Before any neural network, the way to build
    one was to *count*: how often does `e` follow `th`? This notebook builds such counting models,
    learns how to measure them, and finds the wall they hit. GPT-2 is, among other things, a way
    over that wall, and the numbers here are the baseline every later notebook is compared with.
    """,
    [
        "write the probability of a text as a product of next-symbol probabilities (the chain rule)",
        "estimate those probabilities by counting n-grams, and explain why unseen n-grams break the estimate",
        "fix zeros with add-k and Kneser-Ney smoothing",
        "compute perplexity and bits per character on held-out text, by hand and with `gpt2lab.NGramLM`",
        "generate from n-gram models and explain the trade-off in n that neural language models escape",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()  # the neural model we compare with at the end
""")

nb.md("""
## The chain rule, and the n-gram shortcut

Any probability of a sequence $x_1 \\dots x_T$ (of characters, or of tokens) can be written one
symbol at a time:

$$p(x_1 \\dots x_T) = \\prod_{t=1}^{T} p(x_t \\mid x_1 \\dots x_{t-1})$$

That is exact, and it is what GPT-2 computes too: a distribution for the next symbol given
everything before it. An **n-gram model** makes one simplifying assumption: only the last $n-1$
symbols matter,

$$p(x_t \\mid x_1 \\dots x_{t-1}) \\approx p(x_t \\mid x_{t-n+1} \\dots x_{t-1}),$$

and it estimates that by counting in a training text:
$p(w \\mid h) = c(h\\,w) / c(h)$, where $c$ counts occurrences. We work on characters of the
tinyshakespeare corpus, with the course's fixed split: the first 90 % to count on, the last 10 % held out.
""")

nb.code("""
import numpy as np
import matplotlib.pyplot as plt

import transformers

# Tokenizing a whole corpus at once (token-level n-grams, scoring) makes transformers warn that the text is
# longer than the model's context; that is expected and handled, so only errors are shown.
transformers.logging.set_verbosity_error()
train, valid = gpt2lab.data.tinyshakespeare_split()
print(f"{len(train):,} training characters, {len(valid):,} held out, {len(set(train))} different characters")
print(train[:300])
""")

nb.md("""
## Counting: a bigram model by hand

A bigram model ($n = 2$) looks one character back. Counting all pairs takes a few lines; the picture
shows $p(\\text{next} \\mid \\text{previous})$ for the lower-case letters and the space.
""")

nb.code("""
from collections import Counter

pair_counts = Counter(zip(train, train[1:]))  # c(h w)
context_counts = Counter(train[:-1])  # c(h): how often h is followed by anything


def p_bigram(previous, next_char):
    \"\"\"Maximum-likelihood estimate p(next | previous) = c(previous next) / c(previous).\"\"\"
    return pair_counts[previous, next_char] / context_counts[previous]


for h, w in [("q", "u"), ("t", "h"), ("h", "e"), ("e", " "), ("x", "z")]:
    print(f"p({w!r} | {h!r}) = {p_bigram(h, w):.4f}")
""")

nb.code("""
letters = list(" abcdefghijklmnopqrstuvwxyz")
table = np.array([[p_bigram(h, w) for w in letters] for h in letters])

fig, ax = plt.subplots(figsize=(6.5, 6))
ax.imshow(table, cmap="Blues")
ax.set_xticks(range(len(letters)), ["␣" if c == " " else c for c in letters])
ax.set_yticks(range(len(letters)), ["␣" if c == " " else c for c in letters])
ax.set_xlabel("next character")
ax.set_ylabel("previous character")
ax.set_title("Bigram probabilities p(next | previous) in Shakespeare")
plt.show()
""")

nb.md("""
The rows are the distributions a bigram model samples from: after `q` almost surely `u`, after a
space almost any letter. (Each row sums to a bit less than 1, because upper-case letters and
punctuation are not drawn.)

## The trouble with zeros

Counting gives probability **zero** to anything not seen in training. One zero in a held-out text
makes its whole probability zero: the model is "infinitely surprised". And the longer the context, the
more held-out n-grams were never seen. Let us measure that: the fraction of held-out n-grams that
do not occur anywhere in the 1 million training characters.
""")

nb.code("""
alphabet = {ch: i for i, ch in enumerate(sorted(set(train) | set(valid)))}
train_codes = np.array([alphabet[ch] for ch in train], dtype=np.int64)
valid_codes = np.array([alphabet[ch] for ch in valid], dtype=np.int64)


def ngram_keys(codes, n):
    \"\"\"Every n-gram of a code sequence packed into one integer (base = alphabet size).\"\"\"
    keys = np.zeros(len(codes) - n + 1, dtype=np.int64)
    for j in range(n):
        keys = keys * len(alphabet) + codes[j: len(codes) - n + 1 + j]
    return keys


ns = range(1, 9)
unseen = [np.mean(~np.isin(ngram_keys(valid_codes, n), ngram_keys(train_codes, n))) for n in ns]
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(list(ns), [100 * u for u in unseen], "o-")
ax.set_xlabel("n")
ax.set_ylabel("% of held-out n-grams unseen")
ax.set_title("Longer contexts are rarer")
plt.show()
for n, u in zip(ns, unseen):
    print(f"n = {n:2d}: {u:6.1%} of held-out {n}-grams never occur in training")
""")

nb.md("""
## Smoothing: never say never

**Add-k smoothing** pretends every n-gram was seen $k$ extra times:

$$p(w \\mid h) = \\frac{c(h\\,w) + k}{c(h) + kV}$$

with $V$ the number of symbols. It is easy, but with long contexts almost every $c(h)$ is zero and the
model falls back to the uniform distribution $1/V$.

**Kneser-Ney smoothing** does better in two ways. It *interpolates*: it subtracts a small discount $D$
from every seen count and hands the freed probability to the model with one symbol less of context,
recursively down to single characters. And the lower-order models count not how often a symbol
occurs but in **how many different contexts** it occurs (its *continuation count*): a symbol that
only ever follows one context is a poor guess in a new one.

`gpt2lab.NGramLM` implements both with numpy (counting 1 million characters takes a fraction of a second).
First a check that it does what the formula says: a bigram add-1 model from our own counts against
`NGramLM` (whose vocabulary has one extra symbol, `⁇`, for characters never seen in training).
""")

nb.code("""
from gpt2lab import NGramLM

bigram = NGramLM(n=2, smoothing="add-k", k=1.0).fit(train)
V = len(bigram.vocab)  # the training characters plus the unknown-character symbol


def p_add_one(previous, next_char):
    return (pair_counts[previous, next_char] + 1) / (context_counts[previous] + V)


ours = np.array([p_add_one("t", ch) for ch in bigram.vocab])
theirs = bigram.next_distribution("t")
assert np.allclose(ours, theirs), "the two estimates disagree"
print(f"V = {V}; p(. | 't') by hand and from NGramLM agree; they sum to {theirs.sum():.6f}")
print("most likely after 't':", [bigram.vocab[i] for i in np.argsort(-theirs)[:5]])
""")

nb.md("""
## Measuring a language model: perplexity and bits per character

A good model gives held-out text a high probability. Averaged per symbol, in the log domain:

* **cross-entropy** $H = -\\frac{1}{T}\\sum_t \\log_2 p(x_t \\mid \\text{context})$ bits per symbol;
* **perplexity** $= 2^H$: the model is as uncertain as if it chose uniformly among that many symbols;
* **bits per character** = total bits / number of characters. For character models this is just $H$;
  for token models it converts to a unit that does not depend on the tokenizer, so character
  n-grams, token n-grams and GPT-2 can be compared.

Let us compute them by hand from the per-character log-probabilities and check against `NGramLM`.
""")

nb.code("""
import math

trigram = NGramLM(n=3, smoothing="kneser-ney").fit(train)
sentence = "To be, or not to be, that is the question."
logp = trigram.log_probs(sentence)  # natural log of p(x_t | previous 2 characters), per character
bits = -logp.sum() / math.log(2) / len(sentence)
ppl = math.exp(-logp.mean())
print(f"by hand:  {bits:.4f} bits/char, perplexity {ppl:.3f}")
print(f"NGramLM:  {trigram.bits_per_char(sentence):.4f} bits/char, perplexity {trigram.perplexity(sentence):.3f}")
assert math.isclose(bits, trigram.bits_per_char(sentence)) and math.isclose(ppl, trigram.perplexity(sentence))
assert math.isclose(2 ** bits, ppl)  # for a character model, perplexity = 2 ** (bits per character)
""")

nb.md("""
## How much context? A sweep over n

Now the central experiment: fit character models with $n = 1, 2, \\dots$ and measure bits per character
both on held-out text and on text the model was trained on. The dashed line at the bottom is the neural
model you loaded, scored on the same held-out text with `gpt2lab.score_text`.
""")

nb.code("""
from tqdm.auto import tqdm

heldout = valid[: gpt2lab.course.scaled(quick=20_000, full=len(valid))]
seen_text = train[:20_000]  # text the models were fitted on
max_n = gpt2lab.course.scaled(quick=8, full=10)  # n <= 10: 66 symbols ** n must fit in 64-bit keys
settings = [("kneser-ney", None), ("add-k", 1.0), ("add-k", 0.01)]
rows = []
for smoothing, k in tqdm(settings, desc="smoothing"):
    for n in range(1, max_n + 1):
        model = NGramLM(n=n, smoothing=smoothing, k=k or 1.0).fit(train)
        rows.append(dict(smoothing=smoothing if k is None else f"add-k, k={k:g}", n=n,
                         heldout=model.bits_per_char(heldout), trained_on=model.bits_per_char(seen_text)))

import pandas as pd

sweep = pd.DataFrame(rows)
neural = gpt2lab.score_text(lm, heldout)
print(f"{lm.name}: {neural.bits_per_char:.3f} bits/char on the same held-out text")
sweep.pivot(index="n", columns="smoothing", values="heldout").round(3)
""")

nb.code("""
fig, ax = plt.subplots(figsize=(7.5, 4.5))
for (name, group), colour in zip(sweep.groupby("smoothing", sort=False), ["#1c7ed6", "#e8590c", "#2f9e44"]):
    ax.plot(group["n"], group["heldout"], "o-", color=colour, label=f"{name}: held out")
    ax.plot(group["n"], group["trained_on"], ":", color=colour, label=f"{name}: training text")
ax.axhline(neural.bits_per_char, color="black", linestyle="--", label=f"{lm.name} (neural): held out")
ax.set_xlabel("n (the model sees n-1 characters of context)")
ax.set_ylabel("bits per character")
ax.set_ylim(0, 5)
ax.set_title("Character n-gram models of Shakespeare")
ax.legend(fontsize=8)
plt.show()
best = sweep.loc[sweep["heldout"].idxmin()]
print(f"best n-gram: {best['smoothing']}, n = {best['n']}, {best['heldout']:.3f} bits/char held out")
""")

nb.md("""
Read the picture from left to right:

* **More context helps, up to a point.** Held-out bits/char fall quickly up to $n \\approx 5$. After that,
  more and more held-out contexts were never seen in training (the earlier plot), so there is nothing
  to count and the extra context stops paying.
* **Add-k collapses** for long contexts: an unseen context gets the uniform distribution, 6 bits for
  every character. Kneser-Ney backs off to shorter contexts instead and levels out.
* **The gap between the dotted and the solid lines is over-fitting**: on its own training text a
  high-order model looks brilliant, because it has memorised long stretches of it.

A neural model does not count exact contexts; it maps every context to a vector, so similar contexts
share what was learned about them, and it can use hundreds of tokens of context at no extra sparsity.
Compare your model's dashed line with the best n-gram. (The embedded model learned from the same
training text as the n-grams; real GPT-2 learned from a much larger, more modern web corpus.)

## What n-gram models write

Sampling is the chain rule run forwards: draw a character from $p(\\cdot \\mid \\text{context})$,
append it, repeat. The same seed, different $n$:
""")

nb.code("""
for n in [1, 2, 3, 5, 7, 10]:
    model = NGramLM(n=n, smoothing="kneser-ney").fit(train)
    print(f"===== n = {n}")
    print(model.generate(200, seed=1))
""")

nb.md("""
Unigrams produce letter soup; by $n = 3$ there are word-like pieces, by $n = 5$ mostly real words, and
higher orders reproduce speaker names and whole phrases of the plays: they are increasingly **copying**
the training text (exercise 3 measures how much).

## Explorer: n, smoothing and samples

Move the sliders: the model is refitted on the training text and scored on the held-out text.
Try add-k with a large $n$ and watch both the number and the sample collapse; try Kneser-Ney with the
same $n$. With the *token* level the symbols are the loaded model's tokens instead of characters
(large token vocabularies allow only small $n$; the explorer says so).
""")

nb.code("""
from gpt2lab.widgets.ngram import ngram_explorer

ngram_explorer(train, heldout, tokenizer=lm.tokenizer, max_n=10, n=5)
""")

nb.md("""
**A task for the explorer.** With Kneser-Ney at the character level, move `n` from 1 to 10 and note the
held-out bits per character at each: at which `n` is it lowest, and how much worse is `n` = 10? Then
switch to add-k at that best `n`: how many bits per character does the cruder smoothing cost?
""")

nb.md("""
## Tokens instead of characters

The same counting works on tokens (notebook 02 explains them). A token is a few characters long,
so a token trigram sees more text than a character trigram. Bits per character keep the comparison fair.
""")

nb.code("""
for n in [2, 3]:
    token_model = NGramLM(n=n, smoothing="kneser-ney", level="token", tokenizer=lm.tokenizer).fit(train)
    print(f"token {n}-gram ({token_model.vocab_size:,} symbols): "
          f"{token_model.bits_per_char(heldout):.3f} bits/char held out")
print(token_model.generate(60, seed=1))
""")

nb.exercise(
    """
    Compute the perplexity of the sentence `"Now is the winter of our discontent"` under a character
    trigram Kneser-Ney model **using only `next_distribution`**: for every position, take the
    distribution given the characters before it, pick out the probability of the actual character,
    and combine. Check your result against `model.perplexity(...)`.
    """,
    """
    model = NGramLM(n=3, smoothing="kneser-ney").fit(train)
    text = "Now is the winter of our discontent"
    log_probs = []
    for t, ch in enumerate(text):
        dist = model.next_distribution(text[:t])  # only the last n-1 = 2 characters matter
        log_probs.append(math.log(dist[model.vocab.index(ch)]))
    by_hand = math.exp(-sum(log_probs) / len(text))
    print(f"by hand {by_hand:.4f}, NGramLM {model.perplexity(text):.4f}")
    assert math.isclose(by_hand, model.perplexity(text), rel_tol=1e-9)
    """,
    title="perplexity from next-character distributions",
)

nb.exercise(
    """
    How good can add-k get? For $n = 4$, try $k$ from $10^{-4}$ to $10$ and plot held-out bits/char
    against $k$. Which $k$ is best, and does the best add-k beat Kneser-Ney at $n = 4$?
    """,
    """
    ks = np.logspace(-4, 1, 6)
    bpc = [NGramLM(n=4, smoothing="add-k", k=k).fit(train).bits_per_char(heldout) for k in ks]
    kn = NGramLM(n=4, smoothing="kneser-ney").fit(train).bits_per_char(heldout)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.semilogx(ks, bpc, "o-", label="add-k")
    ax.axhline(kn, color="black", linestyle="--", label="Kneser-Ney")
    ax.set_xlabel("k")
    ax.set_ylabel("held-out bits/char")
    ax.legend()
    plt.show()
    print(f"best k = {ks[int(np.argmin(bpc))]:.4g}: {min(bpc):.3f} bits/char; Kneser-Ney: {kn:.3f}")
    """,
    title="tuning add-k",
)

nb.exercise(
    """
    How much of an n-gram sample is copied from the training text? Split a 300-character sample
    greedily into the longest pieces that occur verbatim in `train` (start at the beginning, extend a
    piece while it still occurs, then start the next piece) and report the average piece length for
    $n = 3, 5, 7, 10$. What does that tell you about high-order n-gram "creativity"?
    """,
    """
    def copied_pieces(sample, corpus):
        pieces, start = [], 0
        while start < len(sample):
            end = start + 1
            while end < len(sample) and sample[start:end + 1] in corpus:
                end += 1
            pieces.append(sample[start:end])
            start = end
        return pieces


    average = {}
    for n in [3, 5, 7, 10]:
        sample = NGramLM(n=n, smoothing="kneser-ney").fit(train).generate(300, seed=2)
        pieces = copied_pieces(sample, train)
        average[n] = np.mean([len(p) for p in pieces])
        print(f"n = {n:2d}: {len(pieces):3d} pieces, average {average[n]:5.1f} characters "
              f"({average[n] / n:.1f} x n), longest {max(pieces, key=len)!r}")
    # Answer, from the averages above. A piece longer than n characters was not chosen as a whole by the
    # model (it only ever looks n-1 characters back): it is a quotation that the sample happens to repeat.
    low, high = min(average), max(average)
    grows = average[high] > average[low]
    print(f"\\nthe average copied piece {'grows' if grows else 'does not grow'} from {average[low]:.1f} characters "
          f"at n = {low} to {average[high]:.1f} at n = {high}: higher orders "
          + ("copy longer verbatim stretches of the training text" if grows else "copy no longer stretches"))
    if average[high] / high > average[low] / low:
        print(f"relative to n it grows too ({average[low] / low:.1f} x n -> {average[high] / high:.1f} x n): the "
              "pieces outrun the model's own context, so the samples are quotations; a high-order n-gram "
              "model's 'creativity' is mostly choosing where to cut")
    else:
        print(f"relative to n it falls ({average[low] / low:.1f} x n -> {average[high] / high:.1f} x n): the pieces "
              "are about as long as the model's context reaches, no longer. The samples recombine verbatim pieces "
              "of about one context each, cut wherever Kneser-Ney backs off to a shorter context")
    """,
    title="copying",
)

nb.summary([
    ("A language model is the chain rule: one next-symbol distribution per position. N-gram models estimate it "
    "by counting, looking back only n-1 symbols."),
    ("Counts give unseen n-grams probability zero, and most long n-grams are unseen; smoothing (add-k, and much "
    "better, Kneser-Ney with back-off to shorter contexts) fixes the zeros."),
    ("Perplexity and bits per character measure surprise on held-out text; bits per character compare models "
    "with different symbols (characters, tokens)."),
    ("For character n-grams on Shakespeare the best held-out score comes around n = 5-7; longer contexts are too "
    "sparse to count, and the samples are stitched from longer verbatim pieces of the training text."),
    ("Neural language models share statistics between similar contexts and use long contexts without sparsity; "
    "the rest of the course looks at how GPT-2 does it."),
], outro="Next: **02 · Tokens**: what GPT-2 reads instead of characters.")

if __name__ == "__main__":
    nb.write()
