#!/usr/bin/env bash
# Set up (.venv with gpt2lab) and run the whole course headless on the default model
# ($GPT2LAB_MODEL, else gpt2, else the embedded model when the Hub is unreachable).
# Rendered notebooks land in build/course/. Extra arguments go to scripts/run_course.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
if [ -z "${GPT2LAB_DATA_MIRROR:-}" ] && [ -d "$ROOT/../shared/data" ]; then
    export GPT2LAB_DATA_MIRROR="$(cd "$ROOT/../shared/data" && pwd)"
fi
.venv/bin/python scripts/run_course.py "$@"
