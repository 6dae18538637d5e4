"""UDiffSE smoke: a few minutes of score matching on clean speech, then the EM enhancer on one mixture.

Not the train job (that wiring is its own change): a minimal single-process
loop over ``shared/corpora/clean`` with the same speaker holdout as the other
families (:func:`pipeline.train.steps.split_corpus`, fraction 0.1), no noise
files in training. It checks that the held-out DSM loss goes down and that the
clip-level enhance path runs, and reports its cost and SI-SDR.

    OMP_NUM_THREADS=1 python bench/udiffse_smoke.py --train-seconds 150 --json /tmp/udiffse_smoke.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model.udiffse import UDiffSE, UDiffSEConfig, UDiffSELossConfig, enhance_clip, udiffse_loss  # noqa: E402
from pipeline.audio.mixing import active_crop, mix_at_snr  # noqa: E402
from pipeline.quality.metrics import si_sdr_db  # noqa: E402
from pipeline.train.steps import list_audio, load_corpus, split_corpus  # noqa: E402


def segments(signals: list[np.ndarray], count: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy(
        np.stack([active_crop(signals[rng.integers(len(signals))], length, rng) for _ in range(count)])
    ).float()


def network_gflop_per_audio_second(model: UDiffSE, seconds: float = 4.0) -> float:
    """FLOPs of one score-network call per audio-second (convolutions and matmuls; the STFT is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    frames = int(seconds * model.config.sample_rate) // model.config.hop_length + 1
    x = torch.zeros(1, model.config.n_fft // 2 + 1, frames, dtype=torch.complex64)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x, torch.tensor([0.5]))
    return counter.get_total_flops() / 1e9 / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean-uri", default="../shared/corpora/clean")
    ap.add_argument("--noise-uri", default="../shared/corpora/noise")
    ap.add_argument(
        "--noise-key", default="air_conditioner.flac", help="the noise of the enhance check (never used in training)"
    )
    ap.add_argument("--train-files", type=int, default=200)
    ap.add_argument("--train-seconds", type=float, default=150.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--segment-seconds", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--mixture-seconds", type=float, default=4.0)
    ap.add_argument("--snr-db", type=float, default=5.0)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = UDiffSEConfig()
    sr = config.sample_rate

    keys = [k for k in list_audio(args.clean_uri)]
    train_keys, held_keys = split_corpus(keys, 0.1, by_speaker=True)
    rng = np.random.default_rng(0)
    train_keys = list(rng.choice(train_keys, size=min(args.train_files, len(train_keys)), replace=False))
    train = list(load_corpus(args.clean_uri, sr, train_keys).values())
    held = list(load_corpus(args.clean_uri, sr, held_keys[:16]).values())
    seg = int(args.segment_seconds * sr)
    held_batch = segments(held, 8, seg, np.random.default_rng(1))

    model = UDiffSE(config)
    loss_config = UDiffSELossConfig()

    def held_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(
                np.mean(
                    [
                        udiffse_loss(model, None, held_batch, loss_config, torch.Generator().manual_seed(100 + i))[1][
                            "total"
                        ]
                        for i in range(4)
                    ]
                )
            )

    record = {
        "params": sum(p.numel() for p in model.parameters()),
        "gflop_per_call_per_audio_s": network_gflop_per_audio_second(model),
        "train_files": len(train),
        "held_files": len(held),
        "held_speakers_example": held_keys[:3],
        "noise_files_in_training": 0,
        "held_dsm_before": held_loss(),
    }
    optimiser = torch.optim.Adam(model.trainable_parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(0)
    start, step, curve = time.perf_counter(), 0, []
    while time.perf_counter() - start < args.train_seconds:
        model.train()
        optimiser.zero_grad(set_to_none=True)
        loss, parts = udiffse_loss(model, None, segments(train, args.batch, seg, rng), loss_config, g)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        step += 1
        curve.append(parts["total"])
    record.update(
        steps=step,
        train_wall_s=time.perf_counter() - start,
        s_per_step=(time.perf_counter() - start) / step,
        train_loss_first10=float(np.mean(curve[:10])),
        train_loss_last10=float(np.mean(curve[-10:])),
        held_dsm_after=held_loss(),
    )

    # Enhance: a held-out speaker in a noise the prior never saw (training used none).
    model.eval()
    length = int(args.mixture_seconds * sr)
    clean = active_crop(np.concatenate(held), length, np.random.default_rng(2))
    noise = load_corpus(args.noise_uri, sr, [args.noise_key])[args.noise_key]
    noise = np.resize(noise, length)
    noisy, clean = mix_at_snr(clean, noise, args.snr_db)[0], clean
    record["si_sdr_noisy_db"] = si_sdr_db(clean, noisy)
    runs = {}
    for name, overrides in {
        "fast (10,3,1)": {},
        "(10,1,1)": dict(num_em=1),
        "paper (30,5,2)": dict(num_e=30, num_em=5, nbatch=2),
    }.items():
        if name.startswith("paper") and args.mixture_seconds > 4:
            continue
        m = UDiffSE(UDiffSEConfig(**overrides)).eval()
        m.load_state_dict(model.state_dict())
        t0 = time.perf_counter()
        out, stats = enhance_clip(m, torch.from_numpy(noisy).float(), torch.Generator().manual_seed(0))
        wall = time.perf_counter() - t0
        runs[name] = {
            "calls_per_clip": m.config.calls_per_chunk,
            "x_real_time": wall / args.mixture_seconds,
            "si_sdr_db": si_sdr_db(clean, out.numpy()),
            "stats": {k: [round(float(x), 3) for x in v.reshape(-1)] for k, v in stats[0].items()},
        }
    record["enhance"] = runs
    text = json.dumps(record, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
