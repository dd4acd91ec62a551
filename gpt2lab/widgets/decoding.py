"""Interactive explorers for the notebooks (ipywidgets).

``decoding_explorer(lm)``: type a prompt, pick a decoding mode, move the temperature / top-k / top-p /
beam sliders and see, for the next token, the model's distribution, what the mode keeps of it (with the
cut-offs drawn), and a few live continuations generated with those settings.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import torch

from gpt2lab.generation import decoding
from gpt2lab.generation import pipeline as generation
from gpt2lab.generation.params import MAX_SEED, MODE_PARAMETERS, MODES, GenerationParams, InvalidParameterError, applies
from gpt2lab.widgets.common import check_ranges, figure_png, task_line, with_static_view

__all__ = ["DECODING_TASK", "distribution_html", "summary_text", "distribution_figure", "decoding_explorer"]

DECODING_TASK = ("pick sample and drag temperature to its lowest: the top token's share nears 1 and the "
                 "continuations agree; then pick sample-top-p and lower top_p: fewer tokens stay in the draw.")

if TYPE_CHECKING:
    from gpt2lab.loading import LM

# which slider belongs to which parameter
_SLIDER_PARAM = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "num_beams": "num_beams"}


def _settings_for(mode: str, temperature: float, top_k: int, top_p: float) -> dict:
    """The transforms the mode applies to the next-token distribution (as in GenerationParams.settings)."""
    chosen = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    params = GenerationParams.build(mode=mode, **{k: v for k, v in chosen.items() if k in MODE_PARAMETERS[mode]})
    s = params.settings()
    return dict(sampling=s.strategy == "sample", temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)


def distribution_html(view: decoding.NextTokenView, mode: str, top_n: int = 15, num_beams: int = 5) -> str:
    """An HTML table of the likeliest next tokens: probability under the model, after the mode's transforms,
    and whether the mode can still pick them."""
    model_p = view.stage(0)
    final = view.final
    top = torch.topk(model_p, min(top_n, model_p.shape[0])).indices.tolist()
    if mode == "greedy":
        chosen = {int(torch.argmax(model_p))}
        after = {i: (1.0 if i in chosen else 0.0) for i in top}
    elif mode == "beam":
        chosen = set(torch.topk(model_p, min(num_beams, model_p.shape[0])).indices.tolist())
        after = {i: float(model_p[i]) if i in chosen else 0.0 for i in top}
    else:
        chosen = {i for i in top if float(final[i]) > 0}
        after = {i: float(final[i]) for i in top}
    label = {"greedy": "picked", "beam": "starts a beam"}.get(mode, "p after transforms")
    rows = []
    for rank, i in enumerate(top, 1):
        token = html.escape(repr(view.tokenizer.decode([i]))[1:-1])
        kept = i in chosen
        rows.append(f"<tr class='{'kept' if kept else 'cut'}'><td>{rank}</td><td><code>{token}</code></td>"
                    f"<td>{float(model_p[i]):.4g}</td><td>{after[i]:.4g}</td><td>{'yes' if kept else 'cut'}</td></tr>")
    return ("<table class='gpt2lab-distribution' style='font-size:90%'>"
            f"<thead><tr><th>#</th><th>token</th><th>p model</th><th>{label}</th><th>kept</th></tr></thead>"
            "<tbody>" + "".join(rows) + "</tbody></table>")


def summary_text(view: decoding.NextTokenView, mode: str, num_beams: int = 5) -> str:
    vocab = view.probs.shape[1]
    if mode == "greedy":
        best = int(torch.argmax(view.stage(0)))
        return f"greedy: always the single likeliest token ({view.tokenizer.decode([best])!r}) of {vocab}"
    if mode == "beam":
        return (f"beam search: the {num_beams} likeliest tokens start the {num_beams} beams; later steps compare "
                f"whole continuations by total log-probability")
    kept = view.kept()
    mass = float(view.stage(0)[view.final > 0].sum())
    return (f"{mode}: {kept} of {vocab} tokens can be drawn; under the model they hold {mass:.1%} of the "
            f"probability (renormalised to 100% before drawing)")


def distribution_figure(view: decoding.NextTokenView, mode: str, top_k: int, top_p: float, top_n: int = 15):
    """Bar chart of the top tokens (model vs after transforms) with the top-k and top-p cut-offs."""
    import matplotlib.pyplot as plt

    model_p = view.stage(0)
    order = torch.topk(model_p, min(top_n, model_p.shape[0])).indices
    labels = [repr(view.tokenizer.decode([int(i)]))[1:-1] for i in order]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = range(len(order))
    ax.bar(x, model_p[order].numpy(), color="#cccccc", label="model")
    if mode not in ("greedy", "beam"):
        ax.bar(x, view.final[order].numpy(), width=0.5, color="#1f77b4", label="after transforms")
        if mode == "sample-top-p":
            # what top-p sees: the cumulative probability after temperature, likeliest tokens first
            tempered = view.stage(1) if view.stage_names[1:2] and view.stage_names[1].startswith("temperature") \
                else model_p
            cumulative = torch.cumsum(torch.sort(tempered, descending=True).values, 0)[:len(order)]
            ax2 = ax.twinx()
            ax2.plot(list(x), cumulative.numpy(), color="#d62728", marker=".", lw=1)
            ax2.set_ylim(0, 1.05)
            ax2.set_ylabel("cumulative p (after temperature)", color="#d62728", fontsize=8)
            ax2.axhline(top_p, color="#d62728", ls="--", lw=1)
            ax2.text(len(order) - 0.5, top_p, f"top_p={top_p:g}", color="#d62728", ha="right", va="bottom")
        if mode == "sample-top-k" and 0 < top_k < len(order):
            ax.axvline(top_k - 0.5, color="k", ls="--", lw=1)
            ax.text(top_k - 0.4, ax.get_ylim()[1] * 0.9, f"top_k={top_k}", ha="left")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("probability")
    ax.set_title(f"next token after {view.prompt[-40:]!r} ({mode})", fontsize=10)
    ax.legend(loc="upper center", fontsize=8)
    fig.tight_layout()
    return fig


def decoding_explorer(lm: LM, prompt: str = "ROMEO:\n", *, top_n: int = 15, sample_tokens: int = 20,
                      n_samples: int = 3, seed: int = 0, live_samples: bool = True):
    """An ipywidgets explorer of decoding settings for ``lm``; display the returned widget.

    Controls: prompt, mode, temperature, top-k, top-p, num_beams, seed. Shown: a summary line, an HTML
    table of the ``top_n`` likeliest next tokens (class ``gpt2lab-distribution``: probability under the
    model and after the mode's transforms, and whether the token survives), a chart with the cut-offs,
    and ``n_samples`` continuations of ``sample_tokens`` tokens generated with the current settings
    (class ``gpt2lab-samples``; a fixed seed, so moving a slider shows its effect, not new luck).
    The widget's ``refresh()`` recomputes; ``controls`` maps names to the control widgets.
    """
    import ipywidgets as w

    check_ranges(top_n=(top_n, 1, 100), sample_tokens=(sample_tokens, 1, 200), n_samples=(n_samples, 1, 10),
                 seed=(seed, -1, MAX_SEED))
    style = {"description_width": "90px"}
    layout = w.Layout(width="420px")
    controls = {
        "prompt": w.Textarea(value=prompt, description="prompt", style=style, layout=w.Layout(width="640px")),
        "mode": w.Dropdown(options=list(MODES), value="sample-top-p", description="mode", style=style),
        "temperature": w.FloatSlider(value=0.7, min=0.05, max=2.0, step=0.05, description="temperature",
                                     continuous_update=False, style=style, layout=layout),
        "top_k": w.IntSlider(value=50, min=0, max=200, description="top_k", continuous_update=False,
                             style=style, layout=layout),
        "top_p": w.FloatSlider(value=0.92, min=0.01, max=1.0, step=0.01, description="top_p",
                               continuous_update=False, style=style, layout=layout),
        "num_beams": w.IntSlider(value=4, min=1, max=8, description="num_beams", continuous_update=False,
                                 style=style, layout=layout),
        "seed": w.IntText(value=seed, description="seed", style=style, layout=w.Layout(width="200px")),
        "samples": w.Checkbox(value=live_samples, description="live samples"),
    }
    summary = w.HTML(layout=w.Layout(width="900px"))
    table = w.HTML()
    chart = w.Image(format="png", layout=w.Layout(width="640px"))
    samples = w.HTML(layout=w.Layout(width="900px"))
    cache: dict = {}

    def logits_for(text: str):
        if cache.get("prompt") != text:
            # keep the newest tokens that fit (verbose=False: no "indexing errors" warning for what is cut here)
            ids = lm.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"][-(lm.context_length - 1):]
            if not ids:
                return None, None
            logits, history = decoding.next_token_logits(lm, (torch.tensor([ids]), None))
            cache.update(prompt=text, logits=logits, history=history)
        return cache["logits"], cache["history"]

    def refresh(*_):
        mode = controls["mode"].value
        used = MODE_PARAMETERS[mode]
        for name, param in _SLIDER_PARAM.items():
            controls[name].disabled = param not in used
        controls["seed"].disabled = not applies(mode, "seed")
        text = controls["prompt"].value
        if not text:
            summary.value = "<b class='gpt2lab-summary'>type a prompt first</b>"
            table.value = samples.value = ""
            return
        temperature, top_k, top_p = controls["temperature"].value, controls["top_k"].value, controls["top_p"].value
        beams = controls["num_beams"].value
        logits, history = logits_for(text)
        if logits is None:
            summary.value = "<b class='gpt2lab-summary'>the prompt encodes to no tokens</b>"
            table.value = samples.value = ""
            return
        view = decoding.distribution_from_logits(lm, text, logits, history,
                                                 **_settings_for(mode, temperature, top_k, top_p))
        summary.value = f"<b class='gpt2lab-summary'>{html.escape(summary_text(view, mode, beams))}</b>"
        table.value = distribution_html(view, mode, top_n, beams)
        chart.value = figure_png(distribution_figure(view, mode, top_k, top_p, top_n))
        samples.value = _samples_html(lm, text, mode, temperature, top_k, top_p, beams, controls["seed"].value,
                                      sample_tokens, n_samples) if controls["samples"].value else ""

    for control in controls.values():
        control.observe(refresh, names="value")
    refresh()
    box = w.VBox([task_line(DECODING_TASK), controls["prompt"],
                  w.HBox([controls["mode"], controls["seed"], controls["samples"]]),
                  w.HBox([w.VBox([controls["temperature"], controls["top_k"]]),
                          w.VBox([controls["top_p"], controls["num_beams"]])]),
                  summary, w.HBox([table, chart], layout=w.Layout(align_items="flex-start")), samples])
    box.controls = controls
    box.refresh = refresh
    box.outputs = {"summary": summary, "table": table, "chart": chart, "samples": samples}
    return with_static_view(box)


def _samples_html(lm, text, mode, temperature, top_k, top_p, num_beams, seed, sample_tokens, n_samples) -> str:
    n = min(n_samples, num_beams) if mode == "beam" else n_samples
    chosen = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "num_beams": max(num_beams, n),
              "num_return_sequences": n, "seed": seed if seed >= 0 else None}
    # the sliders of the mode's row, and the count and seed where they mean something
    used = {k: v for k, v in chosen.items()
            if k in MODE_PARAMETERS[mode] or (k in ("num_return_sequences", "seed") and applies(mode, k))}
    try:
        texts = generation.generate(lm, text, mode=mode, max_length=sample_tokens, include_prefix=False,
                                    fit_context=True, no_repeat_ngram_size=0, **used)
    except InvalidParameterError as err:
        return f"<div class='gpt2lab-samples'><i>{html.escape(str(err))}</i></div>"
    items = "".join(f"<li><code style='white-space:pre-wrap'>{html.escape(t)}</code></li>" for t in texts)
    return f"<div class='gpt2lab-samples'><b>continuations ({mode})</b><ol>{items}</ol></div>"
