"""The judge: a classifier of the vocabulary's concepts trained on real emoji images only (train_classifier.py), which
`npm run eval:model` (as classifier.onnx) and the U-Net's training log (as judge.pt) use to tell what a generated
image shows. Input [batch,3,64,64] RGB in [0,1] on white; output logits over models/default/vocabulary.json."""

from __future__ import annotations

import torch
from torch import nn


def judge_network(classes: int) -> nn.Module:
    def stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    # Looking at 32×32 costs a quarter of the compute and loses little: generated 64×64 images are soft anyway.
    return nn.Sequential(nn.AvgPool2d(2), stage(3, 48), stage(48, 96), stage(96, 192), stage(192, 256),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(256, classes))


def load_judge(path: str) -> nn.Module:
    saved = torch.load(path)
    model = judge_network(saved["classes"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in saved["state"].items()})
    model.eval()
    return model
