#!/usr/bin/env bash
# The GPU sprint in one run (<= 9 minutes on an H100/H200): train the best recipe with bf16 on the GPU from the
# carried subset, then measure the model stage's CUDA throughput for every shipped family. Everything lands in $OUT.
#
#   python bench/prepare_device_subset.py device_data/subset.npz          # here, once (needs shared/ and soundfile)
#   run(command="bash bench/device_sprint.sh", carry=["device_data"])     # on the device: $OUT is set there
#
# Knobs (environment): DEVICE (cuda), TRAIN_SECONDS (400), BENCH_SECONDS (10), BATCH_SIZE (64), DTYPE (bfloat16),
# SUBSET (device_data/subset.npz), PYTHON (python3). The CPU dry run (tests/test_device_sprint.py) sets them small.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for checkpoints and JSON}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
"$PYTHON" - <<'PY' > "$OUT/env.json"
import json, platform, torch
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}))
PY
"$PYTHON" bench/device_sprint.py --subset "${SUBSET:-device_data/subset.npz}" --out "$OUT" --device "$DEVICE" \
    --train-seconds "${TRAIN_SECONDS:-400}" --batch-size "${BATCH_SIZE:-64}" --dtype "${DTYPE:-bfloat16}"
# The recipes of the shipped diffgmm, aigd, udiffse and fuse checkpoints (a clip family over one clip).
for recipe in train-default train-aigd-stage2-mag train-udiffse train-fuse-diffusion; do
    "$PYTHON" bench/model_throughput.py --device "$DEVICE" --seconds "${BENCH_SECONDS:-10}" \
        --clip-seconds "${CLIP_SECONDS:-4}" --recipe "jobs/configs/$recipe.yaml" --json "$OUT/throughput-$recipe.json"
done
ls -la "$OUT"
