"""The course notebooks: each one has the course's shape, and each one runs top to bottom.

* Structure (fast, no kernel): a title, a Colab badge for this file, a Colab-only install cell, the
  ``gpt2lab.load_default()`` cell, learning objectives, at least one exercise followed by a solution
  cell tagged ``solution`` (source hidden), a summary, and no committed outputs.
* Execution (``-m notebooks``): every ``notebooks/NN_*.ipynb`` runs on a fresh kernel with the
  embedded model (``GPT2LAB_MODEL=embedded``, ``GPT2LAB_SCALE=quick``), exactly as
  ``scripts/run_course.py`` runs it. The time of each notebook is printed at the end of the session
  and written to ``build/test-artifacts/notebook-times.json``; a failing notebook is saved with its
  outputs under ``build/test-artifacts/notebooks/``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts"


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_course", ROOT / "scripts" / "run_course.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_course", module)
    spec.loader.exec_module(module)
    return module


run_course = _load_runner()
NOTEBOOKS = run_course.course_notebooks()
COLAB_URL = "https://colab.research.google.com/github/gpt2lab/gpt2lab/blob/main/notebooks/{file}"


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def _headings(cell) -> list[str]:
    return [line.lstrip("#").strip() for line in cell.source.splitlines() if re.match(r"^#{1,6} ", line)]


# ---------------------------------------------------------------- structure

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_the_course_shape(path):
    nb = _read(path)
    nbformat.validate(nb)
    cells = nb.cells
    problems = []
    markdown = [c for c in cells if c.cell_type == "markdown"]
    code = [c for c in cells if c.cell_type == "code"]

    if not (cells and cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")):
        problems.append("the first cell must be markdown starting with a '# Title'")
    badge_url = COLAB_URL.format(file=path.name)
    if not any(badge_url in c.source and "colab-badge.svg" in c.source for c in markdown[:3]):
        problems.append(f"no Colab badge linking to {badge_url} in the first markdown cells")
    if not any(re.search(r"learning objectives", h, re.IGNORECASE) for c in markdown[:4] for h in _headings(c)):
        problems.append("no 'Learning objectives' heading near the top")
    if len(code) < 2:
        problems.append("needs at least the Colab install cell and the model-loading cell")
    else:
        install, first = code[0].source, code[1].source
        if not ('"google.colab" in sys.modules' in install and "pip" in install and "gpt2lab" in install):
            problems.append("the first code cell must pip-install gpt2lab only when 'google.colab' in sys.modules")
        if "import gpt2lab" not in first or "gpt2lab.load_default()" not in first:
            problems.append("the code cell after the Colab cell must `import gpt2lab` and call "
                            "`gpt2lab.load_default()`")

    # exercises, each followed by its solution before the next exercise
    exercise_at = [i for i, c in enumerate(cells)
                   if c.cell_type == "markdown" and any(re.match(r"exercise", h, re.IGNORECASE) for h in _headings(c))]
    solution_at = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
    if not exercise_at:
        problems.append("no exercise (a markdown heading starting with 'Exercise')")
    for n, start in enumerate(exercise_at):
        end = exercise_at[n + 1] if n + 1 < len(exercise_at) else len(cells)
        if not any(start < i < end for i in solution_at):
            problems.append(f"exercise in cell {start} has no solution cell tagged 'solution' after it")
    for i in solution_at:
        cell = cells[i]
        if cell.cell_type != "code" or not cell.source.strip():
            problems.append(f"solution cell {i} must be a non-empty code cell")
        if cell.metadata.get("jupyter", {}).get("source_hidden") is not True:
            problems.append(f"solution cell {i} must carry metadata jupyter.source_hidden = true")

    second_half = markdown[len(markdown) // 2:]
    if not any(re.search(r"\bsummary\b", h, re.IGNORECASE) for c in second_half for h in _headings(c)):
        problems.append("no 'Summary' heading in the second half of the notebook")
    for c in markdown:  # links to other course notebooks must lead somewhere
        for target in re.findall(r"\]\((\d\d_[\w-]+\.ipynb)\)", c.source):
            if not (path.parent / target).is_file():
                problems.append(f"link to {target}, which does not exist")
    dirty = [i for i, c in enumerate(cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    if dirty:
        problems.append(f"committed outputs or execution counts in cells {dirty} (clear them)")
    assert not problems, f"{path.name}:\n  - " + "\n  - ".join(problems)


def test_all_thirteen_course_notebooks_exist():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    missing = sorted(set(range(13)) - set(numbers))
    assert not missing, f"the course has notebooks 00-12; missing: {[f'{n:02d}' for n in missing]}"
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {[p.name for p in NOTEBOOKS]}"


# ---------------------------------------------------------------- execution

_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def notebook_times(request):
    """Collects the time per notebook; reports and saves it when the module's tests are done."""
    yield _TIMES
    if not _TIMES:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    total = sum(_TIMES.values())
    (ARTIFACTS / "notebook-times.json").write_text(json.dumps({"seconds": _TIMES, "total": total}, indent=1))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write("\n")
        reporter.write_sep("-", "course notebook execution times (embedded model)")
        for name, seconds in _TIMES.items():
            reporter.write_line(f"{name:<42} {seconds:6.1f} s")
        reporter.write_line(f"{'total':<42} {total:6.1f} s ({total / 60:.1f} min)")


@pytest.fixture
def course_env(monkeypatch):
    """The environment the course kernels inherit: embedded model, quick scale, no network."""
    monkeypatch.setenv("GPT2LAB_MODEL", "embedded")
    if "GPT2LAB_SCALE" not in os.environ:
        monkeypatch.setenv("GPT2LAB_SCALE", "quick")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.mark.notebooks
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, course_env, notebook_times, record_property):
    nb, seconds, error = run_course.execute(path, timeout=300)
    notebook_times[path.name] = seconds
    record_property("seconds", round(seconds, 1))
    print(f"{path.name}: {seconds:.1f} s")
    if error is not None:
        saved = ARTIFACTS / "notebooks" / path.name
        saved.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(saved))
        pytest.fail(f"{path.name} failed after {seconds:.1f} s (executed copy: {saved}):\n{error}", pytrace=False)
    # the run really happened: every code cell was executed
    unexecuted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is None]
    assert not unexecuted, f"cells {unexecuted} of {path.name} did not run"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


# ---------------------------------------------------------------- the runner itself

def _tiny_notebook(folder: Path, name: str, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), nbformat.v4.new_code_cell(source)]
    path = folder / name
    nbformat.write(nb, str(path))
    return path


def test_runner_selects_by_number_and_name(tmp_path):
    paths = [_tiny_notebook(tmp_path, n, "1") for n in ["00_a.ipynb", "01_b_words.ipynb", "08_decoding.ipynb"]]
    (tmp_path / "notes.ipynb").write_text("{}")  # not a course notebook (no NN_ prefix)
    found = run_course.course_notebooks(tmp_path)
    assert found == paths
    assert run_course.select(found, ["8"]) == [paths[2]]
    assert run_course.select(found, ["decoding", "00"]) == [paths[0], paths[2]]
    assert run_course.select(found, []) == paths
    with pytest.raises(ValueError, match="no notebook matches '7'"):
        run_course.select(found, ["7"])


def test_runner_rejects_bad_arguments(tmp_path, capsys):
    _tiny_notebook(tmp_path, "00_a.ipynb", "1")
    with pytest.raises(SystemExit) as exit_info:
        run_course.main(["--dir", str(tmp_path), "nope"])
    assert exit_info.value.code == 2
    assert "no notebook matches 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_course.main(["--dir", str(tmp_path), "--timeout", "0"])
    assert "--timeout must be a positive" in capsys.readouterr().err


@pytest.mark.slow
def test_runner_executes_writes_html_and_fails_loudly(tmp_path, capsys):
    saved_env = dict(os.environ)  # the runner sets variables for its kernels; restore them afterwards
    os.environ.pop("GPT2LAB_SCALE", None)
    try:
        _check_runner_run(tmp_path, capsys)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)


def _check_runner_run(tmp_path, capsys):
    _tiny_notebook(tmp_path, "00_ok.ipynb", "import os\nprint('scale is', os.environ['GPT2LAB_SCALE'])")
    _tiny_notebook(tmp_path, "01_broken.ipynb", "raise ValueError('deliberate failure')")
    _tiny_notebook(tmp_path, "02_never.ipynb", "print('not reached')")
    out = tmp_path / "html"
    code = run_course.main(["--dir", str(tmp_path), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert re.search(r"00_ok\.ipynb\s+\d+\.\d s  ok", captured.out), captured.out
    assert re.search(r"01_broken\.ipynb\s+\d+\.\d s  FAILED", captured.out), captured.out
    assert "02_never" not in captured.out  # stops at the first failure
    assert re.search(r"total\s+\d+\.\d s", captured.out) and str(out) in captured.out
    assert "deliberate failure" in captured.err
    html = (out / "00_ok.html").read_text()
    assert "scale is quick" in html  # executed, with the quick scale set by the runner
    assert "deliberate failure" in (out / "01_broken.html").read_text()
    assert not (out / "02_never.html").exists()
