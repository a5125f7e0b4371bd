#!/usr/bin/env bash
# The README's main command: sets up ComfyUI + the runtime venv (idempotent), then renders the example workflow.
set -euo pipefail
cd "$(dirname "$0")/.."
setup=$(python3 scripts/bootstrap.py)  # fails the script if the set-up fails
eval "$setup"
export COMFYUI_PATH
# PYTHONSAFEPATH: never put the pack root on sys.path (its nodes/ would shadow ComfyUI's nodes.py).
PYTHONSAFEPATH=1 exec "$ANIMDIFF_PYTHON" scripts/main_job.py "$@"
