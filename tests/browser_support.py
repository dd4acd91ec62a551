"""What every headless-Chromium check here shares: finding the browser, its flags, and serving a
generated page (plus local copies of CDN scripts) without any network."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which the
# closed network refuses many times a second.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_URL = "http://gpt2lab.test/view.html"  # never leaves the browser: route_page answers it


def find_chromium() -> str | None:
    """Debian's chromium (or $GPT2LAB_CHROMIUM); None when there is none."""
    for candidate in (os.environ.get("GPT2LAB_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def route_page(context, page_html: str, scripts: dict | None = None, seen: list | None = None) -> None:
    """Answer PAGE_URL with ``page_html``, CDN script requests with the local copies in ``scripts``
    (see bertviz_assets), and abort everything else. Requested URLs are appended to ``seen``."""
    from bertviz_assets import local_file_for

    def answer(route, request):
        if seen is not None:
            seen.append(request.url)
        if request.url == PAGE_URL:
            return route.fulfill(body=page_html, content_type="text/html; charset=utf-8")
        local = local_file_for(request.url, scripts) if scripts else None
        if local is not None:
            return route.fulfill(path=str(local), content_type="application/javascript")
        return route.abort()

    context.route("**/*", answer)
