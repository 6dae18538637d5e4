"""Issue 22 (orphans): ``kill -9`` of a driver that started the local Ray leaves none of its processes behind.

A real driver process (``init_ray(None)`` on a machine without a cluster, one task run), its process
tree noted, then SIGKILL: every process of that tree must be gone within a few seconds (without the
watcher, Ray 2.60's DashboardAgent and RuntimeEnvAgent live on for a minute with parent 1).
The watcher's own race (a look taken while the driver dies finds no descendants) is pinned without
Ray, by a driver that is already a zombie when the watcher looks again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pipeline.core import ray_reaper

DRIVER = textwrap.dedent("""
    import os, time
    import ray
    from pipeline.core.runs import init_ray

    init_ray(None)
    ray.get(ray.remote(lambda: os.getpid()).remote())
    print("ready", flush=True)
    time.sleep(300)
""")


@pytest.mark.ray
@pytest.mark.slow
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


ZOMBIE_DRIVER = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    print(child.pid, flush=True)
    sys.stdin.readline()  # exit when told: the test does not reap this process, so it stays a zombie
""")


def test_the_watcher_ends_what_it_saw_even_when_its_last_look_finds_the_driver_a_zombie():
    import psutil

    driver = subprocess.Popen(
        [sys.executable, "-c", ZOMBIE_DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    child = psutil.Process(int(driver.stdout.readline()))
    read_fd, write_fd = os.pipe()
    result: list[int] = []
    watcher = threading.Thread(target=lambda: result.append(ray_reaper.watch(driver.pid, read_fd)), daemon=True)
    try:
        watcher.start()
        time.sleep(1.5 * ray_reaper.POLL_SECONDS)  # at least one look with the child under the live driver
        driver.stdin.write("exit\n")
        driver.stdin.flush()
        deadline = time.monotonic() + 10
        while psutil.Process(driver.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the driver did not exit"
            time.sleep(0.05)
        assert child.ppid() != driver.pid  # reparented: a look now finds no descendants
        time.sleep(1.5 * ray_reaper.POLL_SECONDS)  # at least one look with the driver a zombie
        os.close(write_fd)  # what the kernel does when the driver's process ends
        watcher.join(timeout=10)
        assert result == [1]
        child.wait(timeout=5)
        assert not child.is_running()
    finally:
        os.close(read_fd)
        driver.kill()
        driver.wait()
        if child.is_running():
            child.kill()
