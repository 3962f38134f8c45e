"""Export the trained networks to models/default/ in the Hugging Face Optimum ONNX layout.

    /usr/bin/python3 export.py [--state-dir state] [--out ../default] [--guidance 5] [--steps 20]
    /usr/bin/python3 export.py --unet-weights state-lcm/ema_unet.pt --out /tmp/student   # the few-step student

Reads the compact training state (state/: EMA U-Net, text encoder, VAE, tokenizer) and, when present,
work/upscaler.pt; work/sprites.u8 and work/scenes.json give the plain scenes the latent→RGB preview map is fitted on.
Every graph has a dynamic batch dimension; the U-Net also takes any latent size that is a multiple of 4. Large
weights are stored as float16 and cast back inside the graph, so the arithmetic stays float32.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from clip_bpe import write_vocab_merges
from nets import KLAutoencoder, TextEncoder, UNet, Upscaler
from scenes import load_sprites, render
from train_unet import TRAIN_STEPS, full, load_text_encoder
from train_vae import load_scenes

OPSET = 14


class TextEncoderExport(torch.nn.Module):
    def __init__(self, encoder: TextEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor):
        return self.encoder(input_ids)


class VaeEncoderExport(torch.nn.Module):
    def __init__(self, vae: KLAutoencoder):
        super().__init__()
        self.vae = vae

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        # The posterior mean: img2img stays deterministic for a given seed, and the KL term kept the variance tiny.
        return self.vae.encode(sample)[0]


class VaeDecoderExport(torch.nn.Module):
    def __init__(self, vae: KLAutoencoder):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent_sample)


def write_json(path: str, value: object) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        json.dump(value, file, indent=2)
        file.write("\n")


def export(module: torch.nn.Module, args: tuple, path: str, inputs: list[str], outputs: list[str], axes: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    module.eval()
    torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                      opset_version=OPSET, do_constant_folding=True)


def store_weights_as_float16(path: str, min_elements: int = 1024) -> None:
    """Halve a graph's file size without changing its interface or its arithmetic: each large float32 weight is stored
    as float16 and cast back to float32 where it is read (ORT folds the casts once at load)."""
    model = onnx.load(path)
    graph = model.graph
    kept, casts = [], []
    for initializer in graph.initializer:
        if initializer.data_type != TensorProto.FLOAT or np.prod(initializer.dims) < min_elements:
            kept.append(initializer)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(initializer).astype(np.float16), f"{initializer.name}_fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [initializer.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def fit_latent_rgb(vae_latents: torch.Tensor, images: torch.Tensor, scaling_factor: float) -> dict:
    """Least squares from UNet-space latents to the real images box-averaged to latent size (RGB in [-1, 1])."""
    factor = images.shape[-1] // vae_latents.shape[-1]
    targets = F.avg_pool2d(images, factor).permute(0, 2, 3, 1).reshape(-1, 3).double()
    inputs = (vae_latents * scaling_factor).permute(0, 2, 3, 1).reshape(-1, vae_latents.shape[1]).double()
    design = torch.cat([inputs, torch.ones(len(inputs), 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, targets).solution
    residual = (design @ solution - targets).abs().mean().item()
    return {"matrix": [[round(v, 5) for v in row] for row in solution[:-1].tolist()],
            "bias": [round(v, 5) for v in solution[-1].tolist()], "mean_abs_error": residual}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "state"))
    parser.add_argument("--work", default="work")
    parser.add_argument("--out", default="../default")
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--unet-weights", help="export these U-Net weights instead of state/ema_unet.pt "
                        "(the LCM student: distill_lcm.py's state-lcm/ema_unet.pt)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out

    progress = json.load(open(f"{args.state_dir}/progress.json"))
    vae = KLAutoencoder()
    vae.load_state_dict(full(torch.load(f"{args.state_dir}/vae.pt")))
    vae.eval()
    text_saved = torch.load(f"{args.state_dir}/text_encoder.pt")
    text_encoder = load_text_encoder(text_saved)
    vocab, merges, max_length = text_saved["vocab"], [tuple(m) for m in text_saved["merges"]], text_saved["max_length"]
    width = text_saved["text_width"]
    scaling_factor = progress["scaling_factor"]
    unet = UNet(width, tuple(progress["unet_channels"]), attention_levels=tuple(progress["attention_levels"]))
    unet.load_state_dict(full(torch.load(args.unet_weights or f"{args.state_dir}/ema_unet.pt")))
    unet.eval()

    # SD 1.x's pair only: the engine builds the same tokenizer.json in memory, and the 1.1 MB it would take on disk
    # is what lets the LCM-distilled UNet (unet_lcm/) fit in the folder's 25 MB.
    write_vocab_merges(f"{out}/tokenizer", vocab, merges, max_length=max_length)
    stale = f"{out}/tokenizer/tokenizer.json"
    if os.path.exists(stale):
        os.remove(stale)

    with torch.no_grad():
        ids = torch.full((2, max_length), len(vocab) - 1, dtype=torch.int64)
        ids[:, 0] = len(vocab) - 2
        export(TextEncoderExport(text_encoder), (ids,), f"{out}/text_encoder/model.onnx", ["input_ids"],
               ["last_hidden_state", "pooler_output"],
               {"input_ids": {0: "batch", 1: "sequence"}, "last_hidden_state": {0: "batch", 1: "sequence"}, "pooler_output": {0: "batch"}})
        store_weights_as_float16(f"{out}/text_encoder/model.onnx")
        write_json(f"{out}/text_encoder/config.json", {
            "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": len(vocab),
            "hidden_size": width, "num_hidden_layers": text_saved["text_layers"], "num_attention_heads": text_saved["text_heads"],
            "intermediate_size": 4 * width, "max_position_embeddings": max_length,
            "bos_token_id": len(vocab) - 2, "eos_token_id": len(vocab) - 1, "pad_token_id": len(vocab) - 1,
        })

        sample = torch.randn(2, 4, 16, 16)
        timestep = torch.tensor([999.0, 500.0])
        context = torch.randn(2, max_length, width)
        export(unet, (sample, timestep, context), f"{out}/unet/model.onnx", ["sample", "timestep", "encoder_hidden_states"],
               ["out_sample"], {"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                                "encoder_hidden_states": {0: "batch", 1: "sequence"}, "out_sample": {0: "batch", 2: "height", 3: "width"}})
        # The U-Net is most of the bytes; float16 storage keeps the whole folder under the 25 MB the repo allows.
        store_weights_as_float16(f"{out}/unet/model.onnx")
        write_json(f"{out}/unet/config.json", {
            "_class_name": "UNet2DConditionModel", "sample_size": 16, "in_channels": 4, "out_channels": 4,
            "block_out_channels": list(progress["unet_channels"]), "cross_attention_dim": width,
            "attention_head_dim": 4, "layers_per_block": 1,
        })

        export(VaeEncoderExport(vae), (torch.randn(2, 3, 64, 64),), f"{out}/vae_encoder/model.onnx", ["sample"], ["latent_sample"],
               {"sample": {0: "batch", 2: "height", 3: "width"}, "latent_sample": {0: "batch", 2: "height", 3: "width"}})
        store_weights_as_float16(f"{out}/vae_encoder/model.onnx")
        export(VaeDecoderExport(vae), (torch.randn(2, 4, 16, 16),), f"{out}/vae_decoder/model.onnx", ["latent_sample"], ["sample"],
               {"latent_sample": {0: "batch", 2: "height", 3: "width"}, "sample": {0: "batch", 2: "height", 3: "width"}})
        store_weights_as_float16(f"{out}/vae_decoder/model.onnx")
        vae_config = {
            "_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 64,
            "block_out_channels": list(KLAutoencoder.block_out_channels), "scaling_factor": scaling_factor,
        }
        write_json(f"{out}/vae_encoder/config.json", vae_config)
        write_json(f"{out}/vae_decoder/config.json", vae_config)

        if os.path.exists(f"{args.work}/upscaler.pt"):
            upscaler = Upscaler()
            upscaler.load_state_dict(torch.load(f"{args.work}/upscaler.pt"))
            export(upscaler, (torch.rand(1, 3, 16, 16),), f"{out}/upscaler/model.onnx", ["input"], ["output"],
                   {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}})

    write_json(f"{out}/scheduler/scheduler_config.json", {
        "_class_name": "DDIMScheduler", "num_train_timesteps": TRAIN_STEPS, "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "prediction_type": "v_prediction", "rescale_betas_zero_snr": True,
        "timestep_spacing": "trailing", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 0,
        "thresholding": False,
    })
    write_json(f"{out}/model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae_decoder": ["diffusers", "AutoencoderKL"],
        "vae_encoder": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "DDIMScheduler"],
        "safety_checker": [None, None], "feature_extractor": [None, None], "requires_safety_checker": False,
    })
    meta, sprites = load_sprites(args.work)
    scenes = load_scenes(args.work)
    plain = [i for i, scene in enumerate(scenes) if scene.kind == "plain"]
    images = render(sprites, [scenes[i] for i in plain]).mul(2).sub(1)
    with torch.no_grad():
        plain_latents = torch.cat([vae.encode(chunk)[0] for chunk in images.split(256)])
    latent_rgb = fit_latent_rgb(plain_latents, images, scaling_factor)
    imagine_path = f"{out}/imagine.json"
    imagine = json.load(open(imagine_path)) if os.path.exists(imagine_path) else {}
    write_json(imagine_path, {
        **imagine,
        "name": "imagine-emoji-64",
        "latentRgb": {"matrix": latent_rgb["matrix"], "bias": latent_rgb["bias"]},
        "sizes": [[64, 64]], "defaultSize": [64, 64], "defaultSteps": args.steps, "defaultSampler": "ddim",
        "defaultGuidance": args.guidance,
    })
    total_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(json.dumps({"step": progress["step"], "trained_minutes": round(progress["elapsed_s"] / 60, 1),
                      "latent_rgb_mean_abs_error": round(latent_rgb["mean_abs_error"], 4), "total_mb": round(total_bytes / 1e6, 2)}))


if __name__ == "__main__":
    main()
