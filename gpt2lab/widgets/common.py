"""What the explorers share: the one-line guided task each opens with, and a chart as PNG bytes."""
from __future__ import annotations

import html
import io

__all__ = ["TASK_CLASS", "task_html", "task_line", "figure_png", "check_ranges"]

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
