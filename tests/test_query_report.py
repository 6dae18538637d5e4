"""`diffgmm query` and `diffgmm report` over real committed runs (real Ray, real Parquet), DNSMOS in the job,
and the report opened in a real headless Chromium."""

from __future__ import annotations

import collections
import json
import math
import re
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import TINY_CONFIG, make_corpus

from jobs.cli import main
from pipeline.core import schema as S
from pipeline.core.results import Results
from pipeline.core.runs import RunPaths
from pipeline.denoise.job import DenoiseConfig, run_denoise
from pipeline.inference.longform import StreamConfig
from pipeline.inference.model_stage import ModelStageConfig
from pipeline.inference.write_stage import WriteConfig

pytestmark = pytest.mark.slow

RUNS = ("night-1", "night-2")


@pytest.fixture(scope="module")
def two_runs(ray_local, tmp_path_factory, tiny_checkpoint):
    """Two committed runs of two different models over one corpus with errors, a streamed file and NaN metrics."""
    import torch

    from model import DiffGMM, DiffGMMConfig, make_checkpoint
    from pipeline.core.checkpoints import save_checkpoint

    tmp = tmp_path_factory.mktemp("results")
    root, out = str(tmp / "corpus"), str(tmp / "out")
    expect = make_corpus(root)
    torch.manual_seed(1)
    other = str(tmp / "other.pt")
    save_checkpoint(make_checkpoint(DiffGMM(DiffGMMConfig(**TINY_CONFIG)), {}), other)
    for run_id, checkpoint in zip(RUNS, (tiny_checkpoint, other)):
        run_denoise(
            DenoiseConfig(
                input_uri=f"{root}/noisy",
                output_uri=out,
                reference_uri=f"{root}/clean",
                run_id=run_id,
                model=ModelStageConfig(checkpoint_uri=checkpoint),
                # speaker1/clip_1.wav (2.7 s) streams block by block: no reference metrics, no DNSMOS.
                stream=StreamConfig(stream_seconds=2.0, probe_bytes=1, block_seconds=0.5),
                write=WriteConfig(metrics=("pesq_wb", "si_sdr_db", "stoi", "dnsmos")),
            )
        )
    tables = {run: pq.read_table(RunPaths.of(out, run).clips_uri).to_pylist() for run in RUNS}
    return out, expect, tables


def _query(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(["query", *argv]) == 0
    return capsys.readouterr().out


def test_runs_view_and_latest_match_the_markers_and_tables(two_runs, capsys):
    out, expect, tables = two_runs
    runs = json.loads(_query(capsys, out, "--format", "json"))
    assert [r["run_id"] for r in runs] == list(RUNS)
    for r in runs:
        marker = json.loads(open(f"{RunPaths.of(out, r['run_id']).run_uri}/_COMMITTED.json").read())
        assert (r["clips"], r["ok"], r["errors"]) == (
            marker["summary"]["clips"],
            marker["summary"]["ok"],
            marker["summary"]["errors"],
        )
        assert r["clips"] == len(tables[r["run_id"]]) and r["model_id"] == marker["model_id"]
        assert r["cpu_seconds"] > 0 and r["gpu_seconds"] == 0 and r["cpu_seconds_per_audio_hour"] > 0
    # The two runs' configs differ only in the checkpoint (and the run id, which the hash leaves out):
    # the runs view's full-config hash must tell them apart.
    configs = [json.loads(open(f"{RunPaths.of(out, r).run_uri}/_COMMITTED.json").read())["config"] for r in RUNS]
    for c in configs:
        c.pop("run_id"), c["model"].pop("checkpoint_uri")
    assert configs[0] == configs[1]
    assert len(runs[0]["config_sha256"]) == 64 and runs[0]["config_sha256"] != runs[1]["config_sha256"]
    latest = json.loads(
        _query(capsys, out, "SELECT input_key, run_id, model_id FROM latest ORDER BY input_key", "--format", "json")
    )
    assert [r["input_key"] for r in latest] == sorted(expect)
    assert {r["run_id"] for r in latest} == {"night-2"}


def test_worst_matches_the_parquet(two_runs, capsys):
    out, _, tables = two_runs
    rows = [
        r for r in tables["night-2"] if r[S.STATUS] == "ok" and r[S.PESQ_WB] is not None and math.isfinite(r[S.PESQ_WB])
    ]
    expected = sorted(rows, key=lambda r: (r[S.PESQ_WB], r[S.INPUT_KEY]))[:2]
    got = json.loads(_query(capsys, out, "--worst", "2", "--format", "json"))
    assert [g["input_key"] for g in got] == [e[S.INPUT_KEY] for e in expected]
    assert [g["pesq_wb"] for g in got] == pytest.approx([e[S.PESQ_WB] for e in expected])
    # gmm_nll: higher is worse, so the order flips.
    nll = json.loads(
        _query(capsys, out, "--worst", "1", "--metric", "gmm_nll", "--run-id", "night-1", "--format", "json")
    )
    ok = [
        r for r in tables["night-1"] if r[S.STATUS] == "ok" and r[S.GMM_NLL] is not None and math.isfinite(r[S.GMM_NLL])
    ]
    assert nll[0]["input_key"] == max(ok, key=lambda r: r[S.GMM_NLL])[S.INPUT_KEY]


def test_errors_compare_and_noise_profile(two_runs, capsys):
    out, expect, tables = two_runs
    errors = json.loads(_query(capsys, out, "--errors", "--format", "json"))
    failed = [r for r in tables["night-2"] if r[S.STATUS] != "ok"]
    # The kind is recorded with the error, and the message still leads with it for a reader.
    assert all(r[S.ERROR].startswith(f"{r[S.ERROR_KIND]}: ") for r in failed)
    assert all(r[S.ERROR_KIND] is None for r in tables["night-2"] if r[S.STATUS] == "ok")
    counted = collections.Counter(r[S.ERROR_KIND] for r in failed)
    assert {e["error_kind"]: e["clips"] for e in errors} == dict(counted) == {"bad_header": 1, "empty": 1}

    compared = json.loads(_query(capsys, out, "--compare", *RUNS, "--format", "json"))
    a = {r[S.INPUT_KEY]: r for r in tables["night-1"] if r[S.STATUS] == "ok"}
    b = {r[S.INPUT_KEY]: r for r in tables["night-2"] if r[S.STATUS] == "ok"}
    assert sorted(c["input_key"] for c in compared) == sorted(set(a) & set(b))
    for c in compared:
        key = c["input_key"]
        for m in (S.PESQ_WB, S.REMOVED_NOISE_DB, S.DNSMOS_OVRL):
            if a[key][m] is not None and math.isfinite(a[key][m]) and math.isfinite(b[key][m]):
                assert c[f"delta_{m}"] == pytest.approx(b[key][m] - a[key][m])
    assert any(abs(c["delta_removed_noise_db"]) > 1e-6 for c in compared)  # two different models

    # The model_stats map, unnested per stat: matches the Parquet, for whichever keys the family wrote.
    stats = json.loads(_query(capsys, out, "--model-stats", "--run-id", "night-1", "--format", "json"))
    ok1 = [dict(r[S.MODEL_STATS]) for r in tables["night-1"] if r[S.STATUS] == "ok"]
    assert {s["stat"] for s in stats} == set().union(*ok1) and "gmm_nll" in {s["stat"] for s in stats}
    for s in stats:
        values = [m[s["stat"]] for m in ok1 if s["stat"] in m]
        assert (
            s["clips"] == len(values)
            and s["mean"] == pytest.approx(np.mean(values))
            and s["max"] == pytest.approx(max(values))
        )

    profile = json.loads(_query(capsys, out, "--noise-profile", "--format", "json"))
    ok_latest = [r for r in tables["night-2"] if r[S.STATUS] == "ok"]
    by_folder = collections.Counter(r[S.INPUT_KEY].split("/")[0] if "/" in r[S.INPUT_KEY] else "." for r in ok_latest)
    assert {p["folder"]: p["clips"] for p in profile} == dict(by_folder)
    for p in profile:
        assert sum(p["mean_occupancy"]) == pytest.approx(1.0, abs=1e-3)


def test_output_formats_and_operator_errors(two_runs, capsys, tmp_path):
    out, expect, tables = two_runs
    csv = _query(
        capsys,
        out,
        "SELECT input_key, status FROM clips WHERE run_id = 'night-1' ORDER BY input_key",
        "--format",
        "csv",
    )
    assert csv.splitlines()[0] == "input_key,status" and len(csv.splitlines()) == 1 + len(expect)
    target = str(tmp_path / "q.parquet")
    assert main(["query", out, "SELECT * FROM clips", "--format", "parquet", "--out", target]) == 0
    assert pq.read_table(target).num_rows == 2 * len(expect)
    table = _query(capsys, out, "--worst", "3", "--metric", "removed_noise_db")
    finite = [r for r in tables["night-2"] if r[S.STATUS] == "ok" and math.isfinite(r[S.REMOVED_NOISE_DB] or math.nan)]
    assert "removed_noise_db" in table and f"({min(3, len(finite))} rows)" in table and len(finite) >= 3
    capsys.readouterr()
    assert main(["query", out, "--worst", "3", "--metric", "pesq_wbb"]) == 1
    err = capsys.readouterr().err
    assert "unknown metric 'pesq_wbb'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["query", out, "--worst", "3", "--run-id", "night-9"]) == 1
    assert "no committed run 'night-9'" in capsys.readouterr().err
    assert main(["query", str(tmp_path / "nothing-here")]) == 1


def test_dnsmos_columns_in_the_denoise_table(two_runs):
    _, _, tables = two_runs
    rows = {r[S.INPUT_KEY]: r for r in tables["night-1"]}
    scored = [r for r in rows.values() if r[S.STATUS] == "ok" and not r[S.STREAMED] and r[S.INPUT_KEY] != "silent.wav"]
    assert scored
    for r in scored:
        for name in S.DNSMOS_BASE:
            assert 1.0 <= r[name] <= 5.0 and 1.0 <= r[f"input_{name}"] <= 5.0, (r[S.INPUT_KEY], name)
            assert r[f"delta_{name}"] == pytest.approx(r[name] - r[f"input_{name}"])
    assert rows["speaker1/clip_1.wav"][S.STREAMED] and rows["speaker1/clip_1.wav"][S.DNSMOS_OVRL] is None
    assert rows["corrupt.wav"][S.DNSMOS_OVRL] is None


def test_reference_metrics_of_the_input_beside_the_output(two_runs):
    """Issue 22 (report): the noisy input is scored against the same reference, so its distribution can be drawn."""
    import soundfile as sf

    from pipeline.quality.metrics import score_all

    out, _, tables = two_runs
    root = out.rsplit("/", 1)[0] + "/corpus"
    key = "speaker0/clip_0.wav"
    row = {r[S.INPUT_KEY]: r for r in tables["night-1"]}[key]
    noisy, rate = sf.read(f"{root}/noisy/{key}", dtype="float32")
    clean, _ = sf.read(f"{root}/clean/{key}", dtype="float32")
    expected = score_all(clean, noisy, rate, ("pesq_wb", "si_sdr_db", "stoi"))
    for name, score in expected.items():
        assert row[S.INPUT_PREFIX + name] == pytest.approx(score.value, abs=1e-3), name
    # The output's scores are its own, not a copy of the input's (the tiny model changes little: SI-SDR shows it).
    assert any(abs(row[name] - row[S.INPUT_PREFIX + name]) > 1e-4 for name in expected)
    streamed = {r[S.INPUT_KEY]: r for r in tables["night-1"]}["speaker1/clip_1.wav"]
    assert math.isnan(streamed[S.INPUT_PREFIX + S.PESQ_WB])


def test_report_renders_with_errors_streamed_files_and_nan_metrics_and_loads_in_chromium(two_runs, tmp_path, chromium):
    import matplotlib.image

    out, _, _ = two_runs
    report = str(tmp_path / "report.html")
    assert main(["report", out, "--against", "night-1", "--out", report, "--clips", "2", "--excerpt-seconds", "2"]) == 0
    text = open(report, encoding="utf-8").read()
    # Only one clip has a reference here, so clips are ranked by DNSMOS, which most have.
    for needle in (
        "Denoise run night-2",
        "Worst clips by dnsmos_ovrl",
        "Best clips by dnsmos_ovrl",
        "Compared with night-1",
        "corrupt.wav",
        "empty.flac",
        "data:audio/wav;base64,",
        "data:image/png;base64,",
    ):
        assert needle in text, needle
    # Three clips have DNSMOS and a level (silence is never ranked): two worst, the one left best; noisy and denoised each.
    assert text.count("<audio") == 2 * (2 + 1)
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch
    # Issue 22 report edges: players load their (inline) audio; a short run in minutes or seconds, not "0.000 h".
    assert text.count('preload="metadata"') == text.count("<audio") and 'preload="none"' not in text
    summary = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", text))
    assert re.fullmatch(r"\d+(\.\d)?s", summary["audio"]) and re.fullmatch(r"\d+(\.\d)?s", summary["wall time"]), (
        summary
    )
    # Spectrograms at the file's own rate: the 44.1 kHz input shows its band up to 22.05 kHz.
    assert "stereo_24bit.flac (noisy input 0–22.05 kHz, denoised output 0–22.05 kHz)" in text
    assert "silent.wav ·" not in text  # digital silence is never shown as a worst or best clip

    shot = str(tmp_path / "report.png")
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            f"file://{report}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    image = matplotlib.image.imread(shot)
    assert image.shape[0] >= 2000 and image.shape[1] >= 1200
    # Not a blank page: the figures put plenty of distinct colours on it.
    assert float(image[..., :3].std()) > 0.05
    assert len(np.unique((image[::8, ::8, :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200


def test_readme_commands_on_s3_with_only_aws_endpoint_url_s3(ray_local, s3_bucket, tmp_path, tiny_checkpoint, capsys):
    """Issue 22 #1: nightly, query and report on s3:// with the endpoint only in AWS_ENDPOINT_URL_S3 (set by the
    s3_endpoint fixture, as the README says); no --endpoint-url, no storage.endpoint_url."""
    import os

    import boto3

    endpoint, bucket = s3_bucket
    assert os.environ["AWS_ENDPOINT_URL_S3"] == endpoint
    root = str(tmp_path / "corpus")
    expect = make_corpus(root)
    client = boto3.client("s3")  # the variable again, as botocore reads it
    for key in expect:
        client.upload_file(f"{root}/noisy/{key}", bucket, f"in/{key}")
    out = f"s3://{bucket}/out"
    capsys.readouterr()
    assert (
        main(
            [
                "nightly",
                "--input",
                f"s3://{bucket}/in/",
                "--output",
                f"{out}/",
                "--model",
                tiny_checkpoint,
                "--run-id",
                "night-1",
            ]
        )
        == 0
    ), capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"ledger: {len(expect)} inputs" in printed
    # Issue 22: the nightly summary gives × real time, as denoise does, and durations people read.
    assert re.search(
        r"^run night-1: \d+ clips \(\d+ ok, \d+ errors\), \d[\dhms.]* audio in \d[\dhms.]* = \d+\.\dx real time$",
        printed,
        re.M,
    ), printed
    rows = json.loads(
        _query(
            capsys, out, "SELECT status, count(*) AS n FROM latest GROUP BY status ORDER BY status", "--format", "json"
        )
    )
    assert {r["status"]: r["n"] for r in rows} == dict(collections.Counter(expect.values()))
    assert len(json.loads(_query(capsys, out, "SELECT * FROM ledger", "--format", "json"))) == len(expect)
    # No reference: an empty --worst by PESQ says why and names the metrics there are.
    assert _query(capsys, out, "--worst", "3").strip() == "(no rows)"
    capsys.readouterr()
    main(["query", out, "--worst", "3"])
    hint = capsys.readouterr().err
    assert "no ok clip of run night-1 has a pesq_wb value (PESQ, SI-SDR and STOI need a clean reference" in hint
    assert "removed_noise_db" in hint and "gmm_nll" in hint
    report = str(tmp_path / "s3.html")
    assert main(["report", out, "--out", report, "--clips", "1"]) == 0
    text = open(report, encoding="utf-8").read()
    # No reference here: clips are ranked by the reference-free removed-noise figure, audio read from S3.
    assert "Worst clips by removed_noise_db" in text and "data:audio/wav;base64," in text
    assert "testing-secret-value" not in text


def test_query_and_report_on_s3(ray_local, s3_bucket, tmp_path, tiny_checkpoint, capsys):
    import boto3

    from pipeline.core.storage import StorageConfig

    endpoint, bucket = s3_bucket
    root = str(tmp_path / "corpus")
    expect = make_corpus(root)
    client = boto3.client("s3", endpoint_url=endpoint)
    for key in expect:
        client.upload_file(f"{root}/noisy/{key}", bucket, f"in/{key}")
    config = DenoiseConfig(
        input_uri=f"s3://{bucket}/in",
        output_uri=f"s3://{bucket}/out",
        run_id="s3-night",
        storage=StorageConfig(endpoint_url=endpoint),
        model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
    )
    run_denoise(config)
    results = Results(f"s3://{bucket}/out", StorageConfig(endpoint_url=endpoint))
    assert [r.run_id for r in results.runs] == ["s3-night"]
    rows = json.loads(
        _query(
            capsys,
            f"s3://{bucket}/out",
            "SELECT status, count(*) AS n FROM clips GROUP BY status ORDER BY status",
            "--format",
            "json",
            "--endpoint-url",
            endpoint,
        )
    )
    assert {r["status"]: r["n"] for r in rows} == dict(collections.Counter(expect.values()))
    report = str(tmp_path / "s3.html")
    assert main(["report", f"s3://{bucket}/out", "--out", report, "--clips", "1", "--endpoint-url", endpoint]) == 0
    text = open(report, encoding="utf-8").read()
    # No reference here: clips are ranked by the reference-free removed-noise figure, audio read from S3.
    assert "Worst clips by removed_noise_db" in text and "data:audio/wav;base64," in text
    assert "testing-secret-value" not in text


def test_changed_input_is_left_out_of_compare_and_not_embedded_in_an_older_report(
    ray_local, tmp_path, tiny_checkpoint, capsys
):
    """Issue 22 #4 and #5: an input rewritten between two runs is not paired by `query --compare` (listed apart),
    and the older run's report does not play today's input beside that night's output."""
    import soundfile as sf

    from pipeline.audio.demo_data import generate_pair

    rng = np.random.default_rng(3)
    root, out = tmp_path / "in", str(tmp_path / "out")
    root.mkdir()
    for i in range(3):
        sf.write(root / f"c{i}.wav", generate_pair(1.0 + 0.2 * i, 5.0, 16000, rng)[0], 16000, subtype="PCM_16")

    def night(run_id: str) -> None:
        run_denoise(
            DenoiseConfig(
                input_uri=str(root),
                output_uri=out,
                run_id=run_id,
                model=ModelStageConfig(checkpoint_uri=tiny_checkpoint),
            )
        )

    night("r1")
    # Today's c0 is another, 12 dB quieter recording of another length.
    sf.write(root / "c0.wav", 0.25 * generate_pair(1.5, 5.0, 16000, rng)[0], 16000, subtype="PCM_16")
    night("r2")
    capsys.readouterr()
    assert main(["query", out, "--compare", "r1", "r2", "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert sorted(r[S.INPUT_KEY] for r in json.loads(captured.out)) == ["c1.wav", "c2.wav"]
    assert "not compared: 1 inputs changed between r1 and r2: c0.wav" in captured.err

    report = str(tmp_path / "r1.html")
    assert (
        main(
            [
                "report",
                out,
                "--run-id",
                "r1",
                "--against",
                "r2",
                "--out",
                report,
                "--clips",
                "3",
                "--excerpt-seconds",
                "2",
            ]
        )
        == 0
    )
    text = open(report, encoding="utf-8").read()
    assert text.count("input changed since this run") == 1
    assert text.count("<audio") == 2 * 3 - 1  # no "noisy" player for c0: its input is not the one r1 denoised
    assert "Not compared: 1 inputs changed between the runs (c0.wav)" in text
