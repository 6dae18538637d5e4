"""Write the held-out mixed validation set of the default checkpoint's training run as files.

    python bench/make_heldout.py ../shared/corpora /tmp/heldout

Same split (10 % of speakers, 15 % of noise files, by stable hash), same
exclusions and the same seed (1234) as the run that produced
``pipeline/assets/diffgmm-default.pt``: 16 pairs of 4 s at 0–20 dB SNR.
Then: ``diffgmm evaluate --clean /tmp/heldout/clean --noisy /tmp/heldout/noisy --output …``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import soundfile as sf  # noqa: E402

from pipeline.mixing import MixConfig  # noqa: E402
from pipeline.training import list_audio, load_corpus, split_corpus, validation_pairs  # noqa: E402

EXCLUDED_NOISE = ("zalozba_", "air_conditioner.", "forest_1.", "forest_2.", "rain.", "water.", "wind.")


def main(corpora: str, out: str) -> None:
    clean_uri, noise_uri = f"{corpora}/clean", f"{corpora}/noise"
    _, clean_valid = split_corpus(list_audio(clean_uri), 0.1, by_speaker=True)
    noise_keys = [k for k in list_audio(noise_uri) if not k.startswith(EXCLUDED_NOISE)]
    _, noise_valid = split_corpus(noise_keys, 0.15, by_speaker=False)
    clean = list(load_corpus(clean_uri, 16000, clean_valid).values())
    noise = list(load_corpus(noise_uri, 16000, noise_valid).values())
    pairs = validation_pairs(clean, noise, MixConfig(segment_seconds=4.0), 16, seed=1234)
    for sub in ("clean", "noisy"):
        Path(out, sub).mkdir(parents=True, exist_ok=True)
    for i, (noisy, target) in enumerate(pairs):
        sf.write(f"{out}/noisy/pair_{i:02d}.wav", noisy, 16000, subtype="FLOAT")
        sf.write(f"{out}/clean/pair_{i:02d}.wav", target, 16000, subtype="FLOAT")
    print(f"wrote {len(pairs)} pairs under {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
