#!/usr/bin/env bash
# The README's test command: sets up ComfyUI, the runtime venv and the test venv (idempotent), then runs the suite.
# ComfyUI servers started by the tests run in the runtime venv (ANIMDIFF_RUNTIME_PYTHON), which holds no test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
setup=$(python3 scripts/bootstrap.py --dev)  # fails the script if the set-up fails
eval "$setup"
export COMFYUI_PATH ANIMDIFF_RUNTIME_PYTHON
# PYTHONSAFEPATH: never put the pack root on sys.path (its nodes/ would shadow ComfyUI's nodes.py).
# --rootdir=tests: the pack root is a package (its __init__.py); pytest would import it as one, which fails when the
# checkout's folder is not a Python name (custom_nodes/ComfyUI-AnimDiff).
PYTHONSAFEPATH=1 exec "$ANIMDIFF_PYTHON" -m pytest --rootdir=tests "$@"
