"""Small helpers the report pages share: the plotting backend, version and device lines, raw
checkpoint reads, a run's returns, the interpreter as the docs show it."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgerl.bench import plotting
from edgerl.errors import EdgerlError

MATPLOTLIB_HINT = "the plots need matplotlib: pip install matplotlib (or .venv/bin/pip install matplotlib)"


def pyplot() -> Any:
    """``matplotlib.pyplot`` (headless); fails with the install hint when matplotlib is missing."""
    plt = plotting.pyplot()
    if plt is None:
        raise EdgerlError(MATPLOTLIB_HINT)
    return plt


def panels(plt: Any, n: int, height: float) -> tuple[Any, list[Any], list[str]]:
    """A figure of ``n`` side-by-side panels (6.5 wide each), their axes, and the colour cycle."""
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, height), squeeze=False)
    return fig, list(axes[0]), plt.rcParams["axes.prop_cycle"].by_key()["color"]


def save_figure(plt: Any, fig: Any, path: Path) -> None:
    """Lay out, write as PNG (120 dpi) and close ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def versions_text(versions: Mapping[str, Any]) -> str:
    """``"torch 2.x, numpy 1.y"`` (empty when nothing was recorded)."""
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def device_text(device: dict[str, Any], verb: str = "Measured") -> str:
    """The device line plus every recorded library version."""
    from edgerl.bench.report_format import device_line

    return f"{device_line(device)}. {verb} {device.get('date')}. Library versions: {versions_text(device.get('versions', {}))}."


def read_raw_checkpoint(path: Path) -> dict[str, Any]:
    """A run's ``ckpt.pt`` as stored (``torch.load(weights_only=True)``), without edgerl's format
    checks: the reports also read older checkpoints and files of runs still in progress."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def eval_returns(rows: list[dict[str, str]]) -> dict[str, float]:
    """The final return and the mean of the last 3 of a run's logged evaluations (``logged_evals``):
    what the training report plots."""
    return {"final_return": float(rows[-1]["eval_return"]),
            "last3_return": statistics.mean(float(r["eval_return"]) for r in rows[-3:])}


def mean_std(v: list[float]) -> str:
    """``mean ± std`` rounded to integers (std 0 for a single value)."""
    return f"{statistics.mean(v):.0f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.0f}"


def python_command(root: Path) -> str:
    """The interpreter as the docs show it: relative to ``root`` when it lies inside, else ``python``."""
    exe = Path(sys.executable)
    return str(exe.relative_to(root)) if exe.is_relative_to(root) else "python"
