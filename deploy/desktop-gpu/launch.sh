#!/usr/bin/env bash
# Run the policy's fixed-rate control loop by hand (the systemd unit runs the same command itself,
# without this script).
#
# Environment (read by the runtime):
#   EDGERL_IO=module:factory  your robot I/O (required): factory(policy) returns (read_obs, write_action)
#   EDGERL_IO_PATH=<dir>      absolute folder(s) holding that module, ':'-separated (never inside the bundle)
#   EDGERL_BACKENDS=ort-cpu   override the profile's backend order (comma-separated)
#   EDGERL_TRUSTED_KEYS=<pub> public key file(s)/folder(s) a bundle must be signed by (besides
#                             /etc/edgerl/trusted_keys/*.pub)
#   EDGERL_VENV=<dir>         virtualenv made by install.sh (default: <bundle>/../edgerl-venv)
# Extra arguments go to `python -m edgerl_runtime run` (e.g. --max-steps 500 --rate 50).
#
# The runtime installed in the virtualenv verifies the bundle before it loads anything from it;
# python -I -B keeps the working directory, PYTHONPATH and bytecode out of the picture, so no file
# of the bundle is ever imported.
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${EDGERL_VENV:-$(dirname "$BUNDLE")/edgerl-venv}"
: "${EDGERL_IO:?set EDGERL_IO=module:factory (see README.md)}"

# CPU pinning and SCHED_FIFO come from the profile (cpu_affinity, rt_priority) or the unit file.
exec "$VENV/bin/python" -I -B -m edgerl_runtime run "$BUNDLE" "$@"
