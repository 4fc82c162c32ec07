#!/usr/bin/env bash
# The GPU checks in one call, for a lent GPU machine (about 15 minutes of device time a session):
#   1. the detector speed benchmark on cuda (tem_lib's engine vs a plain loop, images/s);
#   2. the paper_lite profile's foundation detector (R50-FPN on 8192 simulated crops) pretrained
#      on cuda, its time recorded in the copied detector.json (cut at 8 minutes: the lease is 15);
#   (before 2, paper_lite's notebook 01 makes the workspace the study command needs);
#   3. quantify on whole held-out real micrographs, 4 folds, with a 4x longer schedule on cuda
#      (benchmarks/quantify_realdata.py --device cuda --epochs 12; only where ../shared/data is there).
# Each step has its own timeout; a step that fails or times out is recorded and the next runs.
# Results: $OUT (the device tool's folder) or benchmarks/results/gpu/, one log and one JSON per step.
#
#   bash benchmarks/gpu_checks.sh            # on the GPU machine, from the repository root
#
# The machine's image has torch/torchvision but not every pin of requirements-lock.txt: carry the
# missing ones as wheels in .whl/ (diffusers, pycocotools, papermill, rosettasciio, ...; see the
# device README) and they are installed to /tmp/site first.
set -u
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TEM_LIB_CACHE=${TEM_LIB_CACHE:-/tmp/tem_lib_cache}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '{"step": "%s", "rc": %d, "seconds": %d, "limit_s": %d}\n' "$name" "$rc" $((SECONDS - t0)) "$limit" \
    | tee "$OUT/$name.json"
}

step detection_speed 120 python3 benchmarks/detection_speed.py --device cuda --paper
step paper_lite_01 180 python3 -m tem_lib.running.runner --profile paper_lite --only 01 -p work_dir '"/tmp/pl/work"' \
  --runs-dir /tmp/pl/nb
# the foundation first, then the generators: the timeout cuts the generators, not the foundation
step foundation_paper_lite 480 python3 -m tem_lib.study --profile paper_lite --work-dir /tmp/pl/work --prepare \
  --device cuda
ls "$TEM_LIB_CACHE"/foundation/*/detector.json >/dev/null 2>&1 && cp "$TEM_LIB_CACHE"/foundation/*/detector.json "$OUT/foundation_detector.json"
if [ -d ../shared/data/fecral-3class ]; then
  step quantify_realdata_gpu 420 python3 benchmarks/quantify_realdata.py --device cuda --epochs 12 \
    --work /tmp/qr_gpu --name quantify_realdata_gpu --ways per-class single "score 0.1"
  cp benchmarks/results/quantify_realdata_gpu.* "$OUT/" 2>/dev/null
else
  echo '{"step": "quantify_realdata_gpu", "skipped": "no ../shared/data/fecral-3class on this machine"}' \
    | tee "$OUT/quantify_realdata_gpu.json"
fi
