"""Train the small 4× super-resolution net (ESRGAN I/O) on 16→64 pairs made from the real emoji images.

    nice -n 19 /usr/bin/python3 train_upscaler.py --minutes 5 > work/upscaler.log 2>&1 &

Inputs are the 64×64 images area-downscaled to 16×16 (the blur a small render has), targets the originals; random
flips and 90° turns. Writes work/upscaler.pt, which export.py turns into upscaler/model.onnx.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from nets import Upscaler
from train_vae import load_images


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="work")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    images = load_images(args.work).add(1.0).div(2.0)
    held_out = images[::20]
    training = images[[i for i in range(len(images)) if i % 20 != 0]]
    model = Upscaler()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    print(json.dumps({"images": len(training), "params": sum(p.numel() for p in model.parameters())}), flush=True)

    def l1_against_bilinear(batch: torch.Tensor) -> tuple[float, float]:
        small = F.avg_pool2d(batch, 4)
        with torch.no_grad():
            ours = (model(small) - batch).abs().mean().item()
        bilinear = (F.interpolate(small, scale_factor=4.0, mode="bilinear", align_corners=False) - batch).abs().mean().item()
        return ours, bilinear

    budget_s = args.minutes * 60
    started = time.time()
    step = 0
    while time.time() - started < budget_s:
        target = training[torch.randint(0, len(training), (args.batch,))]
        if torch.rand(()) < 0.5:
            target = target.flip(3)
        target = target.rot90(int(torch.randint(0, 4, ())), dims=(2, 3))
        loss = F.l1_loss(model(F.avg_pool2d(target, 4)), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(json.dumps({"step": step, "s": round(time.time() - started), "l1": round(loss.item(), 5)}), flush=True)

    model.eval()
    torch.save(model.state_dict(), f"{args.work}/upscaler.pt")
    ours, bilinear = l1_against_bilinear(held_out)
    print(json.dumps({"done": step, "held_out_l1": round(ours, 5), "bilinear_l1": round(bilinear, 5)}), flush=True)


if __name__ == "__main__":
    main()
