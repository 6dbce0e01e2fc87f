#!/usr/bin/env bash
# Install the edgerl runtime for this bundle on an x86-64 machine (CPU only), then check it.
#
# Usage: ./install.sh [--systemd USER]
#   --systemd USER          also install edgerl-policy.service (runs as USER; needs sudo)
# Environment:
#   PYTHON=python3          interpreter that creates the virtualenv (>= 3.8)
#   EDGERL_VENV=<dir>       virtualenv location (default: <bundle>/.venv)
#   EDGERL_WHEELHOUSE=<dir> install offline from wheels fetched elsewhere with
#                           `pip download numpy onnxruntime -d wheels/`
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${EDGERL_VENV:-$BUNDLE/.venv}"
PYTHON="${PYTHON:-python3}"
SYSTEMD_USER=""
if [[ "${1:-}" == "--systemd" ]]; then
  SYSTEMD_USER="${2:?usage: ./install.sh --systemd USER}"
fi

pip_install() {
  if [[ -n "${EDGERL_WHEELHOUSE:-}" ]]; then
    "$VENV/bin/python" -m pip install --no-index --find-links "$EDGERL_WHEELHOUSE" "$@"
  else
    "$VENV/bin/python" -m pip install "$@"
  fi
}

echo "==> virtualenv $VENV"
"$PYTHON" -m venv "$VENV"

echo "==> numpy + onnxruntime (CPU build; do not also install onnxruntime-gpu)"
pip_install "numpy>=1.24" "onnxruntime>=1.17"

echo "==> bundled runtime (edgerl_runtime.pth -> $BUNDLE/runtime)"
"$VENV/bin/python" "$BUNDLE/runtime/install_runtime.py"

echo "==> check: manifest, reference actions, latency"
"$VENV/bin/python" -m edgerl_runtime check "$BUNDLE"

if [[ -n "$SYSTEMD_USER" ]]; then
  unit=/etc/systemd/system/edgerl-policy.service
  sed -e "s|@BUNDLE@|$BUNDLE|g" -e "s|@USER@|$SYSTEMD_USER|g" "$BUNDLE/edgerl-policy.service" \
    | sudo tee "$unit" >/dev/null
  sudo systemctl daemon-reload
  echo "==> installed $unit"
  echo "    put EDGERL_IO=module:factory in /etc/default/edgerl-policy, then:"
  echo "    sudo systemctl enable --now edgerl-policy && journalctl -u edgerl-policy -f"
fi
