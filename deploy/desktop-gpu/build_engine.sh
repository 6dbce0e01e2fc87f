#!/usr/bin/env bash
# Build the TensorRT engine for THIS GPU and TensorRT version and cache it in cache/, then check
# the bundle on TensorRT. Engines are not portable: re-run after a driver, TensorRT or GPU change
# (the cache key contains all three, so a stale engine is never used).
#
# Usage: ./build_engine.sh [--force]
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${EDGERL_VENV:-$(dirname "$BUNDLE")/edgerl-venv}"
PY=("$VENV/bin/python" -I -B)   # the installed runtime; the bundle is never on the import path
mkdir -p "$BUNDLE/cache"

state="$BUNDLE/cache/device_state.txt"
{
  echo "date: $(date -Is)"
  echo "--- nvidia-smi"
  nvidia-smi --query-gpu=name,driver_version,compute_cap,pstate,clocks.max.sm --format=csv 2>&1 \
    || echo "nvidia-smi unavailable"
  echo "--- tensorrt"
  "${PY[@]}" -c 'import tensorrt; print(tensorrt.__version__)' 2>&1 || echo "not importable"
} >"$state"
echo "==> device state recorded in $state"

echo "==> building engine (minutes for large conv nets)"
"${PY[@]}" -m edgerl_runtime.build_engine "$BUNDLE" "$@"

echo "==> check on TensorRT"
"${PY[@]}" -m edgerl_runtime check "$BUNDLE" --backends trt
