"""Build the training subset the GPU sprint carries: clean speech and noise, 16 kHz int16, one compressed .npz.

    python bench/prepare_device_subset.py device_data/subset.npz [--max-mib 34] [--recipe jobs/configs/train-aigd-stage2-mag.yaml]

The device machine has numpy and torch but no soundfile, so the audio is
decoded here and stored as int16 arrays (``np.savez_compressed``, zlib),
which numpy alone reads back. The recipe's licence exclusions and its
validation holdout are applied (the holdout files are left out, so the
sprint never trains on what selects models here); files are taken in a
seeded order until the subset would exceed ``--max-mib`` (the working tree
that travels, tracked files included, must stay under 64 MiB). ``device_data/``
is git-ignored; pass it to the device with ``carry``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--max-mib", type=float, default=34.0)
    parser.add_argument("--noise-share", type=float, default=0.35, help="fraction of the budget for noise")
    parser.add_argument("--recipe", default=str(ROOT / "jobs/configs/train-aigd-stage2-mag.yaml"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import yaml

    from pipeline.audio.codec import load_mono
    from pipeline.audio.noise_kinds import kind_prefixes
    from pipeline.train.steps import list_audio, split_corpus

    recipe = yaml.safe_load(Path(args.recipe).read_text())
    data = recipe["data"]
    rate = int(recipe.get("model", {}).get("sample_rate", 16000))
    exclude = tuple(data.get("exclude_prefixes", ()))
    rng = np.random.default_rng(args.seed)
    out: dict[str, np.ndarray] = {}
    manifest = {}
    for kind, uri_key, fraction_key, share in (
        ("clean", "clean_uri", "clean_holdout_fraction", 1 - args.noise_share),
        ("noise", "noise_uri", "noise_holdout_fraction", args.noise_share),
    ):
        uri = str((ROOT / data[uri_key]).resolve()) if not data[uri_key].startswith("/") else data[uri_key]
        skip = (*exclude, *kind_prefixes(data.get("exclude_noise_kinds", ()))) if kind == "noise" else exclude
        keys = [k for k in list_audio(uri) if not Path(k).name.startswith(skip)]
        train, _ = split_corpus(keys, float(data.get(fraction_key, 0.0)), by_speaker=kind == "clean")
        budget = share * args.max_mib * (1 << 20)
        parts, used, names = [], 0, []
        for i in rng.permutation(len(train)):
            audio = np.clip(load_mono(f"{uri}/{train[i]}", rate) * 32767, -32768, 32767).astype(np.int16)
            size = len(zlib.compress(audio.tobytes(), 6))
            if used + size > budget:  # the last file is cut to what fits (at least one second)
                audio = audio[: max(rate, int(len(audio) * (budget - used) / size))]
                used = budget
            parts.append(audio)
            names.append(train[i])
            used += size
            if used >= budget:
                break
        out[kind] = np.concatenate(parts)
        out[f"{kind}_offsets"] = np.cumsum([0, *map(len, parts)]).astype(np.int64)
        manifest[kind] = {"files": len(parts), "seconds": round(len(out[kind]) / rate, 1)}
    out["sample_rate"] = np.array(rate)
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(buf.getvalue())
    print(json.dumps({"out": args.out, "mib": round(len(buf.getvalue()) / (1 << 20), 2), **manifest}))


if __name__ == "__main__":
    main()
