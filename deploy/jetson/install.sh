#!/usr/bin/env bash
# Install the edgerl runtime for this bundle on an NVIDIA Jetson (JetPack 5.1 / 6.x), build the
# TensorRT engine on the device and check the bundle.
#
# TensorRT's Python bindings come with JetPack as a system package for the system Python
# (sudo apt install python3-libnvinfer; on JetPack 6 also part of `nvidia-jetpack`), so the
# virtualenv is created with --system-site-packages. JetPack 5 ships Python 3.8, JetPack 6 3.10.
#
# Usage: ./install.sh [--systemd USER]
# Environment:
#   EDGERL_VENV=<dir>        virtualenv location, outside the bundle (default: <bundle>/../edgerl-venv)
#   EDGERL_ORT_WHEEL=<whl>   NVIDIA's onnxruntime-gpu wheel for your JetPack (file or URL, from the
#                            Jetson Zoo / Jetson AI Lab index) to enable backend ort-cuda; default:
#                            the CPU-only onnxruntime aarch64 wheel from PyPI
#   EDGERL_WHEELHOUSE=<dir>  install offline from pre-downloaded wheels
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${EDGERL_VENV:-$(dirname "$BUNDLE")/edgerl-venv}"
case "$VENV/" in
  "$BUNDLE/"*) echo "error: EDGERL_VENV=$VENV lies inside the bundle; a verified bundle holds no virtualenv" >&2; exit 1 ;;
esac
PY=("$VENV/bin/python" -I -B)   # isolated: no working directory, PYTHONPATH or bytecode
PYTHON="${PYTHON:-/usr/bin/python3}"   # the Python JetPack's TensorRT bindings were built for
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

echo "==> $(head -n1 /etc/nv_tegra_release 2>/dev/null || echo 'not a Jetson? /etc/nv_tegra_release missing')"

echo "==> virtualenv $VENV (with system site-packages, for JetPack's TensorRT)"
"$PYTHON" -m venv --system-site-packages "$VENV"

if ! "${PY[@]}" -c "import tensorrt" 2>/dev/null; then
  echo "WARNING: TensorRT Python bindings not found. On Jetson they come with JetPack:" >&2
  echo "         sudo apt install python3-libnvinfer   (then re-run ./install.sh)" >&2
  echo "         Continuing: the runtime will fall back to ONNX Runtime." >&2
fi

# numpy < 2: JetPack's TensorRT bindings (8.5, 10.3) were built against numpy 1.x.
echo "==> numpy"
pip_install "numpy>=1.24,<2"

echo "==> onnxruntime"
if [[ -n "${EDGERL_ORT_WHEEL:-}" ]]; then
  pip_install "$EDGERL_ORT_WHEEL"
else
  echo "    (CPU build from PyPI; set EDGERL_ORT_WHEEL to NVIDIA's Jetson onnxruntime-gpu wheel for ort-cuda)"
  pip_install "onnxruntime>=1.16"
fi

# cuda-python for device buffers and streams; its major version must match JetPack's CUDA
# (JetPack 6: CUDA 12.6, JetPack 5: CUDA 11.4), read from the profile.
cuda_major=$("${PY[@]}" -c 'import json, sys; print((json.load(open(sys.argv[1])).get("cuda_version") or "12").split(".")[0])' "$BUNDLE/profile.json")
echo "==> cuda-python ${cuda_major}.x"
pip_install "cuda-python>=${cuda_major},<$((cuda_major + 1))"

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

if "${PY[@]}" -c "import tensorrt" 2>/dev/null; then
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
