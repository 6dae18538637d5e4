"""Write the held-out mixed test set of the shipped recipe as files, for ``diffgmm evaluate``.

    python bench/make_heldout.py /tmp/heldout [--config jobs/configs/train-default.yaml] [--corpora ../shared/corpora]
    python bench/make_heldout.py /tmp/heldout-noise --noise-kinds machinery,underground

Speakers and noise files come from the recipe's held-out split (the ones it
never trains on; by stable hashes of the names, with the recipe's exclusions),
mixed with seed 1234 into 16 pairs of 4 s at 0–20 dB SNR, −35…−15 dBFS, no
augmentation. The recipe's own validation set (the one that picks the best
checkpoint) mixes the same held-out pool with another seed, so these pairs
were never used for a choice.

``--noise-kinds``: the held-out-noise-type set instead. The same held-out
speakers, mixed only with noises of the named kinds
(:data:`pipeline.audio.noise_kinds.NOISE_KINDS`), every file of those kinds in
the noise corpus (not only the recipe's held-out split; still without the
recipe's ``data.exclude_prefixes``). A supervised model compared on it must
have been trained with ``--set data.exclude_noise_kinds=[<the same kinds>]``,
which this prints.

Both write ``pairs.csv`` (pair, clean_key, noise_key, snr_db) beside ``clean/``
and ``noisy/``. Then: ``diffgmm evaluate --clean OUT/clean --noisy OUT/noisy --output …``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402

from pipeline.audio.mixing import MixConfig  # noqa: E402
from pipeline.audio.noise_kinds import is_of_kinds, kind_prefixes  # noqa: E402
from pipeline.core.config import load_yaml  # noqa: E402
from pipeline.train.configs import TrainConfig  # noqa: E402
from pipeline.train.data import corpus_keys  # noqa: E402
from pipeline.train.steps import list_audio, load_corpus, validation_mixtures  # noqa: E402

SEED = 1234


def kinds_noise_keys(config: TrainConfig, kinds: tuple[str, ...]) -> list[str]:
    """Every noise file of ``kinds`` under the recipe's noise corpus, minus its ``exclude_prefixes``; none is an error."""
    d = config.data
    keys = [
        k
        for k in list_audio(d.noise_uri, config.storage)
        if is_of_kinds(k, kinds) and not k.rsplit("/", 1)[-1].startswith(d.exclude_prefixes)
    ]
    if not keys:
        raise ValueError(
            f"no noise file of kind(s) {', '.join(kinds)} under {d.noise_uri} "
            f"(prefixes {', '.join(kind_prefixes(kinds))}, less the recipe's exclude_prefixes)"
        )
    return keys


def make_set(out: str, config_path: str, corpora: str, pairs: int, kinds: tuple[str, ...] = ()) -> dict:
    """Write the set under ``out``; returns {pairs, clean_keys, noise_keys} (the pool drawn from)."""
    config = load_yaml(
        TrainConfig, config_path, {"data.clean_uri": f"{corpora}/clean", "data.noise_uri": f"{corpora}/noise"}
    )
    keys = corpus_keys(config)
    rate = config.model.sample_rate
    clean_keys = keys["clean_valid"]
    noise_keys = kinds_noise_keys(config, kinds) if kinds else keys["noise_valid"]
    clean = list(load_corpus(config.data.clean_uri, rate, clean_keys).values())
    noise = list(load_corpus(config.data.noise_uri, rate, noise_keys).values())
    mixtures = validation_mixtures(clean, noise, MixConfig(segment_seconds=4.0, sample_rate=rate), pairs, seed=SEED)
    for sub in ("clean", "noisy"):
        Path(out, sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, m in enumerate(mixtures):
        sf.write(f"{out}/noisy/pair_{i:02d}.wav", m.noisy, rate, subtype="FLOAT")
        sf.write(f"{out}/clean/pair_{i:02d}.wav", m.clean, rate, subtype="FLOAT")
        rows.append(
            {
                "pair": f"pair_{i:02d}.wav",
                "clean_key": clean_keys[m.clean_index],
                "noise_key": noise_keys[m.noise_index],
                "snr_db": round(m.snr_db, 3),
            }
        )
    with open(f"{out}/pairs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"pairs": len(rows), "clean_keys": clean_keys, "noise_keys": noise_keys}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--config", default=str(ROOT / "jobs/configs/train-default.yaml"))
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared/corpora"))
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument(
        "--noise-kinds",
        default="",
        help="comma-separated kinds (e.g. machinery,underground): the held-out-noise-type set",
    )
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.noise_kinds.split(",") if k.strip())
    try:
        kind_prefixes(kinds)
        made = make_set(args.out, args.config, args.corpora, args.pairs, kinds)
    except (ValueError, FileNotFoundError) as exc:
        print(f"make_heldout: {exc}", file=sys.stderr)
        return 2
    what = f"noise files of kind(s) {', '.join(kinds)}" if kinds else "held-out noise files"
    print(
        f"wrote {made['pairs']} pairs under {args.out} ({len(made['clean_keys'])} held-out speech files, "
        f"{len(made['noise_keys'])} {what})"
    )
    if kinds:
        print(f"train the supervised models without them: --set 'data.exclude_noise_kinds=[{','.join(kinds)}]'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
