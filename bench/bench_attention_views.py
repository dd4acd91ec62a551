"""How long it takes to capture attention and render the views, for a 64-token input on GPT-2 (124M shape).

The model has GPT-2 small's configuration (12 layers x 12 heads, 768 dims) with random weights,
so no download is needed; sizes, and therefore timings, are those of the real model.

Measured side by side in one run (medians over --repeats):
  * a plain forward pass (SDPA kernel, no weights returned) vs capture_attention (eager kernel,
    all 144 heads' weights returned);
  * building each view in Python: bertviz head view, bertviz model view, the offline HTML page,
    matplotlib heatmaps of one layer and of the whole model;
  * with Chromium available (default; --no-browser to skip): the time from opening each page to
    its last line/cell drawn. bertviz's scripts come from a local npm cache (tests/bertviz_assets.py).

Usage:  .venv/bin/python bench/bench_attention_views.py [--tokens 64] [--repeats 5] [--no-browser]
        [--full-model-view]   # also draw bertviz's model view with all 12 layers (about 590k lines)
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # bertviz_assets, browser_support: shared with the browser tests
if "GPT2LAB_DATA_MIRROR" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["GPT2LAB_DATA_MIRROR"] = str(ROOT.parent / "shared" / "data")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import gpt2lab
from gpt2lab import data
from gpt2lab.attention import views

PASSAGE = ("First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. First Citizen: "
           "You are all resolved rather to die than to famish? All: Resolved. resolved. First Citizen: First, "
           "you know Caius Marcius is chief enemy to the people. All: We know't, we know't. First Citizen: Let "
           "us kill him, and we'll have corn at our own price. Is't a verdict? All: No more talking on't; let "
           "it be done: away, away!\n")


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gpt2_shaped_lm():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config())
    return gpt2lab.from_model(model, data.gpt2_tokenizer(), name="gpt2-shaped (random weights)", device="auto")


def browser_times(pages: dict[str, tuple[str, str]], repeats: int) -> dict[str, float]:
    """Median seconds from navigation to the last element drawn, per page (name -> (html, done-check JS))."""
    from bertviz_assets import fetch_scripts
    from browser_support import CHROMIUM_ARGS, PAGE_URL, find_chromium, route_page
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        print("chromium not found: browser timings skipped")
        return {}
    try:
        scripts = fetch_scripts()
    except RuntimeError as err:
        print(f"bertviz scripts unavailable ({err}); bertviz browser timings skipped")
        scripts = None
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for name, (page_html, done) in pages.items():
            if scripts is None and name.startswith("bertviz"):
                continue
            times = []
            for _ in range(repeats):
                context = browser.new_context()
                page = context.new_page()
                route_page(context, page_html, scripts)
                start = time.perf_counter()
                page.goto(PAGE_URL)
                page.wait_for_function(done, timeout=300_000, polling=50)
                page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted
                times.append(time.perf_counter() - start)
                context.close()
            results[name] = statistics.median(times)
        browser.close()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64, help="input length in tokens (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per Python measurement (default 5)")
    parser.add_argument("--browser-repeats", type=int, default=3, help="repeats per browser page (default 3)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    parser.add_argument("--full-model-view", action="store_true",
                        help="also time bertviz's model view with every layer (slow: ~590k SVG lines at 64 tokens)")
    args = parser.parse_args(argv)
    if args.tokens < 2 or args.repeats < 1 or args.browser_repeats < 1:
        parser.error("--tokens must be >= 2 and the repeat counts >= 1")

    lm = gpt2_shaped_lm()
    text = PASSAGE * (1 + args.tokens // 40)
    ids = lm.encode(text)[:, :args.tokens]
    print(f"model: {lm}\ninput: {ids.shape[1]} tokens, {lm.model.config.n_layer} layers x "
          f"{lm.model.config.n_head} heads\n")

    def forward():
        with torch.no_grad():
            lm.model(input_ids=ids)

    def capture():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the passage is cut to --tokens on purpose
            return gpt2lab.capture_attention(lm, text, max_tokens=args.tokens)

    forward()
    capture()  # warm-up: first calls allocate and pick kernels
    cap = capture()
    n_layers = len(cap.layers)
    per_layer = cap.n_heads * cap.n_tokens ** 2
    fit_layers = max(1, min(n_layers, views.MODEL_VIEW_MAX_LINES // per_layer))
    model_layers = list(range(fit_layers))

    def png(figure):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        plt.close(figure)

    rows = [("forward pass, SDPA, no weights", median_time(forward, args.repeats)),
            ("capture_attention (eager, all weights)", median_time(capture, args.repeats))]
    python_views = {
        "bertviz head view HTML (all layers)": lambda: views.bertviz_html(cap, "head"),
        f"bertviz model view HTML ({fit_layers} layers)": lambda: views.bertviz_html(cap, "model",
                                                                                   layers=model_layers),
        "offline HTML page (all layers)": lambda: views.offline_html(cap),
        "matplotlib plot_layer -> PNG": lambda: png(views.plot_layer(cap, 0, max_tokens=None)),
        "matplotlib plot_model -> PNG": lambda: png(views.plot_model(cap)),
    }
    for name, function in python_views.items():
        rows.append((name, median_time(function, args.repeats)))

    print(f"{'step (Python)':<48}{'median s':>10}")
    for name, seconds in rows:
        print(f"{name:<48}{seconds:>10.3f}")
    forward_s, capture_s = rows[0][1], rows[1][1]
    print(f"\ncapture / plain forward: {capture_s / forward_s:.2f}x")
    build_s = sum(seconds for _, seconds in rows[2:5])
    print(f"capture + build the three HTML views: {capture_s + build_s:.3f} s")

    if args.no_browser:
        return
    pages = {
        "bertviz head view": (views.bertviz_html(cap, "head"),
                              f"document.querySelectorAll('#attention line').length >= {per_layer}"),
        f"bertviz model view ({fit_layers} layers)": (
            views.bertviz_html(cap, "model", layers=model_layers),
            f"document.querySelectorAll('#vis svg line').length >= {fit_layers * per_layer}"),
        "offline view": (views.offline_html(cap),
                         "document.querySelector('div.g2l-attn[data-rendered]') !== null"),
    }
    if args.full_model_view:
        pages[f"bertviz model view (all {n_layers} layers)"] = (
            views.bertviz_html(cap, "model", max_tokens=None),
            f"document.querySelectorAll('#vis svg line').length >= {n_layers * per_layer}")
    timings = browser_times(pages, args.browser_repeats)
    if not timings:
        return
    print(f"\n{'page in headless Chromium (open -> drawn)':<48}{'median s':>10}{'+capture s':>12}")
    for name, seconds in timings.items():
        print(f"{name:<48}{seconds:>10.3f}{seconds + capture_s:>12.3f}")
    if "offline view" in timings and "bertviz head view" in timings:
        print(f"\nbertviz head view / offline view (browser): "
              f"{timings['bertviz head view'] / timings['offline view']:.1f}x")


if __name__ == "__main__":
    main()
