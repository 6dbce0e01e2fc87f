"""Convert Stable-Baselines3 VecNormalize statistics (a pickle) into a safe file ``edgerl import`` reads.

``vecnormalize.pkl`` is a pickle, and a plain ``pickle.load`` runs whatever code it names, so edgerl
never opens one that way. This script reads it with an allow-list unpickler: numpy arrays, dtypes
and RNG states are rebuilt, SB3 and gymnasium objects become inert attribute holders (no SB3 code
runs, SB3 need not be installed), and any other global is refused. It writes the
observation statistics as ``.npz`` (or ``.json``) with ``mean``, ``var``, ``eps``, ``clip`` and
``formula: var`` (SB3 normalises as ``clip((x - mean) / sqrt(var + eps), -clip, clip)``)::

    python tools/export_vecnormalize.py logs/sac/Hopper-v5_1/Hopper-v5/vecnormalize.pkl -o stats.npz
    edgerl import logs/sac/Hopper-v5_1/Hopper-v5.zip --from sb3 --obs-stats stats.npz -o policy.pt
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgerl.interop.stats import write_obs_stats  # noqa: E402

_NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("copyreg", "_reconstructor"), ("builtins", "object"),
}
"""Globals rebuilt as themselves: what arrays and plain objects need, nothing that runs user code."""
_HOLDER_MODULES = ("stable_baselines3.", "gymnasium.spaces", "gym.spaces")
"""Classes whose objects become attribute holders (their own code never runs)."""


class _Holder:
    """Stands in for an SB3/gymnasium object: keeps its pickled attributes, runs none of its code."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


class AllowListUnpickler(pickle.Unpickler):
    """Unpickles VecNormalize statistics without executing code from the file."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS or module.startswith("numpy.random."):
            return super().find_class(module, name)
        if module.startswith(_HOLDER_MODULES):
            return type(name, (_Holder,), {"__module__": module})
        raise pickle.UnpicklingError(f"refused global {module}.{name}: not VecNormalize statistics")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pkl", help="VecNormalize statistics saved by SB3 (vec_env.save / RL Zoo vecnormalize.pkl)")
    p.add_argument("-o", "--output", required=True, help="output .npz or .json")
    args = p.parse_args(argv)
    try:
        with open(args.pkl, "rb") as f:
            vec = AllowListUnpickler(f).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as e:
        print(f"{args.pkl}: not readable as VecNormalize statistics ({e})", file=sys.stderr)
        return 2
    if not getattr(vec, "norm_obs", False):
        print(f"{args.pkl}: VecNormalize did not normalise observations (norm_obs=False); nothing to export")
        return 1
    rms = vec.obs_rms
    if isinstance(rms, dict):
        print(f"{args.pkl}: dict observation spaces are not supported by edgerl import", file=sys.stderr)
        return 2
    write_obs_stats(args.output, rms.mean, rms.var, eps=float(vec.epsilon), clip=float(vec.clip_obs), formula="var")
    print(f"wrote {args.output}: {rms.mean.size} observation entries, eps {vec.epsilon:g}, clip {vec.clip_obs:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
