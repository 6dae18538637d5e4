"""Issue 22 (orphans): ``kill -9`` of a driver that started the local Ray leaves none of its processes behind.

A real driver process (``init_ray(None)`` on a machine without a cluster, one task run), its process
tree noted, then SIGKILL: every process of that tree must be gone within a few seconds (without the
watcher, Ray 2.60's DashboardAgent and RuntimeEnvAgent live on for a minute with parent 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

DRIVER = textwrap.dedent("""
    import os, time
    import ray
    from pipeline.core.runs import init_ray

    init_ray(None)
    ray.get(ray.remote(lambda: os.getpid()).remote())
    print("ready", flush=True)
    time.sleep(300)
""")


def test_kill_9_of_a_local_driver_leaves_no_ray_process():
    import psutil

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, env=env)
    tree = []
    try:
        assert driver.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # the agents are up and the watcher has looked at least once
        tree = psutil.Process(driver.pid).children(recursive=True)
        names = {p.name() for p in tree}
        assert {"raylet", "gcs_server", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names, names
        assert not any(n.startswith("ray-dashboard-") for n in names), names  # include_dashboard=False
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        deadline = time.monotonic() + 8
        while True:
            alive = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert not alive, [(p.pid, p.name()) for p in alive]
    finally:
        driver.kill()
        for p in tree:  # whatever a failing run left: not this test's to leave behind
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
