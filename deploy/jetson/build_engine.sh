#!/usr/bin/env bash
# Build the TensorRT engine on this Jetson and cache it in cache/, recording the power mode
# (nvpmodel -q) and clock state (jetson_clocks --show) it was built and measured under, then
# check the bundle on TensorRT. Engines are specific to the GPU and the TensorRT version: the
# cache key contains both, so after a JetPack upgrade a new engine is built.
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
  echo "l4t: $(head -n1 /etc/nv_tegra_release 2>/dev/null || echo unknown)"
  echo "--- nvpmodel -q"
  nvpmodel -q 2>&1 || echo "nvpmodel unavailable"
  echo "--- jetson_clocks --show"
  sudo -n jetson_clocks --show 2>&1 || echo "unknown (needs root: sudo jetson_clocks --show)"
  echo "--- tensorrt"
  "${PY[@]}" -c 'import tensorrt; print(tensorrt.__version__)' 2>&1 || echo "not importable"
} >"$state"
echo "==> device state recorded in $state"

# Latency is only comparable within one power mode: warn if it differs from the profile's.
want_mode=$("${PY[@]}" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("power_mode") or "")' "$BUNDLE/profile.json")
have_mode=$(sed -n 's/^NV Power Mode: //p' "$state" | head -n1)
if [[ -n "$want_mode" && "$have_mode" != "$want_mode" ]]; then
  echo "WARNING: profile expects power mode '$want_mode' but the device is in '${have_mode:-unknown}'." >&2
  echo "         Switch with: sudo nvpmodel -m <id>  (ids: grep POWER_MODEL /etc/nvpmodel.conf)" >&2
fi
want_clocks=$("${PY[@]}" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("jetson_clocks"))' "$BUNDLE/profile.json")
if [[ "$want_clocks" == "True" ]]; then
  echo "NOTE: the profile expects fixed clocks: run 'sudo jetson_clocks' (after every boot) before measuring." >&2
fi

echo "==> building engine (can take several minutes on a Jetson)"
"${PY[@]}" -m edgerl_runtime.build_engine "$BUNDLE" "$@"

echo "==> check on TensorRT"
"${PY[@]}" -m edgerl_runtime check "$BUNDLE" --backends trt
