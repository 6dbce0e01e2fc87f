"""skrl agent checkpoints (``agent.save``: ``torch.save`` of ``{module name: state dict}``).

The policy is ``checkpoint["policy"]``: a Gaussian (``log_std_parameter``) or deterministic MLP
model as the model instantiators build them, ``<name>_container.N`` Linear layers and an
``output_layer`` (or the last container layer). Its deterministic action is the network's
output (the Gaussian mean). The observation preprocessor (``observation_preprocessor`` in skrl
2.x, ``state_preprocessor`` in 1.x) is a RunningStandardScaler, ``running_mean``,
``running_variance``, ``current_count``, applied as
``clamp((x - mean) / (sqrt(var) + 1e-8), -5, 5)`` (skrl's defaults: the file does not hold
epsilon or the clip threshold).

The activation and any output expression (e.g. ``tanh(ACTIONS)``) are code, not data: pass
``--activation`` (default elu, Isaac Lab's skrl configs) and ``--out-activation``.
"""

from __future__ import annotations

import os
import re

from edgerl.interop.common import (
    ImportedPolicy,
    build_mlp,
    linear_prefixes,
    load_tensors,
    normalizer_from,
    unknown_layout,
)

SCALER_EPS = 1e-8
SCALER_CLIP = 5.0
LAYOUTS = {
    "gaussian": "policy{<name>_container.N, output_layer, log_std_parameter}",
    "deterministic": "policy{<name>_container.N, output_layer}",
    "preprocessor": "observation_preprocessor|state_preprocessor{running_mean, running_variance, current_count}",
}


def read_skrl(path: str | os.PathLike, activation: str | None = None,
              out_activation: str | None = None) -> ImportedPolicy:
    """Read an skrl ``agent_<step>.pt`` checkpoint's policy and observation preprocessor."""
    ckpt = load_tensors(path, "an skrl checkpoint")
    policy = ckpt.get("policy") if isinstance(ckpt, dict) else None
    if not isinstance(policy, dict):
        raise unknown_layout(path, list(ckpt) if isinstance(ckpt, dict) else [type(ckpt).__name__], LAYOUTS)
    containers = sorted({m.group(1) for k in policy if (m := re.match(r"(\w+_container)\.\d+\.weight$", k))})
    if len(containers) != 1:
        raise unknown_layout(path, list(policy), LAYOUTS)
    layers = linear_prefixes(policy, f"{containers[0]}.")
    layers += ["output_layer"] if "output_layer.weight" in policy else []
    act = activation or "elu"
    net = build_mlp(policy, layers, act, out_activation)
    kind = "gaussian" if "log_std_parameter" in policy else "deterministic"
    norm = None
    for name in ("observation_preprocessor", "state_preprocessor"):
        pre = ckpt.get(name)
        if isinstance(pre, dict) and "running_mean" in pre:
            norm = normalizer_from(pre["running_mean"].double().numpy(), pre["running_variance"].double().numpy(),
                                   eps=SCALER_EPS, clip=SCALER_CLIP, formula="std",
                                   count=float(pre.get("current_count", 1.0)))
            break
    return ImportedPolicy(net=net, discrete=False, library="skrl", algo=kind, normalizer=norm,
                          notes=[f"skrl {kind} model, activation {act}"
                                 + (f", output {out_activation}" if out_activation else "")
                                 + (", RunningStandardScaler baked in" if norm is not None else "")])
