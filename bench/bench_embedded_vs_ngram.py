"""Held-out bits per character: the embedded GPT-2 against the best n-gram models, in one run.

Every model is scored on the same text: the last 10 % of tinyshakespeare (gpt2lab's fixed split),
trained on the first 90 %. Bits per character = total negative log2-likelihood / characters, so
character models, token models and the transformer compare directly.

    python bench/bench_embedded_vs_ngram.py [--write-card] [--model DIR]

Token n-grams are fitted over the embedded model's BPE and over BPEs of other sizes trained the same
way on the train split, so choosing the model's vocabulary cannot lower the bar it has to pass.
``--write-card`` records the figures in the model's folder (evaluation.json) and regenerates its
MODEL_CARD.md. ``--model DIR`` scores a candidate (a folder written by the recipe) instead of the
shipped model.

It also measures what issue 18 asks the model to show of GPT-2 (``gpt2lab.attention.induction``): the
best induction score on repeated random tokens seen in training, the copy ratio on repeated held-out
passages and the share of the most frequent held-out words that are single tokens, each against its
target (``gpt2lab.embedded_recipe.TARGETS``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gpt2lab  # noqa: E402
from gpt2lab import data  # noqa: E402
from gpt2lab.basics.bpe import train_bpe  # noqa: E402
from gpt2lab.basics.evaluation import score_text  # noqa: E402
from gpt2lab.basics.ngram import NGramLM  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-card", action="store_true")
    parser.add_argument("--max-char-n", type=int, default=8)
    parser.add_argument("--max-token-n", type=int, default=6)
    parser.add_argument("--bpe-sizes", default="512,1024,2048",
                        help="vocabulary sizes of the extra BPEs for token n-grams (comma-separated)")
    parser.add_argument("--model", default="embedded", help="embedded (default) or a folder written by the recipe")
    args = parser.parse_args(argv)

    train, val = data.tinyshakespeare_split()
    lm = gpt2lab.load(args.model, device="auto", verbose=False)
    rows = []

    def add(name, fit_s, bpc):
        rows.append({"model": name, "bits_per_char": round(bpc, 4), "seconds": round(fit_s, 2)})
        print(f"{name:<45} {bpc:7.4f} bits/char   ({fit_s:6.1f} s)", flush=True)

    print(f"validation split: {len(val):,} characters\n")
    for smoothing in ("kneser-ney", "add-k"):
        for n in range(1, args.max_char_n + 1):
            t = time.perf_counter()
            ng = NGramLM(n, smoothing=smoothing, k=0.01).fit(train)
            add(f"char {n}-gram, {smoothing}", time.perf_counter() - t, ng.bits_per_char(val))
    tokenizers = {f"embedded BPE, {len(lm.tokenizer):,}": lm.tokenizer}
    for size in sorted({int(v) for v in args.bpe_sizes.split(",") if v.strip()} - {len(lm.tokenizer)}):
        tokenizers[f"BPE {size:,}"] = train_bpe(train, vocab_size=size)
    for label, tokenizer in tokenizers.items():
        for n in range(1, args.max_token_n + 1):
            t = time.perf_counter()
            try:
                ng = NGramLM(n, level="token", tokenizer=tokenizer).fit(train)
            except ValueError as err:  # n-grams of a big vocabulary no longer fit gpt2lab.basics.ngram's 64-bit keys
                print(f"token {n}-gram ({label}): skipped, {err}")
                break
            add(f"token {n}-gram ({label}), kneser-ney", time.perf_counter() - t, ng.bits_per_char(val))
    for stride in (lm.context_length, lm.context_length // 2, lm.context_length // 4):  # smaller: more context
        t = time.perf_counter()
        score = score_text(lm, val, stride=stride)
        add(f"embedded GPT-2 {lm.n_params / 1e6:.1f}M, stride {stride}", time.perf_counter() - t,
            score.bits_per_char)

    ngrams = [r for r in rows if "gram" in r["model"]]
    best = min(ngrams, key=lambda r: r["bits_per_char"])
    neural = [r for r in rows if "embedded GPT-2" in r["model"]]
    best_neural = min(neural, key=lambda r: r["bits_per_char"])
    print(f"\nbest n-gram: {best['model']} at {best['bits_per_char']:.4f} bits/char")
    gap = best_neural["bits_per_char"] - best["bits_per_char"]
    print(f"embedded GPT-2: {best_neural['bits_per_char']:.4f} bits/char, {abs(gap):.4f} "
          f"{'better' if gap < 0 else 'worse'} than the best n-gram (ratio "
          f"{best_neural['bits_per_char'] / best['bits_per_char']:.3f})")
    beats = best_neural["bits_per_char"] < best["bits_per_char"]
    print("RESULT:", "the embedded model beats every n-gram" if beats else "an n-gram model is better!")
    from gpt2lab.attention.induction import gpt2_traits
    from gpt2lab.embedded_recipe import TARGETS

    t = time.perf_counter()
    traits = gpt2_traits(lm, train, val)
    print(f"\nwhat it shows of GPT-2 (measured in {time.perf_counter() - t:.1f} s):")
    for key, label, target, passes in TARGETS:
        print(f"  {label}: {traits[key]} (target {target}: {'met' if passes(traits[key]) else 'NOT MET'})")
    print(f"  random tokens, loss first copy {traits['random_loss_first']} / repeat {traits['random_loss_second']} "
          f"nats; held-out passages {traits['copy_loss_first']} / {traits['copy_loss_second']} nats")
    if args.write_card:
        from gpt2lab.embedded_recipe import write_model_card
        from gpt2lab.loading import embedded_path

        folder = embedded_path() if args.model == "embedded" else Path(args.model)
        (folder / "evaluation.json").write_text(json.dumps({
            "split": "tinyshakespeare last 10 % (gpt2lab.data.tinyshakespeare_split)", "rows": rows,
            "best_ngram": best, "embedded": best_neural, "traits": traits}, indent=2))
        write_model_card(folder)
        print(f"wrote {folder / 'evaluation.json'} and {folder / 'MODEL_CARD.md'}")
    return 0 if beats else 1


if __name__ == "__main__":
    sys.exit(main())
