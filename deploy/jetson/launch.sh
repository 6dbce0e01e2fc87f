#!/usr/bin/env bash
# Run the policy's fixed-rate control loop (the systemd unit runs this).
#
# Environment:
#   EDGERL_IO=module:factory  your robot I/O (required): factory(policy) returns
#                             (read_obs, write_action); PYTHONPATH may add its folder
#   EDGERL_BACKENDS=ort-cpu   override the profile's backend order (comma-separated)
#   EDGERL_VENV=<dir>         virtualenv made by install.sh (default: <bundle>/.venv)
# Extra arguments go to `python -m edgerl_runtime run` (e.g. --max-steps 500 --rate 50).
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${EDGERL_VENV:-$BUNDLE/.venv}"
: "${EDGERL_IO:?set EDGERL_IO=module:factory (see README.md)}"

args=(run "$BUNDLE" --io "$EDGERL_IO")
if [[ -n "${EDGERL_BACKENDS:-}" ]]; then
  args+=(--backends "$EDGERL_BACKENDS")
fi
# CPU pinning and SCHED_FIFO come from the profile (cpu_affinity, rt_priority) or the unit file.
exec "$VENV/bin/python" -m edgerl_runtime "${args[@]}" "$@"
