"""How well does the incoherence filter work? Precision and recall on held-out seeds and prompts.

Generates a labelled set with the embedded Shakespeare model (or any model): the settings of
``gpt2lab.experiments.incoherence.SANE_SETTINGS`` (label: fine) and ``DEGENERATE_SETTINGS`` (label: degenerate)
x seeds x prompts from held-out Shakespeare. The training split (the first seeds x the first prompts)
fits the scorer's reference statistics and its threshold; the test split (the other seeds x the
other prompts) is only scored. Prints both splits' precision/recall, the per-setting flag rates
on the test split, and the time taken.

    .venv/bin/python bench/eval_incoherence.py                     # about a minute on a 2-core CPU
    .venv/bin/python bench/eval_incoherence.py --prompts 24 --test-prompts 12 --seeds 8 --max-length 100
    .venv/bin/python bench/eval_incoherence.py --plot threshold.png

Generations are cached (``--no-cache`` to regenerate), so a second run only re-measures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "GPT2LAB_DATA_MIRROR" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["GPT2LAB_DATA_MIRROR"] = str(ROOT.parent / "shared" / "data")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded", help="model name or directory (default: embedded)")
    parser.add_argument("--prompts", type=int, default=12, help="prompts in all (default 12)")
    parser.add_argument("--test-prompts", type=int, default=6, help="of which held out (default 6)")
    parser.add_argument("--seeds", type=int, default=6, help="seeds in all (default 6)")
    parser.add_argument("--test-seeds", type=int, default=3, help="of which held out (default 3)")
    parser.add_argument("--samples", type=int, default=2, help="texts per prompt, setting and seed (default 2)")
    # 100 tokens are about 40 words with the embedded model (1024-token vocabulary, ~2.4 tokens a word)
    parser.add_argument("--max-length", type=int, default=100, help="new tokens per text (default 100)")
    parser.add_argument("--all-features", action="store_true",
                        help="use all four features (default: the subset with the best training-split F1)")
    parser.add_argument("--no-cache", action="store_true", help="generate again even if cached")
    parser.add_argument("--plot", type=Path, help="save the threshold plot to this PNG")
    args = parser.parse_args(argv)
    if not 0 < args.test_prompts < args.prompts or not 0 < args.test_seeds < args.seeds:
        parser.error("need 0 < --test-prompts < --prompts and 0 < --test-seeds < --seeds")

    import pandas as pd

    import gpt2lab
    from gpt2lab.experiments import incoherence, sweep

    start = time.perf_counter()
    lm = gpt2lab.load(args.model)
    prompts, _ = sweep.shakespeare_prompts(args.prompts)
    ids = list(prompts)
    train_prompts, test_prompts = ids[:-args.test_prompts], ids[-args.test_prompts:]
    train_seeds, test_seeds = list(range(args.seeds - args.test_seeds)), list(range(args.seeds - args.test_seeds,
                                                                                        args.seeds))
    common = {"defaults": {"max_length": args.max_length}, "samples": args.samples, "cache": not args.no_cache}
    # only the combinations the split keeps are generated
    parts = [incoherence.labelled_sweep(lm, {i: prompts[i] for i in train_prompts}, train_seeds, **common),
             incoherence.labelled_sweep(lm, {i: prompts[i] for i in test_prompts}, test_seeds, **common)]
    df = pd.concat(parts, ignore_index=True)
    generated = time.perf_counter() - start

    ev = incoherence.evaluate_filter(df, test_seeds=test_seeds, test_prompts=test_prompts,
                                     select_features=not args.all_features)
    elapsed = time.perf_counter() - start
    print(f"\nmodel {lm.name}: {len(df)} texts of {args.max_length} new tokens "
          f"({int(df['degenerate'].sum())} from degenerate settings), {(~df['cached']).sum()} generated now")
    print(f"train: seeds {train_seeds} x prompts {train_prompts}; held out: seeds {test_seeds} x prompts "
          f"{test_prompts}")
    print(ev.report())
    print("\nheld-out share flagged per setting:")
    print(ev.per_setting().to_string(float_format=lambda v: f"{v:.2f}"))
    medians = ev.test.groupby("setting", sort=False)[["repeated_3gram_share", "perplexity"]].median()
    print("\nheld-out medians per setting:")
    print(medians.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"\ntime: {elapsed:.1f} s in all, {generated:.1f} s loading + generating + measuring")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        incoherence.plot_threshold(ev)
        plt.tight_layout()
        plt.savefig(args.plot, dpi=100)
        print(f"threshold plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
