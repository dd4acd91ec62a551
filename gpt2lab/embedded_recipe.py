"""How the embedded model was made: ``python -m gpt2lab.embedded_recipe --out DIR``.

A 6-layer GPT-2 (the same ``GPT2LMHeadModel`` class as the real one, about 5M parameters) with its own
384-token byte-level BPE (1.7 characters per token), trained from scratch on the tinyshakespeare
train split with ``gpt2lab.training.loop``, in bfloat16 autocast where the hardware runs bf16 natively
(CPUs with AVX-512 BF16 or AMX run it about twice as fast as float32) and in float32 elsewhere (CPUs
without native bf16, such as AMD EPYC without AVX-512, emulate it several times slower); the run says
which it chose. Training windows start at every offset of the text in shuffled order;
the weights kept are those of the evaluation with the lowest validation loss. They are
stored as float16 safetensors to stay small; gpt2lab loads them as float32. A model card with the
measured figures is written beside the weights.
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Literal, get_args

import torch

from gpt2lab import data, files
from gpt2lab.basics.bpe import train_bpe
from gpt2lab.basics.evaluation import score_text
from gpt2lab.device import native_bf16
from gpt2lab.training.loop import PackedBlocks, RandomWindows, TrainConfig, load_checkpoint_weights, train

__all__ = ["ARCH", "DROPOUT", "DEFAULT_STEPS", "Precision", "build_model", "choose_precision", "training_loop_seconds",
           "main", "write_model_card"]

ARCH = dict(n_layer=6, n_head=8, n_embd=256, n_positions=256, vocab_size=384)
DROPOUT = 0.2
DEFAULT_STEPS = 5000
# the autocast precision asked for: "auto" picks bf16 only where it runs natively
Precision = Literal["auto", "bf16", "no"]


def build_model(tokenizer, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    # no attention dropout: it makes the SDPA kernel much slower on CPU for little gain here
    config = GPT2Config(**ARCH, resid_pdrop=DROPOUT, embd_pdrop=DROPOUT, attn_pdrop=0.0,
                        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    return GPT2LMHeadModel(config)


def choose_precision(choice: Precision = "auto", device: str = "cpu") -> Literal["bf16", "no"]:
    """The autocast precision of the run ("bf16" or "no"), printed with the reason.

    "auto" takes bf16 only where ``device`` runs it natively (``gpt2lab.device.native_bf16``): on a
    CPU that emulates bf16 the recipe would run several times slower than in float32."""
    if choice not in get_args(Precision):
        raise ValueError(f"precision must be one of auto, bf16, no; got {choice!r}")
    if choice == "auto":
        native = native_bf16(device)
        choice = "bf16" if native else "no"
        reason = "runs bf16 natively" if native else "has no native bf16 (it would be emulated, slowly)"
        print(f"gpt2lab recipe: {'bfloat16 autocast' if native else 'float32'}: this {device.upper()} {reason}")
    else:
        print(f"gpt2lab recipe: {'bfloat16 autocast' if choice == 'bf16' else 'float32'}, as asked")
    return choice


def training_loop_seconds(history: list) -> float:
    """Wall time of the training loop from its history, summed over the runs of a resumed training
    (each run's clock starts again at 0)."""
    total, previous = 0.0, 0.0
    for record in history:
        if "seconds" not in record:
            continue
        if record["seconds"] < previous:  # a resumed run: its clock restarted
            total += previous
        previous = record["seconds"]
    return total + previous


def _check_resumable(work_dir: Path, tokenizer):
    """A resumed run must use the very tokenizer its checkpoint was trained with."""
    from transformers import AutoTokenizer

    from gpt2lab.training.loop import latest_checkpoint

    last = latest_checkpoint(work_dir)
    if last is not None and (last / "tokenizer.json").exists():
        if AutoTokenizer.from_pretrained(str(last)).get_vocab() != tokenizer.get_vocab():
            raise RuntimeError(f"the tokenizer trained now differs from the one in {last}; delete {work_dir} "
                               "to start over")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent / "embedded" / "shakespeare-gpt2"))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--work-dir", default="build/embedded-run-v9", help="checkpoints while training")
    parser.add_argument("--precision", choices=get_args(Precision), default="auto",
                        help="autocast precision: auto = bf16 where this CPU/GPU runs it natively, else float32 (no)")
    parser.add_argument("--eval-batches", type=int, default=None,
                        help="batches per validation during training (default: the whole held-out split)")
    parser.add_argument("--score-chars", type=int, default=None,
                        help="held-out characters scored at the end (default: all of them)")
    args = parser.parse_args(argv)
    for name in ("eval_batches", "score_chars"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    precision = choose_precision(args.precision)

    train_text, val_text = data.tinyshakespeare_split()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_bpe(train_text, vocab_size=ARCH["vocab_size"])
    tokenizer.model_max_length = ARCH["n_positions"]
    _check_resumable(Path(args.work_dir), tokenizer)
    train_ids = tokenizer(train_text)["input_ids"]
    if args.score_chars is not None:
        val_text = val_text[:args.score_chars]
    val_ids = tokenizer(val_text)["input_ids"]
    block = ARCH["n_positions"]
    model = build_model(tokenizer, args.seed)
    val_blocks = PackedBlocks(val_ids, block)
    cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                      warmup_steps=min(100, args.steps // 10), min_lr_ratio=0.05, weight_decay=0.1,
                      eval_every=max(1, args.steps // 16),
                      eval_batches=args.eval_batches or -(-len(val_blocks) // args.batch_size),
                      checkpoint_every=200, keep_last=1,
                      keep_best=True,
                      sample_every=0, seed=args.seed, mixed_precision=precision)
    result = train(model, RandomWindows(train_ids, block, seed=args.seed), val_blocks, cfg,
                   tokenizer=tokenizer, output_dir=args.work_dir)
    train_seconds = training_loop_seconds(result.history)
    load_checkpoint_weights(model, result.best_checkpoint)  # the lowest validation loss, not the last step

    model.config.resid_pdrop = model.config.embd_pdrop = model.config.attn_pdrop = 0.0
    model.half().save_pretrained(out, safe_serialization=True)
    model.float()
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    tokenizer.save_pretrained(out)

    from gpt2lab.loading import from_model
    lm = from_model(model, tokenizer, name="shakespeare-gpt2", device="cpu")
    val = score_text(lm, val_text, stride=block // 2)
    stats = {
        "architecture": ARCH, "dropout": DROPOUT, "parameters": lm.n_params,
        "train_chars": len(train_text), "val_chars": len(val_text),
        "train_tokens": len(train_ids), "val_tokens": len(val_ids),
        "precision": precision, "steps": cfg.max_steps, "batch_size": cfg.batch_size, "block_size": block,
        "kept_step": result.best_step, "kept_val_loss_packed": result.best_val_loss,
        "tokens_seen": result.tokens_seen, "train_seconds": round(train_seconds, 1),
        "val_loss_nats_per_token": round(val.loss, 4), "val_bits_per_char": round(val.bits_per_char, 4),
        "val_stride": block // 2, "history": result.history,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "command": f"python -m gpt2lab.embedded_recipe --steps {args.steps} --batch-size {args.batch_size} "
                   f"--lr {args.lr} --seed {args.seed}",
    }
    files.write_json(out / "training_stats.json", stats)
    print(json.dumps({k: v for k, v in stats.items() if k != "history"}, indent=2))
    return stats


if __name__ == "__main__":
    main()


def write_model_card(folder: str | Path) -> Path:
    """(Re)write MODEL_CARD.md from training_stats.json and evaluation.json in ``folder``."""
    folder = Path(folder)
    stats = json.loads((folder / "training_stats.json").read_text())
    evaluation = json.loads((folder / "evaluation.json").read_text()) if (folder / "evaluation.json").exists() else None
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    arch = stats["architecture"]
    lines = [
        "# shakespeare-gpt2: gpt2lab's embedded model",
        "",
        "A small GPT-2 trained from scratch by gpt2lab's own code, shipped inside the package so the course runs",
        "offline. It uses the same `GPT2LMHeadModel` class as OpenAI's GPT-2, so everything in gpt2lab that works on",
        "it works on real GPT-2 too.",
        "",
        "| | |", "|---|---|",
        f"| architecture | GPT-2: {arch['n_layer']} layers, {arch['n_head']} heads, {arch['n_embd']}-dim, "
        f"context {arch['n_positions']} tokens |",
        f"| parameters | {stats['parameters']:,} (weights tied between token embedding and output layer) |",
        f"| tokenizer | byte-level BPE, {arch['vocab_size']:,} tokens, trained with `tokenizers` on the train split |",
        "| data | tinyshakespeare, first 90 % of the characters for training "
        f"({stats['train_chars']:,} chars = {stats['train_tokens']:,} tokens), last 10 % held out "
        f"({stats['val_chars']:,} chars) |",
        f"| training | {stats['steps']} steps x {stats['batch_size']} sequences x {stats['block_size']} tokens "
        f"({stats['tokens_seen']:,} tokens, ~{stats['tokens_seen'] / stats['train_tokens']:.0f} epochs), AdamW, "
        f"warmup + cosine, dropout {stats['dropout']} |",
        *([f"| weights kept | step {stats['kept_step']}, the evaluation with the lowest validation loss "
           f"({stats['kept_val_loss_packed']} nats/token over non-overlapping blocks) |"]
          if stats.get("kept_step") else []),
        f"| training time | {stats['train_seconds'] / 60:.1f} min on {stats['machine']}, "
        f"{'bfloat16 autocast' if stats.get('precision', 'bf16') == 'bf16' else 'float32'} |",
        f"| held-out loss | {stats['val_loss_nats_per_token']} nats/token, **{stats['val_bits_per_char']} bits/char** "
        f"(sliding window, stride {stats['val_stride']}) |",
        "| files | " + ", ".join(f"{k} ({v / 1e6:.2f} MB)" for k, v in sorted(sizes.items()) if k != "MODEL_CARD.md")
        + f"; total {sum(v for k, v in sizes.items() if k != 'MODEL_CARD.md') / 1e6:.2f} MB |",
        "| weights | float16 safetensors (loaded as float32 by gpt2lab) |",
        "",
        "## Reproduce", "",
        "```bash", f"GPT2LAB_DATA_MIRROR=../shared/data {stats['command']}", "```", "",
        "(`gpt2lab/embedded_recipe.py`; the data are fetched and checksum-verified by `gpt2lab.data`.)",
        *([stats["note"], ""] if stats.get("note") else [""]),
    ]
    if evaluation:
        lines += ["## Against n-gram models (same split, measured in one run)", "",
                  "`python bench/bench_embedded_vs_ngram.py --write-card`", "",
                  "| model | bits/char |", "|---|---|"]
        for row in sorted(evaluation["rows"], key=lambda r: r["bits_per_char"])[:8]:
            lines.append(f"| {row['model']} | {row['bits_per_char']:.4f} |")
        best, ours = evaluation["best_ngram"], evaluation["embedded"]
        verdict = ("so it beats every n-gram model" if ours["bits_per_char"] < best["bits_per_char"] else
                   "so it does **not** yet beat the best n-gram: on one million characters a Kneser-Ney "
                   "n-gram, which memorises exact contexts, is a strong baseline, and this model had "
                   f"{stats['train_seconds'] / 60:.0f} minutes of a shared 2-core CPU; a longer run of a larger "
                   "model is the known remedy")
        lines += ["", f"Best n-gram: {best['model']} at {best['bits_per_char']:.4f} bits/char; the embedded "
                      f"model reaches {ours['bits_per_char']:.4f}, {verdict}.", ""]
    lines += ["## Limits", "",
              f"A {stats['parameters'] / 1e6:.1f}M-parameter model that has read one million characters of "
              "Shakespeare: it writes speaker names,",
              "verse-shaped lines and Shakespearean words, but not sense. It knows nothing outside that corpus; use",
              "real GPT-2 (`GPT2LAB_MODEL=gpt2`) for modern English.", ""]
    card = folder / "MODEL_CARD.md"
    files.write_text(card, "\n".join(lines))
    return card
