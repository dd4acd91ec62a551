"""How fast every explorer of the course answers, measured in the browser (embedded model).

JupyterLab runs the harness notebook of the browser tests (tests/explorer_harness.py: one section
per explorer, GPT2LAB_MODEL=embedded) in headless Chromium; for each explorer a round of user actions
(slider keys, dropdown choices, toggles, typing) is repeated --rounds times, every action moving to a
value not seen before where the control allows it (so cached answers do not flatter the numbers).
An answer time runs from the action to the last change of what the explorer shows. Printed per
explorer: the number of answers, their median and maximum, and whether the median meets the 1 s goal.
The word-importance search started by its button is long work by design: it is timed apart (it shows
a progress bar meanwhile), its controls' answers are in the table.

Usage:  .venv/bin/python bench/bench_explorers.py [--rounds 3] [--only settings decoding ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the browser harness, shared with the tests
if "GPT2LAB_DATA_MIRROR" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["GPT2LAB_DATA_MIRROR"] = str(ROOT.parent / "shared" / "data")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from explorer_harness import COURSE_EXPLORERS, ExplorerLab, median  # noqa: E402

GOAL_S = 1.0
WORDS = ["crown", "winter", "sword", "night", "honour", "tongue", "river", "ghost", "storm", "letter"]


def ngram_round(ex, r: int) -> None:
    ex.key("n \\(context", "ArrowRight" if r % 2 == 0 else "ArrowLeft")
    ex.type(".widget-text input[type=number]", str(100 + r))
    ex.toggle("add-k" if r % 2 == 0 else "kneser-ney")


def tokenizer_round(ex, r: int) -> None:
    ex.type(".widget-textarea textarea", f"The {WORDS[r % len(WORDS)]}s of Denmark, {r} times.")
    ex.toggle("Shakespeare" if r % 2 == 0 else "GPT-2")
    ex.toggle("text" if r % 2 == 0 else "markers")


def attention_round(ex, r: int) -> None:
    ex.choose(f"layer {(r + 1) % 3}", nth=0)
    ex.choose(f"head {(r + 1) % 4}", nth=1)
    ex.type(".widget-textarea textarea", f"The {WORDS[r % len(WORDS)]} and the king. The {WORDS[r % len(WORDS)]}")


def decoding_round(ex, r: int) -> None:
    if r == 0:
        ex.choose("sample")
    ex.key("temperature", "ArrowRight")
    ex.key("top_k", "ArrowLeft")
    ex.key("top_p", "ArrowLeft")
    ex.type(".widget-text input[type=number]", str(100 + r))
    ex.type(".widget-textarea textarea", f"{WORDS[r % len(WORDS)].upper()}:\n")


def settings_round(ex, r: int) -> None:
    ex.key("seed", "ArrowRight")
    ex.key("temperature", "ArrowRight")
    ex.choose("sample-top-k" if r % 2 == 0 else "sample-top-p")
    ex.key("top_k" if r % 2 == 0 else "top_p", "ArrowLeft")


def importance_round(ex, r: int) -> None:
    ex.type(".widget-text input", f"The {WORDS[r % len(WORDS)]} is {'not ' * (r + 1)}what it seems")
    ex.key("lambda", "ArrowRight")
    ex.key("steps", "ArrowLeft")


def memorisation_round(ex, r: int) -> None:
    ex.key("n-gram", "ArrowLeft")
    ex.key("temperature", "ArrowRight")
    ex.key("seed", "ArrowRight")


def lens_round(ex, r: int) -> None:
    ex.key("row", "ArrowRight")
    ex.act(lambda: ex.area.locator(".widget-dropdown select").first.select_option(index=r + 1))


def training_round(ex, r: int) -> None:
    ex.key("training step", "ArrowRight")
    ex.key("temperature", "ArrowRight")
    ex.key("seed", "ArrowRight")


def induction_round(ex, r: int) -> None:
    ex.key("training step", "ArrowRight")
    ex.act(lambda: ex.area.locator(".widget-dropdown select").first.select_option(index=r + 1))


ROUNDS = {"ngram": ngram_round, "tokenizer": tokenizer_round, "attention": attention_round,
          "decoding": decoding_round, "settings": settings_round, "importance": importance_round,
          "memorisation": memorisation_round, "lens": lens_round, "training": training_round,
          "induction": induction_round}


def importance_search(ex) -> float:
    """Seconds of one word-importance search started by the button (long work that shows progress)."""
    started = time.monotonic()
    ex.area.locator("button", has_text="explain").first.click()
    ex.page.wait_for_function("el => !el.textContent.includes('explaining') && !el.querySelector('button:disabled')",
                              arg=ex.area.element_handle(), timeout=300_000, polling=100)
    return time.monotonic() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of actions per explorer (default 3)")
    parser.add_argument("--only", nargs="*", choices=COURSE_EXPLORERS, help="measure only these explorers")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    names = tuple(args.only or COURSE_EXPLORERS)
    print(f"explorers in JupyterLab + headless Chromium, embedded model, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds")
    rows, search = [], None
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with ExplorerLab(base / "root", base / "home", base / "shots", names=names) as lab:
            print(f"harness notebook opened and ran in {lab.open_seconds:.1f} s")
            for name in names:
                ex = lab.explorer(name)
                for r in range(args.rounds):
                    ROUNDS[name](ex, r)
                if name == "importance":
                    search = (importance_search(ex), ex.readout("steps"), ex.readout("samples"))
                measured = [t for t in ex.times if t == t]
                rows.append((name, len(measured), median(measured), max(measured, default=float("nan"))))
                if lab.errors or lab.callback_errors():
                    print(f"{name}: errors: {lab.errors} {lab.callback_errors()}")
    print(f"\n{'explorer':<14}{'answers':>8}{'median s':>10}{'max s':>8}  goal (median <= {GOAL_S:g} s)")
    for name, count, mid, top in rows:
        print(f"{name:<14}{count:>8}{mid:>10.2f}{top:>8.2f}  {'met' if mid <= GOAL_S else 'MISSED'}")
    if search is not None:
        seconds, steps, samples = search
        print(f"\nword importance: one search from the button (up to {steps} steps x {samples} samples): "
              f"{seconds:.1f} s, with a progress bar")
    return 0 if all(mid <= GOAL_S for _, _, mid, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
