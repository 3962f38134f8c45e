"""Reference sampler in PyTorch with the same weights the ONNX export carries.

    /usr/bin/python3 sample_torch.py --prompt "a fox" --seed 1 --steps 20 --batch 4 --guidance 5 --threads 2 --out out/

DDIM (eta 0) over v-predictions with zero-terminal-SNR betas and trailing timestep spacing, classifier-free guidance
with the empty prompt as the unconditional input. Image k of a batch uses seed + k. Writes one PNG per image and
prints {"wall_s", "denoise_s", ...} as one JSON line (used by `npm run bench:model` and the ONNX agreement check).
Weights come from the committed training state (models/train/state, EMA U-Net), so it runs on a fresh clone.
`--repeats N` runs one untimed warm-up generation first, then N timed ones (seeds seed … seed+N-1), and reports the
fastest as denoise_s — the same warm, best-of-N rule bench:model applies to the ONNX pipeline.
`--noise FILE` takes the starting latents as raw little-endian float32 [batch,4,16,16] instead of drawing them, so
the ONNX pipeline and this sampler can start from the very same noise.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from PIL import Image

from clip_bpe import EOS, encode
from nets import KLAutoencoder, UNet
from train_unet import TRAIN_STEPS, full, load_text_encoder, zero_terminal_snr_alphas_cumprod


def prompt_ids(text: str, vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int) -> list[int]:
    ids = encode(text, vocab, merges)
    ids = [ids[0], *ids[1:-1][: max_length - 2], vocab[EOS]]
    return ids + [vocab[EOS]] * (max_length - len(ids))


def trailing_timesteps(steps: int) -> list[int]:
    # diffusers' timestep_spacing="trailing": start exactly at t = 999, the zero-SNR step.
    return [int(t) for t in np.round(np.arange(TRAIN_STEPS, 0, -TRAIN_STEPS / steps)).astype(np.int64) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "state"))
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="out")
    parser.add_argument("--noise", help="raw float32 [batch,4,16,16] starting latents")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()

    progress = json.load(open(f"{args.state_dir}/progress.json"))
    text_saved = torch.load(f"{args.state_dir}/text_encoder.pt")
    vocab, merges, max_length = text_saved["vocab"], [tuple(m) for m in text_saved["merges"]], text_saved["max_length"]
    text_encoder = load_text_encoder(text_saved)
    unet = UNet(text_saved["text_width"], tuple(progress["unet_channels"]), attention_levels=tuple(progress["attention_levels"]))
    unet.load_state_dict(full(torch.load(f"{args.state_dir}/ema_unet.pt")))
    vae = KLAutoencoder()
    vae.load_state_dict(full(torch.load(f"{args.state_dir}/vae.pt")))
    for module in (text_encoder, unet, vae):
        module.eval()
    alphas_cumprod = zero_terminal_snr_alphas_cumprod()

    def sample(seed: int) -> tuple[torch.Tensor, float]:
        with torch.no_grad():
            denoise_started = time.time()
            ids = torch.tensor([prompt_ids(args.prompt, vocab, merges, max_length), prompt_ids("", vocab, merges, max_length)])
            cond, uncond = text_encoder(ids)[0]
            context = torch.cat([uncond.expand(args.batch, -1, -1), cond.expand(args.batch, -1, -1)])
            if args.noise:
                latents = torch.from_numpy(np.fromfile(args.noise, dtype="<f4").reshape(args.batch, 4, 16, 16).copy())
            else:
                latents = torch.cat([torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(seed + k)) for k in range(args.batch)])
            timesteps = trailing_timesteps(args.steps)
            for index, t in enumerate(timesteps):
                v_uncond, v_cond = unet(torch.cat([latents, latents]), torch.full((2 * args.batch,), float(t)), context).chunk(2)
                v = v_uncond + args.guidance * (v_cond - v_uncond)
                alpha = alphas_cumprod[t]
                alpha_prev = alphas_cumprod[timesteps[index + 1]] if index + 1 < len(timesteps) else alphas_cumprod[0]
                x0 = alpha.sqrt() * latents - (1 - alpha).sqrt() * v
                eps = alpha.sqrt() * v + (1 - alpha).sqrt() * latents
                latents = alpha_prev.sqrt() * x0 + (1 - alpha_prev).sqrt() * eps
            images = vae.decode(latents / progress["scaling_factor"])
            return images, time.time() - denoise_started

    if args.repeats > 1:
        sample(args.seed)
    runs = [sample(args.seed + k) for k in range(args.repeats)]
    images = runs[0][0]
    denoise_s = min(seconds for _, seconds in runs)

    os.makedirs(args.out, exist_ok=True)
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    files = []
    for k, image in enumerate(pixels):
        path = os.path.join(args.out, f"{args.seed + k:06d}.png")
        Image.fromarray(image).save(path)
        files.append(path)
    print(json.dumps({"wall_s": round(time.time() - started, 4), "denoise_s": round(denoise_s, 4), "steps": args.steps,
                      "batch": args.batch, "threads": args.threads, "files": files}))


if __name__ == "__main__":
    main()
