"""`haply convert FILE.pound.cfg|monitrc`: print the equivalent haproxy.cfg.

The file is loaded as haply loads it (same parser, same checks, certificates
included), and the resulting model is written out in HAProxy's syntax, so what
HAProxy 2.6 runs from the output is what haply runs from the Pound file, and
both `haply -c` and `haproxy -c` accept it. Pound behaviour that HAProxy spells
differently is written the HAProxy way: xHTTP as
`http-request deny deny_status 501 unless { method ... }`, Err5xx pages as
`http-error status N content-type text/html file PATH`. A monitrc's
`check process` entries become `program` sections (haply.config.programs).
"""

from __future__ import annotations

import sys

from haply.config.model import Condition, Config, Program, Proxy, Server, Timeouts

USAGE = "usage: haply convert FILE.pound.cfg|FILE.monitrc\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stderr if len(argv) != 1 else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from haply.config import ConfigError, load

    try:
        loaded = load([argv[0]])
    except ConfigError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return 1
    for diagnostic in loaded.diagnostics.warnings:
        print(diagnostic, file=sys.stderr)
    sys.stdout.write(render(loaded.config, argv[0]))
    return 0


def render(config: Config, source: str = "") -> str:
    """haproxy.cfg text for config."""
    out = [f"# haproxy.cfg equivalent of {source}, written by haply convert", ""]
    if not config.proxies:  # a monitrc: programs only
        for program in config.programs:
            out += render_program(program)
        return "\n".join(out)
    g = config.global_
    out.append("global")
    for key, value in (("user", g.user), ("group", g.group), ("chroot", g.chroot)):
        if value:
            out.append(f"    {key} {value}")
    if g.daemon:
        out.append("    daemon")
    out += ["", "defaults", "    mode http", ""]
    for proxy in config.proxies:
        out += _proxy(proxy)
    for program in config.programs:
        out += render_program(program)
    return "\n".join(out)


def render_program(program: Program) -> list[str]:
    """A `program` section; haply's own keywords only where they differ from
    their defaults (haply.config.programs)."""
    default = Program(program.name)
    out = [f"program {program.name}", "    command " + " ".join(quote(w) for w in program.command)]
    for key in ("user", "group"):
        if getattr(program, key):
            out.append(f"    {key} {quote(getattr(program, key))}")
    if not program.start_on_reload:
        out.append("    no option start-on-reload")
    if program.instances != 1:
        out.append(f"    instances {program.instances}")
    if program.port is not None:
        out.append(f"    port {program.port}")
    for name, value in program.environment:
        out.append(f"    setenv {name} {quote(value)}")
    for key in ("directory", "stdout", "stderr", "pidfile"):
        if getattr(program, key):
            out.append(f"    {key} {quote(getattr(program, key))}")
    if program.daemon:
        out.append("    option daemon")
    if program.stop_command:
        out.append("    stop-command " + " ".join(quote(w) for w in program.stop_command))
    if program.stop_timeout != default.stop_timeout:
        out.append(f"    timeout stop {_seconds(program.stop_timeout)}")
    if (program.backoff, program.backoff_max) != (default.backoff, default.backoff_max):
        out.append(f"    restart-backoff {_seconds(program.backoff)} {_seconds(program.backoff_max)}")
    if (program.crash_limit, program.crash_window) != (default.crash_limit, default.crash_window):
        out.append(f"    crash-limit {program.crash_limit} {_seconds(program.crash_window)}")
    if program.service_group:
        out.append(f"    service-group {quote(program.service_group)}")
    out.append("")
    return out


def _seconds(value: float) -> str:
    return f"{int(value)}s" if value == int(value) else f"{int(value * 1000)}ms"


def _timeouts(timeouts: Timeouts) -> list[str]:
    lines = []
    for name, attr in (("connect", "connect"), ("client", "client"), ("server", "server"),
                       ("http-request", "http_request"), ("check", "check")):
        value = getattr(timeouts, attr)
        if value is not None:
            lines.append(f"    timeout {name} {_seconds(value)}")
    return lines


def quote(text: str) -> str:
    """A word for HAProxy's parser: bare when safe, else quoted so that
    backslashes (regular expressions) reach the pattern unchanged."""
    if text and all(c.isalnum() or c in "-_./:@*^$" for c in text):
        return text
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def condition(cond: Condition | None) -> str:
    if cond is None:
        return ""
    groups = []
    for group in cond.any_of:
        terms = []
        for term in group:
            acl = term.acl
            fetch = f"{acl.fetch}({acl.arg})" if acl.arg else acl.fetch
            words = [fetch, *sorted(acl.flags), *(quote(p) for p in acl.patterns)]
            terms.append(("!" if term.negated else "") + "{ " + " ".join(words) + " }")
        groups.append(" ".join(terms))
    return (" unless " if cond.unless else " if ") + " || ".join(groups)


def _proxy(proxy: Proxy) -> list[str]:
    out = [f"{proxy.kind} {proxy.name}"]
    if proxy.is_frontend:
        for bind in proxy.binds:
            host = f"[{bind.host}]" if ":" in bind.host else bind.host
            options = "".join(f" {o} {quote(v)}" if v else f" {o}" for o, v in bind.options)
            out.append(f"    bind {host}:{bind.port}{options}")
    out += _timeouts(proxy.timeouts)
    for key, args in proxy.extra:
        if key.startswith("pound-err"):
            out.append(f"    http-error status {key[9:]} content-type text/html file {quote(args[0])}")
    for rule in proxy.http_request_rules:
        if rule.action == "deny":  # Pound's xHTTP
            out.append(f"    http-request deny deny_status {rule.status}{condition(rule.condition)}")
            continue
        if rule.action == "redirect":
            out.append(f"    http-request redirect {rule.kind} {quote(rule.target)} code {rule.code}"
                       f"{condition(rule.condition)}")
            continue
        value = f" {quote(rule.value)}" if rule.value is not None else ""
        out.append(f"    http-request {rule.action} {rule.name}{value}{condition(rule.condition)}")
    if proxy.forward_for is not None:
        out.append("    option forwardfor")
    if proxy.is_backend:
        if proxy.balance == "hdr":
            balance = f"hdr({proxy.balance_arg})"
        else:
            balance = proxy.balance + (f" {quote(proxy.balance_arg)}" if proxy.balance_arg else "")
        out.append(f"    balance {balance}")
        out.append(f"    retries {proxy.retries}")
        if proxy.redispatch:
            out.append("    option redispatch")
    for redirect in proxy.redirects:
        out.append(f"    redirect {redirect.kind} {quote(redirect.target)} code {redirect.code}"
                   f"{condition(redirect.condition)}")
    for switch in proxy.backend_switches:
        out.append(f"    use_backend {switch.backend}{condition(switch.condition)}")
    if proxy.default_backend and proxy.kind == "frontend":
        out.append(f"    default_backend {proxy.default_backend}")
    for server in proxy.servers:
        out.append("    " + _server(server))
    out.append("")
    return out


def _server(server: Server) -> str:
    host = f"[{server.host}]" if ":" in server.host else server.host
    words = [f"server {server.name} {host}:{server.port}", f"weight {server.weight}"]
    if server.check:
        words.append(f"check inter {_seconds(server.inter)} rise {server.rise} fall {server.fall}")
    if server.check_port:
        words.append(f"port {server.check_port}")
    if server.observe:
        words.append(f"observe {server.observe} error-limit {server.error_limit} on-error {server.on_error}")
    if server.backup:
        words.append("backup")
    if server.disabled:
        words.append("disabled")
    words += [f"{o} {v}" if v else o for o, v in server.extra]
    return " ".join(words)


__all__ = ["main", "render", "render_program"]
