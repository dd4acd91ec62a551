"""Small trained models for the tests of the explorers of lessons 04 and 06, each trained in seconds on
a CPU: a character GPT with its training snapshots, and the induction toy with its recorded attention.

Each function is self-contained (its imports inside), because the browser harness runs its source in
the harness notebook's kernel (``explorer_harness.py``).
"""
from __future__ import annotations


def char_snapshots(steps: int = 300, every: int = 100, n_chars: int = 100_000, sample_tokens: int = 60,
                   seed: int = 0):
    """Train a one-block character GPT on the first ``n_chars`` of tinyshakespeare for ``steps`` steps,
    keeping :class:`~gpt2lab.model.snapshots.Snapshots` every ``every`` steps. Returns (snapshots, decode,
    prompt ids, live, vocabulary): ``live`` maps each kept step to the text the model being trained wrote
    at that moment (``"ROMEO:\\n"`` + ``sample_tokens`` characters, temperature 0.8, seed 0: what the
    explorer must show there), ``vocabulary`` the words of the training text."""
    import torch

    from gpt2lab import data
    from gpt2lab.model import GPT, GPTConfig, Snapshots
    from gpt2lab.training import RandomWindows, TrainConfig, train
    from gpt2lab.widgets import words_of

    text = data.tinyshakespeare_split()[0][:n_chars]
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    prompt = [index[c] for c in "ROMEO:\n"]

    def decode(ids):
        return "".join(chars[int(i)] for i in ids)

    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=len(chars), n_layer=1, n_head=2, d_model=32, context_length=32))
    snapshots, live = Snapshots(model, every=every), {}

    def write_now(step):
        generator = torch.Generator().manual_seed(0)
        live[step] = decode(model.sample(torch.tensor(prompt), sample_tokens, temperature=0.8, generator=generator))

    def on_log(record):
        snapshots(record)
        if record["step"] in snapshots.weights and record["step"] not in live:
            write_now(record["step"])

    write_now(0)
    config = TrainConfig(max_steps=steps, batch_size=16, learning_rate=1e-2, warmup_steps=10, log_every=every,
                         eval_every=steps, progress=False, device="cpu", seed=seed)
    train(model, RandomWindows(torch.tensor([index[c] for c in text]), 32), config=config, on_log=on_log)
    return snapshots, decode, prompt, live, set(words_of(text))


def induction_toy(steps: int = 600, eval_every: int = 100):
    """The induction toy of lesson 06 (the quick task), trained for ``steps`` steps with its scores and
    attention recorded every ``eval_every`` steps: an :class:`~gpt2lab.model.induction.InductionRun`."""
    from gpt2lab.model import induction

    return induction.train_induction_toy(induction.ToyTask(**induction.QUICK_TASK), steps=steps,
                                         eval_every=eval_every)
