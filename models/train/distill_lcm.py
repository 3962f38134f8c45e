"""Distil the default model's U-Net into a few-step student by latent consistency distillation (LCM, Luo et al. 2023).

    OMP_WAIT_POLICY=PASSIVE nice -n 19 /usr/bin/python3 distill_lcm.py --minutes 120 --threads 1 >> work/lcm.log 2>&1 &

Why LCM rather than progressive distillation: one run gives a student for any step count from 1 to 4 (progressive
distillation needs a round per halving, each as long as this), it runs with the `lcm` sampler the engine already has,
and the teacher's classifier-free guidance is distilled in, so the student runs without the unconditional pass — half
the U-Net work per step on top of the fewer steps.

- Teacher: the EMA U-Net of the committed state (state/ema_unet.pt), frozen, with guidance --guidance (the shipped
  default). Student: initialised from the teacher, same architecture and ONNX interface (it still predicts v).
- Each step: scene latents x0 and a caption (scenes.caption) as in training; a timestep t_{n+k} from the LCM schedule
  {19, 39, …, 999} (k = 20, 50 DDIM steps over the 1000 training steps) and its noisy x_{t_{n+k}}; the teacher takes
  one guided DDIM step to t_n; the target is the EMA student's consistency output f(x_{t_n}, t_n), the student's own is
  f(x_{t_{n+k}}, t_{n+k}); loss = ‖f_student − f_target‖² over latents. f(x, t) = c_skip(t)·x + c_out(t)·x̂0 with
  diffusers' LCMScheduler boundary scalings (σ_data 0.5, timestep scaling 10), x̂0 from the v-prediction; at t = 19
  the target is the teacher's step itself (f ≈ x̂0 there, c_skip ≈ 0).
- Checkpoints every --checkpoint-minutes to state-lcm/ (float16 weights and EMA, step, log), resumable with --resume.

Writes state-lcm/{unet.pt, ema_unet.pt, progress.json, train_log.jsonl}. `export.py --unet-weights
state-lcm/ema_unet.pt --out DIR` turns the EMA student into a model folder; `npm run bench:fast -- --student DIR`
measures it against the teacher.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

from nets import UNet
from scenes import caption
from train_unet import (KIND_WEIGHTS, TRAIN_STEPS, TokenCache, full, half, load_text_encoder, write_state,
                        zero_terminal_snr_alphas_cumprod)
from train_vae import load_scenes

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 20
LCM_TIMESTEPS = list(range(SKIP - 1, TRAIN_STEPS, SKIP))  # 19, 39, ..., 999
SIGMA_DATA = 0.5
TIMESTEP_SCALING = 10.0
TARGET_EMA = 0.95
SHIPPED_EMA = 0.999


def boundary_scalings(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' LCMScheduler.get_scalings_for_boundary_condition_discrete."""
    scaled = t.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA ** 2 / (scaled ** 2 + SIGMA_DATA ** 2)
    c_out = scaled / (scaled ** 2 + SIGMA_DATA ** 2) ** 0.5
    return c_skip[:, None, None, None], c_out[:, None, None, None]


def consistency(unet: UNet, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    alpha_bar = alphas_cumprod[t][:, None, None, None]
    x0 = alpha_bar.sqrt() * x - (1 - alpha_bar).sqrt() * unet(x, t, context)
    c_skip, c_out = boundary_scalings(t)
    return c_skip * x + c_out * x0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="work")
    parser.add_argument("--teacher-state", default=os.path.join(HERE, "state"))
    parser.add_argument("--state-dir", default=os.path.join(HERE, "state-lcm"))
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
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
    by_kind = {kind: [i for i, s in enumerate(scenes) if s.kind == kind and (kind != "pair" or concepts[s.concept]["plural"])]
               for kind in KIND_WEIGHTS}
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())

    teacher_progress = json.load(open(f"{args.teacher_state}/progress.json"))
    text_saved = torch.load(f"{args.teacher_state}/text_encoder.pt", map_location="cpu")
    text_encoder = load_text_encoder(text_saved).to(device)
    tokens = TokenCache(text_saved["vocab"], [tuple(m) for m in text_saved["merges"]], text_saved["max_length"])
    width = text_saved["text_width"]
    architecture = dict(channels=tuple(teacher_progress["unet_channels"]), attention_levels=tuple(teacher_progress["attention_levels"]))

    def new_unet() -> UNet:
        return UNet(width, architecture["channels"], attention_levels=architecture["attention_levels"]).to(device)

    teacher = new_unet()
    teacher.load_state_dict(full(torch.load(f"{args.teacher_state}/ema_unet.pt", map_location="cpu")))
    student, target, shipped = new_unet(), new_unet(), new_unet()
    step, elapsed_before_s = 0, 0.0
    if args.resume and os.path.exists(f"{args.state_dir}/progress.json"):
        progress = json.load(open(f"{args.state_dir}/progress.json"))
        student.load_state_dict(full(torch.load(f"{args.state_dir}/unet.pt", map_location="cpu")))
        shipped.load_state_dict(full(torch.load(f"{args.state_dir}/ema_unet.pt", map_location="cpu")))
        target.load_state_dict(student.state_dict())
        step, elapsed_before_s = progress["step"], progress["elapsed_s"]
    else:
        for network in (student, target, shipped):
            network.load_state_dict(teacher.state_dict())
    for network in (teacher, target, shipped):
        network.eval()
        for p in network.parameters():
            p.requires_grad_(False)
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
    alphas_cumprod = zero_terminal_snr_alphas_cumprod().to(device)
    empty = tokens("")

    def log(entry: dict) -> None:
        line = json.dumps(entry)
        print(line, flush=True)
        with open(f"{args.state_dir}/train_log.jsonl", "a") as file:
            file.write(line + "\n")

    def save() -> None:
        write_state(args.state_dir, {"unet.pt": half(student.state_dict()), "ema_unet.pt": half(shipped.state_dict())}, {
            "step": step, "elapsed_s": round(elapsed_before_s + time.time() - started), "teacher_step": teacher_progress["step"],
            "guidance": args.guidance, "skip": SKIP, "batch": args.batch, "lr": args.lr, **{k: teacher_progress[k] for k in
            ("unet_channels", "attention_levels", "context_dim", "scaling_factor")}})

    log({"start": step, "teacher_step": teacher_progress["step"], "guidance": args.guidance, "batch": args.batch,
         "date": time.strftime("%Y-%m-%d %H:%M")})
    started = time.time()
    last_checkpoint = started
    losses: list[float] = []
    while time.time() - started < args.minutes * 60:
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 100)
        index = torch.tensor([rng.choice(by_kind[rng.choices(kinds, weights)[0]]) for _ in range(args.batch)])
        x0 = ((latent_mean[index] + latent_std[index] * torch.randn_like(latent_mean[index])) * scaling_factor).to(device)
        texts = [caption(scenes[i], concepts[scenes[i].concept], rng) for i in index.tolist()]
        with torch.no_grad():
            context = text_encoder(torch.tensor([tokens(text) for text in texts], device=device))[0]
            uncond = text_encoder(torch.tensor([empty], device=device))[0].expand_as(context)
        n = torch.randint(1, len(LCM_TIMESTEPS), (args.batch,))
        t_start = torch.tensor(LCM_TIMESTEPS, device=device)[n]
        t_end = t_start - SKIP
        a_start = alphas_cumprod[t_start][:, None, None, None]
        a_end = alphas_cumprod[t_end][:, None, None, None]
        noise = torch.randn_like(x0)
        x_start = a_start.sqrt() * x0 + (1 - a_start).sqrt() * noise
        with torch.no_grad():
            v_uncond, v_cond = teacher(torch.cat([x_start, x_start]), torch.cat([t_start, t_start]), torch.cat([uncond, context])).chunk(2)
            v = v_uncond + args.guidance * (v_cond - v_uncond)
            x0_teacher = a_start.sqrt() * x_start - (1 - a_start).sqrt() * v
            eps_teacher = a_start.sqrt() * v + (1 - a_start).sqrt() * x_start
            x_end = a_end.sqrt() * x0_teacher + (1 - a_end).sqrt() * eps_teacher
            goal = consistency(target, x_end, t_end, context, alphas_cumprod)
        prediction = consistency(student, x_start, t_start, context, alphas_cumprod)
        loss = F.mse_loss(prediction, goal)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        step += 1
        with torch.no_grad():
            for network, decay in ((target, TARGET_EMA), (shipped, SHIPPED_EMA)):
                for p_network, p in zip(network.parameters(), student.parameters()):
                    p_network.mul_(decay).add_(p.detach(), alpha=1 - decay)
        losses.append(loss.item())
        if args.measure and step == 6:
            seconds = (time.time() - started) / 6
            print(json.dumps({"s_per_step": round(seconds, 3), "steps_per_hour": round(3600 / seconds)}), flush=True)
            return
        if step % 50 == 0:
            log({"step": step, "s": round(elapsed_before_s + time.time() - started), "loss": round(sum(losses) / len(losses), 6)})
            losses = []
        if time.time() - last_checkpoint > args.checkpoint_minutes * 60:
            save()
            last_checkpoint = time.time()
            log({"checkpoint": step})
    save()
    log({"done": step, "minutes": round((time.time() - started) / 60, 1)})


if __name__ == "__main__":
    sys.exit(main())
