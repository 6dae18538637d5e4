"""The GPU sprint's training: the best recipe, mixing on the device from the carried subset, bf16 autocast.

    python bench/device_sprint.py --subset device_data/subset.npz --out OUT [--device cuda] [--train-seconds 400]

Self-contained on purpose: the device machine has torch (and numpy, yaml) but
no soundfile and no Ray, and ``pipeline.train`` reads audio through them, so
this imports only ``model/`` (pure torch) and the recipe. What it shares with
``pipeline/train``: the recipe file (model, loss, mix ranges, learning rate),
the family's own loss (``model.spec(name).loss``) and the checkpoint format
(``model.make_checkpoint``), so ``diffgmm evaluate --models sprint=OUT/last.pt``
scores the result here as usual.

Mixing (per step, on the device): a random ``segment_seconds`` crop of a random
clean file and of a random noise file, the noise scaled to an SNR drawn from
the recipe's range, the mixture to a level from its range. The learning rate
warms up, then follows a cosine over the wall-clock budget (the step count is
not known in advance). Writes ``OUT/last.pt`` and ``OUT/sprint.json`` (loss
curve, steps, audio-hours, device-seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import build_model, config_from_dict, make_checkpoint, model_from_checkpoint, spec  # noqa: E402
from model.family import trainable_parameters  # noqa: E402


class DeviceMixer:
    """Clean and noise arrays on the device; ``batch(n)`` → (noisy, clean) (n, segment) float32 mixtures."""

    def __init__(self, subset: dict, mix: dict, device: str, seed: int) -> None:
        self.rate = int(subset["sample_rate"])
        self.segment = int(float(mix.get("segment_seconds", 2.0)) * self.rate)
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.snr = (float(mix.get("snr_db_min", -5.0)), float(mix.get("snr_db_max", 20.0)))
        self.level = (float(mix.get("level_dbfs_min", -35.0)), float(mix.get("level_dbfs_max", -15.0)))
        self.audio, self.starts, self.spans = {}, {}, {}
        for kind in ("clean", "noise"):
            samples = torch.from_numpy(subset[kind].astype(np.float32) / 32768.0)
            # Room for one segment past the end, so crops of short files wrap into silence, not out of range.
            self.audio[kind] = torch.cat([samples, torch.zeros(self.segment)]).to(device)
            offsets = subset[f"{kind}_offsets"]
            self.starts[kind] = torch.as_tensor(offsets[:-1], device=device)
            self.spans[kind] = torch.as_tensor(np.maximum(np.diff(offsets) - self.segment, 1), device=device)

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, device=self.device, generator=self.generator)

    def _crops(self, kind: str, n: int) -> torch.Tensor:
        files = torch.randint(len(self.starts[kind]), (n,), device=self.device, generator=self.generator)
        offset = (torch.rand(n, device=self.device, generator=self.generator) * self.spans[kind][files]).long()
        index = (self.starts[kind][files] + offset)[:, None] + torch.arange(self.segment, device=self.device)
        return self.audio[kind][index]

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        clean, noise = self._crops("clean", n), self._crops("noise", n)
        rms = lambda x: x.pow(2).mean(dim=1, keepdim=True).add(1e-10).sqrt()  # noqa: E731
        snr = self._uniform(n, *self.snr)[:, None]
        noise = noise * rms(clean) / rms(noise) * torch.pow(10.0, -snr / 20)
        noisy = clean + noise
        gain = torch.pow(10.0, self._uniform(n, *self.level)[:, None] / 20) / rms(noisy)
        return noisy * gain, clean * gain


def learning_rate(base: float, fraction: float, elapsed: float, budget: float, warmup_seconds: float) -> float:
    if elapsed < warmup_seconds:
        return base * max(elapsed / warmup_seconds, 0.01)
    progress = min(1.0, (elapsed - warmup_seconds) / max(budget - warmup_seconds, 1e-9))
    return base * (fraction + (1 - fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def main() -> None:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--recipe", default=str(ROOT / "jobs/configs/train-aigd-stage2-mag.yaml"))
    parser.add_argument(
        "--init",
        default=str(ROOT / "pipeline/assets/aigd-default.pt"),
        help="checkpoint to start from (default: the shipped AIGD); 'none' starts fresh",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train-seconds", type=float, default=400.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--dtype", choices=("bfloat16", "float32"), default="bfloat16", help="autocast dtype of the forward pass"
    )
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    recipe = yaml.safe_load(Path(args.recipe).read_text())
    name = recipe.get("model_name", "diffgmm")
    if args.init != "none":
        model, _ = model_from_checkpoint(torch.load(args.init, map_location="cpu", weights_only=True))
        if model.name != name:
            raise SystemExit(f"--init holds a {model.name} model, the recipe trains {name}")
    else:
        model = build_model(name, config_from_dict(name, recipe.get("model", {})))
    family = spec(name)
    loss_config = family.loss_config_cls(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.get("loss", {}).items()}
    )
    model.to(args.device).train()
    optim = recipe.get("optim", {})
    base_lr = float(optim.get("learning_rate", 4e-4))
    parameters = list(trainable_parameters(model))
    optimizer = torch.optim.AdamW(parameters, lr=base_lr)
    # The family's loss draws its own randomness (t, noise) from this one, as pipeline/train does.
    loss_generator = torch.Generator(device=args.device).manual_seed(args.seed + 1)
    with np.load(args.subset) as data:
        subset = {k: data[k] for k in data.files}
    mixer = DeviceMixer(subset, recipe.get("mix", {}), args.device, args.seed)
    if mixer.rate != int(model.config.sample_rate):
        raise SystemExit(f"subset is {mixer.rate} Hz, the model runs at {model.config.sample_rate} Hz")
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else None
    curve, step, begin = [], 0, time.perf_counter()
    while (elapsed := time.perf_counter() - begin) < args.train_seconds:
        lr = learning_rate(
            base_lr, float(optim.get("lr_min_fraction", 0.05)), elapsed, args.train_seconds, 0.05 * args.train_seconds
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        noisy, clean = mixer.batch(args.batch_size)
        optimizer.zero_grad(set_to_none=True)
        # The family's registered loss runs its own forward pass (model/family.py), under autocast as in
        # pipeline.train.steps.train_step.
        with torch.autocast(device_type=torch.device(args.device).type, dtype=dtype, enabled=dtype is not None):
            loss, parts = family.loss(model, noisy, clean, loss_config, loss_generator)
        if not math.isfinite(parts["total"]):
            raise FloatingPointError(f"non-finite loss at step {step}: {parts}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 5.0)
        optimizer.step()
        step += 1
        if step % args.log_every == 0 or step == 1:
            curve.append(
                {
                    "step": step,
                    "seconds": round(time.perf_counter() - begin, 2),
                    "lr": lr,
                    **{k: round(float(v), 5) for k, v in parts.items()},
                }
            )
    train_seconds = time.perf_counter() - begin
    audio_hours = step * args.batch_size * mixer.segment / mixer.rate / 3600
    metadata = {
        "recipe": Path(args.recipe).name,
        "init": Path(args.init).name if args.init != "none" else None,
        "sprint_steps": step,
        "sprint_device": args.device,
        "sprint_dtype": args.dtype,
        "sprint_device_seconds": round(train_seconds, 1),
        "sprint_audio_hours": round(audio_hours, 3),
        "batch_size": args.batch_size,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    model.eval()
    torch.save(make_checkpoint(model.to("cpu"), metadata), Path(args.out) / "last.pt")
    summary = {
        **metadata,
        "model_name": name,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "steps_per_second": round(step / max(train_seconds, 1e-9), 3),
        "audio_seconds_per_second": round(audio_hours * 3600 / max(train_seconds, 1e-9), 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "curve": curve,
    }
    (Path(args.out) / "sprint.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "curve"}))


if __name__ == "__main__":
    main()
