"""Write a course notebook from a Python builder script, in the course's standard shape.

Every notebook starts the same way: a title with a Colab badge, the learning objectives, and a
cell that installs gpt2lab when (and only when) it runs on Google Colab. Exercises are a markdown
cell followed by a solution code cell tagged ``solution`` with its source collapsed; the notebook
ends with a summary. Notebooks are written without outputs and with stable cell ids, so rebuilding
an unchanged notebook gives the same file.

Usage in a builder script (run it to (re)write ``notebooks/NN_slug.ipynb``)::

    nb = CourseNotebook("01_ngram_language_models.ipynb", "N-gram language models", intro, objectives)
    nb.md("...")
    nb.code("...")
    nb.exercise("...", solution="...")
    nb.summary([...])
    nb.write()
"""
from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import nbformat

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1]
COLAB_URL = "https://colab.research.google.com/github/gpt2lab/gpt2lab/blob/main/notebooks/{file}"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
PACKAGE_SPEC = "gpt2lab @ git+https://github.com/gpt2lab/gpt2lab"
SOLUTION_METADATA = {"tags": ["solution"], "jupyter": {"source_hidden": True}}

COLAB_INSTALL_CELL = f'''\
# On Google Colab, install gpt2lab first; anywhere else it is already installed and nothing happens.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{PACKAGE_SPEC}"], check=True)'''


def colab_badge(file: str) -> str:
    return f"[![Open In Colab]({COLAB_BADGE})]({COLAB_URL.format(file=file)})"


def _clean(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


class CourseNotebook:
    def __init__(self, file: str, title: str, intro: str, objectives: list[str]):
        if not file.endswith(".ipynb") or not file[:2].isdigit() or file[2] != "_":
            raise ValueError(f"notebook file names look like NN_slug.ipynb, got {file!r}")
        self.file = file
        self.cells = []
        self.n_exercises = 0
        self.md(f"# {title}\n\n{colab_badge(file)}\n\n{_clean(intro)}")
        self.md("## Learning objectives\n\nAfter this notebook you can:\n\n"
                + "\n".join(f"- {line}" for line in objectives))
        self.code(COLAB_INSTALL_CELL)

    def md(self, text: str) -> CourseNotebook:
        self.cells.append(nbformat.v4.new_markdown_cell(_clean(text)))
        return self

    def code(self, source: str, metadata: dict | None = None) -> CourseNotebook:
        cell = nbformat.v4.new_code_cell(_clean(source))
        if metadata:
            cell.metadata.update(metadata)
        self.cells.append(cell)
        return self

    def exercise(self, task: str, solution: str, title: str | None = None) -> CourseNotebook:
        """An exercise (markdown) and its solution: a code cell tagged ``solution``, source hidden."""
        self.n_exercises += 1
        heading = f"### Exercise {self.n_exercises}" + (f": {title}" if title else "")
        self.md(f"{heading}\n\n{_clean(task)}\n\n*The solution is in the next cell (collapsed; click to "
                "expand). Try it yourself first.*")
        self.code(solution, metadata={k: (dict(v) if isinstance(v, dict) else list(v))
                                      for k, v in SOLUTION_METADATA.items()})
        return self

    def summary(self, points: list[str], outro: str = "") -> CourseNotebook:
        text = "## Summary\n\n" + "\n".join(f"- {p}" for p in points)
        if outro:
            text += "\n\n" + _clean(outro)
        return self.md(text)

    def build(self) -> nbformat.NotebookNode:
        nb = nbformat.v4.new_notebook()
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "colab": {"provenance": []},
        }
        for i, cell in enumerate(self.cells):
            # stable ids: rebuilding an unchanged notebook rewrites the same bytes
            cell.id = hashlib.sha1(f"{self.file}:{i}".encode()).hexdigest()[:12]
        nb.cells = self.cells
        nbformat.validate(nb)
        return nb

    def write(self, folder: Path = NOTEBOOKS_DIR) -> Path:
        if self.n_exercises == 0:
            raise ValueError(f"{self.file}: every course notebook needs at least one exercise")
        if not self.cells[-1].source.startswith("## Summary"):
            raise ValueError(f"{self.file}: the last cell must be the summary (call .summary(...) last)")
        path = Path(folder) / self.file
        nbformat.write(self.build(), str(path))
        print(f"wrote {path} ({len(self.cells)} cells)")
        return path
