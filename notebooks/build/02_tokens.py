"""Builds notebooks/02_tokens.ipynb (run: python notebooks/build/02_tokens.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "02_tokens.ipynb",
    "02 · Tokens: byte-level BPE, GPT-2's tokenizer and embeddings",
    """
    GPT-2 does not read characters and it does not read words. It reads **tokens**: pieces of text
    learned from data by *byte-pair encoding* (BPE). In this notebook you build a BPE trainer in
    thirty lines, check it against the real library, train one on Shakespeare, take GPT-2's own
    tokenizer apart, and finally look at what the model does with a token: it looks up a vector for
    it, and adds a vector for its position.
    """,
    [
        "explain why GPT-2 reads sub-word tokens rather than characters or words",
        "turn text into UTF-8 bytes and into GPT-2's printable byte alphabet (`Ġ` = space, `Ċ` = newline)",
        ("train a byte-level BPE by hand on a toy text, and check it merge for merge against the `tokenizers` "
        "library"),
        "use GPT-2's real tokenizer and predict how it splits spaces, capitals, numbers and other scripts",
        "find a token's nearest neighbours in the embedding table, and read a map of the position embeddings",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()
""")

nb.md("""
## Why tokens?

A model has to cut text into symbols from a fixed vocabulary. Two obvious choices both hurt:

* **characters**: a tiny vocabulary, but long sequences, and the model must learn spelling before meaning;
  attention cost grows with the square of the length;
* **words**: short sequences, but the vocabulary is huge and still misses every new name, typo or number.

**Byte-pair encoding** sits in between. Start from single symbols and repeatedly merge the most
frequent adjacent pair into a new symbol, until the vocabulary has the size you want. Frequent words
end up as one token, rare words as a few pieces, and nothing is ever unknown. GPT-2 starts from
**bytes**, so it can encode any text in any script.

## Step 1: bytes, shown as printable characters

UTF-8 writes every character as 1 to 4 bytes. GPT-2's tokenizer works on those 256 byte values, but
shows each as a printable character so that vocabulary files stay readable: printable bytes stand for
themselves, the others (space, newline, control bytes, ...) are moved to characters from 256 upwards.
That is where the odd `Ġ` (a space) and `Ċ` (a newline) in GPT-2's vocabulary come from.
""")

nb.code("""
from gpt2lab.basics.bpe import byte_to_char, readable_token

TO_CHAR = byte_to_char()  # 256 byte values -> printable stand-ins
text = "A café,\\tnaïve 👋\\n"
raw = text.encode("utf-8")
print(f"{len(text)} characters -> {len(raw)} bytes: {list(raw)}")
print("as GPT-2 shows them:", "".join(TO_CHAR[b] for b in raw))
for byte in [ord(" "), ord("\\n"), ord("\\t"), ord("A")]:
    print(f"byte {byte:3d} {chr(byte)!r:>5} is shown as {TO_CHAR[byte]!r}")
""")

nb.md("""
## Step 2: cut the text into words first

BPE never merges across word boundaries: GPT-2 first splits text with a regular expression into
words with the space *before* them attached (`" cat"`), runs of digits, runs of punctuation,
common English contractions (`'s`, `'t`, `'ll`, ...) and whitespace. The real pattern uses Unicode
letter and number classes; for our English examples this ASCII version behaves the same.
""")

nb.code("""
import re

PRETOKENIZE = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+| ?[0-9]+| ?[^\\sA-Za-z0-9]+|\\s+(?!\\S)|\\s+")
print(PRETOKENIZE.findall("Hello world! It's 2024, isn't it?\\n\\n  Indented."))
""")

nb.md("""
## Step 3: learn merges

The training loop is the whole algorithm:

1. count every adjacent pair of symbols inside the words (each word weighted by how often it occurs);
2. merge the most frequent pair everywhere into one new symbol, and record the merge;
3. repeat.

When two pairs are equally frequent we take the one made of older symbols (the way the Rust
`tokenizers` library does), so that we can compare with it merge for merge.
""")

nb.code("""
from collections import Counter


def merge_pair(symbols, pair):
    \"\"\"Replace every occurrence of the adjacent pair in a list of symbols by the merged symbol.\"\"\"
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def train_toy_bpe(text, num_merges, min_frequency=2):
    \"\"\"Learn up to ``num_merges`` byte-level BPE merges; returns [(pair, count), ...] in order.\"\"\"
    words = Counter(PRETOKENIZE.findall(text))
    splits = {word: [TO_CHAR[b] for b in word.encode("utf-8")] for word in words}
    age = {symbol: i for i, symbol in enumerate(sorted(TO_CHAR.values()))}  # for breaking ties
    merges = []
    for _ in range(num_merges):
        pair_counts = Counter()
        for word, count in words.items():
            symbols = splits[word]
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += count
        if not pair_counts:
            break
        best = max(pair_counts, key=lambda p: (pair_counts[p], -age[p[0]], -age[p[1]]))
        if pair_counts[best] < min_frequency:
            break
        merges.append((best, pair_counts[best]))
        age[best[0] + best[1]] = len(age)
        splits = {word: merge_pair(symbols, best) for word, symbols in splits.items()}
    return merges


toy = "low lower lowest, newer newest, wider widest; the lowest of the low and the newest of the new"
toy_merges = train_toy_bpe(toy, 12)

import pandas as pd

pd.DataFrame([(i + 1, f"{a} + {b}", a + b, repr(readable_token(a + b)), count)
              for i, ((a, b), count) in enumerate(toy_merges)],
             columns=["merge", "pair", "new token", "reads as", "count"]).set_index("merge")
""")

nb.md("""
## Step 4: encode new text with the merges

To tokenize, split into words and bytes as before, then apply the learned merges **in the order they
were learned**: repeatedly find the adjacent pair with the earliest merge and merge it, until no
learned pair is left.
""")

nb.code("""
def toy_encode(text, merges):
    \"\"\"Tokenize with a list of merges (pairs), earliest merge first, as GPT-2 does.\"\"\"
    rank = {pair: r for r, pair in enumerate(merges)}
    tokens = []
    for word in PRETOKENIZE.findall(text):
        symbols = [TO_CHAR[b] for b in word.encode("utf-8")]
        while True:
            candidates = [(rank[p], p) for p in zip(symbols, symbols[1:]) if p in rank]
            if not candidates:
                break
            symbols = merge_pair(symbols, min(candidates)[1])
        tokens.extend(symbols)
    return tokens


toy_pairs = [pair for pair, _ in toy_merges]
for sample in ["the lowest newer", "the slowest flower", "lowly"]:
    print(f"{sample!r:>22} -> {toy_encode(sample, toy_pairs)}")
""")

nb.md("""
## Check: the same merges as the library, the same tokens as GPT-2

Two known answers tell us the thirty lines above are the real algorithm:

1. `gpt2lab.train_bpe` (the `tokenizers` library, written in Rust) learns **exactly the same merges**,
   in the same order, on the toy text and on a slice of Shakespeare;
2. our `toy_encode`, given **GPT-2's own 50,000 merges**, produces exactly GPT-2's tokens.
""")

nb.code("""
import json

import transformers

# Tokenizing a whole corpus at once makes transformers warn that the text is longer than the model's
# context; that is expected here (nothing is fed to a model), so only errors are shown.
transformers.logging.set_verbosity_error()
train, valid = gpt2lab.data.tinyshakespeare_split()


def library_merges(text, num_merges):
    tokenizer = gpt2lab.train_bpe(text, vocab_size=256 + 1 + num_merges)  # bytes + <|endoftext|> + merges
    return [tuple(pair) for pair in json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]]


slice_chars, slice_merges = gpt2lab.course.scaled(quick=(20_000, 300), full=(100_000, 600))
for name, text_, k in [("toy text", toy, 12), (f"first {slice_chars:,} characters of Shakespeare", train[:slice_chars],
                                                 slice_merges)]:
    ours = [pair for pair, _ in train_toy_bpe(text_, k)]
    theirs = library_merges(text_, k)
    assert ours == theirs, f"{name}: the merges differ"
    print(f"{name}: all {len(ours)} merges identical to the library's")
""")

nb.code("""
gpt2_tokenizer = gpt2lab.data.gpt2_tokenizer()  # GPT-2's real tokenizer (50,257 tokens)
lines = (gpt2lab.data.gpt2_tokenizer_dir() / "merges.txt").read_text(encoding="utf-8").splitlines()
gpt2_merges = [tuple(line.split(" ")) for line in lines[1:] if line]  # first line is a version header
print(f"GPT-2 has {len(gpt2_merges):,} merges; the first ones: {gpt2_merges[:8]}")

for sentence in ["To be, or not to be: that is the question.",
                 "Hello world! It's 2024, and GPT-2's tokenizer isn't magic.\\n\\n  Indented   text."]:
    ours = toy_encode(sentence, gpt2_merges)
    theirs = gpt2_tokenizer.convert_ids_to_tokens(gpt2_tokenizer(sentence)["input_ids"])
    assert ours == theirs
    print(ours)
""")

nb.md("""
## A BPE for Shakespeare, and how big the vocabulary should be

`gpt2lab.train_bpe` trains the same kind of tokenizer on all of tinyshakespeare in about a second.
The bigger the vocabulary, the more characters one token covers, so sequences get shorter (the model
sees more text in its context window) but the embedding table gets bigger and rare tokens get
fewer training examples. GPT-2 chose 50,257; the embedded model, trained on one small corpus, 384.
""")

nb.code("""
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

sizes = gpt2lab.course.scaled(quick=[300, 1000, 4096], full=[300, 500, 1000, 2000, 4096, 8192, 16384])
shakespeare_bpe = {}
for size in tqdm(sizes, desc="training BPEs"):
    shakespeare_bpe[size] = gpt2lab.train_bpe(train, vocab_size=size)


def chars_per_token(tokenizer, text):
    return len(text) / len(tokenizer(text)["input_ids"])


fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.plot(sizes, [chars_per_token(t, valid) for t in shakespeare_bpe.values()], "o-",
        label="BPE trained on Shakespeare")
ax.plot([len(gpt2_tokenizer)], [chars_per_token(gpt2_tokenizer, valid)], "s", color="#e8590c",
        label="GPT-2's tokenizer (trained on web text)")
ax.plot([len(lm.tokenizer)], [chars_per_token(lm.tokenizer, valid)], "*", markersize=12, color="black",
        label=f"the loaded model's tokenizer ({lm.name})")
ax.set_xscale("log")
ax.set_xlabel("vocabulary size")
ax.set_ylabel("characters per token (held out)")
ax.legend(fontsize=8)
plt.show()

biggest = shakespeare_bpe[sizes[-1]]
longest = sorted(biggest.get_vocab(), key=lambda t: -len(readable_token(t)))[:15]
print("longest tokens of the", sizes[-1], "token BPE:", [readable_token(t) for t in longest])
""")

nb.md("""
## GPT-2's tokenizer up close

Some habits of GPT-2's tokenizer worth knowing, because they show up in every later notebook:

* a word **with** a leading space and the same word **without** are different tokens (`"Ġthe"` vs `"the"`),
  and so are capitalised variants;
* common words are one token, rare words several pieces;
* numbers are cut into irregular chunks of digits, which is one reason GPT-2 is bad at arithmetic;
* runs of spaces and newlines have tokens of their own (`"ĊĊ"` is a blank line);
* text in other scripts falls apart into many byte-level pieces.
""")

nb.code("""
from gpt2lab.widgets.tokens import show_tokens

for example in ["the The  the THE theatre", "unbelievably antidisestablishmentarianism",
                "1234567 + 89 = 1234656", "def f(x):\\n    return x\\n\\n",
                "Ça va? Привет! 日本語 👋"]:
    show_tokens(gpt2_tokenizer, example, view="markers")
""")

nb.code("""
for word in ["the", " the", " The", "The", " THE"]:
    ids = gpt2_tokenizer(word)["input_ids"]
    print(f"{word!r:>8} -> ids {ids} -> {gpt2_tokenizer.convert_ids_to_tokens(ids)}")
""")

nb.md("""
## Explorer: compare tokenizers

Type any text and switch between GPT-2's tokenizer, the loaded model's tokenizer and the small
Shakespeare BPE you trained above. *markers* shows vocabulary entries as stored (`Ġ`, `Ċ`);
*text* shows what each token decodes to (`·` is a space, `↵` a newline).

**A task for the explorer.** Find a word of four or more letters that is one token for GPT-2 but
several for the loaded model, and one that is several tokens for both. Then type the same word with a
capital letter and without its leading space: for which tokenizer does it stay one token?
""")

nb.code("""
from gpt2lab.widgets.tokens import tokenizer_explorer

tokenizer_explorer({
    "GPT-2": gpt2_tokenizer,
    f"loaded model ({lm.name})": lm.tokenizer,
    f"Shakespeare BPE, {sizes[0]} tokens": shakespeare_bpe[sizes[0]],
}, text="O Romeo, Romeo! wherefore art thou Romeo?\\nDeny thy father and refuse thy name.")
""")

nb.md("""
## From token to vector: the token embedding

The first thing the model does with a token id is look up one row of its **token embedding**
matrix (`wte`, vocabulary × width). Everything the model knows about a token in isolation lives in
that vector. Tokens used in similar ways end up with similar vectors; we measure similarity by the
cosine of the angle between them.
""")

nb.code("""
import torch

wte = lm.model.get_input_embeddings().weight.detach().float()  # (vocabulary, width)
unit = torch.nn.functional.normalize(wte, dim=-1)
print("token embedding matrix:", tuple(wte.shape))


def nearest_tokens(word, k=8):
    \"\"\"The k tokens whose embeddings have the highest cosine similarity with ``word``'s (one token).\"\"\"
    ids = lm.tokenizer(word)["input_ids"]
    if len(ids) != 1:
        return f"{word!r} is {len(ids)} tokens for this tokenizer, not one"
    sims = unit @ unit[ids[0]]
    sims[ids[0]] = -1  # leave out the word itself
    top = torch.topk(sims, k)
    return ", ".join(f"{lm.decode([i])!r} {s:.2f}" for i, s in zip(top.indices.tolist(), top.values.tolist()))


# probes must be one token each: a word cut into pieces has no single row of the table to compare.
# Content words first; a small vocabulary (the embedded model's 384 tokens) holds few whole words,
# so the list falls back on the common short words it does hold.
candidates = [" king", " love", " night", " sword", " three", " thou", " lord", " good", " thy", " you", " him",
              " the", " and", " with", " not", " that"]
probes = [w for w in candidates if len(lm.tokenizer(w)["input_ids"]) == 1][:6]
skipped = [w for w in candidates[:candidates.index(probes[-1])] if w not in probes]
print(f"probes (one token each): {probes}; skipped (several tokens here): {skipped or 'none'}\\n")
assert len(probes) >= 4, "fewer than four single-token probe words: extend the candidate list"
for word in probes:
    print(f"{word!r:>9}: {nearest_tokens(word)}")
""")

nb.md("""
Every probe is a single token, so each line compares one row of the table with all the others. With
GPT-2's 50,257 tokens the content words (`" king"`, `" sword"`) are single tokens; with the embedded
model's 384 only a handful of short, frequent words are, and most of their neighbours are other short
function words and pieces. Look at which neighbours are used the way the probe is used (pronouns next
to pronouns, `" thou"` next to `" thy"`), and which share only spelling.

## Where is the token? Position embeddings

Attention (notebook 03) compares every token with every other by content alone: move the words around
and each token's scores with the others stay the same. The causal mask does leak *some* order (a token
sees only those before it, so the first token attends only to itself, and how many tokens a position
averages over tells it roughly where it is), but that is a weak signal: it says how far along a token
is, not which word came just before it, so "dog bites man" and "man bites dog" would still look alike at
the word "bites". GPT-2 therefore adds a second learned vector per **position** (`wpe`, context length ×
width). The input of the first transformer block is simply

$$h_0[t] = \\text{wte}[\\text{token}_t] + \\text{wpe}[t].$$

Let us check that against the model itself.
""")

nb.code("""
prompt_ids = lm.encode("Shall I compare thee to a summer's day?")
positions = torch.arange(prompt_ids.shape[1], device=lm.device)
transformer = lm.model.transformer
with torch.no_grad():
    by_hand = transformer.wte(prompt_ids) + transformer.wpe(positions)
    from_model = lm.model(prompt_ids, output_hidden_states=True).hidden_states[0]
print("max difference:", (by_hand - from_model).abs().max().item())
assert torch.allclose(by_hand, from_model, atol=1e-5)
""")

nb.md("""
How are the position vectors arranged? The map below shows the cosine similarity between every pair
of positions. In GPT-2 you see a bright band along the diagonal: each position is most similar to its
neighbours, similarity fades smoothly with distance, and individual dimensions trace slow waves across
the positions (the right-hand plot). Nobody told the model to do that: it learned that nearby
positions should look alike. Compare with the model you loaded.
""")

nb.code("""
wpe = transformer.wpe.weight.detach().float()  # (context length, width)
unit_pos = torch.nn.functional.normalize(wpe, dim=-1)
similarity = (unit_pos @ unit_pos.T).cpu().numpy()

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
image = left.imshow(similarity, cmap="RdBu_r", vmin=-1, vmax=1)
left.set_xlabel("position")
left.set_ylabel("position")
left.set_title(f"cosine similarity of position embeddings ({lm.name})")
fig.colorbar(image, ax=left, fraction=0.046)
top_dims = wpe.var(dim=0).argsort(descending=True)[:4]  # the dimensions that vary most across positions
for d in top_dims.tolist():
    right.plot(wpe[:, d].cpu().numpy(), label=f"dimension {d}")
right.set_xlabel("position")
right.set_ylabel("value")
right.set_title("the most varying dimensions of the position embedding")
right.legend(fontsize=8)
plt.tight_layout()
plt.show()

for distance in [1, 4, 16, 64]:
    print(f"average similarity of positions {distance:>2} apart: {similarity.diagonal(distance).mean():.2f}")
""")

nb.exercise(
    """
    With `train_toy_bpe`, train merges on the first 20,000 characters of Shakespeare (`train[:20_000]`)
    and find out at which merge `" the"` (`"Ġthe"`) becomes a single token, and at which merge the
    first complete word of five or more letters (with its leading space) appears.
    """,
    """
    merges = train_toy_bpe(train[:20_000], 300)
    new_tokens = [a + b for (a, b), _ in merges]
    print("'Ġthe' is merge number", new_tokens.index("Ġthe") + 1)
    words = PRETOKENIZE.findall(train[:20_000])
    for i, token in enumerate(new_tokens):
        readable = readable_token(token)
        if readable.startswith(" ") and len(readable) >= 6 and readable in words:
            print(f"first word of 5+ letters: {readable!r} at merge {i + 1}")
            break
    """,
    title="when does a word become a token?",
)

nb.exercise(
    """
    How does GPT-2's tokenizer cut numbers? For every number from 0 to 9,999 written with a leading
    space (`" 42"`), count its tokens. Which share of the numbers below 1,000 are a single token?
    Plot the number of tokens against the number.
    """,
    """
    counts = [len(gpt2_tokenizer(f" {n}")["input_ids"]) for n in range(10_000)]
    print(f"single tokens below 1,000: {sum(c == 1 for c in counts[:1000]) / 1000:.0%}")
    print(f"single tokens from 1,000 to 9,999: {sum(c == 1 for c in counts[1000:]) / 9000:.1%}")
    fig, ax = plt.subplots(figsize=(8, 2.5))
    ax.plot(range(10_000), counts, ",")
    ax.set_xlabel("number")
    ax.set_ylabel("tokens")
    plt.show()
    """,
    title="numbers",
)

nb.exercise(
    """
    Does the loaded model treat `" love"`, `"love"`, `" Love"` and `" loved"` as related? Print the cosine
    similarity of their token embeddings (a word that is more than one token for this tokenizer can be
    represented by the mean of its tokens' embeddings). Compare with an unrelated word such as `" sword"`.
    Count the pieces each pair shares: what does averaging measure when two words share pieces?
    """,
    """
    def embedding_of(word):
        ids = lm.tokenizer(word)["input_ids"]
        return unit[ids].mean(dim=0)


    def pieces(word):
        return [lm.decode([i]) for i in lm.tokenizer(word)["input_ids"]]


    base = embedding_of(" love")
    rows = []
    for other in ["love", " Love", " loved", " loving", " sword"]:
        sim = torch.nn.functional.cosine_similarity(base, embedding_of(other), dim=0).item()
        shared = len(set(pieces(" love")) & set(pieces(other)))
        rows.append((other, sim, shared))
        print(f"' love' {pieces(' love')} vs {other!r:>9} {pieces(other)}: {sim:+.2f}, {shared} shared piece(s)")
    # Answer: averaging makes two words similar by the pieces they share, whatever they mean. Where the
    # words are single tokens, the similarity is the model's own; where they are pieces, rank by shared pieces:
    by_sim = [o for o, _, _ in sorted(rows, key=lambda r: -r[1])]
    by_shared = [o for o, _, _ in sorted(rows, key=lambda r: -r[2])]
    print(f"\\nranked by similarity: {by_sim}\\nranked by shared pieces: {by_shared}")
    if len(lm.tokenizer(" love")["input_ids"]) > 1:
        print("' love' is several tokens here: these similarities mostly count shared pieces "
              "(a mean of mostly the same vectors is close to itself), not what the words mean")
    else:
        print("' love' is one token here: its similarities to other single-token words are the model's own")
    """,
    title="spelling variants in embedding space",
)

nb.summary([
    ("GPT-2 reads byte-level BPE tokens: any text becomes UTF-8 bytes (shown as printable characters, `Ġ` for a "
    "space, `Ċ` for a newline), and learned merges glue frequent byte sequences into tokens."),
    ("BPE training is a short loop (count adjacent pairs, merge the most frequent); our thirty-line version learns "
    "the same merges as the `tokenizers` library, and with GPT-2's merges it reproduces GPT-2's tokens exactly."),
    ("The vocabulary size trades sequence length against table size; GPT-2 uses 50,257 tokens, the embedded model "
    "384 learned on Shakespeare."),
    "Leading spaces and capitals make different tokens; numbers and non-English text break into irregular pieces.",
    ("The model's input is a token embedding plus a position embedding; tokens used alike get similar vectors "
    "(compare single tokens: the mean of a word's pieces is similar to any word sharing those pieces), and "
    "the learned position vectors vary smoothly along the sequence."),
], outro="Next: **03 · Attention from scratch**: what the blocks do with these vectors.")

if __name__ == "__main__":
    nb.write()
