#!/usr/bin/env bash
# The main job: serve the llava-lens page with the bundled demo model on http://127.0.0.1:8080,
# installing the web tools first if they are missing (scripts/setup-web.sh). Extra arguments go
# to `trunk serve` (e.g. --port 9000).
#
# --no-spa: a missing file answers 404, not index.html with 200 (Trunk's default fallback), so
# the page's probes for optional model files see them missing. The page copes with such a
# fallback too (crates/web/src/files.rs, file_answer), as static hosts often have one.
# --no-autoreload: Trunk's reload script is an inline script the page's Content-Security-Policy
# (web/csp.mjs) does not allow; this serves the app, it does not watch a developer's edits.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-web.sh)"
exec trunk serve --release --no-spa --no-autoreload "$@"
