"""Train the text encoder and the latent U-Net jointly, as a v-prediction diffusion model with zero-terminal-SNR betas.

    nice -n 19 /usr/bin/python3 train_unet.py --minutes 50 > work/unet.log 2>&1 &

Needs work/dataset.json and work/latents.pt (from train_vae.py). Builds the BPE tokenizer from the caption corpus
(work/tokenizer.json, reused when present), then trains for a wall-clock budget and checkpoints every few minutes
to work/unet.pt (raw and EMA weights, the tokenizer, the architecture) so export.py can run at any time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn.functional as F

from clip_bpe import EOS, encode, train_bpe
from nets import TextEncoder, UNet

MAX_LENGTH = 16
VOCAB_SIZE = 2048
TRAIN_STEPS = 1000
CAPTION_DROPOUT = 0.1
STYLE_WORD_PROBABILITY = 0.3
TEXT_WIDTH = 128
TEXT_LAYERS = 3
UNET_CHANNELS = (64, 128, 128)
ATTENTION_LEVELS = (False, True, True)


def zero_terminal_snr_alphas_cumprod() -> torch.Tensor:
    """scaled_linear betas (0.00085-0.012) rescaled as in diffusers' rescale_zero_terminal_snr (Lin et al. 2023)."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, TRAIN_STEPS, dtype=torch.float64) ** 2
    alphas_bar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt ** 2
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    betas = 1.0 - alphas
    # diffusers keeps float32 alphas_cumprod; match it so training and every sampler agree on each timestep.
    return torch.cumprod(1.0 - betas.float(), dim=0)


def load_tokenizer(work: str, captions: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    path = f"{work}/tokenizer.json"
    if os.path.exists(path):
        saved = json.load(open(path))
        return saved["vocab"], [tuple(pair) for pair in saved["merges"]]
    vocab, merges = train_bpe(captions, VOCAB_SIZE)
    json.dump({"vocab": vocab, "merges": merges}, open(path, "w"))
    return vocab, merges


def token_ids(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """Exactly what the engine feeds the text encoder: BOS, content truncated to fit, EOS, EOS padding."""
    ids = encode(text, vocab, merges)
    content = ids[1:-1][: MAX_LENGTH - 2]
    ids = [ids[0], *content, vocab[EOS]]
    return ids + [vocab[EOS]] * (MAX_LENGTH - len(ids))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="work")
    parser.add_argument("--minutes", type=float, default=50.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--measure", action="store_true", help="time a few steps and exit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)

    dataset = json.load(open(f"{args.work}/dataset.json"))
    concepts, records = dataset["concepts"], dataset["records"]
    latents_file = torch.load(f"{args.work}/latents.pt")
    scaling_factor = latents_file["scaling_factor"]
    latent_mean, latent_std = latents_file["mean"], (0.5 * latents_file["logvar"]).exp()

    all_captions = [caption for concept in concepts for caption in concept["captions"]] + ["noto style", "twemoji style"]
    vocab, merges = load_tokenizer(args.work, all_captions)
    empty_ids = torch.tensor(token_ids("", vocab, merges))
    # Every (image, caption) pair pre-tokenized once; a step picks one caption per image.
    caption_ids = [torch.tensor([token_ids(c, vocab, merges) for c in concept["captions"]]) for concept in concepts]
    styled_ids = [
        torch.tensor([token_ids(f"{c}, {record['style']} style", vocab, merges) for c in concepts[record["label"]]["captions"]])
        for record in records
    ]

    text_encoder = TextEncoder(len(vocab), MAX_LENGTH, TEXT_WIDTH, TEXT_LAYERS)
    unet = UNet(TEXT_WIDTH, UNET_CHANNELS, attention_levels=ATTENTION_LEVELS)
    ema_text, ema_unet = TextEncoder(len(vocab), MAX_LENGTH, TEXT_WIDTH, TEXT_LAYERS), UNet(TEXT_WIDTH, UNET_CHANNELS, attention_levels=ATTENTION_LEVELS)
    parameters = list(text_encoder.parameters()) + list(unet.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=0.01)
    step, elapsed_before_s = 0, 0.0
    if args.resume and os.path.exists(f"{args.work}/unet.pt"):
        saved = torch.load(f"{args.work}/unet.pt")
        text_encoder.load_state_dict(saved["text_encoder"]), unet.load_state_dict(saved["unet"])
        ema_text.load_state_dict(saved["ema_text_encoder"]), ema_unet.load_state_dict(saved["ema_unet"])
        optimizer.load_state_dict(saved["optimizer"])
        step, elapsed_before_s = saved["step"], saved["elapsed_s"]
    else:
        ema_text.load_state_dict(text_encoder.state_dict()), ema_unet.load_state_dict(unet.state_dict())
    ema_parameters = list(ema_text.parameters()) + list(ema_unet.parameters())
    for p in ema_parameters:
        p.requires_grad_(False)

    alphas_cumprod = zero_terminal_snr_alphas_cumprod()
    print(json.dumps({"images": len(records), "vocab": len(vocab), "scaling_factor": scaling_factor,
                      "text_params": sum(p.numel() for p in text_encoder.parameters()),
                      "unet_params": sum(p.numel() for p in unet.parameters())}), flush=True)

    def save() -> None:
        state = {
            "text_encoder": text_encoder.state_dict(), "unet": unet.state_dict(),
            "ema_text_encoder": ema_text.state_dict(), "ema_unet": ema_unet.state_dict(),
            "optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed_before_s + time.time() - started,
            "vocab": vocab, "merges": merges, "max_length": MAX_LENGTH, "text_width": TEXT_WIDTH, "text_layers": TEXT_LAYERS,
            "unet_channels": UNET_CHANNELS, "attention_levels": ATTENTION_LEVELS, "scaling_factor": scaling_factor,
        }
        torch.save(state, f"{args.work}/unet.pt.tmp")
        os.replace(f"{args.work}/unet.pt.tmp", f"{args.work}/unet.pt")

    budget_s = args.minutes * 60
    started = time.time()
    last_checkpoint = started
    losses: list[float] = []
    while time.time() - started < budget_s:
        progress = (time.time() - started) / budget_s
        warmup = min(1.0, (step + 1) / 200)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warmup * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

        index = torch.randint(0, len(records), (args.batch,))
        x0 = (latent_mean[index] + latent_std[index] * torch.randn_like(latent_mean[index])) * scaling_factor
        ids = []
        for i in index.tolist():
            if random.random() < CAPTION_DROPOUT:
                ids.append(empty_ids)
                continue
            pool = styled_ids[i] if random.random() < STYLE_WORD_PROBABILITY else caption_ids[records[i]["label"]]
            ids.append(pool[random.randrange(len(pool))])
        ids = torch.stack(ids)

        t = torch.randint(0, TRAIN_STEPS, (args.batch,))
        alpha_bar = alphas_cumprod[t][:, None, None, None]
        noise = torch.randn_like(x0)
        noisy = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
        target = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
        context, _ = text_encoder(ids)
        prediction = unet(noisy, t, context)
        # Unweighted v-MSE: min-SNR-γ's min(snr, γ)/(snr + 1) is zero at the zero-SNR terminal step, which
        # would leave untrained exactly the step every trailing-spaced sampler starts from.
        per_sample = F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))
        loss = per_sample.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        step += 1
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema_p, p in zip(ema_parameters, parameters):
                ema_p.mul_(decay).add_(p.detach(), alpha=1 - decay)
        losses.append(per_sample.mean().item())
        if args.measure and step == 10:
            print(json.dumps({"s_per_step": (time.time() - started) / 10}), flush=True)
            return
        if step % 100 == 0:
            print(json.dumps({"step": step, "s": round(time.time() - started), "v_mse": round(sum(losses) / len(losses), 5),
                              "lr": round(optimizer.param_groups[0]["lr"], 6)}), flush=True)
            losses = []
        if time.time() - last_checkpoint > args.checkpoint_minutes * 60:
            save()
            last_checkpoint = time.time()
            print(json.dumps({"checkpoint": step}), flush=True)
    save()
    print(json.dumps({"done": step, "minutes": round((time.time() - started) / 60, 1)}), flush=True)


if __name__ == "__main__":
    main()
