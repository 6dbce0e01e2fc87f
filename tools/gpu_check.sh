#!/usr/bin/env bash
# The prepared GPU check of issue 14 (at most ~8 minutes on one H200): the CUDA tests, SAC and PPO
# throughput on CUDA vs CPU (vs Stable-Baselines3 where its wheel came along), and a pruned SAC
# run trained on CUDA, resumed on the CPU, compacted and exported. Prints one table at the end.
#
#   bash tools/gpu_check.sh            # from the repository root; writes into ${OUT:-gpu_check_out}/
#
# The GPU machine has Python 3.12, torch 2.11+CUDA, onnx and onnxruntime, but no gymnasium,
# mujoco, torch-pruning, pytest or network. Carry their wheels in wheels/ (ignored by git; pass
# it in the device tool's `carry`), downloaded on a machine with network:
#
#   pip download --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d wheels/ \
#       gymnasium "mujoco>=3.1,<4" torch-pruning==1.6.1 pytest stable-baselines3 pyyaml tqdm \
#       onnxscript cloudpickle farama-notifications typing-extensions pluggy iniconfig packaging
#   # (stable-baselines3 pulls torch: add --no-deps for it, or delete the torch wheel from wheels/)
#
# Without the wheels each part that needs them is skipped and says so in the table.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore
T0=$(date +%s)

if [ -d wheels ]; then
  echo "== installing carried wheels (no network)"
  $PY -m pip install --quiet --no-index --find-links wheels/ gymnasium mujoco torch-pruning pytest pyyaml tqdm \
      2>&1 | tail -3
  $PY -m pip install --quiet --no-index --no-deps --find-links wheels/ stable-baselines3 2>&1 | tail -1 || true
fi
have() { $PY -c "import $1" >/dev/null 2>&1; }
$PY - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available={torch.cuda.is_available()}",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

status() { echo "$1|$2" >> "$OUT/status.txt"; }
: > "$OUT/status.txt"

echo "== 1. CUDA tests (pytest -m gpu)"
if have pytest && have gymnasium && have torch_pruning; then
  if timeout 240 $PY -m pytest -q -m gpu -p no:cacheprovider tests/algos/test_device.py > "$OUT/pytest_gpu.txt" 2>&1; then
    status "CUDA tests" "$(tail -1 "$OUT/pytest_gpu.txt")"
  else
    status "CUDA tests" "FAILED: $(tail -1 "$OUT/pytest_gpu.txt") (see $OUT/pytest_gpu.txt)"
  fi
else
  status "CUDA tests" "skipped: needs pytest, gymnasium, torch-pruning (carry wheels/)"
fi

echo "== 2. SAC updates/s (256x256, batch 256, Hopper-sized random replay)"
for dev in cuda cpu; do
  timeout 120 $PY tools/bench_train.py --env random --device $dev --rounds 3 --updates 300 --no-sb3 \
      --json "$OUT/sac_$dev.json" > "$OUT/sac_$dev.txt" 2>&1 || status "SAC $dev" "FAILED (see $OUT/sac_$dev.txt)"
done
if have stable_baselines3 && have gymnasium && have mujoco; then
  timeout 150 $PY tools/bench_train.py --env Hopper-v5 --device cuda --rounds 3 --updates 300 \
      --json "$OUT/sac_sb3_cuda.json" > "$OUT/sac_sb3_cuda.txt" 2>&1 || status "SAC vs SB3 cuda" "FAILED"
else
  status "SAC vs SB3 on CUDA" "skipped: needs stable-baselines3, gymnasium, mujoco wheels"
fi

echo "== 3. PPO Impala tau=3 samples/s"
for dev in cuda cpu; do
  timeout 150 $PY tools/bench_train.py --algo ppo --width 3 --device $dev --rounds 2 --updates 100 \
      --json "$OUT/ppo_$dev.json" > "$OUT/ppo_$dev.txt" 2>&1 || status "PPO $dev" "FAILED (see $OUT/ppo_$dev.txt)"
done

echo "== 4. pruned SAC on CUDA, resumed on the CPU, compacted, exported"
if have gymnasium && have torch_pruning; then
  R="$OUT/pruned"
  rm -rf "$R"
  if timeout 120 $PY -m edgerl.cli train --env Pendulum-v1 --hidden 256,256 --total-steps 3000 \
        --learning-starts 500 --prune gradual --final-ratio 0.8 --prune-every 100 --eval-every 1500 \
        --eval-episodes 2 --device cuda --progress false --out "$R" > "$OUT/pruned.txt" 2>&1 \
     && timeout 120 $PY -m edgerl.cli train --resume "$R" --total-steps 3500 --device cpu >> "$OUT/pruned.txt" 2>&1 \
     && timeout 60 $PY -m edgerl.cli compact "$R/ckpt.pt" -o "$R/compact.pt" >> "$OUT/pruned.txt" 2>&1 \
     && timeout 60 $PY -m edgerl.cli export "$R/compact.pt" -o "$R/policy.onnx" >> "$OUT/pruned.txt" 2>&1; then
    status "pruned CUDA run -> CPU" "ok: trained 3000 steps on cuda, resumed to 3500 on cpu, compacted, exported"
  else
    status "pruned CUDA run -> CPU" "FAILED (see $OUT/pruned.txt)"
  fi
else
  status "pruned CUDA run -> CPU" "skipped: needs gymnasium and torch-pruning wheels"
fi

echo "== table ($(( $(date +%s) - T0 )) s)"
$PY - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None

rows = []
def row(name, values):
    c, p = values.get("cuda"), values.get("cpu")
    ratio = f"{c / p:.1f}x" if c and p else "n/a"
    rows.append((name, "failed" if c is None else f"{c:.0f}", "failed" if p is None else f"{p:.0f}", ratio))

sac = {d: load(f"sac_{d}.json") for d in ("cuda", "cpu")}
row("SAC updates/s, edgerl (256x256, batch 256)", {d: r["updates_per_s"]["edgerl"] for d, r in sac.items() if r})
sb3 = load("sac_sb3_cuda.json")
if sb3:
    rows.append(("SAC updates/s on CUDA, edgerl vs SB3 (Hopper)", f"{sb3['updates_per_s']['edgerl']:.0f}",
                 f"SB3 {sb3['updates_per_s']['sb3']:.0f}", f"{sb3['ratio_edgerl_sb3']:.2f}x"))
ppo = {d: load(f"ppo_{d}.json") for d in ("cuda", "cpu")}
row("PPO Impala tau=3 samples/s (update)", {d: r["samples_per_s"] for d, r in ppo.items() if r})
print("| measurement | CUDA | CPU (1 thread) | ratio |\n|---|---:|---:|---:|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
for line in (out / "status.txt").read_text().splitlines():
    what, _, text = line.partition("|")
    print(f"- {what}: {text}")
EOF
