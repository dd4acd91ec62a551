"""Local copies of the scripts bertviz loads from cdnjs, for browser tests and the views benchmark.

bertviz's HTML asks cdnjs for require.js, d3 and jQuery. Tests have no internet, so the same
libraries are fetched once from the npm registry (``npm pack``) into a cache folder under
``build/`` (git-ignored), and a Playwright route answers the CDN requests with those files.
jQuery 2.0.0 (bertviz's pin) was never published to npm; 2.1.0 is the nearest release there.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "build" / "js-cache"

# library name in the CDN URL -> (npm package spec, file inside the package tarball)
NPM_SOURCES = {
    "require.js": ("requirejs@2.3.6", "package/require.js"),
    "d3": ("d3@5.7.0", "package/dist/d3.min.js"),
    "jquery": ("jquery@2.1.0", "package/dist/jquery.min.js"),
}
CDN_LIBRARY = re.compile(r"^https://cdnjs\.cloudflare\.com/ajax/libs/([^/]+)/")


def fetch_scripts(cache_dir: Path = CACHE_DIR) -> dict[str, Path]:
    """library name -> local file, fetching any missing one with ``npm pack`` (needs the npm registry)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed; it is needed to fetch bertviz's scripts for the browser test")
    cache_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for library, (spec, member) in NPM_SOURCES.items():
        target = cache_dir / spec.replace("@", "-") / Path(member).name
        if not target.is_file():
            with tempfile.TemporaryDirectory() as tmp:
                done = subprocess.run([npm, "pack", spec, "--pack-destination", tmp, "--silent"],
                                      capture_output=True, text=True, timeout=180, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"npm pack {spec} failed: {done.stderr.strip()[-500:]}")
                tarball = next(Path(tmp).glob("*.tgz"))
                with tarfile.open(tarball) as archive:
                    source = archive.extractfile(member)
                    if source is None:
                        raise RuntimeError(f"{member} not found in {tarball.name}")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_suffix(".part")
                    partial.write_bytes(source.read())
                    partial.replace(target)  # atomic: a half-written file never looks cached
        files[library] = target
    return files


def local_file_for(url: str, scripts: dict[str, Path]) -> Path | None:
    """The local copy serving a cdnjs URL bertviz asks for, or None for any other URL."""
    match = CDN_LIBRARY.match(url)
    if match is None:
        return None
    return scripts.get(match.group(1))
