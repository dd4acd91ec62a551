"""Builds notebooks/10_word_importance.ipynb (run: python notebooks/build/10_word_importance.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "10_word_importance.ipynb",
    "10 · Which words matter? Word importance, attribution baselines and faithfulness",
    """
    When a language model predicts the next word, which words of the prompt did it rely on? This notebook
    answers with the perturbation method of Guan et al. (ICML 2019): add noise to each word's embedding and
    find how much noise every word can take before the prediction changes. Words that take a lot of noise
    did not matter; words that cannot take any did. You then compare that answer with the attribution
    methods of [captum](https://captum.ai) (occlusion, Shapley sampling, integrated gradients), with
    leave-one-out and with attention weights, and you measure which of them is **faithful**: whether
    removing the words a method calls important really moves the prediction.
    """,
    [
        "state the perturbation objective (noise per word, information loss vs. entropy) and what sigma means",
        "explain a prediction with `gpt2lab.word_importance` and read its bar chart, shaded text and loss trace",
        "know why BPE pieces are grouped into words, and what the batched implementation changes for speed",
        "compute captum baselines and attention scores for the same words and target with `compare_attributions`",
        "judge attribution methods by deletion curves against random orders, not by how plausible they look",
    ],
)

nb.code("""
import gpt2lab

lm = gpt2lab.load_default()
""")

nb.code("""
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, display

from gpt2lab import course
from gpt2lab.explain import attribution
from gpt2lab.explain import importance
from gpt2lab.explain.words import split_words
""")

nb.md("""
## Words, not pieces

GPT-2 reads BPE pieces, people read words. An explanation per piece is hard to read (" résumé" is three
pieces), so gpt2lab groups the pieces of one word and gives them one shared noise level. A word is a run of
letters or digits (with inner apostrophes and hyphens: "don't", "well-known") or a punctuation mark; a
space belongs to the word after it, as in GPT-2's own pieces.
""")

nb.code("""
text = "I pray you, sir, I pray"
split = split_words(lm.tokenizer, text)
for word in split.words:
    print(f"{word.text!r:14} <- pieces {[lm.tokenizer.decode([split.input_ids[t]]) for t in word.tokens]}")
print(split.n_words, "words,", split.n_tokens, "pieces")
""")

nb.md("""
## The method

Let $x_1, \\dots, x_n$ be the embeddings of the words and $\\Phi(x)$ the model's output at the last
position: the scores (logits) of every possible next piece. Each word gets a noise level
$\\sigma_i = \\text{scale} \\cdot \\text{sigmoid}(\\rho_i)$ and is replaced by
$\\tilde x_i = x_i + \\sigma_i \\varepsilon_i$ with $\\varepsilon_i \\sim \\mathcal N(0, I)$. We minimise

$$L(\\sigma) = \\mathbb E_\\varepsilon\\Big[\\frac{1}{V}\\sum_d \\frac{(\\Phi(\\tilde x) - \\Phi(x))_d^2}{r_d^2}\\Big]
 - \\lambda \\frac{1}{n}\\sum_i \\log \\sigma_i$$

The first term wants the output unchanged (each output dimension in units of its spread $r_d^2$ over
ordinary sentences); the second wants as much noise as possible. The balance: a word gets a large
$\\sigma_i$ when the output does not need it, a small one when it does.

The original code takes one noise sample per step, recomputes $\\Phi(x)$ each step and runs thousands of
steps at a small learning rate. `gpt2lab.word_importance` computes $\\Phi(x)$ once, pushes K noise samples
(and several sentences) through the model as one batch, freezes the weights, starts with a large learning
rate that decays, judges the "best" $\\sigma$ on a loss averaged over recent steps, and stops a sentence
as soon as its answer has settled (no $\\sigma$ moved more than 5 % over the last 30 steps: `stop_tol`,
`patience`), so `steps` is a ceiling, not a fixed cost.
`bench/bench_importance.py` measures how much sooner it reaches the same answer than a faithful
re-implementation of the original.

One property of the method to keep in mind: the objective is not convex. Once a word's noise has wiped
out its information, a little less noise changes nothing (the first term is flat there), so nothing pulls
that word back and it drifts up to the ceiling. Where the search starts therefore decides where each word
ends. gpt2lab starts every word at a small $\\sigma$ (5 % of the ceiling, `init=0.05`): there the output
still reacts to every word's noise, every $\\sigma$ feels both terms, and each rises only as far as the
output tolerates. You will test that claim below.
""")

nb.md("""
An explanation is only worth reading for a prediction the model is sure of, and best for one whose reason
we can check. Our sentence repeats a phrase: after "I pray you, sir, I pray" the next word is almost
forced. If the model completes it by copying from the first "I pray you", the word it copies, the first
"you", should matter; if it simply knows the phrase "I pray you", the last "pray" should matter most and
the first "you" little. First, what does it
predict, and how surely?
""")

nb.code("""
import torch

with torch.no_grad():
    probs = torch.softmax(lm.model(lm.encode(text)).logits[0, -1].float(), dim=-1)
top_p, top_id = probs.max(dim=-1)
print(f"next piece after {text!r}: {lm.decode([top_id.item()])!r} with p = {top_p.item():.2f}")
assert top_p > 0.5, "the example prediction is no longer a confident one: choose another sentence"
""")

nb.code("""
steps = course.scaled(quick=200, full=300)  # a ceiling: each search stops once its answer has settled
# on a CPU, "settled" is looser (sigmas within 10 % over 20 steps instead of 5 % over 30): a rougher answer, sooner
settle = course.scaled(quick={"stop_tol": 0.1, "patience": 20}, full={})
result = gpt2lab.word_importance(lm, text, steps=steps, **settle)
print(f"settled after {result.steps_run} of at most {steps} steps")
result
""")

nb.md("""
The shaded text is the result's HTML view; hover a word for its $\\sigma$. `.plot()` draws the same as a bar
chart (importance = $-\\log\\sigma$ rescaled to 0..1 within the sentence, the dots are $\\sigma$ itself),
and `show_loss=True` adds the loss at every step: it should fall and flatten. `.to_dataframe()` gives the
numbers.
""")

nb.code("""
result.plot(show_loss=True)
plt.show()
table = result.to_dataframe()
first_you = int(table.loc[2, "rank"])  # words: I, pray, you, ... the first "you" is the word to copy
last_pray = int(table["rank"].iloc[-1])
print(f"most important: {result.ranking()[:3]}; the last 'pray' ranks {last_pray}, the first 'you' "
      f"{first_you} of {len(table)}")
if first_you <= len(table) // 2:
    print("the first 'you' is among the more important half: the model leans on the earlier copy")
else:
    print("the first 'you' is among the less important half: the model completes a phrase it knows "
          "rather than copying the earlier one")
table.round(3)
""")

nb.md("""
### Where the search starts

The published code starts every word at a random $\\sigma$ around half the ceiling. Start there
(`init=0.5`) and compare the two answers on the objective itself: `importance.objective` estimates
$L(\\sigma)$ with 1024 fresh noise samples, far more than the search draws per step, so the two answers
are judged on equal terms. Lower is better: it is the quantity both searches minimise.
""")

nb.code("""
from_half = gpt2lab.word_importance(lm, text, steps=steps, init=0.5, **settle)
losses = {}
for name, answer in [("default start (init=0.05)", result), ("half the ceiling (init=0.5)", from_half)]:
    score = importance.objective(lm, answer)
    losses[name] = score.loss
    at_ceiling = int((answer.sigma >= 0.9 * answer.scale).sum())
    print(f"{name:28} loss {score.loss:.3f} (fit {score.fit:.3f} +- {score.fit_error:.3f}, "
          f"mean log sigma {score.entropy:.2f}); {at_ceiling} word(s) at the ceiling; "
          f"most important: {answer.ranking()[:3]}")
low_start_wins = losses["default start (init=0.05)"] < losses["half the ceiling (init=0.5)"]
print("the small start ends lower" if low_start_wins else "the start at half the ceiling ends lower here")
""")

nb.md("""
Started high, a word whose information is gone from the first step gets no gradient telling it to come
back, and the output pays for it (a larger fit term); the lines above count the words left at the ceiling
and say which start ends lower on this sentence. On the embedded model the small start ends lower on every
sentence of `bench/bench_importance.py`, and two seeds rank the words alike, which they do not from half the
ceiling.
""")

nb.md("""
If you have a GPU, run the notebook with `GPT2LAB_MODEL=gpt2` and compare what real GPT-2 relies on for
the same sentence.

### Several sentences in one batch

Give a list and all sentences are optimised together. The noise of each sentence depends only on the seed
and its own text, so a sentence gets the same answer alone or in a batch. A sentence that settles early
leaves the batch, and the others run on with fewer rows per step; `steps_run` says where each stopped.

Two more predictions a play's reader can check: a speaker's name, half written. After `PETRU` the next
piece can only continue *PETRUCHIO*, and after `KING RICHARD` a play that opened with *KING RICHARD III*
continues with ` I`. Whatever else the model reads, the half-written name should matter most.
""")

nb.code("""
lines = ["PETRUCHIO:\\nGood morrow, Kate.\\n\\nPETRU",
         "KING RICHARD III:\\nNow is the winter.\\n\\nKING RICHARD",
         text]
results = gpt2lab.word_importance(lm, lines, steps=steps, **settle)
for r in results:
    display(HTML(r.to_html()))
print("steps run per sentence:", [r.steps_run for r in results], "of at most", steps)
assert all(r.steps_run < steps for r in results), "a search hit the step ceiling before settling"
for r in results[:2]:
    name_rank = int(r.to_dataframe()["rank"].iloc[-1])  # the last word: the half-written name
    print(f"...{r.text[-12:]!r} -> {r.prediction!r} (p = {r.prediction_prob:.2f}): most important "
          f"{r.ranking()[:3]}; the half-written name {r.words[-1]!r} ranks {name_rank} of {len(r.words)}")
    assert name_rank <= 2, "the half-written name is no longer among the two most important words"
""")

nb.md("""
## Baselines: captum, leave-one-out and attention

`compare_attributions` scores the same words for the same target (by default the model's most likely
next piece) with every method; higher always means more important:

| method | what it does |
|---|---|
| `importance` | the perturbation method above ($-\\log\\sigma$); explains the whole next-piece distribution |
| `occlusion` | captum `FeatureAblation`: replace the word's pieces by a blank, change of $\\log p(\\text{target})$ |
| `shapley` | captum `ShapleyValueSampling`: average effect of adding the word over random orders |
| `integrated_gradients` | captum `LayerIntegratedGradients` on the token embeddings, from blanks to the real words |
| `leave_one_out` | delete the word entirely (the text gets shorter) |
| `attention_last` | the last layer's attention from the last position, averaged over heads |
| `attention_rollout` | attention multiplied through all layers, counting the residual path |
""")

nb.code("""
importance_settle = {f"importance_{k}": v for k, v in settle.items()}
comparison = gpt2lab.compare_attributions(lm, text, importance_steps=steps,
                                          shapley_samples=course.scaled(quick=4, full=20), **importance_settle)
display(comparison)
comparison.plot()
plt.show()
""")

nb.md("""
Do the methods agree? A rank correlation of 1 means the same order of words, 0 no relation, negative
an opposite order.
""")

nb.code("""
comparison.rank_agreement("spearman").round(2)
""")

nb.md("""
## Attention is not importance

Attention weights are tempting: they are right there and they sum to one. But a head can attend to a word
and then pass on little of it (the value vectors and later layers decide), and many heads park much of
their attention on the first token regardless of meaning (notebook 05). So attention may agree with the
perturbation method on one sentence and not on the next: it is a different quantity, and only a
measurement says how well it stands in. Compare the attention columns with the perturbation column for
this sentence:
""")

nb.code("""
frame = comparison.normalised()[["importance", "attention_last", "attention_rollout"]]
frame.plot.bar(figsize=(8, 3.5), title="perturbation importance vs attention (each scaled to its max)")
plt.show()
""")

nb.md("""
## Faithfulness: evidence, not pictures

A method is **faithful** when the words it ranks first really carry the prediction. The deletion test:
remove words from most to least important (per method), and after each removal measure how far the
next-piece distribution has moved from the full sentence's (KL divergence). A faithful order moves the
prediction early, so the area under its curve is large. Random orders give the baseline.
""")

nb.code("""
deletion = attribution.deletion_curve(lm, comparison, metric="kl", mode="remove",
                                      n_random=course.scaled(quick=10, full=50))
deletion.plot()
plt.show()
{m: round(a, 3) for m, a in deletion.areas.items()} | {"random": round(deletion.random_area, 3)}
""")

nb.md("""
One sentence proves little. `faithfulness_table` repeats the test over several sentences and ranks the
methods: `area` is the mean deletion area, `gain` the area divided by the random orders' area (above 1
= better than chance), `wins` the number of sentences on which the method was best, `mean_rank` its average
place (1 = best). The table says which method is most faithful **for this model on these sentences**; run it
on your own sentences before trusting any method.
""")

nb.code("""
sentences = course.scaled(quick=lines[:2] + [text], full=lines + [text, "To be, or not to be, that is the",
                                                                    "Now is the winter of our discontent made"])
# the table needs every method's ranking, not the last digit of sigma: on a CPU the search stops at 100 steps
report = attribution.faithfulness_table(lm, sentences, importance_steps=course.scaled(quick=100, full=steps),
                                        shapley_samples=course.scaled(quick=4, full=20),
                                        n_random=course.scaled(quick=10, full=50), **importance_settle)
print("most faithful here:", report.best_method)
report.table.round(3)
""")

nb.md("""
What the numbers above say about attention, against the perturbation method and against captum's
methods (the agreement is the rank correlation with `importance` on the first sentence; the gain is the
mean deletion area over random orders' on all of them):
""")

nb.code("""
agreement = comparison.rank_agreement("spearman")["importance"]
captum_methods = ["occlusion", "shapley", "integrated_gradients"]
attention_methods = ["attention_last", "attention_rollout"]
gain = report.table["gain"]
best_attention, best_captum = agreement[attention_methods].idxmax(), agreement[captum_methods].idxmax()
print(f"agreement with importance: best attention {best_attention} {agreement[best_attention]:+.2f}, "
      f"best captum {best_captum} {agreement[best_captum]:+.2f}")
print(f"faithfulness gain: attention up to {gain[attention_methods].max():.2f}, captum up to "
      f"{gain[captum_methods].max():.2f}, importance {gain['importance']:.2f} (1 = random order)")
if agreement[best_attention] > agreement[best_captum]:
    print("here attention agrees with the perturbation method better than captum's methods do")
else:
    print("here captum's methods agree with the perturbation method better than attention does")
if gain[attention_methods].max() < gain[captum_methods].max():
    print("but as a guide to which words to delete, attention is less faithful than captum's best method")
else:
    print("and as a guide to which words to delete, attention is as faithful as captum's best method here")
""")

nb.md("""
## Explorer: type a sentence, see its importances

Type a prompt and press the button (the search takes a few seconds on a CPU). Steps and samples trade speed
for precision; `lambda` sets how much noise the words are pushed to take.
""")

nb.code("""
from gpt2lab.widgets import importance_explorer

importance_explorer(lm, "The quality of mercy is not strained; it droppeth as the gentle",
                    steps=course.scaled(quick=80, full=200))
""")

nb.md("""
**A task for the explorer.** Write the start of a speaker's line the model must complete, such as
`ROMEO:` and a line of his, a blank line, then `JULI` (or a name of your own choosing from the plays), and
press the button. Is the half-written name the most important word? Now add a second speaker line
before it, so that the name appears earlier in the prompt too: does the earlier copy of the name gain
importance (the model copies it), or does only the half-written name count (the model knows the name
by heart)?
""")

nb.exercise(
    """
    **Noise budget.** Explain the sentence `"To be, or not to be, that is the"` with `rate=0.03`, `0.1` and
    `0.3`. How do the $\\sigma$ values change, and does the ranking of words change? Print the three rankings.
    """,
    solution="""
    sentence = "To be, or not to be, that is the"
    rankings, mean_sigma = {}, {}
    for rate in (0.03, 0.1, 0.3):
        res = gpt2lab.word_importance(lm, sentence, steps=course.scaled(quick=100, full=200), rate=rate,
                                      progress=False, **settle)
        rankings[rate], mean_sigma[rate] = res.ranking(), float(np.mean(res.sigma / res.scale))
        print(f"rate {rate}: sigma/scale {np.round(res.sigma / res.scale, 2)}")
        print("   ranking:", " > ".join(res.ranking()))
    # Answer, from the numbers: a larger lambda rewards noise more, so the sigmas grow
    grows = mean_sigma[0.03] < mean_sigma[0.1] < mean_sigma[0.3]
    print(f"\\nmean sigma/scale {mean_sigma[0.03]:.2f} -> {mean_sigma[0.1]:.2f} -> {mean_sigma[0.3]:.2f}: "
          + ("the sigmas grow with lambda" if grows else "the sigmas do not grow steadily with lambda"))
    same_top = len({tuple(r[:3]) for r in rankings.values()}) == 1
    print("the three most important words are the same at every lambda" if same_top else
          "the top of the ranking changes with lambda: read a ranking together with the lambda it was made at")
    """,
    title="how lambda shapes the answer",
)

nb.exercise(
    """
    **Pieces or words?** Explain `"The antidisestablishmentarianism of the"` once with `unit="word"` and once with
    `unit="token"`. Which pieces of the long word does the model rely on? Is the word's shared $\\sigma$ close
    to the smallest of its pieces' $\\sigma$, or to their average?
    """,
    solution="""
    sentence = "The antidisestablishmentarianism of the"
    kw = dict(steps=course.scaled(quick=100, full=200), progress=False, **settle)
    per_word = gpt2lab.word_importance(lm, sentence, unit="word", **kw)
    per_piece = gpt2lab.word_importance(lm, sentence, unit="token", **kw)
    print(per_word.to_dataframe()[["word", "sigma", "pieces"]])
    print(per_piece.to_dataframe()[["word", "sigma"]])
    # Answer, from the numbers: compare the long word's shared sigma with its pieces' smallest and mean
    n_pieces = len(per_word.pieces[1])
    piece_sigmas = per_piece.sigma[1:1 + n_pieces]  # the long word's pieces follow "The"
    shared = per_word.sigma[1]
    print(f"\\nshared sigma {shared:.3f}; its {n_pieces} pieces: smallest {piece_sigmas.min():.3f}, "
          f"mean {piece_sigmas.mean():.3f}")
    closer = "smallest" if abs(shared - piece_sigmas.min()) < abs(shared - piece_sigmas.mean()) else "mean"
    print(f"the shared sigma is closer to the {closer}: "
          + ("one noise level for all pieces can be no larger than the most sensitive piece tolerates"
             if closer == "smallest" else "the pieces' tolerance is pooled, not limited by the most sensitive"))
    """,
    title="word-level vs piece-level sigma",
)

nb.exercise(
    """
    **A faithfulness check of your own.** The deletion test above removes words. Run
    `attribution.deletion_curve` with `mode="mask"` (words replaced by a blank piece, so positions stay
    put) and `metric="logprob"` (drop of the target's log-probability) on `comparison`. Does the most
    faithful method change?
    """,
    solution="""
    masked = attribution.deletion_curve(lm, comparison, metric="logprob", mode="mask", n_random=10)
    areas = masked.areas
    print({m: round(a, 3) for m, a in sorted(areas.items(), key=lambda kv: -kv[1])})
    print("random orders:", round(masked.random_area, 3))
    print("most faithful with blanks and log p(target):", max(areas, key=areas.get))
    # Answer: compare with the deletion test above (remove, KL) on the same sentence
    removed = max(deletion.areas, key=deletion.areas.get)
    masked_best = max(areas, key=areas.get)
    print(f"with removal and KL it was {removed}: the most faithful method "
          + ("stays the same" if removed == masked_best else "changes with how words are deleted and what is measured"))
    """,
    title="masking instead of removing",
)

nb.summary([
    "The perturbation method asks how much noise each word's embedding can take before the prediction changes; "
    "small $\\sigma$ = important word, large $\\sigma$ = the model does not need it.",
    "gpt2lab groups BPE pieces into words, computes $\\Phi(x)$ once, batches noise samples and sentences, "
    "decays the learning rate and judges the best $\\sigma$ on a smoothed loss (`bench/bench_importance.py` "
    "measures how much sooner it reaches the answer than the original algorithm).",
    "The objective is not convex: starting every word at a small $\\sigma$ finds a lower loss, and an answer two "
    "seeds agree on, where a start at half the ceiling leaves words stuck at the ceiling; "
    "`importance.objective` judges two answers on equal terms.",
    "captum gives occlusion, Shapley sampling and integrated gradients on the same words; attention weights "
    "are a different quantity, which may or may not agree with them: the rank correlations and deletion areas "
    "measure how well each stands in, per model and sentence.",
    "Plausible pictures are not evidence: deletion curves against random orders, over many sentences, say "
    "which method is faithful for a given model.",
])

if __name__ == "__main__":
    nb.write()
