"""Run haply exactly as the HAProxy oracle is run: same flags, same config text.

haply's command line is HAProxy's (`-c -q -f FILE`, `-db -f FILE`), so the oracle's
process runner drives it unchanged; only the binary differs. Tests that compare the
two proxies parametrise over `PROXIES`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from tests.support.haproxy_oracle import HAPROXY_BIN, HAProxy, run_haproxy

REPO_ROOT = Path(__file__).resolve().parents[2]


def _haply_launcher() -> str:
    """An executable that runs the haply of this source tree.

    Not the installed console script: an editable install may point at another
    checkout. The oracle runner takes one executable path, hence a tiny script.
    """
    directory = tempfile.mkdtemp(prefix="haply-bin-")
    atexit.register(shutil.rmtree, directory, True)
    path = os.path.join(directory, "haply")
    with open(path, "w") as script:
        script.write(f"#!/bin/sh\nPYTHONPATH={REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}} "
                     f"exec {sys.executable} -m haply \"$@\"\n")
    os.chmod(path, 0o755)
    return path


HAPLY_BIN = _haply_launcher()
PROXIES = {"haply": HAPLY_BIN, "haproxy": HAPROXY_BIN}


@contextlib.contextmanager
def run_haply(config: str) -> Iterator[HAProxy]:
    with run_haproxy(config, binary=HAPLY_BIN) as proxy:
        yield proxy


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc (VmRSS, KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
