"""The attention views as a user sees them: headless Chromium opens the HTML they produce.

bertviz pages get their scripts (require.js, d3, jQuery) from local copies fetched from the npm
registry, served in place of the CDN by a Playwright route; the offline view must render with all
network blocked.
"""
from __future__ import annotations

import html
from pathlib import Path

import pytest
from bertviz_assets import fetch_scripts, local_file_for
from browser_support import CHROMIUM_ARGS, PAGE_URL, find_chromium, route_page

from gpt2lab.attention import views
from gpt2lab.attention.capture import capture_attention

pytestmark = pytest.mark.browser

TEXT = "Hello world!\nThe cat sat on the mat."
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium not found (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def scripts():
    return fetch_scripts()


@pytest.fixture(scope="module")
def capture(tiny_lm):
    return capture_attention(tiny_lm, TEXT)


class Served:
    """A page in a fresh browser context; every request is recorded and answered locally or refused."""

    def __init__(self, browser, page_html: str, scripts: dict | None, offline: bool = False):
        self.requests, self.errors = [], []
        self.context = browser.new_context(offline=offline)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        route_page(self.context, page_html, scripts, seen=self.requests)

    def texts(self, selector: str) -> list[str]:
        return self.page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")

    def count(self, selector: str) -> int:
        return self.page.eval_on_selector_all(selector, "nodes => nodes.length")

    def screenshot(self, name: str):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)

    def close(self):
        self.context.close()


def test_bertviz_head_view_renders_with_local_scripts(browser, scripts, capture):
    served = Served(browser, views.bertviz_html(capture, "head"), scripts)
    try:
        served.page.goto(PAGE_URL)
        served.page.wait_for_selector("#attention line", state="attached", timeout=30_000)
        n, heads = capture.n_tokens, capture.n_heads
        assert served.texts("#left text") == capture.labels
        assert served.texts("#right text") == capture.labels
        assert served.count("#attention line") == heads * n * n  # one line per (head, query, key)
        assert served.texts("#layer option") == ["0", "1"]
        served.page.select_option("#layer", "1")  # switching layer redraws
        served.page.wait_for_selector("#attention line", state="attached")
        assert served.count("#attention line") == heads * n * n
        served.screenshot("bertviz_head_view.png")
        assert served.errors == []
        fetched = [url for url in served.requests if url != PAGE_URL]
        assert fetched and all(local_file_for(url, scripts) for url in fetched)  # only bertviz's CDN scripts
    finally:
        served.close()


def test_bertviz_model_view_renders_with_local_scripts(browser, scripts, capture):
    served = Served(browser, views.bertviz_html(capture, "model"), scripts)
    try:
        served.page.goto(PAGE_URL)
        served.page.wait_for_selector("#vis svg line", state="attached", timeout=30_000)
        n, heads, layers = capture.n_tokens, capture.n_heads, len(capture.layers)
        assert served.count("#vis svg line") == layers * heads * n * n  # every thumbnail drawn
        # clicking the thumbnail of layer 1, head 0 opens its detail with the token labels on both sides;
        # force: bertviz lays a transparent click area over the thumbnail, which takes the click
        served.page.locator("#attn_background_1_0").click(force=True)
        served.page.wait_for_selector("text.token", state="attached")
        assert served.texts("text.token") == capture.labels * 2
        served.screenshot("bertviz_model_view.png")
        assert served.errors == []
    finally:
        served.close()


def test_offline_view_renders_with_network_blocked(browser, capture):
    served = Served(browser, "", scripts=None, offline=True)
    try:
        served.page.set_content(views.offline_html(capture, layer=1, head=0))  # no request at all
        root = "div.g2l-attn"
        served.page.wait_for_selector(f"{root}[data-rendered='layer 1 head 0']", state="attached")
        n = capture.n_tokens
        assert served.texts("svg.heatmap text.query-label") == capture.labels
        assert served.texts("svg.heatmap text.key-label") == capture.labels
        assert served.texts("svg.lines text.query-token") == capture.labels
        assert served.count("svg.heatmap rect.cell") == n * (n + 1) // 2  # lower triangle: causal
        opacities = served.page.eval_on_selector_all(
            "svg.heatmap rect.cell",
            "cells => cells.map(c => [+c.dataset.q, +c.dataset.k, +c.getAttribute('fill-opacity')])")
        weights = capture.head(1, 0)
        for q, k, opacity in opacities:
            assert opacity == pytest.approx(float(weights[q, k]), abs=2e-3)
        assert served.count("svg.lines line.attn-line") > 0
        served.page.select_option(f"{root} select.head", "-1")
        served.page.wait_for_selector(f"{root}[data-rendered='layer 1 head -1']", state="attached")
        assert served.texts(f"{root} .status") == ["layer 1, mean of 2 heads"]
        served.page.select_option(f"{root} select.layer", "0")
        served.page.wait_for_selector(f"{root}[data-rendered='layer 0 head -1']", state="attached")
        served.page.hover("svg.lines text.query-token[data-q='3']")
        hidden = served.page.eval_on_selector_all(
            "svg.lines line.attn-line", "lines => lines.filter(l => l.style.display === 'none').length")
        assert 0 < hidden < served.count("svg.lines line.attn-line")  # only query 3's lines stay
        served.screenshot("offline_view.png")
        assert served.requests == [] and served.errors == []
    finally:
        served.close()


def test_offline_view_survives_markup_in_tokens(browser, tiny_lm):
    tricky = capture_attention(tiny_lm, "a </script><b>bold</b> & <i>")
    served = Served(browser, "", scripts=None, offline=True)
    try:
        served.page.set_content(views.offline_html(tricky))
        served.page.wait_for_selector("div.g2l-attn[data-rendered]", state="attached")
        assert served.texts("svg.heatmap text.query-label") == tricky.labels
        assert served.errors == []
    finally:
        served.close()


def test_offline_view_renders_inside_the_notebook_iframe(browser, capture):
    shown = views.show_offline(capture)
    served = Served(browser, "", scripts=None, offline=True)
    try:
        served.page.set_content(f"<!DOCTYPE html><html><body>{shown.data}</body></html>")
        frame = served.page.frame_locator("iframe")
        frame.locator("div.g2l-attn[data-rendered]").wait_for(state="attached")
        assert frame.locator("svg.heatmap text.query-label").all_text_contents() == capture.labels
        assert frame.locator("svg.heatmap rect.cell").count() == capture.n_tokens * (capture.n_tokens + 1) // 2
        assert served.requests == [] and served.errors == []
        assert html.escape("<script>") in shown.data
    finally:
        served.close()
