"""``diffgmm enhance``: denoise a few local files in this process, without Ray."""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)


def format_stats(stats: dict) -> str:
    """The model's scalar per-clip stats under the family's own names (``  gmm_nll=1.234``); lists are left out."""
    return "".join(f"  {k}={v:.3f}" for k, v in stats.items() if isinstance(v, (int, float)))


def run(args) -> int:
    from pipeline.audio.codec import AudioError, decode, encode
    from pipeline.core import storage
    from pipeline.core.checkpoints import load_model
    from pipeline.inference.enhance import EnhanceConfig
    from pipeline.inference.peer import make_enhancer  # a family's Enhancer, or a peer's (deepfilternet3)

    loaded = load_model(args.checkpoint)
    enhancer = make_enhancer(loaded.model, EnhanceConfig(device=args.device))
    failures = 0
    for path in args.inputs:
        start = time.perf_counter()
        try:
            audio = decode(storage.read_bytes(path))
        except (AudioError, OSError) as exc:
            failures += 1
            print(f"error  {path}: {exc}")
            continue
        enhanced, stats = enhancer.enhance(audio.samples if audio.channels > 1 else audio.samples[0], audio.sample_rate)
        target = os.path.join(args.output_dir, os.path.basename(path))
        storage.write_bytes(target, encode(enhanced, audio.sample_rate, audio.format, audio.subtype))
        seconds = time.perf_counter() - start
        print(
            f"ok     {path} -> {target}  {audio.duration_seconds:.2f} s audio in {seconds:.2f} s{format_stats(stats)}"
        )
    print(f"{len(args.inputs) - failures} enhanced, {failures} failed, model {loaded.model_id}")
    return 1 if failures else 0
