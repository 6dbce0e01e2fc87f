"""Export: a checkpoint's policy as one self-contained ONNX file plus ``contract.json``.

The model owns its export: a small wrapper per algorithm (:mod:`edgerl.export.wrappers`,
registered in :mod:`edgerl.export.registry`) maps a raw observation to an environment action with
the normaliser, deterministic head, squash and rescale baked in. :func:`export_policy` converts it
with ``torch.onnx`` and refuses to write a model that fails onnx.checker or ONNX Runtime parity.
SAC (with or without OFENet), PPO and DQN are registered; the layout of the ``kind: "policy"``
checkpoints ``edgerl compact`` writes is documented in :mod:`edgerl.export.policy`, that of
``contract.json`` in :mod:`edgerl.export.contract`.

Public API::

    export_policy(ckpt_path, out_path=None, opset=None, fp16=False, recorded_obs=None) -> ExportReport
    reference_observations(ckpt, n) -> {"obs", "action"}      # a bundle's reference.npz
    policy_from_checkpoint(ckpt) -> DeployedPolicy             # torch module of the policy
    policy_checkpoint_payload(...)                             # what edgerl compact saves
    register_export(ExportAdapter(...))                        # plug in an algorithm
"""

from __future__ import annotations

from edgerl.export.api import ExportReport, default_output, export_policy
from edgerl.export.checks import ParityResult
from edgerl.export.errors import ExportCheckError, ExportError
from edgerl.export.observations import reference_observations
from edgerl.export.policy import policy_checkpoint_payload, policy_from_checkpoint
from edgerl.export.registry import ExportAdapter, argmax_policy, export_adapter, register_export
from edgerl.export.wrappers import ArgmaxPolicy, DeployedPolicy, SquashedGaussianPolicy

__all__ = [
    "ArgmaxPolicy",
    "DeployedPolicy",
    "ExportAdapter",
    "ExportCheckError",
    "ExportError",
    "ExportReport",
    "ParityResult",
    "SquashedGaussianPolicy",
    "argmax_policy",
    "default_output",
    "export_adapter",
    "export_policy",
    "policy_checkpoint_payload",
    "policy_from_checkpoint",
    "reference_observations",
    "register_export",
]
