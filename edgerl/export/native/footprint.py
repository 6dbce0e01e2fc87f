"""Flash and RAM a generated C policy takes on a microcontroller, and the deploy-time budget check.

Measured with the profile's cross compiler (``c_cross``, e.g. arm-none-eabi-gcc for a Cortex-M4)
and its ``size`` tool when they are installed: flash = text (code + rodata, where the weights
live) + data, RAM = data + bss + ``sizeof(edgerl_scratch)`` (the caller's activations). Without
the toolchain: flash = 4 bytes per constant + a code estimate per layer, RAM = the scratch struct.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgerl.errors import ProfileError
from edgerl.export.native.bench import header_sizes
from edgerl.runtime.backends.c import HEADER, SOURCE
from edgerl.runtime.profile import TargetProfile

CODE_BYTES_PER_LOOP = 48
"""Estimated Thumb-2 code per emitted loop (measured ~30-60 bytes with arm-none-eabi-gcc -O2)."""
CODE_BYTES_BASE = 256
"""Estimated fixed code (input check, batch wrapper, libm's tanhf/expf come on top)."""


def scratch_bytes(src_dir: str | Path) -> int:
    """``sizeof(edgerl_scratch)`` read from ``policy.h`` (float arrays only)."""
    text = (Path(src_dir) / HEADER).read_text()
    struct = text[text.index("typedef struct edgerl_scratch"):text.index("} edgerl_scratch;")]
    return 4 * sum(int(n) for n in re.findall(r"float \w+\[(\d+)\];", struct))


def measure(src_dir: str | Path, cross: list[str] | tuple[str, ...]) -> dict[str, int]:
    """text/data/bss of ``policy.o`` built with ``cross`` (compiler + flags), via the matching ``size``."""
    cc = shutil.which(cross[0])
    size = shutil.which(re.sub(r"(gcc|cc|clang)$", "size", cross[0]))
    if cc is None or size is None:
        raise FileNotFoundError(f"{cross[0]} or its size tool is not installed")
    with tempfile.TemporaryDirectory(prefix="edgerl-size-") as tmp:
        obj = Path(tmp) / "policy.o"
        subprocess.run([cc, *cross[1:], "-std=c99", "-O2", "-c", str(Path(src_dir) / SOURCE), "-o", str(obj)],
                       check=True, capture_output=True, text=True, timeout=300)
        out = subprocess.run([size, str(obj)], check=True, capture_output=True, text=True, timeout=60).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def footprint(src_dir: str | Path, cross: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """``{"flash", "ram", "scratch", "method", ...}`` in bytes for the policy in ``src_dir``. RAM
    counts the scratch struct and a recurrent policy's state (``EDGERL_STATE_SIZE`` floats the
    caller keeps between steps) with the object's data and bss."""
    scratch = scratch_bytes(src_dir) + 4 * header_sizes(src_dir).get("EDGERL_STATE_SIZE", 0)
    if cross:
        try:
            s = measure(src_dir, cross)
            return {"flash": s["text"] + s["data"], "ram": s["data"] + s["bss"] + scratch, "scratch": scratch,
                    "method": f"{Path(cross[0]).name} + size", **s}
        except (FileNotFoundError, subprocess.CalledProcessError):
            pass
    src = (Path(src_dir) / SOURCE).read_text()
    loops = src.count("for (")
    params = header_sizes(src_dir)["EDGERL_PARAMS"]
    return {"flash": params * 4 + CODE_BYTES_BASE + CODE_BYTES_PER_LOOP * loops, "ram": scratch, "scratch": scratch,
            "method": "estimate (4 bytes per constant + code per loop; install the cross compiler to measure)"}


def check_budget(fp: dict[str, Any], profile: TargetProfile) -> None:
    """Raise ProfileError when the policy exceeds the profile's flash or RAM budget."""
    for key, budget in (("flash", profile.flash_budget_kb), ("ram", profile.ram_budget_kb)):
        if budget is not None and not fp[key] <= budget * 1024:
            raise ProfileError(f"the C policy needs {fp[key] / 1024:.1f} KiB of {key} ({fp['method']}) but profile "
                               f"{profile.name} allows {budget:g} KiB ({key}_budget_kb); compact or distil the policy "
                               "to fewer units, or raise the budget")
