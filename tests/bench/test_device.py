"""Device metadata: the parsers, on sample outputs in the formats of L4T's tools (the lines
jetson-stats documents for Nano, Xavier, Orin and TX1), and the guards around the commands."""

from __future__ import annotations

import pytest

from edgerl.bench import device

NVPMODEL_Q = "NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n"
NVPMODEL_Q_NANO = "NV Power Mode: 15W\n0\n"

CLOCKS_ON = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
DLA0_CORE MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
FAN Dynamic Speed control=active hwmon4_pwm=255
NV Power Mode: MAXN
"""

CLOCKS_OFF = """SOC family:tegra210  Machine:NVIDIA Jetson Nano Developer Kit
Online CPUs: 0-3
cpu0: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1428000 CurrentFreq=1428000 IdleStates: WFI=1 c7=1
cpu1: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1428000 CurrentFreq=921600 IdleStates: WFI=1 c7=1
cpu2: Online=0 Governor=schedutil MinFreq=102000 MaxFreq=1428000 CurrentFreq=102000 IdleStates: WFI=1 c7=1
GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=384000000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=0
Fan: speed=0
NV Power Mode: MAXN
"""

CLOCKS_TX1 = "cpu0: Gonvernor=interactive MinFreq=1734000 MaxFreq=1734000 CurrentFreq=1734000\n" \
             "GPU MinFreq=998400000 MaxFreq=998400000 CurrentFreq=998400000\n"

JTOP_POWER = {
    "rail": {"VDD_GPU_SOC": {"volt": 4984, "curr": 640, "warn": 32760, "crit": 32760, "type": "I2C", "power": 3189,
                             "avg": 3100, "online": True},
             "VDD_CPU_CV": {"volt": 4984, "curr": 238, "type": "I2C", "power": 1186, "avg": 1170, "online": True}},
    "tot": {"volt": 19108, "curr": 437, "type": "I2C", "power": 8350, "avg": 8345, "name": "VDD_IN"},
}

TEGRA_RELEASE = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 2023\n"


def test_parse_nvpmodel():
    assert device.parse_nvpmodel(NVPMODEL_Q) == {"mode": "MAXN", "id": 0}
    assert device.parse_nvpmodel(NVPMODEL_Q_NANO) == {"mode": "15W", "id": 0}
    with pytest.raises(ValueError, match="NV Power Mode"):
        device.parse_nvpmodel("nvpmodel: command failed\n")


def test_parse_jetson_clocks_locked():
    show = device.parse_jetson_clocks(CLOCKS_ON)
    assert show["on"] is True
    assert show["cpus"]["cpu0"] == {"min": 2201600, "max": 2201600, "current": 2201600, "governor": "schedutil",
                                    "online": True}
    assert show["gpu"]["max"] == 1300500000 and show["emc"]["override"] is True
    assert show["power_mode"] == "MAXN" and show["machine"] == "NVIDIA Jetson AGX Orin Developer Kit"


def test_parse_jetson_clocks_dynamic():
    show = device.parse_jetson_clocks(CLOCKS_OFF)
    assert show["on"] is False
    assert show["cpus"]["cpu2"]["online"] is False and len(show["cpus"]) == 3
    assert show["emc"]["override"] is False


def test_parse_jetson_clocks_tx1_and_garbage():
    show = device.parse_jetson_clocks(CLOCKS_TX1)
    assert show["on"] is True and show["cpus"]["cpu0"]["governor"] == "interactive"
    with pytest.raises(ValueError, match="no clock lines"):
        device.parse_jetson_clocks("Permission denied\n")


def test_parse_jtop_power_and_release():
    assert device.parse_jtop_power(JTOP_POWER) == {
        "total_mw": 8350, "total_avg_mw": 8345, "total_rail": "VDD_IN",
        "rails_mw": {"VDD_GPU_SOC": 3189, "VDD_CPU_CV": 1186}}
    assert device.parse_jtop_power({}) == {"total_mw": None, "total_avg_mw": None, "total_rail": None, "rails_mw": {}}
    assert device.parse_tegra_release(TEGRA_RELEASE) == "35.4.1"
    assert device.parse_tegra_release("garbage") is None


def test_cpu_model_from_cpuinfo():
    assert device.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert device.cpu_model("processor\t: 0\nHardware\t: NVIDIA Tegra X1\n") == "NVIDIA Tegra X1"


def test_jetson_info_guarded(tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text(TEGRA_RELEASE)

    def run(cmd):
        if cmd[0] == "nvpmodel":
            return NVPMODEL_Q
        raise RuntimeError("jetson_clocks --show exited with 1: Permission denied")

    info = device.jetson_info(run, release, power=lambda: device.parse_jtop_power(JTOP_POWER))
    assert info["l4t"] == "35.4.1" and info["nvpmodel"] == {"mode": "MAXN", "id": 0}
    assert "Permission denied" in info["jetson_clocks"]["error"] and "sudo" in info["jetson_clocks"]["error"]
    assert info["power"]["total_mw"] == 8350 and info["power"]["when"]

    def missing(cmd):
        raise FileNotFoundError(cmd[0])

    info = device.jetson_info(missing, release, power=lambda: {"error": "jetson-stats not installed"})
    assert info["nvpmodel"] == {"error": "nvpmodel not found on PATH"}
    assert device.jetson_info(missing, tmp_path / "absent") is None


def test_device_info_here():
    info = device.device_info(threads=3, run=lambda cmd: (_ for _ in ()).throw(FileNotFoundError(cmd[0])))
    assert info["threads"] == 3 and info["cpu_count"] >= 1 and info["cpu_model"]
    assert {"numpy", "python", "edgerl"} <= set(info["versions"])
    assert "gpus" not in info
