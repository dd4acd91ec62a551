"""Builds notebooks/07_residual_stream.ipynb (run: python notebooks/build/07_residual_stream.py)."""
from nbbuild import CourseNotebook

nb = CourseNotebook(
    "07_residual_stream.ipynb",
    "07 · Inside the residual stream: logit lens, direct logit attribution, activation patching",
    """
    Every block of GPT-2 reads the **residual stream** (one vector per token) and adds its result back
    to it; the final LayerNorm and the output layer turn the last vector into the next-token scores.
    That makes the stream a running draft of the prediction, and three standard tools read it. The
    **logit lens** reads the draft after every block. **Direct logit attribution** splits the final score
    of one token into what each head and MLP wrote. **Activation patching** copies one piece of a run
    on a clean text into a run on a corrupted text and measures how much of the clean answer returns.
    The question throughout: in a play's dialogue, which layer decides the name of the next speaker?
    """,
    [
        "read the residual stream after every block with the logit lens, and say at which layer a prediction forms",
        "split a logit into the direct shares of the embeddings, every head and every MLP, and check they add up",
        "run activation patching over layers and positions, and over heads, and read the two heatmaps",
        "tell what each tool can and cannot show: direct effects versus effects that pass through later layers",
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

from gpt2lab import interpret

print(f"{lm.name}: {lm.model.config.n_layer} blocks, {lm.model.config.n_head} heads per block, "
      f"residual stream of {lm.model.config.n_embd} numbers per token")
""")

nb.md("""
## The question: who speaks next?

In a dialogue between two characters the speakers alternate, so after ROMEO has spoken, the next name
is the one that came before his: JULIET. The model can only get that right by looking back in the text.
The name is several tokens long; we study its **first token**, the one the model has to choose right
after the blank line.
""")

nb.code("""
first, second = "ROMEO", "JULIET"
clean = (f"{first}:\\nI will go with thee, and stay no longer.\\n\\n{second}:\\nThen go, my love, and come again.\\n\\n"
         f"{first}:\\nFarewell, sweet; good night.\\n\\n")
target = lm.tokenizer(second, add_special_tokens=False)["input_ids"][0]
target_text = lm.tokenizer.decode([target])
with torch.no_grad():
    ids = lm.encode(clean)
    logits = lm.model(ids).logits[0, -1].float()
probs = torch.softmax(logits, -1)
top = probs.topk(5)
rank = int((logits > logits[target]).sum())
print(f"target: {target_text!r}, the first token of {second}")
print("the model's five likeliest next tokens:", [(lm.tokenizer.decode([int(i)]), round(float(p), 3))
                                               for p, i in zip(top.values, top.indices)])
print(f"{target_text!r} has probability {float(probs[target]):.3f} (rank {rank + 1})")
""")

nb.md("""
## The logit lens

Apply the final LayerNorm and the output layer to the residual stream after 0, 1, ..., n blocks, as if
the model stopped there (nostalgebraist 2020, "interpreting GPT: the logit lens").
`interpret.logit_lens(lm, text)` returns logits of shape (blocks + 1, tokens, vocabulary): row 0
reads the embeddings, the last row is the model's own output. That last identity is checked here.
""")

nb.code("""
lens = interpret.logit_lens(lm, clean)
print("lens logits:", tuple(lens.logits.shape), "= (blocks + 1, tokens, vocabulary)")
torch.testing.assert_close(lens.logits[-1, -1], logits.cpu(), rtol=1e-4, atol=1e-4)  # the last row is the output
lens_probs = lens.probability_of(target)[:, -1]   # the target's probability in every row, last position
lens_ranks = [int((lens.logits[row, -1] > lens.logits[row, -1, target]).sum()) + 1 for row in range(lens.n_rows)]
for label, p, r in zip(lens.layer_labels, lens_probs, lens_ranks):
    print(f"{label:>14}: p({target_text!r}) = {p:.3f}, rank {r}")
""")

nb.code("""
fig = lens.plot(targets=target)
plt.show()
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(lens.n_rows), lens_probs, "o-")
ax.set_xticks(range(lens.n_rows), lens.layer_labels, rotation=30, fontsize=8)
ax.set_ylabel(f"p({target_text!r}) at the last position")
ax.set_ylim(0, 1)
ax.set_title("The logit lens on the next speaker's name")
plt.show()
""")

nb.code("""
top_row = next((row for row, r in enumerate(lens_ranks) if r == 1), None)
jump = int(np.argmax(np.diff(lens_probs))) + 1
if top_row is None:
    print(f"{target_text!r} is never the top token at the last position: the loaded model does not pick the "
          f"right name here (final rank {lens_ranks[-1]}).")
else:
    print(f"{target_text!r} first becomes the top token in row {top_row} ({lens.layer_labels[top_row]}); the "
          f"largest single rise of its probability is in row {jump} ({lens.layer_labels[jump]}: "
          f"{lens_probs[jump - 1]:.3f} -> {lens_probs[jump]:.3f}).")
assert lens_ranks[-1] == rank + 1
""")

nb.md("""
The logit lens is a reading, not an intervention: the early rows are decoded with a LayerNorm and an
output layer trained for the last row only, so an early row that shows nothing may still hold the
information in a form the output layer cannot read yet.

## Direct logit attribution

The final residual vector is a sum: embeddings + what every head writes + every attention bias + every
MLP. The final LayerNorm subtracts the mean and divides by the standard deviation of that vector;
holding the standard deviation at the value it had in this run, the target's logit splits exactly
into one **direct share** per component (Elhage et al. 2021, "A Mathematical Framework for
Transformer Circuits"). The shares must add up to the logit.
""")

nb.code("""
dla = interpret.direct_logit_attribution(lm, clean, target)
tolerance = 1e-3 if lm.model.dtype == torch.float32 else 5e-2 * max(1.0, abs(dla.logit))
print(f"logit of {target_text!r}: {dla.logit:.4f}; sum of the shares: {dla.total:.4f}")
assert abs(dla.total - dla.logit) < tolerance
print("the largest shares:", [(name, round(value, 2)) for name, value in dla.top(6)])
fig = dla.plot()
plt.show()
""")

nb.code("""
heads = dla.heads()
best_layer, best_head = np.unravel_index(heads.argmax(), heads.shape)
by_layer = heads.sum(1) + dla.mlps()
print(f"head L{best_layer}.H{best_head} writes the most {target_text!r} directly: {heads.max():+.2f} of the logit "
      f"{dla.logit:.2f}")
print("heads + MLP per layer:", np.round(by_layer, 2).tolist(), f"-> layer {int(by_layer.argmax())} writes the most")
""")

nb.md("""
## Activation patching

Direct attribution only sees what is written straight into the final vector. To find where the name
is *decided*, intervene: run the model on a **corrupt** text where the earlier speaker has another name
of the same token length, then copy (patch) one activation from the clean run into it, and see how
much of the clean logit comes back (Meng et al. 2022, "Locating and Editing Factual Associations in
GPT"; Heimersheim & Nanda 2024, "How to use and interpret activation patching"):

$$\\text{effect} = \\frac{\\text{patched} - \\text{corrupt}}{\\text{clean} - \\text{corrupt}}$$

1 means the patch alone restores the clean answer, 0 that it changes nothing.
""")

nb.code("""
candidates = ["ANGELO", "HAMLET", "BRUTUS", "CLAUDIO", "ISABEL", "LUCIO", "MARCUS", "OLIVIA", "PAULINA"]
length = len(lm.tokenizer(clean)["input_ids"])
other = next((name for name in candidates
              if len(lm.tokenizer(clean.replace(second, name))["input_ids"]) == length
              and lm.tokenizer(name, add_special_tokens=False)["input_ids"][0] != target), None)
assert other is not None, f"none of {candidates} has as many tokens as {second} for {lm.name}; add a name"
corrupt = clean.replace(second, other)
print(f"corrupt text: {second} -> {other} ({length} tokens each)")
patch = interpret.activation_patching(lm, clean, corrupt, target)
print(f"logit of {target_text!r}: clean {patch.clean_logit:.2f}, corrupt {patch.corrupt_logit:.2f}")
assert patch.effect[-1, -1] == 1.0  # the whole final vector at the last position carries the whole answer
fig = patch.plot()
plt.show()
""")

nb.code("""
name_positions = [p for p, (c, w) in enumerate(zip(patch.clean_tokens, patch.corrupt_tokens)) if c != w]
last = patch.effect.shape[1] - 1
at_name = patch.effect[:, name_positions].max(axis=1)
at_last = patch.effect[:, last]
moved = next(row for row in range(patch.effect.shape[0]) if at_last[row] > at_name[row])
top_heads = np.argsort(patch.head_effect, axis=None)[::-1][:3]
for row in range(patch.effect.shape[0]):
    print(f"{patch.layer_labels[row]:>14}: best patch at the name {at_name[row]:+.2f}, at the last position "
          f"{at_last[row]:+.2f}")
print(f"From row {moved} ({patch.layer_labels[moved]}) on, patching the last position restores more than patching "
      f"the name: the blocks up to there have moved the answer from the name to the end.")
print("heads whose output restores the most:", [f"L{i // patch.head_effect.shape[1]}.H{i % patch.head_effect.shape[1]}"
                                               f" {patch.head_effect.flat[i]:+.2f}" for i in top_heads])
""")

nb.md("""
Read the left heatmap from the bottom: as long as the restoring cells sit on the earlier speaker's name,
the information is still where it was written; the row where the last position lights up is where
attention has carried it to the end. The right heatmap points at the heads that do the carrying.

## Explorer

The explorer shows the likeliest next tokens read from the residual stream at one row and one
position. **Guided task:** keep the last position and move the row slider up from 0; note the first row
where the first token of the next speaker's name reaches the top three. At the last row the table is the
model's own top next tokens (checked below).
""")

nb.code("""
from gpt2lab.widgets import lens_explorer

explorer = lens_explorer(lens, layer=0, position=-1, top_k=8)
explorer.controls["row"].value = lens.n_rows - 1  # the last row: the model's own prediction
assert [i for i, _, _ in explorer.shown] == logits.topk(8).indices.tolist()
explorer.controls["row"].value = 0  # back to the embeddings for you to explore
explorer
""")

nb.exercise(
    """
    Where does the head with the largest direct share (from the attribution above) look from the last
    position? Use `gpt2lab.capture_attention(lm, clean)` and print the three tokens it weights most.
    """,
    """
    capture = gpt2lab.capture_attention(lm, clean)
    weights = capture.attention[best_layer, best_head, -1]
    looked_at = weights.topk(3)
    answer = [(int(p), capture.tokens[int(p)], round(float(w), 2)) for w, p in zip(looked_at.values, looked_at.indices)]
    print(f"Answer: head L{best_layer}.H{best_head} puts its weight on (position, token, weight): {answer}")
    on_name = float(weights[name_positions].sum())
    print(f"{on_name:.0%} of its attention is on the earlier speaker's name")
    """,
    title="where the top head looks",
)

nb.exercise(
    """
    The attribution freezes the final LayerNorm's scale. Recompute the shares with a scale from another
    text (the corrupt one) and check that they no longer add up to the clean logit. Why is the frozen
    scale part of the definition?
    """,
    """
    record = interpret.stream.record_stream(lm, corrupt)
    x = record.resid[-1, -1].double()
    other_scale = float(torch.sqrt(x.var(unbiased=False) + lm.model.transformer.ln_f.eps))
    clean_x = interpret.stream.record_stream(lm, clean).resid[-1, -1].double()
    own_scale = float(torch.sqrt(clean_x.var(unbiased=False) + lm.model.transformer.ln_f.eps))
    constant = dla.contributions["ln_f.bias"]
    rescaled = (dla.total - constant) * own_scale / other_scale + constant
    print(f"scale of the clean run {own_scale:.3f}, of the corrupt run {other_scale:.3f}")
    print(f"Answer: with the other scale the shares add up to {rescaled:.3f}, not {dla.logit:.3f}. The "
          "LayerNorm divides by a number that depends on the whole vector, so the logit is linear in the "
          "components only once that number is fixed; fixing it at this run's value makes the split exact.")
    assert abs(rescaled - dla.logit) > 1e-3 or abs(own_scale - other_scale) < 1e-6
    """,
    title="why the scale is frozen",
)

nb.summary([
    ("The residual stream is a sum that every block adds to; the final LayerNorm and the output layer read it. "
     "The logit lens applies that reading after every block; its last row is the model's output."),
    ("Direct logit attribution splits one logit, exactly, into a share per component once the LayerNorm's "
     "scale is frozen at its value in the run; it shows who writes the answer, not who computed it."),
    ("Activation patching intervenes: copying the clean residual stream at one layer and position into a "
     "corrupt run, or one head's output, shows where the answer lives and which heads move it; patching the "
     "final vector at the last position restores exactly all of it."),
], outro="Next: notebook 08 turns the model's next-token probabilities into text with different decoding strategies.")

nb.write()
