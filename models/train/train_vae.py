"""Train the 4× KL autoencoder on rendered scenes for a wall-clock budget, then encode every scene once.

    OMP_WAIT_POLICY=PASSIVE nice -n 19 /usr/bin/python3 train_vae.py --minutes 15 --threads 1 > work/vae.log 2>&1 &

Needs work/sprites.u8 and work/dataset.json (build_dataset.mjs). Draws the fixed scene list (scenes.sample_scenes,
seed 0: every sprite plain, on colours, small, placed and paired) into work/scenes.json, trains on scenes rendered
on the fly, and writes work/vae.pt (weights) and work/latents.pt (posterior mean/logvar of every scene, and the
scaling factor 1/std that the U-Net is trained on and that vae_decoder/config.json states).
`--resume-from FILE` starts from saved weights (e.g. models/train/state/vae.pt) instead of from scratch;
`--init-from-onnx DIR` starts from a shipped folder's VAE (fine-tuning);
`--encode-only` skips training (with --resume-from: rebuild latents on a fresh clone).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import time

import torch
import torch.nn.functional as F

from nets import KLAutoencoder
from onnx_weights import state_dict_from_onnx
from scenes import Scene, countable_sprites, load_sprites, render, sample_scenes

# Small enough that reconstructions stay sharp, large enough to keep latents near unit scale and smooth.
KL_WEIGHT = 1e-5
SCENE_SEED = 0


def load_scenes(work: str) -> list[Scene]:
    return [Scene(**{**entry, "placements": [tuple(p) for p in entry["placements"]]}) for entry in json.load(open(f"{work}/scenes.json"))]


def scenes_for(work: str, meta: dict, sprites: torch.Tensor) -> list[Scene]:
    """The scene list is a function of the sprites and SCENE_SEED, so a fresh clone draws the same one."""
    scenes = sample_scenes(meta["records"], countable_sprites(sprites), random.Random(SCENE_SEED))
    json.dump([dataclasses.asdict(scene) for scene in scenes], open(f"{work}/scenes.json", "w"))
    return scenes


def vae_state_from_onnx(folder: str) -> dict[str, torch.Tensor]:
    encoder = state_dict_from_onnx(f"{folder}/vae_encoder/model.onnx", "vae.")
    decoder = state_dict_from_onnx(f"{folder}/vae_decoder/model.onnx", "vae.")
    return {**{k: v for k, v in encoder.items() if k.startswith("encoder.")}, **{k: v for k, v in decoder.items() if k.startswith("decoder.")}}


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    return images.mul(2.0).sub(1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="work")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume-from")
    parser.add_argument("--init-from-onnx", help="a model folder whose vae_encoder/ and vae_decoder/ to start from")
    parser.add_argument("--encode-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = random.Random(1)

    meta, sprites = load_sprites(args.work)
    scenes = scenes_for(args.work, meta, sprites)
    model = KLAutoencoder()
    if args.resume_from:
        model.load_state_dict({k: v.float() for k, v in torch.load(args.resume_from).items()})
    elif args.init_from_onnx:
        model.load_state_dict(vae_state_from_onnx(args.init_from_onnx))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    print(json.dumps({"sprites": len(sprites), "scenes": len(scenes), "params": sum(p.numel() for p in model.parameters())}), flush=True)

    budget_s = 0.0 if args.encode_only else args.minutes * 60
    started = time.time()
    step = 0
    while time.time() - started < budget_s:
        progress = (time.time() - started) / budget_s
        for group in optimizer.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * progress)) + 2e-5
        batch = to_model_range(render(sprites, rng.sample(scenes, args.batch), rng))
        mean, logvar = model.encode(batch)
        latent = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        reconstruction = model.decode(latent)
        rec = F.l1_loss(reconstruction, batch) + F.mse_loss(reconstruction, batch)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = rec + KL_WEIGHT * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 50 == 0:
            print(json.dumps({"step": step, "s": round(time.time() - started), "rec": round(rec.item(), 5), "kl": round(kl.item(), 3)}), flush=True)

    model.eval()
    if not args.encode_only:
        torch.save(model.state_dict(), f"{args.work}/vae.pt")
    means, logvars, errors = [], [], []
    with torch.no_grad():
        for first in range(0, len(scenes), 256):
            chunk = to_model_range(render(sprites, scenes[first:first + 256]))
            mean, logvar = model.encode(chunk)
            means.append(mean)
            logvars.append(logvar)
            # The reconstruction error is a figure, not a product: every 8th chunk is decoded for it.
            if (first // 256) % 8 == 0:
                errors.append((model.decode(mean) - chunk).abs().mean(dim=(1, 2, 3)))
            if (first // 256) % 10 == 0:
                print(json.dumps({"encoded": first + len(chunk), "of": len(scenes), "s": round(time.time() - started)}), flush=True)
    mean = torch.cat(means)
    scaling_factor = 1.0 / mean.std().item()
    torch.save({"mean": mean, "logvar": torch.cat(logvars), "scaling_factor": scaling_factor}, f"{args.work}/latents.pt")
    print(json.dumps({"done": step, "minutes": round((time.time() - started) / 60, 1), "scaling_factor": scaling_factor,
                      "reconstruction_l1_01": torch.cat(errors).mean().item() / 2}), flush=True)


if __name__ == "__main__":
    main()
