#!/usr/bin/env bash
# The README's main command: sets up ComfyUI + venv (idempotent), then renders the example workflow.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/bootstrap.py >/dev/null
PYTHONSAFEPATH=1 exec .cache/venv/bin/python scripts/main_job.py "$@"
