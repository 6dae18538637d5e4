"""Model throughput: audio-seconds per wall-second, FLOPs per audio-second, fraction of matmul FLOP/s.

Runs the model stage's code path (``Enhancer.enhance_windows`` on fixed
``(batch_windows, window)`` batches) without Ray, so it also runs on a GPU
machine that has torch but no Ray.

    python bench/model_throughput.py [--device cpu|cuda] [--threads N] [--seconds S] [--json out.json]
    python bench/model_throughput.py --threads 1 --steps 1 2 3 --set representation=waveform ...
    python bench/model_throughput.py --threads 1 --recipe jobs/configs/train-aigd.yaml
    python bench/model_throughput.py --threads 1 --recipe jobs/configs/train-aigd.yaml --vary image_width=0,512

The model is a recipe's (default ``jobs/configs/train-default.yaml``, any family,
random weights: speed does not depend on them); ``--set`` overrides its fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from model import build_model, config_from_dict  # noqa: E402
from pipeline.inference.enhance import EnhanceConfig, Enhancer  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "jobs/configs/train-default.yaml"


def recipe_model_config(overrides: dict, recipe: Path = RECIPE) -> tuple[str, object]:
    """(model name, config) of a recipe with ``overrides``; read as plain YAML (no Ray, no pyarrow needed)."""
    values = yaml.safe_load(Path(recipe).read_text())
    name = values.get("model_name", "diffgmm")
    return name, config_from_dict(name, {**values["model"], **overrides})


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_flops_per_second(device: str, dtype=torch.float32, n: int = 2048, seconds: float = 2.0) -> float:
    """The machine's measured dense matmul rate: what 'achieved fraction' is relative to."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start)


def flops_per_audio_second(model, samples: int, batch: int, device: str) -> float:
    """FLOPs of the model per audio-second (matmuls and convolutions; FFTs are not counted).

    One ``enhance`` (a "clip" family: one ``enhance_chunk`` of ``samples``, ``batch``
    ignored) under ``FlopCounterMode``. Where that fails (the counter decomposes the
    inverse STFT of odd FFT sizes), every call of the model's top-level modules is
    recorded and replayed instead; a replay misses modules reached through methods
    other than ``forward`` (FUSE's VAE encode/decode), so it is only the fallback.
    """
    clip = getattr(model, "input_unit", "windows") == "clip"
    batch = 1 if clip else batch
    x = torch.randn(samples, device=device) if clip else torch.randn(batch, samples, device=device)

    def call():
        if clip:
            return model.enhance_chunk(x, None, torch.Generator(device).manual_seed(0))
        return model.enhance(x)

    with torch.inference_mode():
        try:
            with FlopCounterMode(display=False) as counter:
                call()
        except (RuntimeError, AssertionError):  # the counter's own iSTFT decomposition
            calls = []
            hooks = [m.register_forward_hook(lambda mod, a, out: calls.append((mod, a))) for m in model.children()]
            call()
            for h in hooks:
                h.remove()
            with FlopCounterMode(display=False) as counter:
                for module, args in calls:
                    module(*args)
    return counter.get_total_flops() / (batch * samples / model.config.sample_rate)


def run(device: str, threads: int, seconds: float, name: str, config, clip_seconds: float = 4.0) -> dict:
    """One config's rate: a windowed family over fixed batches of windows, a "clip" family over one clip of
    ``clip_seconds`` (its cost depends on the clip, not on packing)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    enhancer = Enhancer(build_model(name, config), EnhanceConfig(device=device))
    rate = config.sample_rate
    windows = (
        np.random.default_rng(0).standard_normal((enhancer.config.batch_windows, enhancer.window)).astype(np.float32)
        * 0.1
    )
    clip = enhancer.input_unit == "clip"
    if clip:
        signal = np.resize(windows.reshape(-1), int(clip_seconds * rate))
        call, audio_per_call = (lambda: enhancer.enhance_clip(signal)), signal.size / rate
    else:
        call, audio_per_call = (lambda: enhancer.enhance_windows(windows)), windows.size / rate
    call()  # warm-up
    sync(device)
    audio, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        audio += audio_per_call
    sync(device)
    rate_rt = audio / (time.perf_counter() - start)
    samples = min(signal.size, enhancer.chunk) if clip else enhancer.window
    flops = flops_per_audio_second(enhancer.model, samples, enhancer.config.batch_windows, device)
    peak = matmul_flops_per_second(device)
    return {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "model": name,
        "representation": getattr(config, "representation", "stft"),
        "num_steps": getattr(config, "num_steps", 1),
        "num_components": getattr(config, "num_components", None),
        "params": sum(p.numel() for p in enhancer.model.parameters()),
        "input_unit": enhancer.input_unit,
        "window_seconds": None if clip else enhancer.window / rate,
        "clip_seconds": signal.size / rate if clip else None,
        "batch_windows": None if clip else enhancer.config.batch_windows,
        "audio_seconds_per_second": rate_rt,
        "gflops_per_audio_second": flops / 1e9,
        "achieved_gflops_per_second": flops * rate_rt / 1e9,
        "matmul_gflops_per_second": peak / 1e9,
        "fraction_of_matmul": flops * rate_rt / peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clip-seconds", type=float, default=4.0, help="clip length for a clip family (UDiffSE)")
    parser.add_argument("--steps", type=int, nargs="*", help="reverse steps T to measure (default: the recipe's)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a model config field"
    )
    parser.add_argument(
        "--vary", metavar="FIELD=V1,V2,…", help="measure one config per value of this field, in this run"
    )
    parser.add_argument("--recipe", default=str(RECIPE), help="training recipe whose model to measure (any family)")
    parser.add_argument("--json")
    args = parser.parse_args()
    name, base = recipe_model_config(
        {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}, args.recipe
    )
    # --steps is --vary num_steps=…: one field, one config per value, all measured in this run.
    field, values = ("num_steps", args.steps) if args.steps else (None, [])
    if args.vary:
        field, _, listed = args.vary.partition("=")
        values = [yaml.safe_load(v) for v in listed.split(",")]
    configs = [dataclasses.replace(base, **{field: v}) for v in values] if field else [base]
    results = [run(args.device, args.threads, args.seconds, name, c, args.clip_seconds) for c in configs]
    if field:
        for r, c in zip(results, configs):
            r[field] = getattr(c, field)
    for r in results:
        varied = f" {field}={r[field]}" if args.vary else ""
        print(
            f"{r['device']} threads={r['threads']} {r['model']}{varied} {r['representation']} T={r['num_steps']} K={r['num_components']} "
            f"{r['params'] / 1e6:.2f} M params: "
            f"{r['audio_seconds_per_second']:.1f}x real time, {r['gflops_per_audio_second']:.3f} GFLOP/audio-s, "
            f"{r['achieved_gflops_per_second']:.1f} GFLOP/s achieved = {100 * r['fraction_of_matmul']:.1f}% "
            f"of measured matmul {r['matmul_gflops_per_second']:.1f} GFLOP/s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
