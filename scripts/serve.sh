#!/usr/bin/env bash
# The main job: serve the llava-lens page with the bundled demo model on http://127.0.0.1:8080,
# installing the web tools first if they are missing (scripts/setup-web.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-web.sh)"
exec trunk serve --release "$@"
