"""The course as a learner uses it: JupyterLab in a (headless) browser.

A JupyterLab server is started on a free loopback port with a random token, in an isolated
configuration (its own settings, workspaces and runtime folders; the news/update-check extension
disabled; every cell kept in the page so the test can see it). Headless Chromium, driven by
Playwright, opens a notebook, runs all cells from the *Run* menu, moves a slider with the keyboard
and checks that what the widget shows changes.

* ``test_harness_moves_a_slider``: a tiny generated notebook (an ``IntSlider`` and an output that
  prints its value) proves the harness itself works.
* ``test_decoding_explorer_reacts_to_a_slider``: ``notebooks/08_decoding.ipynb`` (on a copy, so
  nothing is ever saved into the repository) with the embedded model; a slider of the decoding
  explorer is moved and the shown next-token distribution / samples must change.

Screenshots are kept under ``build/test-artifacts/browser/``. The tests skip only when no Chromium
can be found (CI installs the Debian ``chromium`` package, see scripts/test.sh).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser_support import CHROMIUM_ARGS, find_chromium

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "browser"
DECODING_NOTEBOOK = ROOT / "notebooks" / "08_decoding.ipynb"
SERVER_START_TIMEOUT_S = 90
RUN_ALL_TIMEOUT_S = 240

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the JupyterLab server

@contextlib.contextmanager
def jupyter_lab(root_dir: Path, home: Path, env: dict[str, str] | None = None):
    """Run ``jupyter lab`` serving ``root_dir``; yields (base_url, token). Isolated under ``home``."""
    config_dir, settings_dir = home / "config", home / "settings"
    (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
    # no "would you like news?" pop-up, no update check (they would cover the page and need the network)
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    tracker = settings_dir / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    # keep every cell in the page (the default windowing detaches off-screen cells)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    child_env = {**os.environ, **(env or {}),
                 "JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
                 "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
                 "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_DATA_DIR": str(home / "data")}
    log_path = home / "jupyter-lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
           "--ServerApp.open_browser=False", "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
           "--LabApp.extension_manager=readonly",
           # window.jupyterapp lets the test read each cell's execution count: solution cells have their
           # source collapsed, and a collapsed cell does not show its "[n]:" prompt in the page
           "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=root_dir)
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{base_url}/api/status?token={token}", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer within {SERVER_START_TIMEOUT_S} s:\n"
                                       f"{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield base_url, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# ---------------------------------------------------------------- driving the page

class LabPage:
    """A JupyterLab page in Playwright, with the few user actions the tests need."""

    def __init__(self, page, shots: Path):
        self.page = page
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)
        for old in shots.glob("*.png"):  # screenshots of an earlier run would mislead
            old.unlink()

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def open_notebook(self, base_url: str, token: str, name: str, n_cells: int):
        """Open ``name`` and wait until all its ``n_cells`` cells are shown and its kernel is idle."""
        self.page.goto(f"{base_url}/lab/tree/{name}?token={token}&reset", wait_until="domcontentloaded")
        self.page.wait_for_function(
            "n => document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length >= n",
            arg=n_cells, timeout=90_000, polling=250)
        self.wait_for_kernel_idle(timeout_s=90)

    def wait_for_kernel_idle(self, timeout_s: float):
        """The status bar reads "<kernel name> | Idle" (not "No Kernel | Initializing", not "Busy")."""
        self.page.wait_for_function(
            r"""() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
                    .some(e => /\|\s*Idle/.test(e.textContent) && !e.textContent.includes('No Kernel'))""",
            timeout=timeout_s * 1000, polling=250)

    def run_all_cells(self, n_code: int, timeout_s: float = RUN_ALL_TIMEOUT_S):
        """Run ▸ Run All Cells, from the menu bar, then wait until all ``n_code`` code cells have run
        (or one failed, which stops JupyterLab's run-all)."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        self.page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        self.page.wait_for_function(
            r"""n => {
                const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                if (!panel || !panel.content || !panel.content.widgets) return false;
                const code = panel.content.widgets.filter(c => c.model.type === 'code');
                if (code.length < n) return false;
                if (code.every(c => c.model.executionCount !== null)) return true;
                const failed = code.some(c => c.model.outputs && [...Array(c.model.outputs.length).keys()]
                    .some(i => c.model.outputs.get(i).type === 'error'));
                const running = [...document.querySelectorAll('.jp-InputPrompt')]
                    .some(p => p.textContent.includes('*'));
                return failed && !running;
            }""", arg=n_code, timeout=timeout_s * 1000, polling=500)
        self.wait_for_kernel_idle(timeout_s=timeout_s)

    def error_outputs(self) -> list[str]:
        """Tracebacks shown in the notebook. JupyterLab renders errors like stderr text, so an error is
        a stderr output with a traceback or an ``...Error:`` line (warnings and progress bars are not)."""
        texts = self.page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                  ).all_inner_texts()
        return [t for t in texts if "Traceback (most recent call last)" in t
                or re.search(r"^\w*(Error|Exception|Interrupt)\b.*:", t, re.MULTILINE)]

    @contextlib.contextmanager
    def screenshot_on_failure(self):
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.screenshot("failure")
            raise


def widget_area(page, code_contains: str | None = None):
    """The output area of the first code cell that shows a widget with a slider (optionally only
    cells whose code contains ``code_contains``)."""
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    if code_contains is not None:
        cells = cells.filter(has=page.locator(".jp-InputArea", has_text=code_contains))
    return cells.locator(".jp-OutputArea-output:has(.widget-slider)").first


def shown_state(area) -> str:
    """What a widget shows besides its controls: text, HTML and image sources of its outputs."""
    return area.evaluate(
        """el => {
            const parts = [];
            el.querySelectorAll('.widget-output, .widget-html-content, .jupyter-widgets-output-area, img')
              .forEach(n => parts.push(n.tagName === 'IMG' ? n.getAttribute('src') : n.innerHTML));
            return parts.join('\\n');
        }""")


def find_slider(page, area, label_pattern: str | None = None):
    """A slider of the widget: the first whose label matches ``label_pattern`` (a regular
    expression, case-insensitive), else the first slider."""
    sliders = area.locator(".widget-slider")
    if label_pattern is not None:
        labelled = sliders.filter(has=page.locator(".widget-label", has_text=re.compile(label_pattern, re.IGNORECASE)))
        if labelled.count():
            return labelled.first
    return sliders.first


def move_slider(page, slider, steps: int = 3, key: str = "ArrowRight"):
    """Focus the slider's handle (like a keyboard user) and press ``key`` ``steps`` times.
    Returns the slider's readout before and after."""
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()  # as after pressing Tab until the handle is selected
    for _ in range(steps):
        handle.press(key)
        page.wait_for_timeout(150)
    return before, readout.inner_text()


@pytest.fixture(scope="module")
def chromium_path():
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium found (install the Debian package `chromium`, or set GPT2LAB_CHROMIUM)")
    return path


@pytest.fixture
def browser_page(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            browser.close()


def _env_for_course() -> dict[str, str]:
    env = {"GPT2LAB_MODEL": "embedded", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "GPT2LAB_SCALE": os.environ.get("GPT2LAB_SCALE", "quick")}
    if os.environ.get("GPT2LAB_DATA_MIRROR"):
        env["GPT2LAB_DATA_MIRROR"] = os.environ["GPT2LAB_DATA_MIRROR"]
    return env


# ---------------------------------------------------------------- tests

def _wait_for_change(page, area, before: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = shown_state(area)
        if state != before:
            return state
        page.wait_for_timeout(250)
    return shown_state(area)


def _settle(lab: LabPage, area, timeout_s: float = 120) -> str:
    """Wait until the kernel has handled every queued widget event and the display stops changing."""
    deadline = time.monotonic() + timeout_s
    state = shown_state(area)
    while time.monotonic() < deadline:
        lab.wait_for_kernel_idle(timeout_s=max(1.0, deadline - time.monotonic()))
        lab.page.wait_for_timeout(1000)
        again = shown_state(area)
        if again == state:
            return state
        state = again
    return state


def select_mode(page, area, mode: str) -> None:
    """Choose ``mode`` in the widget's first dropdown (a ``<select>``), as a learner picks it."""
    area.locator(".widget-dropdown select").first.select_option(mode)
    page.wait_for_timeout(150)


def _texts(area, selector: str) -> list[str]:
    return area.locator(selector).all_inner_texts()


def test_harness_moves_a_slider(tmp_path, browser_page):
    """The harness on a tiny notebook: moving the slider 3 -> 6 must change the printed output, and
    a failing cell must be reported."""
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# harness check"),
        nbformat.v4.new_code_cell(
            "import ipywidgets as widgets\n"
            "slider = widgets.IntSlider(value=3, min=0, max=10, description='level', continuous_update=False)\n"
            "out = widgets.Output()\n"
            "def show(change=None):\n"
            "    out.clear_output()\n"
            "    with out:\n"
            "        print('value is', slider.value, '#' * slider.value)\n"
            "slider.observe(show, names='value')\n"
            "show()\n"
            "widgets.VBox([slider, out])"),
        nbformat.v4.new_code_cell("raise ValueError('deliberate error for the harness')"),
    ]
    nbformat.write(nb, str(root / "harness.ipynb"))

    lab = LabPage(browser_page, ARTIFACTS / "harness")
    with jupyter_lab(root, tmp_path / "home") as (base_url, token), lab.screenshot_on_failure():
        lab.open_notebook(base_url, token, "harness.ipynb", n_cells=len(nb.cells))
        lab.run_all_cells(n_code=2, timeout_s=120)
        errors = lab.error_outputs()
        assert len(errors) == 1 and "deliberate error for the harness" in errors[0], errors
        area = widget_area(browser_page, code_contains="IntSlider")
        assert "value is 3" in area.inner_text()
        before = shown_state(area)
        lab.screenshot("1-before")
        readouts = move_slider(browser_page, find_slider(browser_page, area, "level"), steps=3)
        after = _wait_for_change(browser_page, area, before, timeout_s=30)
        lab.screenshot("2-after")
        assert readouts == ("3", "6")
        assert after != before and "value is 6 ######" in area.inner_text()


def test_decoding_explorer_reacts_to_a_slider(tmp_path, browser_page):
    """Notebook 08 in JupyterLab with the embedded model: run all cells, move the temperature slider
    of the decoding explorer, and the shown next-token distribution and samples must change."""
    assert DECODING_NOTEBOOK.is_file(), f"{DECODING_NOTEBOOK} does not exist (yet)"
    check_decoding_explorer_in_lab(DECODING_NOTEBOOK, tmp_path, browser_page, ARTIFACTS / "decoding")


def check_decoding_explorer_in_lab(notebook: Path, tmp_path: Path, page, shots: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(parents=True)
    copy = root / notebook.name  # a copy: JupyterLab autosaves, the repository stays clean
    shutil.copyfile(notebook, copy)
    nb = nbformat.read(str(copy), as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    assert any("decoding_explorer(" in c.source for c in nb.cells if c.cell_type == "code"), \
        f"{notebook.name} has no cell calling decoding_explorer(...)"

    lab = LabPage(page, shots)
    with jupyter_lab(root, tmp_path / "home", env=_env_for_course()) as (base_url, token), \
            lab.screenshot_on_failure():
        lab.open_notebook(base_url, token, copy.name, n_cells=len(nb.cells))
        started = time.monotonic()
        lab.run_all_cells(n_code=n_code)
        print(f"{notebook.name} ran in JupyterLab in {time.monotonic() - started:.1f} s")
        assert lab.error_outputs() == []
        area = widget_area(page, code_contains="decoding_explorer(")
        area.scroll_into_view_if_needed()
        before = _settle(lab, area)
        table_before = _texts(area, ".gpt2lab-distribution")
        samples_before = _texts(area, ".gpt2lab-samples")
        assert table_before and table_before[0].strip(), "the explorer shows no next-token distribution"
        assert samples_before and samples_before[0].strip(), "the explorer shows no samples"
        area.screenshot(path=str(lab.shots / "1-explorer-before.png"))
        lab.screenshot("1-page-before")

        # the default mode (sample-top-p) uses top_p alone, so its temperature slider is disabled; pick the
        # mode that uses temperature, top_k and top_p (as a learner would), then move temperature
        slider = find_slider(page, area, "temperature")
        assert slider.locator(".noUi-target[disabled]").count() == 1, \
            "temperature is live in sample-top-p, whose row (the published API) has top_p alone"
        select_mode(page, area, "sample")
        before = _settle(lab, area)
        table_before = _texts(area, ".gpt2lab-distribution")
        samples_before = _texts(area, ".gpt2lab-samples")
        assert slider.locator(".noUi-target[disabled]").count() == 0, "temperature is still disabled in 'sample'"
        label = slider.locator(".widget-label").inner_text()
        readouts = move_slider(page, slider, steps=5)
        assert readouts[0] != readouts[1], f"slider {label!r} did not move: {readouts}"
        _wait_for_change(page, area, before, timeout_s=90)
        after = _settle(lab, area)
        area.screenshot(path=str(lab.shots / "2-explorer-after.png"))
        lab.screenshot("2-page-after")
        assert after != before, f"moving {label!r} from {readouts[0]} to {readouts[1]} changed nothing shown"
        assert _texts(area, ".gpt2lab-distribution") != table_before, "the distribution table did not change"
        assert _texts(area, ".gpt2lab-samples") != samples_before, "the samples did not change"
