#!/usr/bin/env bash
# Install the edgerl runtime for this bundle on an x86-64 machine with an NVIDIA GPU:
# onnxruntime-gpu (backend ort-cuda), TensorRT + cuda-python (backend trt). Then build the
# TensorRT engine and check the bundle.
#
# Usage: ./install.sh [--systemd USER]
# Environment:
#   PYTHON=python3          interpreter that creates the virtualenv (>= 3.8)
#   EDGERL_VENV=<dir>       virtualenv location, outside the bundle (default: <bundle>/../edgerl-venv)
#   EDGERL_WITH_TRT=0       skip TensorRT (the runtime then uses ort-cuda or ort-cpu)
#   EDGERL_WHEELHOUSE=<dir> install offline from pre-downloaded wheels
# Needs an NVIDIA driver (nvidia-smi) and the CUDA/cuDNN libraries onnxruntime-gpu was built for.
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${EDGERL_VENV:-$(dirname "$BUNDLE")/edgerl-venv}"
case "$VENV/" in
  "$BUNDLE/"*) echo "error: EDGERL_VENV=$VENV lies inside the bundle; a verified bundle holds no virtualenv" >&2; exit 1 ;;
esac
PY=("$VENV/bin/python" -I -B)   # isolated: no working directory, PYTHONPATH or bytecode
PYTHON="${PYTHON:-python3}"
SYSTEMD_USER=""
if [[ "${1:-}" == "--systemd" ]]; then
  SYSTEMD_USER="${2:?usage: ./install.sh --systemd USER}"
fi

pip_install() {
  if [[ -n "${EDGERL_WHEELHOUSE:-}" ]]; then
    "${PY[@]}" -m pip install --no-index --find-links "$EDGERL_WHEELHOUSE" "$@"
  else
    "${PY[@]}" -m pip install "$@"
  fi
}

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "WARNING: nvidia-smi not found: no NVIDIA driver? The GPU backends will be skipped." >&2
fi

echo "==> virtualenv $VENV"
"$PYTHON" -m venv "$VENV"

echo "==> numpy + onnxruntime-gpu (never install onnxruntime and onnxruntime-gpu together)"
pip_install "numpy>=1.24" "onnxruntime-gpu>=1.17"

cuda_major=$("${PY[@]}" -c 'import json, sys; print((json.load(open(sys.argv[1])).get("cuda_version") or "12").split(".")[0])' "$BUNDLE/profile.json")
if [[ "${EDGERL_WITH_TRT:-1}" == "1" ]]; then
  echo "==> TensorRT + cuda-python ${cuda_major}.x (the tensorrt wheel downloads from NVIDIA's index)"
  pip_install tensorrt "cuda-python>=${cuda_major},<$((cuda_major + 1))"
fi

if [[ -n "${EDGERL_TRUSTED_KEYS:-}" ]] || compgen -G "/etc/edgerl/trusted_keys/*.pub" >/dev/null; then
  echo "==> cryptography (this robot trusts signed bundles only)"
  pip_install "cryptography>=42"
fi

# The runtime lives in the virtualenv, not in the bundle. An installed runtime verifies this bundle
# (and its signature) before the bundle's runtime replaces it; on the first install the bundle's
# runtime verifies itself (see README.md, "Trust").
if "${PY[@]}" -c "import edgerl_runtime" 2>/dev/null; then
  echo "==> runtime: the installed one verifies $BUNDLE, then installs its runtime"
  "${PY[@]}" -m edgerl_runtime install "$BUNDLE"
else
  echo "==> runtime: first install, from $BUNDLE/runtime (verified by itself)"
  "${PY[@]}" "$BUNDLE/runtime/install_runtime.py"
fi
"${PY[@]}" -m edgerl_runtime backends

if [[ "${EDGERL_WITH_TRT:-1}" == "1" ]]; then
  "$BUNDLE/build_engine.sh"
fi

echo "==> check with the profile's backend order"
"${PY[@]}" -m edgerl_runtime check "$BUNDLE"

if [[ -n "$SYSTEMD_USER" ]]; then
  unit=/etc/systemd/system/edgerl-policy.service
  sed -e "s|@BUNDLE@|$BUNDLE|g" -e "s|@VENV@|$VENV|g" -e "s|@USER@|$SYSTEMD_USER|g" "$BUNDLE/edgerl-policy.service" \
    | sudo tee "$unit" >/dev/null
  sudo systemctl daemon-reload
  echo "==> installed $unit"
  echo "    put EDGERL_IO=module:factory and EDGERL_IO_PATH=/its/folder in /etc/default/edgerl-policy, then:"
  echo "    sudo systemctl enable --now edgerl-policy && journalctl -u edgerl-policy -f"
fi
