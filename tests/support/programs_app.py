"""A small HTTP worker for the program-supervision tests, run as a program's
command: `python programs_app.py PORT [options]`.

    --ignore-term     keep running on SIGTERM (the supervisor must SIGKILL)
    --exit-after S    exit with status 3 after S seconds (a crash)
    --sick-dir DIR    answer 503 while DIR/sick-PORT exists (the file is removed
                      at start, so a restarted worker is healthy again)
    --daemon PIDFILE  fork, write the child's pid to PIDFILE, parent exits 0

GET / answers "port PID\\n" (PID distinguishes a restarted worker);
GET /slow?s=0.3 answers after that many seconds. On start it prints
"start PORT PID", the variables HAPLY_* and APP_* and its working directory
to stdout.
"""

import argparse
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--sick-dir")
    parser.add_argument("--daemon")
    args = parser.parse_args()
    if args.daemon:
        pid = os.fork()
        if pid:
            with open(args.daemon, "w") as handle:
                handle.write(f"{pid}\n")
            os._exit(0)
        os.setsid()
    sick = os.path.join(args.sick_dir, f"sick-{args.port}") if args.sick_dir else None
    if sick and os.path.exists(sick):
        os.unlink(sick)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/slow":
                time.sleep(min(float(parse_qs(url.query).get("s", ["0.2"])[0]), 5.0))
            status = 503 if sick and os.path.exists(sick) else 200
            body = f"{args.port} {os.getpid()}\n".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(("HAPLY_", "APP_")))
    print(f"start {args.port} {os.getpid()} {env} cwd={os.getcwd()}", flush=True)
    print(f"stderr {args.port}", file=sys.stderr, flush=True)
    if args.exit_after is not None:
        threading.Timer(args.exit_after, lambda: os._exit(3)).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
