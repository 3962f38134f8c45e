"""Train the evaluation classifier on the REAL emoji images only (never generated ones), with augmentations.

    cd models/train && nice -n 19 /usr/bin/python3 ../eval/train_classifier.py --minutes 8 --threads 1

Reads models/train/work/{images.u8,dataset.json} (from build_dataset.mjs). Writes models/eval/classifier.onnx
(`image` float32 [batch,3,64,64] RGB in [0,1] on white → `logits` [batch,classes]) and models/eval/labels.json, and
prints top-1/top-5 accuracy on a fixed set of held-out augmentations (other seeds than training ever draws).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


def classifier(classes: int) -> nn.Module:
    def stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    # Looking at 32×32 costs a quarter of the compute and loses little: generated 64×64 images are soft anyway.
    return nn.Sequential(nn.AvgPool2d(2), stage(3, 32), stage(32, 64), stage(64, 128), stage(128, 192),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(192, classes))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift, scale, rotate (white fill), blur by down-and-up sampling, colour jitter, noise: what a generator gets wrong."""
    n = len(images)
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    angle = (rand(n) - 0.5) * math.radians(24)
    scale = 0.8 + 0.35 * rand(n)
    shift = (rand(n, 2) - 0.5) * 0.3
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # Sampling 1 - image with zero padding fills the border with white.
    out = 1 - F.grid_sample(1 - images, grid, align_corners=False)
    blur = rand(n)
    for side, (low, high) in ((16, (0.0, 0.25)), (32, (0.25, 0.55))):
        chosen = (blur >= low) & (blur < high)
        if chosen.any():
            small = F.interpolate(out[chosen], size=side, mode="area")
            out[chosen] = F.interpolate(small, size=64, mode="bilinear", align_corners=False)
    contrast = 0.75 + 0.5 * rand(n, 1, 1, 1)
    brightness = (rand(n, 1, 1, 1) - 0.5) * 0.2
    saturation = 0.7 + 0.6 * rand(n, 1, 1, 1)
    grey = out.mean(dim=1, keepdim=True)
    out = grey + (out - grey) * saturation
    out = (out - 0.5) * contrast + 0.5 + brightness
    out = out + 0.03 * rand(n, 1, 1, 1) * torch.randn(out.shape, generator=generator)
    return out.clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default=os.path.join(HERE, "..", "train", "work"))
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    dataset = json.load(open(os.path.join(args.work, "dataset.json")))
    size, concepts, records = dataset["size"], dataset["concepts"], dataset["records"]
    raw = np.fromfile(os.path.join(args.work, "images.u8"), dtype=np.uint8).reshape(-1, size, size, 3)
    images = torch.from_numpy(raw).permute(0, 3, 1, 2).float() / 255
    labels = torch.tensor([record["label"] for record in records])

    heldout_generator = torch.Generator().manual_seed(1_000_003)
    heldout_images = torch.cat([augment(images, heldout_generator) for _ in range(2)])
    heldout_labels = torch.cat([labels, labels])

    model = classifier(len(concepts))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    generator = torch.Generator().manual_seed(0)
    budget_s = args.minutes * 60
    started = time.time()
    step = 0
    model.train()
    while time.time() - started < budget_s:
        progress = (time.time() - started) / budget_s
        for group in optimizer.param_groups:
            group["lr"] = 2e-3 * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * progress))
        index = torch.randint(0, len(images), (args.batch,), generator=generator)
        loss = F.cross_entropy(model(augment(images[index], generator)), labels[index], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(json.dumps({"step": step, "s": round(time.time() - started), "loss": round(loss.item(), 4)}), flush=True)

    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in heldout_images.split(256)])
        top5 = logits.topk(5, dim=1).indices
        top1_accuracy = (top5[:, 0] == heldout_labels).float().mean().item()
        top5_accuracy = (top5 == heldout_labels[:, None]).any(dim=1).float().mean().item()
        torch.onnx.export(model, (images[:2],), os.path.join(HERE, "classifier.onnx"), input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=14)
    with open(os.path.join(HERE, "labels.json"), "w") as file:
        json.dump({"input": {"name": "image", "size": size, "range": [0, 1], "background": "white"},
                   "labels": [{"name": c["name"], "unified": c["unified"], "category": c["category"]} for c in concepts],
                   "heldout": {"top1": round(top1_accuracy, 4), "top5": round(top5_accuracy, 4), "images": len(heldout_labels),
                               "steps": step, "minutes": round((time.time() - started) / 60, 1)}}, file, indent=1)
        file.write("\n")
    print(json.dumps({"done": step, "top1": top1_accuracy, "top5": top5_accuracy}), flush=True)


if __name__ == "__main__":
    main()
