"""Convert Stable-Baselines3 VecNormalize statistics (a pickle) into a safe file ``edgerl import`` reads.

``vecnormalize.pkl`` is a pickle: loading it runs code, so edgerl never opens it. Run this script
where SB3 is installed and the file is trusted (e.g. on the training machine); it writes the
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgerl.interop.stats import write_obs_stats  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pkl", help="VecNormalize statistics saved by SB3 (vec_env.save / RL Zoo vecnormalize.pkl)")
    p.add_argument("-o", "--output", required=True, help="output .npz or .json")
    args = p.parse_args(argv)
    with open(args.pkl, "rb") as f:  # trusted file, on the machine that wrote it (this is the point)
        vec = pickle.load(f)
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
