#!/usr/bin/env bash
# Train several demo-model variants side by side on one CUDA GPU, then play the pointing game on
# each with llava-lens itself (Vulkan on the same GPU), on a model-selection seed that no
# reported number uses. Built for a lent GPU machine with a 10-minute command limit: every
# variant gets the same wall budget (train_scenes.py --budget-minutes shortens its joint stage).
#
# Usage: scripts/train/gpu-variants.sh OUTDIR LLAVA_LENS_BIN BUDGET_MINUTES NAME:"ARGS" ...
#   e.g. scripts/train/gpu-variants.sh out bin/llava-lens 6 h4:"--text-heads 4" h2:"--text-heads 2"
# Each variant lands in OUTDIR/NAME.tar.gz (HF folder, training log, pointing JSON); the console
# log of everything in OUTDIR/variants.log.
set -uo pipefail
out=${1:?usage}
bin=$(realpath "${2:?usage}")
budget=${3:?usage}
shift 3
here=$(cd "$(dirname "$0")" && pwd)
work=/tmp/gpu-variants
selection_seed=31337
mkdir -p "$out" "$work"
log="$out/variants.log"
exec > >(tee -a "$log") 2>&1
# Plain `wait` would also wait for the tee above, forever: wait for the listed jobs only.
pids=()
wait_jobs() { wait "${pids[@]}"; pids=(); }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"

# The scenes once per training seed, before the variants start (each variant's work folder links
# to them, so train_scenes.py finds them complete and does not write them again).
seeds=$(for v in "$@"; do args=${v#*:}; s=$(sed -n 's/.*--seed \([0-9]*\).*/\1/p' <<<"$args"); echo "${s:-1}"; done | sort -u)
t0=$(date +%s)
for s in $seeds; do "$bin" scenes --out "$work/data/train-$s" --n 40000 --seed "$s" >/dev/null & pids+=($!); done
"$bin" scenes --out "$work/data/val-7" --n 300 --seed 7 >/dev/null & pids+=($!)
wait_jobs
echo "scenes: $(($(date +%s) - t0)) s"

for v in "$@"; do
    name=${v%%:*}
    args=${v#*:}
    mkdir -p "$work/$name"
    ln -sfn "$work"/data/* "$work/$name/"
    # shellcheck disable=SC2086
    PYTHONUNBUFFERED=1 python3 "$here/train_scenes.py" --out "$out/$name" --work "$work/$name" --llava-lens "$bin" \
        --device cuda --threads 2 --n-train 40000 --n-val 300 --steps 7000 --eval-every 500 \
        --budget-minutes "$budget" $args >"$out/$name.train.log" 2>&1 &
    pids+=($!)
done
wait_jobs
echo "training: $(($(date +%s) - t0)) s"

for v in "$@"; do
    name=${v%%:*}
    if [ -f "$out/$name/model.safetensors" ]; then
        timeout 90 "$bin" eval pointing --model "$out/$name" --n 200 --seed "$selection_seed" \
            >"$out/$name/pointing-$selection_seed.json" 2>"$out/$name/pointing.err" &
        pids+=($!)
    fi
done
wait_jobs
echo "pointing: $(($(date +%s) - t0)) s"

for v in "$@"; do
    name=${v%%:*}
    mv "$out/$name.train.log" "$out/$name/" 2>/dev/null
    python3 - "$out/$name" <<'EOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
row = {"variant": d.name}
try:
    s = json.loads((d / "training_summary.json").read_text())
    row.update({k: s[k] for k in ("steps", "text_heads", "seed", "val_accuracy", "train_minutes")})
except Exception as e:
    row["training"] = f"failed: {e}"
try:
    p = json.loads(next(d.glob("pointing-*.json")).read_text())
    row.update({"answer_accuracy": p["answer_accuracy"], "best_head_by_layer": p["best_head_by_layer"]})
    row.update({k: m["hit_rate"] for k, m in p["maps"].items()})
except Exception as e:
    row["pointing"] = f"failed: {e}"
print(json.dumps(row))
EOF
    tar -C "$out" -czf "$out/$name.tar.gz" "$name" && rm -rf "${out:?}/$name"
done
