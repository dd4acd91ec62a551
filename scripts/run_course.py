#!/usr/bin/env python
"""Run the whole course headless: execute every ``notebooks/NN_*.ipynb`` in order, each on a fresh
kernel, and write the executed notebooks as HTML pages under ``build/course/`` (an explorer appears
there as a static picture of its opening state).

    python scripts/run_course.py                 # all notebooks
    python scripts/run_course.py 01 02           # pick notebooks by number or name fragment
    python scripts/run_course.py --model gpt2    # another model (sets GPT2LAB_MODEL)

Prints the time each notebook took and the total, and where the HTML is. Exits with status 1 when a
notebook fails (its HTML, with the error in it, is still written), 2 on bad arguments.
``GPT2LAB_SCALE`` is set to ``quick`` unless it is already set, so the course runs in minutes on a CPU.
The source notebooks are never modified.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "build" / "course"
SHARED_DATA = ROOT.parent / "shared" / "data"  # the course data mirror of the development machines
DEFAULT_CELL_TIMEOUT_S = 600


def course_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The course notebooks, in order: ``NN_slug.ipynb`` files directly in ``folder``."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def select(notebooks: list[Path], picks: list[str]) -> list[Path]:
    """Notebooks whose number (``"5"``, ``"05"``) or file name fragment (``"decoding"``) is in ``picks``."""
    if not picks:
        return notebooks
    chosen = []
    for pick in picks:
        matches = [p for p in notebooks if (pick.isdigit() and p.name[:2] == f"{int(pick):02d}") or
                   (not pick.isdigit() and pick in p.name)]
        if not matches:
            raise ValueError(f"no notebook matches {pick!r}; the course has: {', '.join(p.name for p in notebooks)}")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def execute(path: Path, timeout: int = DEFAULT_CELL_TIMEOUT_S, kernel_name: str = "python3"):
    """Execute one notebook on a fresh kernel (working directory: its folder).

    Returns (executed notebook, seconds, error or None); the notebook holds the outputs up to the error.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(str(path), as_version=4)
    # The kernel's own start-up log (e.g. "running over TCP without encryption" on loopback) is noise
    # here; what the notebook's code prints or warns still lands in the outputs.
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        error = err
    return nb, time.perf_counter() - start, error


def write_html(nb, target: Path) -> None:
    """Write ``nb`` as an HTML page, without its widget state: with it, the page would show the explorers
    only through a widget manager fetched from a CDN (blank offline, and inert without a kernel); without
    it, each explorer's static picture of its opening state is shown (its ``text/html``, see
    :func:`gpt2lab.widgets.common.with_static_view`)."""
    import copy

    from nbconvert import HTMLExporter

    page = copy.deepcopy(nb)
    page.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(page)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks


def _short_error(error: BaseException) -> str:
    text = _ANSI.sub("", str(error)).strip().splitlines()
    # nbclient's message ends with the exception line, e.g. "AssertionError: ..."
    tail = [line for line in text if line.strip()][-1:] or [type(error).__name__]
    return f"{type(error).__name__}: {tail[0]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="numbers (01, 5) or name fragments (decoding); default: all")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"HTML folder (default {DEFAULT_OUT})")
    parser.add_argument("--dir", type=Path, default=NOTEBOOKS, help=f"notebook folder (default {NOTEBOOKS})")
    parser.add_argument("--model", help="model for every notebook (sets GPT2LAB_MODEL), e.g. embedded or gpt2")
    parser.add_argument("--timeout", type=int, default=DEFAULT_CELL_TIMEOUT_S,
                        help=f"seconds one cell may run (default {DEFAULT_CELL_TIMEOUT_S})")
    parser.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")

    try:
        chosen = select(course_notebooks(args.dir), args.notebooks)
    except ValueError as err:
        parser.error(str(err))
    if not chosen:
        parser.error(f"no notebooks (NN_name.ipynb) found in {args.dir}")

    # The kernels inherit this environment.
    os.environ.setdefault("GPT2LAB_SCALE", "quick")
    if args.model:
        os.environ["GPT2LAB_MODEL"] = args.model
    if "GPT2LAB_DATA_MIRROR" not in os.environ and SHARED_DATA.is_dir():
        os.environ["GPT2LAB_DATA_MIRROR"] = str(SHARED_DATA)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"running {len(chosen)} notebook(s) with GPT2LAB_MODEL={os.environ.get('GPT2LAB_MODEL', '(default)')} "
          f"GPT2LAB_SCALE={os.environ['GPT2LAB_SCALE']}", flush=True)

    results = []
    for path in chosen:
        print(f"{path.name:<40}", end="", flush=True)
        nb, seconds, error = execute(path, timeout=args.timeout)
        html_path = args.out / path.with_suffix(".html").name
        write_html(nb, html_path)
        status = "ok" if error is None else f"FAILED  {_short_error(error)}"
        print(f" {seconds:7.1f} s  {status}", flush=True)
        results.append((path.name, seconds, error, html_path))
        if error is not None and not args.keep_going:
            break

    total = sum(seconds for _, seconds, _, _ in results)
    failed = [name for name, _, error, _ in results if error is not None]
    print(f"{'total':<40} {total:7.1f} s  ({total / 60:.1f} min, {len(results)} notebook(s))")
    print(f"HTML: {args.out}{os.sep}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        for name, _, error, html_path in results:
            if error is not None:
                print(f"\n--- {name} (see {html_path})\n{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
