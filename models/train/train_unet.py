"""Train the latent U-Net as a v-prediction diffusion model on zero-terminal-SNR betas, conditioned by the pretrained
(frozen) text encoder, for a wall-clock budget — resumably, across sessions and machines.

    OMP_WAIT_POLICY=PASSIVE nice -n 19 /usr/bin/python3 train_unet.py --resume --minutes 120 --threads 1 >> work/unet.log 2>&1 &
    /usr/bin/python3 train_unet.py --measure            # seconds per step and samples per second, then exit

Needs work/dataset.json, work/scenes.json and work/latents.pt (train_vae.py) and the text encoder
(work/text_encoder.pt from train_text.py, or the committed state). See resume.sh for a fresh clone.

- Scenes are drawn by kind (plain 40 %, background 15 %, small 10 %, position 20 %, pair 15 %) and captioned anew at
  every step (scenes.caption); 10 % of captions are empty (the unconditional input for guidance).
- Timesteps are biased towards high noise (t = 1000·√u), where a sample's identity is decided.
- The learning rate is a function of the global step (warm-up, then cosine to 10 % at --total-steps, flat after), so a
  resume continues the schedule instead of restarting it; EMA of the weights (decay up to 0.9995) is what ships.
- Every --checkpoint-minutes: work/unet.pt (everything, optimizer included) and the compact resumable state in
  --state-dir (float16 weights and EMA, step, the text encoder, VAE and tokenizer it was trained with), ≤ 30 MB, each
  file ≤ 16 MiB, replaced in place. Every --eval-minutes it logs, on the EMA weights, the t = 999 gain ratio
  (L_empty − L_true) / (L_empty − L_oracle) on the plain scenes (oracle: the concept's mean latent) and, once
  models/eval/judge.pt exists, the judge's top-1 on the decoded one-step predictions. Lines go to stdout and to
  --state-dir/train_log.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

from clip_bpe import EOS, encode
from nets import KLAutoencoder, TextEncoder, UNet
from scenes import caption
from train_vae import load_scenes

TRAIN_STEPS = 1000
CAPTION_DROPOUT = 0.1
UNET_CHANNELS = (64, 128, 128)
ATTENTION_LEVELS = (False, True, True)
KIND_WEIGHTS = {"plain": 0.40, "background": 0.15, "small": 0.10, "position": 0.20, "pair": 0.15}
EMA_DECAY = 0.9995
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_STATE = os.path.join(HERE, "state")
JUDGE = os.path.join(HERE, "..", "eval", "judge.pt")


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


def learning_rate(step: int, base: float, warmup: int, total: int) -> float:
    progress = min(1.0, step / total)
    return base * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class TokenCache:
    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], max_length: int):
        self.vocab, self.merges, self.max_length, self.cache = vocab, merges, max_length, {}

    def __call__(self, text: str) -> list[int]:
        """Exactly what the engine feeds the text encoder: BOS, content truncated to fit, EOS, EOS padding."""
        if text not in self.cache:
            ids = encode(text, self.vocab, self.merges)
            content = ids[1:-1][: self.max_length - 2]
            ids = [ids[0], *content, self.vocab[EOS]]
            self.cache[text] = ids + [self.vocab[EOS]] * (self.max_length - len(ids))
        return self.cache[text]


def half(state: dict) -> dict:
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu() for k, v in state.items()}


def full(state: dict) -> dict:
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def load_text_encoder(saved: dict) -> TextEncoder:
    encoder = TextEncoder(len(saved["vocab"]), saved["max_length"], saved["text_width"], saved["text_layers"],
                          saved["text_heads"], saved.get("embedding_dim"))
    encoder.load_state_dict(full(saved["text_encoder"]))
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="work")
    parser.add_argument("--state-dir", default=DEFAULT_STATE)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--total-steps", type=int, default=40_000, help="where the cosine schedule reaches its floor")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0)
    parser.add_argument("--eval-minutes", type=float, default=10.0)
    parser.add_argument("--resume", action="store_true", help="continue from work/unet.pt, else from --state-dir")
    parser.add_argument("--measure", action="store_true", help="time a few steps and exit")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (then raise --batch)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    seed = int(time.time()) if args.resume else 0
    torch.manual_seed(seed)
    rng = random.Random(seed)
    os.makedirs(args.state_dir, exist_ok=True)

    dataset = json.load(open(f"{args.work}/dataset.json"))
    concepts = dataset["concepts"]
    scenes = load_scenes(args.work)
    latents_file = torch.load(f"{args.work}/latents.pt", map_location="cpu")
    scaling_factor = latents_file["scaling_factor"]
    latent_mean, latent_std = latents_file["mean"], (0.5 * latents_file["logvar"]).exp()
    if len(latent_mean) != len(scenes):
        raise SystemExit(f"work/latents.pt has {len(latent_mean)} scenes, work/scenes.json {len(scenes)}: rerun train_vae.py")
    # A pair of something with no plural ("two popcorns") is never captioned, so its pair scenes are not drawn.
    by_kind = {kind: [i for i, s in enumerate(scenes) if s.kind == kind and (kind != "pair" or concepts[s.concept]["plural"])]
               for kind in KIND_WEIGHTS}
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())

    resumed_full = args.resume and os.path.exists(f"{args.work}/unet.pt")
    resumed_state = args.resume and not resumed_full and os.path.exists(f"{args.state_dir}/progress.json")
    text_saved = torch.load(f"{args.state_dir}/text_encoder.pt" if resumed_state else f"{args.work}/text_encoder.pt", map_location="cpu")
    text_encoder = load_text_encoder(text_saved).to(device)
    tokens = TokenCache(text_saved["vocab"], [tuple(m) for m in text_saved["merges"]], text_saved["max_length"])
    context_dim = text_saved["text_width"]
    empty_ids = tokens("")

    unet = UNet(context_dim, UNET_CHANNELS, attention_levels=ATTENTION_LEVELS)
    ema_unet = UNet(context_dim, UNET_CHANNELS, attention_levels=ATTENTION_LEVELS)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01)
    step, elapsed_before_s, rewarm_from = 0, 0.0, None
    if resumed_full:
        saved = torch.load(f"{args.work}/unet.pt", map_location="cpu")
        unet.load_state_dict(saved["unet"]), ema_unet.load_state_dict(saved["ema_unet"])
        step, elapsed_before_s = saved["step"], saved["elapsed_s"]
    elif resumed_state:
        progress = json.load(open(f"{args.state_dir}/progress.json"))
        unet.load_state_dict(full(torch.load(f"{args.state_dir}/unet.pt", map_location="cpu")))
        ema_unet.load_state_dict(full(torch.load(f"{args.state_dir}/ema_unet.pt", map_location="cpu")))
        step, elapsed_before_s = progress["step"], progress["elapsed_s"]
        # The compact state carries no optimizer moments: ramp the rate up again over a few hundred steps.
        rewarm_from = step
    else:
        ema_unet.load_state_dict(unet.state_dict())
    unet.to(device), ema_unet.to(device)
    if resumed_full:
        optimizer.load_state_dict(saved["optimizer"])
    ema_parameters = list(ema_unet.parameters())
    for p in ema_parameters:
        p.requires_grad_(False)
    parameters = list(unet.parameters())

    alphas_cumprod = zero_terminal_snr_alphas_cumprod().to(device)
    vae = KLAutoencoder()
    vae.load_state_dict(full(torch.load(f"{args.state_dir}/vae.pt" if resumed_state else f"{args.work}/vae.pt", map_location="cpu")))
    vae.eval().to(device)
    probe = GainProbe(scenes, concepts, latent_mean, scaling_factor, tokens, text_encoder, device)

    def log(entry: dict) -> None:
        line = json.dumps(entry)
        print(line, flush=True)
        with open(f"{args.state_dir}/train_log.jsonl", "a") as file:
            file.write(line + "\n")

    log({"start": step, "resumed": "full" if resumed_full else "state" if resumed_state else "new", "scenes": len(scenes),
         "unet_params": sum(p.numel() for p in parameters), "threads": args.threads, "batch": args.batch,
         "total_steps": args.total_steps, "date": time.strftime("%Y-%m-%d %H:%M")})

    def save() -> None:
        elapsed = elapsed_before_s + time.time() - started
        torch.save({"unet": unet.state_dict(), "ema_unet": ema_unet.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": step, "elapsed_s": elapsed, "unet_channels": UNET_CHANNELS, "attention_levels": ATTENTION_LEVELS,
                    "context_dim": context_dim, "scaling_factor": scaling_factor}, f"{args.work}/unet.pt.tmp")
        os.replace(f"{args.work}/unet.pt.tmp", f"{args.work}/unet.pt")
        write_state(args.state_dir, {
            "unet.pt": half(unet.state_dict()), "ema_unet.pt": half(ema_unet.state_dict()),
            "text_encoder.pt": {**text_saved, "text_encoder": half(text_saved["text_encoder"])},
            "vae.pt": half(vae.state_dict()),
        }, {"step": step, "elapsed_s": round(elapsed), "unet_channels": UNET_CHANNELS, "attention_levels": ATTENTION_LEVELS,
            "context_dim": context_dim, "scaling_factor": scaling_factor, "total_steps": args.total_steps, "lr": args.lr,
            "batch": args.batch, "ema_decay": EMA_DECAY})

    budget_s = args.minutes * 60
    started = time.time()
    last_checkpoint = last_eval = started
    losses: list[float] = []
    while time.time() - started < budget_s:
        lr = learning_rate(step, args.lr, args.warmup, args.total_steps)
        if rewarm_from is not None:
            lr *= min(1.0, (step - rewarm_from + 1) / 300)
        for group in optimizer.param_groups:
            group["lr"] = lr

        index = torch.tensor([rng.choice(by_kind[rng.choices(kinds, weights)[0]]) for _ in range(args.batch)])
        x0 = ((latent_mean[index] + latent_std[index] * torch.randn_like(latent_mean[index])) * scaling_factor).to(device)
        texts = ["" if rng.random() < CAPTION_DROPOUT else caption(scenes[i], concepts[scenes[i].concept], rng) for i in index.tolist()]
        with torch.no_grad():
            context, _ = text_encoder(torch.tensor([tokens(text) for text in texts], device=device))

        t = (TRAIN_STEPS * torch.rand(args.batch, device=device).sqrt()).long().clamp(max=TRAIN_STEPS - 1)
        alpha_bar = alphas_cumprod[t][:, None, None, None]
        noise = torch.randn_like(x0)
        noisy = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
        target = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
        prediction = unet(noisy, t, context)
        loss = F.mse_loss(prediction, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        step += 1
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema_p, p in zip(ema_parameters, parameters):
                ema_p.mul_(decay).add_(p.detach(), alpha=1 - decay)
        losses.append(loss.item())
        if args.measure and step == 12:
            seconds = (time.time() - started) / 12
            print(json.dumps({"s_per_step": round(seconds, 3), "samples_per_s": round(args.batch / seconds, 1),
                              "steps_per_hour": round(3600 / seconds)}), flush=True)
            return
        if step % 100 == 0:
            log({"step": step, "s": round(elapsed_before_s + time.time() - started), "v_mse": round(sum(losses) / len(losses), 5),
                 "lr": round(lr, 7)})
            losses = []
        if time.time() - last_eval > args.eval_minutes * 60:
            log({"eval": step, **probe.measure(ema_unet, alphas_cumprod, vae)})
            last_eval = time.time()
        if time.time() - last_checkpoint > args.checkpoint_minutes * 60:
            save()
            last_checkpoint = time.time()
            log({"checkpoint": step})
    save()
    log({"eval": step, **probe.measure(ema_unet, alphas_cumprod, vae)})
    log({"done": step, "minutes": round((time.time() - started) / 60, 1)})


def write_state(directory: str, tensors: dict[str, dict], progress: dict) -> None:
    """Replace the compact state file by file (each written aside, then renamed), progress.json last."""
    for name, value in tensors.items():
        torch.save(value, f"{directory}/{name}.tmp")
        os.replace(f"{directory}/{name}.tmp", f"{directory}/{name}")
    with open(f"{directory}/progress.json.tmp", "w") as file:
        json.dump(progress, file, indent=1)
    os.replace(f"{directory}/progress.json.tmp", f"{directory}/progress.json")


class GainProbe:
    """How much of what the prompt could tell the U-Net it uses where identity is decided (t = 999, pure noise):
    v-MSE with the true label, with the empty prompt, and an oracle that predicts the concept's mean latent."""

    def __init__(self, scenes, concepts, latent_mean, scaling_factor, tokens, text_encoder, device):
        plain = [i for i, s in enumerate(scenes) if s.kind == "plain" and s.style in ("noto", "twemoji")]
        self.x0 = (latent_mean[plain] * scaling_factor).to(device)
        self.concept = torch.tensor([scenes[i].concept for i in plain], device=device)
        all_plain = [i for i, s in enumerate(scenes) if s.kind == "plain"]
        by_concept: dict[int, list[int]] = {}
        for i in all_plain:
            by_concept.setdefault(scenes[i].concept, []).append(i)
        means = torch.stack([latent_mean[by_concept[c]].mean(dim=0) for c in range(len(concepts))]) * scaling_factor
        self.oracle = means.to(device)[self.concept]
        self.device = device
        with torch.no_grad():
            self.true_context = text_encoder(torch.tensor([tokens(concepts[c]["label"]) for c in self.concept.tolist()], device=device))[0]
            self.empty_context = text_encoder(torch.tensor([tokens("")] * len(plain), device=device))[0]
        self.scaling = scaling_factor
        self.judge = None

    @torch.no_grad()
    def measure(self, unet, alphas_cumprod, vae) -> dict:
        t = torch.full((len(self.x0),), TRAIN_STEPS - 1, device=self.device)
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(self.x0.shape, generator=generator).to(self.device)
        alpha_bar = alphas_cumprod[-1]
        noisy = alpha_bar.sqrt() * self.x0 + (1 - alpha_bar).sqrt() * noise
        target = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * self.x0
        predictions = {}
        for name, context in (("true", self.true_context), ("empty", self.empty_context)):
            predictions[name] = torch.cat([unet(noisy[k:k + 128], t[k:k + 128], context[k:k + 128]) for k in range(0, len(t), 128)])
        oracle_v = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * self.oracle
        loss = {name: F.mse_loss(p, target).item() for name, p in predictions.items()}
        loss["oracle"] = F.mse_loss(oracle_v, target).item()
        result = {f"l_{k}": round(v, 4) for k, v in loss.items()}
        result["gain_ratio"] = round((loss["empty"] - loss["true"]) / max(1e-8, loss["empty"] - loss["oracle"]), 4)
        judge = self.load_judge()
        if judge is not None:
            x0 = alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * predictions["true"]
            images = torch.cat([vae.decode(x0[k:k + 128] / self.scaling) for k in range(0, len(x0), 128)])
            logits = judge(images.add(1).div(2).clamp(0, 1))
            result["judge_top1_one_step"] = round((logits.argmax(dim=1) == self.concept).float().mean().item(), 4)
            result["judge_top5_one_step"] = round((logits.topk(5, dim=1).indices == self.concept[:, None]).any(dim=1).float().mean().item(), 4)
        return result

    def load_judge(self):
        if self.judge is None and os.path.exists(JUDGE):
            sys.path.insert(0, os.path.dirname(JUDGE))
            from judge import load_judge  # models/eval/judge.py; the weights come from models/eval/train_classifier.py
            self.judge = load_judge(JUDGE).to(self.device)
        return self.judge


if __name__ == "__main__":
    main()
