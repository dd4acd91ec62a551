"""What the explorers share: the one-line guided task each opens with, a chart as PNG bytes, range checks,
and the static picture an HTML export shows where no live widget can run."""
from __future__ import annotations

import html
import io

__all__ = ["TASK_CLASS", "STATIC_CLASS", "task_html", "task_line", "figure_png", "check_ranges", "static_html",
           "live_explorer",
           "with_static_view"]

TASK_CLASS = "gpt2lab-task"  # the HTML class of every explorer's opening task line (the tests look for it)


def task_html(task: str) -> str:
    """The guided task as HTML: one line saying what to try and what to look for."""
    if not isinstance(task, str) or not task.strip() or "\n" in task.strip():
        raise ValueError(f"a guided task is one non-empty line of text, got {task!r}")
    return f"<div class='{TASK_CLASS}' style='margin:2px 0 6px 0'><b>Try:</b> {html.escape(task.strip())}</div>"


def task_line(task: str):
    """An ``ipywidgets.HTML`` showing :func:`task_html` (the first child of every explorer)."""
    import ipywidgets as widgets

    return widgets.HTML(task_html(task))


def figure_png(fig, dpi: int = 80) -> bytes:
    """Render a matplotlib figure to PNG bytes (for an ``ipywidgets.Image``) and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def check_ranges(**checks: tuple) -> None:
    """Raise a one-line ValueError for the first ``name=(value, low, high)`` whose value lies outside
    [low, high]: an explorer's starting values must be values its sliders can show."""
    for name, (value, low, high) in checks.items():
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"{name}={value!r} is outside the explorer's range [{low}, {high}]")


# ---------------------------------------------------------------- a picture for readers without a kernel

STATIC_CLASS = "gpt2lab-static"
_CHOICE_TYPES = ("Dropdown", "ToggleButtons", "RadioButtons", "Select", "SelectionSlider")


def _control_text(widget) -> str | None:
    """The value a control shows, as text (None for what is not a control)."""
    kind = type(widget).__name__
    if kind in _CHOICE_TYPES:
        return str(widget.label)
    if kind.endswith("Slider"):
        try:
            return format(widget.value, widget.readout_format)
        except (TypeError, ValueError):
            return str(widget.value)
    if kind in ("IntText", "FloatText", "BoundedIntText", "BoundedFloatText", "Checkbox"):
        return str(widget.value)
    return None


def _output_html(outputs) -> str:
    parts = []
    for output in outputs:
        data = output.get("data", {})
        if "text/html" in data:
            parts.append(data["text/html"])
        elif "image/png" in data:
            parts.append(f"<img src='data:image/png;base64,{data['image/png']}' alt='a chart' style='max-width:100%'>")
        elif "text/plain" in data or output.get("output_type") == "stream":
            parts.append(f"<pre>{html.escape(data.get('text/plain', output.get('text', '')))}</pre>")
    return "".join(parts)


def _static_parts(widget) -> str:
    import base64

    kind = type(widget).__name__
    if hasattr(widget, "children"):
        direction = "row" if kind == "HBox" else "column"
        inner = "".join(_static_parts(child) for child in widget.children)
        return f"<div style='display:flex;flex-direction:{direction};gap:4px 16px;flex-wrap:wrap'>{inner}</div>"
    if kind in ("HTML", "HTMLMath", "Label"):
        return f"<div>{widget.value}</div>" if widget.value else ""
    if kind == "Image":
        if not widget.value:
            return ""
        width = f"width:{widget.layout.width};" if widget.layout.width else ""
        encoded = base64.b64encode(widget.value).decode("ascii")
        return f"<img src='data:image/{widget.format};base64,{encoded}' alt='a chart' style='{width}max-width:100%'>"
    if kind == "Output":
        return _output_html(widget.outputs)
    if kind in ("Text", "Textarea"):
        return (f"<div><b>{html.escape(widget.description)}</b>: <code style='white-space:pre-wrap'>"
                f"{html.escape(widget.value)}</code></div>")
    if kind == "Button":
        label = html.escape(widget.description)
        return f"<div><span style='border:1px solid #999;padding:1px 8px'>{label}</span></div>"
    shown = _control_text(widget)
    if shown is None:
        return ""
    return f"<div><b>{html.escape(widget.description)}</b>: {html.escape(shown)}</div>"


def static_html(widget) -> str:
    """A static picture of an explorer as it is now (class ``gpt2lab-static``): its task, each control's
    value, and what it shows (HTML, images, outputs), for a reader with no live kernel."""
    note = ("<div style='color:#777;font-size:85%'>The explorer as it opened (a static picture: run the "
            "notebook to move its controls).</div>")
    return f"<div class='{STATIC_CLASS}'>{note}{_static_parts(widget)}</div>"


def with_static_view(box):
    """Give the widget ``box`` a static ``text/html`` picture (:func:`static_html`, taken when it is
    displayed) next to its live view: JupyterLab and Jupyter show the live widget, and the picture is
    what an HTML export without widget state (such as the course runner's pages) shows instead of a blank."""
    live = box._repr_mimebundle_

    def bundle(**kwargs):
        data = live(**kwargs)
        data["text/html"] = static_html(box)
        return data

    box._repr_mimebundle_ = bundle
    return box


def live_explorer(box, controls: dict, refresh, outputs: dict):
    """Wire an explorer: ``refresh`` runs whenever a control's value changes and once now; ``box`` gets
    ``.controls``, ``.refresh``, ``.outputs`` and ``.last`` (None until ``refresh`` sets it), and is
    returned with its static picture (:func:`with_static_view`)."""
    box.controls, box.refresh, box.last, box.outputs = controls, refresh, None, outputs
    for control in controls.values():
        control.observe(refresh, names="value")
    refresh()
    return with_static_view(box)
