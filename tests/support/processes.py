"""Ending the programs a test started."""

from __future__ import annotations

import subprocess

STOP_GRACE = 5.0  # seconds a program has to exit after SIGTERM, then SIGKILL


def end(process: subprocess.Popen | None, grace: float = STOP_GRACE) -> None:
    """SIGTERM, then SIGKILL if it is still there after `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace)
