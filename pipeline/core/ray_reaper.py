"""Ends a local Ray cluster's leftover processes when the driver that started it dies without cleaning up.

``ray.init()`` on a machine without a cluster starts one as the driver's children.
On a normal exit (or an exception, Ctrl-C, SIGTERM) ``ray.shutdown`` ends them.
After ``kill -9`` of the driver (or the OOM killer), Ray's kernel fate-sharing ends
``gcs_server`` and ``raylet``, but ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent``
notice the dead raylet, then spend 60 s trying to report it to the dead GCS
(``publish_error_to_driver``'s fixed timeout in Ray 2.60) with parent 1, holding
ports and memory; ``include_dashboard=False`` does not change that (measured).

So the driver that started the cluster also starts this watcher (a script of its own, stdlib and
psutil only) with a pipe on its stdin that only the driver writes. Each second the watcher adds the
driver's descendants to what it has seen (pid and start time, so a reused pid is never touched).
It keeps every one it has seen while it runs, because a look taken as the driver dies finds none:
the dying driver's children are already reparented. When the pipe closes (the driver exited,
however), it gives Ray a moment to end them itself, then kills whatever of them is still running.
It reads the process table only, never talks to Ray, and touches no process that was not once the
driver's descendant.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import time

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
GRACE_SECONDS = 1.0  # after the driver's death: Ray's own fate-sharing ends raylet and GCS first
_watcher: subprocess.Popen | None = None


def start() -> None:
    """Start the watcher for this process (once: later calls do nothing).

    Its stdin is a pipe only this process holds open, which the kernel closes when it dies.
    """
    global _watcher
    if _watcher is None or _watcher.poll() is not None:
        _watcher = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to the driver's process group is the driver's, not the watcher's
        )
        log.debug("ray reaper %d watches driver %d", _watcher.pid, os.getpid())


def watch(driver_pid: int, stdin_fd: int = 0) -> int:
    """The watcher's loop; returns how many leftover processes it killed."""
    import psutil

    me = os.getpid()
    seen: dict[int, float] = {}  # pid -> create_time of every descendant of the driver seen so far
    while True:
        try:
            now = {c.pid: c.create_time() for c in psutil.Process(driver_pid).children(recursive=True) if c.pid != me}
        except psutil.NoSuchProcess:
            now = {}  # the driver is gone: what was seen before is what is left to end
        # Forget only the processes that have ended, so a long run's many workers do not pile up.
        seen = {pid: created for pid, created in seen.items() if pid in now or psutil.pid_exists(pid)} | now
        ready, _, _ = select.select([stdin_fd], [], [], POLL_SECONDS)
        if ready and not os.read(stdin_fd, 64):
            break  # EOF: the driver is gone
    time.sleep(GRACE_SECONDS)
    killed = 0
    for pid, created in seen.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
                killed += 1
        except psutil.NoSuchProcess:
            continue
    return killed


if __name__ == "__main__":
    watch(int(sys.argv[1]))
