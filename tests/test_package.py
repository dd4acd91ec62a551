"""The package's public shape: a plain ``import gpt2lab`` reaches every subpackage and every public
name (lazily, so the import stays light), and every module says what it exports."""
from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import torch

import gpt2lab


def _fresh_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_public_name_and_subpackage_works_after_a_plain_import():
    out = _fresh_python(
        "import json, gpt2lab\n"
        "names = {n: type(getattr(gpt2lab, n)).__name__ for n in gpt2lab.__all__}\n"
        "print(json.dumps(names))")
    kinds = json.loads(out)
    assert set(kinds) == set(gpt2lab.__all__)
    for sub in gpt2lab.SUBPACKAGES:
        assert kinds[sub] == "module"
    assert kinds["generate"] == "function" and kinds["LM"] == "type"


def test_import_is_lazy():
    out = _fresh_python(
        "import sys, gpt2lab\n"
        "print(sorted(m for m in sys.modules if m.startswith('gpt2lab.')))")
    loaded = set(eval(out))
    assert loaded <= {"gpt2lab.device", "gpt2lab.loading"}, loaded
    assert "gpt2lab.training.finetuning" not in loaded and "gpt2lab.explain.attribution" not in loaded


def _all_modules() -> list[str]:
    found = pkgutil.walk_packages(gpt2lab.__path__, "gpt2lab.")
    return sorted(m.name for m in found if not m.name.endswith("__main__"))


def test_every_module_declares_what_it_exports():
    modules = _all_modules()
    assert len(modules) >= 30
    for name in modules:
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ names what it does not define: {missing}"
        assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ has duplicates"


def test_subpackages_reexport_their_modules_public_names():
    for sub in gpt2lab.SUBPACKAGES:
        package = importlib.import_module(f"gpt2lab.{sub}")
        for name in package.__all__:
            assert hasattr(package, name), f"gpt2lab.{sub} lists {name} but lacks it"
    assert gpt2lab.training.finetune is gpt2lab.finetune
    assert gpt2lab.attention.capture_attention is gpt2lab.capture_attention
    assert gpt2lab.generation.generate is gpt2lab.generate  # not decoding.generate, which is its own namespace
    assert gpt2lab.generation.decoding.generate is not gpt2lab.generate
    assert gpt2lab.model.from_gpt2 is gpt2lab.from_gpt2 and gpt2lab.model.GPT is gpt2lab.GPT
    assert gpt2lab.interpret.logit_lens is gpt2lab.logit_lens
    assert gpt2lab.interpret.activation_patching is gpt2lab.activation_patching


def test_lm_methods_delegate_to_the_package_functions(tiny_lm):
    """``lm.score(...)`` is ``gpt2lab.score_text(lm, ...)``, and so on: same answers, one implementation."""
    text = "hello world, hello world"
    assert tiny_lm.score(text).loss == gpt2lab.score_text(tiny_lm, text).loss
    assert tiny_lm.perplexity(text) == gpt2lab.perplexity(tiny_lm, text)
    greedy = dict(mode="greedy", max_length=4)
    assert list(tiny_lm.generate("hello", **greedy)) == list(gpt2lab.generate(tiny_lm, "hello", **greedy))
    assert list(tiny_lm.decode_from_scratch("hello", **greedy)) == list(gpt2lab.generate(tiny_lm, "hello", **greedy))
    capture = tiny_lm.capture_attention(text)
    assert torch.equal(capture.attention, gpt2lab.capture_attention(tiny_lm, text).attention)
    public = [n for n in dir(type(tiny_lm)) if not n.startswith("_")]
    for name in ("generate", "score", "capture_attention", "head_stats", "word_importance", "compare_attributions",
                 "finetune", "serve", "next_token_distribution", "logit_lens", "direct_logit_attribution",
                 "activation_patching"):
        assert name in public


def test_no_module_imports_another_modules_private_names():
    """Shared helpers have one public home (gpt2lab.files, .tokens, .fingerprint, ...); a module reaching
    into another's ``_private`` names would make two homes."""
    import ast
    from pathlib import Path

    offences = []
    for path in sorted(Path(gpt2lab.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text())
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gpt2lab"):
                for alias in node.names:
                    aliases.add(alias.asname or alias.name)
                    if alias.name.startswith("_"):
                        offences.append(f"{path.name}: from {node.module} import {alias.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                offences.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offences, offences


MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 120


def _size_offences(root) -> list[str]:
    """Modules over MAX_MODULE_LINES lines and functions or methods (nested ones included) over
    MAX_FUNCTION_LINES, from ``def`` to the last line of the body, for every ``*.py`` under ``root``."""
    import ast
    from pathlib import Path

    offences = []
    for path in sorted(Path(root).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            offences.append(f"{path.relative_to(root)}: {lines} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    offences.append(f"{path.relative_to(root)}:{node.lineno} {node.name}(): {length} lines "
                                    f"(limit {MAX_FUNCTION_LINES})")
    return offences


def test_no_module_over_700_lines_and_no_function_over_120():
    """The package's size limits: a module a newcomer can read whole, a function that fits on a screen or two."""
    from pathlib import Path

    assert not _size_offences(Path(gpt2lab.__file__).parent)


def test_the_size_check_finds_long_modules_and_long_functions(tmp_path):
    def statements(count: int, indent: str) -> str:
        return "".join(f"{indent}x{i} = {i}\n" for i in range(count))

    # a method of def + 120 lines (one too many), a function of exactly 120 lines, a module of 701 lines
    (tmp_path / "long_function.py").write_text("class A:\n    def method(self):\n"
                                               + statements(MAX_FUNCTION_LINES, " " * 8))
    (tmp_path / "fits.py").write_text("def f():\n" + statements(MAX_FUNCTION_LINES - 1, " " * 4))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "long_module.py").write_text(statements(MAX_MODULE_LINES + 1, ""))
    assert _size_offences(tmp_path) == [
        f"long_function.py:2 method(): {MAX_FUNCTION_LINES + 1} lines (limit {MAX_FUNCTION_LINES})",
        f"sub/long_module.py: {MAX_MODULE_LINES + 1} lines (limit {MAX_MODULE_LINES})"]


def test_public_functions_that_take_a_model_say_it_is_an_lm():
    """``lm`` is always a :class:`gpt2lab.LM`; the annotation makes that visible in signatures and help()."""
    import ast
    from pathlib import Path

    root = Path(gpt2lab.__file__).parent
    unannotated = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
                for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
                    if arg.arg == "lm" and (arg.annotation is None or "LM" not in ast.unparse(arg.annotation)):
                        unannotated.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    assert not unannotated, unannotated
