"""Driving the course's explorers in a real JupyterLab with headless Chromium: a small harness
notebook with one section per explorer (the embedded model, ``GPT2LAB_MODEL=embedded``; one notebook,
so the model loads once and the whole run stays short on a small machine), and the user actions an
explorer needs (a slider key, a dropdown choice, a toggle, typing, a
click), each timed from the action to the moment the shown result stops changing.

Used by ``tests/test_explorers_browser.py`` (what each explorer shows) and
``bench/bench_explorers.py`` (median answer time per explorer).
"""
from __future__ import annotations

import contextlib
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from browser_support import CHROMIUM_ARGS, find_chromium
from test_course_browser import LabPage, _env_for_course, _settle, find_slider, jupyter_lab, shown_state

# An exception in a widget callback never reaches a cell's output (JupyterLab sends it to its log console,
# the kernel to its log): the harness kernel also writes each one to this file, which the tests read.
CALLBACK_ERRORS = "callback-errors.log"
HOOKS = f'''\
"""Harness only: record every exception raised in a widget callback into {CALLBACK_ERRORS}."""
import logging
import traceback

from IPython import get_ipython


def _record(text):
    with open({CALLBACK_ERRORS!r}, "a") as log:
        log.write(text + "\\n")


class _Errors(logging.Handler):  # the kernel logs the exceptions of observers run for a comm message
    def emit(self, record):
        if record.exc_info:
            _record(record.getMessage() + "\\n" + "".join(traceback.format_exception(*record.exc_info)))


logging.getLogger().addHandler(_Errors(level=logging.ERROR))
_shell = get_ipython()
_show = _shell.showtraceback


def _showtraceback(*args, **kwargs):  # the exceptions of button callbacks are shown this way
    _record(traceback.format_exc())
    return _show(*args, **kwargs)


_shell.showtraceback = _showtraceback
'''

SETUP = """\
import harness_hooks  # noqa: F401
import gpt2lab
from gpt2lab import data
lm = gpt2lab.load_default()
"""

KNOWN = "KNOWN"  # the harness cells of lessons 04 and 06 print this, then their known values as JSON
SAMPLE_TOKENS = 60  # characters the lesson-04 samples continue the prompt by
TRAIN_CHARS, VALID_CHARS = 100_000, 5_000  # the n-gram and memorisation harnesses' slices of tinyshakespeare
SONNET_TOKENS = 30
TEXTS = {
    "lens": "ROMEO:\nI will go with thee.\n\nJULIET:\nThen go.\n\nROMEO:\n",
    "attention": "The cat sat on the mat. The cat sat on the",
    "importance": "To be, or not to be, that is the",
    "tokenizer": "To be, or not to be: that is the question.",
}

# explorer -> the harness notebook's explorer cell (after SETUP)
HARNESS = {
    "ngram": f"""\
from gpt2lab.widgets import ngram_explorer
train, valid = data.tinyshakespeare_split()
ngram_explorer(train[:{TRAIN_CHARS}], valid[:{VALID_CHARS}], tokenizer=lm.tokenizer, max_n=6, n=3, sample_length=80)
""",
    "tokenizer": f"""\
from gpt2lab.widgets import tokenizer_explorer
tokenizer_explorer({{"GPT-2": data.gpt2_tokenizer(), "Shakespeare": lm.tokenizer}}, text={TEXTS["tokenizer"]!r})
""",
    "attention": f"""\
from gpt2lab.widgets import attention_explorer
attention_explorer(lm, text={TEXTS["attention"]!r}, layer=0, head=0)
""",
    "decoding": """\
from gpt2lab.widgets import decoding_explorer
decoding_explorer(lm, prompt="ROMEO:\\n", sample_tokens=12, n_samples=2)
""",
    "settings": f"""\
from gpt2lab.experiments import sweep
from gpt2lab.widgets import settings_explorer
prompt, original = sweep.sonnet_parts(1)
settings_explorer(lm, prompt, reference=original, max_length={SONNET_TOKENS})
""",
    "importance": f"""\
from gpt2lab.widgets import importance_explorer
importance_explorer(lm, {TEXTS["importance"]!r}, steps=40, samples=2)
""",
    "memorisation": f"""\
from gpt2lab.widgets import memorisation_explorer
train, _ = data.tinyshakespeare_split()
memorisation_explorer(lm, train[:{TRAIN_CHARS}], prefix="ROMEO:", max_length=24, samples=3)
""",
    "lens": f"""\
from gpt2lab.widgets import lens_explorer
lens_explorer(lm, {TEXTS["lens"]!r}, layer=0, position=-1, top_k=8)
""",
    # lessons 04 and 06 train small models here (tests/lesson_toys.py, copied next to the notebook); the
    # line starting KNOWN gives the test what the explorer must show (see known_values)
    "training": f"""\
import json
from lesson_toys import char_snapshots
from gpt2lab.widgets import training_explorer
snapshots, decode, prompt, live, vocabulary = char_snapshots(sample_tokens={SAMPLE_TOKENS})
print("{KNOWN}", json.dumps(live))
training_explorer(snapshots, decode, prompt, max_new_tokens={SAMPLE_TOKENS}, vocabulary=vocabulary)
""",
    "induction": f"""\
import json
from lesson_toys import induction_toy
from gpt2lab.widgets import induction_explorer
run = induction_toy()
layer, head = run.induction_head
print("{KNOWN}", json.dumps({{"head": [layer, head], "step": run.steps[-1], "steps": run.steps,
                              "score": f"{{run.induction[-1, layer, head]:.2f}}"}}))
induction_explorer(run)
""",
}

# a section that proves the harness sees exceptions raised in widget callbacks (not an explorer of the course)
BROKEN = """\
import ipywidgets as w
from gpt2lab.widgets import task_line


def broken_explorer():
    slider, button = w.IntSlider(description="raise", continuous_update=False), w.Button(description="raise")

    def fail(_change):
        raise RuntimeError("deliberate observer failure")

    def fail_click(_button):
        raise RuntimeError("deliberate button failure")

    slider.observe(fail, names="value")
    button.on_click(fail_click)
    return w.VBox([task_line("move the slider and press the button: both raise, on purpose"), slider, button])


broken_explorer()
"""
COURSE_EXPLORERS = tuple(HARNESS)
HARNESS["broken"] = BROKEN

# Console messages of JupyterLab itself, not of an explorer (each one seen in a clean page with no
# widget at all): none so far. A pattern added here must say why.
BENIGN_CONSOLE: tuple[str, ...] = ()


def write_harness(root: Path, names=COURSE_EXPLORERS) -> Path:
    """Write the harness notebook into ``root``: the model set-up, then one section per explorer in
    ``names`` (a heading and the explorer's cell). One notebook, so one kernel loads the model once."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# The course's explorers"), nbformat.v4.new_code_cell(SETUP)]
    for name in names:
        nb.cells += [nbformat.v4.new_markdown_cell(f"## {name}"), nbformat.v4.new_code_cell(HARNESS[name])]
    path = root / "explorers.ipynb"
    nbformat.write(nb, str(path))
    (root / "harness_hooks.py").write_text(HOOKS)
    (root / "lesson_toys.py").write_text((Path(__file__).parent / "lesson_toys.py").read_text())
    return path


@dataclass
class Explorer:
    """One explorer's output area in the page, the user actions on it, and the answer times measured."""

    lab: LabPage
    area: object  # a Playwright locator
    name: str
    times: list[float] = field(default_factory=list)

    @property
    def page(self):
        return self.lab.page

    def state(self) -> str:
        return shown_state(self.area)

    def texts(self, selector: str) -> list[str]:
        return self.area.locator(selector).all_inner_texts()

    def shot(self, label: str) -> Path:
        path = self.lab.shots / f"{label}.png"
        self.area.screenshot(path=str(path))
        return path

    # ------------------------------------------------ actions, each timed until the display settles

    def act(self, action, timeout_s: float = 120, quiet_s: float = 0.6) -> float:
        """Run ``action`` (a user action), wait until what the explorer shows has changed and then stopped
        changing with the kernel idle; return the seconds from the action to the last change (the answer
        time), also kept in ``times``. An action that changes nothing answers ``nan`` (not kept)."""
        before = self.state()
        start = time.monotonic()
        action()
        last_change, state = None, before
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            now = self.state()
            if now != state:
                state, last_change = now, time.monotonic()
            elif last_change is not None and time.monotonic() - last_change > quiet_s and self._idle():
                break
            elif last_change is None and time.monotonic() - start > 8 and self._idle():
                return float("nan")  # the kernel is idle and nothing changed: the action had no effect
            self.page.wait_for_timeout(50)
        seconds = last_change - start if last_change is not None else float("nan")
        if last_change is not None:
            self.times.append(seconds)
        return seconds

    def _idle(self) -> bool:
        return self.page.evaluate(r"""() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
            .some(e => /\|\s*Idle/.test(e.textContent) && !e.textContent.includes('No Kernel'))""")

    def slider(self, label: str):
        return find_slider(self.page, self.area, label)

    def key(self, label: str, key: str, times: int = 1) -> float:
        """Press ``key`` (ArrowRight, Home, End ...) ``times`` on the handle of the slider labelled ``label``."""
        handle = self.slider(label).locator(".noUi-handle").first

        def press():
            handle.scroll_into_view_if_needed()
            handle.focus()
            for _ in range(times):
                handle.press(key)

        return self.act(press)

    def readout(self, label: str) -> str:
        return self.slider(label).locator(".widget-readout").inner_text()

    def slider_disabled(self, label: str) -> bool:
        return self.slider(label).locator(".noUi-target[disabled]").count() == 1

    def choose(self, option: str, nth: int = 0) -> float:
        """Pick ``option`` in the explorer's ``nth`` dropdown."""
        return self.act(lambda: self.area.locator(".widget-dropdown select").nth(nth).select_option(option))

    def toggle(self, label: str) -> float:
        """Click the toggle button labelled ``label``."""
        button = self.area.locator(".widget-toggle-buttons button", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
        return self.act(lambda: button.first.click())

    def type(self, selector: str, text: str, nth: int = 0) -> float:
        """Replace the text of the ``nth`` input matching ``selector`` and leave the box (Tab), as a
        learner does."""
        box = self.area.locator(selector).nth(nth)

        def fill():
            box.fill(text)
            box.press("Tab")

        return self.act(fill)

    def click(self, label: str, timeout_s: float = 180) -> float:
        return self.act(lambda: self.area.locator("button", has_text=label).first.click(), timeout_s=timeout_s)


class ExplorerLab:
    """One JupyterLab (embedded model), one headless Chromium and one page running the harness notebook,
    for a whole test module or bench run.

    ``explorer(name)`` returns the :class:`Explorer` of one section, its screenshots under
    ``shots/<name>/``; ``errors`` lists the page's JavaScript errors (``clear_errors()`` empties it).
    """

    def __init__(self, root: Path, home: Path, shots: Path, names=COURSE_EXPLORERS):
        self.root, self.home, self.shots, self.names = root, home, shots, tuple(names)
        self.errors: list[str] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        from playwright.sync_api import sync_playwright

        executable = find_chromium()
        if executable is None:
            raise RuntimeError("no Chromium found")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.base_url, self.token = self._stack.enter_context(
                jupyter_lab(self.root, self.home, env=_env_for_course()))
            playwright = self._stack.enter_context(sync_playwright())
            self.browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
            self._stack.callback(self.browser.close)
            self.page = self.browser.new_page(viewport={"width": 1400, "height": 1600})
            self.page.set_default_timeout(30_000)
            self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
            self.page.on("console", self._console)
            self.lab = LabPage(self.page, self.shots)
            path = write_harness(self.root, self.names)
            started = time.monotonic()
            self.lab.open_notebook(self.base_url, self.token, path.name, n_cells=2 + 2 * len(self.names))
            self.lab.run_all_cells(n_code=1 + len(self.names))
            self.open_seconds = time.monotonic() - started
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def explorer(self, name: str) -> Explorer:
        """The explorer of section ``name``, scrolled into view, once its first display has settled."""
        cell = self.page.locator(".jp-NotebookPanel .jp-CodeCell").filter(
            has=self.page.locator(".jp-InputArea", has_text=f"{name}_explorer("))
        area = cell.locator(".jp-OutputArea-output:has(.gpt2lab-task)").first
        area.wait_for(timeout=60_000)
        area.scroll_into_view_if_needed()
        _settle(self.lab, area)
        lab = LabPage(self.page, self.shots / name)  # a folder per explorer (LabPage empties it)
        return Explorer(lab, area, name)

    def known_values(self, name: str):
        """What the harness cell of section ``name`` printed after KNOWN, read from the page as JSON."""
        import json

        cell = self.page.locator(".jp-NotebookPanel .jp-CodeCell").filter(
            has=self.page.locator(".jp-InputArea", has_text=f"{name}_explorer("))
        printed = "\n".join(cell.locator(".jp-OutputArea-output").all_text_contents())
        line = next(line for line in printed.splitlines() if line.startswith(KNOWN + " "))
        return json.loads(line[len(KNOWN) + 1:])

    def clear_errors(self) -> None:
        self.errors.clear()
        (self.root / CALLBACK_ERRORS).unlink(missing_ok=True)

    def callback_errors(self) -> str:
        """What widget callbacks raised in the kernel since the last ``clear_errors()`` (empty: nothing)."""
        path = self.root / CALLBACK_ERRORS
        return path.read_text() if path.is_file() else ""

    def _console(self, message) -> None:
        if message.type == "error" and not any(re.search(p, message.text) for p in BENIGN_CONSOLE):
            self.errors.append(f"console: {message.text}")


def median(times: list[float]) -> float:
    """Median of the answer times that were measured (``nan`` when none)."""
    measured = [t for t in times if t == t]
    return statistics.median(measured) if measured else float("nan")
