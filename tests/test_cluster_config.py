"""The cluster and scheduling files: Ray's own validator, pins equal to pyproject.toml, and a real `ray job submit`."""

from __future__ import annotations

import copy
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "ray_cluster.yaml"
KUBERAY = sorted((ROOT / "deploy" / "kuberay").glob("*.yaml"))
WRAPPER = ROOT / "deploy" / "nightly-submit.sh"


def project_pins() -> list[str]:
    text = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]
    block = text.split("dependencies = [", 1)[1].split("]\n", 1)[0]
    return re.findall(r'"([^"]+==[^"]+)"', block)


def test_cluster_config_passes_rays_validator_and_has_the_shape_we_rely_on():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CLUSTER.read_text())
    validate_config(config)
    validate_config(prepare_config(copy.deepcopy(config)))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0} and any("--num-cpus=0" in c for c in config["head_start_ray_commands"])
    gpu, cpu = types["gpu_worker"], types["cpu_worker"]
    assert (
        gpu["min_workers"] == 0
        and gpu["max_workers"] >= 1
        and gpu["node_config"]["InstanceType"].startswith(("g", "p"))
    )
    assert cpu["node_config"]["InstanceType"].startswith(("c", "m"))
    for node in types.values():  # storage access through instance roles
        assert "IamInstanceProfile" in node["node_config"]
    text = CLUSTER.read_text().lower()
    assert not any(
        secret in text for secret in ("aws_secret_access_key", "aws_access_key_id", "aws_session_token", ".aws/")
    )
    # A typo is caught by the same validator.
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_wokers"] = 0
    with pytest.raises(Exception, match="min_wokers"):
        validate_config(broken)


def test_cluster_pins_and_image_match_pyproject():
    config = yaml.safe_load(CLUSTER.read_text())
    installed = re.findall(r'"([^"]+==[^"]+)"', " ".join(config["setup_commands"]))
    assert installed == project_pins()
    ray_pin = next(p for p in project_pins() if p.startswith("ray["))
    assert config["docker"]["image"].startswith(
        f"rayproject/ray:{ray_pin.split('==')[1]}-py{sys.version_info.major}{sys.version_info.minor}"
    )


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_manifests_parse_and_carry_the_same_pins(path):
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in ("RayJob", "RayCronJob")
    spec = doc["spec"]
    if doc["kind"] == "RayCronJob":
        assert len(spec["schedule"].split()) == 5 and spec["concurrencyPolicy"] == "Forbid"
        assert "alpha" in path.read_text().lower()
        spec = spec["jobTemplate"]
    assert "jobs.cli nightly" in spec["entrypoint"]
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["pip"] == project_pins()
    cluster = spec["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert groups["gpu"]["minReplicas"] == 0
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1"
    ray_version = next(p for p in project_pins() if p.startswith("ray[")).split("==")[1]
    images = [
        c["image"] for g in [cluster["headGroupSpec"], *groups.values()] for c in g["template"]["spec"]["containers"]
    ]
    assert all(image.startswith(f"rayproject/ray:{ray_version}-py311") for image in images)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_nightly_through_ray_job_submit_on_a_real_local_cluster(tmp_path, tiny_checkpoint):
    """`ray start --head`, the cron wrapper twice on two nights (and once more), then `ray stop`."""
    from pipeline.audio.demo_data import generate_pair

    ray_bin = Path(sys.executable).parent / "ray"
    assert ray_bin.exists(), f"ray CLI not found next to {sys.executable}"
    (tmp_path / "in").mkdir()
    for i in range(2):
        sf.write(tmp_path / "in" / f"c{i}.wav", generate_pair(0.6, 5.0, 16000, np.random.default_rng(i))[0], 16000)
    port, dashboard, agent, client = _free_port(), _free_port(), _free_port(), _free_port()
    env = {
        **os.environ,
        "PATH": f"{ray_bin.parent}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_ADDRESS": f"http://127.0.0.1:{dashboard}",
        "DIFFGMM_ARGS": f"--checkpoint {tiny_checkpoint}",
    }
    env.pop("RAY_NAMESPACE", None)
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    start = [
        str(ray_bin),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        f"--dashboard-port={dashboard}",
        "--dashboard-host=127.0.0.1",
        "--num-cpus=2",
        # Ray's fixed default ports (the agent's 52365, the client server's 10001) are held by
        # the test session's own Ray: a second cluster on this machine needs its own.
        f"--dashboard-agent-listen-port={agent}",
        f"--ray-client-server-port={client}",
        "--include-dashboard=true",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    # --block in its own process group: stopping it stops this cluster only (`ray stop` would stop every
    # Ray on the machine, the test session's own included).
    head = subprocess.Popen(
        start, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_port(dashboard, head)
        _wait_for_job_agent(ray_bin, env)

        def night(date: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["bash", str(WRAPPER), str(tmp_path / "in"), str(tmp_path / "out")],
                env={**env, "DIFFGMM_NIGHT": date},
                capture_output=True,
                text=True,
                timeout=400,
            )

        first = night("2026-01-01")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        sf.write(tmp_path / "in" / "c2.wav", generate_pair(0.6, 5.0, 16000, np.random.default_rng(2))[0], 16000)
        second = night("2026-01-02")
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        again = night("2026-01-02")  # the scheduler retries a night that succeeded
        assert again.returncode == 0 and "already SUCCEEDED" in again.stdout, again.stdout + again.stderr
    finally:
        _stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    runs = tmp_path / "out" / "runs"
    assert (runs / "2026-01-01" / "_COMMITTED.json").exists() and (runs / "2026-01-02" / "_COMMITTED.json").exists()
    assert pq.read_table(runs / "2026-01-01" / "clips").num_rows == 2
    assert pq.read_table(runs / "2026-01-02" / "clips").column("input_key").to_pylist() == ["c2.wav"]


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "ray start --head exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"the Ray dashboard did not open port {port} in {seconds} s")


def _wait_for_job_agent(ray_bin: Path, env: dict, seconds: float = 300) -> None:
    """The dashboard answers before the job agent does ("No available agent to submit job")."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [str(ray_bin), "job", "submit", "--address", env["RAY_ADDRESS"], "--", "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if probe.returncode == 0:
            return
        time.sleep(2)
    raise AssertionError("the Ray job agent did not come up:\n" + probe.stderr[-2000:])


def _stop(proc: subprocess.Popen) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            time.sleep(1.0)
        except subprocess.TimeoutExpired:
            continue
