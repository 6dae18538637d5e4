"""Write the held-out mixed test set of the shipped recipe as files, for ``diffgmm evaluate``.

    python bench/make_heldout.py /tmp/heldout [--config jobs/configs/train-default.yaml] [--corpora ../shared/corpora]

Speakers and noise files come from the recipe's held-out split (the ones it
never trains on; by stable hashes of the names, with the recipe's exclusions),
mixed with seed 1234 into 16 pairs of 4 s at 0–20 dB SNR, −35…−15 dBFS, no
augmentation. The recipe's own validation set (the one that picks the best
checkpoint) mixes the same held-out pool with another seed, so these pairs
were never used for a choice.
Then: ``diffgmm evaluate --clean /tmp/heldout/clean --noisy /tmp/heldout/noisy --output …``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402

from pipeline.audio.mixing import MixConfig  # noqa: E402
from pipeline.core.config import load_yaml  # noqa: E402
from pipeline.train.configs import TrainConfig  # noqa: E402
from pipeline.train.data import corpus_keys  # noqa: E402
from pipeline.train.steps import load_corpus, validation_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--config", default=str(ROOT / "jobs/configs/train-default.yaml"))
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared/corpora"))
    parser.add_argument("--pairs", type=int, default=16)
    args = parser.parse_args()
    config = load_yaml(TrainConfig, args.config, {"data.clean_uri": f"{args.corpora}/clean", "data.noise_uri": f"{args.corpora}/noise"})
    keys = corpus_keys(config)
    rate = config.model.sample_rate
    clean = list(load_corpus(config.data.clean_uri, rate, keys["clean_valid"]).values())
    noise = list(load_corpus(config.data.noise_uri, rate, keys["noise_valid"]).values())
    pairs = validation_pairs(clean, noise, MixConfig(segment_seconds=4.0, sample_rate=rate), args.pairs, seed=1234)
    for sub in ("clean", "noisy"):
        Path(args.out, sub).mkdir(parents=True, exist_ok=True)
    for i, (noisy, target) in enumerate(pairs):
        sf.write(f"{args.out}/noisy/pair_{i:02d}.wav", noisy, rate, subtype="FLOAT")
        sf.write(f"{args.out}/clean/pair_{i:02d}.wav", target, rate, subtype="FLOAT")
    print(f"wrote {len(pairs)} pairs under {args.out} ({len(keys['clean_valid'])} held-out speech files, "
          f"{len(keys['noise_valid'])} held-out noise files)")


if __name__ == "__main__":
    main()
