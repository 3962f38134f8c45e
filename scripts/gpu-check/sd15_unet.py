"""The PyTorch half of the GPU check (scripts/gpu-check/run.sh): an SD-1.5-architecture UNet with random weights.

Builds Stable Diffusion 1.5's UNet (diffusers' UNet2DConditionModel with SD 1.5's config: channels 320/640/1280/1280,
2 ResBlocks per level, cross-attention transformer blocks over a 768-wide context, 8 heads) in plain PyTorch, with
random weights from a fixed seed, and

1. writes a model folder the engine loads (Optimum layout): unet/ (this UNet, exported to ONNX), a 768-wide random
   text_encoder/, a stand-in vae_decoder/ (1×1 conv + ×8 nearest upsample: the check times the UNet loop, not the
   VAE), and the tokenizer, scheduler and model_index.json of test/fixtures/models/tiny-sd;
2. times PyTorch eager on the same weights: one UNet call on a guided batch (unconditional + conditional, batch 2),
   as the engine's loop makes one call per step;
3. prints one JSON line and writes it to --json.

    python3 scripts/gpu-check/sd15_unet.py --out /tmp/gpu-check/model --json /tmp/gpu-check/torch.json
    python3 scripts/gpu-check/sd15_unet.py --tiny --out /tmp/tiny-unet --json /tmp/tiny-unet/torch.json   # CPU, seconds

--tiny keeps the architecture (4 levels, 2 ResBlocks each, cross-attention) at channels 32/32/64/64, a 32-wide
context and 8×8 latents, in float32 on the CPU: a check of this script, not a figure.

Works with torch 1.13 (Debian's, here) and torch 2.x (the GPU machine's).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURE = os.path.join(REPO, "test", "fixtures", "models", "tiny-sd")

SD15 = dict(channels=(320, 640, 1280, 1280), context=768, heads=8, latent_side=64, tokens=77)
TINY = dict(channels=(32, 32, 64, 64), context=32, heads=2, latent_side=8, tokens=77)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # torch 2's fused kernel (flash / memory-efficient) is what diffusers uses by default; torch 1.13 lacks it.
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(32, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class Attention(nn.Module):
    def __init__(self, dim: int, context: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context, dim, bias=False)
        self.to_v = nn.Linear(context, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        split = lambda t: t.reshape(b, -1, self.heads, d // self.heads).transpose(1, 2)
        out = attention(split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context)))
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """diffusers' Transformer2DModel (conv proj_in/out, as SD 1.5) around one BasicTransformerBlock with a GEGLU MLP."""

    def __init__(self, dim: int, context: int, heads: int):
        super().__init__()
        self.norm = nn.GroupNorm(32, dim, eps=1e-6)
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, context, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.ff_in = nn.Linear(dim, dim * 8)
        self.ff_out = nn.Linear(dim * 4, dim)
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        n1 = self.norm1(t)
        t = t + self.attn1(n1, n1)
        t = t + self.attn2(self.norm2(t), context)
        value, gate = self.ff_in(self.norm3(t)).chunk(2, dim=-1)
        t = t + self.ff_out(value * F.gelu(gate))
        return x + self.proj_out(t.reshape(b, h, w, c).permute(0, 3, 1, 2))


class UNet(nn.Module):
    """SD 1.5's UNet2DConditionModel: CrossAttnDown ×3 + Down, mid (Res, Transformer, Res), Up + CrossAttnUp ×3."""

    def __init__(self, channels: tuple[int, ...], context: int, heads: int, layers: int = 2):
        super().__init__()
        temb = channels[0] * 4
        self.base = channels[0]
        self.time_embedding = nn.Sequential(nn.Linear(channels[0], temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(4, channels[0], 3, padding=1)
        last = len(channels) - 1
        skips = [channels[0]]
        self.down = nn.ModuleList()
        cur = channels[0]
        for level, ch in enumerate(channels):
            attn = level != last
            res, trans = nn.ModuleList(), nn.ModuleList()
            for _ in range(layers):
                res.append(ResBlock(cur, ch, temb))
                trans.append(TransformerBlock(ch, context, heads) if attn else nn.Identity())
                cur = ch
                skips.append(ch)
            sample = nn.Conv2d(ch, ch, 3, stride=2, padding=1) if level != last else None
            if sample is not None:
                skips.append(ch)
            self.down.append(nn.ModuleDict(dict(res=res, trans=trans, **({"sample": sample} if sample is not None else {}))))
        self.mid_res1 = ResBlock(cur, cur, temb)
        self.mid_trans = TransformerBlock(cur, context, heads)
        self.mid_res2 = ResBlock(cur, cur, temb)
        self.up = nn.ModuleList()
        for level, ch in enumerate(reversed(channels)):
            attn = level != 0
            res, trans = nn.ModuleList(), nn.ModuleList()
            for _ in range(layers + 1):
                res.append(ResBlock(cur + skips.pop(), ch, temb))
                trans.append(TransformerBlock(ch, context, heads) if attn else nn.Identity())
                cur = ch
            sample = nn.Conv2d(ch, ch, 3, padding=1) if level != last else None
            self.up.append(nn.ModuleDict(dict(res=res, trans=trans, **({"sample": sample} if sample is not None else {}))))
        self.norm_out = nn.GroupNorm(32, cur, eps=1e-5)
        self.conv_out = nn.Conv2d(cur, 4, 3, padding=1)

    def time_proj(self, timestep: torch.Tensor, batch: int, dtype: torch.dtype) -> torch.Tensor:
        # diffusers' Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0): [cos, sin] of t · 10000^(-k/half).
        half = self.base // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timestep.device) / half)
        angles = timestep.float().reshape(-1)[:, None] * freqs[None, :]
        emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).expand(batch, -1)
        return emb.to(dtype)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        temb = self.time_embedding(self.time_proj(timestep, sample.shape[0], sample.dtype))
        x = self.conv_in(sample)
        skips = [x]
        for block in self.down:
            for res, trans in zip(block["res"], block["trans"]):
                x = res(x, temb)
                x = trans(x, encoder_hidden_states) if isinstance(trans, TransformerBlock) else x
                skips.append(x)
            if "sample" in block:
                x = block["sample"](x)
                skips.append(x)
        x = self.mid_res2(self.mid_trans(self.mid_res1(x, temb), encoder_hidden_states), temb)
        for block in self.up:
            for res, trans in zip(block["res"], block["trans"]):
                x = res(torch.cat([x, skips.pop()], dim=1), temb)
                x = trans(x, encoder_hidden_states) if isinstance(trans, TransformerBlock) else x
            if "sample" in block:
                x = block["sample"](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(x)))


class TextEncoder(nn.Module):
    """A stand-in CLIP text encoder of the right width: token + position embeddings and a LayerNorm."""

    def __init__(self, vocab: int, width: int, tokens: int):
        super().__init__()
        self.token = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(tokens, width) * 0.01)
        self.norm = nn.LayerNorm(width)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.token(input_ids) + self.position)


class VaeDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 1)

    def forward(self, latent_sample: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.interpolate(self.conv(latent_sample), scale_factor=8.0, mode="nearest"))


def export(module: nn.Module, args: tuple, path: str, inputs: list[str], outputs: list[str], axes: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    kwargs = dict(input_names=inputs, output_names=outputs, dynamic_axes=axes, opset_version=17, do_constant_folding=True)
    major = int(torch.__version__.split(".")[0])
    if major >= 2:
        # torch ≥ 2.9 exports through dynamo by default; the TorchScript exporter is quicker and gives the names asked for.
        kwargs["dynamo"] = False
    with torch.no_grad():
        torch.onnx.export(module, args, path, **kwargs)
    # A float32 SD-1.5 UNet (3.4 GB) is over protobuf's 2 GB, and the exporter then leaves one file per weight: gather
    # them into one model.onnx_data beside model.onnx, as Optimum does.
    folder = os.path.dirname(path)
    if len(os.listdir(folder)) > 1:
        import onnx

        model = onnx.load(path)
        for stale in os.listdir(folder):
            if stale != "model.onnx":
                os.remove(os.path.join(folder, stale))
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx_data")


def write_folder(out: str, cfg: dict, unet: UNet, dtype: torch.dtype, device: str) -> None:
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    for name in ("model_index.json",):
        shutil.copy(os.path.join(FIXTURE, name), os.path.join(out, name))
    index = json.load(open(os.path.join(out, "model_index.json")))
    for dropped in ("vae_encoder",):
        index.pop(dropped, None)
    json.dump(index, open(os.path.join(out, "model_index.json"), "w"), indent=2)
    shutil.copytree(os.path.join(FIXTURE, "scheduler"), os.path.join(out, "scheduler"))
    shutil.copytree(os.path.join(FIXTURE, "tokenizer"), os.path.join(out, "tokenizer"))
    side = cfg["latent_side"]
    json.dump({"name": "gpu-check-sd15" if side == 64 else "gpu-check-tiny", "defaultSize": [side * 8, side * 8], "defaultSteps": 10, "defaultSampler": "ddim", "defaultGuidance": 7.5},
              open(os.path.join(out, "imagine.json"), "w"), indent=2)

    vocab = json.load(open(os.path.join(FIXTURE, "text_encoder", "config.json")))["vocab_size"]
    text_config = json.load(open(os.path.join(FIXTURE, "text_encoder", "config.json")))
    text_config.update(hidden_size=cfg["context"], projection_dim=cfg["context"])
    os.makedirs(os.path.join(out, "text_encoder"))
    json.dump(text_config, open(os.path.join(out, "text_encoder", "config.json"), "w"), indent=2)
    text = TextEncoder(vocab, cfg["context"], cfg["tokens"]).eval()
    export(text, (torch.zeros(1, cfg["tokens"], dtype=torch.int64),), os.path.join(out, "text_encoder", "model.onnx"),
           ["input_ids"], ["last_hidden_state"], {"input_ids": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}})

    os.makedirs(os.path.join(out, "vae_decoder"))
    shutil.copy(os.path.join(FIXTURE, "vae_decoder", "config.json"), os.path.join(out, "vae_decoder", "config.json"))
    export(VaeDecoder().eval(), (torch.zeros(1, 4, side, side),), os.path.join(out, "vae_decoder", "model.onnx"),
           ["latent_sample"], ["sample"], {"latent_sample": {0: "batch", 2: "height", 3: "width"}, "sample": {0: "batch", 2: "h8", 3: "w8"}})

    os.makedirs(os.path.join(out, "unet"))
    json.dump({
        "_class_name": "UNet2DConditionModel", "sample_size": side, "in_channels": 4, "out_channels": 4,
        "cross_attention_dim": cfg["context"], "block_out_channels": list(cfg["channels"]), "layers_per_block": 2,
        "attention_head_dim": cfg["heads"],
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    }, open(os.path.join(out, "unet", "config.json"), "w"), indent=2)
    example = (
        torch.randn(2, 4, side, side, device=device, dtype=dtype),
        torch.tensor([999], dtype=torch.int64, device=device),
        torch.randn(2, cfg["tokens"], cfg["context"], device=device, dtype=dtype),
    )
    export(unet, example, os.path.join(out, "unet", "model.onnx"), ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], {
        "sample": {0: "batch_size", 2: "height", 3: "width"},
        "timestep": {0: "steps"},
        "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
        "out_sample": {0: "batch_size", 2: "height", 3: "width"},
    })


def time_eager(unet: UNet, cfg: dict, dtype: torch.dtype, device: str, warmup: int, iterations: int) -> list[float]:
    side = cfg["latent_side"]
    sample = torch.randn(2, 4, side, side, device=device, dtype=dtype)
    context = torch.randn(2, cfg["tokens"], cfg["context"], device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    with torch.no_grad():
        for k in range(warmup + iterations):
            timestep = torch.tensor([999 - 50 * k], dtype=torch.int64, device=device)
            sync()
            started = time.perf_counter()
            unet(sample, timestep, context)
            sync()
            if k >= warmup:
                times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--json", required=True, help="where to write the PyTorch figures")
    parser.add_argument("--tiny", action="store_true", help="a tiny UNet of the same architecture, float32 on the CPU")
    parser.add_argument("--dtype", choices=["float16", "float32"], default=None, help="default: float16 on CUDA, float32 otherwise")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()

    cfg = TINY if args.tiny else SD15
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if not args.tiny and device != "cuda":
        print("The full-size check needs a CUDA GPU for PyTorch; use --tiny on a CPU machine.", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float16 if device == "cuda" else torch.float32)
    torch.manual_seed(1234)
    built = time.perf_counter()
    unet = UNet(cfg["channels"], cfg["context"], cfg["heads"]).eval()
    parameters = sum(p.numel() for p in unet.parameters())
    unet = unet.to(device=device, dtype=dtype)
    exported = time.perf_counter()
    write_folder(args.out, cfg, unet, dtype, device)
    export_s = time.perf_counter() - exported
    times = time_eager(unet, cfg, dtype, device, args.warmup, args.iterations)
    times.sort()
    result = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "parameters": parameters,
        "latent": [2, 4, cfg["latent_side"], cfg["latent_side"]],
        "export_s": round(export_s, 1),
        "build_s": round(exported - built, 1),
        "torch_ms_per_step_median": round(times[len(times) // 2], 2),
        "torch_ms_per_step_min": round(times[0], 2),
        "iterations": args.iterations,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    json.dump(result, open(args.json, "w"), indent=2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
