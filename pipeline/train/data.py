"""Training data stages: corpus keys, on-the-fly mixing, paired crops, clean-only crops, the validation set.

Every stage turns an example index into a (noisy, clean) pair (the clean-only stage gives
(clean, clean): its families' losses ignore ``noisy``): a Ray Data stage in the Ray
executor (``__call__`` on a batch of ids), a map-style dataset (``stage[i]``) for torch's
DataLoader in the local one, so both executors see the same examples. Example *i* is drawn
from ``default_rng([seed, i])``: a run, a resumed run and a rerun see exactly the same examples.
"""

from __future__ import annotations

import numpy as np

from pipeline.audio.mixing import MixConfig, clean_example, indexed_clean_example, indexed_example
from pipeline.core import storage
from pipeline.train.configs import TrainConfig

NOISY, CLEAN = "noisy", "clean"


def paired_keys(clean_uri: str, noisy_uri: str, config: storage.StorageConfig) -> list[str]:
    """Relative keys present under both prefixes, sorted."""
    from pipeline.train.steps import list_audio

    return sorted(set(list_audio(clean_uri, config)) & set(list_audio(noisy_uri, config)))


def load_pair(
    clean_uri: str, noisy_uri: str, key: str, rate: int, config: storage.StorageConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) mono at ``rate``, cut to their common length."""
    from pipeline.audio.codec import load_mono

    noisy = load_mono(storage.join(noisy_uri, key), rate, config)
    clean = load_mono(storage.join(clean_uri, key), rate, config)
    size = min(len(noisy), len(clean))
    return noisy[:size], clean[:size]


def corpus_keys(config: TrainConfig) -> dict[str, list[str]]:
    """Train/validation split of the corpora's keys (speakers never straddle it)."""
    from pipeline.train.steps import list_audio, split_corpus

    d = config.data
    if d.mode == "paired":
        train, valid = split_corpus(
            paired_keys(d.paired_clean_uri, d.paired_noisy_uri, config.storage),
            d.clean_holdout_fraction,
            by_speaker=True,
        )
        return {"train": train, "valid": valid}
    clean = [
        k for k in list_audio(d.clean_uri, config.storage) if not k.rsplit("/", 1)[-1].startswith(d.exclude_prefixes)
    ]
    clean_train, clean_valid = split_corpus(clean, d.clean_holdout_fraction, by_speaker=True)
    if d.mode == "clean":
        return {"clean": clean_train, "clean_valid": clean_valid}
    noise = [
        k for k in list_audio(d.noise_uri, config.storage) if not k.rsplit("/", 1)[-1].startswith(d.noise_exclusions)
    ]
    noise_train, noise_valid = split_corpus(noise, d.noise_holdout_fraction, by_speaker=False)
    if not noise_valid:
        noise_valid = noise_train[-1:]
    if d.valid_pairs and not clean_valid and not (d.valid_clean_uri and d.valid_noisy_uri):
        # Held-out speakers are picked by hash: a small corpus can hold none, and validation would divide by zero.
        raise ValueError(
            f"no clean speaker of the {len(clean)} files under {d.clean_uri} falls in the held-out "
            f"{d.clean_holdout_fraction:.0%}: set data.valid_clean_uri and data.valid_noisy_uri to a paired "
            "validation set, or raise data.clean_holdout_fraction"
        )
    return {"clean": clean_train, "noise": noise_train, "clean_valid": clean_valid, "noise_valid": noise_valid}


class MixStage:
    """Turns example indices into (noisy, clean) pairs; holds the clean and noise corpora.

    A Ray Data actor in the Ray executor, a map-style dataset (``stage[i]``)
    for torch's DataLoader in the local one: the same examples either way.
    """

    def __init__(self, config: TrainConfig, clean_keys: list[str], noise_keys: list[str]) -> None:
        from pipeline.train.steps import load_corpus

        rate = config.model.sample_rate
        self.clean = list(load_corpus(config.data.clean_uri, rate, clean_keys, config.storage).values())
        self.noise = list(load_corpus(config.data.noise_uri, rate, noise_keys, config.storage).values())
        self.mix, self.seed = config.mix, config.optim.seed

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return indexed_example(index, self.clean, self.noise, self.mix, self.seed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = [self[int(index)] for index in batch["id"]]
        return {NOISY: np.stack([p[0] for p in pairs]), CLEAN: np.stack([p[1] for p in pairs])}


class CleanStage:
    """Example indices → (clean, clean) pairs of clean speech only (no noise corpus is read); a Ray Data actor or ``stage[i]``."""

    def __init__(self, config: TrainConfig, clean_keys: list[str]) -> None:
        from pipeline.train.steps import load_corpus

        self.clean = list(
            load_corpus(config.data.clean_uri, config.model.sample_rate, clean_keys, config.storage).values()
        )
        self.mix, self.seed = config.mix, config.optim.seed

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        clean = indexed_clean_example(index, self.clean, self.mix, self.seed)
        return clean, clean

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        clean = np.stack([self[int(index)][1] for index in batch["id"]])
        return {NOISY: clean, CLEAN: clean}


class PairCropStage:
    """Example index → a seeded random crop of one paired file (a Ray Data task, or ``stage[i]`` locally)."""

    def __init__(self, config: TrainConfig, keys: list[str]) -> None:
        self.config, self.keys = config, keys

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean), each (segment samples,) float32 at the model rate."""
        from pipeline.audio.codec import fit_length

        c, rate = self.config, self.config.model.sample_rate
        length = int(round(c.mix.segment_seconds * rate))
        rng = np.random.default_rng([c.optim.seed, int(index)])
        key = self.keys[rng.integers(len(self.keys))]
        n, s = load_pair(c.data.paired_clean_uri, c.data.paired_noisy_uri, key, rate, c.storage)
        start = int(rng.integers(0, max(1, len(n) - length + 1)))
        return (
            fit_length(n[start : start + length], length).astype(np.float32),
            fit_length(s[start : start + length], length).astype(np.float32),
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = [self[int(index)] for index in batch["id"]]
        return {NOISY: np.stack([p[0] for p in pairs]), CLEAN: np.stack([p[1] for p in pairs])}


def example_stage(config: TrainConfig, keys: dict[str, list[str]]) -> MixStage | CleanStage | PairCropStage:
    """The stage of the configured data mode (``stage[i]`` is example *i*)."""
    if config.data.mode == "mix":
        return MixStage(config, keys["clean"], keys["noise"])
    if config.data.mode == "clean":
        return CleanStage(config, keys["clean"])
    return PairCropStage(config, keys["train"])


def build_train_dataset(config: TrainConfig, keys: dict[str, list[str]], first_example: int):
    """Examples [first_example, total) of the whole run, in order; each worker streams its shard."""
    import pyarrow as pa
    import ray

    from pipeline.core.runs import split_blocks

    total = config.optim.total_steps * config.optim.batch_size * config.scaling.num_workers
    # Indices are built in memory: no read tasks, which would each want a whole CPU
    # next to the training workers.
    ids = np.arange(first_example, total, dtype=np.int64)
    ds = ray.data.from_arrow(split_blocks(pa.table({"id": ids}), config.optim.batch_size * 8))
    if config.data.mode == "clean":
        return ds.map_batches(
            CleanStage,
            fn_constructor_kwargs={"config": config, "clean_keys": keys["clean"]},
            batch_size=config.optim.batch_size,
            compute=ray.data.ActorPoolStrategy(size=config.scaling.data_actors),
            num_cpus=config.scaling.cpus_per_data_actor,
        )
    if config.data.mode == "mix":
        return ds.map_batches(
            MixStage,
            fn_constructor_kwargs={"config": config, "clean_keys": keys["clean"], "noise_keys": keys["noise"]},
            batch_size=config.optim.batch_size,
            compute=ray.data.ActorPoolStrategy(size=config.scaling.data_actors),
            num_cpus=config.scaling.cpus_per_data_actor,
        )
    return ds.map_batches(
        PairCropStage(config, keys["train"]),
        batch_size=config.optim.batch_size,
        num_cpus=config.scaling.cpus_per_data_actor,
    )


def data_summary(config: TrainConfig, keys: dict[str, list[str]]) -> dict:
    """What a checkpoint says about its training data: the mode, how many clean and noise files (``"none"``: no noise at all)."""
    d = config.data
    if d.mode == "paired":
        return {"data_mode": d.mode, "pairs_files": len(keys["train"]), "noise_files": f"paired: {d.paired_noisy_uri}"}
    noise = len(keys["noise"]) if d.mode == "mix" else "none"
    # A model compared on the held-out-noise-type set says which kinds it never heard.
    unheard = {"excluded_noise_kinds": list(d.exclude_noise_kinds)} if d.mode == "mix" and d.exclude_noise_kinds else {}
    return {"data_mode": d.mode, "clean_files": len(keys["clean"]), "noise_files": noise, **unheard}


def validation_set(config: TrainConfig, keys: dict[str, list[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Held-out (noisy, clean) pairs: a paired validation prefix if given, else held-out speakers × noises.

    Clean mode: (clean, clean) segments of held-out speakers (``valid_pairs`` of
    ``valid_segment_seconds``, seeded by ``valid_seed``), scored by the family's loss.
    """
    from pipeline.train.steps import load_corpus, validation_pairs

    d, rate = config.data, config.model.sample_rate
    if d.mode == "clean":
        clean = list(load_corpus(d.clean_uri, rate, keys["clean_valid"], config.storage).values())
        if not clean:
            raise ValueError(
                f"no held-out clean speech under {d.clean_uri}: raise data.clean_holdout_fraction (now {d.clean_holdout_fraction})"
            )
        vmix = MixConfig(**{**config.mix.__dict__, "segment_seconds": d.valid_segment_seconds})
        rng = np.random.default_rng(d.valid_seed)
        segments = [clean_example(clean[i % len(clean)], vmix, rng) for i in range(d.valid_pairs)]
        return [(s, s) for s in segments]
    if d.valid_clean_uri and d.valid_noisy_uri:
        names = paired_keys(d.valid_clean_uri, d.valid_noisy_uri, config.storage)
        return [
            load_pair(d.valid_clean_uri, d.valid_noisy_uri, k, rate, config.storage) for k in names[: d.valid_pairs]
        ]
    if d.mode == "paired":
        return [
            load_pair(d.paired_clean_uri, d.paired_noisy_uri, k, rate, config.storage)
            for k in keys["valid"][: d.valid_pairs]
        ]
    clean = list(load_corpus(d.clean_uri, rate, keys["clean_valid"], config.storage).values())
    noise = list(load_corpus(d.noise_uri, rate, keys["noise_valid"], config.storage).values())
    vmix = MixConfig(**{**config.mix.__dict__, "segment_seconds": d.valid_segment_seconds})
    return validation_pairs(clean, noise, vmix, d.valid_pairs, seed=d.valid_seed)
