#!/usr/bin/env bash
# Resume the default model's U-Net training on a fresh clone from the committed state (models/train/state):
# rebuild the sprites and scenes from the npm packages, re-encode the scenes with the committed VAE, then train.
#
#   bash models/train/resume.sh [minutes] [extra train_unet.py flags, e.g. --device cuda --batch 512 --threads 16]
#
# Needs Debian's python3-torch (and libopenblas0-openmp for speed), python3-onnx, python3-pil, Node and npm.
set -euo pipefail
cd "$(dirname "$0")"
minutes="${1:-60}"
shift || true
[ -d node_modules ] || npm ci --no-audit --no-fund
node --max-old-space-size=6000 build_vocabulary.mjs
node build_dataset.mjs
if [ ! -f work/latents.pt ]; then
  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 train_vae.py --resume-from state/vae.pt --encode-only --threads "$(nproc)"
fi
OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 train_unet.py --resume --minutes "$minutes" "$@" 2>&1 | tee -a work/unet.log
