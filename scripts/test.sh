#!/usr/bin/env bash
# The README's test command: sets up ComfyUI + venv (idempotent), then runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/bootstrap.py --dev >/dev/null
# PYTHONSAFEPATH: never put the pack root on sys.path (its nodes/ would shadow ComfyUI's nodes.py).
PYTHONSAFEPATH=1 exec .cache/venv/bin/python -m pytest "$@"
