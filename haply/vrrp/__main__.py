"""`python -m haply.vrrp -f keepalived.conf [-f ...] [--control SOCKET]`: VRRP alone.

`python -m haply.vrrp --show SOCKET` prints the state of a running one.
"""

from __future__ import annotations

import argparse
import logging
import sys

from haply.config.diagnostics import ConfigError
from haply.config.keepalived import load_keepalived


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m haply.vrrp", description=__doc__)
    ap.add_argument("-f", dest="files", action="append", help="keepalived.conf")
    ap.add_argument("--show", metavar="SOCKET", help="print the state of the service at SOCKET")
    ap.add_argument("--control", help="unix socket answering 'show vrrp' with JSON")
    ap.add_argument("-c", "--check", action="store_true", help="check the configuration and exit")
    ap.add_argument("--no-guard", action="store_true",
                    help="do not fork the guard that removes VIPs after a SIGKILL")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.show:
        from haply.vrrp.service import query
        from haply.vrrp.show import format_table
        try:
            print(format_table(query(args.show)))
        except OSError as exc:
            print(f"{args.show}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        return 0
    if not args.files:
        ap.error("-f keepalived.conf is required")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s haply-vrrp[%(process)d] %(levelname)s %(message)s")
    try:
        config = load_keepalived(args.files)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.check:
        print("Configuration file is valid")
        return 0
    from haply.vrrp.service import run
    run(config, args.control, guard=not args.no_guard,
        reloader=lambda: load_keepalived(args.files))  # SIGHUP re-reads the files
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
