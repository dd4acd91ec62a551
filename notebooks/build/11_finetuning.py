"""Builds notebooks/11_finetuning.ipynb (run: python notebooks/build/11_finetuning.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "11_finetuning.ipynb",
    "11 · Fine-tuning on your own text",
    """
    A pretrained GPT-2 writes like the web it was trained on. **Fine-tuning** continues its training on
    *your* text for a while, so that it writes like that instead: plays, product descriptions, short
    jokes. This notebook fine-tunes the course model twice, on Shakespeare's sonnets (one long text) and on
    a CSV of short texts (many small examples), both text the model has never read, the way the popular `gpt-2-simple` package does it:
    named runs, checkpoints you can resume, samples while it trains, and a check that the generations
    are new text rather than copies of the training data.
    """,
    [
        "explain how a text file and a CSV of short texts become fixed-length training blocks, and what "
        "the start/end tokens around each CSV row are for",
        "fine-tune with `gpt2lab.finetune`, read its loss curve and the validation perplexity before and after",
        "find a run's checkpoints, resume an interrupted run, and say why a crash can never leave a broken "
        "checkpoint",
        "generate from a fine-tuned run with `prefix`, `truncate` and `include_prefix`",
        "measure how much of a generation is copied from the training data (n-gram overlap, nearest example)",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()  # GPT-2 when it can be downloaded, else the small embedded Shakespeare model
""")

nb.md("""
## Setting up

Training is the heaviest thing in the course, so every size below goes through the course's one switch,
`gpt2lab.course.scaled(quick, full)`: a few dozen steps on short blocks on a CPU (`GPT2LAB_SCALE=quick`,
the default without a GPU), a few hundred steps on long blocks on a GPU (`full`). The numbers you see
are from whatever ran; the text tells you what to expect in both cases.

Runs are kept in a folder of their own (`RUNS`), one sub-folder per run name, like gpt-2-simple's
`checkpoint/run1`.
""")

nb.code("""
import copy
import json
import urllib.request
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import transformers

from gpt2lab import course, data, training
from gpt2lab.training.memorisation import NoveltyIndex

transformers.logging.set_verbosity_error()  # long texts trigger a harmless "longer than the context" notice

RUNS = data.cache_dir() / "runs"  # where the runs of this notebook live
STEPS = course.scaled(quick=16, full=300)
BLOCK = course.scaled(quick=64, full=256)  # tokens per training sequence
BATCH = course.scaled(quick=4, full=8)
EVAL_TOKENS = course.scaled(quick=3000, full=None)  # validation tokens scored for perplexity (None: all)
print(f"scale {course.scale()!r}: {STEPS} steps, batches of {BATCH} x {BLOCK} tokens; runs in {RUNS}")
""")

nb.md("""
## From a text file to training blocks

Fine-tuning data is just text. Our first data set is Shakespeare's 154 sonnets (Project Gutenberg's
text, about 100 KB). The embedded model was trained on his *plays*, never on the sonnets, and GPT-2 saw
them only as a sliver of the web: verse in fourteen-line stanzas, *thee* and *thou*, no speaker names.
For a single long text like this one, gpt2lab tokenises the
whole file, appends an end-of-text token, and cuts the token stream into **blocks** of `BLOCK` tokens
(each with its labels: the same tokens shifted by one). Blocks start wherever the previous one stopped,
in the middle of a sentence if need be: the model learns from every position, and nothing is padding.
The last 10 % of the characters are held out for validation, the same split as everywhere in the course.

`prepare_data` does the reading, checking, splitting and tokenising, and reports what it did. The
tokenised result is cached (keyed by the file's hash, the tokenizer and the settings), so a second run
does not tokenise again.
""")

nb.code("""
sonnets_file = data.fetch("sonnets/sonnets.txt")
prepared = training.prepare_data(sonnets_file, copy.deepcopy(lm.tokenizer))
blocks = training.StreamBlocks(prepared.train, BLOCK)
print(prepared.report)
print(f"\\n{len(blocks):,} blocks; {100 * blocks.waste:.3f} % of positions are not trained on")
print("\\nblock 1 as the model sees it:\\n" + lm.decode(blocks[1]["input_ids"]))
""")

nb.md("""
Only the very last block is special: the stream rarely divides evenly, so the final block is taken from
the end of the stream and the labels it shares with the block before are masked. That is the
"not trained on" fraction above: tiny for a long text.

## Fine-tuning on the sonnets

`finetune` does everything in one call: loads the data, measures the **validation perplexity** of the
starting model, trains (AdamW, a short warmup then a cosine decay of the learning rate, gradient
clipping), saves checkpoints, prints samples, and measures the perplexity again.

Perplexity is scored with a *sliding window*: windows of `BLOCK` tokens that advance by half a block,
each token counted once, so every token (after the first window) is predicted with at least half a
block of context: the method of `gpt2lab.score_text(text, stride=...)` from notebook 01, applied to
the validation tokens (`EVAL_TOKENS` of them on the quick scale, all on the full one).

`resume=False` starts the run afresh (deleting older checkpoints of the same name), so this cell gives
the same result every time it runs.
""")

nb.code("""
SONNET_LR = course.scaled(quick=1e-3, full=1e-4)  # a few dozen steps need a larger step than gpt-2-simple's
sonnets = gpt2lab.finetune(
    sonnets_file, lm, steps=STEPS, run_name="sonnets", checkpoint_dir=RUNS, resume=False,
    block_size=BLOCK, batch_size=BATCH, learning_rate=SONNET_LR, checkpoint_every=STEPS // 2, keep_last=2,
    sample_every=STEPS // 2, sample_length=40, log_every=2, eval_every=STEPS // 4, eval_max_tokens=EVAL_TOKENS)
sonnets
""")

nb.md("""
What to expect: neither model has trained on the sonnets, so the perplexity on the held-out sonnets
(the last 10 % of the file, sonnets 139 to 154) should fall, steeply in the first steps. The learning
rate is gpt-2-simple's default, 1e-4, on the full scale; the quick scale's few steps use 1e-3. The
numbers, and the same prompt continued by the model before and after:
""")

nb.code("""
drop = 1 - sonnets.perplexity_after / sonnets.perplexity_before
print(f"validation perplexity on held-out sonnets: {sonnets.perplexity_before:.1f} -> "
      f"{sonnets.perplexity_after:.1f} ({100 * drop:.0f} % lower)")
assert sonnets.perplexity_after < sonnets.perplexity_before, "the fine-tune no longer lowers the perplexity"
sonnet_prompt = "When I do count the clock that tells the time,\\n"
before_text = gpt2lab.generate(lm, sonnet_prompt, max_length=40, num_return_sequences=1, seed=0)[0]
after_text = gpt2lab.generate(sonnets.lm, sonnet_prompt, max_length=40, num_return_sequences=1, seed=0)[0]
print("\\nbefore fine-tuning:\\n" + before_text + "\\n\\nafter fine-tuning:\\n" + after_text)
""")

nb.md("""
The loss curve shows the training loss (the mean over the steps between two points) and the
validation loss at each evaluation. With batches as small as the quick scale's, the training
curve mostly shows how hard each batch happens to be; the validation loss, measured on the same
blocks every time, is the one to watch.
""")

nb.code("""
ax = sonnets.plot()
ax.set_title(f"{sonnets.run_name}: perplexity {sonnets.perplexity_before:.1f} → "
             f"{sonnets.perplexity_after:.1f}")
plt.show()
""")

nb.md("""
## Checkpoints, and resuming an interrupted run

A run is a folder. Each `checkpoint-<step>` sub-folder holds everything needed to continue: the
weights, the tokenizer (with any token that was added), the optimizer's moments, the learning-rate
schedule's position, the random-number state, and `trainer_state.json` with the step and the loss
history. `run.json` records the settings, the data and the perplexities; `samples.txt` and `loss.png`
are there to read.
""")

nb.code("""
run_dir = sonnets.run_dir
for path in sorted(run_dir.iterdir()):
    print(path.name + ("/  " + ", ".join(sorted(p.name for p in path.iterdir())) if path.is_dir() else ""))
state = training.read_checkpoint_state(training.latest_checkpoint(run_dir))
print("\\nlatest checkpoint: step", state["step"], "- last history record:", state["history"][-1])
""")

nb.md("""
**Saving is atomic.** A checkpoint is written into a temporary folder that is renamed to
`checkpoint-<step>` only when complete (and old checkpoints are renamed away before they are deleted).
If the process dies mid-save (a crash, a `kill -9`, a Colab disconnect), the folder with the real name
is either complete or absent, so the latest checkpoint always loads. The test suite checks this with
a real process killed by `SIGKILL`.

**Resuming** is the default: calling `finetune` again with the same `run_name` loads the latest
checkpoint and trains only the missing steps. Because the batch of step *s* depends only on the seed
and *s*, and the optimizer, schedule and random state are restored, the resumed run ends with the same
weights as one that was never interrupted. Here we ask the finished run for a few more steps:
""")

nb.code("""
more = gpt2lab.finetune(
    sonnets_file, lm, steps=STEPS + 4, run_name="sonnets", checkpoint_dir=RUNS,
    block_size=BLOCK, batch_size=BATCH, learning_rate=SONNET_LR, checkpoint_every=STEPS // 2, keep_last=2,
    sample_every=0, log_every=2, eval_every=STEPS // 4, eval_max_tokens=EVAL_TOKENS, verbose=False)
print(f"resumed at step {more.resumed_from_step}, now at step {more.steps}; "
      f"checkpoints: {[p.name for p in training.list_checkpoints(run_dir)]}")
""")

nb.md("""
The same run from a terminal (and, unchanged, on several GPUs with `accelerate launch -m gpt2lab.cli`):

```
gpt2lab finetune sonnets.txt --model gpt2 --steps 1000 --run-name sonnets --block-size 256 \\
    --checkpoint-every 200 --keep-last 2 --sample-every 100
```

## Short texts from a CSV

Many fine-tuning data sets are lists of short, independent texts: titles, tweets, one-line stories.
`data/short_texts.csv` holds a hundred one-sentence scenes written for this course. Cut into blocks
like a plain text, the model could not tell where one ends and the next begins. gpt-2-simple's answer,
used here: wrap every row as

`<|startoftext|>` *row* `<|endoftext|>`

`<|endoftext|>` already exists in GPT-2's vocabulary; `<|startoftext|>` does not, so it is **added to
the tokenizer** (one new token id) and the model's embedding matrix grows by one row, initialised to
the mean of the others. Both are saved with every checkpoint.
""")

nb.code("""
repo = Path(gpt2lab.__file__).resolve().parents[1]
short_texts = repo / "data" / "short_texts.csv"
if not short_texts.exists():  # an installed package (e.g. on Colab) has no data/ folder: fetch the file
    short_texts = Path("short_texts.csv")
    urllib.request.urlretrieve("https://raw.githubusercontent.com/gpt2lab/gpt2lab/main/data/short_texts.csv",
                               short_texts)
texts = pd.read_csv(short_texts)["text"].tolist()
print(f"{len(texts)} rows, e.g.:", *texts[:3], sep="\\n  ")

tokenizer = copy.deepcopy(lm.tokenizer)
model = copy.deepcopy(lm.model)
print(f"\\nbefore: {len(tokenizer):,} tokens, embedding {tuple(model.get_input_embeddings().weight.shape)}")
training.add_start_token(model, tokenizer)
print(f"after:  {len(tokenizer):,} tokens, embedding {tuple(model.get_input_embeddings().weight.shape)}")
wrapped = training.prepare_data(short_texts, tokenizer)
print("\\none training example:", tokenizer.decode(wrapped.train[0].tolist()))
print(wrapped.report)
""")

nb.md("""
Bad rows are never dropped silently. An empty row, bytes that are not valid UTF-8, a JSON line without
the text field, or a file too small for one block stop the run with a list of file and line numbers;
`bad_rows="skip"` leaves such rows out and lists them in the report (Exercise 1).

Now the fine-tune. The run's validation set is 10 rows chosen at random (seeded). A hundred short
rows are easy to memorise, so validation loss may turn up while training loss keeps falling;
`keep_best=True` also keeps the weights of the lowest validation loss (in the run's `best/` folder),
and `gpt2lab.load_run(name, best=True)` loads them.
""")

nb.code("""
CSV_STEPS = course.scaled(quick=30, full=300)
LR = course.scaled(quick=1e-3, full=1e-4)  # a new style in a few dozen steps needs a larger learning rate
short = gpt2lab.finetune(
    short_texts, lm, steps=CSV_STEPS, run_name="short-texts", checkpoint_dir=RUNS, resume=False,
    block_size=BLOCK, batch_size=BATCH, learning_rate=LR, checkpoint_every=CSV_STEPS, sample_every=0,
    log_every=2, eval_every=CSV_STEPS // 5, keep_best=True)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
sonnets.plot(axes[0]).set_title("sonnets")
short.plot(axes[1]).set_title("short texts (CSV)")
plt.show()
print(f"validation perplexity on held-out rows: {short.perplexity_before:.1f} → {short.perplexity_after:.1f}")
print(f"lowest validation loss {short.best_val_loss:.3f} at step {short.best_step} of {short.steps}")
""")

nb.md("""
## Generating from a run

`gpt2lab.load_run(name)` loads a run's latest checkpoint as an ordinary model, with its enlarged
tokenizer. To get one short text, start from the start token (`prefix`), cut at the end token
(`truncate`), and leave the prefix out of the result (`include_prefix=False`). The run remembers its
tokens in `info`.
""")

nb.code("""
tuned = gpt2lab.load_run("short-texts", checkpoint_dir=RUNS)
print(tuned, tuned.info["start_token"], tuned.info["end_token"])
raw = gpt2lab.generate(tuned, prefix=tuned.info["start_token"], max_length=40, num_return_sequences=1, seed=1)
print("\\nraw, with the prefix and past the end token:\\n ", repr(raw[0]))
samples = gpt2lab.generate(tuned, prefix=tuned.info["start_token"], truncate=tuned.info["end_token"],
                           include_prefix=False, max_length=40, num_return_sequences=6, seed=1)
print("\\nwith truncate and include_prefix=False:", *samples, sep="\\n  ")
""")

nb.md("""
## Is it new, or copied? Checking for memorisation

A model fine-tuned for long on little data starts to **memorise**: it reproduces training rows word
for word. The standard check: cut a generated text into n-grams (here 8 words), and count how many of
them occur verbatim anywhere in the training data. Ordinary new text shares almost no 8-grams with any
data set; a copy shares all of them. The check also names the **nearest training example** (the one
sharing the most n-grams, or shorter ones when none of length 8 is shared) so you can compare by eye.

`NoveltyIndex.from_run` indexes exactly the rows the run trained on (the validation rows left out).
""")

nb.code("""
index = NoveltyIndex.from_run("short-texts", checkpoint_dir=RUNS, n=8)
rows = []
for text in samples:
    r = index.check(text)
    rows.append({"generated": text, "copied 8-grams": f"{r.copied_ngrams}/{r.total_ngrams}",
                 "copied": r.copied_text, "flagged": r.flagged, "nearest training row": r.nearest_text})
pd.set_option("display.max_colwidth", 80)
pd.DataFrame(rows)
""")

nb.md("""
For comparison, a row *from* the training data and a sentence that is in none of it:
""")

nb.code("""
print("a training row: ", index.check(index.passages[5]))
print("a fresh sentence:", index.check("The lighthouse keeper's cat counts the waves while the kettle argues "
                                       "with the radio about the rain."))
""")

nb.md("""
How much gets flagged depends on how many passes over the data the model made, and on its size. The
quick scale makes only a few passes, far too few to memorise anything. The full scale makes hundreds of
passes over these 90 rows, and a model as large as GPT-2 can then write whole training rows back: expect
some samples to be flagged, and compare them with their nearest row. Rerun the CSV fine-tune with more
steps to watch it happen on the small model too.

### Explorer: sampling settings against novelty

Higher temperature makes the model wander further from what it has seen; lower temperature makes it
cling to its most likely continuation, which for a memorising model is the training row. Move the
sliders and watch the copied fraction (the n-gram size is adjustable too: small n finds ordinary
shared phrases, large n only real copies).
""")

nb.code("""
from gpt2lab.widgets import memorisation_explorer

memorisation_explorer(tuned, lambda n: NoveltyIndex.from_run("short-texts", checkpoint_dir=RUNS, n=n),
                      prefix=tuned.info["start_token"], truncate=tuned.info["end_token"])
""")

nb.md("""
**A task for the explorer.** Set the n-gram size to 2 and note the copied percentages; then raise n one
step at a time. At which n does every sample's copied share reach 0, and what does that say about how
long the phrases are that the model takes over from its training rows? Repeat at temperature 0.3 and
1.5: does the colder model copy longer phrases? (A sample shorter than n words shows "n/a".)
""")

nb.exercise("""
**Bad data.** Write a small CSV (with a `text` header) that has an empty row on line 4 and a row with
the byte `0xff` in it on line 6. Call `training.prepare_data` on it with a copy of `lm`'s tokenizer
(add the start token first with `training.add_start_token`) and print the error. Then read it again
with `bad_rows="skip"` and check in the report that exactly those two rows were left out.
""", solution="""
bad_csv = Path("bad_rows.csv")
bad_csv.write_bytes(b"text\\nA first fine row.\\nA second fine row.\\n\\nA third fine row.\\nbroken \\xff row\\n"
                    b"A last fine row.\\n")
tok = copy.deepcopy(lm.tokenizer)
training.add_start_token(copy.deepcopy(lm.model), tok)
try:
    training.prepare_data(bad_csv, tok, cache_dir=False)
except training.DataError as err:
    print("refused:", err)
kept = training.prepare_data(bad_csv, tok, cache_dir=False, bad_rows="skip", val_fraction=0)
print()
print(kept.report)
assert [(i.line, i.kind) for i in kept.report.issues] == [(4, "empty"), (6, "undecodable")]
bad_csv.unlink()
""", title="A report, not a silent drop")

nb.exercise("""
**How long is a copy?** For the six samples above and for the training row `index.passages[5]`,
compute the copied fraction for n = 2, 4, 6, 8, 10, 12 (one `NoveltyIndex.from_run(...)` per n) and plot
both curves. Why does the curve of the generated samples fall with n while the training row's stays at 1?
(A text shorter than n words has no n-grams at all: its fraction is "n/a", not 0.)
""", solution="""
ns = [2, 4, 6, 8, 10, 12]
generated_curve, copied_curve = [], []
for n in ns:
    idx = NoveltyIndex.from_run("short-texts", checkpoint_dir=RUNS, n=n)
    reports = idx.check_many(samples)
    total = sum(r.total_ngrams for r in reports)
    generated_curve.append(sum(r.copied_ngrams for r in reports) / total if total else float("nan"))
    row = idx.check(idx.passages[5])
    copied_curve.append(float("nan") if row.copied_fraction is None else row.copied_fraction)
    print(f"n={n:2d}: samples {'n/a' if not total else f'{generated_curve[-1]:.2f}'}, training row {row.copied_text} "
          f"({row.total_ngrams} n-grams)")
plt.plot(ns, generated_curve, "o-", label="generated samples")
plt.plot(ns, copied_curve, "s--", label="a training row (a gap: shorter than n, n/a)")
plt.xlabel("n-gram size (words)")
plt.ylabel("fraction of n-grams found in the training data")
plt.legend()
plt.grid(alpha=0.3)
plt.show()
# Answer: short n-grams ("of the", "in the morning") are shared by any two English texts, so even new
# text scores high at n = 2, and the samples' curve falls as n grows. A verbatim copy contains every
# n-gram of the row at every n, so it stays at 1 for as long as the row has n-grams at all; past its
# length the row has none, and the check says "n/a" (a gap in the curve), never 0.
real = [c for c in copied_curve if c == c]
assert real and all(c == 1.0 for c in real), "a training row is no longer fully found in its own data"
""", title="Copied fraction against n")

nb.summary([
    "Fine-tuning continues training on your text. A long text is cut into blocks of tokens across the "
    "whole stream; short texts from a CSV are wrapped in `<|startoftext|>` / `<|endoftext|>`, and the "
    "start token is added to the tokenizer and the embedding.",
    "`gpt2lab.finetune` (or `gpt2lab finetune` on the command line) reports bad rows by line, caches "
    "the tokenised data, and measures the validation perplexity before and after with a sliding window.",
    "A run is a folder of atomic checkpoints: a crash never leaves a broken one, and calling `finetune` "
    "again resumes exactly where the last checkpoint stopped.",
    "`gpt2lab.load_run` turns a run into a model; `prefix`, `truncate` and `include_prefix=False` give "
    "one clean short text per sample.",
    "The n-gram overlap with the training data and the nearest training example tell new text from "
    "memorised copies.",
], outro="""
Next: **09 · Serving** puts a model (a fine-tuned one too: pass the run's checkpoint folder) behind a
local JSON endpoint.
""")

nb.write()
