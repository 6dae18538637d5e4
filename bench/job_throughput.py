"""The denoise job against a bare single-process loop of the same model over the same files.

    python bench/job_throughput.py --clips 200 --seconds-per-clip 2      # throughput, side by side
    python bench/job_throughput.py --clips 1000 --no-loop                 # peak memory at 1k clips
    python bench/job_throughput.py --clips 10000 --no-loop                # … and at 10k
    python bench/job_throughput.py --long-file-seconds 3600 --no-loop     # one 1-hour file
    python bench/job_throughput.py --clips 100 --no-loop --metrics dnsmos # what DNSMOS costs the job

Peak memory is the largest sum of RSS over this process and every Ray
process, sampled every 0.2 s (the object store's shared pages are counted in
the processes that map them, so this over- rather than under-states). The same
sampler sums each process's CPU-seconds by role (model actors, CPU-task workers,
driver, raylet, …): ``*_cpu_ms_per_clip`` in the output, beside the loop's own,
hold on a host shared with other work, where the wall-clock rates do not.
``job_marginal_cpu_ms_per_clip`` subtracts a warm run on ``--fixed-clips`` clips,
so process starts drop out.
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


def role(cmd: str) -> str:
    """The part a Ray process plays, from its command line (a worker's title names the task it runs)."""
    for needle, name in (
        ("ModelStage", "model_actors"),
        ("Agent", "other_ray_daemons"),  # ray::DashboardAgent, ray::RuntimeEnvAgent
        ("raylet", "raylet"),
        ("gcs_server", "gcs_server"),
        ("ray::", "cpu_task_workers"),  # decode/write tasks, idle workers, Ray Data's helper actors
    ):
        if needle in cmd:
            return name
    return "other_ray_daemons"


class PeakRSS:
    """Samples, in a thread, the summed RSS of this process and all Ray processes, and the largest one.

    Also the CPU-seconds (user + system) each Ray process used while sampled, summed by
    :func:`role` in ``cpu_seconds`` (the driver's under "driver"): per-process CPU time is what
    a stage cost even on a host shared with other work, where wall time is not.
    """

    def __init__(self) -> None:
        self.peak = 0
        self.largest = (0, "")
        self._first: dict[int, float] = {}  # pid → CPU-seconds at its first sample
        self._last: dict[int, tuple[float, str]] = {}  # pid → (CPU-seconds, role) at its last sample
        self.sampler_cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def sample() -> tuple[int, list[tuple[int, str]]]:
        """(summed RSS, [(RSS, command line)]) of this process and every Ray process now."""
        total, procs, _ = PeakRSS.sample_cpu()
        return total, procs

    @staticmethod
    def sample_cpu() -> tuple[int, list[tuple[int, str]], dict[int, tuple[float, str]]]:
        """As :meth:`sample`, and {pid: (CPU-seconds so far, role)} of the same processes."""
        me = psutil.Process()
        cpu = me.cpu_times()
        procs = [(me.memory_info().rss, "driver")]
        times = {me.pid: (cpu.user + cpu.system, "driver")}
        for p in psutil.process_iter(["cmdline", "name"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
                if p.pid != os.getpid() and ("ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or "ray/" in cmd):
                    procs.append((p.memory_info().rss, cmd[:60]))
                    t = p.cpu_times()
                    times[p.pid] = (t.user + t.system, role(cmd))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return sum(r for r, _ in procs), procs, times

    def _record(self) -> None:
        total, procs, times = self.sample_cpu()
        self.peak = max(self.peak, total)
        self.largest = max(self.largest, max(procs))
        for pid, (seconds, name) in times.items():
            self._first.setdefault(pid, seconds)
            # A pooled worker that becomes a model actor stays one; an idle worker's title says nothing.
            if self._last.get(pid, (0.0, ""))[1] == "model_actors":
                name = "model_actors"
            self._last[pid] = (seconds, name)

    @property
    def processes(self) -> dict[str, list[float]]:
        """CPU-seconds of each process seen, by role, largest first."""
        out: dict[str, list[float]] = {}
        for pid, (seconds, name) in self._last.items():
            out.setdefault(name, []).append(round(seconds - self._first[pid], 2))
        return {k: sorted(v, reverse=True) for k, v in sorted(out.items())}

    @property
    def cpu_seconds(self) -> dict[str, float]:
        """CPU-seconds used between the first and the last sample, summed by role."""
        out: dict[str, float] = {}
        for pid, (seconds, name) in self._last.items():
            out[name] = out.get(name, 0.0) + seconds - self._first[pid]
        return dict(sorted(out.items()))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._record()
            self.sampler_cpu_seconds = time.thread_time()  # this thread's own cost, inside the driver's
            time.sleep(0.2)

    def __enter__(self):
        self._record()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._record()


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


def bare_loop(root: Path, out: Path, clips_per_batch: int, threads: int, enhance) -> dict[str, float]:
    """decode → resample → enhance (windows packed across clips) → resample back → encode → write.

    Returns seconds over the files (``seconds``), to load the model before them (``load_seconds``),
    and the process's CPU-seconds over the files (``cpu_seconds``) and inside ``enhance_many``
    (``model_cpu_seconds``).
    """
    import torch

    from pipeline.audio.codec import decode, encode, resample, to_channels
    from pipeline.core.checkpoints import load_model
    from pipeline.inference.enhance import Enhancer

    torch.set_num_threads(threads)
    loading = time.perf_counter()
    enhancer = Enhancer(load_model().model, enhance)
    files = sorted((root / "noisy").rglob("*.wav"))
    start, cpu_start, model_cpu = time.perf_counter(), time.process_time(), 0.0
    for i in range(0, len(files), clips_per_batch):
        batch = files[i : i + clips_per_batch]
        decoded = [decode(p.read_bytes()) for p in batch]
        signals = [resample(to_channels(a.samples, "downmix")[0], a.sample_rate, 16000) for a in decoded]
        model_start = time.process_time()
        results = enhancer.enhance_many(signals)
        model_cpu += time.process_time() - model_start
        for path, audio, (enhanced, _) in zip(batch, decoded, results):
            target = out / path.relative_to(root / "noisy")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(
                encode(resample(enhanced, 16000, audio.sample_rate), audio.sample_rate, "WAV", audio.subtype)
            )
    return {
        "seconds": time.perf_counter() - start,
        "load_seconds": start - loading,
        "cpu_seconds": time.process_time() - cpu_start,
        "model_cpu_seconds": model_cpu,
    }


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
    parser.add_argument("--cpus-per-actor", type=float, help="logical CPUs of a model actor (default: the job's)")
    parser.add_argument("--rows-per-block", type=int, default=16)
    parser.add_argument("--cpu-batch-size", type=int, default=4)
    parser.add_argument("--cpus-per-cpu-task", type=float, help="CPU share of a decode/write task (default: the job's)")
    parser.add_argument("--window-seconds", type=float, default=2.0, help="model window (both sides)")
    parser.add_argument(
        "--fixed-clips",
        type=int,
        default=16,
        help="also run the job on this many clips first, to separate its fixed cost (0: skip)",
    )
    parser.add_argument("--metrics", nargs="*", default=[], help="write.metrics of the job (e.g. dnsmos: its cost)")
    parser.add_argument(
        "--data-context",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="Ray Data DataContext fields for the job (Python literals), e.g. op_resource_reservation_enabled=False",
    )
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
        loop = bare_loop(root, root / "loop_out", args.clips_per_batch, args.threads, enhance)
        loop_seconds, load_seconds = loop["seconds"], loop["load_seconds"]
        result["loop_audio_seconds_per_second"] = audio_seconds / loop_seconds
        result["loop_model_load_seconds"] = load_seconds
        # CPU-milliseconds per clip: what the work costs, whatever else the host runs.
        result["loop_cpu_ms_per_clip"] = 1e3 * loop["cpu_seconds"] / result["clips"]
        result["loop_model_cpu_ms_per_clip"] = 1e3 * loop["model_cpu_seconds"] / result["clips"]
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    for item in args.data_context:
        import ast

        key, value = item.split("=", 1)
        setattr(ray.data.DataContext.get_current(), key, ast.literal_eval(value))

    def job(corpus: Path, run_id: str = "bench") -> DenoiseConfig:
        return DenoiseConfig(
            input_uri=str(corpus / "noisy"),
            output_uri=str(corpus / "job_out"),
            run_id=run_id,
            model=ModelStageConfig(torch_threads=args.actor_threads, enhance=enhance),
            actors=ActorConfig(
                min_actors=args.actors,
                max_actors=args.actors,
                clips_per_batch=args.clips_per_batch,
                **({} if args.cpus_per_actor is None else {"cpus_per_actor": args.cpus_per_actor}),
            ),
            rows_per_block=args.rows_per_block,
            cpu_batch_size=args.cpu_batch_size,
            **({} if args.cpus_per_cpu_task is None else {"cpus_per_cpu_task": args.cpus_per_cpu_task}),
            write=WriteConfig(metrics=tuple(args.metrics)),
        )

    config = job(root)
    if args.fixed_clips and not args.long_file_seconds:
        # What a job costs whatever its size (listing, actor start and model load, commit),
        # so the marginal rate below is the job's throughput on a large corpus.
        small_seconds = make_corpus(root / "small", args.fixed_clips, args.seconds_per_clip, 0.0)
        small = run_denoise(job(root / "small"))
        result["job_fixed_seconds"] = small["wall_seconds"]
        # Once more under CPU accounting: worker processes are warm now, as they are for the large run.
        with PeakRSS() as small_cpu:
            run_denoise(job(root / "small", "bench-again"))
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
    # CPU-milliseconds per clip of each kind of process over the job, and the model actors' time
    # inside enhance_many (the clip table's seconds_model, wall time there, summed).
    result["job_cpu_ms_per_clip"] = {k: 1e3 * v / result["clips"] for k, v in memory.cpu_seconds.items()}
    result["job_cpu_ms_per_clip_total"] = sum(result["job_cpu_ms_per_clip"].values())
    result["job_process_cpu_seconds"] = memory.processes
    result["bench_sampler_cpu_ms_per_clip"] = 1e3 * memory.sampler_cpu_seconds / result["clips"]  # in "driver"
    result["job_model_seconds_ms_per_clip"] = 1e3 * summary["cost"]["model_seconds"] / result["clips"]
    if "job_fixed_seconds" in result:
        marginal = (audio_seconds - small_seconds) / (summary["wall_seconds"] - result["job_fixed_seconds"])
        result["job_marginal_audio_seconds_per_second"] = marginal
        # CPU per clip above the small run's: what one more clip costs, each process's start excluded
        # (the small run starts as many actors as the large one when it has as many blocks).
        extra = result["clips"] - args.fixed_clips
        small_roles = small_cpu.cpu_seconds
        result["job_marginal_cpu_ms_per_clip"] = {
            k: 1e3 * (v - small_roles.get(k, 0.0)) / extra for k, v in memory.cpu_seconds.items()
        }
        result["job_marginal_cpu_ms_per_clip_total"] = sum(result["job_marginal_cpu_ms_per_clip"].values())
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
