"""Train the judge — the evaluation classifier — on the REAL emoji images only (never generated ones), with augmentations.

    cd models/train && OMP_WAIT_POLICY=PASSIVE nice -n 19 /usr/bin/python3 ../eval/train_classifier.py --minutes 20 --threads 1
    ... --leave-out fxemoji --no-write    # how it fares on an art style it never saw (report only)

Reads models/train/work/{sprites.u8,dataset.json} (build_dataset.mjs): every vocabulary concept in up to five styles,
composited on white. Writes models/eval/classifier.onnx (`image` float32 [batch,3,64,64] RGB in [0,1] on white →
`logits` [batch, concepts]), judge.pt (the same weights for the training scripts) and labels.json, and prints top-1/
top-5 on a fixed set of held-out augmentations (other seeds than training ever draws) — the ceiling any score it gives
a generated image should be read against — and, with --leave-out, on the clean and augmented images of that style.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from judge import judge_network  # noqa: E402


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


def on_white(rgba: np.ndarray) -> torch.Tensor:
    images = torch.from_numpy(rgba).permute(0, 3, 1, 2).float() / 255
    alpha = images[:, 3:4]
    return images[:, :3] * alpha + (1 - alpha)


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    logits = torch.cat([model(chunk) for chunk in images.split(256)])
    top5 = logits.topk(5, dim=1).indices
    return (top5[:, 0] == labels).float().mean().item(), (top5 == labels[:, None]).any(dim=1).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default=os.path.join(HERE, "..", "train", "work"))
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--leave-out", help="an art style to keep out of training entirely and score separately")
    parser.add_argument("--no-write", action="store_true", help="report only; leave classifier.onnx, judge.pt, labels.json")
    parser.add_argument("--init", help="start from these weights (a judge.pt) instead of from scratch: a further cycle")
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    dataset = json.load(open(os.path.join(args.work, "dataset.json")))
    size, concepts, records = dataset["size"], dataset["concepts"], dataset["records"]
    raw = np.fromfile(os.path.join(args.work, "sprites.u8"), dtype=np.uint8).reshape(-1, size, size, 4)
    every_image = on_white(raw)
    every_label = torch.tensor([record["concept"] for record in records])
    kept = torch.tensor([record["style"] != args.leave_out for record in records])
    images, labels = every_image[kept], every_label[kept]

    heldout_generator = torch.Generator().manual_seed(1_000_003)
    heldout_images = torch.cat([augment(images, heldout_generator) for _ in range(2)])
    heldout_labels = torch.cat([labels, labels])

    model = judge_network(len(concepts))
    if args.init:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in torch.load(args.init)["state"].items()})
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    generator = torch.Generator().manual_seed(0)
    budget_s = args.minutes * 60
    started = time.time()
    step = 0
    model.train()
    while time.time() - started < budget_s:
        progress = (time.time() - started) / budget_s
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * progress))
        index = torch.randint(0, len(images), (args.batch,), generator=generator)
        loss = F.cross_entropy(model(augment(images[index], generator)), labels[index], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(json.dumps({"step": step, "s": round(time.time() - started), "loss": round(loss.item(), 4)}), flush=True)

    model.eval()
    top1, top5 = accuracy(model, heldout_images, heldout_labels)
    previous = json.load(open(os.path.join(HERE, "labels.json")))["heldout"] if args.init else {"steps": 0, "minutes": 0}
    report = {"top1": round(top1, 4), "top5": round(top5, 4), "images": len(heldout_labels), "steps": previous["steps"] + step,
              "minutes": round(previous["minutes"] + (time.time() - started) / 60, 1), "styles": sorted({r["style"] for r in records} - {args.leave_out})}
    if args.leave_out:
        left_out = ~kept
        clean = accuracy(model, every_image[left_out], every_label[left_out])
        augmented = accuracy(model, augment(every_image[left_out], torch.Generator().manual_seed(7)), every_label[left_out])
        report["left_out"] = {"style": args.leave_out, "images": int(left_out.sum()), "top1_clean": round(clean[0], 4),
                              "top5_clean": round(clean[1], 4), "top1_augmented": round(augmented[0], 4),
                              "top5_augmented": round(augmented[1], 4)}
    if not args.no_write:
        with torch.no_grad():
            torch.onnx.export(model, (images[:2],), os.path.join(HERE, "classifier.onnx"), input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=14)
        torch.save({"classes": len(concepts), "state": {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}},
                   os.path.join(HERE, "judge.pt"))
        with open(os.path.join(HERE, "labels.json"), "w") as file:
            json.dump({"input": {"name": "image", "size": size, "range": [0, 1], "background": "white"},
                       "labels": [{"id": c["id"], "label": c["label"], "category": c["category"]} for c in concepts],
                       "heldout": report}, file, indent=1)
            file.write("\n")
    print(json.dumps({"done": step, **report}), flush=True)


if __name__ == "__main__":
    main()
