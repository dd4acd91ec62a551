"""``gpt2lab finetune DATA --model NAME --steps N --run-name NAME``: fine-tuning from the command line."""
from __future__ import annotations

import argparse

from gpt2lab.training.finetuning import BAD_ROWS, DEFAULT_CHECKPOINT_DIR, FORMATS, finetune, is_main_process

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``gpt2lab finetune DATA --model NAME --steps N --run-name NAME ...``."""
    p = subparsers.add_parser("finetune", help="fine-tune a model on a .txt/.csv/.jsonl file or a folder",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="a .txt, .csv (one column of texts), .jsonl file, or a folder of .txt files")
    p.add_argument("--model", default=None, help="model name or folder (default: the run's base when resuming, "
                                                 "else $GPT2LAB_MODEL / gpt2 / the embedded model)")
    p.add_argument("--steps", type=int, default=1000, help="total optimizer steps of the run (default 1000)")
    p.add_argument("--run-name", default="run1", help="the run's folder name (default run1)")
    p.add_argument("--checkpoint-dir", default=DEFAULT_CHECKPOINT_DIR, help="where runs live (default checkpoint)")
    p.add_argument("--fresh", action="store_true", help="start the run afresh, deleting its old checkpoints")
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=None)
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--keep-last", type=int, default=1)
    p.add_argument("--keep-best", action="store_true",
                   help="also keep the weights of the lowest validation loss in RUN/best")
    p.add_argument("--sample-every", type=int, default=100)
    p.add_argument("--sample-length", type=int, default=100)
    p.add_argument("--sample-prompt", default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--val", default=None, help="a separate validation file")
    p.add_argument("--eval-stride", type=int, default=None)
    p.add_argument("--eval-max-tokens", type=int, default=None)
    p.add_argument("--format", choices=FORMATS, default=None)
    p.add_argument("--line-by-line", action="store_true", help="every line/row is one example, never cut")
    p.add_argument("--wrap", action=argparse.BooleanOptionalAction, default=None,
                   help="wrap examples in start/end tokens (default: only for CSV)")
    p.add_argument("--text-field", default=None, help="JSONL field / CSV column with the text (default text)")
    p.add_argument("--no-header", dest="csv_header", action="store_false", help="the CSV has no header row")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--bad-rows", choices=BAD_ROWS, default="error",
                   help="error (default): stop on bad rows; skip: leave them out and report them")
    p.add_argument("--only-train-transformer-layers", action="store_true", help="freeze the embeddings")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (peft) instead of all weights")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-alpha", type=int, default=16)
    p.add_argument("--mixed-precision", choices=("auto", "no", "bf16", "fp16"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu"), default="auto")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cli_finetune)


def _cli_finetune(args) -> int:
    lora = {"r": args.lora_r, "alpha": args.lora_alpha} if args.lora else False
    result = finetune(
        args.data, args.model, steps=args.steps, run_name=args.run_name, checkpoint_dir=args.checkpoint_dir,
        resume=not args.fresh, block_size=args.block_size, batch_size=args.batch_size, grad_accum=args.grad_accum,
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps, weight_decay=args.weight_decay,
        checkpoint_every=args.checkpoint_every, keep_last=args.keep_last, keep_best=args.keep_best,
        sample_every=args.sample_every,
        sample_length=args.sample_length, sample_prompt=args.sample_prompt, eval_every=args.eval_every,
        log_every=args.log_every, val_fraction=args.val_fraction, val=args.val, eval_stride=args.eval_stride,
        eval_max_tokens=args.eval_max_tokens, format=args.format, line_by_line=args.line_by_line, wrap=args.wrap,
        text_field=args.text_field, csv_header=args.csv_header, encoding=args.encoding, bad_rows=args.bad_rows,
        only_train_transformer_layers=args.only_train_transformer_layers, lora=lora,
        mixed_precision=args.mixed_precision, seed=args.seed, device=args.device,
        cache_dir=False if args.no_cache else args.cache_dir, progress=not args.no_progress)
    if is_main_process():
        print(f"run {result.run_name!r}: {result.steps} steps, latest checkpoint {result.checkpoint}")
        if result.perplexity_before is not None and result.perplexity_after is not None:
            print(f"validation perplexity: {result.perplexity_before:.3f} -> {result.perplexity_after:.3f}")
    return 0

