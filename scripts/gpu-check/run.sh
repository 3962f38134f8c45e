#!/usr/bin/env bash
# The GPU check: Stable Diffusion 1.5's UNet (random weights) at 512² (64² latents), guided batch of 2, run by this
# engine's own denoising loop on ONNX Runtime's WebGPU provider, against PyTorch eager float16 on the same weights.
# Prints one JSON object: ms per step for both and their ratio. Budget: at most 8 minutes.
#
# The machine it is written for: an NVIDIA GPU with its driver's Vulkan ICD, python3 with torch and onnx, no Node, no
# network. Everything else travels from here:
#
#   1. here:     bash scripts/gpu-check/prepare.sh        (fills the git-ignored .gpu-check/ and .gl/)
#   2. device:   run(command="bash scripts/gpu-check/run.sh", carry=[".gpu-check", ".gl"], timeout_s=540)
#                — the exact device call; $OUT/gpu-check.json and $OUT/log come back.
#                The call carries the repository's tracked files too; prepare.sh adds about 37 MiB and stops when the
#                sum passes the device tool's 64 MiB (on 2026-12-06 the tracked files alone were 70 MiB).
#   3. here:     commit the JSON as scripts/gpu-check/results/<date>-<gpu>.json and add its row to docs/BENCHMARKS.md
#                under "GPU check".
#
# What is timed:
#   torchMsPerStep   one eager UNet call, float16, batch 2 × 4 × 64 × 64, context 2 × 77 × 768 (median of 10 after 3)
#   engineStepMs     one step of the engine's loop (src/engine/pipelines/stages.ts denoise: UNet, guidance, scheduler
#                    and every host↔device copy), wall time / steps after 2 warm-up steps
#   engineUnetMs     the UNet's own session.run() time per step inside that loop
#   ratio            engineStepMs / torchMsPerStep (>1: our WebGPU loop is slower)
#
# Locally, on a CPU (a check of the script, not a figure):  bash scripts/gpu-check/run.sh --tiny
# (tiny UNet of the same architecture; the loop uses GPU_CHECK_PROVIDER, default webgpu — SwiftShader here if set up —
# or cpu; node from .gpu-check when present, else the node on PATH; GPU_CHECK_PYTHON names a python3 with torch).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)

tiny=()
[ "${1:-}" = "--tiny" ] && tiny=(--tiny)
OUT=${OUT:-$REPO/out/gpu-check}
WORK=${GPU_CHECK_WORK:-/tmp/gpu-check}
PROVIDER=${GPU_CHECK_PROVIDER:-webgpu}
PYTHON=${GPU_CHECK_PYTHON:-python3}
STEPS=${GPU_CHECK_STEPS:-10}
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/log") 2>&1
started=$(date +%s)
stage() { echo "[gpu-check +$(($(date +%s) - started))s] $*"; }

# The Vulkan loader, from Debian's package, only where the image has none (unpacking into / is what the device notes
# prescribe for these loaders).
if ! ldconfig -p | grep -q 'libvulkan\.so\.1 ' && ls .gl/*.deb >/dev/null 2>&1; then
  stage "unpacking the Vulkan loader"
  for deb in .gl/*.deb; do dpkg -x "$deb" /; done
  ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then export VK_DRIVER_FILES=$nvidia_icd; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}

# Node and onnxruntime-node, unpacked with Python's own lzma (the image may lack xz).
if [ -s .gpu-check/node.xz ]; then
  stage "unpacking node and onnxruntime-node"
  python3 - "$WORK" <<'PY'
import lzma, os, shutil, sys, tarfile
work = sys.argv[1]
os.makedirs(os.path.join(work, "bin"), exist_ok=True)
with lzma.open(".gpu-check/node.xz") as src, open(os.path.join(work, "bin", "node"), "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(os.path.join(work, "bin", "node"), 0o755)
with tarfile.open(".gpu-check/onnxruntime.tar.xz") as tar:
    tar.extractall(os.path.join(work, "node_modules"))
shutil.copy(".gpu-check/unet-loop.mjs", os.path.join(work, "unet-loop.mjs"))
PY
  loop=("$WORK/bin/node" "$WORK/unet-loop.mjs")
  "$WORK/bin/node" --version
else
  loop=(npx --no-install tsx scripts/gpu-check/unet-loop.ts)
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

stage "PyTorch: building the UNet, exporting the model folder, timing eager"
PYTHONUNBUFFERED=1 "$PYTHON" scripts/gpu-check/sd15_unet.py "${tiny[@]}" --out "$WORK/model" --json "$WORK/torch.json"

stage "the engine's loop on $PROVIDER"
"${loop[@]}" --model "$WORK/model" --provider "$PROVIDER" --steps "$STEPS" --json "$WORK/engine.json"

stage "done"
python3 - "$WORK" "$OUT/gpu-check.json" <<'PY'
import json, sys
work, out = sys.argv[1], sys.argv[2]
torch_figures = json.load(open(f"{work}/torch.json"))
engine = json.load(open(f"{work}/engine.json"))
result = {
    "gpu": torch_figures["device"],
    "torch": torch_figures["torch"],
    "parameters": torch_figures["parameters"],
    "size": engine["size"],
    "latent": torch_figures["latent"],
    "torchDtype": torch_figures["dtype"],
    "torchMsPerStep": torch_figures["torch_ms_per_step_median"],
    "provider": engine["provider"],
    "unetDtype": engine["unetDtype"],
    "steps": engine["steps"],
    "engineStepMs": engine["stepMs"],
    "engineUnetMs": engine["unetMs"],
    "uploadsPerStep": engine["uploadsPerStep"],
    "downloadsPerStep": engine["downloadsPerStep"],
    "ratio": round(engine["stepMs"] / torch_figures["torch_ms_per_step_median"], 2),
    "loadS": engine["loadS"],
    "warmupS": engine["warmupS"],
    "exportS": torch_figures["export_s"],
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result))
PY
