"""Two ways to make a Ray Data batch job resumable after its driver is killed, side by side.

    python bench/resume_compare.py --out /tmp/resume_bench/results.md
    python bench/resume_compare.py --items 400 --repeats 3 --flush-rows 8,64 --out /tmp/resume_bench/results.md

The workload: a manifest of ``--items`` rows (``id`` string, ``payload`` int
seed) goes through one ``map_batches`` stage (``--batch-size`` rows a batch)
that sleeps ``--sleep-per-row`` seconds per row and takes an FFT of 4096
samples, one output row (``id``, ``score``) per input row.

* **baseline**: no resume mechanism. The driver consumes every row with
  ``iter_batches``, checks completeness, writes the output and a commit marker.
* **chunks (A)**, the project's way: the driver hands every batch from
  ``iter_batches(batch_format="pyarrow", batch_size=None)`` to
  ``pipeline.core.runs.ChunkWriter``; each flush writes one complete Parquet
  file atomically. A rerun reads the chunks (``read_chunks``) and drops those
  inputs from the manifest before building the dataset. At the end the driver
  checks completeness over the chunks and writes the output and the marker.
* **checkpoint (B)**: Ray Data's job-level checkpointing,
  ``DataContext.get_current().checkpoint_config = CheckpointConfig(id_column="id", checkpoint_path=...)``,
  with a read datasource (``read_parquet`` of the manifest) and a Ray Data sink
  (``write_parquet``). Ray writes one checkpoint file per write task and, on a
  rerun, filters the checkpointed ids out right after the read. To check
  completeness the driver then reads the written files back.

What is measured, every job in its own driver process with its own local Ray
(``num_cpus=2``, a short ``_temp_dir`` under /tmp):

1. wall time of a clean full run of each (job time excludes Ray start-up;
   process time includes it);
2. kill and resume: the driver is SIGKILLed once half the rows are durable
   (chunk rows for A, committed checkpoint rows for B, polled), then rerun
   to completion. Every processed row is logged by the map stage, so the table
   shows how many rows the rerun processed, how many of those had already been
   processed before the kill (rework), and whether the final output holds
   exactly one row per input;
3. checks of what CheckpointConfig does when the driver consumes rows itself
   (``iter_batches``, ``streaming_split``), with ``from_arrow``/``from_items``
   input, with the default ``read_parquet`` path, and when a finished job is
   run again. Each finding states the numbers the run produced.

Everything temporary goes under ``--workdir`` (default /tmp/resume_bench).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

OUT_SCHEMA = pa.schema([("id", pa.string()), ("score", pa.float64())])
PENDING_SUFFIX = ".pending.parquet"


# --------------------------------------------------------------------------- shared


def make_manifest(path: str, items: int, row_group: int) -> None:
    table = pa.table({"id": [f"item-{i:05d}" for i in range(items)], "payload": list(range(items))})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group)


def parquet_rows(folder: str, skip_pending: bool = False) -> int:
    """Rows in the Parquet files directly under ``folder``; files that vanish or are half-written count 0."""
    total = 0
    for f in glob.glob(os.path.join(folder, "*.parquet")):
        if skip_pending and f.endswith(PENDING_SUFFIX):
            continue
        try:
            total += pq.read_metadata(f).num_rows
        except Exception:  # renamed or not yet complete while we looked
            pass
    return total


def read_ids(folder: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(folder, "*.parquet")))
    return [i for f in files for i in pq.read_table(f, columns=["id"])["id"].to_pylist()]


def exactly_once(ids: list[str], expected: list[str]) -> dict:
    got = set(ids)
    return {
        "rows": len(ids),
        "duplicates": len(ids) - len(got),
        "missing": len(set(expected) - got),
        "extra": len(got - set(expected)),
    }


# --------------------------------------------------------------------------- driver (one job, one process)


def _work(batch, log_path: str, phase: str, sleep_per_row: float):
    """The simulated per-item work; logs every id it finished (one O_APPEND write a batch)."""
    import numpy as np

    scores = []
    for seed in batch["payload"]:
        time.sleep(sleep_per_row)
        x = np.random.default_rng(int(seed)).standard_normal(4096)
        scores.append(float(np.sqrt(np.mean(np.abs(np.fft.rfft(x)) ** 2))))
    with open(log_path, "a") as f:
        f.write("".join(f"{phase} {i}\n" for i in batch["id"]))
    return {"id": np.asarray(batch["id"]), "score": np.asarray(scores)}


def _init_ray(temp_dir: str) -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


def _write_marker(case_dir: str, check: dict) -> None:
    with open(os.path.join(case_dir, "_COMMITTED.json.tmp"), "w") as f:
        json.dump(check, f)
    os.replace(os.path.join(case_dir, "_COMMITTED.json.tmp"), os.path.join(case_dir, "_COMMITTED.json"))


def drive(args) -> dict:
    """Run one job (``args.mode``) to completion in this process; returns what it saw."""
    import ray

    _init_ray(args.temp_dir)
    t0 = time.perf_counter()
    case = args.case_dir
    manifest = pq.read_table(args.manifest)
    expected = manifest["id"].to_pylist()
    work_kwargs = {
        "log_path": os.path.join(case, "processed.log"),
        "phase": args.phase,
        "sleep_per_row": args.sleep_per_row,
    }
    result: dict = {}

    if args.mode == "baseline":
        from pipeline.core.runs import split_blocks

        ds = ray.data.from_arrow(split_blocks(manifest, args.batch_size))
        ds = ds.map_batches(_work, batch_size=args.batch_size, batch_format="numpy", fn_kwargs=work_kwargs)
        out = pa.concat_tables(list(ds.iter_batches(batch_format="pyarrow", batch_size=None))).cast(OUT_SCHEMA)
        check = exactly_once(out["id"].to_pylist(), expected)
        os.makedirs(os.path.join(case, "out"), exist_ok=True)
        pq.write_table(out, os.path.join(case, "out", "part-00000.parquet"))

    elif args.mode == "chunks":
        from pipeline.core.runs import ChunkWriter, read_chunks, split_blocks
        from pipeline.core.storage import StorageConfig

        config, chunks_uri = StorageConfig(), os.path.join(case, "_chunks")
        done = {i for c in read_chunks(chunks_uri, OUT_SCHEMA, config) for i in c["id"].to_pylist()}
        todo = manifest.filter(pc.invert(pc.is_in(manifest["id"], value_set=pa.array(sorted(done), pa.string()))))
        result["skipped_inputs"] = manifest.num_rows - todo.num_rows
        if todo.num_rows:
            ds = ray.data.from_arrow(split_blocks(todo, args.batch_size))
            ds = ds.map_batches(_work, batch_size=args.batch_size, batch_format="numpy", fn_kwargs=work_kwargs)
            writer = ChunkWriter(chunks_uri, OUT_SCHEMA, config, args.flush_rows, args.flush_seconds)
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                writer.write(batch)
            writer.close()
        out = pa.concat_tables(read_chunks(chunks_uri, OUT_SCHEMA, config))
        check = exactly_once(out["id"].to_pylist(), expected)
        os.makedirs(os.path.join(case, "out"), exist_ok=True)
        pq.write_table(out, os.path.join(case, "out", "part-00000.parquet"))

    elif args.mode == "checkpoint":
        from ray.data.checkpoint import CheckpointConfig

        ctx = ray.data.DataContext.get_current()
        # The default V2 read_parquet packs a small manifest into one read task, hence one
        # write task and one checkpoint for the whole job (see the checks); the V1 read with
        # override_num_blocks gives one block (one write task, one checkpoint) per batch_size rows.
        ctx.use_datasource_v2 = False
        ctx.checkpoint_config = CheckpointConfig(id_column="id", checkpoint_path=os.path.join(case, "_ckpt"))
        blocks = max(1, manifest.num_rows // args.batch_size)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = ray.data.read_parquet(args.manifest, override_num_blocks=blocks)
            ds = ds.map_batches(_work, batch_size=args.batch_size, batch_format="numpy", fn_kwargs=work_kwargs)
            ds.write_parquet(os.path.join(case, "out"))
        result["warnings"] = sorted({str(w.message)[:160] for w in caught if "heckpoint" in str(w.message)})
        check = exactly_once(read_ids(os.path.join(case, "out")), expected)
    else:
        raise ValueError(args.mode)

    if check["duplicates"] == check["missing"] == check["extra"] == 0:
        _write_marker(case, check)
    result.update(check=check, job_s=time.perf_counter() - t0)
    return result


# --------------------------------------------------------------------------- checks of CheckpointConfig (part 3)


def run_checks(args) -> dict:
    """Small experiments on CheckpointConfig; every value returned was observed in this process."""
    import ray
    from ray.data.checkpoint import CheckpointConfig

    _init_ray(args.temp_dir)
    ctx = ray.data.DataContext.get_current()
    root = args.case_dir
    n = args.check_items
    table = pa.table({"id": [f"item-{i:05d}" for i in range(n)], "payload": list(range(n))})
    m1 = os.path.join(root, "manifest_one", "m.parquet")
    os.makedirs(os.path.dirname(m1))
    pq.write_table(table, m1, row_group_size=args.batch_size)
    many = os.path.join(root, "manifest_many")
    os.makedirs(many)
    for k, start in enumerate(range(0, n, args.batch_size)):
        pq.write_table(table.slice(start, args.batch_size), os.path.join(many, f"m{k:03d}.parquet"))
    half = os.path.join(root, "manifest_half", "m.parquet")
    os.makedirs(os.path.dirname(half))
    pq.write_table(table.slice(0, n // 2), half, row_group_size=args.batch_size)
    log = os.path.join(root, "processed.log")
    fn_kwargs = {"log_path": log, "phase": "check", "sleep_per_row": 0.0}

    def fresh(name: str, delete: bool = False) -> tuple[str, str]:
        ck, out = os.path.join(root, name, "ckpt"), os.path.join(root, name, "out")
        ctx.checkpoint_config = CheckpointConfig(
            id_column="id", checkpoint_path=ck, delete_checkpoint_on_success=delete
        )
        return ck, out

    def pipeline(src):
        return src().map_batches(_work, batch_size=args.batch_size, batch_format="numpy", fn_kwargs=fn_kwargs)

    def job(src, sink: str, out: str) -> dict:
        open(log, "w").close()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pipeline(src)
            if sink == "write_parquet":
                ds.write_parquet(out)
                seen = None
            elif sink == "iter_batches":
                seen = sum(b.num_rows for b in ds.iter_batches(batch_format="pyarrow", batch_size=None))
            else:  # streaming_split(1), the consumer side of Train-style ingestion
                (it,) = ds.streaming_split(1)
                seen = sum(b.num_rows for b in it.iter_batches(batch_format="pyarrow", batch_size=None))
        with open(log) as f:
            processed = sum(1 for _ in f)
        return {
            "warned_disabled": any("doesn't support checkpointing" in str(w.message) for w in caught),
            "processed": processed,
            "rows_seen_by_driver": seen,
        }

    def ckpt_state(ck: str) -> dict:
        return {"ckpt_files": len(glob.glob(os.path.join(ck, "*.parquet"))), "ckpt_rows": parquet_rows(ck)}

    res: dict = {"items": n}
    v1 = lambda: ray.data.read_parquet(m1, override_num_blocks=max(1, n // args.batch_size))  # noqa: E731

    # a) driver consumes with iter_batches, read_parquet input
    ctx.use_datasource_v2 = False
    ck, out = fresh("iter")
    res["iter_batches"] = {**job(v1, "iter_batches", out), **ckpt_state(ck)}
    # b) from_arrow / from_items input with a write sink, run twice, checkpoint kept
    for name, src in {
        "from_arrow": lambda: ray.data.from_arrow(
            [table.slice(s, args.batch_size) for s in range(0, n, args.batch_size)]
        ),
        "from_items": lambda: ray.data.from_items(table.to_pylist()),
    }.items():
        ck, out = fresh(name)
        first = {**job(src, "write_parquet", out), **ckpt_state(ck)}
        second = {**job(src, "write_parquet", out), **ckpt_state(ck)}
        res[name] = {"first": first, "second": second, "out_rows": parquet_rows(out)}
    # c) granularity: how many checkpoints (= write tasks) each read path gives
    gran = {}
    for name, v2, src in [
        ("v2 read_parquet(one file)", True, lambda: ray.data.read_parquet(m1)),
        (f"v2 read_parquet({n // args.batch_size} files)", True, lambda: ray.data.read_parquet(many)),
        (
            "v2 read_parquet(one file, override_num_blocks)",
            True,
            lambda: ray.data.read_parquet(m1, override_num_blocks=max(1, n // args.batch_size)),
        ),
        ("v1 read_parquet(one file, override_num_blocks)", False, v1),
    ]:
        ctx.use_datasource_v2 = v2
        ck, out = fresh("gran" + str(len(gran)))
        job(src, "write_parquet", out)
        gran[name] = ckpt_state(ck)["ckpt_files"]
    res["granularity"] = gran
    ctx.use_datasource_v2 = False
    # d) a finished job run again with the default delete_checkpoint_on_success=True
    ck, out = fresh("rerun_default", delete=True)
    first = {**job(v1, "write_parquet", out), **ckpt_state(ck)}
    second = job(v1, "write_parquet", out)
    res["rerun_after_success_default"] = {"first": first, "second": second, "out_rows": parquet_rows(out)}
    # e) same with delete_checkpoint_on_success=False
    ck, out = fresh("rerun_keep", delete=False)
    job(v1, "write_parquet", out)
    second = job(v1, "write_parquet", out)
    res["rerun_after_success_keep"] = {"second": second, "out_rows": parquet_rows(out)}
    # f) checkpoint of the first half exists; the driver consumes the full manifest itself
    ck, out = fresh("consume")
    job(
        lambda: ray.data.read_parquet(half, override_num_blocks=max(1, n // 2 // args.batch_size)), "write_parquet", out
    )
    before = ckpt_state(ck)
    res["consume_with_existing_ckpt"] = {
        "ckpt_before": before,
        "iter_batches": {**job(v1, "iter_batches", out), **ckpt_state(ck)},
        "streaming_split": {**job(v1, "streaming_split", out), **ckpt_state(ck)},
    }
    return res


# --------------------------------------------------------------------------- orchestration


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _reap(pids: list[int], timeout: float = 60.0) -> list[int]:
    """Wait for the given processes (a killed driver's Ray processes) to exit; SIGKILL, by pid, those left."""
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    names = []
    for p in alive:
        try:
            names.append(f"{p.name()}({p.pid})")
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=10)
    return names


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(args.workdir)
        self.runs = 0

    def _cmd(self, mode: str, case: str, phase: str, flush_rows: int = 0) -> tuple[list[str], str]:
        self.runs += 1
        temp_dir = f"/tmp/rcb{self.runs}"  # short: Ray's unix socket paths live under it
        shutil.rmtree(temp_dir, ignore_errors=True)
        a = self.args
        result = os.path.join(case, f"result-{phase}.json")
        cmd = [
            sys.executable,
            __file__,
            "--driver",
            mode,
            "--case-dir",
            case,
            "--phase",
            phase,
            "--temp-dir",
            temp_dir,
            "--result",
            result,
            "--manifest",
            str(self.work / "manifest" / "manifest.parquet"),
            "--batch-size",
            str(a.batch_size),
            "--sleep-per-row",
            str(a.sleep_per_row),
            "--flush-rows",
            str(flush_rows or 1),
            "--flush-seconds",
            str(a.flush_seconds),
            "--check-items",
            str(a.check_items),
        ]
        return cmd, result

    def _cleanup_temp(self) -> None:
        shutil.rmtree(f"/tmp/rcb{self.runs}", ignore_errors=True)

    def run_to_end(self, mode: str, case: str, phase: str, flush_rows: int = 0) -> dict:
        cmd, result = self._cmd(mode, case, phase, flush_rows)
        t0 = time.perf_counter()
        with open(os.path.join(case, f"driver-{phase}.log"), "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO))
            children: list[int] = []
            while proc.poll() is None:
                children = sorted(set(children) | set(_descendants(proc.pid)))
                time.sleep(0.5)
        left = _reap(children, timeout=30)
        self._cleanup_temp()
        if proc.returncode != 0 or not os.path.exists(result):
            raise RuntimeError(f"{mode}/{phase} failed (rc {proc.returncode}); see {case}/driver-{phase}.log")
        with open(result) as f:
            out = json.load(f)
        out.update(process_s=time.perf_counter() - t0, leftover_killed=left)
        return out

    def run_and_kill(self, mode: str, case: str, durable, threshold: int, flush_rows: int = 0) -> dict:
        cmd, _ = self._cmd(mode, case, "run1", flush_rows)
        with open(os.path.join(case, "driver-run1.log"), "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO))
            children: list[int] = []
            killed_at, polls = None, 0
            while proc.poll() is None:
                if polls % 10 == 0:
                    children = sorted(set(children) | set(_descendants(proc.pid)))
                polls += 1
                rows = durable()
                if rows >= threshold:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = rows
                    break
                time.sleep(0.05)
            proc.wait()
        left = _reap(children)
        self._cleanup_temp()
        if killed_at is None:
            raise RuntimeError(f"{mode} finished before {threshold} rows were durable; lower --sleep-per-row?")
        return {"durable_at_kill": killed_at, "leftover_killed": left}

    # ---- the three parts

    def clean_runs(self) -> dict:
        """Every variant ``--repeats`` times, round-robin, so start-up warm-up and load drift hit all alike."""
        res: dict = {}
        for r in range(self.args.repeats):
            for label, mode, flush in self._variants():
                out = self.run_to_end(mode, self._case(f"clean-{r}-{mode}-{flush}"), "run1", flush)
                slot = res.setdefault(label, {"job_s": [], "process_s": [], "checks": []})
                slot["job_s"].append(out["job_s"])
                slot["process_s"].append(out["process_s"])
                slot["checks"].append(out["check"])
        return res

    def kill_runs(self) -> dict:
        a, res = self.args, {}
        threshold = a.items // 2
        for label, mode, flush in self._variants():
            if mode == "baseline":
                continue
            case = self._case(f"kill-{mode}-{flush}")
            if mode == "chunks":
                from pipeline.core.runs import read_chunks
                from pipeline.core.storage import StorageConfig

                chunks_uri, cfg = os.path.join(case, "_chunks"), StorageConfig()

                def durable(uri=chunks_uri, cfg=cfg):
                    return sum(t.num_rows for t in read_chunks(uri, OUT_SCHEMA, cfg))
            else:

                def durable(ck=os.path.join(case, "_ckpt")):  # noqa: B008 (binds this case)
                    return parquet_rows(ck, skip_pending=True)

            first = self.run_and_kill(mode, case, durable, threshold, flush)
            with open(os.path.join(case, "processed.log")) as f:
                lines = [line.split() for line in f]
            first["processed_before_kill"] = len({i for p, i in lines if p == "run1"})
            if mode == "checkpoint":  # once the killed job's processes are gone
                first["committed_after_kill"] = parquet_rows(os.path.join(case, "_ckpt"), skip_pending=True)
                first["pending_after_kill"] = len(glob.glob(os.path.join(case, "_ckpt", "*" + PENDING_SUFFIX)))
                first["out_rows_after_kill"] = parquet_rows(os.path.join(case, "out"))
            second = self.run_to_end(mode, case, "run2", flush)
            with open(os.path.join(case, "processed.log")) as f:
                lines = [line.split() for line in f]
            run1 = {i for p, i in lines if p == "run1"}
            run2 = [i for p, i in lines if p == "run2"]
            res[label] = {
                "first": first,
                "second": second,
                "rerun_processed": len(run2),
                "rework": sum(1 for i in run2 if i in run1),
                "total_processed": len(run1) + len(run2),
            }
        return res

    def checks(self) -> dict:
        case = self._case("checks")
        return self.run_to_end("checks", case, "run1")

    def _case(self, name: str) -> str:
        case = self.work / name
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir(parents=True)
        return str(case)

    def _variants(self):
        yield "baseline", "baseline", 0
        for k in self.args.flush_rows_list:
            yield f"chunks (A), flush_rows={k}", "chunks", k
        yield "checkpoint (B)", "checkpoint", 0


# --------------------------------------------------------------------------- report


def _fmt_times(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{statistics.median(xs):.2f} (min {min(xs):.2f}, max {max(xs):.2f})"


def _ok(check: dict) -> str:
    if check["duplicates"] == check["missing"] == check["extra"] == 0:
        return f"yes ({check['rows']} rows)"
    return f"NO: {check['rows']} rows, {check['duplicates']} duplicates, {check['missing']} missing"


def report(args, clean: dict, kill: dict, chk: dict, total_s: float) -> str:
    n = args.items
    lines = [
        "# Resumable Ray Data job: project chunks (A) vs Ray Data CheckpointConfig (B)",
        "",
        f"Ray {__import__('ray').__version__}; {n} items, map_batches batch_size={args.batch_size}, "
        f"{args.sleep_per_row * 1000:.0f} ms sleep + a 4096-point FFT per row; local Ray with num_cpus=2, "
        f"one fresh driver process (and Ray) per run; ChunkWriter flush_seconds={args.flush_seconds}; "
        f"B reads the manifest with the V1 read_parquet, override_num_blocks={max(1, n // args.batch_size)} "
        f"(one block, one write task, one checkpoint per {args.batch_size} rows). "
        f"Timings: {args.repeats} run(s) each{', median (min, max)' if args.repeats > 1 else ''}; the machine is shared, "
        "so treat differences under ~1 s as noise.",
        "",
        "## 1. Clean full run, 2. kill at 50 % durable and rerun",
        "",
        "| variant | clean run: job s | clean run: process s (incl. Ray start) | clean output exactly once | "
        "durable at kill | processed before kill | rerun processed | rework (processed twice) | "
        "rerun job s | final output exactly once |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, c in clean.items():
        clean_ok = "yes" if all(_ok(x).startswith("yes") for x in c["checks"]) else _ok(c["checks"][0])
        if label in kill:
            k = kill[label]
            kcols = (
                f"{k['first']['durable_at_kill']} | {k['first']['processed_before_kill']} | "
                f"{k['rerun_processed']} | {k['rework']} | {k['second']['job_s']:.2f} | {_ok(k['second']['check'])}"
            )
        else:
            kcols = f"- | - | {n} (no resume: everything) | - | - | -"
        lines.append(f"| {label} | {_fmt_times(c['job_s'])} | {_fmt_times(c['process_s'])} | {clean_ok} | {kcols} |")
    lines += [
        "",
        "Durable = rows in complete chunk files (A) or in committed checkpoint files (B) when the poller "
        "fired SIGKILL at the driver. Processed = rows the map stage finished (logged by the stage). "
        "Rework = rows the rerun processed that had already been processed before the kill.",
    ]
    for label, k in kill.items():
        if "pending_after_kill" in k["first"]:
            f = k["first"]
            lines.append(
                f"- {label}: once the killed job's processes were gone, {f['committed_after_kill']} committed "
                f"checkpoint rows, {f['pending_after_kill']} pending checkpoint(s), {f['out_rows_after_kill']} "
                "rows in output files (tasks already running finish after the driver's death); the rerun's "
                "job time includes loading the checkpoint and starting the filter actor; warnings: "
                f"{k['second'].get('warnings') or 'none'}"
            )
        else:
            lines.append(
                f"- {label}: the rerun dropped {k['second']['skipped_inputs']} inputs (already in chunks) "
                "before building the dataset"
            )
    left = [n for k in kill.values() for n in k["first"]["leftover_killed"]]
    lines.append(
        f"- Ray processes of a SIGKILLed driver still alive 60 s later (then killed by pid here): {len(left)}"
        + (f" ({', '.join(left)})" if left else "")
    )

    c = chk
    m = c["items"]
    it, fa, fi = c["iter_batches"], c["from_arrow"], c["from_items"]
    d, keep, cons = c["rerun_after_success_default"], c["rerun_after_success_keep"], c["consume_with_existing_ckpt"]
    gran = "; ".join(f"{k}: {v}" for k, v in c["granularity"].items())
    lines += [
        "",
        f"## 3. CheckpointConfig checks ({m} items, each observed in this run)",
        "",
        f"- **Driver consumes with `iter_batches`: no checkpointing.** read_parquet -> map_batches -> iter_batches with "
        f'checkpoint_config set: warning "checkpointing will be disabled" emitted: {it["warned_disabled"]}; '
        f"checkpoint files written: {it['ckpt_files']}. The planner only enables it when the last operator is a "
        "Write or StreamingSplit (ray/data/_internal/planner/planner.py, `_check_supports_checkpointing`).",
        f"- **`streaming_split` filters but never writes checkpoints.** With a checkpoint of the first {m // 2} ids in place "
        f"({cons['ckpt_before']['ckpt_rows']} rows), a driver consuming the full manifest saw "
        f"{cons['streaming_split']['rows_seen_by_driver']} rows via streaming_split(1) and "
        f"{cons['iter_batches']['rows_seen_by_driver']} via iter_batches; checkpoint rows afterwards: "
        f"{cons['streaming_split']['ckpt_rows']} (unchanged). Only a Write op writes checkpoints "
        "(`plan_write_op_with_checkpoint_writer`), so a consuming driver would have to write Ray's checkpoint files itself.",
        f"- **`from_arrow` / `from_items` input: checkpoints written, never used, silent duplicates.** Running the same "
        f"from_arrow -> map -> write_parquet job twice with the checkpoint kept: second run processed "
        f"{fa['second']['processed']} of {m} rows (warning: {fa['second']['warned_disabled']}), checkpoint files "
        f"{fa['first']['ckpt_files']} -> {fa['second']['ckpt_files']}, output rows {fa['out_rows']} for {m} inputs. "
        f"from_items: processed {fi['second']['processed']}, output rows {fi['out_rows']}. The filter is planned only for "
        "Read/ReadFiles ops, but the eligibility check `all(... for input_dep in op.input_dependencies)` is vacuously true "
        "for any other leaf (FromArrow, FromItems), so the writer is enabled without the filter.",
        f"- **Checkpoint granularity = one write task.** Checkpoint files for {m} rows: {gran}. With the default "
        "(DataSource V2) read_parquet a small manifest is one read task, so the whole job commits one checkpoint at the "
        "end and a kill loses everything; B above uses `DataContext.use_datasource_v2 = False` + override_num_blocks.",
        f"- **A finished job run again redoes everything and duplicates its output with the default "
        f"`delete_checkpoint_on_success=True`**: second run processed {d['second']['processed']} rows, output rows "
        f"{d['out_rows']} for {m} inputs (checkpoint files after the first success: {d['first']['ckpt_files']}). "
        f"This is the case of a driver killed after the write but before its commit marker. With "
        f"delete_checkpoint_on_success=False the second run processed {keep['second']['processed']} rows, output rows "
        f"{keep['out_rows']}.",
        "- **Completeness is not visible to the driver**: `write_parquet` returns nothing per row, so checking "
        '"every input exactly once" before a commit marker means reading the output back (done in B\'s timing above), '
        "and the checkpoint directory is deleted on success by default, so it cannot serve as the record.",
        "",
        f"Whole benchmark: {total_s / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="/tmp/resume_bench/results.md", help="markdown results file")
    p.add_argument("--workdir", default="/tmp/resume_bench", help="all temporary outputs go here")
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--sleep-per-row", type=float, default=0.02)
    p.add_argument(
        "--flush-rows", default="8,64", help="ChunkWriter flush_rows values to compare (64 is the project default)"
    )
    p.add_argument("--flush-seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=2, help="clean runs per variant")
    p.add_argument("--check-items", type=int, default=40, help="items for the CheckpointConfig checks")
    # internal: one driver process
    p.add_argument("--driver", choices=["baseline", "chunks", "checkpoint", "checks"], help=argparse.SUPPRESS)
    for name in ("--case-dir", "--phase", "--temp-dir", "--result", "--manifest"):
        p.add_argument(name, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.flush_rows_list = [int(x) for x in str(args.flush_rows).split(",") if x]

    if args.driver:
        args.mode = args.driver
        args.flush_rows = int(args.flush_rows.split(",")[0])
        out = run_checks(args) if args.driver == "checks" else drive(args)
        with open(args.result + ".tmp", "w") as f:
            json.dump(out, f)
        os.replace(args.result + ".tmp", args.result)
        return

    t0 = time.perf_counter()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    make_manifest(str(work / "manifest" / "manifest.parquet"), args.items, args.batch_size)
    bench = Bench(args)
    clean = bench.clean_runs()
    kill = bench.kill_runs()
    chk = bench.checks()
    text = report(args, clean, kill, chk, time.perf_counter() - t0)
    with open(work / "raw.json", "w") as f:
        json.dump({"clean": clean, "kill": kill, "checks": chk}, f, indent=1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
