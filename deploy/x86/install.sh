#!/usr/bin/env bash
# Install the edgerl runtime for this bundle on an x86-64 machine (CPU only), then check it.
#
# Usage: ./install.sh [--systemd USER]
#   --systemd USER          also install edgerl-policy.service (runs as USER; needs sudo)
# Environment:
#   PYTHON=python3          interpreter that creates the virtualenv (>= 3.8)
#   EDGERL_VENV=<dir>       virtualenv location, outside the bundle (default: <bundle>/../edgerl-venv)
#   EDGERL_WHEELHOUSE=<dir> install offline from wheels fetched elsewhere with
#                           `pip download numpy onnxruntime -d wheels/`
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

echo "==> virtualenv $VENV"
"$PYTHON" -m venv "$VENV"

echo "==> numpy + onnxruntime (CPU build; do not also install onnxruntime-gpu)"
pip_install "numpy>=1.24" "onnxruntime>=1.17"

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

echo "==> check: manifest, reference actions, latency"
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
