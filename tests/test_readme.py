"""Every `diffgmm` command in README.md runs, through the real console script, on local paths and on moto S3.

The fenced ``bash`` blocks of the README are parsed, not copied: a README that drifts from the code
fails here. Placeholders are filled in (``...``, ``<id>``, ``[optional flags]`` taken as given), the
training recipes get a tiny model and a few steps appended, and the data paths point at a seeded
corpus. ``s3://bucket/`` and ``s3://my-bucket/`` (``jobs/configs/denoise.yaml``) are buckets on the
moto server, reached through ``AWS_ENDPOINT_URL_S3`` only, as an operator's would be.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import SMALL_STFT_CONFIG

from pipeline.audio.codec import AUDIO_ERROR_KINDS

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CLI = ROOT / ".venv" / "bin" / "diffgmm"
TINY_AIGD = dict(n_fft=64, win_length=60, hop_length=16, channels=4, channel_mults="[1,2]", groups=2)


# README lines of its bash blocks that are not run here, each with the reason. Any other line that is not a
# ``diffgmm`` command fails the test, so a new README line is either run or listed here.
NOT_RUN = {
    "make demo": "installs the pinned stack into .venv (several GB); its job is the denoise line run here",
    "make test": "runs the whole suite, this test included",
}


# README ``diffgmm`` lines parsed but not run, each with the reason (the test fails if one is no longer in the README).
# Empty: the Ray Train line runs on local Ray (its 'integer modulo by zero' was a tiny corpus with no held-out
# speaker, now an operator error; the tiny recipe validates on a paired set instead).
NOT_RUN_DIFFGMM: dict[str, str] = {}


def readme_lines(text: str) -> list[str]:
    """Every command of the README's bash blocks, comments stripped, ``a && b`` split."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip())
            if line and not line.startswith("#"):
                lines.extend(part.strip() for part in line.split("&&"))
    return lines


def readme_commands(text: str) -> list[str]:
    """The ``diffgmm`` command lines of the README's bash blocks (``ray job submit --`` run as the job it submits)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip())
            if not line or line.startswith("#"):
                continue
            for part in line.split("&&"):
                part = part.strip()
                if part in NOT_RUN_DIFFGMM:
                    continue
                part = part.removeprefix("ray job submit -- ").removeprefix(".venv/bin/")
                if part.startswith("diffgmm "):
                    commands.append(part)
    return commands


def test_readme_parser_finds_every_subcommand():
    text = README.read_text()
    assert set(NOT_RUN_DIFFGMM) <= set(readme_lines(text)), "a NOT_RUN_DIFFGMM line left the README"
    others = {line for line in readme_lines(text) if "diffgmm " not in line}
    assert others == set(NOT_RUN), f"README lines neither run nor listed in NOT_RUN: {others - set(NOT_RUN)}"
    subcommands = {c.split()[1] for c in readme_commands(text)}
    assert subcommands == {"--help", "denoise", "nightly", "enhance", "evaluate", "train", "export", "query", "report"}


def _write_pairs(root: Path, n: int, rng) -> None:
    from pipeline.audio.demo_data import generate_pair

    for i in range(n):
        noisy, clean = generate_pair(1.0, 5.0, 16000, rng)
        for kind, data in (("noisy", noisy), ("clean", clean)):
            (root / kind).mkdir(parents=True, exist_ok=True)
            sf.write(root / kind / f"clip_{i}.wav", data, 16000)


def _tiny_training(recipe: str, corpus: Path, pairs: Path) -> list[str]:
    model = TINY_AIGD if "aigd" in recipe else SMALL_STFT_CONFIG
    sets = [f"model.{k}={v}" for k, v in model.items()] + [
        f"data.clean_uri={corpus}/clean",
        f"data.noise_uri={corpus}/noise",
        "data.valid_pairs=1",
        f"data.valid_clean_uri={corpus}/clean",
        f"data.valid_noisy_uri={corpus}/noisy",
        f"data.valid_clean_uri={pairs}/clean",
        f"data.valid_noisy_uri={pairs}/noisy",
        "data.valid_segment_seconds=1.0",
        "mix.segment_seconds=0.5",
        "optim.batch_size=2",
        "optim.steps_per_epoch=2",
        "optim.epochs=1",
        "optim.warmup_steps=1",
    ]
    return [a for s in sets for a in ("--set", s)] + (["--device", "cpu"] if "--executor local" in recipe else [])


def with_every_model(command: str) -> list[str]:
    """The README line, plus, for ``enhance`` (which takes ``--model``), the line once per shipped model.

    The names come from the registry (``SHIPPED_CHECKPOINTS``), so a newly shipped family is run here too;
    each run writes to its own ``--output-dir`` so the files checked are that model's.
    """
    from pipeline.core.checkpoints import SHIPPED_CHECKPOINTS

    if command.split()[1] != "enhance":
        return [command]
    argv = shlex.split(command)
    out_dir = argv[argv.index("--output-dir") + 1]
    return [command] + [
        shlex.join(
            [
                *argv[: argv.index("--output-dir")],
                "--output-dir",
                f"{out_dir.rstrip('/')}-{name}/",
                *argv[argv.index("--output-dir") + 2 :],
                "--model",
                name,
            ]
        )
        for name in SHIPPED_CHECKPOINTS
    ]


def substitute(command: str, ctx: dict) -> list[str]:
    """A README line → argv for the console script in the test's working folder."""
    command = re.sub(r"\[([^\]]*)\]", r"\1", command)  # optional flags: take them
    command = command.replace("../shared/testdata/vbd-debug", str(ctx["pairs"]))
    command = command.replace(" ./", f" {ctx['cwd']}/").replace("jobs/configs/", f"{ROOT}/jobs/configs/")
    command = command.replace("in.wav other.flac", f"{ctx['corpus']}/noisy/clip_0.wav {ctx['corpus']}/noisy/clip_1.wav")
    command = command.replace("/data/runs", f"{ctx['cwd']}/data-runs")
    command = command.replace("<id>", ctx.get("eval_run_id", "<id>"))
    argv = shlex.split(command)
    if argv[-1] == "...":  # "diffgmm denoise --model aigd ...": the rest of a denoise command
        ctx["n"] = ctx.get("n", 0) + 1
        argv[-1:] = ["--input", "s3://bucket/noisy/", "--output", f"{ctx['cwd']}/out-{ctx['n']}"]
    if argv[1] == "train":
        argv += _tiny_training(command, ctx["corpus"], ctx["pairs"])
    return [str(CLI), *argv[1:]]


def _run(argv: list[str], ctx: dict) -> str:
    """Run in the test's working folder (the README's relative paths land there); exit code 0 or fail."""
    proc = subprocess.run(argv, cwd=ctx["cwd"], env=ctx["env"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}: {shlex.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _outputs(out: str) -> str:
    """The run folder a job printed (``outputs: URI``, alone on its line or after the nightly ledger's count)."""
    found = re.search(r"(?:^|; )outputs: (\S+)$", out, re.M)
    assert found, out
    return found.group(1)


def _local(ctx: dict, path: str) -> Path:
    return Path(ctx["cwd"], path)  # absolute paths stay as they are


def _clips(run_uri: str, ctx: dict):
    if run_uri.startswith("s3://"):
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=ctx["endpoint"])
        return pq.read_table(run_uri.removeprefix("s3://") + "/clips", filesystem=fs)
    return pq.read_table(f"{run_uri}/clips")


def check(argv: list[str], out: str, ctx: dict) -> None:
    """What each subcommand must have printed and written."""
    sub = argv[1]
    if sub == "--help":
        assert out.startswith("usage: diffgmm")
    elif sub == "denoise" and "--dry-run" in argv:
        assert re.search(r"^dry run \S+: 3 clips", out, re.M), out
    elif sub in ("denoise", "nightly"):
        if sub == "nightly":
            assert re.search(r"^nightly \S+: \d+ new", out, re.M) and re.search(r"^ledger: 3 inputs", out, re.M), out
        if "nothing new" in out:
            return
        assert re.search(r"^run \S+: 3 clips \(2 ok, 1 errors\)", out, re.M), out
        table = _clips(_outputs(out), ctx)
        assert sorted(table.column("status").to_pylist()) == ["error", "ok", "ok"]
        rows = {r["input_key"].rsplit("/", 1)[-1]: r for r in table.to_pylist()}
        assert rows["corrupt.wav"]["error_kind"] in AUDIO_ERROR_KINDS and rows["corrupt.wav"]["error"], rows[
            "corrupt.wav"
        ]
        assert all(rows[f"clip_{i}.wav"]["output_key"] for i in (0, 1)), rows
    elif sub == "enhance":
        from pipeline.core.checkpoints import DEFAULT_MODEL

        target = _local(ctx, argv[argv.index("--output-dir") + 1])
        assert sorted(p.name for p in target.iterdir()) == ["clip_0.wav", "clip_1.wav"]
        for name in ("clip_0.wav", "clip_1.wav"):
            enhanced, rate = sf.read(target / name)
            noisy, _ = sf.read(ctx["corpus"] / "noisy" / name)
            assert rate == 16000 and enhanced.shape == noisy.shape and np.isfinite(enhanced).all()
            assert np.abs(enhanced - noisy).max() > 1e-3, f"{target / name} is its input: nothing was enhanced"
        assert re.search(r"^ok .* -> \S+clip_0\.wav .*s  \w+=-?\d+\.\d{3}", out, re.M), out
        model = argv[argv.index("--model") + 1] if "--model" in argv else DEFAULT_MODEL
        assert re.search(rf"^2 enhanced, 0 failed, model {model}-[0-9a-f]{{12}}$", out, re.M), out
        ctx.setdefault("enhanced_with", []).append(model)
    elif sub == "evaluate":
        models = argv[argv.index("--models") + 1].split(",")
        assert out.startswith("2 clips") and all(re.search(rf"^  {m}\s+errors=0", out, re.M) for m in models), out
        run_uri = _outputs(out)
        ctx["eval_run_id"] = run_uri.rstrip("/").rsplit("/", 1)[1]
        assert _clips(run_uri, ctx).num_rows == 2 * len(models)
    elif sub == "train":
        run_uri = re.search(r"^checkpoints: (\S+) ", out, re.M).group(1)
        # Both executors leave best.pt and last.pt in the run folder the line printed (what the export line reads).
        assert all(_local(ctx, run_uri).joinpath(f).stat().st_size > 0 for f in ("best.pt", "last.pt")), run_uri
        assert "step" in json.loads(out[: out.index("\ncheckpoints:")])
    elif sub == "export":
        assert out.startswith("exported ") and _local(ctx, argv[3]).stat().st_size > 0
    elif sub == "query":
        if "--errors" in argv:
            assert "corrupt.wav" in out, out
        assert re.search(r"\((\d+) rows\)", out) and not out.startswith("(no rows)"), out
    elif sub == "report":
        path = _local(ctx, argv[argv.index("--out") + 1])
        assert out.startswith("report: ") and "<html" in path.read_text()[:2000].lower()
    else:
        raise AssertionError(f"no check for {sub}")


@pytest.mark.timeout(3600)
def test_every_readme_command_runs(s3_bucket, tmp_path, rng):
    import boto3

    endpoint, _ = s3_bucket
    corpus, pairs = tmp_path / "corpus", tmp_path / "pairs"
    _write_pairs(corpus, 2, rng)
    (corpus / "noisy" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    _write_pairs(pairs, 2, rng)
    (corpus / "noise").mkdir()
    sf.write(corpus / "noise" / "n0.flac", 0.1 * rng.standard_normal(48000).astype(np.float32), 16000)
    os.symlink(corpus / "noisy", tmp_path / "noisy")  # "./noisy" in the README
    s3 = boto3.client("s3", endpoint_url=endpoint)
    for bucket in ("bucket", "my-bucket"):
        s3.create_bucket(Bucket=bucket)
        for path in (corpus / "noisy").iterdir():
            s3.upload_file(str(path), bucket, f"noisy/{path.name}")
        for path in (corpus / "clean").iterdir():
            s3.upload_file(str(path), bucket, f"clean/{path.name}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_ENDPOINT_URL"))}
    env.update(PYTHONPATH=str(ROOT), AWS_ENDPOINT_URL_S3=endpoint, OMP_NUM_THREADS="1")
    ctx = {"cwd": str(tmp_path), "corpus": corpus, "pairs": pairs, "env": env, "endpoint": endpoint}
    # Last night's run, which the README's --compare and --against name.
    _run(
        [
            str(CLI),
            "denoise",
            "--input",
            "s3://bucket/noisy/",
            "--output",
            "s3://bucket/denoised/",
            "--reference",
            "s3://bucket/clean/",
            "--run-id",
            "2026-11-21",
        ],
        ctx,
    )
    ran = []
    for command in (
        line for readme_line in readme_commands(README.read_text()) for line in with_every_model(readme_line)
    ):
        argv = substitute(command, ctx)
        check(argv, _run(argv, ctx), ctx)
        ran.append(argv[1])
    assert {"denoise", "nightly", "enhance", "evaluate", "train", "export", "query", "report"} <= set(ran)
    from pipeline.core.checkpoints import SHIPPED_CHECKPOINTS

    assert set(ctx["enhanced_with"]) == set(SHIPPED_CHECKPOINTS), ctx["enhanced_with"]
