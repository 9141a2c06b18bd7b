#!/usr/bin/env bash
# One short run per lever of the bundled recipe (configs/nafnet_motion_s.yaml), each changing one
# thing, all scored on the 11 real GoPro validation pairs (512 px centre crops, as in training).
# Short on purpose (the CPU budget): the ranking of levers, not their converged values.
#   bash scripts/ablate_levers.sh [STEPS]   (venv active; default 600 steps, about 8 minutes each here)
# Re-running skips finished runs and resumes an interrupted one.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-600}
out=runs/ablate_${steps}
mkdir -p "$out"
declare -A levers=(
  [recipe]=""
  [no_real_pairs]="--real_fraction 0"
  [no_real_pairs_uniform_kernels]="--real_fraction 0 --blur {\"mode\":\"kernel\"}"
  [real_pairs_only]="--real_fraction 1"
  [crop_128]="--crop_size 128"
)
for name in recipe no_real_pairs no_real_pairs_uniform_kernels real_pairs_only crop_128; do
  dir=$out/$name
  if [[ -d $dir/final ]]; then echo "$name: done"; continue; fi
  echo "$name: training ($steps steps) -> $dir"
  # shellcheck disable=SC2086  # the lever's flags are meant to split
  accelerate launch train_accelerate.py --config configs/nafnet_motion_s.yaml ${levers[$name]} \
    --output_dir "$dir" --max_train_steps "$steps" --validation_steps $((steps / 2)) \
    --checkpointing_steps $((steps / 2)) --checkpoints_total_limit 1 --resume_from_checkpoint latest \
    > "$dir.log" 2>&1
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path
print("| lever | val PSNR (dB) | val SSIM |\n|---|---:|---:|")
for log in sorted(Path(sys.argv[1]).glob("*/metrics.jsonl")):
    last = [r for r in map(json.loads, log.read_text().splitlines()) if "val_psnr" in r][-1]
    print(f"| {log.parent.name} | {last['val_psnr']:.2f} | {last['val_ssim']:.4f} |")
PY
