"""The denoise job against a bare single-process loop of the same model over the same files.

    python bench/job_throughput.py --clips 200 --seconds-per-clip 2      # throughput, side by side
    python bench/job_throughput.py --clips 1000 --no-loop                 # peak memory at 1k clips
    python bench/job_throughput.py --clips 10000 --no-loop                # … and at 10k
    python bench/job_throughput.py --long-file-seconds 3600 --no-loop     # one 1-hour file

Peak memory is the largest sum of RSS over this process and every Ray
process, sampled every 0.2 s (the object store's shared pages are counted in
the processes that map them, so this over- rather than under-states).
Both sides use the shipped checkpoint, the same window and batch settings,
decode with soundfile, resample with torchaudio, and write WAV files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import soundfile as sf  # noqa: E402

from pipeline.demo_data import generate_pair  # noqa: E402


class PeakRSS:
    """Samples the summed RSS of this process and all Ray processes in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        total = psutil.Process().memory_info().rss
        for p in psutil.process_iter(["cmdline", "name"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
                if p.pid != os.getpid() and ("ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or "ray/" in cmd):
                    total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_corpus(root: Path, clips: int, seconds: float, long_seconds: float) -> float:
    """Distinct seeded clips, copied under many keys (decoding cost is the same); returns audio seconds."""
    noisy_dir = root / "noisy"
    noisy_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    if long_seconds:
        base, _ = generate_pair(30.0, 5.0, 16000, rng)
        with sf.SoundFile(noisy_dir / "long.wav", "w", 16000, 1, "PCM_16") as f:
            for _ in range(int(long_seconds // 30)):
                f.write(base)
        return long_seconds
    sources = [generate_pair(seconds, 5.0, 16000, rng)[0] for _ in range(min(clips, 16))]
    for i in range(clips):
        sub = noisy_dir / f"d{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"clip_{i:05d}.wav", sources[i % len(sources)], 16000, subtype="PCM_16")
    return clips * seconds


def bare_loop(root: Path, out: Path, clips_per_batch: int, threads: int, enhance) -> float:
    """decode → resample → enhance (windows packed across clips) → resample back → encode → write."""
    import torch

    from pipeline.audio import decode, encode, resample, to_channels
    from pipeline.checkpoints import load_model
    from pipeline.enhance import Enhancer

    torch.set_num_threads(threads)
    enhancer = Enhancer(load_model().model, enhance)
    files = sorted((root / "noisy").rglob("*.wav"))
    start = time.perf_counter()
    for i in range(0, len(files), clips_per_batch):
        batch = files[i : i + clips_per_batch]
        decoded = [decode(p.read_bytes()) for p in batch]
        signals = [resample(to_channels(a.samples, "downmix")[0], a.sample_rate, 16000) for a in decoded]
        for path, audio, (enhanced, _) in zip(batch, decoded, enhancer.enhance_many(signals)):
            target = out / path.relative_to(root / "noisy")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(encode(resample(enhanced, 16000, audio.sample_rate), audio.sample_rate, "WAV", audio.subtype))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds-per-clip", type=float, default=2.0)
    parser.add_argument("--long-file-seconds", type=float, default=0.0)
    parser.add_argument("--workdir", default="/tmp/diffgmm-bench")
    parser.add_argument("--no-loop", action="store_true", help="skip the bare loop (memory runs)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the bare loop")
    parser.add_argument("--actor-threads", type=int, default=2, help="torch threads of the model actor")
    parser.add_argument("--clips-per-batch", type=int, default=8)
    parser.add_argument("--rows-per-block", type=int, default=16)
    parser.add_argument("--cpu-batch-size", type=int, default=4)
    parser.add_argument("--window-seconds", type=float, default=2.0, help="model window (both sides)")
    parser.add_argument("--json")
    args = parser.parse_args()

    import ray

    from pipeline.denoise import ActorConfig, DenoiseConfig, run_denoise
    from pipeline.enhance import EnhanceConfig
    from pipeline.stages import ModelStageConfig, WriteConfig
    from pipeline.windowing import WindowConfig

    enhance = EnhanceConfig(window=WindowConfig(args.window_seconds, min(0.25, args.window_seconds / 5)))

    root = Path(args.workdir)
    shutil.rmtree(root, ignore_errors=True)
    audio_seconds = make_corpus(root, args.clips, args.seconds_per_clip, args.long_file_seconds)
    result = {"clips": 1 if args.long_file_seconds else args.clips, "audio_seconds": audio_seconds}
    if not args.no_loop:
        loop_seconds = bare_loop(root, root / "loop_out", args.clips_per_batch, args.threads, enhance)
        result["loop_audio_seconds_per_second"] = audio_seconds / loop_seconds
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    config = DenoiseConfig(
        input_uri=str(root / "noisy"),
        output_uri=str(root / "job_out"),
        run_id="bench",
        model=ModelStageConfig(torch_threads=args.actor_threads, enhance=enhance),
        actors=ActorConfig(clips_per_batch=args.clips_per_batch),
        rows_per_block=args.rows_per_block,
        cpu_batch_size=args.cpu_batch_size,
        write=WriteConfig(metrics=()),
    )
    with PeakRSS() as memory:
        summary = run_denoise(config)
    result["job_audio_seconds_per_second"] = summary["audio_seconds_per_second"]
    result["job_wall_seconds"] = summary["wall_seconds"]
    result["job_errors"] = summary["errors"]
    result["peak_rss_gb"] = memory.peak / 1e9
    if "loop_audio_seconds_per_second" in result:
        result["job_over_loop"] = result["job_audio_seconds_per_second"] / result["loop_audio_seconds_per_second"]
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
