"""How much faster is gpt2lab's word importance than the original algorithm, for the same answer?

Runs, side by side on the same model and sentences:

* ORIGINAL: a faithful re-implementation of Guan et al.'s published ``Interpreter`` (one noise
  sample per step, one sentence at a time, Phi(x) recomputed every step, Adam at lr 0.01, the
  state after the step with the lowest single-sample loss kept, up to its published 5000 steps).
  It is given the same frozen weights, the same r^2, only the last position's logits and the same
  problem: one sigma per word, shared by the word's BPE pieces (per piece, the pieces of one word
  are interchangeable on a small BPE: the model copes when any few of them are lost, so which
  ones get the noise is arbitrary and the answer is not reproducible). So the comparison measures
  the algorithm, not avoidable waste. The published code starts from random ratios (sigma near
  half the ceiling), where words settle in worse basins of this non-convex objective (see
  gpt2lab.explain.importance and the "start" table below). So it runs twice: started as published, and
  started where gpt2lab starts (``ImportanceSettings.init``), which separates what the start buys
  from what the optimisation buys (``--original-start`` picks one);
* gpt2lab, one sentence at a time and all sentences in one batch (``word_importance`` with its
  defaults, including the early stop: a sentence leaves the batch once its answer has settled).

The reference answer of a sentence is a long gpt2lab run (twice, with different noise; a sentence
whose two long runs disagree has no single answer and is left out). "The same answer" = Spearman
rank correlation >= 0.9 with the reference, reached and kept at every later checkpoint. The time to
get there is measured for each sentence (optimisation time only); the script prints the medians
and their ratio, the cost of each tool's default run, the time to explain one 10-word sentence
(default settings, per word) and a faithfulness table for all attribution methods.

    .venv/bin/python bench/bench_importance.py                  # embedded model: 28 min on 2 CPU cores,
                                                                 # 22 min once the references are cached
    .venv/bin/python bench/bench_importance.py --original-start gpt2lab   # skip the published start
    .venv/bin/python bench/bench_importance.py --model gpt2     # real GPT-2 (needs the Hub or a cache)
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import ConstantInputWarning, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gpt2lab  # noqa: E402
from gpt2lab.explain.importance import ImportanceSettings, default_scale, objective
from gpt2lab.explain.outputs import frozen, output_variance
from gpt2lab.explain.words import split_words  # noqa: E402
from gpt2lab.fingerprint import model_fingerprint
from gpt2lab.tokens import bos_id

SENTENCES = [
    "To be, or not to be, that is the",
    "O Romeo, Romeo! wherefore art thou",
    "Shall I compare thee to a summer's day? Thou art more",
    "Now is the winter of our discontent made glorious summer by this sun of",
    "Friends, Romans, countrymen, lend me your",
    "If music be the food of love, play on; give me excess of",
    "The quality of mercy is not strained; it droppeth as the gentle",
    "All the world's a stage, and all the men and women merely",
]
TEN_WORDS = "My lord, the king is dead and all his"  # 10 words: "," counts as one
THRESHOLD = 0.9
PUBLISHED_STEPS = 5000  # the published Interpreter.optimize default


class OriginalInterpreter(torch.nn.Module):
    """Guan et al.'s Interpreter, re-implemented from the published description and code.

    ratio ~ N(0, 1) per word (its pieces share it, see the module docstring);
    loss = mean((Phi(x~) - Phi(x))^2 / r^2) - rate * mean(log sigmoid(ratio))
    with x~ = x + sigmoid(ratio) * N(0, I) * scale; one noise sample per step; Phi(x) is computed
    again at every step; after each Adam step the state is kept when the loss is the lowest so far.
    """

    def __init__(self, x: torch.Tensor, phi, scale: float, rate: float, regularization: torch.Tensor,
                 word_of_piece: torch.Tensor, init: float | None = None):
        super().__init__()
        self.s, self.d = x.shape
        self.word_of_piece = word_of_piece
        n_words = int(word_of_piece.max()) + 1
        # the published code starts from random ratios; init (a fraction of scale) starts every word there
        start = (torch.randn(n_words, 1, device=x.device) if init is None
                 else torch.full((n_words, 1), math.log(init / (1 - init)), device=x.device))
        self.ratio = torch.nn.Parameter(start)
        self.x, self.phi, self.scale, self.rate = x, phi, scale, rate
        self.regular = regularization  # the standard deviation of Phi over corpus sentences

    def forward(self):
        ratios = torch.sigmoid(self.ratio)[self.word_of_piece]
        x = self.x + 0.0
        x_tilde = x + ratios * torch.randn(self.s, self.d, device=x.device) * self.scale
        s = self.phi(x)
        s_tilde = self.phi(x_tilde)
        loss = torch.mean((s_tilde - s) ** 2 / self.regular ** 2)
        return loss - torch.mean(torch.log(torch.sigmoid(self.ratio))) * self.rate

    def sigma(self, ratio=None) -> np.ndarray:
        ratio = self.ratio if ratio is None else ratio
        return (torch.sigmoid(ratio).detach().cpu().numpy()[:, 0] * self.scale).astype(np.float64)

    def optimize(self, iterations: int, lr: float = 0.01, check_every: int = 25):
        """Returns [(optimisation seconds, sigma of the kept state)] every ``check_every`` steps."""
        min_loss, kept = None, self.ratio.detach().clone()
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        checkpoints, elapsed = [], 0.0
        for step in range(iterations):
            t0 = time.perf_counter()
            optimizer.zero_grad()
            loss = self()
            loss.backward()
            optimizer.step()
            if min_loss is None or min_loss > loss:
                kept = self.ratio.detach().clone()
                min_loss = loss.detach()
            elapsed += time.perf_counter() - t0
            if (step + 1) % check_every == 0:
                checkpoints.append((elapsed, self.sigma(kept)))
        return checkpoints


def original_run(lm, text: str, r2: torch.Tensor, scale: float, rate: float, steps: int, check_every: int,
                 seed: int, random_init: bool = False):
    torch.manual_seed(seed)
    interpreter = original_interpreter(lm, text, r2, scale, rate, None if random_init else ImportanceSettings().init)
    return interpreter.optimize(steps, lr=0.01, check_every=check_every)


def original_interpreter(lm, text: str, r2: torch.Tensor, scale: float, rate: float,
                         init: float | None) -> OriginalInterpreter:
    """The original's Interpreter for ``text`` (one ratio per word; init=None: random as published)."""
    split = split_words(lm.tokenizer, text)
    ids = list(split.input_ids)
    embed = lm.model.get_input_embeddings()
    with torch.no_grad():
        x = embed(torch.tensor(ids, device=lm.device)).detach()
        bos = embed(torch.tensor([bos_id(lm.tokenizer)], device=lm.device)).detach()

    def phi(x_words):  # the last position's next-token logits, conditioned on <|endoftext|> first
        inputs = torch.cat([bos, x_words]).unsqueeze(0)
        return lm.model(inputs_embeds=inputs, logits_to_keep=1, use_cache=False).logits[0, -1]

    return OriginalInterpreter(x, phi, scale, rate, r2.sqrt(), torch.tensor(split.token_to_word, device=lm.device),
                               init=init)


def time_to_answer(times, sigmas, reference) -> tuple[float | None, float]:
    """First checkpoint time from which every later checkpoint agrees with the reference (rho >= 0.9),
    or None when the last checkpoint does not; also the last checkpoint's rho."""
    rhos = [spearmanr(s, reference).statistic for s in sigmas]
    reached = None
    for i in range(len(rhos) - 1, -1, -1):
        if rhos[i] >= THRESHOLD:
            reached = float(times[i])
        else:
            break
    return reached, float(rhos[-1])


def references(lm, texts: list[str], long: dict, seed: int):
    """The two long reference runs, cached on disk (they are most of the bench's time): keyed by the
    model's weights, the settings and the texts."""
    import hashlib
    import pickle

    from gpt2lab import data

    key = hashlib.sha256(repr((model_fingerprint(lm.model), sorted(long.items()), texts, seed,
                               sorted(ImportanceSettings().__dict__.items()))).encode()).hexdigest()[:16]
    path = data.cache_dir() / "importance" / f"bench-references-{key}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                runs = pickle.load(fh)
            print(f"reference runs: from the cache {path}")
            return runs
        except Exception as err:  # written by another version of gpt2lab, or damaged: compute again
            print(f"reference runs: cache {path} unreadable ({type(err).__name__}); computing them again")
    runs = tuple(gpt2lab.word_importance(lm, texts, seed=seed + extra, **long) for extra in (1000, 2000))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    with open(partial, "wb") as fh:
        pickle.dump(runs, fh)
    os.replace(partial, path)  # a crash mid-write never leaves a half file under the real name
    return runs


def fmt(seconds: float | None, total: float) -> str:
    return f"{seconds:8.2f}" if seconds is not None else f">{total:7.2f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded", help="embedded (default), a local dir or a Hub id")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sentences", type=int, default=len(SENTENCES),
                        help=f"how many of the {len(SENTENCES)} sentences (default: all)")
    parser.add_argument("--max-original-steps", type=int, default=5000, help="5000 = the published default run")
    parser.add_argument("--check-every", type=int, default=25, help="original: steps between checkpoints")
    parser.add_argument("--original-start", choices=["both", "published", "gpt2lab"], default="both",
                        help="published: random ratios as in the published code; gpt2lab: gpt2lab's start "
                             "(separates the effect of the start from that of the optimisation); both (default)")
    parser.add_argument("--ladder", type=lambda v: [int(x) for x in v.split(",")], default=[25, 50, 100, 200, 400],
                        help="gpt2lab run lengths (steps) tried in turn, comma-separated")
    parser.add_argument("--samples", type=int, default=4, help="gpt2lab noise samples per step (its default)")
    parser.add_argument("--reference-steps", type=int, default=600)
    parser.add_argument("--reference-samples", type=int, default=8)
    parser.add_argument("--faithfulness-sentences", type=int, default=5)
    parser.add_argument("--skip-faithfulness", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 1 <= args.sentences <= len(SENTENCES):
        parser.error(f"--sentences must be between 1 and {len(SENTENCES)}")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # a run whose sigmas all sit at the ceiling ranks nothing: its rho prints as nan, no warning needed
    warnings.filterwarnings("ignore", category=ConstantInputWarning)
    started = time.perf_counter()
    lm = gpt2lab.load(args.model, device=args.device)
    texts = SENTENCES[:args.sentences]
    rate = 0.1
    scale = default_scale(lm)
    print(f"model {lm.name} ({lm.n_params / 1e6:.1f}M params) on {lm.device}, torch threads "
          f"{torch.get_num_threads()}; scale={scale:.3f}, rate={rate}")
    t0 = time.perf_counter()
    r2 = output_variance(lm)  # computed once per model and cached; both algorithms use it
    print(f"r^2 (output variance over corpus sentences): {time.perf_counter() - t0:.2f} s (cached after the first run)")

    # the reference: two long gpt2lab runs with different noise; a sentence on which they disagree has
    # no single answer (its words can settle in more than one way) and is left out of the timing
    t0 = time.perf_counter()
    long = dict(steps=args.reference_steps, samples=args.reference_samples, lr=0.1, stop_tol=None,
                progress=False)  # every step: a reference must not stop early
    ref_a, ref_b = references(lm, texts, long, args.seed)
    agree = [spearmanr(a.sigma, b.sigma).statistic for a, b in zip(ref_a, ref_b)]
    print(f"reference: 2 x gpt2lab {args.reference_steps} steps x {args.reference_samples} samples, lr 0.1: "
          f"{time.perf_counter() - t0:.1f} s; agreement of the two per sentence: "
          + ", ".join(f"{a:.2f}" for a in agree) + "\n")
    posed = [i for i, a in enumerate(agree) if a >= THRESHOLD]

    # where the search starts decides which basin each word ends in: compare the default start with
    # half the ceiling (where the published code's random ratios start on average) on the loss itself
    t0 = time.perf_counter()
    print("start: final loss (1024 fresh noise samples) and agreement of two seeds, default settings otherwise")
    print(f"{'sentence':40s} " + " ".join(f"{'init ' + str(v):>22s}" for v in (ImportanceSettings().init, 0.5)))
    by_init = {}
    for init in (ImportanceSettings().init, 0.5):
        one = gpt2lab.word_importance(lm, texts, init=init, seed=args.seed + 1, progress=False)
        two = gpt2lab.word_importance(lm, texts, init=init, seed=args.seed + 2, progress=False)
        by_init[init] = [(objective(lm, a).loss, spearmanr(a.sigma, b.sigma).statistic) for a, b in zip(one, two)]
    for i, text in enumerate(texts):
        print(f"{text[:40]:40s} "
              + " ".join(f"loss {by_init[v][i][0]:6.3f} rho {by_init[v][i][1]:5.2f}" for v in by_init))
    lower = sum(by_init[ImportanceSettings().init][i][0] < by_init[0.5][i][0] for i in range(len(texts)))
    print(f"the default start ends lower on {lower} of {len(texts)} sentences ({time.perf_counter() - t0:.0f} s)\n")
    if not posed:
        raise SystemExit("no sentence has a reproducible reference answer; use more --reference-steps")

    ladder = sorted(set(args.ladder))
    common = dict(samples=args.samples, seed=args.seed, progress=False, record_every=5)

    def gpt2lab_time(text_or_texts, refs):
        """Shortest run of the ladder whose answer reaches and keeps rho >= 0.9 (for every text):
        the time of that checkpoint. Returns (seconds or None, steps of the run, final rhos, seconds
        of the last run, steps of the last run, steps each text ran)."""
        for steps in ladder:
            results = gpt2lab.word_importance(lm, text_or_texts, steps=steps, **common)
            results = results if isinstance(results, list) else [results]
            rhos = np.array([[spearmanr(sig, ref).statistic for sig in res.sigma_trace]
                             for res, ref in zip(results, refs)])
            reached = None
            for c in range(rhos.shape[1] - 1, -1, -1):
                if (rhos[:, c] >= THRESHOLD).all():
                    reached = float(results[0].trace_seconds[c])
                else:
                    break
            ran = [r.steps_run for r in results]
            if reached is not None:
                return reached, steps, rhos[:, -1], float(results[0].trace_seconds[-1]), max(ran), ran
        return None, None, rhos[:, -1], float(results[0].trace_seconds[-1]), max(ran), ran

    starts = ["published", "gpt2lab"] if args.original_start == "both" else [args.original_start]
    mine_rows, orig_rows = [], {start: [] for start in starts}
    with frozen(lm.model):
        for i in posed:
            text, ref = texts[i], ref_a[i].sigma
            # interleave the runs so that a busy machine slows all of them alike
            mine_t, mine_steps, mine_rho, last_s, last_steps, _ = gpt2lab_time(text, [ref])
            t0 = time.perf_counter()
            default = gpt2lab.word_importance(lm, text, seed=args.seed, progress=False)
            mine_rows.append(dict(text=text, words=len(ref), mine=mine_t, mine_steps=mine_steps,
                                  mine_rho=float(mine_rho[0]), step_ms=last_s / last_steps * 1000,
                                  default_s=time.perf_counter() - t0, default_steps=default.steps_run,
                                  default_rho=spearmanr(default.sigma, ref).statistic))
            for start in starts:
                checkpoints = original_run(lm, text, r2, scale, rate, args.max_original_steps, args.check_every,
                                           args.seed + i, random_init=start == "published")
                orig_t, orig_rho = time_to_answer([c[0] for c in checkpoints], [c[1] for c in checkpoints], ref)
                orig_rows[start].append(dict(orig=orig_t, orig_total=checkpoints[-1][0], orig_rho=orig_rho))

    medians = {}
    for start in starts:
        how = "as published (random ratios)" if start == "published" else "where gpt2lab starts"
        print(f"\ntime to the reference answer (Spearman >= {THRESHOLD} from then on), seconds, one sentence at a "
              f"time; original started {how}")
        print(f"gpt2lab: the shortest of {ladder} steps x {args.samples} samples that gets there; "
              f"original: checkpoints every {args.check_every} of up to {args.max_original_steps} steps")
        print(f"{'sentence':40s} {'words':>6s} {'original':>9s} {'gpt2lab':>9s} {'steps':>6s} {'ratio':>9s}  "
              "final rho orig / gpt2lab")
        rows = [dict(m, **o) for m, o in zip(mine_rows, orig_rows[start])]
        for r in rows:
            if r["mine"] is None:
                r["ratio"], shown = None, "     n/a"
                note = " (gpt2lab did not get there in the longest run)"
            else:
                r["ratio"] = (r["orig"] if r["orig"] is not None else r["orig_total"]) / r["mine"]
                bound = ">" if r["orig"] is None else " "
                shown = f"{bound}{r['ratio']:6.1f}x"
                note = " (the original never got there: a lower bound)" if r["orig"] is None else ""
            print(f"{r['text'][:40]:40s} {r['words']:6d} {fmt(r['orig'], r['orig_total'])} "
                  f"{fmt(r['mine'], 0.0) if r['mine'] is not None else '     n/a'} {r['mine_steps'] or '':>6} "
                  f"{shown:>9s}  {r['orig_rho']:.2f} / {r['mine_rho']:.2f}{note}")
        timed = [r for r in rows if r["ratio"] is not None]
        if not timed:
            print("gpt2lab reached the reference answer on no sentence; try a longer --ladder")
            continue
        med_o = statistics.median(r["orig"] if r["orig"] is not None else r["orig_total"] for r in timed)
        med_m = statistics.median(r["mine"] for r in timed)
        never = sum(r["orig"] is None for r in timed)
        bound = ">= " if never else ""
        medians[start] = (med_o, bound)
        print(f"over the {len(timed)} sentences gpt2lab answered: median time original {bound}{med_o:.2f} s, "
              f"gpt2lab {med_m:.2f} s -> {bound}{med_o / med_m:.1f}x faster (median of per-sentence ratios "
              f"{bound}{statistics.median(r['ratio'] for r in timed):.1f}x); the original never got there on "
              f"{never} of {len(timed)}")

    answered = [r for r in mine_rows if r["mine"] is not None]
    if answered:
        batch_t, batch_steps, _, _, _, ran = gpt2lab_time([r["text"] for r in answered],
                                                     [ref_a[texts.index(r["text"])].sigma for r in answered])
        if batch_t is not None:
            per = batch_t / len(answered)
            print(f"\ngpt2lab with those {len(answered)} sentences in one batch ({batch_steps} steps): {batch_t:.2f} s "
                  f"until all agree = {per:.2f} s per sentence; "
                  + "; ".join(f"{bound}{med_o / per:.1f}x faster than the original started "
                              f"{'as published' if start == 'published' else 'like gpt2lab'}"
                              for start, (med_o, bound) in medians.items())
                  + f"; steps run per sentence {ran}")
        else:
            print(f"\ngpt2lab batched: not every sentence kept rho >= {THRESHOLD} within {ladder[-1]} steps")
    rows = [dict(m, **o) for m, o in zip(mine_rows, orig_rows[starts[0]])]
    o_step = statistics.median(r["orig_total"] / args.max_original_steps * 1000 for r in rows)
    m_step = statistics.median(r["step_ms"] for r in rows)
    print(f"cost per step: original {o_step:.1f} ms (1 sample, Phi(x) again), gpt2lab {m_step:.1f} ms "
          f"({args.samples} samples) = {o_step * args.samples / m_step:.1f}x cheaper per noise sample")
    m_default = statistics.median(r["default_s"] for r in rows)
    print(f"each tool's default run, median per sentence: original {PUBLISHED_STEPS} steps = "
          f"{PUBLISHED_STEPS * o_step / 1000:.1f} s, gpt2lab (at most {ImportanceSettings().steps} steps, early stop; "
          f"steps run {[r['default_steps'] for r in rows]}) = {m_default:.2f} s -> "
          f"{PUBLISHED_STEPS * o_step / 1000 / m_default:.1f}x; rho of gpt2lab's default answer with the reference: "
          + ", ".join(f"{r['default_rho']:.2f}" for r in rows))

    # one 10-word sentence with the default settings, per word
    gpt2lab.word_importance(lm, TEN_WORDS, steps=3, progress=False)  # warm-up
    times = []
    for rep in range(3):
        t0 = time.perf_counter()
        res = gpt2lab.word_importance(lm, TEN_WORDS, seed=rep, progress=False)
        times.append(time.perf_counter() - t0)
    print(f"\nexplaining one 10-word sentence ({len(res.words)} words, defaults: {res.settings['steps']} steps x "
          f"{res.settings['samples']} samples): median {statistics.median(times):.2f} s over 3 runs")
    print("  most to least important:", " | ".join(res.ranking()), f"-> next {res.prediction!r}")

    if not args.skip_faithfulness:
        from gpt2lab.explain.attribution import faithfulness_table

        t0 = time.perf_counter()
        report = faithfulness_table(lm, SENTENCES[:args.faithfulness_sentences], metric="kl", mode="remove",
                                    progress=False)
        print(f"\nfaithfulness over {args.faithfulness_sentences} sentences ({time.perf_counter() - t0:.0f} s): "
              "area = mean KL(full || words removed, most important first); gain = area / random orders' area")
        print(report)
        print("\nmean Spearman agreement between methods:")
        print(report.agreement.round(2).to_string())
    print(f"\nbench total: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
