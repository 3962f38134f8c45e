"""Train the 4× KL autoencoder on the emoji images for a fixed wall-clock budget, then encode the whole set.

    nice -n 19 /usr/bin/python3 train_vae.py --minutes 10 > work/vae.log 2>&1 &

Writes work/vae.pt (weights) and work/latents.pt (posterior mean/logvar of every image, and the scaling factor
1/std of the latents that the U-Net is trained on and that vae_decoder/config.json states).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from nets import KLAutoencoder

# Small enough that reconstructions stay sharp, large enough to keep latents near unit scale and smooth.
KL_WEIGHT = 1e-5


def load_images(work: str) -> torch.Tensor:
    meta = json.load(open(f"{work}/dataset.json"))
    size = meta["size"]
    raw = np.fromfile(f"{work}/images.u8", dtype=np.uint8).reshape(-1, size, size, 3)
    return torch.from_numpy(raw).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="work")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    images = load_images(args.work)
    model = KLAutoencoder()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    print(json.dumps({"images": len(images), "params": sum(p.numel() for p in model.parameters())}), flush=True)

    budget_s = args.minutes * 60
    started = time.time()
    step = 0
    while time.time() - started < budget_s:
        progress = (time.time() - started) / budget_s
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * progress)) + 2e-5
        batch = images[torch.randint(0, len(images), (args.batch,))]
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
    torch.save(model.state_dict(), f"{args.work}/vae.pt")
    means, logvars, errors = [], [], []
    with torch.no_grad():
        for chunk in images.split(256):
            mean, logvar = model.encode(chunk)
            means.append(mean)
            logvars.append(logvar)
            errors.append((model.decode(mean) - chunk).abs().mean(dim=(1, 2, 3)))
    mean = torch.cat(means)
    scaling_factor = 1.0 / mean.std().item()
    torch.save({"mean": mean, "logvar": torch.cat(logvars), "scaling_factor": scaling_factor}, f"{args.work}/latents.pt")
    print(json.dumps({"done": step, "minutes": round((time.time() - started) / 60, 1), "scaling_factor": scaling_factor,
                      "reconstruction_l1_01": torch.cat(errors).mean().item() / 2}), flush=True)


if __name__ == "__main__":
    main()
