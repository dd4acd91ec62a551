#!/usr/bin/env bash
# Create .venv (if missing) and install gpt2lab into it. Sourced by course.sh and test.sh.
#   GPT2LAB_PYTHON  interpreter to build the venv with (default: python3.11, else python3)
#   GPT2LAB_TORCH   pip requirement for torch, installed first (default: torch==2.13.0, which on this
#                   project's CPU machines is a local CPU wheel; use e.g. "torch" for the newest build,
#                   or a CUDA/CPU-specific spec). Skipped when the venv already has torch.
#   GPT2LAB_EXTRAS  extras to install (default: none for the course, "test" for the tests)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GPT2LAB_VENV:-$ROOT/.venv}"
PY="${GPT2LAB_PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "gpt2lab setup: creating $VENV with $("$PY" --version)"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "gpt2lab setup: installing ${GPT2LAB_TORCH:-torch==2.13.0}"
    "${PIP[@]}" install "${GPT2LAB_TORCH:-torch==2.13.0}"
fi
SPEC="$ROOT"
if [ -n "${GPT2LAB_EXTRAS:-}" ]; then SPEC="$ROOT[${GPT2LAB_EXTRAS}]"; fi
echo "gpt2lab setup: installing gpt2lab (editable) ${GPT2LAB_EXTRAS:+with extras [$GPT2LAB_EXTRAS]}"
"${PIP[@]}" install -e "$SPEC"
