#!/usr/bin/env bash
# Creates .venv (once) and installs the requirements file given as $1: every package,
# transitive ones too, pinned with its hashes (compiled by pip-tools from the .in files).
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=${1:-requirements.txt}
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum "$requirements" requirements.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet --require-hashes -r "$requirements"
    touch "$stamp"
fi
