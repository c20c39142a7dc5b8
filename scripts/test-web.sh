#!/usr/bin/env bash
# End-to-end test of the web page in the system's headless Chromium (WebGPU on SwiftShader).
# Explains scene 0 of the held-out seed 12345 with the native CLI on lavapipe, then lets
# web/e2e/run.mjs drive the page through the same scene and question and compare, twice:
#  1. against the server the README's first command starts (scripts/serve.sh: trunk serve, same
#     options), every check, with the model folders of the test on a second origin;
#  2. against a static server that answers every missing path with index.html and status 200
#     (a single-page-app host): the demo model loads and explains with the CLI's numbers.
#  3. browsing a batch output of the same scene in the page (web/e2e/batch.mjs).
# The first run also checks the page as a product (web/e2e/screen.mjs): the main loop by keyboard
# alone, the result on one 1280 x 800 screen, axe-core in both themes, the phone layout.
# Screenshots and timings land in target/e2e/{served,spa,batch}/; the served run's
# desktop-{light,dark}.png and phone-{light,dark}.png are the ones docs/screenshots/ keeps.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup-web.sh)"
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan} NODEVICE_SELECT=1

cargo build -p llava-lens-cli
bin=${CARGO_TARGET_DIR:-target}/debug/llava-lens
work=target/e2e
rm -rf "$work" && mkdir -p "$work"

# The page, as `scripts/serve.sh` serves it, on a free port (its own process group, so that
# stopping it stops Trunk too). It builds the page first: wait for the page, not for a time.
# No page from an earlier build: the wait below must see this build's.
rm -rf target/dist
port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
setsid scripts/serve.sh --port "$port" >"$work/serve.log" 2>&1 &
serve_pid=$!
trap 'kill -- -"$serve_pid" 2>/dev/null || true' EXIT

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
# What if…: a knockout of five patches of the map's best patch's row (what the e2e test brushes)
# and the zero ablation of the best head, zooming on the map's window,
# activation patching from scene 0 into scene 1 (the gallery's second picture, same question),
# and the whole answer (web/e2e/whatif.mjs compares the page with these).
knock=$(node -e '
  const e = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const best = e.patch_scores.indexOf(Math.max(...e.patch_scores)), g = e.grid;
  const row = Math.floor(best / g), c0 = Math.max(0, Math.min(g - 5, best % g - 2));
  console.log([0, 1, 2, 3, 4].map((k) => row * g + c0 + k).join(","));
' "$work/cli.json")
"$bin" ablate --image "$work/scene/$(dec "$image")" --question "$(dec "$question")" --answer-prefix "$(dec "$prefix")" \
    --knockout-patches "$knock" --top-heads 1 > "$work/cli-knockout.json"
"$bin" scenes --out "$work/scene1" --n 1 --start 1 --seed 12345 >/dev/null
"$bin" patch --image "$work/scene/$(dec "$image")" --question "$(dec "$question")" --answer-prefix "$(dec "$prefix")" \
    --corrupt-image "$work/scene1/$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8").split("\n")[0]).image)' "$work/scene1/scenes.jsonl")" \
    --positions image > "$work/cli-patch.json" 2>/dev/null
"$bin" zoom --image "$work/scene/$(dec "$image")" --question "$(dec "$question")" --answer-prefix "$(dec "$prefix")" \
    --zoom 0.5 --seeds 3 > "$work/cli-zoom.json" 2>/dev/null
"$bin" answer --image "$work/scene/$(dec "$image")" --question "$(dec "$question")" --answer-prefix "$(dec "$prefix")" \
    --max-tokens 4 > "$work/cli-answer.json" 2>/dev/null
cli_args=(target/dist "$work/cli.json" "$work/scene/scenes.jsonl" "$work/cli-contrast.json" "$work/cli-faithful.json")

url="http://127.0.0.1:$port/"
echo "test-web: waiting for scripts/serve.sh to build and serve the page at $url (log: $work/serve.log)"
until curl -sf "$url" | grep -q 'llava-lens-web'; do
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        echo "test-web: scripts/serve.sh stopped before serving the page:" >&2
        tail -n 40 "$work/serve.log" >&2
        exit 1
    fi
    sleep 1
done
node web/e2e/run.mjs --page "$url" "${cli_args[@]}"
node web/e2e/run.mjs --spa "${cli_args[@]}"
# A batch output of the scene's questions, plus a line that fails, browsed in the page (no model
# needed): list, tag filter, score sort, a line's views with the batch's numbers.
{ cat "$work/scene/examples.jsonl"
  echo '{"id": "broken", "image": "missing.png", "question": "What is the color of the star?", "tags": ["broken"]}'
} > "$work/scene/batch-examples.jsonl"
"$bin" batch --examples "$work/scene/batch-examples.jsonl" --out "$work/batch.jsonl" --lens-k 0 2>/dev/null
node web/e2e/batch.mjs target/dist "$work/batch.jsonl" $(ls "$work"/scene/*.png | grep -v '\.mask\.png$')
