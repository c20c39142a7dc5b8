#!/usr/bin/env bash
# End-to-end test of the web page in the system's headless Chromium (WebGPU on SwiftShader):
# builds the page with Trunk (offline), explains scene 0 of the held-out seed 12345 with the
# native CLI on lavapipe, then lets web/e2e/run.mjs drive the page through the same scene and
# question and compare. Screenshots and timings land in target/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-web.sh)"
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan} NODEVICE_SELECT=1

trunk build --release
cargo build -p llava-lens-cli
bin=${CARGO_TARGET_DIR:-target}/debug/llava-lens
work=target/e2e
rm -rf "$work" && mkdir -p "$work"
"$bin" scenes --out "$work/scene" --n 1 --seed 12345 >/dev/null
# The page's gallery is scenes 0.. of seed 12345 from the same generator; its first button asks
# the first question of scene 0.
read -r image question prefix < <(node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").split("\n")[0]);
  const q = r.questions[0];
  console.log([r.image, q.question, q.answer_prefix].map(encodeURIComponent).join(" "));
' "$work/scene/scenes.jsonl")
dec() { node -e 'console.log(decodeURIComponent(process.argv[1]))' "$1"; }
"$bin" explain --image "$work/scene/$(dec "$image")" --question "$(dec "$question")" --answer-prefix "$(dec "$prefix")" \
    --top-k-heads 3 --out "$work/cli-map.png" --json "$work/cli.json" >/dev/null
answer=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").split("\n")[0]).questions[0].answer)' "$work/scene/scenes.jsonl")
"$bin" explain --image "$work/scene/$(dec "$image")" --question "$(dec "$question")" --answer-prefix "$(dec "$prefix")" \
    --top-k-heads 3 --target "$answer" --contrast none --out "$work/cli-contrast-map.png" --json "$work/cli-contrast.json" >/dev/null
"$bin" faithfulness --image "$work/scene/$(dec "$image")" --question "$(dec "$question")" --answer-prefix "$(dec "$prefix")" \
    --operator knockout --steps 8 --seeds 2 > "$work/cli-faithful.json"
node web/e2e/run.mjs target/dist "$work/cli.json" "$work/scene/scenes.jsonl" "$work/cli-contrast.json" "$work/cli-faithful.json"
