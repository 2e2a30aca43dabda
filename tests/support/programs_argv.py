"""Records how it was started (argv, uid, gid, HAPLY_* variables, working
directory) as JSON in the file named by its first argument, then waits to be
stopped: the oracle script of the program interop tests."""

import json
import os
import signal
import sys
import time

if __name__ == "__main__":
    record = {"argv": sys.argv[2:], "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
              "cwd": os.getcwd(), "pgid_is_pid": os.getpgid(0) == os.getpid(),
              "env": {k: v for k, v in os.environ.items() if k.startswith("HAPLY_")}}
    temporary = sys.argv[1] + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(record, handle)
    os.replace(temporary, sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(30)
