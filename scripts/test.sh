#!/usr/bin/env bash
# Set up (.venv, gpt2lab with test extras, headless Chromium for the browser tests), lint with ruff, and run the tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k ngram`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$(date +%s)
GPT2LAB_EXTRAS=test bash scripts/setup_env.sh
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "gpt2lab setup: installing Debian's chromium for the browser tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "gpt2lab setup: chromium not found; browser tests will be skipped (install Debian's 'chromium')"
    fi
fi
# Course data come from the mirror beside the checkout when there is one (CI), else are downloaded once.
if [ -z "${GPT2LAB_DATA_MIRROR:-}" ] && [ -d "$ROOT/../shared/data" ]; then
    export GPT2LAB_DATA_MIRROR="$(cd "$ROOT/../shared/data" && pwd)"
fi
echo "gpt2lab setup: done in $(( $(date +%s) - start )) s; linting (ruff), then running the tests"
.venv/bin/ruff check "$ROOT" || { echo "gpt2lab: ruff found problems (fix them, or run .venv/bin/ruff check --fix)" >&2; exit 1; }
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = "5" ]; then
    echo "gpt2lab: pytest collected no tests - that is a failure" >&2
    exit 1
fi
exit "$status"
