"""What a latency figure was measured on: CPU, cores, threads, OS, library versions and, on a
Jetson, the power mode, the clock state and the board's power draw (REFERENCE section 5).

Everything here is guarded: a missing tool or a refused command becomes an ``error`` entry in the
metadata, never an exception. The parsers take the tools' text so they can be tested with
captured outputs.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
VERSIONED = ("edgerl", "numpy", "onnxruntime", "onnxruntime-gpu", "torch", "onnx", "tensorrt", "cuda-python",
             "jetson-stats")
"""Distributions whose installed version is recorded (when installed; torch is not imported)."""

Runner = Callable[[list[str]], str]


def run_command(cmd: list[str], timeout: float = 10.0) -> str:
    """stdout of ``cmd``; raises ``OSError`` or ``RuntimeError`` (with stderr) when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}" + (f": {detail[-1]}" if detail else ""))
    return proc.stdout


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a latency figure (read from metadata)."""
    out = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_model(cpuinfo: str | None = None) -> str:
    """CPU model name from ``/proc/cpuinfo`` text (x86 ``model name``, ARM ``Hardware``/``Model``)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    for key in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        m = re.search(rf"^{key}\s*:\s*(.+?)\s*$", cpuinfo, re.MULTILINE)
        if m:
            return m.group(1)
    return platform.processor() or platform.machine() or "unknown"


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip("\x00 \n")
    except OSError:
        return None


def parse_tegra_release(text: str) -> str | None:
    """L4T version ``35.4.1`` from ``/etc/nv_tegra_release`` (``# R35 (release), REVISION: 4.1, ...``)."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def parse_nvpmodel(text: str) -> dict[str, Any]:
    """``nvpmodel -q`` -> ``{"mode": "MAXN", "id": 0}`` (id None when not printed)."""
    m = re.search(r"NV Power Mode:\s*(\S+)\s*$", text, re.MULTILINE)
    if not m:
        raise ValueError(f"no 'NV Power Mode:' line in nvpmodel output {text.strip()[:120]!r}")
    after = text[m.end():].split()
    return {"mode": m.group(1), "id": int(after[0]) if after and after[0].isdigit() else None}


_CLOCK = re.compile(r"MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)")


def _freqs(line: str) -> dict[str, int] | None:
    m = _CLOCK.search(line)
    return None if m is None else {"min": int(m.group(1)), "max": int(m.group(2)), "current": int(m.group(3))}


def parse_jetson_clocks(text: str) -> dict[str, Any]:
    """``jetson_clocks --show`` -> per-CPU/GPU/EMC frequencies and whether clocks are locked.

    ``on`` is True when every online CPU and the GPU run with MinFreq == MaxFreq == CurrentFreq,
    which is what ``jetson_clocks`` sets (the rule jetson-stats uses; EMC is reported, not judged).
    """
    cpus: dict[str, Any] = {}
    out: dict[str, Any] = {"cpus": cpus}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"cpu(\d+):", line)
        f = _freqs(line)
        if m and f:
            gov = re.search(r"(?:Governor|Gonvernor)=(\S+)", line)  # TX1 prints the typo
            online = re.search(r"Online=(\d)", line)
            cpus[f"cpu{m.group(1)}"] = {**f, "governor": gov.group(1) if gov else None,
                                        "online": online is None or online.group(1) == "1"}
        elif line.startswith("GPU") and f:
            out["gpu"] = f
        elif line.startswith("EMC") and f:
            override = re.search(r"FreqOverride=(\d)", line)
            out["emc"] = {**f, "override": bool(int(override.group(1))) if override else None}
        elif line.startswith("NV Power Mode:"):
            out["power_mode"] = line.split(":", 1)[1].strip()
        elif line.startswith("SOC family:"):
            machine = re.search(r"Machine:\s*(.+)$", line)
            out["machine"] = machine.group(1).strip() if machine else None
    if not cpus and "gpu" not in out:
        raise ValueError(f"no clock lines in jetson_clocks --show output {text.strip()[:120]!r}")
    locked = [c["min"] == c["max"] == c["current"] for c in cpus.values() if c["online"]]
    if "gpu" in out:
        g = out["gpu"]
        locked.append(g["min"] == g["max"] == g["current"])
    out["on"] = bool(locked) and all(locked)
    return out


def parse_jtop_power(power: dict[str, Any]) -> dict[str, Any]:
    """jetson-stats' ``jtop().power`` (``{"rail": {name: {...}}, "tot": {...}}``, milliwatts) ->
    ``{"total_mw", "total_avg_mw", "total_rail", "rails_mw": {name: mW}}``."""
    tot = power.get("tot") or {}
    rails = power.get("rail") or {}
    return {
        "total_mw": tot.get("power"),
        "total_avg_mw": tot.get("avg"),
        "total_rail": tot.get("name"),
        "rails_mw": {str(k): v.get("power") for k, v in rails.items() if isinstance(v, dict)},
    }


def _jtop_power() -> dict[str, Any]:
    try:
        from jtop import jtop  # jetson-stats
    except ImportError:
        return {"error": "jetson-stats not installed (sudo pip3 install jetson-stats) — power not recorded"}
    try:
        with jtop() as jetson:
            if not jetson.ok():
                return {"error": "jtop service did not answer"}
            return parse_jtop_power(jetson.power)
    except Exception as e:  # jtop raises JtopException when its service is not running
        return {"error": f"jtop failed: {type(e).__name__}: {e}"}


def _guarded(parse: Callable[[str], Any], cmd: list[str], run: Runner) -> Any:
    try:
        return parse(run(cmd))
    except FileNotFoundError:
        return {"error": f"{cmd[0]} not found on PATH"}
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
        hint = " (jetson_clocks --show needs root: run the bench with sudo to record it)" \
            if cmd[0] == "jetson_clocks" else ""
        return {"error": f"{e}{hint}"}


def jetson_info(run: Runner = run_command, release_file: Path = TEGRA_RELEASE,
                power: Callable[[], dict[str, Any]] = _jtop_power) -> dict[str, Any] | None:
    """Jetson state (None on other machines): L4T release, board, nvpmodel mode, clocks, power."""
    text = _read(release_file)
    if text is None:
        return None
    return {
        "l4t": parse_tegra_release(text),
        "model": _read("/proc/device-tree/model"),
        "nvpmodel": _guarded(parse_nvpmodel, ["nvpmodel", "-q"], run),
        "jetson_clocks": _guarded(parse_jetson_clocks, ["jetson_clocks", "--show"], run),
        "power": {"when": "after the measurements", **power()},
    }


def _gpus(run: Runner) -> list[str] | None:
    try:
        out = run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return None
    return [ln.strip() for ln in out.splitlines() if ln.strip()] or None


def device_info(threads: int, run: Runner = run_command) -> dict[str, Any]:
    """The ``device`` entry of a bench JSON."""
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "threads": int(threads),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": library_versions(),
    }
    gpus = _gpus(run)
    if gpus:
        info["gpus"] = gpus
    jetson = jetson_info(run)
    if jetson is not None:
        info["jetson"] = jetson
    return info
