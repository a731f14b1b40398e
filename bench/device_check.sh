#!/usr/bin/env bash
# GPU check on a machine with an NVIDIA GPU: trains the demo set with each architecture on
# CUDA and on the CPU, once under torchrun with the nccl backend, and times the epochs.
# Writes its log and the run records to $OUT (default: ./device-check).
# Usage: bench/device_check.sh [PYTHON]   (run from the repository root)
set -uo pipefail
PY=${1:-python3}
OUT=${OUT:-device-check}
mkdir -p "$OUT"
WORK=$(mktemp -d)
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { log "$*"; local t0=$SECONDS; "$@" 2>&1 | tail -n 25 | tee -a "$OUT/log.txt"; local rc=${PIPESTATUS[0]}; log "rc=$rc wall=$((SECONDS - t0))s"; }

run nvidia-smi -L
run "$PY" -c "import torch, datasets; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'nccl', torch.distributed.is_nccl_available(), 'datasets', datasets.__version__)"
run "$PY" -m soartlab demo --out "$WORK/demo.parquet"
# ARCHS="mlp cnn" compares the architectures; empty, the default network is used.
for arch in ${ARCHS:-default}; do
  arch_flag=()
  [ "$arch" = default ] || arch_flag=(--arch "$arch")
  for device in cuda cpu; do
    run "$PY" -m soartlab train --data "$WORK/demo.parquet" --out "$WORK/$arch-$device" \
      "${arch_flag[@]}" --device "$device" --epochs "${EPOCHS:-5}" --quiet
    cp "$WORK/$arch-$device/run.json" "$OUT/run-$arch-$device.json" 2>/dev/null
  done
done
# nccl: one worker per GPU (this machine has one).
run "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 -m soartlab train \
  --data "$WORK/demo.parquet" --out "$WORK/ddp" --device cuda --backend nccl --epochs 2 --quiet
cp "$WORK/ddp/run.json" "$OUT/run-ddp-nccl.json" 2>/dev/null
"$PY" - "$OUT" <<'PY' | tee -a "$OUT/log.txt"
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("run-*.json")):
    record = json.loads(path.read_text())
    history = record.get("history") or []
    seconds = [h.get("seconds") for h in history if h.get("seconds") is not None]
    metrics = record.get("metrics", {})
    print(f"{path.stem}: status={record.get('status')} epochs={len(history)} "
          f"epoch_s={seconds} accuracy={metrics.get('accuracy')} "
          f"escape={metrics.get('escape_rate')} overkill={metrics.get('overkill_rate')}")
PY
