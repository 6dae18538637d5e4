"""The denoise job against a bare single-process loop of the same model over the same files.

    python bench/job_throughput.py --clips 200 --seconds-per-clip 2      # throughput, side by side
    python bench/job_throughput.py --clips 1000 --no-loop                 # peak memory at 1k clips
    python bench/job_throughput.py --clips 10000 --no-loop                # … and at 10k
    python bench/job_throughput.py --long-file-seconds 3600 --no-loop     # one 1-hour file
    python bench/job_throughput.py --clips 100 --no-loop --metrics dnsmos # what DNSMOS costs the job

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

from pipeline.audio.demo_data import generate_pair  # noqa: E402


class PeakRSS:
    """Samples, in a thread, the summed RSS of this process and all Ray processes, and the largest one."""

    def __init__(self) -> None:
        self.peak = 0
        self.largest = (0, "")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def sample() -> tuple[int, list[tuple[int, str]]]:
        """(summed RSS, [(RSS, command line)]) of this process and every Ray process now."""
        me = psutil.Process()
        procs = [(me.memory_info().rss, "driver")]
        for p in psutil.process_iter(["cmdline", "name"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
                if p.pid != os.getpid() and ("ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or "ray/" in cmd):
                    procs.append((p.memory_info().rss, cmd[:60]))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return sum(r for r, _ in procs), procs

    def _run(self) -> None:
        while not self._stop.is_set():
            total, procs = self.sample()
            self.peak = max(self.peak, total)
            self.largest = max(self.largest, max(procs))
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


def bare_loop(root: Path, out: Path, clips_per_batch: int, threads: int, enhance) -> tuple[float, float]:
    """decode → resample → enhance (windows packed across clips) → resample back → encode → write.

    Returns (seconds over the files, seconds to load the model before them).
    """
    import torch

    from pipeline.audio.codec import decode, encode, resample, to_channels
    from pipeline.core.checkpoints import load_model
    from pipeline.inference.enhance import Enhancer

    torch.set_num_threads(threads)
    loading = time.perf_counter()
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
            target.write_bytes(
                encode(resample(enhanced, 16000, audio.sample_rate), audio.sample_rate, "WAV", audio.subtype)
            )
    return time.perf_counter() - start, start - loading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds-per-clip", type=float, default=2.0)
    parser.add_argument("--long-file-seconds", type=float, default=0.0)
    parser.add_argument("--workdir", default="/tmp/diffgmm-bench")
    parser.add_argument("--no-loop", action="store_true", help="skip the bare loop (memory runs)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the bare loop")
    parser.add_argument("--actor-threads", type=int, default=1, help="torch threads of each model actor")
    parser.add_argument("--actors", type=int, default=0, help="model actors (0: the job's auto sizing)")
    parser.add_argument("--clips-per-batch", type=int, default=8)
    parser.add_argument("--rows-per-block", type=int, default=16)
    parser.add_argument("--cpu-batch-size", type=int, default=4)
    parser.add_argument("--window-seconds", type=float, default=2.0, help="model window (both sides)")
    parser.add_argument(
        "--fixed-clips",
        type=int,
        default=16,
        help="also run the job on this many clips first, to separate its fixed cost (0: skip)",
    )
    parser.add_argument("--metrics", nargs="*", default=[], help="write.metrics of the job (e.g. dnsmos: its cost)")
    parser.add_argument("--json")
    args = parser.parse_args()

    import ray

    from pipeline.audio.windowing import WindowConfig
    from pipeline.denoise.job import DenoiseConfig, run_denoise
    from pipeline.inference.actors import ActorConfig
    from pipeline.inference.enhance import EnhanceConfig
    from pipeline.inference.model_stage import ModelStageConfig
    from pipeline.inference.write_stage import WriteConfig

    enhance = EnhanceConfig(window=WindowConfig(args.window_seconds, min(0.25, args.window_seconds / 5)))

    root = Path(args.workdir)
    shutil.rmtree(root, ignore_errors=True)
    audio_seconds = make_corpus(root, args.clips, args.seconds_per_clip, args.long_file_seconds)
    result = {"clips": 1 if args.long_file_seconds else args.clips, "audio_seconds": audio_seconds}
    if not args.no_loop:
        loop_seconds, load_seconds = bare_loop(root, root / "loop_out", args.clips_per_batch, args.threads, enhance)
        result["loop_audio_seconds_per_second"] = audio_seconds / loop_seconds
        result["loop_model_load_seconds"] = load_seconds
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def job(corpus: Path) -> DenoiseConfig:
        return DenoiseConfig(
            input_uri=str(corpus / "noisy"),
            output_uri=str(corpus / "job_out"),
            run_id="bench",
            model=ModelStageConfig(torch_threads=args.actor_threads, enhance=enhance),
            actors=ActorConfig(min_actors=args.actors, max_actors=args.actors, clips_per_batch=args.clips_per_batch),
            rows_per_block=args.rows_per_block,
            cpu_batch_size=args.cpu_batch_size,
            write=WriteConfig(metrics=tuple(args.metrics)),
        )

    config = job(root)
    if args.fixed_clips and not args.long_file_seconds:
        # What a job costs whatever its size (listing, actor start and model load, commit),
        # so the marginal rate below is the job's throughput on a large corpus.
        small_seconds = make_corpus(root / "small", args.fixed_clips, args.seconds_per_clip, 0.0)
        small = run_denoise(job(root / "small"))
        result["job_fixed_seconds"] = small["wall_seconds"]
    time.sleep(2.0)  # let Ray's daemons settle before the idle sample
    idle, _ = PeakRSS.sample()
    with PeakRSS() as memory:
        summary = run_denoise(config)
    result["job_audio_seconds_per_second"] = summary["audio_seconds_per_second"]
    result["job_wall_seconds"] = summary["wall_seconds"]
    result["job_errors"] = summary["errors"]
    result["peak_rss_gb"] = memory.peak / 1e9
    result["idle_ray_rss_gb"] = idle / 1e9  # driver + Ray daemons before the job
    result["peak_over_idle_gb"] = (memory.peak - idle) / 1e9
    result["largest_process_gb"], result["largest_process"] = memory.largest[0] / 1e9, memory.largest[1]
    if "job_fixed_seconds" in result:
        marginal = (audio_seconds - small_seconds) / (summary["wall_seconds"] - result["job_fixed_seconds"])
        result["job_marginal_audio_seconds_per_second"] = marginal
    if "loop_audio_seconds_per_second" in result:
        loop = result["loop_audio_seconds_per_second"]
        # End to end: both sides from start to last file, the loop's model load included.
        result["loop_end_to_end_audio_seconds_per_second"] = audio_seconds / (loop_seconds + load_seconds)
        result["job_over_loop"] = (
            result["job_audio_seconds_per_second"] / result["loop_end_to_end_audio_seconds_per_second"]
        )
        if "job_marginal_audio_seconds_per_second" in result:
            result["job_marginal_over_loop"] = result["job_marginal_audio_seconds_per_second"] / loop
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
