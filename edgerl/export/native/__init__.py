"""Native export: a deployed MLP policy as dependency-free C99 (``edgerl export --format c``).

``lower_policy`` walks the same :class:`~edgerl.export.wrappers.DeployedPolicy` the ONNX export
traces into a layer list (:mod:`.ir`), ``emit`` writes it as ``policy.h`` + ``policy.c``, and
``export_c`` checks both against torch before writing. The runtime builds and loads the code in
:mod:`edgerl.runtime.backends.c`; :mod:`.footprint` sizes it for a microcontroller.

Public API::

    export_c(ckpt_path, out_dir) -> CExportReport
    lower_policy(policy) -> Program; run_program(program, obs) -> actions
    register_lowering(ModuleClass)(fn)            # teach the walk a new module
"""

from __future__ import annotations

from edgerl.export.native.api import CExportReport, export_c
from edgerl.export.native.emit import Meta, emit
from edgerl.export.native.ir import Program, run_program
from edgerl.export.native.lower import NativeExportError, lower_policy, register_lowering

__all__ = ["CExportReport", "Meta", "NativeExportError", "Program", "emit", "export_c", "lower_policy",
           "register_lowering", "run_program"]
