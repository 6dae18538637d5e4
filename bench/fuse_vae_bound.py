"""What a FUSE VAE can give back at best: its round trips on paired clean/noisy clips, scored against clean.

The VAE bounds every FUSE result (docs/model.md, "FUSE"), so this reports, per pair and on
average (PESQ-WB, SI-SDR dB, STOI against the clean reference):

* ``clean_round_trip``: encode → decode the clean clip with its own phase (the VAE's fidelity);
* ``clean_with_noisy_phase`` (``spectrum: magnitude`` only): the clean clip's decoded magnitude
  with the noisy clip's phase: what a perfect latent denoiser would reach;
* ``noisy_round_trip``: encode → decode the noisy clip (what stage-1 validation measures);
* ``noisy``: the input itself.

Each clip runs as one window (the VAE is convolutional over frames).

    python bench/fuse_vae_bound.py --model /work/runs/fusemag/vae-mag-3000/best.pt \\
        --clean /tmp/h19/heldout/clean --noisy /tmp/h19/heldout/noisy --json docs/bench/fuse_vae_bound.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from pipeline.core.checkpoints import load_model  # noqa: E402
from pipeline.quality.metrics import score_all  # noqa: E402

METRICS = ("pesq_wb", "si_sdr_db", "stoi")


@torch.inference_mode()
def round_trips(model, clean: np.ndarray, noisy: np.ndarray) -> dict[str, np.ndarray]:
    """clean, noisy (samples,) float32 at the model's rate → {case: (samples,) float32}."""
    c = model.config
    out = {"noisy": noisy}
    clean_spec = model.spectrum(torch.from_numpy(clean)[None])
    noisy_spec = model.spectrum(torch.from_numpy(noisy)[None])
    clean_decoded = model.vae.decode(model.vae.encode(clean_spec.features)[0])
    out["clean_round_trip"] = model.waveform(clean_decoded, clean_spec)[0].numpy()
    if c.spectrum == "magnitude":
        out["clean_with_noisy_phase"] = model.waveform(
            clean_decoded,
            dataclasses.replace(clean_spec, phase=noisy_spec.phase),
        )[0].numpy()
    noisy_decoded = model.vae.decode(model.vae.encode(noisy_spec.features)[0])
    out["noisy_round_trip"] = model.waveform(noisy_decoded, noisy_spec)[0].numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a FUSE checkpoint (either stage)")
    ap.add_argument("--clean", required=True, type=Path)
    ap.add_argument("--noisy", required=True, type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model).model.eval()
    rate = model.config.sample_rate
    rows = []
    for noisy_path in sorted(args.noisy.iterdir()):
        noisy, sr_n = sf.read(noisy_path, dtype="float32")
        clean, sr_c = sf.read(args.clean / noisy_path.name, dtype="float32")
        if sr_n != rate or sr_c != rate:
            raise SystemExit(f"{noisy_path.name}: expected {rate} Hz, got {sr_n}/{sr_c}; resample the set first")
        for case, estimate in round_trips(model, clean, noisy).items():
            scores = score_all(clean, estimate, rate, METRICS)
            rows.append({"pair": noisy_path.name, "case": case, **{m: scores[m].value for m in METRICS}})
    cases = list(dict.fromkeys(r["case"] for r in rows))
    mean = {c: {m: float(np.nanmean([r[m] for r in rows if r["case"] == c])) for m in METRICS} for c in cases}
    print(f"{'case':24s} " + " ".join(f"{m:>9s}" for m in METRICS))
    for c in cases:
        print(f"{c:24s} " + " ".join(f"{mean[c][m]:9.3f}" for m in METRICS))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "spectrum": model.config.spectrum,
                    "latent_channels": model.config.latent_channels,
                    "mean": mean,
                    "rows": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
