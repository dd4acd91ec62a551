"""Generation speed, measured side by side in one run.

1. Overhead of ``gpt2lab.generate`` (validation, tokenising, left padding, seeding, decoding the texts)
   over calling ``model.generate`` directly with the same settings on the same prompt. Goal: <= 5 %.
2. The from-scratch decoders of ``gpt2lab.generation.decoding`` (greedy, sampling, beam search, with the KV cache)
   against ``model.generate`` with the same settings. Goal: within 1.5x.
3. A padded batch of prompts with n-gram blocking and a repetition penalty: ``gpt2lab.generate`` (whose
   processor skips each prompt's padding) against ``model.generate`` with transformers' own processors.
4. (``--no-cache``) the from-scratch greedy decoder with and without the KV cache at growing lengths, to
   show the quadratic cost of recomputing everything at every step.

Runs are interleaved (A, B, A, B, ...) so that background load hits both sides alike; medians are
reported. Default: the embedded model on whatever device ``load`` picks, about 1-2 minutes on a CPU.

    .venv/bin/python bench/bench_generation.py [--model gpt2] [--repeats 15] [--tokens 64] [--no-cache]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gpt2lab  # noqa: E402
from gpt2lab import generation  # noqa: E402
from gpt2lab.generation import decoding
from gpt2lab.generation.params import GenerationParams  # noqa: E402
from gpt2lab.tokens import left_pad  # noqa: E402

PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?\n"


def _sync(lm):
    if lm.device.type == "cuda":
        torch.cuda.synchronize()


def timed(lm, fn) -> float:
    _sync(lm)
    start = time.perf_counter()
    fn()
    _sync(lm)
    return time.perf_counter() - start


def side_by_side(lm, fns: dict, repeats: int) -> dict:
    """Median seconds of each function, run interleaved after one warm-up each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for i in range(repeats):
        order = list(fns.items()) if i % 2 == 0 else list(fns.items())[::-1]
        for name, fn in order:
            times[name].append(timed(lm, fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def direct_call(lm, params: GenerationParams):
    """model.generate on pre-tokenised input, the same settings gpt2lab.generate passes."""
    ids = lm.encode(params.input)
    mask = torch.ones_like(ids)
    kwargs = params.settings().transformers_kwargs()
    _, pad = generation.special_tokens(lm)

    def run():
        with generation.seeded(params.seed, lm.device):
            return lm.model.generate(input_ids=ids, attention_mask=mask, pad_token_id=pad, **kwargs)

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded", help="model to load (default: embedded)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved runs per measurement (default 15)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated per call (default 64)")
    parser.add_argument("--no-cache", action="store_true", help="also time greedy without the KV cache")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", generation.IgnoredParameterWarning)

    lm = gpt2lab.load(args.model, device=args.device, verbose=False)
    print(f"model {lm!r}, {args.tokens} new tokens per call, {args.repeats} interleaved runs, medians\n")

    # each mode with its published defaults (beam blocks repeated 2-grams), the real end-of-text handling on
    # both sides, identical settings everywhere; greedy also with n-gram blocking
    cases = {
        "sample-top-p x3": dict(mode="sample-top-p", num_return_sequences=3, seed=1),
        "greedy": dict(mode="greedy"),
        "greedy, 2-gram": dict(mode="greedy", no_repeat_ngram_size=2),
        "beam x4": dict(mode="beam", num_beams=4, num_return_sequences=1),
    }
    print("1. gpt2lab.generate vs model.generate (goal: overhead <= 5%)")
    print(f"   {'setting':18s} {'model.generate':>15s} {'gpt2lab':>10s} {'overhead':>9s}")
    overheads = []
    for label, extra in cases.items():
        params = GenerationParams.build(input=PROMPT, max_length=args.tokens, **extra)
        medians = side_by_side(lm, {"direct": direct_call(lm, params),
                                    "gpt2lab": lambda p=params: gpt2lab.generate(lm, params=p)}, args.repeats)
        overhead = medians["gpt2lab"] / medians["direct"] - 1
        overheads.append(overhead)
        print(f"   {label:18s} {medians['direct'] * 1e3:13.1f}ms {medians['gpt2lab'] * 1e3:8.1f}ms "
              f"{overhead:+8.1%}")

    print("\n2. from-scratch decoders vs model.generate (goal: ratio <= 1.5x)")
    print(f"   {'decoder':18s} {'model.generate':>15s} {'scratch':>10s} {'ratio':>7s}")
    ratios = []
    scratch = decoding._decode_call(use_cache=True)
    for label, extra in cases.items():
        params = GenerationParams.build(input=PROMPT, max_length=args.tokens, **extra)
        settings = params.settings()
        ids = lm.encode(PROMPT)
        mask = torch.ones_like(ids)
        _, pad = generation.special_tokens(lm)
        n = settings.num_return_sequences

        def ours(s=settings, n=n, seed=params.seed, ids=ids, mask=mask, pad=pad):
            with generation.seeded(seed, lm.device):
                return scratch(lm, ids, mask, s, n, pad)

        medians = side_by_side(lm, {"direct": direct_call(lm, params), "scratch": ours}, args.repeats)
        ratio = medians["scratch"] / medians["direct"]
        ratios.append(ratio)
        print(f"   {label:18s} {medians['direct'] * 1e3:13.1f}ms {medians['scratch'] * 1e3:8.1f}ms {ratio:6.2f}x")

    print("\n3. a padded batch of 3 prompts with n-gram blocking and a repetition penalty: gpt2lab's padding-aware")
    print("   processor vs transformers' own on the same batch (which reads the padding; goal: ratio <= 1.2x)")
    print(f"   {'setting':18s} {'model.generate':>15s} {'gpt2lab':>10s} {'ratio':>7s}")
    prompts = [PROMPT, "KING:", "JULIET:\nO Romeo, Romeo!"]
    for label, extra in {"greedy": dict(mode="greedy"), "beam x4": dict(mode="beam", num_beams=4,
                                                                        num_return_sequences=1)}.items():
        params = GenerationParams.build(input=prompts, max_length=args.tokens, no_repeat_ngram_size=2,
                                        repetition_penalty=1.2, **extra)
        _, pad = generation.special_tokens(lm)
        ids, mask = left_pad([lm.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts], pad, lm.device)
        kwargs = params.settings().transformers_kwargs()

        def leaky(ids=ids, mask=mask, kwargs=kwargs, pad=pad):
            return lm.model.generate(input_ids=ids, attention_mask=mask, pad_token_id=pad, **kwargs)

        medians = side_by_side(lm, {"direct": leaky, "gpt2lab": lambda p=params: gpt2lab.generate(lm, params=p)},
                               args.repeats)
        print(f"   {label:18s} {medians['direct'] * 1e3:13.1f}ms {medians['gpt2lab'] * 1e3:8.1f}ms "
              f"{medians['gpt2lab'] / medians['direct']:6.2f}x")

    if args.no_cache:
        print("\n4. greedy from scratch: with vs without the KV cache")
        print(f"   {'tokens':>6s} {'cache':>10s} {'no cache':>10s} {'ratio':>7s}")
        for tokens in (16, 32, 64, 128):
            if len(lm.encode(PROMPT)[0]) + tokens > lm.context_length:
                break
            medians = side_by_side(lm, {
                "cache": lambda t=tokens: decoding.greedy(lm, PROMPT, t),
                "none": lambda t=tokens: decoding.greedy(lm, PROMPT, t, use_cache=False)}, max(3, args.repeats // 3))
            print(f"   {tokens:6d} {medians['cache'] * 1e3:8.1f}ms {medians['none'] * 1e3:8.1f}ms "
                  f"{medians['none'] / medians['cache']:6.2f}x")

    worst_overhead, worst_ratio = max(overheads), max(ratios)
    print(f"\nsummary: worst overhead {worst_overhead:+.1%} (goal <= +5%), worst from-scratch ratio "
          f"{worst_ratio:.2f}x (goal <= 1.5x)")
    return 0 if worst_overhead <= 0.05 and worst_ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
